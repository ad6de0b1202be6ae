//! The flags every service shares for its logs and traces ([`TelemetryArgs`]); where each
//! listens is declared with [`crate::listen_args!`].

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
    /// Share of new traces sampled beyond the reservoir, decided when a request arrives
    /// without a `traceparent` (parent-based: a caller's sampled or not-sampled decision is
    /// always followed). Changed at run time with `PUT /tracing?sample_ratio=`.
    #[arg(long, env = "AKIDB_TRACE_SAMPLE_RATIO", default_value_t = 0.05)]
    pub trace_sample_ratio: f64,
    /// New traces sampled each second before the ratio applies (the first requests of the
    /// second that arrive without a `traceparent`): a quiet service stays traced. 0: the
    /// ratio only.
    #[arg(long, env = "AKIDB_TRACE_RESERVOIR_PER_SEC", default_value_t = 1)]
    pub trace_reservoir_per_sec: u32,
    /// Keep a core awake this long after each request (microseconds; 0: off): a spinner
    /// thread at the lowest priority, so a lone client does not pay for waking a halted
    /// core, while any real work runs first. See [`crate::idle_poll`].
    #[arg(long, env = "AKIDB_IDLE_POLL_US", default_value_t = 1000)]
    pub idle_poll_us: u64,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            log: "info".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            trace_sample_ratio: 0.05,
            trace_reservoir_per_sec: 1,
            idle_poll_us: 0,
        }
    }
}
