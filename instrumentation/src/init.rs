//! One call that sets up logs, traces and metrics for a service.

use crate::config::TelemetryArgs;
use crate::logs::log_layer;
use crate::metrics::{Component, init_metrics, metrics};
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
            // `context::step_span`, so nothing of an untraced request reaches this layer). A
            // static filter, decided once per callsite: an EnvFilter would look up every span
            // on every enter and exit.
            let otel_filter = Targets::new().with_default(LevelFilter::INFO).with_targets(
                ["h2", "hyper", "tonic", "tower", "opentelemetry"].map(|t| (t, LevelFilter::OFF)),
            );
            // Lean spans: no per-span thread, source-location and target attributes, no
            // busy/idle clocks on every poll, no OpenTelemetry context attached on every
            // enter (parents come from the span tree; outgoing calls take the context from
            // their span, see layers.rs).
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
        crate::sampling::install_tracing(
            export,
            args.trace_sample_ratio,
            args.trace_reservoir_per_sec,
        );
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
        let sampled = *span_kind == SpanKind::Server || crate::sampling::samples_new_trace(low);
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
        metrics().trace_spans_ended.inc();
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
