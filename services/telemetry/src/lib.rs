//! AkiDB telemetry: the instrumentation every service shares, and the aggregator.
//!
//! - [`init`]: logs (`tracing`, text or JSON), OTLP traces and the metrics registry, from one
//!   [`TelemetryArgs`].
//! - [`metrics`]: the metric catalogue (docs/metrics.md) and the `/metrics` HTTP server.
//! - [`grpc`]: tower layers for every gRPC server and client: request metrics, W3C trace
//!   context extracted on the server and injected on the client.
//! - [`server`]: shared gRPC server plumbing (health, reflection, shutdown signal).
//! - [`aggregator`]: scraping, `/federate` and the SLOs of `observability/slo.yaml`.

pub mod aggregator;
pub mod grpc;
pub mod init;
pub mod metrics;
pub mod server;

pub use init::{TelemetryArgs, TelemetryGuard, init};
pub use metrics::{Component, metrics};
