//! Head sampling: whether trace export is on, and which new traces are sampled: the first
//! `--trace-reservoir-per-sec` requests of each second that arrive without a trace context
//! (default 1), then `--trace-sample-ratio` of the others (default 0.05) — AWS X-Ray's default
//! rule. The reservoir keeps a quiet service traced; the ratio bounds tracing's share of the
//! work however busy it gets, and a fanned-out request (one span per shard) is sampled once,
//! at its root, so its spans come or go together.
//!
//! Set by [`crate::init`] at start and changed at run time through `PUT /tracing` (see
//! [`crate::http`]); read by the server layer for every request that arrives without a
//! sampled parent and by the SDK's root sampler for background work.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// An exporting OpenTelemetry layer is installed (`--otlp-endpoint` was given).
static EXPORTER: AtomicBool = AtomicBool::new(false);
/// Requests are traced (head sampling on); off: no trace context is drawn, a caller's
/// `traceparent` is only forwarded.
static EXPORT: AtomicBool = AtomicBool::new(false);
/// `(ratio * 2^63) as u64`, or `u64::MAX` for "always": the bound of `TraceIdRatioBased`.
static RATIO_BOUND: AtomicU64 = AtomicU64::new(0);
/// The ratio itself (`f64` bits), for reporting.
static RATIO_BITS: AtomicU64 = AtomicU64::new(0);
/// New request traces sampled each second before the ratio applies.
static RESERVOIR: AtomicU64 = AtomicU64::new(0);
/// `second << 32 | taken`: the second (since the process started) the reservoir is counting
/// and how many traces it gave in it.
static RESERVOIR_STATE: AtomicU64 = AtomicU64::new(0);

/// The trace settings in force: `GET /tracing` on every service's metrics port.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TraceSettings {
    /// Whether trace export was set up at start (`--otlp-endpoint`); only then can `export`
    /// be on.
    pub exporter: bool,
    /// Whether requests are traced now.
    pub export: bool,
    /// Share of new traces sampled (requests arriving without a `traceparent`, and
    /// background work).
    pub sample_ratio: f64,
}

/// Why a change of the trace settings was refused (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceSettingsError {
    #[error("sample ratio must be a number from 0 to 1, got {0}")]
    BadRatio(String),
    #[error("export must be `on` or `off`, got {0:?}")]
    BadExport(String),
    #[error(
        "trace export is not set up in this process: restart it with --otlp-endpoint (or AKIDB_OTLP_ENDPOINT) to export traces"
    )]
    NoExporter,
}

/// Set by [`crate::init`]: whether the exporting layer is installed, the starting ratio and
/// the reservoir.
pub(crate) fn install_tracing(exporter: bool, ratio: f64, reservoir_per_sec: u32) {
    set_ratio(ratio);
    RESERVOIR.store(reservoir_per_sec.into(), Ordering::Relaxed);
    EXPORTER.store(exporter, Ordering::Relaxed);
    EXPORT.store(exporter, Ordering::Relaxed);
}

fn set_ratio(ratio: f64) {
    let ratio = ratio.clamp(0.0, 1.0);
    let bound = if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio * (1u64 << 63) as f64) as u64
    };
    RATIO_BOUND.store(bound, Ordering::Relaxed);
    RATIO_BITS.store(ratio.to_bits(), Ordering::Relaxed);
}

/// The trace settings in force.
pub fn trace_settings() -> TraceSettings {
    TraceSettings {
        exporter: EXPORTER.load(Ordering::Relaxed),
        export: export_enabled(),
        sample_ratio: f64::from_bits(RATIO_BITS.load(Ordering::Relaxed)),
    }
}

/// Change the trace settings at run time (`PUT /tracing?sample_ratio=0.01&export=on`):
/// both values are checked before either is applied. Requests already in flight keep their
/// decision; the next ones follow the new settings.
pub fn change_trace_settings(
    sample_ratio: Option<&str>,
    export: Option<&str>,
) -> Result<TraceSettings, TraceSettingsError> {
    let ratio = match sample_ratio {
        None => None,
        Some(r) => match r.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Some(v),
            _ => return Err(TraceSettingsError::BadRatio(r.to_string())),
        },
    };
    let export = match export.map(str::trim) {
        None => None,
        Some("on" | "true" | "1") => Some(true),
        Some("off" | "false" | "0") => Some(false),
        Some(other) => return Err(TraceSettingsError::BadExport(other.to_string())),
    };
    if export == Some(true) && !EXPORTER.load(Ordering::Relaxed) {
        return Err(TraceSettingsError::NoExporter);
    }
    if let Some(r) = ratio {
        set_ratio(r);
    }
    if let Some(e) = export {
        EXPORT.store(e, Ordering::Relaxed);
    }
    Ok(trace_settings())
}

pub(crate) fn export_enabled() -> bool {
    EXPORT.load(Ordering::Relaxed)
}

/// Whether a new trace (no sampled parent) whose id's low 8 bytes are `low` is sampled:
/// export on and the ratio rule. The SDK's root sampler asks this too, so background work
/// follows run-time changes as requests do.
pub(crate) fn samples_new_trace(low: u64) -> bool {
    export_enabled() && ratio_samples(low)
}

/// Whether a request that arrived without a trace context starts a sampled trace (export is
/// on): from the second's reservoir while it lasts, else by the ratio on a random id.
pub(crate) fn samples_new_request() -> bool {
    take_reservoir(second()) || ratio_samples(random_u64())
}

/// Seconds since the process first asked.
fn second() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
}

/// One trace from the reservoir of second `now`, if it has one left.
fn take_reservoir(now: u64) -> bool {
    let per_sec = RESERVOIR.load(Ordering::Relaxed);
    if per_sec == 0 {
        return false;
    }
    let now = now & 0xffff_ffff;
    let mut cur = RESERVOIR_STATE.load(Ordering::Relaxed);
    loop {
        let (sec, taken) = (cur >> 32, cur & 0xffff_ffff);
        let next = if sec != now {
            (now << 32) | 1
        } else if taken < per_sec {
            cur + 1
        } else {
            return false;
        };
        match RESERVOIR_STATE.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(seen) => cur = seen,
        }
    }
}

/// The SDK's `TraceIdRatioBased` decision for a trace id whose low 8 bytes are `low`.
pub(crate) fn ratio_samples(low: u64) -> bool {
    let bound = RATIO_BOUND.load(Ordering::Relaxed);
    bound == u64::MAX || (low >> 1) < bound
}

/// Random non-zero u64 (trace and span ids): splitmix64 over a per-thread random seed.
pub(crate) fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::BuildHasher;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(0u64));
    }
    STATE.with(|s| {
        loop {
            let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace settings are process-wide: tests that change them take turns.
    static SETTINGS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn trace_settings_are_checked_before_they_change() {
        let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
        let settings = |exporter, export, sample_ratio| TraceSettings {
            exporter,
            export,
            sample_ratio,
        };
        install_tracing(false, 0.1, 0);
        assert_eq!(
            change_trace_settings(Some("1"), Some("on")),
            Err(TraceSettingsError::NoExporter)
        );
        assert_eq!(trace_settings(), settings(false, false, 0.1));
        assert!(!samples_new_trace(0), "no exporter: nothing sampled");

        install_tracing(true, 0.1, 0);
        for bad in ["1.5", "-0.1", "NaN", "inf", "x", ""] {
            assert_eq!(
                change_trace_settings(Some(bad), Some("off")),
                Err(TraceSettingsError::BadRatio(bad.into()))
            );
        }
        assert!(matches!(
            change_trace_settings(Some("0.5"), Some("maybe")),
            Err(TraceSettingsError::BadExport(_))
        ));
        assert_eq!(
            trace_settings(),
            settings(true, true, 0.1),
            "refused: unchanged"
        );

        assert_eq!(
            change_trace_settings(Some("1"), None),
            Ok(settings(true, true, 1.0))
        );
        assert!(samples_new_trace(u64::MAX) && samples_new_trace(0));
        assert_eq!(
            change_trace_settings(None, Some("off")),
            Ok(settings(true, false, 1.0))
        );
        assert!(!samples_new_trace(0), "export off: nothing sampled");
        assert_eq!(
            change_trace_settings(Some("0"), Some("on")),
            Ok(settings(true, true, 0.0))
        );
        assert!(!samples_new_trace(0));
        install_tracing(false, 0.1, 0);
    }

    #[test]
    fn the_reservoir_gives_its_traces_each_second_then_the_ratio_decides() {
        let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
        install_tracing(true, 0.0, 3);
        let base = 1_000;
        let taken = (0..10).filter(|_| take_reservoir(base)).count();
        assert_eq!(taken, 3, "three traces in a second");
        assert_eq!((0..10).filter(|_| take_reservoir(base + 1)).count(), 3);
        // Ratio 0: nothing beyond the reservoir.
        assert!(!take_reservoir(base + 1));
        assert!(!ratio_samples(0) && !ratio_samples(u64::MAX));
        // Threads racing for one second's reservoir get exactly its size.
        let got: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| sc.spawn(|| (0..1000).filter(|_| take_reservoir(base + 2)).count()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(got, 3);
        install_tracing(true, 0.0, 0);
        assert!(!take_reservoir(base + 3), "no reservoir: the ratio only");
        install_tracing(false, 0.1, 0);
    }

    #[test]
    fn ratio_follows_trace_id_ratio_based() {
        let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
        set_ratio(0.0);
        assert!(!ratio_samples(0));
        set_ratio(1.0);
        assert!(ratio_samples(u64::MAX));
        set_ratio(0.5);
        // the SDK: (low >> 1) < ratio * 2^63
        assert!(ratio_samples(((1u64 << 62) - 1) << 1));
        assert!(!ratio_samples((1u64 << 62) << 1));
        assert!(!ratio_samples(u64::MAX));
        let n = (0..20_000).filter(|_| ratio_samples(random_u64())).count();
        assert!((9_000..11_000).contains(&n), "{n}");
        set_ratio(0.1);
    }
}
