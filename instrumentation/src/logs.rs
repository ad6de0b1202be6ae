//! Log lines: text or JSON, with the method of an untraced request, and without the fields
//! only OpenTelemetry reads.

use crate::config::LogFormat;
use tracing_subscriber::Layer;

/// The log layer: text or JSON lines to `writer`.
pub(crate) fn log_layer<S, W>(
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn Layer<S> + Send + Sync>
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
        let Some(rpc) = crate::context::untraced_request_name() else {
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
    use tracing_subscriber::layer::SubscriberExt;

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
            crate::context::in_untraced_request("/akidb.v1.QueryService/Search", || {
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
