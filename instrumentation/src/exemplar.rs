//! Exemplars: the trace id of a traced request, kept on the histogram bucket its observation
//! fell in, so that a latency spike on a dashboard links to a trace of one of its requests.
//!
//! The `prometheus` crate has no exemplars and writes only the 0.0.4 text format, which
//! cannot carry them. So a [`TracedHistogram`] observes as usual and, inside a traced request,
//! also records `(trace id, value, time)` as the last exemplar of that bucket of that series;
//! `/metrics` asked for OpenMetrics (`Accept: application/openmetrics-text`) writes them after
//! the bucket's sample (`# {trace_id="..."} <value> <time>`), see
//! [`crate::metrics::Metrics::render_openmetrics`]. Untraced requests (most of them, under
//! head sampling) pay one task-local read.
//!
//! Series are the bounded children of the catalogue's histograms, so the table is bounded.

use opentelemetry::trace::TraceId;
use prometheus::core::{Collector, Metric as _};
use prometheus::{Histogram, HistogramVec};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// One exemplar: a traced observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: TraceId,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// The last exemplar of each bucket of one histogram series.
pub struct Slots {
    /// Upper bounds of the finite buckets; one more slot for `+Inf`.
    bounds: Vec<f64>,
    last: Mutex<Vec<Option<Exemplar>>>,
}

impl Slots {
    fn new(bounds: Vec<f64>) -> Self {
        let n = bounds.len() + 1;
        Slots {
            bounds,
            last: Mutex::new(vec![None; n]),
        }
    }

    fn record(&self, value: f64, trace_id: TraceId) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(Exemplar {
            trace_id,
            value,
            timestamp,
        });
    }

    /// The exemplar of the bucket whose upper bound is `le` (`+Inf` for the last).
    pub fn get(&self, le: f64) -> Option<Exemplar> {
        let i = if le.is_infinite() {
            self.bounds.len()
        } else {
            self.bounds.iter().position(|&b| b == le)?
        };
        self.last.lock().unwrap_or_else(|e| e.into_inner())[i]
    }
}

/// The key of a series: its name and labels, sorted by label name.
pub fn series_key<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut labels: Vec<(&str, &str)> = labels.into_iter().collect();
    labels.sort_unstable();
    let mut key = String::from(name);
    for (k, v) in labels {
        key.push('\u{0}');
        key.push_str(k);
        key.push('\u{1}');
        key.push_str(v);
    }
    key
}

static SERIES: LazyLock<RwLock<HashMap<String, &'static Slots>>> = LazyLock::new(Default::default);

/// The exemplar slots of the series `key`, if one of its observations was ever made through
/// a [`TracedHistogram`].
pub fn slots(key: &str) -> Option<&'static Slots> {
    SERIES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .copied()
}

/// A histogram series whose observations inside a traced request keep the trace id as the
/// exemplar of their bucket.
#[derive(Clone)]
pub struct TracedHistogram {
    hist: Histogram,
    slots: &'static Slots,
}

impl TracedHistogram {
    /// The child of `vec` with label `values` (in the order of its label names).
    pub fn new(vec: &HistogramVec, values: &[&str]) -> Self {
        let desc = vec.desc()[0];
        let key = series_key(
            &desc.fq_name,
            desc.variable_labels
                .iter()
                .map(String::as_str)
                .zip(values.iter().copied()),
        );
        Self::with_key(vec.with_label_values(values), key)
    }

    /// A histogram without labels.
    pub fn plain(hist: Histogram) -> Self {
        let key = series_key(&hist.desc()[0].fq_name, []);
        Self::with_key(hist, key)
    }

    /// The series' slots, made (from the histogram's bounds) on its first handle only: later
    /// handles (an object store call, a load into memory make one each) take a read lock.
    fn with_key(hist: Histogram, key: String) -> Self {
        if let Some(slots) = slots(&key) {
            return TracedHistogram { hist, slots };
        }
        let proto = hist.metric();
        let bounds: Vec<f64> = (proto.get_histogram().get_bucket().iter())
            .map(|b| b.upper_bound())
            .filter(|b| b.is_finite())
            .collect();
        let mut series = SERIES.write().unwrap_or_else(|e| e.into_inner());
        let slots = *series
            .entry(key)
            .or_insert_with(|| Box::leak(Box::new(Slots::new(bounds))));
        TracedHistogram { hist, slots }
    }

    /// Observe `v`; inside a traced request or a sampled background span, with its trace id
    /// as the bucket's exemplar.
    pub fn observe(&self, v: f64) {
        self.observe_traced(v, crate::context::current_trace_id());
    }

    /// Observe `v` with the trace id of a traced request, if any.
    pub fn observe_traced(&self, v: f64, trace_id: Option<TraceId>) {
        self.hist.observe(v);
        if let Some(id) = trace_id {
            self.slots.record(v, id);
        }
    }

    /// The plain histogram (tests, reads).
    pub fn histogram(&self) -> &Histogram {
        &self.hist
    }
}

/// Registered as the histogram it wraps.
impl Collector for TracedHistogram {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.hist.desc()
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.hist.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::HistogramOpts;

    #[test]
    fn keeps_the_last_traced_observation_per_bucket() {
        let vec = HistogramVec::new(
            HistogramOpts::new("akidb_test_exemplar_seconds", "Test.").buckets(vec![0.1, 1.0]),
            &["b", "a"],
        )
        .unwrap();
        let h = TracedHistogram::new(&vec, &["x", "y"]);
        let (t1, t2, t3) = (
            TraceId::from(1u128),
            TraceId::from(2u128),
            TraceId::from(3u128),
        );
        h.observe_traced(0.05, Some(t1));
        h.observe_traced(0.07, Some(t2));
        h.observe_traced(0.5, None);
        h.observe_traced(7.0, Some(t3));
        assert_eq!(h.histogram().get_sample_count(), 4);
        // Labels in any order name the same series.
        let key = series_key("akidb_test_exemplar_seconds", [("a", "y"), ("b", "x")]);
        let s = slots(&key).expect("registered");
        let first = s.get(0.1).unwrap();
        assert_eq!((first.trace_id, first.value), (t2, 0.07));
        assert!(first.timestamp > 1.6e9);
        assert_eq!(
            s.get(1.0),
            None,
            "an untraced observation leaves no exemplar"
        );
        assert_eq!(s.get(f64::INFINITY).unwrap().trace_id, t3);
        assert_eq!(s.get(0.5), None, "not a bucket bound");
        // A second handle on the same series shares the slots.
        let again = TracedHistogram::new(&vec, &["x", "y"]);
        assert!(std::ptr::eq(again.slots, h.slots));
    }
}
