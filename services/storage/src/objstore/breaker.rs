//! Retries and a circuit breaker around an [`ObjectStore`].
//!
//! [`ResilientStore`] is itself an `ObjectStore`: every call retries transient failures with
//! exponential backoff and jitter, and every attempt passes the [`Breaker`] first.
//!
//! The breaker follows linkerd's split between a state machine and a gate: [`Machine`] is a
//! pure state machine driven by calls, outcomes and the clock (no I/O, no timers), and
//! [`Breaker`] is the gate callers see: it asks the machine for a [`Permit`], and a timer
//! task moves an open breaker to half-open when its cool-down ends.
//!
//! ```text
//!            N consecutive failures, or failure ratio >= R over the window (>= M calls)
//!   Closed ----------------------------------------------------------------------> Open
//!     ^                                                                           |  ^
//!     | `close_after` probes succeed                          cool-down elapsed   |  |
//!     |                                                                           v  |
//!     +---------------------------------- HalfOpen ------------------------------+  |
//!                                (up to `half_open_probes` calls at once)            |
//!                                   any probe fails: Open, cool-down doubled ---------+
//! ```
//!
//! What counts as a failure: only [`ObjectStoreError::Transient`] (timeouts, refused
//! connections, 5xx). `NotFound` and `Permanent` answers prove the store is up and count as
//! successes for the breaker (they are still errors to the caller).

use super::error::{BreakerOpen, BreakerState, ErrorKind, ObjectStoreError, Operation, Result};
use super::store::{ObjectMeta, ObjectStore};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::Instrument;

/// Circuit breaker thresholds (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct BreakerConfig {
    /// Open the breaker after this many consecutive failed calls (0: never on this count).
    #[arg(
        long = "breaker-consecutive-failures",
        env = "AKIDB_BREAKER_CONSECUTIVE_FAILURES",
        default_value_t = 5
    )]
    pub consecutive_failures: u32,
    /// Open the breaker when at least this share (0 to 1) of the calls in the window failed
    /// (1.0 or more: never on the ratio).
    #[arg(
        long = "breaker-failure-ratio",
        env = "AKIDB_BREAKER_FAILURE_RATIO",
        default_value_t = 0.5
    )]
    pub failure_ratio: f64,
    /// Sliding window for the failure ratio (ms).
    #[arg(
        long = "breaker-window-ms",
        env = "AKIDB_BREAKER_WINDOW_MS",
        default_value_t = 30_000
    )]
    pub window_ms: u64,
    /// Calls the window must hold before the ratio can open the breaker.
    #[arg(
        long = "breaker-min-calls",
        env = "AKIDB_BREAKER_MIN_CALLS",
        default_value_t = 20
    )]
    pub min_calls: u32,
    /// How long an open breaker fails calls fast before letting probes through (ms). Doubles
    /// each time the probes fail, up to `--breaker-max-open-ms`.
    #[arg(
        long = "breaker-open-ms",
        env = "AKIDB_BREAKER_OPEN_MS",
        default_value_t = 10_000
    )]
    pub open_ms: u64,
    /// Longest cool-down after repeated failed probes (ms).
    #[arg(
        long = "breaker-max-open-ms",
        env = "AKIDB_BREAKER_MAX_OPEN_MS",
        default_value_t = 120_000
    )]
    pub max_open_ms: u64,
    /// Calls let through at once while half-open; further calls fail fast.
    #[arg(
        long = "breaker-half-open-probes",
        env = "AKIDB_BREAKER_HALF_OPEN_PROBES",
        default_value_t = 3
    )]
    pub half_open_probes: u32,
    /// Successful probes that close a half-open breaker.
    #[arg(
        long = "breaker-close-after",
        env = "AKIDB_BREAKER_CLOSE_AFTER",
        default_value_t = 1
    )]
    pub close_after: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window_ms: 30_000,
            min_calls: 20,
            open_ms: 10_000,
            max_open_ms: 120_000,
            half_open_probes: 3,
            close_after: 1,
        }
    }
}

impl BreakerConfig {
    fn open_for(&self) -> Duration {
        Duration::from_millis(self.open_ms.max(1))
    }
    fn max_open_for(&self) -> Duration {
        Duration::from_millis(self.max_open_ms.max(self.open_ms).max(1))
    }
    fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.max(10))
    }
}

/// Retry policy for transient failures (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct RetryConfig {
    /// Attempts per object store call, the first included (1: no retries). Only transient
    /// failures are retried, and never while the breaker is open.
    #[arg(
        long = "s3-retry-attempts",
        env = "AKIDB_S3_RETRY_ATTEMPTS",
        default_value_t = 4
    )]
    pub attempts: u32,
    /// Backoff before the first retry (ms); doubles for each further retry, with jitter.
    #[arg(
        long = "s3-retry-base-ms",
        env = "AKIDB_S3_RETRY_BASE_MS",
        default_value_t = 100
    )]
    pub base_ms: u64,
    /// Longest backoff between two attempts (ms).
    #[arg(
        long = "s3-retry-max-ms",
        env = "AKIDB_S3_RETRY_MAX_MS",
        default_value_t = 5_000
    )]
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 4,
            base_ms: 100,
            max_ms: 5_000,
        }
    }
}

impl RetryConfig {
    /// Backoff before retry number `retry` (1 = first retry): `base * 2^(retry-1)` capped at
    /// `max`, then a random value in its upper half ("equal jitter"), so retries of many
    /// callers spread out but still back off.
    pub fn backoff(&self, retry: u32) -> Duration {
        akidb_client::backoff(self.base_ms, self.max_ms, retry)
    }
}

/// A snapshot of the breaker for AdminService `BreakerGet`/`BreakerReset` and status pages.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerStatus {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Failed share of the calls in the current window (0 when the window is empty).
    pub failure_ratio: f64,
    /// Calls in the current window.
    pub window_calls: u32,
    /// When an open breaker lets probes through (wall clock); `None` unless open.
    pub open_until: Option<SystemTime>,
    /// Times the breaker opened since start.
    pub opened_total: u64,
}

impl BreakerStatus {
    /// `open_until` as Unix milliseconds (0 unless open), as in the `BreakerStatus` proto.
    pub fn open_until_unix_ms(&self) -> u64 {
        self.open_until
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Instant,
    ok: u32,
    failed: u32,
}

/// Outcomes over a sliding window, kept in 10 buckets.
#[derive(Debug)]
struct Window {
    span: Duration,
    buckets: VecDeque<Bucket>,
}

impl Window {
    fn new(span: Duration) -> Self {
        Window {
            span,
            buckets: VecDeque::with_capacity(11),
        }
    }

    fn width(&self) -> Duration {
        self.span / 10
    }

    /// Drop buckets that started a whole window ago or earlier.
    fn prune(&mut self, now: Instant) {
        while let Some(b) = self.buckets.front() {
            if b.start + self.span <= now {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    fn record(&mut self, now: Instant, ok: bool) {
        self.prune(now);
        let width = self.width();
        let need_new = match self.buckets.back() {
            Some(b) => now >= b.start + width,
            None => true,
        };
        if need_new {
            self.buckets.push_back(Bucket {
                start: now,
                ok: 0,
                failed: 0,
            });
        }
        let b = self.buckets.back_mut().expect("just ensured");
        if ok {
            b.ok += 1;
        } else {
            b.failed += 1;
        }
    }

    /// (calls, failures) in the window ending at `now`.
    fn totals(&mut self, now: Instant) -> (u32, u32) {
        self.prune(now);
        self.buckets
            .iter()
            .fold((0, 0), |(c, f), b| (c + b.ok + b.failed, f + b.failed))
    }

    fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open {
        until: Instant,
        cool_down: Duration,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
        cool_down: Duration,
    },
}

impl State {
    fn public(&self) -> BreakerState {
        match self {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// What a permit was issued as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// A normal call while closed.
    Closed,
    /// A probe of the half-open episode with this generation.
    Probe(u64),
}

/// The breaker state machine. Pure: time is passed in, nothing is spawned or logged; every
/// method returns the state change it made, if any.
#[derive(Debug)]
pub(crate) struct Machine {
    cfg: BreakerConfig,
    state: State,
    consecutive_failures: u32,
    window: Window,
    /// Bumped on every state change; probes and timers of an older episode are ignored.
    generation: u64,
    opened_total: u64,
}

/// A state change: (from, to).
pub(crate) type Transition = Option<(BreakerState, BreakerState)>;

impl Machine {
    pub(crate) fn new(cfg: BreakerConfig) -> Self {
        let window = Window::new(cfg.window());
        Machine {
            cfg,
            state: State::Closed,
            consecutive_failures: 0,
            window,
            generation: 0,
            opened_total: 0,
        }
    }

    fn set(&mut self, next: State) -> Transition {
        let from = self.state.public();
        self.state = next;
        self.generation += 1;
        let to = next.public();
        if to == BreakerState::Open {
            self.opened_total += 1;
        }
        (from != to).then_some((from, to))
    }

    fn open(&mut self, now: Instant, cool_down: Duration) -> Transition {
        self.set(State::Open {
            until: now + cool_down,
            cool_down,
        })
    }

    /// Move Open to HalfOpen if the cool-down is over.
    pub(crate) fn poll(&mut self, now: Instant) -> Transition {
        if let State::Open { until, cool_down } = self.state
            && now >= until
        {
            return self.set(State::HalfOpen {
                in_flight: 0,
                successes: 0,
                cool_down,
            });
        }
        None
    }

    /// Ask to make a call.
    pub(crate) fn acquire(
        &mut self,
        now: Instant,
    ) -> (std::result::Result<Ticket, BreakerOpen>, Transition) {
        let t = self.poll(now);
        let res = match &mut self.state {
            State::Closed => Ok(Ticket::Closed),
            State::Open { until, .. } => Err(BreakerOpen {
                state: BreakerState::Open,
                retry_in: until.saturating_duration_since(now),
            }),
            State::HalfOpen { in_flight, .. } => {
                if *in_flight < self.cfg.half_open_probes.max(1) {
                    *in_flight += 1;
                    Ok(Ticket::Probe(self.generation))
                } else {
                    Err(BreakerOpen {
                        state: BreakerState::HalfOpen,
                        retry_in: Duration::ZERO,
                    })
                }
            }
        };
        (res, t)
    }

    /// Report the outcome of a call made with `ticket`: `ok` = the store answered.
    pub(crate) fn record(&mut self, now: Instant, ticket: Ticket, ok: bool) -> Transition {
        self.window.record(now, ok);
        if ok {
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
        match (ticket, self.state) {
            (
                Ticket::Probe(generation),
                State::HalfOpen {
                    in_flight,
                    successes,
                    cool_down,
                },
            ) if generation == self.generation => {
                if ok {
                    let successes = successes + 1;
                    if successes >= self.cfg.close_after.max(1) {
                        self.consecutive_failures = 0;
                        self.window.clear();
                        self.set(State::Closed)
                    } else {
                        self.state = State::HalfOpen {
                            in_flight: in_flight.saturating_sub(1),
                            successes,
                            cool_down,
                        };
                        None
                    }
                } else {
                    let next = (cool_down * 2).min(self.cfg.max_open_for());
                    self.open(now, next)
                }
            }
            (_, State::Closed) if !ok && self.should_trip(now) => {
                let d = self.cfg.open_for();
                self.open(now, d)
            }
            // Late outcomes of calls admitted before the last state change.
            _ => None,
        }
    }

    /// A permit was dropped without an outcome (the caller gave up): free its probe slot.
    pub(crate) fn cancel(&mut self, ticket: Ticket) {
        if let (Ticket::Probe(generation), State::HalfOpen { in_flight, .. }) =
            (ticket, &mut self.state)
            && generation == self.generation
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn should_trip(&mut self, now: Instant) -> bool {
        let n = self.cfg.consecutive_failures;
        if n > 0 && self.consecutive_failures >= n {
            return true;
        }
        let (calls, failed) = self.window.totals(now);
        calls > 0
            && calls >= self.cfg.min_calls
            && self.cfg.failure_ratio < 1.0
            && failed as f64 / calls as f64 >= self.cfg.failure_ratio
    }

    /// Force the breaker closed and forget the failure history (operator action).
    pub(crate) fn reset(&mut self) -> Transition {
        self.consecutive_failures = 0;
        self.window.clear();
        self.set(State::Closed)
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state.public()
    }

    fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Status at `now`; `open_until` is mapped to wall-clock time by the caller.
    fn status(&mut self, now: Instant) -> (BreakerStatus, Option<Instant>) {
        let (calls, failed) = self.window.totals(now);
        (
            BreakerStatus {
                state: self.state.public(),
                consecutive_failures: self.consecutive_failures,
                failure_ratio: if calls == 0 {
                    0.0
                } else {
                    failed as f64 / calls as f64
                },
                window_calls: calls,
                open_until: None,
                opened_total: self.opened_total,
            },
            self.open_until(),
        )
    }
}

/// The gate around the object store: callers get a [`Permit`] or a [`BreakerOpen`].
///
/// Cheap to share (`Arc<Breaker>`); the same breaker serves [`ResilientStore`] and the
/// AdminService status calls. State changes update `akidb_breaker_state` and
/// `akidb_breaker_transitions_total` and are logged.
#[derive(Debug)]
pub struct Breaker {
    machine: Mutex<Machine>,
    me: Weak<Breaker>,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Arc<Self> {
        let b = Arc::new_cyclic(|me| Breaker {
            machine: Mutex::new(Machine::new(cfg)),
            me: me.clone(),
        });
        publish_state(BreakerState::Closed);
        b
    }

    /// Ask to make one call to the store.
    pub fn acquire(&self) -> std::result::Result<Permit, BreakerOpen> {
        let now = Instant::now();
        let (res, t) = self.machine.lock().acquire(now);
        self.after(t);
        res.map(|ticket| Permit {
            breaker: self.me.upgrade().expect("breaker alive while borrowed"),
            ticket: Some(ticket),
        })
    }

    pub fn state(&self) -> BreakerState {
        let t = self.machine.lock().poll(Instant::now());
        self.after(t);
        self.machine.lock().state()
    }

    pub fn status(&self) -> BreakerStatus {
        let now = Instant::now();
        let wall = SystemTime::now();
        let (mut st, until, t) = {
            let mut m = self.machine.lock();
            let t = m.poll(now);
            let (st, until) = m.status(now);
            (st, until, t)
        };
        self.after(t);
        st.open_until = until.map(|u| wall + u.saturating_duration_since(now));
        st
    }

    /// Close the breaker and forget the failure history (AdminService `BreakerReset`).
    pub fn reset(&self) -> BreakerStatus {
        let t = self.machine.lock().reset();
        if t.is_some() {
            tracing::warn!("object store circuit breaker reset to closed by operator");
        }
        self.after(t);
        self.status()
    }

    fn record(&self, ticket: Ticket, ok: bool) {
        let t = self.machine.lock().record(Instant::now(), ticket, ok);
        self.after(t);
    }

    /// Publish a transition: metrics, log, and the timer that ends an open period.
    fn after(&self, t: Transition) {
        let Some((from, to)) = t else { return };
        publish_state(to);
        akidb_instrumentation::metrics()
            .breaker_transitions
            .with_label_values(&[to.as_str()])
            .inc();
        match to {
            BreakerState::Open => {
                let (until, generation, consecutive) = {
                    let m = self.machine.lock();
                    (m.open_until(), m.generation, m.consecutive_failures)
                };
                let retry_in = until
                    .map(|u| u.saturating_duration_since(Instant::now()))
                    .unwrap_or_default();
                tracing::warn!(
                    %from,
                    consecutive_failures = consecutive,
                    open_ms = retry_in.as_millis() as u64,
                    "object store circuit breaker opened; calls fail fast until probes succeed"
                );
                if let (Some(until), Ok(rt)) = (until, tokio::runtime::Handle::try_current()) {
                    let me = self.me.clone();
                    rt.spawn(async move {
                        tokio::time::sleep_until(until).await;
                        let Some(b) = me.upgrade() else { return };
                        let t = {
                            let mut m = b.machine.lock();
                            if m.generation != generation {
                                return;
                            }
                            m.poll(Instant::now())
                        };
                        b.after(t);
                    });
                }
            }
            BreakerState::HalfOpen => {
                tracing::info!(%from, "object store circuit breaker half-open; probing")
            }
            BreakerState::Closed => {
                tracing::info!(%from, "object store circuit breaker closed")
            }
        }
    }
}

fn publish_state(current: BreakerState) {
    let m = akidb_instrumentation::metrics();
    for s in BreakerState::ALL {
        m.breaker_state
            .with_label_values(&[s.as_str()])
            .set(i64::from(s == current));
    }
}

/// Leave to make one call. Report the outcome with [`Permit::record`]; dropping it without
/// an outcome (the caller gave up) frees a probe slot and counts nothing.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    ticket: Option<Ticket>,
}

impl Permit {
    /// `answered`: the store answered (success, or a `NotFound`/`Permanent` error); false
    /// for a transient failure.
    pub fn record(mut self, answered: bool) {
        if let Some(t) = self.ticket.take() {
            self.breaker.record(t, answered);
        }
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        matches!(self.ticket, Some(Ticket::Probe(_)))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.breaker.machine.lock().cancel(t);
        }
    }
}

/// An [`ObjectStore`] with retries and a circuit breaker around another one.
///
/// Each call: up to `retry.attempts` attempts; each attempt first passes the breaker (an
/// open breaker fails the call at once with [`ObjectStoreError::BreakerOpen`], counted as
/// `outcome="rejected"`); transient failures are retried after [`RetryConfig::backoff`].
/// Every attempt that reaches the store is counted in `akidb_s3_operations_total` (`success`
/// also for `NotFound`: the store answered) and timed in
/// `akidb_s3_operation_duration_seconds`; retries in `akidb_s3_retries_total`.
#[derive(Debug, Clone)]
pub struct ResilientStore {
    inner: Arc<dyn ObjectStore>,
    breaker: Arc<Breaker>,
    retry: RetryConfig,
}

impl ResilientStore {
    pub fn new(inner: Arc<dyn ObjectStore>, breaker: Arc<Breaker>, retry: RetryConfig) -> Self {
        ResilientStore {
            inner,
            breaker,
            retry,
        }
    }

    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// The wrapped store (no retries, no breaker).
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn call<T, F, Fut>(&self, op: Operation, key: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let metrics = akidb_instrumentation::metrics();
        let label = op.as_str();
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = match self.breaker.acquire() {
                Ok(p) => p,
                Err(open) => {
                    metrics
                        .s3_operations
                        .with_label_values(&[label, "rejected"])
                        .inc();
                    return Err(open.into());
                }
            };
            let started = Instant::now();
            let span = akidb_instrumentation::context::step_span(|| {
                tracing::info_span!("objstore", op = label, key, attempt)
            });
            let res = f().instrument(span.clone()).await;
            akidb_instrumentation::exemplar::TracedHistogram::new(&metrics.s3_duration, &[label])
                .observe_traced(
                    started.elapsed().as_secs_f64(),
                    akidb_instrumentation::context::span_trace_id(&span),
                );
            let kind = res.as_ref().err().map(ObjectStoreError::kind);
            let outcome = match kind {
                None | Some(ErrorKind::NotFound) => "success",
                Some(_) => "error",
            };
            metrics
                .s3_operations
                .with_label_values(&[label, outcome])
                .inc();
            match kind {
                Some(ErrorKind::Transient) => {
                    permit.record(false);
                    let e = res.err().expect("error kind implies error");
                    if attempt >= attempts {
                        tracing::debug!(op = label, key, attempt, error = %e, "object store call failed; no attempts left");
                        return Err(e);
                    }
                    let wait = self.retry.backoff(attempt);
                    tracing::debug!(op = label, key, attempt, wait_ms = wait.as_millis() as u64, error = %e, "object store call failed; retrying");
                    metrics.s3_retries.with_label_values(&[label]).inc();
                    tokio::time::sleep(wait).await;
                }
                // An inner breaker rejected: no evidence about the store either way.
                Some(ErrorKind::BreakerOpen) => {
                    drop(permit);
                    return res;
                }
                _ => {
                    permit.record(true);
                    return res;
                }
            }
        }
    }
}

#[async_trait]
impl ObjectStore for ResilientStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.call(Operation::Put, key, || self.inner.put(key, data.clone()))
            .await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        self.call(Operation::Put, key, || {
            self.inner.put_if_absent(key, data.clone())
        })
        .await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64> {
        self.call(Operation::Put, key, || self.inner.put_file(key, path))
            .await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.call(Operation::Get, key, || self.inner.get(key)).await
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64> {
        self.call(Operation::Get, key, || self.inner.get_to_file(key, path))
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.call(Operation::Head, key, || self.inner.head(key))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.call(Operation::List, prefix, || self.inner.list(prefix))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.call(Operation::Delete, key, || self.inner.delete(key))
            .await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::fault::{Fault, FaultStore};

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            window_ms: 10_000,
            min_calls: 10,
            open_ms: 1_000,
            max_open_ms: 4_000,
            half_open_probes: 2,
            close_after: 1,
        }
    }

    fn no_retry() -> RetryConfig {
        RetryConfig {
            attempts: 1,
            base_ms: 10,
            max_ms: 10,
        }
    }

    fn setup(c: BreakerConfig, r: RetryConfig) -> (Arc<FaultStore>, ResilientStore) {
        let inner = Arc::new(FaultStore::new());
        let store = ResilientStore::new(inner.clone(), Breaker::new(c), r);
        (inner, store)
    }

    #[test]
    fn machine_opens_on_consecutive_failures() {
        let mut m = Machine::new(cfg());
        let t0 = Instant::now();
        for _ in 0..2 {
            let (t, _) = m.acquire(t0);
            assert_eq!(m.record(t0, t.unwrap(), false), None);
        }
        // A success resets the count.
        let (t, _) = m.acquire(t0);
        m.record(t0, t.unwrap(), true);
        for i in 0..3 {
            let (t, _) = m.acquire(t0);
            let tr = m.record(t0, t.unwrap(), false);
            assert_eq!(
                tr,
                (i == 2).then_some((BreakerState::Closed, BreakerState::Open))
            );
        }
        let (r, _) = m.acquire(t0 + Duration::from_millis(999));
        let open = r.unwrap_err();
        assert_eq!(open.state, BreakerState::Open);
        assert_eq!(open.retry_in, Duration::from_millis(1));
        // Cool-down over: half-open, two probes, the third call is rejected.
        let later = t0 + Duration::from_millis(1000);
        let (p1, tr) = m.acquire(later);
        assert_eq!(tr, Some((BreakerState::Open, BreakerState::HalfOpen)));
        let (p2, _) = m.acquire(later);
        let (p3, _) = m.acquire(later);
        assert!(matches!(p1, Ok(Ticket::Probe(_))) && matches!(p2, Ok(Ticket::Probe(_))));
        assert_eq!(p3.unwrap_err().state, BreakerState::HalfOpen);
        assert_eq!(
            m.record(later, p1.unwrap(), true),
            Some((BreakerState::HalfOpen, BreakerState::Closed))
        );
        // The other probe finishing late changes nothing.
        assert_eq!(m.record(later, p2.unwrap(), false), None);
        assert_eq!(m.state(), BreakerState::Closed);
    }

    #[test]
    fn machine_opens_on_failure_ratio() {
        let c = BreakerConfig {
            consecutive_failures: 0,
            ..cfg()
        };
        let mut m = Machine::new(c);
        let t0 = Instant::now();
        // 9 calls alternating: below min_calls, never trips.
        for i in 0..9 {
            let (t, _) = m.acquire(t0);
            assert_eq!(m.record(t0, t.unwrap(), i % 2 == 0), None);
        }
        let (t, _) = m.acquire(t0);
        assert_eq!(
            m.record(t0, t.unwrap(), false),
            Some((BreakerState::Closed, BreakerState::Open)),
            "5 of 10 failed"
        );
        let (st, _) = m.status(t0);
        assert_eq!(st.window_calls, 10);
        assert!((st.failure_ratio - 0.5).abs() < 1e-9);
    }

    #[test]
    fn window_forgets_old_calls() {
        let c = BreakerConfig {
            consecutive_failures: 0,
            ..cfg()
        };
        let mut m = Machine::new(c);
        let t0 = Instant::now();
        for _ in 0..9 {
            let (t, _) = m.acquire(t0);
            m.record(t0, t.unwrap(), false);
        }
        // 11 s later the old failures are outside the 10 s window.
        let t1 = t0 + Duration::from_secs(11);
        let (t, _) = m.acquire(t1);
        assert_eq!(m.record(t1, t.unwrap(), false), None);
        assert_eq!(m.status(t1).0.window_calls, 1);
    }

    #[test]
    fn failed_probe_doubles_cool_down_up_to_max() {
        let mut m = Machine::new(cfg());
        let mut now = Instant::now();
        for _ in 0..3 {
            let (t, _) = m.acquire(now);
            m.record(now, t.unwrap(), false);
        }
        let mut expected = [2_000u64, 4_000, 4_000].into_iter();
        let mut cool = 1_000;
        for _ in 0..3 {
            now += Duration::from_millis(cool);
            let (p, tr) = m.acquire(now);
            assert_eq!(tr, Some((BreakerState::Open, BreakerState::HalfOpen)));
            m.record(now, p.unwrap(), false);
            cool = expected.next().unwrap();
            assert_eq!(m.open_until(), Some(now + Duration::from_millis(cool)));
        }
    }

    #[test]
    fn cancelled_probe_frees_its_slot() {
        let c = BreakerConfig {
            half_open_probes: 1,
            ..cfg()
        };
        let mut m = Machine::new(c);
        let now = Instant::now();
        for _ in 0..3 {
            let (t, _) = m.acquire(now);
            m.record(now, t.unwrap(), false);
        }
        let later = now + Duration::from_secs(1);
        let (p, _) = m.acquire(later);
        assert!(m.acquire(later).0.is_err());
        m.cancel(p.unwrap());
        assert!(m.acquire(later).0.is_ok());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RetryConfig {
            attempts: 10,
            base_ms: 100,
            max_ms: 1_000,
        };
        for _ in 0..50 {
            let b1 = r.backoff(1).as_millis();
            assert!((50..=100).contains(&b1), "{b1}");
            let b3 = r.backoff(3).as_millis();
            assert!((200..=400).contains(&b3), "{b3}");
            let b9 = r.backoff(9).as_millis();
            assert!((500..=1_000).contains(&b9), "{b9}");
        }
        assert!(r.backoff(100).as_millis() <= 1_000);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn store_breaker_opens_fails_fast_then_recovers() {
        let (inner, store) = setup(cfg(), no_retry());
        inner.put("k", Bytes::from_static(b"v")).await.unwrap();
        inner.set(Fault::Down);
        for _ in 0..3 {
            let e = store.get("k").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Transient);
        }
        assert_eq!(store.breaker().state(), BreakerState::Open);
        let calls = inner.calls();
        let e = store.get("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BreakerOpen, "{e}");
        assert_eq!(inner.calls(), calls, "rejected calls never reach the store");
        let st = store.breaker().status();
        assert_eq!(st.consecutive_failures, 3);
        assert!(st.open_until.is_some());
        assert_eq!(st.opened_total, 1);

        // The timer moves it to half-open once the cool-down is over, without any call
        // (read the machine directly: `state()` would advance it itself).
        tokio::time::sleep(Duration::from_millis(1_001)).await;
        assert_eq!(
            store.breaker().machine.lock().state(),
            BreakerState::HalfOpen
        );
        // The store is back: one probe closes it.
        inner.set(Fault::None);
        assert_eq!(&store.get("k").await.unwrap()[..], b"v");
        assert_eq!(store.breaker().state(), BreakerState::Closed);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn failed_probe_reopens_with_longer_cool_down() {
        let (inner, store) = setup(cfg(), no_retry());
        inner.set(Fault::Down);
        for _ in 0..3 {
            let _ = store.head("k").await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(store.breaker().state(), BreakerState::HalfOpen);
        let e = store.head("k").await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Transient,
            "the probe reached the store"
        );
        assert_eq!(store.breaker().state(), BreakerState::Open);
        let st = store.breaker().status();
        let left = st
            .open_until
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(left > Duration::from_millis(1_500), "{left:?}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(store.breaker().state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(store.breaker().state(), BreakerState::HalfOpen);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn retries_transient_with_backoff_then_succeeds() {
        let retry = RetryConfig {
            attempts: 4,
            base_ms: 100,
            max_ms: 1_000,
        };
        let (inner, store) = setup(cfg(), retry);
        inner.script([Fault::Down, Fault::Down]);
        let t = Instant::now();
        store.put("k", Bytes::from_static(b"v")).await.unwrap();
        let waited = t.elapsed();
        // Backoffs: [50,100] + [100,200] ms.
        assert!(
            waited >= Duration::from_millis(150) && waited <= Duration::from_millis(300),
            "{waited:?}"
        );
        assert_eq!(inner.calls(), 3);
        assert_eq!(inner.object("k").unwrap(), Bytes::from_static(b"v"));
        assert_eq!(store.breaker().status().consecutive_failures, 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn permanent_and_not_found_are_not_retried_nor_breaker_failures() {
        let retry = RetryConfig {
            attempts: 5,
            base_ms: 10,
            max_ms: 10,
        };
        let (inner, store) = setup(cfg(), retry);
        assert_eq!(
            store.get("missing").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(inner.calls(), 1);
        inner.set(Fault::Denied);
        for _ in 0..10 {
            let e = store.put("k", Bytes::new()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Permanent);
        }
        assert_eq!(inner.calls(), 11);
        assert_eq!(store.breaker().state(), BreakerState::Closed);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn retry_stops_when_breaker_opens() {
        let retry = RetryConfig {
            attempts: 10,
            base_ms: 10,
            max_ms: 10,
        };
        let (inner, store) = setup(cfg(), retry);
        inner.set(Fault::Down);
        let e = store.put("k", Bytes::new()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BreakerOpen, "{e}");
        assert_eq!(
            inner.calls(),
            3,
            "three failures open the breaker; no fourth attempt"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn slow_store_opens_breaker_on_timeouts() {
        let (inner, store) = setup(cfg(), no_retry());
        inner.set(Fault::Slow(Duration::from_secs(5)));
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                store.head("k").await.unwrap_err().kind(),
                ErrorKind::Transient
            );
        }
        assert_eq!(t.elapsed(), Duration::from_secs(15));
        let t = Instant::now();
        assert_eq!(
            store.head("k").await.unwrap_err().kind(),
            ErrorKind::BreakerOpen
        );
        assert_eq!(t.elapsed(), Duration::ZERO, "fails fast");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn reset_closes_and_clears() {
        let (inner, store) = setup(cfg(), no_retry());
        inner.set(Fault::Down);
        for _ in 0..3 {
            let _ = store.head("k").await;
        }
        assert_eq!(store.breaker().state(), BreakerState::Open);
        let st = store.breaker().reset();
        assert_eq!(st.state, BreakerState::Closed);
        assert_eq!(st.consecutive_failures, 0);
        assert_eq!(st.window_calls, 0);
        assert_eq!(st.open_until_unix_ms(), 0);
        // A stale timer from the reset open period does not move it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(store.breaker().state(), BreakerState::Closed);
    }
}
