//! The HTTP port of every service: `/metrics` (Prometheus text, or OpenMetrics with
//! exemplars when asked), `/healthz`, and `/tracing` (the trace settings, read and changed at
//! run time), plus any routes a service adds (the aggregator's `/federate`).

use crate::exposition::{Exemplar, Format, MetricType, Sample, parse, parse_value, write_families};
use crate::metrics::{Metrics, metrics};
use crate::sampling::{TraceSettings, TraceSettingsError, change_trace_settings, trace_settings};

/// Every registered metric in OpenMetrics, histogram buckets with the exemplar of their
/// last traced observation (see [`crate::exemplar`]). The text above, re-read and written
/// again: one writer for `/metrics` and `/federate`.
pub fn render_openmetrics(m: &Metrics) -> String {
    let text = String::from_utf8(m.render()).unwrap_or_default();
    let families = parse(&text).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 4096);
    write_families(&mut out, Format::OpenMetrics, &families, |f, s| {
        let bucket = s.name.strip_suffix("_bucket") == Some(f.name.as_str());
        (f.kind == MetricType::Histogram && bucket)
            .then(|| bucket_exemplar(&f.name, s))
            .flatten()
    });
    out
}

/// The exemplar of histogram `family`'s bucket sample `s`, as an OpenMetrics exemplar.
fn bucket_exemplar(family: &str, s: &Sample) -> Option<Exemplar> {
    let le = parse_value(s.label("le")?)?;
    let key = crate::exemplar::series_key(
        family,
        s.labels
            .iter()
            .filter(|(k, _)| k != "le")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let e = crate::exemplar::slots(&key)?.get(le)?;
    Some(Exemplar {
        labels: vec![("trace_id".into(), e.trace_id.to_string())],
        value: e.value,
        timestamp: Some(e.timestamp),
    })
}

/// `PUT /tracing` query parameters.
#[derive(Debug, serde::Deserialize)]
struct TracingChange {
    sample_ratio: Option<String>,
    export: Option<String>,
}

fn json_settings(s: TraceSettings) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        format!("{}\n", serde_json::to_string(&s).expect("plain struct")),
    )
        .into_response()
}

/// `GET /tracing`: the trace settings in force, as JSON.
async fn get_tracing() -> axum::response::Response {
    json_settings(trace_settings())
}

/// `PUT /tracing?sample_ratio=<0..1>&export=on|off`: change head sampling at run time (an
/// incident: trace every request for a while; a benchmark: switch export in the same
/// processes). A refused change changes nothing and says why (400, or 409 without an
/// exporter).
async fn put_tracing(
    axum::extract::Query(q): axum::extract::Query<TracingChange>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match change_trace_settings(q.sample_ratio.as_deref(), q.export.as_deref()) {
        Ok(s) => {
            tracing::info!(
                export = s.export,
                sample_ratio = s.sample_ratio,
                "trace settings changed"
            );
            json_settings(s)
        }
        Err(e) => {
            let code = match e {
                TraceSettingsError::NoExporter => http::StatusCode::CONFLICT,
                _ => http::StatusCode::BAD_REQUEST,
            };
            (code, format!("{e}\n")).into_response()
        }
    }
}

/// Who may use the HTTP port. Default: everyone (a trusted machine).
#[derive(Clone, Default)]
pub struct Access {
    /// The bearer token `/metrics`, `/federate` and `GET /tracing` need (`--metrics-token`).
    pub metrics_token: Option<String>,
    /// Whether a request carries an admin key (`PUT /tracing` needs one when set).
    pub admin: Option<AdminCheck>,
}

/// Whether the headers of a request carry an admin key.
pub type AdminCheck = std::sync::Arc<dyn Fn(&http::HeaderMap) -> bool + Send + Sync>;

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| ".."))
            .field("admin", &self.admin.is_some())
            .finish()
    }
}

/// Largest request body the HTTP port reads (no route takes one; PUT /tracing takes its
/// settings in the query string).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn has_token(headers: &http::HeaderMap, token: &str) -> bool {
    let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, got)) = v.split_once(' ') else {
        return false;
    };
    let (a, b) = (got.trim().as_bytes(), token.as_bytes());
    scheme.eq_ignore_ascii_case("bearer")
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a client of an HTTP port has to send its request headers (and, with TLS, to
/// finish the handshake) before the connection is closed.
pub const HEADER_TIMEOUT: std::time::Duration = crate::tls::HANDSHAKE_TIMEOUT;

/// Serve `extra` routes plus `/metrics`, `/healthz` and `/tracing` on `listener` (over TLS
/// with `tls`) until `shutdown` resolves; `access` says who may. A client that has not sent
/// its request headers within [`HEADER_TIMEOUT`] (or finished a TLS handshake within it) is
/// cut off.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<crate::tls::ServerTls>,
    extra: axum::Router,
    access: Access,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::response::IntoResponse;
    use axum::routing::get;
    let admin = access.admin.clone();
    let put = move |headers: http::HeaderMap, q: axum::extract::Query<TracingChange>| {
        let admin = admin.clone();
        async move {
            if let Some(is_admin) = &admin
                && !is_admin(&headers)
            {
                return (
                    http::StatusCode::FORBIDDEN,
                    "changing the trace settings needs an admin key: send `Authorization: Bearer <admin key>`\n",
                )
                    .into_response();
            }
            put_tracing(q).await
        }
    };
    let protected = extra.route("/tracing", get(get_tracing).put(put)).route(
        "/metrics",
        get(|headers: http::HeaderMap| async move {
            let format = Format::accepted(&headers);
            let body = match format {
                Format::Text => metrics().render(),
                Format::OpenMetrics => render_openmetrics(metrics()).into_bytes(),
            };
            ([(http::header::CONTENT_TYPE, format.content_type())], body)
        }),
    );
    // The metrics token guards everything but /healthz; PUT /tracing also needs an admin
    // key, which is checked by its handler (an admin key is accepted in place of the token).
    let token = access.metrics_token.clone();
    let admin = access.admin.clone();
    let protected = protected.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let token = token.clone();
            let admin = admin.clone();
            async move {
                let ok = match &token {
                    None => true,
                    Some(t) => {
                        has_token(req.headers(), t)
                            || (req.method() == http::Method::PUT
                                && admin.as_ref().is_some_and(|a| a(req.headers())))
                    }
                };
                if ok {
                    next.run(req).await
                } else {
                    (
                        http::StatusCode::UNAUTHORIZED,
                        [(http::header::WWW_AUTHENTICATE, "Bearer")],
                        "this port needs `Authorization: Bearer <metrics token>`\n",
                    )
                        .into_response()
                }
            }
        },
    ));
    let app = protected
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    serve_app(listener, tls, app, shutdown).await
}

/// Serve `app` on `listener` (over TLS with `tls`) until `shutdown` resolves, then give
/// in-flight requests 5 s: every HTTP port of a service (this one, query's REST port). A
/// client that has not sent its request headers within [`HEADER_TIMEOUT`] (or finished a
/// TLS handshake within it) is cut off.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    tls: Option<crate::tls::ServerTls>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let stop = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        // In-flight requests get a moment; idle keep-alive connections are closed at once.
        stop.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    let app = app.into_make_service();
    let mut server = axum_server::Server::from_listener(listener).handle(handle);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    match tls {
        None => server.serve(app).await,
        Some(tls) => {
            let config = tls.rustls().map_err(std::io::Error::other)?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(config),
            )
            .handshake_timeout(HEADER_TIMEOUT);
            server.acceptor(acceptor).serve(app).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::parse_as;
    use crate::metrics::Component;

    /// A client that opens a connection and sends half its headers is cut off after
    /// [`HEADER_TIMEOUT`]; the port keeps serving others meanwhile.
    #[tokio::test]
    async fn a_client_stalling_in_its_headers_is_cut_off() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            None,
            axum::Router::new(),
            Access::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        let t0 = std::time::Instant::now();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Meanwhile a whole request is answered.
        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        ok.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut rest = Vec::new();
        tokio::time::timeout(HEADER_TIMEOUT * 2, slow.read_to_end(&mut rest))
            .await
            .expect("a stalled client is cut off")
            .ok();
        let took = t0.elapsed();
        assert!(
            took >= HEADER_TIMEOUT - std::time::Duration::from_secs(1),
            "{took:?}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[test]
    fn openmetrics_carries_the_trace_id_of_a_traced_observation() {
        let m = Metrics::new(Component::Query);
        let h = crate::exemplar::TracedHistogram::new(
            &m.grpc_server_duration,
            &["akidb.v1.QueryService", "Exemplar"],
        );
        let id = opentelemetry::trace::TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736u128);
        h.observe_traced(0.003, Some(id));
        h.observe_traced(0.004, None);
        h.observe_traced(0.2, None);
        m.grpc_server_requests
            .with_label_values(&["akidb.v1.QueryService", "Exemplar", "OK"])
            .inc();
        let om = render_openmetrics(&m);
        let line = om
            .lines()
            .find(|l| {
                l.starts_with("akidb_grpc_server_request_duration_seconds_bucket{")
                    && l.contains("grpc_method=\"Exemplar\"")
                    && l.contains("le=\"0.005\"")
            })
            .expect("bucket line");
        assert!(
            line.contains(" 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.003 "),
            "{line}"
        );
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE akidb_grpc_server_requests counter\n"));
        // One exemplar only: the untraced observations left none.
        assert_eq!(om.matches("# {trace_id=").count(), 1);
        // The same series and values as the text format.
        let text = parse(&String::from_utf8(m.render()).unwrap()).unwrap();
        let mut back = parse_as(&om, Format::OpenMetrics).unwrap();
        for f in &mut back {
            for s in &mut f.samples {
                s.exemplar = None;
            }
        }
        let stable = |f: &[crate::exposition::MetricFamily]| {
            f.iter()
                .filter(|f| !f.name.starts_with("process_") && f.name != "akidb_uptime_seconds")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(stable(&back), stable(&text));
    }
}
