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
//! - no (valid) `traceparent` but [`UNTRACED_HEADER`] (an AkiDB service upstream decided not
//!   to trace): not traced, and outgoing calls carry the header on;
//! - neither: the configured ratio decides (the SDK's `TraceIdRatioBased` rule on a random
//!   id); not sampled: as above, outgoing calls carry [`UNTRACED_HEADER`];
//! - trace export off: no span for OpenTelemetry; a caller's `traceparent` is forwarded as is.
//!
//! A request that is not traced gets no span at all: how it is traced (and its method) is kept
//! in a tokio task-local around its handler, where [`ClientLayer`] finds what to propagate and
//! [`step_span`] finds that costly steps need no span; [`RequestScope`] carries both to
//! threads of the blocking pool. Log lines inside such a request name its method
//! (`rpc=<method>`, see `init`). A span per request cost every request about 8,000
//! instructions (creation, entering and leaving it on every poll, closing it), more than the
//! logging it served.
//!
//! [`ClientLayer`]: the same metrics on the calling side, and the trace context injected into
//! the outgoing metadata: the `grpc.client` span's when the current request is traced, the
//! untraced request's context or [`UNTRACED_HEADER`] otherwise. `traceparent` is parsed and
//! written here (W3C Trace Context), not through the SDK's text-map propagator, which
//! allocates a `String` per field and re-parses what the layer has parsed already.
//!
//! Logs: the fields that only OpenTelemetry reads (`otel.*` but `otel.name`, `rpc.*`) are not
//! formatted into log lines (see [`crate::init`]), so a traced request's span costs the log
//! layer what an untraced one does.
//!
//! Metric handles are cached per (service, method) and per code: no label lookup, `String` or
//! `format!` per request.

use crate::exemplar::TracedHistogram;
use crate::metrics::metrics;
use futures::future::BoxFuture;
use opentelemetry::trace::{TraceContextExt as _, TraceId};
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Codes that count against availability: the server's fault, not the caller's.
pub fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 13 | 14 | 15)
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

// ---------------------------------------------------------------------------------------------
// Trace settings (set by `init`, changed at run time through `PUT /tracing`)

/// An exporting OpenTelemetry layer is installed (`--otlp-endpoint` was given).
static EXPORTER: AtomicBool = AtomicBool::new(false);
/// Requests are traced (head sampling on); off: no trace context is drawn, a caller's
/// `traceparent` is only forwarded.
static EXPORT: AtomicBool = AtomicBool::new(false);
/// `(ratio * 2^63) as u64`, or `u64::MAX` for "always": the bound of `TraceIdRatioBased`.
static RATIO_BOUND: AtomicU64 = AtomicU64::new(0);
/// The ratio itself (`f64` bits), for reporting.
static RATIO_BITS: AtomicU64 = AtomicU64::new(0);

/// The trace settings in force: `GET /tracing` on every service's metrics port.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TraceSettings {
    /// Whether trace export was set up at start (`--otlp-endpoint`); only then can `export`
    /// be on.
    pub exporter: bool,
    /// Whether requests are traced now.
    pub export: bool,
    /// Share of new traces sampled (requests arriving without a `traceparent`, and
    /// background work).
    pub sample_ratio: f64,
}

/// Why a change of the trace settings was refused (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceSettingsError {
    #[error("sample ratio must be a number from 0 to 1, got {0}")]
    BadRatio(String),
    #[error("export must be `on` or `off`, got {0:?}")]
    BadExport(String),
    #[error(
        "trace export is not set up in this process: restart it with --otlp-endpoint (or AKIDB_OTLP_ENDPOINT) to export traces"
    )]
    NoExporter,
}

/// Set by [`crate::init`]: whether the exporting layer is installed, and the starting ratio.
pub(crate) fn install_tracing(exporter: bool, ratio: f64) {
    set_ratio(ratio);
    EXPORTER.store(exporter, Ordering::Relaxed);
    EXPORT.store(exporter, Ordering::Relaxed);
}

fn set_ratio(ratio: f64) {
    let ratio = ratio.clamp(0.0, 1.0);
    let bound = if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio * (1u64 << 63) as f64) as u64
    };
    RATIO_BOUND.store(bound, Ordering::Relaxed);
    RATIO_BITS.store(ratio.to_bits(), Ordering::Relaxed);
}

/// The trace settings in force.
pub fn trace_settings() -> TraceSettings {
    TraceSettings {
        exporter: EXPORTER.load(Ordering::Relaxed),
        export: export_enabled(),
        sample_ratio: f64::from_bits(RATIO_BITS.load(Ordering::Relaxed)),
    }
}

/// Change the trace settings at run time (`PUT /tracing?sample_ratio=0.01&export=on`):
/// both values are checked before either is applied. Requests already in flight keep their
/// decision; the next ones follow the new settings.
pub fn change_trace_settings(
    sample_ratio: Option<&str>,
    export: Option<&str>,
) -> Result<TraceSettings, TraceSettingsError> {
    let ratio = match sample_ratio {
        None => None,
        Some(r) => match r.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Some(v),
            _ => return Err(TraceSettingsError::BadRatio(r.to_string())),
        },
    };
    let export = match export.map(str::trim) {
        None => None,
        Some("on" | "true" | "1") => Some(true),
        Some("off" | "false" | "0") => Some(false),
        Some(other) => return Err(TraceSettingsError::BadExport(other.to_string())),
    };
    if export == Some(true) && !EXPORTER.load(Ordering::Relaxed) {
        return Err(TraceSettingsError::NoExporter);
    }
    if let Some(r) = ratio {
        set_ratio(r);
    }
    if let Some(e) = export {
        EXPORT.store(e, Ordering::Relaxed);
    }
    Ok(trace_settings())
}

fn export_enabled() -> bool {
    EXPORT.load(Ordering::Relaxed)
}

/// Whether a new trace (no sampled parent) whose id's low 8 bytes are `low` is sampled:
/// export on and the ratio rule. The SDK's root sampler asks this too, so background work
/// follows run-time changes as requests do.
pub(crate) fn samples_new_trace(low: u64) -> bool {
    export_enabled() && ratio_samples(low)
}

/// The SDK's `TraceIdRatioBased` decision for a trace id whose low 8 bytes are `low`.
fn ratio_samples(low: u64) -> bool {
    let bound = RATIO_BOUND.load(Ordering::Relaxed);
    bound == u64::MAX || (low >> 1) < bound
}

/// Random non-zero u64 (trace and span ids): splitmix64 over a per-thread random seed.
fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::BuildHasher;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(0u64));
    }
    STATE.with(|s| {
        loop {
            let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// W3C traceparent

/// The parts of a valid `traceparent` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TraceParent {
    version00: bool,
    trace_hi: u64,
    trace_lo: u64,
    span: u64,
    sampled: bool,
}

fn hex_u64(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// Parse `traceparent` as the W3C Trace Context spec says (version `00`, or a later version
/// read as `00`; lowercase hex; all-zero ids and version `ff` are invalid).
fn parse_traceparent(v: &http::HeaderValue) -> Option<TraceParent> {
    let b = v.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex_u64(&b[0..2])?;
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_hi = hex_u64(&b[3..19])?;
    let trace_lo = hex_u64(&b[19..35])?;
    let span = hex_u64(&b[36..52])?;
    let flags = hex_u64(&b[53..55])?;
    if (trace_hi == 0 && trace_lo == 0) || span == 0 {
        return None;
    }
    Some(TraceParent {
        version00: version == 0,
        trace_hi,
        trace_lo,
        span,
        sampled: flags & 1 == 1,
    })
}

/// `00-<trace>-<span>-<flags>`.
fn format_traceparent(trace_hi: u64, trace_lo: u64, span: u64, sampled: bool) -> http::HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 55];
    b[..3].copy_from_slice(b"00-");
    let put = |b: &mut [u8], v: u64| {
        for (i, out) in b.iter_mut().enumerate() {
            *out = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
    };
    put(&mut b[3..19], trace_hi);
    put(&mut b[19..35], trace_lo);
    b[35] = b'-';
    put(&mut b[36..52], span);
    b[52] = b'-';
    b[53..55].copy_from_slice(if sampled { b"01" } else { b"00" });
    http::HeaderValue::from_bytes(&b).expect("ASCII")
}

/// What an untraced request forwards (kept in its [`RequestCtx`]): the caller's trace
/// context, not sampled.
#[derive(Clone)]
struct Untraced {
    traceparent: http::HeaderValue,
    tracestate: Option<http::HeaderValue>,
}

/// Sent by a service that decided not to trace a request that came without trace context, so
/// that the services it calls do not start traces of their own for it. A constant: HTTP/2
/// sends it as one byte (an HPACK table index) after the first call on a connection, where a
/// fresh `traceparent` would cost 55 bytes and its Huffman coding and decoding on every call.
pub const UNTRACED_HEADER: &str = "akidb-untraced";

// Header names parsed once (a `&str` name is parsed and validated on every use).
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
static UNTRACED: http::HeaderName = http::HeaderName::from_static(UNTRACED_HEADER);

/// `v` marked sensitive, which HTTP/2 sends as a literal "never indexed": trace context
/// differs on every call, so letting HPACK index it would only cycle the connection's header
/// table and push out the entries every call reuses (path, content-type, te, ...), making
/// each request's headers larger and costlier to encode and decode on both ends.
fn never_indexed(mut v: http::HeaderValue) -> http::HeaderValue {
    v.set_sensitive(true);
    v
}

/// The remote parent of a sampled caller: its `traceparent` (parsed already) and `tracestate`.
fn remote_parent(p: &TraceParent, headers: &http::HeaderMap) -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    let state = headers
        .get(&TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceState>().ok())
        .unwrap_or_default();
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(((p.trace_hi as u128) << 64) | p.trace_lo as u128),
        SpanId::from(p.span),
        TraceFlags::SAMPLED,
        true,
        state,
    ))
}

/// `traceparent` (and `tracestate`, when not empty) of the span context `cx` into `headers`.
fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    let trace = u128::from_be_bytes(sc.trace_id().to_bytes());
    headers.insert(
        TRACEPARENT.clone(),
        never_indexed(format_traceparent(
            (trace >> 64) as u64,
            trace as u64,
            u64::from_be_bytes(sc.span_id().to_bytes()),
            sc.is_sampled(),
        )),
    );
    let state = sc.trace_state().header();
    if !state.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&state)
    {
        headers.insert(TRACESTATE.clone(), never_indexed(v));
    }
}

// ---------------------------------------------------------------------------------------------
// Cached metric handles per (service, method)

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

// ---------------------------------------------------------------------------------------------
// Spans

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

/// How the request a task serves is traced, and its method (for log lines).
#[derive(Clone)]
struct RequestCtx {
    rpc: &'static Rpc,
    trace: RequestTrace,
}

#[derive(Clone)]
enum RequestTrace {
    Traced,
    /// Not traced, with the caller's context to forward, if any.
    Untraced(Option<Untraced>),
}

tokio::task_local! {
    /// Set by the server layer around the handler's future: outgoing calls and costly steps
    /// of the request read it; [`RequestScope`] carries it to other threads.
    static REQUEST: RequestCtx;
}

/// The current span and request of this task, carried to a thread of the blocking pool or a
/// scoped thread (`RequestScope::current()` here, `.in_scope(f)` there): the work done there
/// is traced, or not, as the request is.
#[derive(Clone)]
pub struct RequestScope {
    span: tracing::Span,
    request: Option<RequestCtx>,
}

impl RequestScope {
    pub fn current() -> Self {
        RequestScope {
            span: tracing::Span::current(),
            request: REQUEST.try_with(RequestCtx::clone).ok(),
        }
    }

    /// Run `f` in the carried span and request.
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let RequestScope { span, request } = self;
        match request {
            Some(r) => REQUEST.sync_scope(r, || span.in_scope(f)),
            None => span.in_scope(f),
        }
    }
}

/// Run `f` as inside an untraced request for `path` (tests of the log layer).
#[cfg(test)]
pub(crate) fn in_untraced_request<R>(path: &str, f: impl FnOnce() -> R) -> R {
    let ctx = RequestCtx {
        rpc: SERVER_RPCS.get(path),
        trace: RequestTrace::Untraced(None),
    };
    REQUEST.sync_scope(ctx, f)
}

/// The method of the untraced request this task or thread serves: log lines inside it say
/// `rpc=<name>` (a traced request's log lines show its span instead).
pub(crate) fn untraced_request_name() -> Option<&'static str> {
    REQUEST
        .try_with(|r| matches!(r.trace, RequestTrace::Untraced(_)).then_some(r.rpc.name))
        .ok()
        .flatten()
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
        // A new trace: the SDK's `TraceIdRatioBased` rule on a random id. The SDK sampler
        // records server roots (the decision is made here) and draws the trace id itself.
        None if ratio_samples(random_u64()) => (
            traced_server_span(rpc, opentelemetry::Context::new()),
            RequestTrace::Traced,
        ),
        None => untraced(None),
    }
}

/// The trace id of `span` when it is sampled (exported).
pub fn span_trace_id(span: &tracing::Span) -> Option<TraceId> {
    let cx = span.context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id())
}

/// The trace id of the current span when it is sampled: a traced request's (its span or a
/// step span inside it) or sampled background work's. `None` inside an untraced request
/// without asking the span (it has none). Exemplars.
pub fn current_trace_id() -> Option<TraceId> {
    match REQUEST.try_with(|r| matches!(r.trace, RequestTrace::Traced)) {
        Ok(false) => None,
        _ => span_trace_id(&tracing::Span::current()),
    }
}

/// The trace of the request the current task or thread serves; `None` outside a request
/// (background work).
fn current_trace() -> Option<RequestTrace> {
    REQUEST.try_with(|r| r.trace.clone()).ok()
}

/// The span of a costly step (`segment.search`, `wal.commit`, ...): `make()` unless the
/// current request is not traced, where the span would be skipped by the exporter anyway and
/// only cost its bookkeeping (`Span::none()` then). Work outside a request (background) gets
/// its span, a trace root sampled at the ratio.
pub fn step_span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    let untraced = REQUEST
        .try_with(|r| matches!(r.trace, RequestTrace::Untraced(_)))
        .unwrap_or(false);
    if untraced {
        tracing::Span::none()
    } else {
        make()
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

// ---------------------------------------------------------------------------------------------
// The layers

/// Server side: metrics, and a span continuing the caller's trace when it is sampled.
#[derive(Clone, Copy, Default)]
pub struct ServerLayer;

/// Client side: metrics, a `grpc.client` span when traced, and trace context propagation.
#[derive(Clone, Copy, Default)]
pub struct ClientLayer;

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcService { inner }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcService { inner }
    }
}

/// The service of [`ServerLayer`] (`SERVER = true`) and [`ClientLayer`].
#[derive(Clone)]
pub struct GrpcService<S, const SERVER: bool> {
    inner: S,
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
            (span, traced, Some(RequestCtx { rpc, trace }))
        } else {
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
            Some(trace) => Box::pin(REQUEST.scope(trace, fut)),
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

    #[test]
    fn traceparent_round_trip() {
        let v = http::HeaderValue::from_static(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let p = parse_traceparent(&v).unwrap();
        assert!(p.sampled && p.version00);
        assert_eq!(p.trace_hi, 0x4bf92f3577b34da6);
        assert_eq!(p.trace_lo, 0xa3ce929d0e0e4736);
        assert_eq!(p.span, 0x00f067aa0ba902b7);
        assert_eq!(format_traceparent(p.trace_hi, p.trace_lo, p.span, true), v);
        let unsampled = format_traceparent(p.trace_hi, p.trace_lo, p.span, false);
        assert!(!parse_traceparent(&unsampled).unwrap().sampled);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(
                parse_traceparent(&http::HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
        // A later version is read as 00 when its extra fields are dash-separated.
        let v1 = http::HeaderValue::from_static(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra",
        );
        let p = parse_traceparent(&v1).unwrap();
        assert!(!p.sampled && !p.version00);
    }

    /// The trace settings are process-wide: tests that change them take turns.
    static SETTINGS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn trace_settings_are_checked_before_they_change() {
        let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
        let settings = |exporter, export, sample_ratio| TraceSettings {
            exporter,
            export,
            sample_ratio,
        };
        install_tracing(false, 0.1);
        assert_eq!(
            change_trace_settings(Some("1"), Some("on")),
            Err(TraceSettingsError::NoExporter)
        );
        assert_eq!(trace_settings(), settings(false, false, 0.1));
        assert!(!samples_new_trace(0), "no exporter: nothing sampled");

        install_tracing(true, 0.1);
        for bad in ["1.5", "-0.1", "NaN", "inf", "x", ""] {
            assert_eq!(
                change_trace_settings(Some(bad), Some("off")),
                Err(TraceSettingsError::BadRatio(bad.into()))
            );
        }
        assert!(matches!(
            change_trace_settings(Some("0.5"), Some("maybe")),
            Err(TraceSettingsError::BadExport(_))
        ));
        assert_eq!(
            trace_settings(),
            settings(true, true, 0.1),
            "refused: unchanged"
        );

        assert_eq!(
            change_trace_settings(Some("1"), None),
            Ok(settings(true, true, 1.0))
        );
        assert!(samples_new_trace(u64::MAX) && samples_new_trace(0));
        assert_eq!(
            change_trace_settings(None, Some("off")),
            Ok(settings(true, false, 1.0))
        );
        assert!(!samples_new_trace(0), "export off: nothing sampled");
        assert_eq!(
            change_trace_settings(Some("0"), Some("on")),
            Ok(settings(true, true, 0.0))
        );
        assert!(!samples_new_trace(0));
        install_tracing(false, 0.1);
    }

    #[test]
    fn ratio_follows_trace_id_ratio_based() {
        let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
        set_ratio(0.0);
        assert!(!ratio_samples(0));
        set_ratio(1.0);
        assert!(ratio_samples(u64::MAX));
        set_ratio(0.5);
        // the SDK: (low >> 1) < ratio * 2^63
        assert!(ratio_samples(((1u64 << 62) - 1) << 1));
        assert!(!ratio_samples((1u64 << 62) << 1));
        assert!(!ratio_samples(u64::MAX));
        let n = (0..20_000).filter(|_| ratio_samples(random_u64())).count();
        assert!((9_000..11_000).contains(&n), "{n}");
        set_ratio(0.1);
    }
}
