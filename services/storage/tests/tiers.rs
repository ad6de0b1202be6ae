//! Tiers against a real `akidb-storage` process: demotion to cold and back (local object
//! directory always; S3 through moto when `AKIDB_TEST_MOTO_BIN` is set), S3 outages and
//! slowness with the breaker and the DLQ, and the hot memory budget.
//!
//! Objects in S3 are checked with boto3 (the Python next to `moto_server`, or
//! `AKIDB_TEST_PYTHON`), not through AkiDB.

use akidb_proto::prost_types::{Struct, Value, value::Kind};
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_client::AdminServiceClient;
use akidb_proto::v1::storage_service_client::StorageServiceClient;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const BUCKET: &str = "akidb-tiers";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// the storage process

struct Server {
    child: Child,
    port: u16,
    metrics_port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// Start `akidb-storage` over `<dir>/data` with extra flags.
    fn start(dir: &Path, args: &[String]) -> Server {
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
                "--fsync=never".into(),
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

    async fn connect(&mut self) -> (StorageServiceClient<Channel>, AdminServiceClient<Channel>) {
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("storage.log")).unwrap_or_default()
    }

    /// SIGTERM and wait: a clean stop.
    fn stop(&mut self) {
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

    fn restart(&mut self) -> Server {
        self.stop();
        Server::start(&self.dir, &self.args)
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn collection_dir(&self, name: &str) -> PathBuf {
        self.dir.join("data/collections").join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// data

fn s(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

fn n(v: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(v)),
    }
}

fn random_points(seed: u64, count: u64, dim: usize, id0: u64) -> Vec<pb::Point> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| pb::Point {
            id: Some(pb::PointId::num(id0 + i)),
            vector: (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
            payload: Some(Struct {
                fields: [
                    ("title".to_string(), s(&format!("point {}", id0 + i))),
                    ("rank".to_string(), n((id0 + i) as f64)),
                ]
                .into_iter()
                .collect(),
            }),
        })
        .collect()
}

async fn create(c: &mut StorageServiceClient<Channel>, name: &str, dim: u32, metric: pb::Metric) {
    c.create_collection(pb::CreateCollectionRequest {
        name: name.into(),
        dimension: dim,
        metric: metric as i32,
        m: None,
        ef_construction: None,
        pin: false,
        datatype: pb::VectorDatatype::Float32 as i32,
    })
    .await
    .unwrap();
}

async fn upsert_all(c: &mut StorageServiceClient<Channel>, name: &str, pts: Vec<pb::Point>) {
    for chunk in pts.chunks(500) {
        c.upsert(pb::UpsertRequest {
            collection: name.into(),
            points: chunk.to_vec(),
        })
        .await
        .unwrap();
    }
}

fn query(c: &str, v: Vec<f32>) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: c.into(),
        vector: v,
        k: 10,
        filter: None,
        ef: None,
        with_payload: true,
        with_vector: false,
        exact: false,
    }
}

/// Ids, scores and payloads of the hits.
type Hits = Vec<(Option<pb::PointId>, f32, Option<Struct>)>;

async fn search(
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

async fn tier_of(a: &mut AdminServiceClient<Channel>, name: &str) -> pb::CollectionTierStatus {
    a.tier_status(pb::TierStatusRequest {
        collection: name.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .collections
    .remove(0)
}

async fn demote(
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

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every file of every local snapshot of a collection: relative key -> (size, sha256).
fn local_snapshot_files(coll_dir: &Path, name: &str) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    let root = coll_dir.join("snapshots");
    for e in std::fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        let id = e.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        for f in std::fs::read_dir(e.path()).unwrap() {
            let f = f.unwrap();
            let bytes = std::fs::read(f.path()).unwrap();
            out.insert(
                format!(
                    "collections/{name}/snapshots/{id}/{}",
                    f.file_name().to_string_lossy()
                ),
                (bytes.len() as u64, sha(&bytes)),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// moto, boto3 and a TCP proxy

fn moto_bin(test: &str) -> Option<PathBuf> {
    match std::env::var_os("AKIDB_TEST_MOTO_BIN") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPED {test}: AKIDB_TEST_MOTO_BIN is not set, so the S3 tier tests did not run.\n!!!!!!!! Run: eval \"$(scripts/s3-test-server env)\" and test again.\n"
            );
            None
        }
    }
}

struct Moto {
    child: Child,
    addr: SocketAddr,
    python: PathBuf,
}

impl Moto {
    async fn start(bin: &Path) -> Moto {
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let python = std::env::var_os("AKIDB_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin.parent().unwrap().join("python"));
        let moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            python,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(moto.url()).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn signal(&self, sig: i32) -> i32 {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, sig) }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BOTO: &str = r#"
import sys, json, hashlib, boto3
ep, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-west-2",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        out[o["Key"]] = [o["Size"], hashlib.sha256(body).hexdigest()]
print(json.dumps(out))
"#;

/// Objects under `prefix` as boto3 sees them: key -> (size, sha256).
async fn boto_list(moto: &Moto, prefix: &str) -> BTreeMap<String, (u64, String)> {
    let out = tokio::process::Command::new(&moto.python)
        .args(["-c", BOTO, &moto.url(), BUCKET, prefix])
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Pass,
    Refuse,
    Delay(Duration),
}

/// Forwards to `upstream`; a mode change cuts every open connection.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Pass);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let m = *rx.borrow_and_update();
                    match m {
                        Mode::Refuse => return,
                        Mode::Delay(d) => {
                            tokio::select! {
                                _ = tokio::time::sleep(d) => {}
                                _ = rx.changed() => return,
                            }
                        }
                        Mode::Pass => {}
                    }
                    let Ok(mut out) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, mode, task }
    }

    fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn s3_args(endpoint: &str) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------
// demotion to cold and back

/// Create 2,000 random 64-d points with payloads, demote to cold, check the local snapshot
/// is gone and (via `check_objects`) the copy in the object store, then search: same hits,
/// served from COLD with a load. Then the tier survives a restart.
async fn cold_roundtrip(
    dir: &Path,
    args: Vec<String>,
    check_objects: impl AsyncFnOnce(&BTreeMap<String, (u64, String)>),
) {
    let name = "docs";
    let mut srv = Server::start(dir, &args);
    let (mut c, mut a) = srv.connect().await;
    create(&mut c, name, 64, pb::Metric::Cosine).await;
    upsert_all(&mut c, name, random_points(7, 2_000, 64, 0)).await;
    let queries: Vec<Vec<f32>> = random_points(99, 5, 64, 0)
        .into_iter()
        .map(|p| p.vector)
        .collect();
    let mut before = Vec::new();
    for q in &queries {
        let (hits, st) = search(&mut c, name, q).await;
        assert_eq!(st.tier, pb::Tier::Hot as i32);
        assert!(!st.loaded);
        assert_eq!(hits.len(), 10);
        before.push(hits);
    }

    // Warm first: the newest snapshot's files are what goes to the object store.
    let st = demote(&mut a, name, pb::Tier::Warm).await.unwrap();
    assert_eq!(st.tier, pb::Tier::Warm as i32);
    assert_eq!(st.bytes_in_memory, 0);
    let cdir = srv.collection_dir(name);
    let local = local_snapshot_files(&cdir, name);
    assert!(!local.is_empty());

    let t = Instant::now();
    let st = demote(&mut a, name, pb::Tier::Cold).await.unwrap();
    eprintln!("demote warm->cold took {:?}", t.elapsed());
    assert_eq!(st.tier, pb::Tier::Cold as i32, "{st:?}");
    assert!(st.bytes_in_object_store > 0);
    assert!(
        !cdir.join("snapshots").exists(),
        "local snapshot directory removed"
    );
    // The newest local snapshot is the one in the store, byte for byte.
    let newest = local
        .keys()
        .map(|k| k.rsplit_once('/').unwrap().0)
        .max()
        .unwrap()
        .to_string();
    let expected: BTreeMap<_, _> = local
        .into_iter()
        .filter(|(k, _)| k.starts_with(&newest))
        .collect();
    check_objects(&expected).await;

    // Listing does not load it.
    let info = c
        .get_collection(pb::GetCollectionRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    assert_eq!(info.point_count, 2_000);
    assert_eq!(info.tier, pb::Tier::Cold as i32);

    let t = Instant::now();
    let (hits, st) = search(&mut c, name, &queries[0]).await;
    eprintln!("first search from cold took {:?}", t.elapsed());
    assert_eq!(st.tier, pb::Tier::Cold as i32, "served from cold");
    assert!(st.loaded, "the response says a load was needed");
    assert_eq!(hits, before[0], "identical results after the round trip");
    for (q, b) in queries.iter().zip(&before).skip(1) {
        let (hits, st) = search(&mut c, name, q).await;
        assert_eq!(st.tier, pb::Tier::Hot as i32);
        assert!(!st.loaded);
        assert_eq!(&hits, b);
    }
    assert_eq!(tier_of(&mut a, name).await.tier, pb::Tier::Hot as i32);
    let m = srv.metrics().await;
    assert!(
        m.contains("akidb_tier_promotions_total{from=\"cold\",to=\"hot\"} 1"),
        "{}",
        m.lines()
            .filter(|l| l.contains("akidb_tier"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(m.contains("akidb_tier_demotions_total{from=\"warm\",to=\"cold\"} 1"));
    assert!(m.contains("akidb_tier_load_duration_seconds_count{from=\"cold\"} 1"));

    // A write after the load, then cold again, and a restart: still cold, nothing lost.
    upsert_all(&mut c, name, random_points(8, 10, 64, 5_000)).await;
    demote(&mut a, name, pb::Tier::Cold).await.unwrap();
    let mut srv = srv.restart();
    let (mut c, mut a) = srv.connect().await;
    assert_eq!(tier_of(&mut a, name).await.tier, pb::Tier::Cold as i32);
    assert!(
        srv.metrics()
            .await
            .contains("akidb_collections{tier=\"cold\"} 1")
    );
    let (hits, st) = search(&mut c, name, &queries[1]).await;
    assert!(st.loaded);
    assert_eq!(st.tier, pb::Tier::Cold as i32);
    assert_eq!(hits.len(), 10);
    let cnt = c
        .count(pb::CountRequest {
            collection: name.into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(cnt, 2_010);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_store_demote_to_cold_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("data/objects");
    cold_roundtrip(dir.path(), vec![], async |expected| {
        for (key, (size, sum)) in expected {
            let bytes = std::fs::read(objects.join(key))
                .unwrap_or_else(|e| panic!("{key} in the local object store: {e}"));
            assert_eq!(bytes.len() as u64, *size, "{key}");
            assert_eq!(&sha(&bytes), sum, "{key}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_demote_to_cold_checked_with_boto3() {
    let Some(bin) = moto_bin("s3_demote_to_cold_checked_with_boto3") else {
        return;
    };
    let moto = Moto::start(&bin).await;
    let dir = tempfile::tempdir().unwrap();
    cold_roundtrip(dir.path(), s3_args(&moto.url()), async |expected| {
        let listed = boto_list(&moto, "collections/docs/").await;
        for (key, v) in expected {
            assert_eq!(listed.get(key), Some(v), "{key} in the bucket (boto3)");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// S3 faults

async fn breaker(a: &mut AdminServiceClient<Channel>) -> pb::BreakerStatus {
    a.breaker_get(pb::BreakerGetRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn dlq_len(a: &mut AdminServiceClient<Channel>) -> usize {
    a.dlq_list(pb::DlqListRequest {})
        .await
        .unwrap()
        .into_inner()
        .entries
        .len()
}

/// Every request below carries a deadline: none may hang while S3 is away or slow.
fn deadline<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(5));
    r
}

/// Write a batch and take a snapshot; both must succeed whatever S3 does, within the
/// deadline.
async fn write_and_snapshot(
    c: &mut StorageServiceClient<Channel>,
    a: &mut AdminServiceClient<Channel>,
    round: u64,
) {
    let t = Instant::now();
    c.upsert(deadline(pb::UpsertRequest {
        collection: "faulty".into(),
        points: random_points(round, 50, 16, round * 50),
    }))
    .await
    .expect("writes keep succeeding while S3 is away");
    a.snapshot(deadline(pb::SnapshotRequest {
        collection: "faulty".into(),
    }))
    .await
    .expect("snapshots keep succeeding while S3 is away");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// Write and snapshot until the breaker is open and the DLQ holds entries.
async fn until_open_and_queued(
    srv: &Server,
    c: &mut StorageServiceClient<Channel>,
    a: &mut AdminServiceClient<Channel>,
    round: &mut u64,
) -> usize {
    let t = Instant::now();
    loop {
        *round += 1;
        write_and_snapshot(c, a, *round).await;
        let b = breaker(a).await;
        let depth = dlq_len(a).await;
        if b.state == pb::BreakerState::Open as i32 && depth > 0 {
            assert!(b.remote);
            let m = srv.metrics().await;
            assert!(
                m.contains("akidb_breaker_state{state=\"open\"} 1"),
                "metric says open"
            );
            // While open, calls fail fast: a cold demotion gives up at once, stays warm.
            let t = Instant::now();
            let e = demote(a, "faulty", pb::Tier::Cold).await.unwrap_err();
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
            let st = tier_of(a, "faulty").await;
            assert_eq!(st.tier, pb::Tier::Warm as i32, "local data kept: {st:?}");
            return depth;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "breaker {b:?}, DLQ depth {depth}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// S3 is back: the breaker closes (through half-open), the DLQ drains to zero, and every
/// local snapshot is complete in the bucket.
async fn recovers(
    srv: &Server,
    moto: &Moto,
    c: &mut StorageServiceClient<Channel>,
    a: &mut AdminServiceClient<Channel>,
) {
    let t = Instant::now();
    loop {
        let b = breaker(a).await;
        let depth = dlq_len(a).await;
        if b.state == pb::BreakerState::Closed as i32 && depth == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "breaker {b:?}, DLQ depth {depth}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("recovered in {:?}", t.elapsed());
    let m = srv.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("akidb_breaker_transitions_total")
                && l.contains("to=\"half_open\"")),
        "went through half-open"
    );
    assert!(m.contains("akidb_breaker_state{state=\"closed\"} 1"));
    assert!(m.contains("akidb_dlq_depth 0"));
    // Every local snapshot is complete in the bucket, and reported uploaded.
    let listed = boto_list(moto, "collections/faulty/").await;
    let local = local_snapshot_files(&srv.collection_dir("faulty"), "faulty");
    assert!(!local.is_empty());
    for (key, v) in &local {
        assert_eq!(listed.get(key), Some(v), "{key} in the bucket (boto3)");
    }
    let snaps = a
        .list_snapshots(pb::ListSnapshotsRequest {
            collection: "faulty".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert!(snaps.iter().all(|s| s.uploaded), "{snaps:?}");
    // And the data is intact.
    let cnt = c
        .count(pb::CountRequest {
            collection: "faulty".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert!(cnt > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_outage_opens_breaker_and_dlq_survives_restart() {
    let Some(bin) = moto_bin("s3_outage_opens_breaker_and_dlq_survives_restart") else {
        return;
    };
    let moto = Moto::start(&bin).await;
    let proxy = Proxy::start(moto.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path(), &s3_args(&proxy.url()));
    let (mut c, mut a) = srv.connect().await;
    create(&mut c, "faulty", 16, pb::Metric::L2).await;
    let mut round = 0;
    write_and_snapshot(&mut c, &mut a, round).await;

    // S3 stops answering (SIGSTOP), then refuses connections.
    assert_eq!(moto.signal(libc::SIGSTOP), 0);
    let depth = until_open_and_queued(&srv, &mut c, &mut a, &mut round).await;
    proxy.set(Mode::Refuse);
    for _ in 0..3 {
        round += 1;
        write_and_snapshot(&mut c, &mut a, round).await;
    }
    let depth = depth.max(dlq_len(&mut a).await);
    assert_eq!(breaker(&mut a).await.state, pb::BreakerState::Open as i32);

    // The DLQ survives a restart.
    let mut srv = srv.restart();
    let (mut c, mut a) = srv.connect().await;
    let after = dlq_len(&mut a).await;
    assert!(after >= depth, "DLQ after restart: {after} < {depth}");
    // Still down after the restart: writes go on and the new breaker opens too.
    until_open_and_queued(&srv, &mut c, &mut a, &mut round).await;

    // S3 is back.
    assert_eq!(moto.signal(libc::SIGCONT), 0);
    proxy.set(Mode::Pass);
    recovers(&srv, &moto, &mut c, &mut a).await;
    // Now a cold demotion goes through.
    let st = demote(&mut a, "faulty", pb::Tier::Cold).await.unwrap();
    assert_eq!(st.tier, pb::Tier::Cold as i32);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_slow_opens_breaker_without_hanging_requests() {
    let Some(bin) = moto_bin("s3_slow_opens_breaker_without_hanging_requests") else {
        return;
    };
    let moto = Moto::start(&bin).await;
    let proxy = Proxy::start(moto.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path(), &s3_args(&proxy.url()));
    let (mut c, mut a) = srv.connect().await;
    create(&mut c, "faulty", 16, pb::Metric::L2).await;
    let mut round = 0;
    write_and_snapshot(&mut c, &mut a, round).await;

    // Every new connection is held 10 s, far past --s3-timeout-ms=500.
    proxy.set(Mode::Delay(Duration::from_secs(10)));
    until_open_and_queued(&srv, &mut c, &mut a, &mut round).await;
    // Searches, status calls: all answer within their deadlines.
    let t = Instant::now();
    c.search(deadline(query("faulty", vec![0.0; 16])))
        .await
        .unwrap();
    a.tier_status(deadline(pb::TierStatusRequest::default()))
        .await
        .unwrap();
    a.list_snapshots(deadline(pb::ListSnapshotsRequest::default()))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));

    proxy.set(Mode::Pass);
    recovers(&srv, &moto, &mut c, &mut a).await;
    srv.stop();
}

// ---------------------------------------------------------------------------------------
// memory budget

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_budget_demotes_the_coldest_and_access_promotes() {
    let dir = tempfile::tempdir().unwrap();
    // Measure one collection's memory, then restart with room for about two and a half.
    let mut srv = Server::start(dir.path(), &[]);
    let (mut c, mut a) = srv.connect().await;
    let names: Vec<String> = (0..5).map(|i| format!("budget-{i}")).collect();
    create(&mut c, &names[0], 32, pb::Metric::Dot).await;
    upsert_all(&mut c, &names[0], random_points(1, 1_000, 32, 0)).await;
    let one = tier_of(&mut a, &names[0]).await.bytes_in_memory;
    assert!(one > 0);
    let budget = one * 5 / 2;
    srv.stop();
    let mut srv = Server::start(
        dir.path(),
        &[
            format!("--hot-memory-bytes={budget}"),
            "--tier-interval-ms=100".into(),
        ],
    );
    let (mut c, mut a) = srv.connect().await;
    for (i, name) in names.iter().enumerate().skip(1) {
        create(&mut c, name, 32, pb::Metric::Dot).await;
        upsert_all(&mut c, name, random_points(i as u64, 1_000, 32, 0)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The worker settles: memory under the budget, the most recently used ones hot.
    let settle = async |a: &mut AdminServiceClient<Channel>| {
        let t = Instant::now();
        loop {
            let r = a
                .tier_status(pb::TierStatusRequest::default())
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.hot_memory_budget_bytes, budget);
            if r.hot_memory_used_bytes <= budget && r.collections.iter().all(|s| s.moving_to == 0) {
                return r;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let r = settle(&mut a).await;
    let tiers: BTreeMap<String, i32> = r
        .collections
        .iter()
        .map(|s| (s.name.clone(), s.tier))
        .collect();
    eprintln!(
        "budget {budget}, used {}, tiers {tiers:?}",
        r.hot_memory_used_bytes
    );
    assert_eq!(tiers[&names[0]], pb::Tier::Warm as i32, "{tiers:?}");
    assert_eq!(tiers[&names[1]], pb::Tier::Warm as i32, "{tiers:?}");
    assert_eq!(tiers[&names[2]], pb::Tier::Warm as i32, "{tiers:?}");
    assert_eq!(tiers[&names[3]], pb::Tier::Hot as i32, "{tiers:?}");
    assert_eq!(tiers[&names[4]], pb::Tier::Hot as i32, "{tiers:?}");
    let m = srv.metrics().await;
    assert!(m.contains(&format!("akidb_hot_memory_budget_bytes {budget}")));
    assert!(m.contains("akidb_collections{tier=\"warm\"} 3"));

    // Touching the coldest promotes it; the budget then pushes out the least recent.
    let (_, st) = search(&mut c, &names[0], &[0.5; 32]).await;
    assert!(st.loaded);
    assert_eq!(st.tier, pb::Tier::Warm as i32);
    let r = settle(&mut a).await;
    let tiers: BTreeMap<String, i32> = r
        .collections
        .iter()
        .map(|s| (s.name.clone(), s.tier))
        .collect();
    assert_eq!(tiers[&names[0]], pb::Tier::Hot as i32, "{tiers:?}");
    assert_eq!(tiers[&names[3]], pb::Tier::Warm as i32, "{tiers:?}");
    assert_eq!(tiers[&names[4]], pb::Tier::Hot as i32, "{tiers:?}");

    // A pinned collection is loaded and never demoted.
    a.pin(pb::PinRequest {
        collection: names[1].clone(),
        pinned: true,
    })
    .await
    .unwrap();
    let e = demote(&mut a, &names[1], pb::Tier::Warm).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tier_of(&mut a, &names[1]).await.tier, pb::Tier::Hot as i32);
    // Unknown DLQ ids are NOT_FOUND.
    let e = a
        .dlq_retry(pb::DlqRetryRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let b = breaker(&mut a).await;
    assert!(!b.remote);
    assert_eq!(b.state, pb::BreakerState::Closed as i32);
    srv.stop();
}

// ---------------------------------------------------------------------------------------
// benchmark: promotion times of jeopardy-ada002-10k

fn fvecs(p: &Path) -> Vec<Vec<f32>> {
    let b = std::fs::read(p).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let d = i32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        out.push(
            b[at..at + 4 * d]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        );
        at += 4 * d;
    }
    out
}

/// `cargo test --release -p akidb-storage --test tiers -- --ignored --nocapture bench_`
/// with `AKIDB_TEST_MOTO_BIN` set (cold from moto) and the shared data set in
/// `/work/shared/data` (or `AKIDB_DATASETS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn bench_jeopardy_promotion_times() {
    let Some(bin) = moto_bin("bench_jeopardy_promotion_times") else {
        return;
    };
    let root = std::env::var_os("AKIDB_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data"));
    let base = fvecs(&root.join("jeopardy-ada002-10k/jeopardy_base.fvecs"));
    let queries = fvecs(&root.join("jeopardy-ada002-10k/jeopardy_query.fvecs"));
    let moto = Moto::start(&bin).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = s3_args(&moto.url());
    // Sealed, HNSW-indexed segments, as a collection that went idle has.
    args.push("--segment-max-points=3000".into());
    let mut srv = Server::start(dir.path(), &args);
    let (mut c, mut a) = srv.connect().await;
    let name = "jeopardy";
    create(&mut c, name, 1536, pb::Metric::Cosine).await;
    let pts: Vec<pb::Point> = base
        .iter()
        .enumerate()
        .map(|(i, v)| pb::Point {
            id: Some(pb::PointId::num(i as u64)),
            vector: v.clone(),
            payload: None,
        })
        .collect();
    for chunk in pts.chunks(500) {
        c.upsert(pb::UpsertRequest {
            collection: name.into(),
            points: chunk.to_vec(),
        })
        .await
        .unwrap();
    }
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    let mut size = 0;
    for q in queries.iter().take(5) {
        demote(&mut a, name, pb::Tier::Warm).await.unwrap();
        let t = Instant::now();
        let (_, st) = search(&mut c, name, q).await;
        warm.push(t.elapsed());
        assert!(st.loaded && st.tier == pb::Tier::Warm as i32);

        let s = demote(&mut a, name, pb::Tier::Cold).await.unwrap();
        assert_eq!(s.tier, pb::Tier::Cold as i32);
        size = s.bytes_in_object_store;
        let t = Instant::now();
        let (_, st) = search(&mut c, name, q).await;
        cold.push(t.elapsed());
        assert!(st.loaded && st.tier == pb::Tier::Cold as i32);
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (w, cd) = (med(&mut warm), med(&mut cold));
    println!(
        "jeopardy-ada002-10k ({} x 1536, snapshot {:.1} MB): warm->hot (first search) median {:?} of {:?}; cold->hot from moto median {:?} of {:?}",
        base.len(),
        size as f64 / 1e6,
        w,
        warm,
        cd,
        cold
    );
    srv.stop();
}
