//! The flags every service shares: where it listens ([`listen_args!`]) and its logs and
//! traces ([`TelemetryArgs`]).

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
            trace_sample_ratio: 0.1,
            idle_poll_us: 0,
        }
    }
}

/// Declares `Listen`, a service's listen flags: `--grpc-addr` and `--metrics-addr` (the HTTP
/// port: `/metrics`, `/healthz`, `/tracing`), read from `AKIDB_<SERVICE>_GRPC_ADDR` and
/// `AKIDB_<SERVICE>_METRICS_ADDR`, on loopback at the service's default ports by default; and
/// makes `$config` (which flattens it as its field `listen`) a
/// [`crate::lifecycle::ServiceConfig`] of `$component`.
///
/// ```ignore
/// akidb_instrumentation::listen_args!(QueryConfig, Query, "QUERY", 50051, 9101);
/// ```
#[macro_export]
macro_rules! listen_args {
    ($config:ident, $component:ident, $service:literal, $grpc_port:literal, $http_port:literal) => {
        #[doc = concat!("Where the ", $service, " service listens.")]
        #[derive(Debug, Clone, clap::Args)]
        pub struct Listen {
            /// gRPC listen address.
            #[arg(
                                                long = "grpc-addr",
                                                env = concat!("AKIDB_", $service, "_GRPC_ADDR"),
                                                default_value = concat!("127.0.0.1:", $grpc_port)
                                            )]
            pub grpc_addr: std::net::SocketAddr,
            /// HTTP listen address: `/metrics`, `/healthz` and `/tracing`.
            #[arg(
                                                long = "metrics-addr",
                                                env = concat!("AKIDB_", $service, "_METRICS_ADDR"),
                                                default_value = concat!("127.0.0.1:", $http_port)
                                            )]
            pub metrics_addr: std::net::SocketAddr,
        }

        impl $crate::lifecycle::ServiceConfig for $config {
            const COMPONENT: $crate::Component = $crate::Component::$component;
            fn addrs(&self) -> (std::net::SocketAddr, std::net::SocketAddr) {
                (self.listen.grpc_addr, self.listen.metrics_addr)
            }
        }
    };
}
