//! One call that sets up logs, traces and metrics for a service.

use crate::metrics::{Component, init_metrics};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
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
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = || EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match args.log_format {
        // Colours only on a terminal: log files and pipes get plain text (and the escape
        // codes are not formatted into every span's fields).
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    };
    let service_name = format!("akidb-{}", component.as_str());
    let mut provider = None;
    let otel_layer = match &args.otlp_endpoint {
        Some(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(Duration::from_secs(3))
                .build()?;
            let ratio = args.trace_sample_ratio.clamp(0.0, 1.0);
            let p = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(Sampler::ParentBased(Box::new(RequestRoots(
                    Sampler::TraceIdRatioBased(ratio),
                ))))
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
                [
                    "h2",
                    "hyper",
                    "tonic",
                    "tower",
                    "opentelemetry",
                    crate::grpc::UNTRACED_TARGET,
                ]
                .map(|t| (t, LevelFilter::OFF)),
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
        crate::grpc::set_tracing(export, args.trace_sample_ratio.clamp(0.0, 1.0));
    }
    Ok(TelemetryGuard { provider })
}

/// Root sampler: a root `grpc.server` span is only built for a request that the server layer
/// has sampled already (head sampling, same ratio), so it is recorded; other roots (background
/// work, calls outside a request) are sampled by `inner`.
#[derive(Debug, Clone)]
struct RequestRoots(Sampler);

impl ShouldSample for RequestRoots {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if *span_kind == SpanKind::Server {
            SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: Default::default(),
            }
        } else {
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
        }
    }
}
