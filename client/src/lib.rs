//! Clients for AkiDB's gRPC services.
//!
//! - [`Link`]: an instrumented, lazily connected channel to another service, with a per-call
//!   deadline and retries of idempotent calls on `UNAVAILABLE`.
//! - [`backoff`]: the one retry backoff of AkiDB (jittered exponential).
//! - [`watch_health`]: mirrors an upstream's `grpc.health.v1` status into a local health
//!   reporter, so ingest and query say NOT_SERVING while storage is unreachable.
//! - [`dataset`]: readers of the TEXMEX `.fvecs`/`.ivecs` data set files.

pub mod dataset;

use akidb_proto::v1::{
    admin_service_client::AdminServiceClient, collection_service_client::CollectionServiceClient,
    ingest_service_client::IngestServiceClient, query_service_client::QueryServiceClient,
    storage_service_client::StorageServiceClient, telemetry_service_client::TelemetryServiceClient,
};
use std::future::Future;
use std::time::Duration;
use tonic::{Code, Status};

/// The channel type every client here uses: tonic's channel behind the telemetry client layer.
pub type Channel = akidb_instrumentation::transport::Channel;

/// Largest message the clients send or accept.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A connection to one AkiDB service.
#[derive(Clone)]
pub struct Link {
    channel: Channel,
    /// Deadline of one call, retries included.
    pub timeout: Duration,
    pub endpoint: String,
}

impl Link {
    /// Lazy: an unreachable peer does not fail here, only the calls made while it is down.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        Self::with_key(endpoint, timeout, None)
    }

    /// [`Link::new`] that presents `key` (`authorization: Bearer <key>`) on every call.
    pub fn with_key(
        endpoint: &str,
        timeout: Duration,
        key: Option<&str>,
    ) -> Result<Self, tonic::transport::Error> {
        // Without a scheme: `https://` when this process has a CA (`--ca-cert`), else `http://`.
        let endpoint = akidb_instrumentation::tls::client().url(endpoint);
        let layer = match key {
            // A key that is not a valid header value is sent as none: the peer then answers
            // UNAUTHENTICATED, which names the problem.
            Some(k) => akidb_instrumentation::layers::ClientLayer::with_key(k).unwrap_or_default(),
            None => Default::default(),
        };
        let channel = akidb_instrumentation::transport::channel_with(
            &endpoint,
            Duration::from_secs(2),
            layer,
        )?;
        Ok(Self {
            channel,
            timeout,
            endpoint,
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn storage(&self) -> StorageServiceClient<Channel> {
        StorageServiceClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel())
    }
    pub fn query(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
    pub fn collections(&self) -> CollectionServiceClient<Channel> {
        CollectionServiceClient::new(self.channel())
    }
    pub fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
    pub fn telemetry(&self) -> TelemetryServiceClient<Channel> {
        TelemetryServiceClient::new(self.channel())
    }
    pub fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        tonic_health::pb::health_client::HealthClient::new(self.channel())
    }

    /// This link with the deadline the caller of `req` set, capped at
    /// [`akidb_proto::limits::MAX_DEADLINE`] (that cap without one): for calls that take as
    /// long as their caller allows (a graph build, an operator's action).
    pub fn with_caller_deadline<T>(&self, req: &tonic::Request<T>) -> Link {
        let max = akidb_proto::limits::MAX_DEADLINE;
        let mut l = self.clone();
        l.timeout = caller_timeout(req).unwrap_or(max).min(max);
        l
    }

    /// A request carrying this link's deadline (sent as `grpc-timeout`).
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// Run an idempotent call, retrying on `UNAVAILABLE` (and on a call its connection dropped
    /// before the peer saw it) with exponential backoff and jitter
    /// until the link's deadline. The last error is returned; a call that ran out of time is
    /// `DEADLINE_EXCEEDED` unless the peer was simply unreachable (`UNAVAILABLE`).
    pub async fn idempotent<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut retry = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(Status::deadline_exceeded(format!(
                    "no answer from {} within {:?}",
                    self.endpoint, self.timeout
                )));
            }
            let res = match tokio::time::timeout(left, call(left)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "{} did not answer within {:?}",
                        self.endpoint, self.timeout
                    )));
                }
            };
            match res {
                Err(s) if never_reached_peer(&s) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    retry += 1;
                    let wait = backoff(40, 1_000, retry).min(left);
                    if wait.is_zero() || left <= wait {
                        return Err(Status::unavailable(format!(
                            "{} is unavailable ({}); retried until the deadline of {:?}",
                            self.endpoint,
                            s.message(),
                            self.timeout
                        )));
                    }
                    tracing::debug!(endpoint = %self.endpoint, error = %s.message(), ?wait, "retrying unavailable peer");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

/// Whether a call failed before the peer could act on it: UNAVAILABLE, or CANCELLED by the
/// transport because the connection it was queued on closed (a peer killed a moment ago;
/// hyper's "operation was canceled"). A CANCELLED the peer answered is not one.
fn never_reached_peer(s: &Status) -> bool {
    if s.code() == Code::Unavailable {
        return true;
    }
    if s.code() != Code::Cancelled {
        return false;
    }
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_canceled())
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The wait before retry number `retry` (1 = the first retry) of anything AkiDB retries (calls
/// to a peer here, object store calls and dead-letter uploads in storage): `base * 2^(retry-1)`
/// milliseconds capped at `max`, then a random value in its upper half ("equal jitter"), so
/// that many callers spread out but still back off.
pub fn backoff(base_ms: u64, max_ms: u64, retry: u32) -> Duration {
    use rand::Rng;
    let exp = retry.saturating_sub(1).min(32);
    let d = base_ms.saturating_mul(1u64 << exp).min(max_ms.max(base_ms));
    if d == 0 {
        return Duration::ZERO;
    }
    let half = d / 2;
    Duration::from_millis(half + rand::rng().random_range(0..=d - half))
}

/// Call storage's `$method` with `$msg` through the [`Link`] `$link`, as every front door
/// forwards a request it may retry: retried on UNAVAILABLE until the link's deadline, each
/// attempt sent with the time left as its deadline. Evaluates to the response message (or the
/// last status).
#[macro_export]
macro_rules! storage_call {
    ($link:expr, $method:ident, $msg:expr) => {{
        let link = &$link;
        let msg = $msg;
        link.idempotent(|left| {
            let mut c = link.storage();
            let r = $crate::with_deadline(msg.clone(), left);
            async move { c.$method(r).await.map(|r| r.into_inner()) }
        })
        .await
    }};
}

/// Declares `StorageLink`, the flags of a front door's link to storage: `--storage-addr`
/// (`AKIDB_STORAGE_ADDR`) and `--storage-timeout-ms` (`AKIDB_<SERVICE>_STORAGE_TIMEOUT_MS`,
/// default `$timeout_ms`), the deadline of one forwarded `$call`, retries included. Flatten it
/// into the service's config; [`Link::new`] takes its two values.
#[macro_export]
macro_rules! storage_link_args {
    ($service:literal, $timeout_ms:literal, $call:literal) => {
        #[doc = concat!("Where the ", $service, " service finds storage.")]
        #[derive(Debug, Clone, clap::Args)]
        pub struct StorageLink {
            /// Storage service endpoint.
            #[arg(
                long = "storage-addr",
                env = "AKIDB_STORAGE_ADDR",
                default_value = "127.0.0.1:50053"
            )]
            pub storage_addr: String,
            #[arg(
                long = "storage-timeout-ms",
                env = concat!("AKIDB_", $service, "_STORAGE_TIMEOUT_MS"),
                default_value_t = $timeout_ms,
                help = concat!("Deadline of one forwarded ", $call, ", retries included (milliseconds).")
            )]
            pub storage_timeout_ms: u64,
        }

        impl StorageLink {
            /// The link these flags describe, presenting `key` (the internal key) if any.
            pub fn link(&self, key: Option<&str>) -> Result<$crate::Link, tonic::transport::Error> {
                $crate::Link::with_key(
                    &self.storage_addr,
                    std::time::Duration::from_millis(self.storage_timeout_ms),
                    key,
                )
            }
        }
    };
}

/// The deadline the caller of `req` set (its `grpc-timeout`), if any.
pub fn caller_timeout<T>(req: &tonic::Request<T>) -> Option<Duration> {
    req.metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
}

/// Parse a `grpc-timeout` header value (`100m`, `5S`, ...).
pub fn parse_grpc_timeout(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Set `request`'s deadline to `left` (what remains of the caller's budget).
pub fn with_deadline<T>(msg: T, left: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(left);
    r
}

/// Poll `upstream`'s overall health every `every` and mirror it into `reporter` for the
/// services named in `local` (plus the overall "" status). Returns when `stop` resolves.
pub async fn watch_health(
    upstream: Link,
    reporter: tonic_health::server::HealthReporter,
    local: Vec<String>,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    use tonic_health::pb::HealthCheckRequest;
    let what = upstream.endpoint.clone();
    let probe = move || {
        let mut h = upstream.health();
        async move {
            let mut req = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            req.set_timeout(Duration::from_secs(1));
            matches!(
                tokio::time::timeout(Duration::from_secs(1), h.check(req)).await,
                Ok(Ok(r)) if r.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            )
        }
    };
    watch_serving(&what, probe, reporter, local, every, stop).await
}

/// Ask `probe` every `every` whether what this service needs (`what`) serves, and mirror the
/// answer into `reporter` for the services named in `local` (plus the overall "" status),
/// logging each change. Returns when `stop` resolves.
pub async fn watch_serving<F, Fut>(
    what: &str,
    mut probe: F,
    reporter: tonic_health::server::HealthReporter,
    local: Vec<String>,
    every: Duration,
    stop: impl Future<Output = ()>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    use tonic_health::ServingStatus;
    let mut last: Option<bool> = None;
    let check = async {
        loop {
            let serving = probe().await;
            if last != Some(serving) {
                let status = if serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                for s in local.iter().map(String::as_str).chain([""]) {
                    reporter.set_service_status(s, status).await;
                }
                if serving {
                    tracing::info!(upstream = %what, "upstream is serving");
                } else {
                    tracing::warn!(upstream = %what, "upstream is not serving; reporting NOT_SERVING");
                }
                last = Some(serving);
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::select! {
        _ = check => {}
        _ = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
