//! The REST/JSON port (`--rest-addr`): every route of [`akidb_proto::rest::routes`] (each
//! public method's `google.api.http` option) turned into its gRPC call and back.
//!
//! A read, DDL, admin or telemetry call runs in this process through the same layers as the
//! gRPC port ([`akidb_instrumentation::lifecycle::Service::local`]: counted, traced and let in
//! as a gRPC call is); a write goes to ingest as the caller sent it (its `authorization` and
//! `traceparent`), where ingest's layers do the same. So validation, limits, keys, metrics
//! and traces are the gRPC ones; what is REST's own: the JSON (a body that does not fit the
//! method's request is INVALID_ARGUMENT before any call, and counted as one), the body limit
//! (`--rest-max-body-bytes`), the HTTP status of an error ([`akidb_proto::rest::http_status`],
//! with a JSON body), and `/openapi.json` ([`akidb_proto::openapi`]).
//!
//! Streams: a snapshot download's body is the archive (`response_body: "data"`), with the
//! SHA-256 of `end` as the trailer `akidb-sha256`; a restore's body is the archive, its
//! `start` from the query parameters.

use akidb_auth::layer::Auth;
use akidb_instrumentation::lifecycle::Local;
use akidb_proto::rest::{self as api, Body, Route};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut, Bytes};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Default of `--rest-max-body-bytes`: a larger JSON body is refused (413) before it is read.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Headers of a REST request passed on to the gRPC call: who it is and its trace.
const FORWARDED: &[&str] = &[
    "authorization",
    "traceparent",
    "tracestate",
    "akidb-untraced",
];

/// What the routes call.
#[derive(Clone)]
pub struct Rest {
    /// Largest JSON body read (`--rest-max-body-bytes`); an upload's is not bounded here.
    pub max_body: usize,
    /// This process's services (query, collections, admin, telemetry), behind their layers.
    pub local: Local,
    /// Ingest, for the writes: a plain channel (the caller's headers are the call's).
    pub ingest: tonic::transport::Channel,
    /// Who the gRPC layer lets in: asked before a body is read.
    pub auth: Auth,
}

/// The REST router: every route, `/openapi.json`, and JSON errors for unknown paths and
/// methods.
pub fn router(rest: Rest) -> axum::Router {
    use axum::routing::{MethodFilter, MethodRouter};
    let rest = Arc::new(rest);
    let mut by_path: std::collections::BTreeMap<String, MethodRouter<Arc<Rest>>> =
        Default::default();
    for route in api::routes() {
        let filter = MethodFilter::try_from(route.verb.clone())
            .expect("a google.api.http verb is an HTTP method axum routes");
        let handler = move |state: State<Arc<Rest>>,
                            uri: http::Uri,
                            query: RawQuery,
                            headers: HeaderMap,
                            body: axum::body::Body| {
            call(state, route, uri, query, headers, body)
        };
        let path = positional(&route.path);
        let m = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, m.on(filter, handler));
    }
    let openapi = Bytes::from(
        serde_json::to_vec_pretty(&akidb_proto::openapi::document())
            .expect("the OpenAPI document serializes"),
    );
    let mut app = axum::Router::new().route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = openapi.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], doc) }
        }),
    );
    for (path, m) in by_path {
        app = app.route(&path, m);
    }
    app.fallback(|method: http::Method, uri: http::Uri| async move {
        error(Status::not_found(format!(
            "no route {method} {}: the routes are in /openapi.json",
            uri.path()
        )))
    })
    // A known path with another verb: 405, named as gRPC names a method it does not have.
    .method_not_allowed_fallback(|method: http::Method, uri: http::Uri| async move {
        let message = format!(
            "{} does not take {method}: the routes are in /openapi.json",
            uri.path()
        );
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(http::header::CONTENT_TYPE, "application/json")],
            api::error_json(Code::Unimplemented, &message),
        )
            .into_response()
    })
    .with_state(rest)
}

/// `template` with its `{field}` segments named by position (`{p0}`, `{p1}`): the router wants
/// one name per position across routes, and the proto's differ (`{name}`, `{collection}`);
/// [`path_fields`] reads the values by the template.
fn positional(template: &str) -> String {
    let mut i = 0;
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                i += 1;
                format!("{{p{}}}", i - 1)
            } else {
                s.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An error answer: the HTTP status of its code and `{"code": .., "message": ..}`.
fn error(s: Status) -> Response {
    let mut r = (
        api::http_status(s.code()),
        [(http::header::CONTENT_TYPE, "application/json")],
        api::error_json(s.code(), s.message()),
    )
        .into_response();
    if s.code() == Code::ResourceExhausted
        && let Some(ms) = s.metadata().get("retry-after-ms")
        && let Some(secs) = ms
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ms| ms.div_ceil(1000).max(1))
    {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

async fn call(
    State(rest): State<Arc<Rest>>,
    route: &'static Route,
    uri: http::Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let start = Instant::now();
    let path = path_fields(route, uri.path());
    let refused = |s: Status| {
        akidb_instrumentation::layers::count_refused(&route.grpc_path, start, s.code() as i32);
        error(s)
    };
    // A caller the gRPC layer will refuse gets that answer, and its body is never read.
    let permitted = rest.auth.permits(&route.grpc_path, &headers);
    let grpc_path: http::uri::PathAndQuery = route
        .grpc_path
        .parse()
        .expect("a method's gRPC path is a valid URI path");
    // The servers' own limits apply; the client here adds none.
    let mut grpc = if route.service == "akidb.v1.IngestService" {
        Target::Ingest(
            tonic::client::Grpc::new(rest.ingest.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    } else {
        Target::Local(
            tonic::client::Grpc::new(rest.local.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    };
    // A channel takes a call only once it said it is ready.
    let ready = match &mut grpc {
        Target::Local(g) => g.ready().await.map_err(|e| match e {}),
        Target::Ingest(g) => g
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("ingest: {e}"))),
    };
    if let Err(s) = ready {
        return error(s);
    }
    match &route.body {
        Body::Raw(field) => {
            let first = match permitted {
                true => match api::request(route, &path, query.as_deref(), b"") {
                    Ok(m) => Bytes::from(m),
                    Err(s) => return refused(s),
                },
                false => Bytes::new(),
            };
            let input = route.method.input();
            let field = field.clone();
            // A body cut off ends the stream: the restore then refuses a truncated archive.
            let data = body
                .into_data_stream()
                .take_while(|c| futures::future::ready(c.is_ok()))
                .filter_map(move |c| {
                    let m = c
                        .ok()
                        .map(|c| Bytes::from(api::bytes_message(&input, &field, c)));
                    futures::future::ready(m)
                });
            let messages = futures::stream::once(async move { first }).chain(data);
            let req = grpc_request(messages, &headers);
            let res = match &mut grpc {
                Target::Local(g) => g.client_streaming(req, grpc_path, Raw).await,
                Target::Ingest(g) => g.client_streaming(req, grpc_path, Raw).await,
            };
            json_answer(route, res.map(|r| r.into_inner()))
        }
        Body::Json | Body::None => {
            let message = match permitted {
                true => {
                    let bytes = match axum::body::to_bytes(body, rest.max_body).await {
                        Ok(b) => b,
                        Err(e) => return body_error(route, start, e),
                    };
                    match api::request(route, &path, query.as_deref(), &bytes) {
                        Ok(m) => Bytes::from(m),
                        Err(s) => return refused(s),
                    }
                }
                false => Bytes::new(),
            };
            let req = grpc_request(message, &headers);
            if let Some(field) = &route.response_body {
                let res = match &mut grpc {
                    Target::Local(g) => g.server_streaming(req, grpc_path, Raw).await,
                    Target::Ingest(g) => g.server_streaming(req, grpc_path, Raw).await,
                };
                return match res {
                    Ok(r) => stream_answer(route, field, r.into_inner()).await,
                    Err(s) => error(s),
                };
            }
            let res = match &mut grpc {
                Target::Local(g) => g.unary(req, grpc_path, Raw).await,
                Target::Ingest(g) => g.unary(req, grpc_path, Raw).await,
            };
            json_answer(route, res.map(|r| r.into_inner()))
        }
    }
}

/// A body that could not be read: over the limit (413), or cut off.
fn body_error(route: &Route, start: Instant, e: axum::Error) -> Response {
    let too_large =
        std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
    let code = if too_large {
        Code::ResourceExhausted
    } else {
        Code::InvalidArgument
    };
    akidb_instrumentation::layers::count_refused(&route.grpc_path, start, code as i32);
    if too_large {
        let mut r = error(Status::resource_exhausted(
            "the body is larger than the REST port takes (`--rest-max-body-bytes`): send fewer points a request, or use gRPC",
        ));
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        r
    } else {
        error(Status::invalid_argument(format!(
            "the body could not be read: {e}"
        )))
    }
}

enum Target {
    Local(tonic::client::Grpc<Local>),
    Ingest(tonic::client::Grpc<tonic::transport::Channel>),
}

/// A gRPC request of `message` with the REST request's forwarded headers.
fn grpc_request<M>(message: M, headers: &HeaderMap) -> tonic::Request<M> {
    let mut req = tonic::Request::new(message);
    for name in FORWARDED {
        if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok())
            && let Ok(v) = v.parse::<tonic::metadata::AsciiMetadataValue>()
        {
            req.metadata_mut().insert(*name, v);
        }
    }
    req
}

fn json_answer(route: &Route, res: Result<Bytes, Status>) -> Response {
    match res.and_then(|b| api::response(&route.method.output(), &b)) {
        Ok(json) => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(s) => error(s),
    }
}

/// A server stream whose messages' bytes field `field` is the body; the first message is
/// waited for, so that a refusal is an HTTP error. The `end` message's `sha256` (when the
/// stream has one) becomes the trailer `akidb-sha256`.
async fn stream_answer(
    route: &'static Route,
    field: &str,
    mut stream: tonic::Streaming<Bytes>,
) -> Response {
    let output = route.method.output();
    let first = match stream.message().await {
        Ok(m) => m,
        Err(s) => return error(s),
    };
    let field = field.to_string();
    let frames = futures::stream::iter(first.map(Ok::<Bytes, Status>))
        .chain(stream)
        .map(
            move |m| -> Result<Option<http_body::Frame<Bytes>>, Status> {
                let m = m?;
                if let Some(data) = api::bytes_field(&output, &m, &field)? {
                    return Ok(Some(http_body::Frame::data(data)));
                }
                Ok(archive_sha256(&output, &m).and_then(|sha| {
                    let mut t = HeaderMap::new();
                    t.insert("akidb-sha256", HeaderValue::from_str(&sha).ok()?);
                    Some(http_body::Frame::trailers(t))
                }))
            },
        )
        .filter_map(|f| async move {
            match f {
                Ok(Some(frame)) => Some(Ok::<_, Status>(frame)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        });
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/octet-stream")],
        axum::body::Body::new(http_body_util::StreamBody::new(frames)),
    )
        .into_response()
}

/// The SHA-256 of a snapshot download's `end` message (the one stream with a trailer).
fn archive_sha256(output: &prost_reflect::MessageDescriptor, m: &[u8]) -> Option<String> {
    use akidb_proto::v1::snapshot_chunk::Part;
    if output.full_name() != "akidb.v1.SnapshotChunk" {
        return None;
    }
    match prost::Message::decode(m).ok() {
        Some(akidb_proto::v1::SnapshotChunk {
            part: Some(Part::End(end)),
        }) => Some(end.sha256),
        _ => None,
    }
}

/// The values of `route`'s path fields in `path` (which axum matched to its template),
/// percent-decoded.
fn path_fields(route: &Route, path: &str) -> Vec<(String, String)> {
    route
        .path
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, v)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?;
            let value = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            Some((name.to_string(), value))
        })
        .collect()
}

/// Messages as their encoded bytes: the REST port transcodes JSON itself.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
