//! Tower layers for every AkiDB gRPC server and client.
//!
//! [`ServerLayer`]: counts and times every call by service, method and gRPC code, tracks calls
//! in flight, and opens a `grpc.server` span that continues the caller's W3C trace
//! (`traceparent`/`tracestate` from the request metadata).
//!
//! [`ClientLayer`]: the same metrics on the calling side, a `grpc.client` span, and the
//! current trace context injected into the outgoing metadata.

use crate::metrics::metrics;
use futures::future::BoxFuture;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
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

/// Name of a gRPC status code as in the gRPC spec (`OK`, `NOT_FOUND`, ...).
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The gRPC code of a response: `grpc-status` in the headers (a trailers-only response, which
/// is how every error of a unary call is sent), otherwise OK.
fn response_code(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);
impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);
impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Server side: metrics, and a span continuing the caller's trace.
#[derive(Clone, Copy, Default)]
pub struct ServerLayer;

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerService { inner }
    }
}

#[derive(Clone)]
pub struct ServerService<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for ServerService<S>
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

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (svc, method) = labels_of(req.uri().path());
        let (svc, method) = (svc.to_string(), method.to_string());
        let is_health = svc.starts_with("grpc.");
        let span = if is_health {
            tracing::Span::none()
        } else {
            let parent =
                global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers())));
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = format!("{svc}/{method}"),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %svc,
                rpc.method = %method,
                rpc.grpc.status_code = field::Empty,
                otel.status_code = field::Empty,
            );
            let _ = span.set_parent(parent);
            span
        };
        let m = metrics();
        let in_flight = m.grpc_server_in_flight.with_label_values(&[&svc, &method]);
        in_flight.inc();
        let start = Instant::now();
        let fut = self.inner.call(req);
        let span2 = span.clone();
        Box::pin(
            async move {
                let res = fut.await;
                let code = match &res {
                    Ok(r) => response_code(r.headers()),
                    Err(_) => 2,
                };
                in_flight.dec();
                m.grpc_server_duration
                    .with_label_values(&[&svc, &method])
                    .observe(start.elapsed().as_secs_f64());
                m.grpc_server_requests
                    .with_label_values(&[&svc, &method, code_name(code)])
                    .inc();
                span2.record("rpc.grpc.status_code", code);
                if is_server_error(code) {
                    span2.record("otel.status_code", "ERROR");
                }
                res
            }
            .instrument(span),
        )
    }
}

/// Codes that count against availability: the server's fault, not the caller's.
pub fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 13 | 14 | 15)
}

/// Client side: metrics, a `grpc.client` span, and trace context injection.
#[derive(Clone, Copy, Default)]
pub struct ClientLayer;

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientService { inner }
    }
}

#[derive(Clone)]
pub struct ClientService<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for ClientService<S>
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
        let (svc, method) = labels_of(req.uri().path());
        let (svc, method) = (svc.to_string(), method.to_string());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = format!("{svc}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %svc,
            rpc.method = %method,
            rpc.grpc.status_code = field::Empty,
        );
        let cx = span.context();
        global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(req.headers_mut()))
        });
        let start = Instant::now();
        let fut = self.inner.call(req);
        let span2 = span.clone();
        Box::pin(
            async move {
                let res = fut.await;
                let code = match &res {
                    Ok(r) => response_code(r.headers()),
                    Err(_) => 14,
                };
                let m = metrics();
                m.grpc_client_duration
                    .with_label_values(&[&svc, &method])
                    .observe(start.elapsed().as_secs_f64());
                m.grpc_client_requests
                    .with_label_values(&[&svc, &method, code_name(code)])
                    .inc();
                span2.record("rpc.grpc.status_code", code);
                res
            }
            .instrument(span),
        )
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
}
