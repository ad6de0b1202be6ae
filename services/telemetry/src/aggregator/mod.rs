//! The telemetry aggregator: scrapes every service's `/metrics`, re-exposes the series at
//! `/federate`, and evaluates the SLOs of `observability/slo.yaml`.
//!
//! - [`scrape`]: the HTTP fetch of each target (formats: [`akidb_instrumentation::exposition`]).
//! - [`federate`]: the `/federate` exposition.
//! - [`slo`]: slo.yaml, the event history and the SLO math.
//!
//! [`Aggregator`] ties them together; [`TelemetryApi`] serves it over gRPC.

pub mod duration;
pub mod federate;
pub mod scrape;
pub mod slo;

pub use duration::parse_duration;

use akidb_instrumentation::exposition::{Format, MetricFamily};
use akidb_proto::v1 as pb;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A scrape target: which service, its `host:port`, and the URL scraped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: String,
    pub instance: String,
    pub url: String,
}

impl Target {
    /// `host:port` (scrapes `http://host:port/metrics`) or a full `http(s)://host:port/path`
    /// (`https://`: checked against `--ca-cert`).
    pub fn new(service: &str, address: &str) -> Result<Self, String> {
        let service = service.trim();
        if service.is_empty()
            || !service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!("invalid service name {service:?}"));
        }
        let address = address.trim();
        let (instance, url) = if let Some(rest) = address
            .strip_prefix("http://")
            .or_else(|| address.strip_prefix("https://"))
        {
            let host = rest.split('/').next().unwrap_or_default();
            let url = if rest.contains('/') {
                address.to_string()
            } else {
                format!("{address}/metrics")
            };
            (host.to_string(), url)
        } else {
            (address.to_string(), format!("http://{address}/metrics"))
        };
        if instance.is_empty() || instance.contains(char::is_whitespace) {
            return Err(format!("invalid target address {address:?}"));
        }
        Ok(Target {
            service: service.to_string(),
            instance,
            url,
        })
    }
}

/// Parse `service=host:port,service=host:port,...` (a service may appear more than once).
pub fn parse_targets(s: &str) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (service, address) = part
            .split_once('=')
            .ok_or_else(|| format!("scrape target {part:?} is not service=host:port"))?;
        let t = Target::new(service, address)?;
        if out
            .iter()
            .any(|o| o.service == t.service && o.instance == t.instance)
        {
            return Err(format!("scrape target {part:?} appears twice"));
        }
        out.push(t);
    }
    Ok(out)
}

/// The aggregator's time, in seconds from an arbitrary origin. Injectable so that tests can
/// feed the SLO history known samples at known times.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> f64;
}

/// Monotonic time since the clock was made.
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct ManualClock(Mutex<f64>);

impl ManualClock {
    pub fn set(&self, t: f64) {
        *self.0.lock().unwrap() = t;
    }
    pub fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d.as_secs_f64();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        *self.0.lock().unwrap()
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> f64 {
        (**self).now()
    }
}

#[derive(Debug, Clone, Default)]
struct TargetState {
    up: bool,
    duration: Option<Duration>,
    last_error: String,
    /// Families of the last scrape; empty when it failed.
    families: Arc<Vec<MetricFamily>>,
}

/// The state of one target, as `GetTargets` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    pub service: String,
    pub instance: String,
    pub up: bool,
    pub last_scrape_duration: Option<Duration>,
    pub last_error: String,
}

/// One target and what its last scrape found.
#[derive(Debug, Clone)]
struct Entry {
    target: Target,
    state: TargetState,
    /// Found in etcd (replaced by [`Aggregator::set_discovered`]), not given by a flag.
    discovered: bool,
}

/// Scrapes targets, keeps their last expositions and the SLO history.
pub struct Aggregator {
    client: reqwest::Client,
    timeout: Duration,
    entries: RwLock<Vec<Entry>>,
    slo: Mutex<slo::SloEngine>,
    clock: Box<dyn Clock>,
}

/// The HTTP client of the scrapes: `headers` on every request; `https://` targets checked
/// against the process's CA (`--ca-cert`) and shown its certificate, as every call between
/// the services ([`akidb_instrumentation::tls::client`]).
fn scrape_client(timeout: Duration, headers: http::HeaderMap) -> reqwest::Client {
    let tls = akidb_instrumentation::tls::client();
    let mut b = reqwest::Client::builder()
        .connect_timeout(timeout)
        .pool_max_idle_per_host(1)
        .default_headers(headers);
    if let Some(ca) = tls.ca_pem() {
        match reqwest::Certificate::from_pem(ca) {
            Ok(c) => b = b.tls_built_in_root_certs(false).add_root_certificate(c),
            Err(e) => tracing::error!(error = %e, "the CA certificate (--ca-cert) does not load"),
        }
    }
    if let Some((cert, key)) = tls.identity_pem() {
        let pem = [cert, b"\n", key].concat();
        match reqwest::Identity::from_pem(&pem) {
            Ok(id) => b = b.identity(id),
            Err(e) => tracing::error!(error = %e, "the certificate (--tls-cert) does not load"),
        }
    }
    b.build().unwrap_or_default()
}

impl Aggregator {
    pub fn new(targets: Vec<Target>, slos: slo::SloConfig, timeout: Duration) -> Self {
        Self::with_clock(targets, slos, timeout, MonotonicClock::default())
    }

    pub fn with_clock(
        targets: Vec<Target>,
        slos: slo::SloConfig,
        timeout: Duration,
        clock: impl Clock,
    ) -> Self {
        let client = scrape_client(timeout, http::HeaderMap::new());
        let entries = targets
            .into_iter()
            .map(|target| Entry {
                target,
                state: TargetState::default(),
                discovered: false,
            })
            .collect();
        Self {
            client,
            timeout,
            entries: RwLock::new(entries),
            slo: Mutex::new(slo::SloEngine::new(slos)),
            clock: Box::new(clock),
        }
    }

    /// Scrape with `Authorization: Bearer <token>` (the targets' `--metrics-token`).
    pub fn with_scrape_token(mut self, token: Option<&str>) -> Self {
        let Some(token) = token else { return self };
        let mut headers = http::HeaderMap::new();
        if let Ok(mut v) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
            v.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, v);
        }
        self.client = scrape_client(self.timeout, headers);
        self
    }

    /// Every target now: those of `--scrape-targets`, then those found in etcd.
    pub fn targets(&self) -> Vec<Target> {
        let entries = self.entries.read().unwrap();
        entries.iter().map(|e| e.target.clone()).collect()
    }

    /// The targets of `service` found in etcd now: new ones are added (scraped from the next
    /// round), gone ones removed, the others keep their state. Targets given by
    /// `--scrape-targets` stay whatever is found.
    pub fn set_discovered(&self, service: &str, found: Vec<Target>) {
        let mut entries = self.entries.write().unwrap();
        let before = entries.len();
        entries.retain(|e| {
            let keep = !e.discovered
                || e.target.service != service
                || found.iter().any(|f| f == &e.target);
            if !keep {
                tracing::info!(service, instance = %e.target.instance, "target gone from etcd; no longer scraped");
            }
            keep
        });
        for t in found {
            if !entries.iter().any(|e| e.target == t) {
                tracing::info!(service, instance = %t.instance, "target found in etcd; scraped from now on");
                entries.push(Entry {
                    target: t,
                    state: TargetState::default(),
                    discovered: true,
                });
            }
        }
        if entries.len() != before {
            tracing::debug!(targets = entries.len(), "targets changed");
        }
    }

    /// Scrape every target concurrently (each within the timeout), then update the SLO
    /// history and the `akidb_slo_*` gauges.
    pub async fn scrape_once(&self) {
        let now = self.clock.now();
        let targets = self.targets();
        let results = futures::future::join_all(
            targets
                .iter()
                .map(|t| scrape::scrape(&self.client, &t.url, self.timeout)),
        )
        .await;
        let m = akidb_instrumentation::metrics::metrics();
        {
            let mut entries = self.entries.write().unwrap();
            for (t, r) in targets.iter().zip(results) {
                // A target removed while it was scraped is not brought back.
                let Some(st) = entries
                    .iter_mut()
                    .find(|e| &e.target == t)
                    .map(|e| &mut e.state)
                else {
                    continue;
                };
                st.duration = Some(r.duration);
                match r.result {
                    Ok(families) => {
                        if !st.up {
                            tracing::info!(service = %t.service, instance = %t.instance, "target up");
                        }
                        st.up = true;
                        st.last_error.clear();
                        st.families = Arc::new(families);
                        m.aggregator_scrapes
                            .with_label_values(&[&t.service, "success"])
                            .inc();
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if st.up || st.last_error != msg {
                            tracing::warn!(service = %t.service, instance = %t.instance, url = %t.url, error = %msg, "scrape failed");
                        }
                        st.up = false;
                        st.last_error = msg;
                        st.families = Arc::new(Vec::new());
                        m.aggregator_scrapes
                            .with_label_values(&[&t.service, "error"])
                            .inc();
                    }
                }
            }
        }
        let snapshot = self.snapshot();
        let keys: Vec<String> = snapshot
            .iter()
            .map(|e| format!("{}/{}", e.target.service, e.target.instance))
            .collect();
        let statuses = {
            let mut engine = self.slo.lock().unwrap();
            engine.observe_scrape(
                now,
                keys.iter()
                    .zip(&snapshot)
                    .filter(|(_, e)| e.state.up)
                    .map(|(k, e)| (k.as_str(), e.state.families.as_slice())),
            );
            engine.evaluate(now)
        };
        slo::export(&statuses, m);
    }

    fn snapshot(&self) -> Vec<Entry> {
        self.entries.read().unwrap().clone()
    }

    /// Scrape every `interval` (the first time at once) until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = self.scrape_once() => {}
                    }
                }
            }
        }
    }

    /// The `/federate` exposition of the last scrape, in `format`.
    pub fn federate(&self, format: Format) -> String {
        let snapshot = self.snapshot();
        let views: Vec<federate::TargetView<'_>> = snapshot
            .iter()
            .map(|e| federate::TargetView {
                service: &e.target.service,
                instance: &e.target.instance,
                up: e.state.up,
                duration: e.state.duration,
                families: &e.state.families,
            })
            .collect();
        federate::render(&views, format)
    }

    /// `GET /federate`, to mount next to `/metrics` with
    /// [`akidb_instrumentation::http::serve`]. Query parameters (`match[]`) are accepted and ignored:
    /// every series is returned. OpenMetrics (with exemplars) when the client asks for it.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        let agg = Arc::clone(self);
        axum::Router::new().route(
            "/federate",
            axum::routing::get(move |headers: http::HeaderMap| {
                let agg = Arc::clone(&agg);
                async move {
                    let format = Format::accepted(&headers);
                    (
                        [(http::header::CONTENT_TYPE, format.content_type())],
                        agg.federate(format),
                    )
                }
            }),
        )
    }

    /// Every target's state.
    pub fn target_status(&self) -> Vec<TargetStatus> {
        self.snapshot()
            .into_iter()
            .map(
                |Entry {
                     target: t,
                     state: s,
                     ..
                 }| TargetStatus {
                    service: t.service,
                    instance: t.instance,
                    up: s.up,
                    last_scrape_duration: s.duration,
                    last_error: if s.duration.is_none() {
                        "not scraped yet".into()
                    } else {
                        s.last_error
                    },
                },
            )
            .collect()
    }

    /// Every SLO evaluated now.
    pub fn slo_status(&self) -> Vec<slo::SloStatus> {
        let now = self.clock.now();
        self.slo.lock().unwrap().evaluate(now)
    }
}

/// `akidb.v1.TelemetryService` over an [`Aggregator`].
#[derive(Clone)]
pub struct TelemetryApi {
    pub aggregator: Arc<Aggregator>,
}

#[tonic::async_trait]
impl pb::telemetry_service_server::TelemetryService for TelemetryApi {
    async fn get_slo_status(
        &self,
        _req: tonic::Request<pb::GetSloStatusRequest>,
    ) -> Result<tonic::Response<pb::GetSloStatusResponse>, tonic::Status> {
        let slos = self
            .aggregator
            .slo_status()
            .into_iter()
            .map(|s| pb::SloStatus {
                name: s.name,
                description: s.description,
                objective: s.objective,
                period: s.period,
                windows: s
                    .windows
                    .into_iter()
                    .map(|w| pb::SloWindow {
                        window: w.window,
                        sli: w.sli,
                        burn_rate: w.burn_rate,
                        total_events: w.total,
                        good_events: w.good,
                    })
                    .collect(),
                error_budget_remaining: s.error_budget_remaining,
                page_alert: s.page,
                ticket_alert: s.ticket,
            })
            .collect();
        Ok(tonic::Response::new(pb::GetSloStatusResponse { slos }))
    }

    async fn get_targets(
        &self,
        _req: tonic::Request<pb::GetTargetsRequest>,
    ) -> Result<tonic::Response<pb::GetTargetsResponse>, tonic::Status> {
        let targets = self
            .aggregator
            .target_status()
            .into_iter()
            .map(|t| pb::ScrapeTarget {
                service: t.service,
                instance: t.instance,
                up: t.up,
                last_scrape_duration_seconds: t
                    .last_scrape_duration
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
                last_error: t.last_error,
            })
            .collect();
        Ok(tonic::Response::new(pb::GetTargetsResponse { targets }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t =
            parse_targets("storage=127.0.0.1:9103, query=127.0.0.1:9101,query=http://q2:9101/m")
                .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].service, "storage");
        assert_eq!(t[0].instance, "127.0.0.1:9103");
        assert_eq!(t[0].url, "http://127.0.0.1:9103/metrics");
        assert_eq!(t[2].instance, "q2:9101");
        assert_eq!(t[2].url, "http://q2:9101/m");
        assert_eq!(parse_targets("").unwrap(), vec![]);
        assert!(parse_targets("storage").is_err());
        assert!(parse_targets("=x:1").is_err());
        assert!(parse_targets("a=x:1,a=x:1").is_err());
        assert!(parse_targets("a b=x:1").is_err());
    }
}
