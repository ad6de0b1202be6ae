//! A real `akidb-storage` process over a data directory, and the gRPC calls the tests and
//! benchmarks make to it.

use akidb_proto::prost_types::Struct;
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_client::AdminServiceClient;
use akidb_proto::v1::storage_service_client::StorageServiceClient;
use akidb_testkit::ports::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// An `akidb-storage` child process; killed on drop. Its log is `<dir>/storage.log`.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    /// Holds `data/` (the data directory) and `storage.log`.
    pub dir: PathBuf,
    /// The flags after the addresses and the data directory, for [`Server::restart`].
    pub args: Vec<String>,
}

impl Server {
    /// Start `akidb-storage` on free ports over `<dir>/data` with the flags `args`.
    pub fn start(dir: &Path, args: &[String]) -> Server {
        let port = free_port();
        let metrics_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("storage.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_akidb-storage"))
            .args([
                format!("--grpc-addr=127.0.0.1:{port}"),
                format!("--metrics-addr=127.0.0.1:{metrics_port}"),
                format!("--data-dir={}", dir.join("data").display()),
            ])
            .args(args)
            .env("AKIDB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            metrics_port,
            dir: dir.to_path_buf(),
            args: args.to_vec(),
        }
    }

    /// [`Server::start`] with `--fsync=never` first: where durability is not the point.
    pub fn start_unsynced(dir: &Path, args: &[String]) -> Server {
        let mut all = vec!["--fsync=never".to_string()];
        all.extend_from_slice(args);
        Server::start(dir, &all)
    }

    /// Clients once health says SERVING (60 s at most; panics with the log if the process
    /// exits first).
    pub async fn connect(
        &mut self,
    ) -> (StorageServiceClient<Channel>, AdminServiceClient<Channel>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{}", self.port);
        loop {
            assert!(Instant::now() < deadline, "storage did not become SERVING");
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "storage exited during start-up: {status}; log:\n{}",
                    self.log()
                );
            }
            if let Ok(ch) = Channel::from_shared(url.clone()).unwrap().connect().await {
                let mut h = HealthClient::new(ch.clone());
                let r = h
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if r.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                    return (
                        StorageServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20),
                        AdminServiceClient::new(ch),
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("storage.log")).unwrap_or_default()
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "storage stopped with {st}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "storage did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap: a crash.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A clean stop, then a new process over the same directory with the same flags.
    pub fn restart(&mut self) -> Server {
        self.stop();
        Server::start(&self.dir, &self.args)
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn collection_dir(&self, name: &str) -> PathBuf {
        self.dir.join("data/collections").join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bucket of [`s3_args`].
pub const BUCKET: &str = "akidb-tiers";

/// Flags for a cold tier in [`BUCKET`] at `endpoint` (moto, or a proxy in front of it), with
/// timeouts, retries, breaker and DLQ short enough for an outage to play out in seconds.
pub fn s3_args(endpoint: &str) -> Vec<String> {
    [
        format!("--s3-endpoint={endpoint}"),
        format!("--s3-bucket={BUCKET}"),
        "--s3-region=us-west-2".into(),
        "--s3-access-key=testing".into(),
        "--s3-secret-key=testing".into(),
        "--s3-timeout-ms=500".into(),
        "--s3-connect-timeout-ms=300".into(),
        "--s3-retry-attempts=2".into(),
        "--s3-retry-base-ms=20".into(),
        "--s3-retry-max-ms=50".into(),
        "--breaker-consecutive-failures=3".into(),
        "--breaker-open-ms=1000".into(),
        "--breaker-max-open-ms=2000".into(),
        "--breaker-half-open-probes=1".into(),
        "--dlq-retry-base-ms=200".into(),
        "--dlq-retry-max-ms=1000".into(),
        "--dlq-poll-ms=100".into(),
    ]
    .into()
}

pub async fn create(
    c: &mut StorageServiceClient<Channel>,
    name: &str,
    dim: u32,
    metric: pb::Metric,
) {
    create_with(c, name, dim, metric, pb::Quantization::None, false).await
}

/// [`create`] with a quantization, vectors on disk or not.
pub async fn create_with(
    c: &mut StorageServiceClient<Channel>,
    name: &str,
    dim: u32,
    metric: pb::Metric,
    quantization: pb::Quantization,
    on_disk: bool,
) {
    c.create_collection(pb::CreateCollectionRequest {
        name: name.into(),
        dimension: dim,
        metric: metric as i32,
        m: None,
        ef_construction: None,
        pin: false,
        datatype: pb::VectorDatatype::Float32 as i32,
        quantization: quantization as i32,
        on_disk,
        shards: 0,
        replication: 0,
        payload_indexes: Default::default(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Upsert in batches of 500.
pub async fn upsert_all(c: &mut StorageServiceClient<Channel>, name: &str, pts: Vec<pb::Point>) {
    for chunk in pts.chunks(500) {
        c.upsert(pb::UpsertRequest {
            collection: name.into(),
            points: chunk.to_vec(),
        })
        .await
        .unwrap();
    }
}

/// k = 10, with payloads.
pub fn query(c: &str, v: Vec<f32>) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: c.into(),
        vector: v,
        k: 10,
        filter: None,
        ef: None,
        with_payload: true,
        with_vector: false,
        exact: false,
        oversampling: None,
        ..Default::default()
    }
}

/// Ids, scores and payloads of the hits.
pub type Hits = Vec<(Option<pb::PointId>, f32, Option<Struct>)>;

pub async fn search(
    c: &mut StorageServiceClient<Channel>,
    name: &str,
    v: &[f32],
) -> (Hits, pb::SearchStats) {
    let r = c
        .search(query(name, v.to_vec()))
        .await
        .unwrap()
        .into_inner();
    (
        r.hits
            .into_iter()
            .map(|h| (h.id, h.score, h.payload))
            .collect(),
        r.stats.unwrap(),
    )
}

pub async fn tier_of(a: &mut AdminServiceClient<Channel>, name: &str) -> pb::CollectionTierStatus {
    a.tier_status(pb::TierStatusRequest {
        collection: name.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .collections
    .remove(0)
}

pub async fn demote(
    a: &mut AdminServiceClient<Channel>,
    name: &str,
    to: pb::Tier,
) -> Result<pb::CollectionTierStatus, tonic::Status> {
    a.demote(pb::TierMoveRequest {
        collection: name.into(),
        target: to as i32,
    })
    .await
    .map(|r| r.into_inner().status.unwrap())
}
