//! One call that sets up logs, traces and metrics for a service.

use crate::metrics::{Component, init_metrics};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter, SpanProcessor,
};
use std::time::Duration;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging and tracing settings shared by every service (flags and environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log filter, `tracing` EnvFilter syntax (e.g. `info,akidb_storage=debug`).
    #[arg(long, env = "AKIDB_LOG", default_value = "info")]
    pub log: String,
    /// Log line format.
    #[arg(long, env = "AKIDB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for traces (e.g. http://127.0.0.1:4317); unset: no trace export.
    #[arg(long, env = "AKIDB_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces sampled, decided when a request arrives without a `traceparent`
    /// (parent-based: a caller's sampled or not-sampled decision is always followed).
    #[arg(long, env = "AKIDB_TRACE_SAMPLE_RATIO", default_value_t = 0.1)]
    pub trace_sample_ratio: f64,
    /// Keep a core awake this long after each request (microseconds; 0: off): a spinner
    /// thread at the lowest priority, so a lone client does not pay for waking a halted
    /// core, while any real work runs first. See `idle_poll.rs`.
    #[arg(long, env = "AKIDB_IDLE_POLL_US", default_value_t = 1000)]
    pub idle_poll_us: u64,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            log: "info".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            trace_sample_ratio: 0.1,
            idle_poll_us: 0,
        }
    }
}

/// Flushes and stops trace export when dropped or shut down.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Export the spans ended so far (bounded by the exporter timeout) and keep exporting.
    pub async fn flush(&self) {
        if let Some(p) = self.provider.clone() {
            let _ = tokio::task::spawn_blocking(move || p.force_flush()).await;
        }
    }

    /// Flush pending spans (bounded by the exporter timeout) without blocking async threads.
    pub async fn shutdown(mut self) {
        if let Some(p) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = p.force_flush();
                let _ = p.shutdown();
            })
            .await;
        }
    }
}

/// Set up logs, metrics for `component` and (when an endpoint is set) OTLP trace export.
/// Must be called inside a tokio runtime. Export never blocks a request: spans go through a
/// bounded batch queue and are dropped when the collector is away.
pub fn init(component: Component, args: &TelemetryArgs) -> anyhow::Result<TelemetryGuard> {
    init_metrics(component);
    let filter = || EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and pipes get plain text (and the escape codes
    // are not formatted into every span's fields).
    let fmt_layer = log_layer(
        args.log_format,
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
        std::io::stdout,
    );
    let service_name = format!("akidb-{}", component.as_str());
    let mut provider = None;
    let otel_layer = match &args.otlp_endpoint {
        Some(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(Duration::from_secs(3))
                .build()?;
            let p = SdkTracerProvider::builder()
                .with_span_processor(CountEnded(
                    BatchSpanProcessor::builder(CountExported(exporter)).build(),
                ))
                .with_sampler(Sampler::ParentBased(Box::new(RequestRoots)))
                .with_resource(
                    Resource::builder()
                        .with_service_name(service_name.clone())
                        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                        .build(),
                )
                .build();
            global::set_tracer_provider(p.clone());
            let tracer = p.tracer(service_name.clone());
            provider = Some(p);
            // Spans only from AkiDB code: never the exporter's own transport, nor the light
            // span of an untraced request (costly steps under it make no span at all, see
            // `grpc::step_span`, so nothing of an untraced request reaches this layer). A
            // static filter, decided once per callsite: an EnvFilter would look up every span
            // on every enter and exit.
            let otel_filter = Targets::new().with_default(LevelFilter::INFO).with_targets(
                ["h2", "hyper", "tonic", "tower", "opentelemetry"].map(|t| (t, LevelFilter::OFF)),
            );
            // Lean spans: no per-span thread, source-location and target attributes, no
            // busy/idle clocks on every poll, no OpenTelemetry context attached on every
            // enter (parents come from the span tree; outgoing calls take the context from
            // their span, see grpc.rs).
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_threads(false)
                    .with_location(false)
                    .with_target(false)
                    .with_tracked_inactivity(false)
                    .with_context_activation(false)
                    .with_filter(otel_filter),
            )
        }
        _ => None,
    };
    let export = otel_layer.is_some();
    let installed = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter()))
        .with(otel_layer)
        .try_init()
        .is_ok();
    // Head sampling in the gRPC layers: only where this call installed the exporting layer.
    if installed {
        crate::grpc::install_tracing(export, args.trace_sample_ratio);
    }
    Ok(TelemetryGuard { provider })
}

/// Root sampler: a root `grpc.server` span is only built for a request that the server layer
/// has sampled already (head sampling), so it is recorded; other roots (background work, calls
/// outside a request) follow the same rule on their new trace id (the SDK's
/// `TraceIdRatioBased`), with the ratio and export switch in force now (`PUT /tracing`).
#[derive(Debug, Clone)]
struct RequestRoots;

impl ShouldSample for RequestRoots {
    fn should_sample(
        &self,
        _parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        _name: &str,
        span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..16].try_into().expect("8 bytes"));
        let sampled = *span_kind == SpanKind::Server || crate::grpc::samples_new_trace(low);
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: Default::default(),
        }
    }
}

/// Counts the spans that end (`akidb_trace_spans_ended_total`) before the batch processor
/// queues them: ended minus exported and failed is what waits in the queue or was dropped
/// from it (the queue is bounded; a collector that cannot keep up loses spans, never
/// requests).
#[derive(Debug)]
struct CountEnded<P>(P);

impl<P: SpanProcessor> SpanProcessor for CountEnded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx)
    }
    fn on_end(&self, span: SpanData) {
        crate::metrics().trace_spans_ended.inc();
        self.0.on_end(span)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

/// Counts the spans of every export call by outcome (`akidb_trace_export_spans_total`): a
/// collector that is down shows as `failed`, requests are not affected.
#[derive(Debug)]
struct CountExported<E>(E);

impl<E: SpanExporter> SpanExporter for CountExported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let res = self.0.export(batch).await;
        let outcome = if res.is_ok() { "exported" } else { "failed" };
        crate::metrics()
            .trace_export_spans
            .with_label_values(&[outcome])
            .inc_by(n);
        res
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

/// The log layer: text or JSON lines to `writer`.
fn log_layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::fmt::format as line;
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .event_format(WithRequest {
                inner: line().with_target(true),
                json: false,
            })
            .fmt_fields(LogFields { json: false })
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(WithRequest {
                inner: line().json().flatten_event(true).with_current_span(false),
                json: true,
            })
            .fmt_fields(LogFields { json: true })
            .with_writer(writer)
            .boxed(),
    }
}

/// Log lines written inside an untraced request end with `rpc=<method>` (text) or carry
/// `"rpc": "<method>"` (JSON): such a request has no span (a span per request cost every
/// request more than logging costs the few that log), and the gRPC layer keeps its method
/// in a task-local. Lines of traced requests show their `grpc.server` span instead.
struct WithRequest<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithRequest<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some(rpc) = crate::grpc::untraced_request_name() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        let body = line.trim_end_matches('\n');
        match body.strip_suffix('}').filter(|_| self.json) {
            Some(object) => {
                let name = serde_json::to_string(rpc).map_err(|_| std::fmt::Error)?;
                writeln!(writer, "{object},\"rpc\":{name}}}")
            }
            None => writeln!(writer, "{body} rpc={rpc}"),
        }
    }
}

/// Whether a field is read by OpenTelemetry only (span kind, status, `rpc.*` semantic
/// attributes): logs leave it out. `otel.name` (the request's method) stays.
fn otel_only(name: &str) -> bool {
    (name.starts_with("otel.") && name != "otel.name") || name.starts_with("rpc.")
}

/// The log layer's field formatter: the default text or JSON fields without the
/// OpenTelemetry-only ones, so that a traced request's span is no costlier to log than an
/// untraced one (formatting them took about a third of a traced request's cost).
struct LogFields {
    json: bool,
}

/// A visitor that passes on every field but the OpenTelemetry-only ones.
struct SkipOtel<V>(V);

/// The `Visit` methods of [`SkipOtel`]: each passes its field on unless it is
/// OpenTelemetry's (all of them, so that strings, numbers and errors keep their formatting).
macro_rules! skip_otel {
    ($($method:ident($value:ty)),+ $(,)?) => {
        $(fn $method(&mut self, field: &tracing::field::Field, value: $value) {
            if !otel_only(field.name()) {
                self.0.$method(field, value)
            }
        })+
    };
}

impl<V: tracing::field::Visit> tracing::field::Visit for SkipOtel<V> {
    skip_otel!(
        record_debug(&dyn std::fmt::Debug),
        record_str(&str),
        record_i64(i64),
        record_u64(u64),
        record_f64(f64),
        record_bool(bool),
        record_error(&(dyn std::error::Error + 'static)),
    );
}

/// Whether `fields` hold anything a log shows.
fn has_log_fields(fields: &tracing::span::Record<'_>) -> bool {
    struct Any(bool);
    impl tracing::field::Visit for Any {
        fn record_debug(&mut self, field: &tracing::field::Field, _: &dyn std::fmt::Debug) {
            self.0 |= !otel_only(field.name());
        }
    }
    let mut any = Any(false);
    fields.record(&mut any);
    any.0
}

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for LogFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        use tracing_subscriber::field::VisitOutput;
        if self.json {
            let mut v = SkipOtel(tracing_subscriber::fmt::format::JsonVisitor::new(
                &mut writer,
            ));
            fields.record(&mut v);
            v.0.finish()
        } else {
            let mut v = SkipOtel(tracing_subscriber::fmt::format::DefaultVisitor::new(
                writer, true,
            ));
            fields.record(&mut v);
            v.0.finish()
        }
    }

    fn add_fields(
        &self,
        current: &'w mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        // Fields recorded later (a status code at the end of a call) are OpenTelemetry's.
        if !has_log_fields(fields) {
            return Ok(());
        }
        if !self.json {
            if !current.fields.is_empty() {
                current.fields.push(' ');
            }
            return self.format_fields(current.as_writer(), fields);
        }
        // JSON: merge into the object written so far.
        let mut add = String::new();
        self.format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut add),
            fields,
        )?;
        let mut map: serde_json::Map<String, serde_json::Value> = if current.fields.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_str(&current.fields).map_err(|_| std::fmt::Error)?
        };
        let more: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&add).map_err(|_| std::fmt::Error)?;
        map.extend(more);
        current.fields = serde_json::to_string(&map).map_err(|_| std::fmt::Error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log lines written while `f` runs with a log layer of `format` as the subscriber.
    fn logged(format: LogFormat, f: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&out);
        let make = move || Sink(Arc::clone(&w));
        let subscriber = tracing_subscriber::registry().with(log_layer(format, false, make));
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A request span as the gRPC layer makes it, with a status recorded later and a step
    /// span inside; one event in the step.
    fn request() {
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %"akidb.v1.QueryService/Search",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = "akidb.v1.QueryService",
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let _g = span.enter();
        span.record("rpc.grpc.status_code", 0);
        let step = tracing::info_span!(
            "segment.search",
            k = 10,
            exact = false,
            segments = tracing::field::Empty
        );
        step.record("segments", 2);
        let _s = step.enter();
        tracing::warn!(points = 3, "slow segment");
    }

    #[test]
    fn log_lines_of_an_untraced_request_name_its_method() {
        let warn = || {
            crate::grpc::in_untraced_request("/akidb.v1.QueryService/Search", || {
                tracing::warn!(points = 3, "slow segment")
            })
        };
        let text = logged(LogFormat::Text, warn);
        assert!(
            text.trim_end()
                .ends_with("slow segment points=3 rpc=akidb.v1.QueryService/Search"),
            "{text}"
        );
        let json = logged(LogFormat::Json, warn);
        let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(line["rpc"], "akidb.v1.QueryService/Search", "{json}");
        assert_eq!(line["points"], 3, "{json}");
        // Outside a request: no rpc.
        let text = logged(LogFormat::Text, || tracing::warn!("background"));
        assert!(!text.contains("rpc="), "{text}");
    }

    #[test]
    fn logs_leave_out_fields_only_opentelemetry_reads() {
        let text = logged(LogFormat::Text, request);
        assert!(
            text.contains(
                "grpc.server{otel.name=akidb.v1.QueryService/Search}:segment.search{k=10 exact=false segments=2}"
            ),
            "{text}"
        );
        assert!(text.contains("slow segment points=3"), "{text}");
        for hidden in ["otel.kind", "rpc.system", "rpc.service", "status_code"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }

        let json = logged(LogFormat::Json, request);
        let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(line["message"], "slow segment");
        assert_eq!(line["points"], 3);
        assert_eq!(
            line["spans"],
            serde_json::json!([
                {"name": "grpc.server", "otel.name": "akidb.v1.QueryService/Search"},
                {"name": "segment.search", "k": 10, "exact": false, "segments": 2}
            ])
        );
    }
}
