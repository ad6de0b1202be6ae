//! AkiDB instrumentation: what every service process links to be observable, and the
//! lifecycle that starts and stops it.
//!
//! - [`config`]: the flags every service shares for logs and traces ([`TelemetryArgs`]).
//! - [`init`]: one call that sets up logs, metrics and OTLP trace export for a service.
//! - [`logs`]: log lines (text or JSON) and what they leave out.
//! - [`metrics`]: the metric catalogue (docs/metrics.md) as one registry of typed handles.
//! - [`exemplar`]: trace ids of traced requests kept on histogram buckets.
//! - [`exposition`]: the Prometheus text and OpenMetrics formats, parsed and written.
//! - [`http`]: the HTTP port of every service: `/metrics`, `/healthz`, `/tracing`.
//! - [`sampling`]: head sampling settings (export on/off, ratio), changeable at run time.
//! - [`propagation`]: W3C `traceparent` parsed and written, and the "not traced" marker.
//! - [`context`]: the request a task serves (traced or not), carried across threads.
//! - [`layers`]: the tower layers of every gRPC server and client (metrics, spans, context).
//! - [`tls`]: TLS of every port and every call between the services (`--tls-cert`, `--tls-key`,
//!   `--tls-client-ca`, `--ca-cert`).
//! - [`transport`]: the instrumented tonic server builder and client channel, reflection.
//! - [`lifecycle`]: the one service lifecycle (health, stop token, HTTP port, graceful join).
//! - [`idle_poll`]: keeps a core awake briefly after a request (latency of a lone client).
//!
//! Import order inside the crate has no cycle (`scripts/check-imports`): `sampling` and
//! `propagation` depend on nothing here; `context` on `propagation`; `exemplar` on `context`;
//! `metrics` on `exemplar`; `layers` on all of these; `http` on `metrics`, `exposition` and
//! `sampling`; `tls` on nothing here; `transport` on `layers` and `tls`; `http` on `tls` too;
//! `lifecycle` on `transport`, `http`, `tls` and `init`.

pub mod config;
pub mod context;
pub mod exemplar;
pub mod exposition;
pub mod http;
pub mod idle_poll;
pub mod init;
pub mod layers;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod sampling;
pub mod tls;
pub mod transport;

pub use config::TelemetryArgs;
pub use init::{TelemetryGuard, init};
pub use metrics::{Component, metrics};
/// The metric types of the catalogue's handles, for services that keep a handle of their own.
pub use prometheus;
