//! Tower layers for every AkiDB gRPC server and client.
//!
//! [`ServerLayer`]: counts and times every call by service, method and gRPC code, tracks calls
//! in flight, and decides whether the request is traced (head sampling) before any span is
//! built:
//!
//! - incoming `traceparent` sampled (flags `01`): a `grpc.server` span continuing the caller's
//!   trace, exported;
//! - incoming `traceparent` not sampled (flags `00`): no OpenTelemetry span at all; the caller's
//!   (trace id, span id, not sampled) context is kept so that outgoing calls carry
//!   `traceparent` with flags `00`, and downstream services do not start traces of their own;
//! - no (valid) `traceparent` but [`crate::propagation::UNTRACED_HEADER`] (an AkiDB service upstream decided not
//!   to trace): not traced, and outgoing calls carry the header on;
//! - neither: the configured ratio decides (the SDK's `TraceIdRatioBased` rule on a random
//!   id); not sampled: as above, outgoing calls carry the untraced marker;
//! - trace export off: no span for OpenTelemetry; a caller's `traceparent` is forwarded as is.
//!
//! A request that is not traced gets no span at all: how it is traced (and its method) is kept
//! in a tokio task-local around its handler ([`crate::context`]), where [`ClientLayer`] finds
//! what to propagate and [`crate::context::step_span`] finds that costly steps need no span;
//! [`crate::context::RequestScope`] carries both to threads of the blocking pool. Log lines inside such a request name its method
//! (`rpc=<method>`, see `init`). A span per request cost every request about 8,000
//! instructions (creation, entering and leaving it on every poll, closing it), more than the
//! logging it served.
//!
//! [`ClientLayer`]: the same metrics on the calling side, and the trace context injected into
//! the outgoing metadata: the `grpc.client` span's when the current request is traced, the
//! untraced request's context or the untraced marker otherwise (W3C Trace Context in
//! [`crate::propagation`]).
//!
//! Logs: the fields that only OpenTelemetry reads (`otel.*` but `otel.name`, `rpc.*`) are not
//! formatted into log lines (see [`crate::logs`]), so a traced request's span costs the log
//! layer what an untraced one does.
//!
//! Metric handles are cached per (service, method) and per code: no label lookup, `String` or
//! `format!` per request.

use crate::context::{RequestCtx, RequestTrace, current_trace, span_trace_id};
use crate::exemplar::TracedHistogram;
use crate::metrics::metrics;
use crate::propagation::{
    TRACEPARENT, TRACESTATE, UNTRACED, Untraced, format_traceparent, inject, never_indexed,
    parse_traceparent, remote_parent,
};
use crate::sampling::export_enabled;
use futures::future::BoxFuture;
use opentelemetry::trace::TraceId;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::{Instrument, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// (service, method) label values of a gRPC path, bounded: anything outside `akidb.v1` and
/// the standard gRPC services is reported as `other`.
pub fn labels_of(path: &str) -> (&str, &str) {
    let mut it = path.trim_start_matches('/').splitn(2, '/');
    match (it.next(), it.next()) {
        (Some(s), Some(m))
            if (s.starts_with("akidb.v1.") || s.starts_with("grpc."))
                && s.len() <= 64
                && m.len() <= 64
                && m.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            (s, m)
        }
        _ => ("other", "other"),
    }
}

pub use akidb_proto::rest::code_name;

/// Count a call to `path` that was answered `code` before it reached the server's layers (the
/// REST front refusing a body that is not the method's JSON), as the layer counts its calls.
pub fn count_refused(path: &str, start: Instant, code: i32) {
    SERVER_RPCS.get(path).finish(start, code, None);
}

/// Codes that count against availability: the server's fault, not the caller's.
pub fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 13 | 14 | 15)
}

/// The gRPC code of a response: `grpc-status` in the headers (a trailers-only response, which
/// is how every error of a unary call is sent), otherwise OK.
pub fn response_code(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// tonic refuses a request larger than the service's `--max-message-bytes` with OUT_OF_RANGE;
/// the gRPC spec (and every other gRPC server) says RESOURCE_EXHAUSTED, which is what clients
/// expect. The message (with both sizes) stays.
fn too_large_is_exhausted(headers: &mut http::HeaderMap) {
    const TOO_LARGE: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";
    if headers.get("grpc-status").map(|v| v.as_bytes()) == Some(b"11")
        && headers
            .get("grpc-message")
            .is_some_and(|m| m.as_bytes().starts_with(TOO_LARGE))
    {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

/// Handles and names of one (side, service, method).
struct Rpc {
    /// `service/method`: the span name.
    name: &'static str,
    service: &'static str,
    method: &'static str,
    /// `grpc.*` (health, reflection): metrics only, never a span.
    infra: bool,
    duration: TracedHistogram,
    in_flight: Option<IntGauge>,
    requests: IntCounterVec,
    codes: [OnceLock<IntCounter>; 17],
}

impl Rpc {
    fn new(server: bool, service: &'static str, method: &'static str) -> Self {
        let m = metrics();
        let name: &'static str = Box::leak(format!("{service}/{method}").into_boxed_str());
        let (duration, requests) = if server {
            (&m.grpc_server_duration, &m.grpc_server_requests)
        } else {
            (&m.grpc_client_duration, &m.grpc_client_requests)
        };
        Rpc {
            name,
            service,
            method,
            infra: service.starts_with("grpc."),
            duration: TracedHistogram::new(duration, &[service, method]),
            in_flight: server.then(|| {
                m.grpc_server_in_flight
                    .with_label_values(&[service, method])
            }),
            requests: requests.clone(),
            codes: Default::default(),
        }
    }

    /// Count the call and its latency (with the trace id of a traced call as exemplar).
    fn finish(&self, start: Instant, code: i32, trace_id: Option<TraceId>) {
        self.duration
            .observe_traced(start.elapsed().as_secs_f64(), trace_id);
        let i = if (0..=16).contains(&code) {
            code as usize
        } else {
            2
        };
        self.codes[i]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[self.service, self.method, code_name(i as i32)])
            })
            .inc();
    }
}

/// Distinct (service, method) pairs kept per side; further ones are counted as `other`.
const MAX_RPCS: usize = 256;

struct Rpcs {
    server: bool,
    by_path: RwLock<HashMap<&'static str, &'static Rpc>>,
    other: OnceLock<&'static Rpc>,
}

impl Rpcs {
    fn new(server: bool) -> Self {
        Rpcs {
            server,
            by_path: RwLock::new(HashMap::new()),
            other: OnceLock::new(),
        }
    }

    fn other(&self) -> &'static Rpc {
        self.other
            .get_or_init(|| Box::leak(Box::new(Rpc::new(self.server, "other", "other"))))
    }

    /// The handles of `path`; the set is bounded, so leaking them is too.
    fn get(&self, path: &str) -> &'static Rpc {
        if let Some(r) = self
            .by_path
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return r;
        }
        if labels_of(path).0 == "other" {
            return self.other();
        }
        let mut map = self.by_path.write().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = map.get(path) {
            return r;
        }
        if map.len() >= MAX_RPCS {
            return self.other();
        }
        let path: &'static str = Box::leak(path.to_string().into_boxed_str());
        let (s, m) = labels_of(path);
        let rpc: &'static Rpc = Box::leak(Box::new(Rpc::new(self.server, s, m)));
        map.insert(path, rpc);
        rpc
    }
}

static SERVER_RPCS: LazyLock<Rpcs> = LazyLock::new(|| Rpcs::new(true));
static CLIENT_RPCS: LazyLock<Rpcs> = LazyLock::new(|| Rpcs::new(false));

/// The exported span of a traced request. Attributes: `rpc.system` and `rpc.grpc.status_code`
/// (the semantic conventions' required ones); the span name is `<rpc.service>/<rpc.method>`,
/// so the recommended `rpc.service` and `rpc.method` are left out: each string attribute
/// costs a traced request about 3,000 instructions per span between the layer, the SDK and
/// the OTLP encoder (counted with callgrind, see docs/benchmarks.md).
fn traced_server_span(rpc: &'static Rpc, parent: opentelemetry::Context) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "grpc.server",
        otel.name = %rpc.name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.grpc.status_code = field::Empty,
        otel.status_code = field::Empty,
    );
    let _ = span.set_parent(parent);
    span
}

/// Head sampling: the span of an incoming request (see the module docs), and how it is
/// traced. An untraced request gets no span at all.
fn server_span(rpc: &'static Rpc, headers: &http::HeaderMap) -> (tracing::Span, RequestTrace) {
    let untraced = |ctx: Option<Untraced>| (tracing::Span::none(), RequestTrace::Untraced(ctx));
    let tp = headers.get(&TRACEPARENT);
    let parsed = tp.and_then(parse_traceparent);
    let tracestate = || headers.get(&TRACESTATE).cloned();
    if !export_enabled() {
        let fwd = tp.filter(|_| parsed.is_some()).map(|tp| Untraced {
            traceparent: tp.clone(),
            tracestate: tracestate(),
        });
        return untraced(fwd);
    }
    match parsed {
        Some(p) if p.sampled => (
            traced_server_span(rpc, remote_parent(&p, headers)),
            RequestTrace::Traced,
        ),
        Some(p) => {
            let traceparent = if p.version00 {
                tp.cloned().expect("parsed")
            } else {
                format_traceparent(p.trace_hi, p.trace_lo, p.span, false)
            };
            untraced(Some(Untraced {
                traceparent,
                tracestate: tracestate(),
            }))
        }
        // The caller decided not to trace, and has no context to pass on.
        None if headers.contains_key(&UNTRACED) => untraced(None),
        // A new trace: the second's reservoir, then the SDK's `TraceIdRatioBased` rule on a
        // random id. The SDK sampler records server roots (the decision is made here) and
        // draws the trace id itself.
        None if crate::sampling::samples_new_request() => (
            traced_server_span(rpc, opentelemetry::Context::new()),
            RequestTrace::Traced,
        ),
        None => untraced(None),
    }
}

/// The span of an outgoing call, with the trace context injected into `headers`. The bool:
/// whether it is a traced `grpc.client` span.
fn client_span(rpc: &'static Rpc, headers: &mut http::HeaderMap) -> (tracing::Span, bool) {
    match current_trace() {
        Some(RequestTrace::Untraced(Some(ctx))) => {
            headers.insert(TRACEPARENT.clone(), never_indexed(ctx.traceparent));
            if let Some(ts) = ctx.tracestate {
                headers.insert(TRACESTATE.clone(), never_indexed(ts));
            }
            (tracing::Span::none(), false)
        }
        Some(RequestTrace::Untraced(None)) => {
            if export_enabled() {
                headers.insert(UNTRACED.clone(), http::HeaderValue::from_static("1"));
            }
            (tracing::Span::none(), false)
        }
        _ if export_enabled() => {
            let span = tracing::info_span!(
                "grpc.client",
                otel.name = %rpc.name,
                otel.kind = "client",
                rpc.system = "grpc",
                rpc.grpc.status_code = field::Empty,
            );
            inject(&span.context(), headers);
            (span, true)
        }
        _ => (tracing::Span::none(), false),
    }
}

/// Server side: metrics, and a span continuing the caller's trace when it is sampled.
#[derive(Clone, Copy, Default)]
pub struct ServerLayer;

/// Client side: metrics, a `grpc.client` span when traced, trace context propagation, and the
/// caller's credentials (`authorization`) on every call when it has some.
#[derive(Clone, Default)]
pub struct ClientLayer {
    authorization: Option<http::HeaderValue>,
}

impl ClientLayer {
    /// Send `authorization: Bearer <key>` on every call (marked sensitive: never indexed by
    /// HPACK, never printed by `Debug`).
    pub fn with_key(key: &str) -> Result<Self, http::header::InvalidHeaderValue> {
        let mut v = http::HeaderValue::from_str(&format!("Bearer {key}"))?;
        v.set_sensitive(true);
        Ok(ClientLayer {
            authorization: Some(v),
        })
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcService {
            inner,
            authorization: None,
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcService {
            inner,
            authorization: self.authorization.clone(),
        }
    }
}

/// The service of [`ServerLayer`] (`SERVER = true`) and [`ClientLayer`].
#[derive(Clone)]
pub struct GrpcService<S, const SERVER: bool> {
    inner: S,
    /// The client's `authorization` header (client side only).
    authorization: Option<http::HeaderValue>,
}

pub type ServerService<S> = GrpcService<S, true>;
pub type ClientService<S> = GrpcService<S, false>;

/// Decrements the in-flight gauge when the call ends or is dropped.
struct InFlight(Option<&'static IntGauge>);
impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            g.dec();
        }
    }
}

impl<S, B, RB, const SERVER: bool> Service<http::Request<B>> for GrpcService<S, SERVER>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let rpcs = if SERVER { &SERVER_RPCS } else { &CLIENT_RPCS };
        let rpc = rpcs.get(req.uri().path());
        let (span, traced, request) = if rpc.infra {
            (tracing::Span::none(), false, None)
        } else if SERVER {
            let (span, trace) = server_span(rpc, req.headers());
            let traced = matches!(trace, RequestTrace::Traced);
            (
                span,
                traced,
                Some(RequestCtx {
                    name: rpc.name,
                    trace,
                }),
            )
        } else {
            if let Some(a) = &self.authorization {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, a.clone());
            }
            let (span, traced) = client_span(rpc, req.headers_mut());
            (span, traced, None)
        };
        let in_flight = InFlight(rpc.in_flight.as_ref());
        if let Some(g) = in_flight.0 {
            g.inc();
        }
        // A transport error: the handler failed (server) or the peer is unreachable (client).
        let failed = if SERVER { 2 } else { 14 };
        let recorded = traced.then(|| span.clone());
        let start = Instant::now();
        if SERVER {
            crate::idle_poll::touch();
        }
        let fut = self.inner.call(req);
        let fut = async move {
            let res = fut.await;
            if SERVER {
                crate::idle_poll::touch();
            }
            let mut res = res;
            if SERVER && let Ok(r) = &mut res {
                too_large_is_exhausted(r.headers_mut());
            }
            let code = match &res {
                Ok(r) => response_code(r.headers()),
                Err(_) => failed,
            };
            drop(in_flight);
            rpc.finish(start, code, recorded.as_ref().and_then(span_trace_id));
            if let Some(span) = recorded {
                span.record("rpc.grpc.status_code", code);
                if SERVER && is_server_error(code) {
                    span.record("otel.status_code", "ERROR");
                }
            }
            res
        }
        .instrument(span);
        match request {
            Some(ctx) => Box::pin(crate::context::scope(ctx, fut)),
            None => Box::pin(fut),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            labels_of("/akidb.v1.QueryService/Search"),
            ("akidb.v1.QueryService", "Search")
        );
        assert_eq!(
            labels_of("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(labels_of("/evil/../x"), ("other", "other"));
        assert_eq!(labels_of("/akidb.v1.QueryService/a-b"), ("other", "other"));
    }

    #[test]
    fn handles_are_cached_and_bounded() {
        let a = SERVER_RPCS.get("/akidb.v1.QueryService/Search");
        let b = SERVER_RPCS.get("/akidb.v1.QueryService/Search");
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.name, "akidb.v1.QueryService/Search");
        assert!(!a.infra);
        assert!(SERVER_RPCS.get("/grpc.health.v1.Health/Check").infra);
        let o = SERVER_RPCS.get("/evil/../x");
        assert_eq!((o.service, o.method), ("other", "other"));
        for i in 0..MAX_RPCS + 10 {
            CLIENT_RPCS.get(&format!("/akidb.v1.X/M{i}"));
        }
        let last = CLIENT_RPCS.get("/akidb.v1.X/Overflow");
        assert_eq!(last.name, "other/other");
        a.finish(Instant::now(), 0, None);
        a.finish(Instant::now(), 99, None);
        let m = metrics();
        let ok = m
            .grpc_server_requests
            .with_label_values(&["akidb.v1.QueryService", "Search", "OK"])
            .get();
        let unknown = m
            .grpc_server_requests
            .with_label_values(&["akidb.v1.QueryService", "Search", "UNKNOWN"])
            .get();
        assert!(ok >= 1 && unknown >= 1);
    }
}
