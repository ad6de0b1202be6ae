//! `/federate`: every series of every target, with `service` and `instance` labels, plus
//! `up` and `akidb_target_scrape_duration_seconds` per target.
//!
//! Families with the same name from several targets are merged under one `# HELP` / `# TYPE`
//! (the first target's help wins). A target that is down contributes only `up 0` and its
//! scrape duration: none of the series of its last good scrape. A target's own `service` and
//! `instance` labels, which AkiDB services never set, are kept as `exported_service` and
//! `exported_instance`, as Prometheus does. Families whose type disagrees with the first
//! target that exported them are left out for that target (they could not be merged into one
//! valid family).
//!
//! In OpenMetrics (what Prometheus asks for first) samples keep the exemplars their target
//! wrote: the trace ids of traced requests on latency buckets.

use akidb_instrumentation::exposition::{
    Format, MetricFamily, MetricType, Sample, write_end, write_header,
};
use std::collections::HashMap;
use std::time::Duration;

/// The name of the per-target up gauge.
pub const UP: &str = "up";
/// The name of the per-target scrape duration gauge.
pub const SCRAPE_DURATION: &str = "akidb_target_scrape_duration_seconds";

/// What `/federate` needs of one target.
#[derive(Debug, Clone)]
pub struct TargetView<'a> {
    pub service: &'a str,
    pub instance: &'a str,
    pub up: bool,
    /// Duration of the last scrape; `None` before the first one.
    pub duration: Option<Duration>,
    /// Families of the last successful scrape; ignored when the target is down.
    pub families: &'a [MetricFamily],
}

struct Merged<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: MetricType,
    /// (target index, sample)
    samples: Vec<(usize, &'a Sample)>,
}

/// Render the federation exposition in `format`.
pub fn render(targets: &[TargetView<'_>], format: Format) -> String {
    let mut order: Vec<Merged<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (ti, t) in targets.iter().enumerate() {
        if !t.up {
            continue;
        }
        for fam in t.families {
            if fam.name == UP || fam.name == SCRAPE_DURATION || fam.samples.is_empty() {
                continue;
            }
            let i = *index.entry(fam.name.as_str()).or_insert_with(|| {
                order.push(Merged {
                    name: &fam.name,
                    help: None,
                    kind: fam.kind,
                    samples: Vec::new(),
                });
                order.len() - 1
            });
            let m = &mut order[i];
            if m.kind != fam.kind {
                tracing::debug!(
                    family = %fam.name,
                    service = t.service,
                    instance = t.instance,
                    "type differs from another target's; left out of /federate"
                );
                continue;
            }
            if m.help.is_none() {
                m.help = fam.help.as_deref();
            }
            m.samples.extend(fam.samples.iter().map(|s| (ti, s)));
        }
    }

    let mut out = String::with_capacity(64 * 1024);
    for m in &order {
        write_header(&mut out, format, m.name, m.help, m.kind);
        for &(ti, s) in &m.samples {
            sample(&mut out, format, &s.name, &targets[ti], s);
        }
    }
    let own = |value: f64| Sample {
        name: String::new(),
        labels: Vec::new(),
        value,
        timestamp_ms: None,
        exemplar: None,
    };
    write_header(
        &mut out,
        format,
        UP,
        Some("1 when the last scrape of the target succeeded, 0 otherwise."),
        MetricType::Gauge,
    );
    for t in targets {
        sample(&mut out, format, UP, t, &own(if t.up { 1.0 } else { 0.0 }));
    }
    write_header(
        &mut out,
        format,
        SCRAPE_DURATION,
        Some("Duration of the last scrape of the target."),
        MetricType::Gauge,
    );
    for t in targets {
        if let Some(d) = t.duration {
            sample(&mut out, format, SCRAPE_DURATION, t, &own(d.as_secs_f64()));
        }
    }
    write_end(&mut out, format);
    out
}

/// `s` of target `t` under `name`, with the target's `service` and `instance` labels first
/// (its own ones renamed `exported_*`).
fn sample(out: &mut String, format: Format, name: &str, t: &TargetView<'_>, s: &Sample) {
    let labels = [("service", t.service), ("instance", t.instance)]
        .into_iter()
        .chain(s.labels.iter().map(|(k, v)| {
            let k = match k.as_str() {
                "service" => "exported_service",
                "instance" => "exported_instance",
                k => k,
            };
            (k, v.as_str())
        }));
    akidb_instrumentation::exposition::write_sample(
        out,
        format,
        name,
        labels,
        s.value,
        s.timestamp_ms,
        s.exemplar.as_ref(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use akidb_instrumentation::exposition::parse;

    fn view<'a>(
        service: &'a str,
        instance: &'a str,
        up: bool,
        families: &'a [MetricFamily],
    ) -> TargetView<'a> {
        TargetView {
            service,
            instance,
            up,
            duration: Some(Duration::from_millis(12)),
            families,
        }
    }

    #[test]
    fn adds_labels_merges_families_and_hides_dead_targets() {
        let a = parse(
            "# HELP akidb_x_total X.\n# TYPE akidb_x_total counter\nakidb_x_total{k=\"v\"} 1\n\
             # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n",
        )
        .unwrap();
        let b = parse(
            "# HELP akidb_x_total Other help.\n# TYPE akidb_x_total counter\nakidb_x_total{k=\"w\",service=\"s\",instance=\"i\"} 2 123\n\
             # TYPE h gauge\nh 5\n# TYPE only_b gauge\nonly_b{q=\"a\\\"b\"} 3\n",
        )
        .unwrap();
        let c = parse("# TYPE stale gauge\nstale 9\n").unwrap();
        let text = render(
            &[
                view("query", "127.0.0.1:9101", true, &a),
                view("ingest", "127.0.0.1:9102", true, &b),
                view("storage", "127.0.0.1:9103", false, &c),
            ],
            Format::Text,
        );
        let expected = "\
# HELP akidb_x_total X.
# TYPE akidb_x_total counter
akidb_x_total{service=\"query\",instance=\"127.0.0.1:9101\",k=\"v\"} 1
akidb_x_total{service=\"ingest\",instance=\"127.0.0.1:9102\",k=\"w\",exported_service=\"s\",exported_instance=\"i\"} 2 123
# HELP h H.
# TYPE h histogram
h_bucket{service=\"query\",instance=\"127.0.0.1:9101\",le=\"1\"} 1
h_bucket{service=\"query\",instance=\"127.0.0.1:9101\",le=\"+Inf\"} 1
h_sum{service=\"query\",instance=\"127.0.0.1:9101\"} 0.5
h_count{service=\"query\",instance=\"127.0.0.1:9101\"} 1
# TYPE only_b gauge
only_b{service=\"ingest\",instance=\"127.0.0.1:9102\",q=\"a\\\"b\"} 3
# HELP up 1 when the last scrape of the target succeeded, 0 otherwise.
# TYPE up gauge
up{service=\"query\",instance=\"127.0.0.1:9101\"} 1
up{service=\"ingest\",instance=\"127.0.0.1:9102\"} 1
up{service=\"storage\",instance=\"127.0.0.1:9103\"} 0
# HELP akidb_target_scrape_duration_seconds Duration of the last scrape of the target.
# TYPE akidb_target_scrape_duration_seconds gauge
akidb_target_scrape_duration_seconds{service=\"query\",instance=\"127.0.0.1:9101\"} 0.012
akidb_target_scrape_duration_seconds{service=\"ingest\",instance=\"127.0.0.1:9102\"} 0.012
akidb_target_scrape_duration_seconds{service=\"storage\",instance=\"127.0.0.1:9103\"} 0.012
";
        assert_eq!(text, expected);
        // The output is itself valid exposition text.
        let back = parse(&text).unwrap();
        assert_eq!(back.iter().filter(|f| f.name == "akidb_x_total").count(), 1);
        assert_eq!(
            back.iter().find(|f| f.name == "only_b").unwrap().samples[0].label("q"),
            Some("a\"b")
        );
    }

    #[test]
    fn a_target_cannot_shadow_up() {
        let a = parse("up 7\nakidb_target_scrape_duration_seconds 9\n").unwrap();
        let mut t = view("query", "q:1", true, &a);
        t.duration = None;
        let text = render(&[t], Format::Text);
        assert_eq!(
            text,
            "# HELP up 1 when the last scrape of the target succeeded, 0 otherwise.\n\
             # TYPE up gauge\nup{service=\"query\",instance=\"q:1\"} 1\n\
             # HELP akidb_target_scrape_duration_seconds Duration of the last scrape of the target.\n\
             # TYPE akidb_target_scrape_duration_seconds gauge\n"
        );
    }
    #[test]
    fn openmetrics_keeps_exemplars() {
        use akidb_instrumentation::exposition::parse_as;
        let a = parse_as(
            "# TYPE akidb_x counter\nakidb_x_total 1\n# TYPE h histogram\n\
             h_bucket{le=\"1\"} 1 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.25 1700000000.5\n\
             h_bucket{le=\"+Inf\"} 1\nh_sum 0.25\nh_count 1\n# EOF\n",
            Format::OpenMetrics,
        )
        .unwrap();
        let mut t = view("query", "q:1", true, &a);
        t.duration = None;
        let om = render(&[t.clone()], Format::OpenMetrics);
        assert_eq!(
            om,
            "# TYPE akidb_x counter\nakidb_x_total{service=\"query\",instance=\"q:1\"} 1\n\
             # TYPE h histogram\n\
             h_bucket{service=\"query\",instance=\"q:1\",le=\"1\"} 1 \
             # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.25 1700000000.5\n\
             h_bucket{service=\"query\",instance=\"q:1\",le=\"+Inf\"} 1\n\
             h_sum{service=\"query\",instance=\"q:1\"} 0.25\n\
             h_count{service=\"query\",instance=\"q:1\"} 1\n\
             # HELP up 1 when the last scrape of the target succeeded, 0 otherwise.\n\
             # TYPE up gauge\nup{service=\"query\",instance=\"q:1\"} 1\n\
             # HELP akidb_target_scrape_duration_seconds Duration of the last scrape of the target.\n\
             # TYPE akidb_target_scrape_duration_seconds gauge\n# EOF\n"
        );
        let text = render(&[t], Format::Text);
        assert!(text.contains("# TYPE akidb_x_total counter\n"));
        assert!(!text.contains("trace_id") && !text.contains("EOF"));
        assert_eq!(parse_as(&om, Format::OpenMetrics).unwrap()[1], {
            let mut h = parse(&text).unwrap()[1].clone();
            h.samples[0].exemplar = a[1].samples[0].exemplar.clone();
            h
        });
    }
}
