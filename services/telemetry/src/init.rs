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
use std::any::TypeId;
use std::time::Duration;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{self, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
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
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).boxed(),
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
            // Spans only from AkiDB code: never the exporter's own transport.
            let otel_filter =
                EnvFilter::new("info,h2=off,hyper=off,tonic=off,tower=off,opentelemetry=off");
            Some(
                SkipUntraced(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_threads(false),
                )
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

/// Marks a span the OpenTelemetry layer must not see: an untraced request's span and all
/// spans under it.
struct Skip;

/// The OpenTelemetry layer, minus untraced requests: their `grpc.server` span (target
/// [`crate::grpc::UNTRACED_TARGET`]) and every span and event under it are not passed on, so
/// no OpenTelemetry span data is built for them, and inner spans (`segment.search`,
/// `wal.commit`, ...) of an unsampled request do not become root traces of their own. Other
/// layers (logs) see everything as before.
struct SkipUntraced<L>(L);

impl<L> SkipUntraced<L> {
    fn skipped<S>(id: &span::Id, ctx: &layer::Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        ctx.span(id)
            .is_some_and(|s| s.extensions().get::<Skip>().is_some())
    }
}

impl<S, L> Layer<S> for SkipUntraced<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber)
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber)
    }
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.register_callsite(metadata)
    }
    fn enabled(&self, metadata: &Metadata<'_>, ctx: layer::Context<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: layer::Context<'_, S>) {
        let skip = attrs.metadata().target() == crate::grpc::UNTRACED_TARGET || {
            let parent = if attrs.is_contextual() {
                ctx.lookup_current()
            } else {
                attrs.parent().and_then(|p| ctx.span(p))
            };
            parent.is_some_and(|p| p.extensions().get::<Skip>().is_some())
        };
        if skip {
            if let Some(s) = ctx.span(id) {
                s.extensions_mut().insert(Skip);
            }
        } else {
            self.0.on_new_span(attrs, id, ctx)
        }
    }
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: layer::Context<'_, S>) {
        if !Self::skipped(id, &ctx) {
            self.0.on_record(id, values, ctx)
        }
    }
    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: layer::Context<'_, S>) {
        if !Self::skipped(id, &ctx) {
            self.0.on_follows_from(id, follows, ctx)
        }
    }
    fn event_enabled(&self, event: &Event<'_>, ctx: layer::Context<'_, S>) -> bool {
        self.0.event_enabled(event, ctx)
    }
    fn on_event(&self, event: &Event<'_>, ctx: layer::Context<'_, S>) {
        let span = if event.is_contextual() {
            ctx.lookup_current()
        } else {
            event.parent().and_then(|p| ctx.span(p))
        };
        if span.is_none_or(|s| s.extensions().get::<Skip>().is_none()) {
            self.0.on_event(event, ctx)
        }
    }
    fn on_enter(&self, id: &span::Id, ctx: layer::Context<'_, S>) {
        if !Self::skipped(id, &ctx) {
            self.0.on_enter(id, ctx)
        }
    }
    fn on_exit(&self, id: &span::Id, ctx: layer::Context<'_, S>) {
        if !Self::skipped(id, &ctx) {
            self.0.on_exit(id, ctx)
        }
    }
    fn on_close(&self, id: span::Id, ctx: layer::Context<'_, S>) {
        if !Self::skipped(&id, &ctx) {
            self.0.on_close(id, ctx)
        }
    }
    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: layer::Context<'_, S>) {
        self.0.on_id_change(old, new, ctx)
    }
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded to the wrapped layer, which upholds the contract for its types
            // (the OpenTelemetry layer is found this way by `OpenTelemetrySpanExt`).
            unsafe { self.0.downcast_raw(id) }
        }
    }
}
