//! SLO evaluation: `observability/slo.yaml`, event counting from scraped metrics, an
//! in-memory history of event counters, and SLI / burn rate / error budget / alert states.
//!
//! Events per scrape: for each SLO and each target, the cumulative number of events and of
//! good events (availability: `akidb_grpc_server_requests_total` of the SLO's service and
//! methods, good = codes not in `bad_codes`; latency: the `_count` and the
//! `_bucket{le=threshold}` of `akidb_grpc_server_request_duration_seconds`). Counter resets
//! are handled as Prometheus' `increase()` does, per target: a decrease means the process
//! restarted, and the new value is the increase since. The first value seen of a target is
//! only a baseline (events before the aggregator saw it are not in any window).
//!
//! History: the reset-adjusted sums are kept at every scrape for the last
//! [`FINE_SPAN`] and one point a [`COARSE_STEP`] up to the longest window, so a 30-day period
//! at a 5 s interval takes ~45k points, not 500k. The increase over a window W at time `now`
//! is the latest point minus the last point at or before `now - W` (or the oldest point while
//! the history is shorter than W).

use super::duration::parse_duration;
use akidb_instrumentation::exposition::MetricFamily;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Every scrape is kept this long.
pub const FINE_SPAN: Duration = Duration::from_secs(6 * 3600 + 600);
/// Spacing of the points kept beyond [`FINE_SPAN`].
pub const COARSE_STEP: Duration = Duration::from_secs(60);

/// Metric counting availability events.
pub const REQUESTS: &str = "akidb_grpc_server_requests_total";
/// Histogram counting latency events.
pub const DURATION: &str = "akidb_grpc_server_request_duration_seconds";

/// The file as written (schema version 1; see the comment at the top of slo.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default = "default_windows")]
    pub windows: Vec<String>,
    #[serde(default)]
    pub burn_rate_alerts: BurnRateAlerts,
    pub slos: Vec<SloSpec>,
}

fn one() -> u32 {
    1
}
fn default_windows() -> Vec<String> {
    ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
        .map(String::from)
        .to_vec()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnRateAlerts {
    #[serde(default)]
    pub page: Vec<AlertRuleSpec>,
    #[serde(default)]
    pub ticket: Vec<AlertRuleSpec>,
}

impl Default for BurnRateAlerts {
    /// The Google SRE workbook's multi-window, multi-burn-rate alerts.
    fn default() -> Self {
        let r = |long: &str, short: &str, factor| AlertRuleSpec {
            long: long.into(),
            short: short.into(),
            factor,
        };
        Self {
            page: vec![r("1h", "5m", 14.4), r("6h", "30m", 6.0)],
            ticket: vec![r("1d", "2h", 3.0), r("3d", "6h", 1.0)],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    pub long: String,
    pub short: String,
    pub factor: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SloKind {
    Availability,
    Latency,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub objective: f64,
    pub period: String,
    pub kind: SloKind,
    pub grpc_service: String,
    pub grpc_methods: Vec<String>,
    #[serde(default)]
    pub bad_codes: Vec<String>,
    #[serde(default)]
    pub threshold_seconds: Option<f64>,
}

/// A window: its label as written ("5m") and its length.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub label: String,
    pub duration: Duration,
}

/// burn_rate(long) > factor AND burn_rate(short) > factor.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub long: Window,
    pub short: Window,
    pub factor: f64,
}

/// A validated SLO.
#[derive(Debug, Clone)]
pub struct Slo {
    pub spec: SloSpec,
    pub period: Window,
}

/// A validated slo.yaml.
#[derive(Debug, Clone)]
pub struct SloConfig {
    /// Windows in file order; the period of every SLO is among them.
    pub windows: Vec<Window>,
    pub page: Vec<AlertRule>,
    pub ticket: Vec<AlertRule>,
    pub slos: Vec<Slo>,
}

const GRPC_CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn window(label: &str) -> anyhow::Result<Window> {
    let duration = parse_duration(label).map_err(|e| anyhow::anyhow!("window {label:?}: {e}"))?;
    if duration.is_zero() {
        anyhow::bail!("window {label:?} is empty");
    }
    Ok(Window {
        label: label.to_string(),
        duration,
    })
}

fn same_bound(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

impl SloConfig {
    /// Parse and validate slo.yaml text.
    pub fn from_yaml(text: &str) -> anyhow::Result<Self> {
        let file: SloFile = serde_yaml::from_str(text)?;
        Self::from_file(file)
    }

    pub fn from_file(file: SloFile) -> anyhow::Result<Self> {
        use anyhow::{Context, bail};
        if file.version != 1 {
            bail!("slo.yaml version {} is not supported (1 is)", file.version);
        }
        let mut windows: Vec<Window> = Vec::new();
        let add = |w: Window, windows: &mut Vec<Window>| {
            if !windows.iter().any(|x| x.duration == w.duration) {
                windows.push(w);
            }
        };
        for w in &file.windows {
            add(window(w)?, &mut windows);
        }
        let rules = |specs: &[AlertRuleSpec], windows: &mut Vec<Window>| -> anyhow::Result<_> {
            let mut out = Vec::new();
            for r in specs {
                if !(r.factor.is_finite() && r.factor > 0.0) {
                    bail!("burn rate factor {} must be positive", r.factor);
                }
                let (long, short) = (window(&r.long)?, window(&r.short)?);
                add(long.clone(), windows);
                add(short.clone(), windows);
                out.push(AlertRule {
                    long,
                    short,
                    factor: r.factor,
                });
            }
            Ok(out)
        };
        let page = rules(&file.burn_rate_alerts.page, &mut windows)?;
        let ticket = rules(&file.burn_rate_alerts.ticket, &mut windows)?;
        let mut slos = Vec::new();
        for spec in file.slos {
            let ctx = || format!("SLO {:?}", spec.name);
            if spec.name.is_empty()
                || !spec
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                bail!("SLO name {:?} must match [a-z0-9-]+", spec.name);
            }
            if slos.iter().any(|s: &Slo| s.spec.name == spec.name) {
                bail!("SLO name {:?} appears twice", spec.name);
            }
            if !(spec.objective > 0.0 && spec.objective < 1.0) {
                bail!("{}: objective {} must be in (0, 1)", ctx(), spec.objective);
            }
            if spec.grpc_service.is_empty() || spec.grpc_methods.is_empty() {
                bail!("{}: grpc_service and grpc_methods are required", ctx());
            }
            match spec.kind {
                SloKind::Availability => {
                    if spec.bad_codes.is_empty() {
                        bail!("{}: an availability SLO needs bad_codes", ctx());
                    }
                    if let Some(c) = spec
                        .bad_codes
                        .iter()
                        .find(|c| !GRPC_CODES.contains(&c.as_str()))
                    {
                        bail!("{}: {c:?} is not a gRPC status name", ctx());
                    }
                    if spec.threshold_seconds.is_some() {
                        bail!("{}: threshold_seconds is for latency SLOs", ctx());
                    }
                }
                SloKind::Latency => {
                    let t = spec.threshold_seconds.with_context(|| {
                        format!("{}: a latency SLO needs threshold_seconds", ctx())
                    })?;
                    if !akidb_instrumentation::metrics::LATENCY_BUCKETS
                        .iter()
                        .any(|&b| same_bound(b, t))
                    {
                        bail!(
                            "{}: threshold_seconds {t} is not a bucket bound of {DURATION} ({:?})",
                            ctx(),
                            akidb_instrumentation::metrics::LATENCY_BUCKETS
                        );
                    }
                    if !spec.bad_codes.is_empty() {
                        bail!("{}: bad_codes is for availability SLOs", ctx());
                    }
                }
            }
            let period = window(&spec.period).with_context(ctx)?;
            add(period.clone(), &mut windows);
            slos.push(Slo { spec, period });
        }
        Ok(SloConfig {
            windows,
            page,
            ticket,
            slos,
        })
    }

    /// The longest window, which the history must cover.
    pub fn longest(&self) -> Duration {
        self.windows
            .iter()
            .map(|w| w.duration)
            .max()
            .unwrap_or(Duration::from_secs(3600))
    }
}

/// Cumulative (events, good events) of `slo` in one target's exposition; `None` when the
/// target has no series of the SLO's service and methods.
pub fn events(slo: &Slo, families: &[MetricFamily]) -> Option<(f64, f64)> {
    let s = &slo.spec;
    let matches = |sample: &akidb_instrumentation::exposition::Sample| {
        sample.label("grpc_service") == Some(s.grpc_service.as_str())
            && sample
                .label("grpc_method")
                .is_some_and(|m| s.grpc_methods.iter().any(|x| x == m))
    };
    let mut found = false;
    let (mut total, mut good) = (0.0, 0.0);
    match s.kind {
        SloKind::Availability => {
            let fam = families.iter().find(|f| f.name == REQUESTS)?;
            for sample in fam
                .samples
                .iter()
                .filter(|x| x.name == REQUESTS && matches(x))
            {
                if !sample.value.is_finite() {
                    continue;
                }
                found = true;
                total += sample.value;
                let bad = sample
                    .label("grpc_code")
                    .is_some_and(|c| s.bad_codes.iter().any(|b| b == c));
                if !bad {
                    good += sample.value;
                }
            }
        }
        SloKind::Latency => {
            let threshold = s.threshold_seconds.unwrap_or(f64::NAN);
            let fam = families.iter().find(|f| f.name == DURATION)?;
            let (count, bucket) = (format!("{DURATION}_count"), format!("{DURATION}_bucket"));
            for sample in fam.samples.iter().filter(|x| matches(x)) {
                if !sample.value.is_finite() {
                    continue;
                }
                if sample.name == count {
                    found = true;
                    total += sample.value;
                } else if sample.name == bucket
                    && sample
                        .label("le")
                        .and_then(akidb_instrumentation::exposition::parse_value)
                        .is_some_and(|le| le.is_finite() && same_bound(le, threshold))
                {
                    good += sample.value;
                }
            }
        }
    }
    found.then_some((total, good))
}

/// A counter as `increase()` sees it: the sum of its increases, a decrease being a reset.
#[derive(Debug, Clone, Copy, Default)]
struct ResetAdjusted {
    last: f64,
    adjusted: f64,
}

impl ResetAdjusted {
    fn first(v: f64) -> Self {
        Self {
            last: v,
            adjusted: 0.0,
        }
    }
    fn observe(&mut self, v: f64) {
        self.adjusted += if v >= self.last { v - self.last } else { v };
        self.last = v;
    }
}

/// One history point: time (seconds on the aggregator's clock) and the reset-adjusted sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: f64,
    pub total: f64,
    pub good: f64,
}

/// Ring buffers of [`Point`]s: every point for `fine_span`, one per `coarse_step` up to
/// `retention`; each keeps one point at or before its edge as the baseline.
#[derive(Debug, Clone)]
pub struct History {
    fine: VecDeque<Point>,
    coarse: VecDeque<Point>,
    fine_span: f64,
    coarse_step: f64,
    retention: f64,
}

impl History {
    pub fn new(fine_span: Duration, coarse_step: Duration, retention: Duration) -> Self {
        Self {
            fine: VecDeque::new(),
            coarse: VecDeque::new(),
            fine_span: fine_span.as_secs_f64(),
            coarse_step: coarse_step.as_secs_f64(),
            retention: retention.as_secs_f64().max(fine_span.as_secs_f64()),
        }
    }

    /// Points held (fine, coarse).
    pub fn len(&self) -> (usize, usize) {
        (self.fine.len(), self.coarse.len())
    }

    pub fn is_empty(&self) -> bool {
        self.fine.is_empty()
    }

    pub fn push(&mut self, p: Point) {
        if self.fine.back().is_some_and(|b| p.t < b.t) {
            return; // the clock never goes back; ignore rather than corrupt the order
        }
        self.fine.push_back(p);
        while self.fine.len() >= 2 && self.fine[1].t <= p.t - self.fine_span {
            self.fine.pop_front();
        }
        if self
            .coarse
            .back()
            .is_none_or(|b| p.t - b.t >= self.coarse_step)
        {
            self.coarse.push_back(p);
        }
        while self.coarse.len() >= 2 && self.coarse[1].t <= p.t - self.retention {
            self.coarse.pop_front();
        }
    }

    pub fn latest(&self) -> Option<Point> {
        self.fine.back().copied()
    }

    /// The last point at or before `t`, or the oldest point when there is none.
    pub fn baseline(&self, t: f64) -> Option<Point> {
        let last_at_or_before = |q: &VecDeque<Point>| {
            let i = q.partition_point(|p| p.t <= t);
            (i > 0).then(|| q[i - 1])
        };
        if self.fine.front().is_some_and(|p| p.t <= t) {
            return last_at_or_before(&self.fine);
        }
        if let Some(p) = last_at_or_before(&self.coarse) {
            return Some(p);
        }
        match (self.coarse.front(), self.fine.front()) {
            (Some(c), Some(f)) => Some(if c.t <= f.t { *c } else { *f }),
            (c, f) => c.or(f).copied(),
        }
    }

    /// (events, good events) in the window of `len` ending at `now`.
    pub fn increase(&self, now: f64, len: Duration) -> (f64, f64) {
        let (Some(last), Some(base)) = (self.latest(), self.baseline(now - len.as_secs_f64()))
        else {
            return (0.0, 0.0);
        };
        (
            (last.total - base.total).max(0.0),
            (last.good - base.good).max(0.0),
        )
    }
}

/// One window of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStatus {
    pub window: String,
    pub duration: Duration,
    pub total: f64,
    pub good: f64,
    pub sli: f64,
    pub burn_rate: f64,
}

/// One SLO's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct SloStatus {
    pub name: String,
    pub description: String,
    pub objective: f64,
    pub period: String,
    pub windows: Vec<WindowStatus>,
    pub error_budget_remaining: f64,
    pub page: bool,
    pub ticket: bool,
}

/// SLI of `good` of `total` events: 1 without events.
pub fn sli(total: f64, good: f64) -> f64 {
    if total > 0.0 {
        (good / total).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// (1 - SLI) / (1 - objective).
pub fn burn_rate(sli: f64, objective: f64) -> f64 {
    (1.0 - sli) / (1.0 - objective)
}

struct SloState {
    slo: Slo,
    counters: HashMap<String, (ResetAdjusted, ResetAdjusted)>,
    history: History,
}

/// Every SLO's counters and history.
pub struct SloEngine {
    config: SloConfig,
    states: Vec<SloState>,
}

impl SloEngine {
    pub fn new(config: SloConfig) -> Self {
        Self::with_resolution(config, FINE_SPAN, COARSE_STEP)
    }

    /// An engine keeping every point for `fine_span` and one per `coarse_step` beyond.
    pub fn with_resolution(config: SloConfig, fine_span: Duration, coarse_step: Duration) -> Self {
        let retention = config.longest() + coarse_step;
        let states = config
            .slos
            .iter()
            .map(|slo| SloState {
                slo: slo.clone(),
                counters: HashMap::new(),
                history: History::new(fine_span, coarse_step, retention),
            })
            .collect();
        Self { config, states }
    }

    pub fn config(&self) -> &SloConfig {
        &self.config
    }

    /// Record one scrape at time `t`: each `(target key, families)` of the targets that are up.
    pub fn observe_scrape<'a>(
        &mut self,
        t: f64,
        targets: impl IntoIterator<Item = (&'a str, &'a [MetricFamily])> + Clone,
    ) {
        for i in 0..self.states.len() {
            let samples: Vec<(&str, f64, f64)> = targets
                .clone()
                .into_iter()
                .filter_map(|(key, fams)| {
                    events(&self.states[i].slo, fams).map(|(tot, good)| (key, tot, good))
                })
                .collect();
            self.record(i, t, &samples);
        }
    }

    /// Record the cumulative (events, good) counters of SLO number `slo` at time `t`, per
    /// target key. A target missing from `samples` keeps its last value.
    pub fn record(&mut self, slo: usize, t: f64, samples: &[(&str, f64, f64)]) {
        let st = &mut self.states[slo];
        for &(key, total, good) in samples {
            match st.counters.get_mut(key) {
                Some((ct, cg)) => {
                    ct.observe(total);
                    cg.observe(good);
                }
                None => {
                    st.counters.insert(
                        key.to_string(),
                        (ResetAdjusted::first(total), ResetAdjusted::first(good)),
                    );
                }
            }
        }
        let (total, good) = st.counters.values().fold((0.0, 0.0), |(t, g), (ct, cg)| {
            (t + ct.adjusted, g + cg.adjusted)
        });
        st.history.push(Point { t, total, good });
    }

    /// History sizes per SLO (fine, coarse).
    pub fn history_len(&self, slo: usize) -> (usize, usize) {
        self.states[slo].history.len()
    }

    /// Evaluate every SLO at time `now`.
    pub fn evaluate(&self, now: f64) -> Vec<SloStatus> {
        self.states
            .iter()
            .map(|st| {
                let objective = st.slo.spec.objective;
                let win = |w: &Window| {
                    let (total, good) = st.history.increase(now, w.duration);
                    let sli = sli(total, good);
                    WindowStatus {
                        window: w.label.clone(),
                        duration: w.duration,
                        total,
                        good,
                        sli,
                        burn_rate: burn_rate(sli, objective),
                    }
                };
                let windows: Vec<WindowStatus> = self.config.windows.iter().map(win).collect();
                let burn = |w: &Window| {
                    windows
                        .iter()
                        .find(|x| x.duration == w.duration)
                        .map(|x| x.burn_rate)
                        .unwrap_or_else(|| win(w).burn_rate)
                };
                let holds = |rules: &[AlertRule]| {
                    rules
                        .iter()
                        .any(|r| burn(&r.long) > r.factor && burn(&r.short) > r.factor)
                };
                SloStatus {
                    name: st.slo.spec.name.clone(),
                    description: st.slo.spec.description.clone(),
                    objective,
                    period: st.slo.period.label.clone(),
                    error_budget_remaining: 1.0 - burn(&st.slo.period),
                    page: holds(&self.config.page),
                    ticket: holds(&self.config.ticket),
                    windows,
                }
            })
            .collect()
    }
}

/// Set the `akidb_slo_*` gauges from an evaluation.
pub fn export(statuses: &[SloStatus], m: &akidb_instrumentation::metrics::Metrics) {
    for s in statuses {
        let slo = s.name.as_str();
        m.slo_objective.with_label_values(&[slo]).set(s.objective);
        for w in &s.windows {
            m.slo_sli.with_label_values(&[slo, &w.window]).set(w.sli);
            m.slo_burn_rate
                .with_label_values(&[slo, &w.window])
                .set(w.burn_rate);
        }
        m.slo_budget_remaining
            .with_label_values(&[slo])
            .set(s.error_budget_remaining);
        m.slo_alert
            .with_label_values(&[slo, "page"])
            .set(s.page as i64);
        m.slo_alert
            .with_label_values(&[slo, "ticket"])
            .set(s.ticket as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO_SLO: &str = include_str!("../../../../observability/slo.yaml");

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    fn win<'a>(s: &'a SloStatus, label: &str) -> &'a WindowStatus {
        s.windows.iter().find(|w| w.window == label).unwrap()
    }

    #[test]
    fn parses_the_repository_slo_file() {
        let c = SloConfig::from_yaml(REPO_SLO).unwrap();
        let labels: Vec<_> = c.windows.iter().map(|w| w.label.as_str()).collect();
        assert_eq!(labels, ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]);
        assert_eq!(c.page.len(), 2);
        assert_eq!(c.page[0].long.duration, Duration::from_secs(3600));
        assert_eq!(c.page[0].factor, 14.4);
        assert_eq!(c.ticket[1].short.label, "6h");
        assert!(c.slos.len() >= 2);
        assert!(c.slos.iter().any(|s| s.spec.kind == SloKind::Latency));
        assert!(c.slos.iter().all(|s| s.period.label == "30d"));
    }

    #[test]
    fn accepts_the_short_schema_and_adds_defaults() {
        let c = SloConfig::from_yaml(
            "slos:\n- name: q\n  description: d\n  objective: 0.99\n  period: 7d\n  kind: latency\n  grpc_service: akidb.v1.QueryService\n  grpc_methods: [Search]\n  threshold_seconds: 0.25\n",
        )
        .unwrap();
        let labels: Vec<_> = c.windows.iter().map(|w| w.label.as_str()).collect();
        assert_eq!(labels, ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "7d"]);
        assert_eq!(c.page, SloConfig::from_yaml(REPO_SLO).unwrap().page);
    }

    #[test]
    fn rejects_bad_files() {
        let base = |extra: &str| {
            format!(
                "slos:\n- name: q\n  objective: 0.99\n  period: 30d\n  grpc_service: s\n  grpc_methods: [M]\n{extra}"
            )
        };
        for (bad, why) in [
            (base("  kind: latency\n  threshold_seconds: 0.3\n"), "not a bucket"),
            (base("  kind: availability\n"), "no bad codes"),
            (base("  kind: availability\n  bad_codes: [BROKEN]\n"), "bad code"),
            (base("  kind: availability\n  bad_codes: [INTERNAL]\n  typo: 1\n"), "unknown field"),
            ("slos:\n- name: Q\n  objective: 0.99\n  period: 30d\n  kind: availability\n  grpc_service: s\n  grpc_methods: [M]\n  bad_codes: [INTERNAL]\n".into(), "name"),
            ("slos:\n- name: q\n  objective: 1\n  period: 30d\n  kind: availability\n  grpc_service: s\n  grpc_methods: [M]\n  bad_codes: [INTERNAL]\n".into(), "objective"),
            ("slos:\n- name: q\n  objective: 0.9\n  period: 30x\n  kind: availability\n  grpc_service: s\n  grpc_methods: [M]\n  bad_codes: [INTERNAL]\n".into(), "period"),
            ("version: 2\nslos: []\n".into(), "version"),
        ] {
            assert!(SloConfig::from_yaml(&bad).is_err(), "accepted: {why}");
        }
    }

    fn test_config() -> SloConfig {
        SloConfig::from_yaml(
            "windows: [5m, 30m, 1h, 2h, 6h, 1d]\n\
             slos:\n- name: avail\n  description: d\n  objective: 0.99\n  period: 1d\n  kind: availability\n  grpc_service: akidb.v1.QueryService\n  grpc_methods: [Search]\n  bad_codes: [INTERNAL]\n",
        )
        .unwrap()
    }

    /// Hand-computed: instance a resets between t=600 and t=1200.
    ///   a: (total, good) 100/100 @0, 300/290 @600, 50/40 @1200 (reset), 150/120 @1500
    ///   b: 10/10 @0, 10/10 @600, 10/10 @1200, 20/20 @1500
    /// increase over [0, 1500]: a total 200 + 50 + 100 = 350, good 190 + 40 + 80 = 310;
    ///                          b total 10, good 10  => 360 / 320
    /// increase over [1200, 1500] (5m):   a 100 / 80, b 10 / 10 => 110 / 90
    #[test]
    fn sli_burn_rate_and_budget_with_a_counter_reset() {
        let mut e = SloEngine::new(test_config());
        e.record(0, 0.0, &[("a", 100.0, 100.0), ("b", 10.0, 10.0)]);
        e.record(0, 600.0, &[("a", 300.0, 290.0), ("b", 10.0, 10.0)]);
        e.record(0, 1200.0, &[("a", 50.0, 40.0), ("b", 10.0, 10.0)]);
        e.record(0, 1500.0, &[("a", 150.0, 120.0), ("b", 20.0, 20.0)]);
        let s = &e.evaluate(1500.0)[0];

        let w5 = win(s, "5m");
        assert_eq!((w5.total, w5.good), (110.0, 90.0));
        assert!(close(w5.sli, 90.0 / 110.0));
        assert!(close(w5.burn_rate, (1.0 - 90.0 / 110.0) / 0.01)); // 18.18..
        for label in ["30m", "1h", "2h", "6h", "1d"] {
            let w = win(s, label);
            assert_eq!((w.total, w.good), (360.0, 320.0), "{label}");
            assert!(close(w.sli, 320.0 / 360.0));
            assert!(close(w.burn_rate, 100.0 / 9.0), "{label}: {}", w.burn_rate); // 11.11..
        }
        // Budget: 1 - (40/360) / 0.01 = 1 - 11.11.. = -10.11..
        assert!(close(s.error_budget_remaining, 1.0 - 100.0 / 9.0));
        assert_eq!(s.period, "1d");
        // page: 1h and 5m > 14.4? 11.1 no. 6h and 30m > 6? yes.
        assert!(s.page);
        // ticket: 1d and 2h > 3: yes.
        assert!(s.ticket);

        // At t=3300, nothing new since t=1500: the 5m and 30m windows are empty (SLI 1), so the
        // page (needs 5m or 30m) stops; 1h still covers everything from the oldest point.
        let s = &e.evaluate(3300.0)[0];
        let w5 = win(s, "5m");
        assert_eq!(
            (w5.total, w5.good, w5.sli, w5.burn_rate),
            (0.0, 0.0, 1.0, 0.0)
        );
        assert_eq!(win(s, "30m").total, 0.0);
        assert_eq!(win(s, "1h").total, 360.0);
        assert!(!s.page);
        assert!(s.ticket);
    }

    #[test]
    fn windows_move_and_quiet_services_do_not_alert() {
        let mut e = SloEngine::new(test_config());
        // 100 good events a minute, for two hours, then 50 bad in the last minute.
        let mut total = 0.0;
        let mut good = 0.0;
        for i in 0..=120 {
            e.record(0, i as f64 * 60.0, &[("a", total, good)]);
            total += 100.0;
            good += 100.0;
        }
        let now = 120.0 * 60.0;
        let s = &e.evaluate(now)[0];
        assert!(s.windows.iter().all(|w| w.sli == 1.0 && w.burn_rate == 0.0));
        assert_eq!(win(s, "5m").total, 500.0);
        assert_eq!(win(s, "1h").total, 6000.0);
        assert_eq!(win(s, "2h").total, 12000.0);
        assert_eq!(s.error_budget_remaining, 1.0);
        assert!(!s.page && !s.ticket);

        total += 50.0;
        e.record(0, now + 60.0, &[("a", total, good)]);
        let s = &e.evaluate(now + 60.0)[0];
        // 5m = the last 5 intervals: 4 x 100 good, then 100 good + 50 bad.
        let w5 = win(s, "5m");
        assert_eq!((w5.total, w5.good), (550.0, 500.0));
        assert!(close(w5.burn_rate, (50.0 / 550.0) / 0.01));
        let w1h = win(s, "1h");
        assert_eq!((w1h.total, w1h.good), (6050.0, 6000.0));
        // page: 1h burn 0.83 < 14.4; 6h = all 12150 events, 50 bad: 0.41 < 6. No alerts.
        assert!(!s.page && !s.ticket);
        assert!(close(
            s.error_budget_remaining,
            1.0 - (50.0 / 12150.0) / 0.01
        ));
    }

    #[test]
    fn history_is_bounded_and_long_windows_stay_accurate() {
        // Two days of a 5 s scrape, 10 events per scrape of which 9 good.
        let cfg = test_config();
        let longest = cfg.longest().as_secs(); // 3d: the default ticket alert's long window
        assert_eq!(longest, 3 * 86400);
        let mut e = SloEngine::new(cfg);
        let step = 5.0;
        let n = (2 * 86400) / 5;
        for i in 0..=n {
            let c = i as f64 * 10.0;
            e.record(0, i as f64 * step, &[("a", c, c * 0.9)]);
        }
        let now = n as f64 * step;
        let (fine, coarse) = e.history_len(0);
        assert!(fine <= (FINE_SPAN.as_secs() / 5 + 2) as usize, "{fine}");
        // Two days of one point a minute (the retention, 3 days, is not reached yet).
        assert!(coarse <= (2 * 86400 / 60 + 2) as usize, "{coarse}");
        let s = &e.evaluate(now)[0];
        for w in &s.windows {
            assert!(close(w.sli, 0.9), "{}: {}", w.window, w.sli);
            let exact = w.duration.as_secs_f64().min(now) / step * 10.0;
            // Within one coarse step of the exact count.
            assert!(
                (w.total - exact).abs() <= 60.0 / step * 10.0,
                "{}: {}",
                w.window,
                w.total
            );
            if w.duration <= FINE_SPAN {
                assert_eq!(w.total, exact, "{}", w.window);
            }
        }
    }

    #[test]
    fn events_from_a_rendered_exposition() {
        use akidb_instrumentation::metrics::{Component, Metrics};
        let m = Metrics::new(Component::Query);
        let req = |method: &str, code: &str, n: u64| {
            m.grpc_server_requests
                .with_label_values(&["akidb.v1.QueryService", method, code])
                .inc_by(n)
        };
        req("Search", "OK", 90);
        req("Search", "INTERNAL", 4);
        req("Search", "INVALID_ARGUMENT", 5);
        req("Get", "UNAVAILABLE", 2);
        req("Scroll", "INTERNAL", 100); // not in the SLO
        let h = m
            .grpc_server_duration
            .with_label_values(&["akidb.v1.QueryService", "Search"]);
        for v in [0.01, 0.05, 0.1, 0.2, 3.0] {
            h.observe(v);
        }
        m.grpc_server_duration
            .with_label_values(&["akidb.v1.QueryService", "Get"])
            .observe(5.0);
        let fams =
            akidb_instrumentation::exposition::parse(&String::from_utf8(m.render()).unwrap())
                .unwrap();
        let c = SloConfig::from_yaml(REPO_SLO).unwrap();
        let avail = c
            .slos
            .iter()
            .find(|s| s.spec.name == "query-availability")
            .unwrap();
        // Search + Get + Count: 90 + 4 + 5 + 2 = 101 events; bad: INTERNAL 4 + UNAVAILABLE 2.
        assert_eq!(events(avail, &fams), Some((101.0, 95.0)));
        let lat = c
            .slos
            .iter()
            .find(|s| s.spec.name == "query-latency")
            .unwrap();
        // Search only: 5 observations, 3 at or under 0.1 s.
        assert_eq!(events(lat, &fams), Some((5.0, 3.0)));
        let ingest = c
            .slos
            .iter()
            .find(|s| s.spec.name == "ingest-availability")
            .unwrap();
        assert_eq!(events(ingest, &fams), None);
    }
}
