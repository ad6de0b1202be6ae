//! Tiers against a real `akidb-storage` process: demotion to cold and back (local object
//! directory; S3 through moto), S3 outages and slowness with the breaker and the DLQ, and
//! the hot memory budget.
//!
//! The S3 tests need `AKIDB_TEST_MOTO_BIN` (`akidb_testkit::moto`): without it they skip
//! loudly, or fail under `CI=true`. Objects in S3 are checked with boto3, not through AkiDB.
//! The promotion-time benchmark is `benches/tiers.rs`.

mod common;

use akidb_proto::prost_types::{Struct, Value, value::Kind};
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_client::AdminServiceClient;
use akidb_proto::v1::storage_service_client::StorageServiceClient;
use akidb_testkit::moto::Moto;
use akidb_testkit::proxy::{Mode, Proxy};
use common::server::{
    BUCKET, Server, create, create_with, demote, query, s3_args, search, tier_of, upsert_all,
};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

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
            ..Default::default()
        })
        .collect()
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
// demotion to cold and back

/// Create 2,000 random 64-d points with payloads, demote to cold, check the local snapshot
/// is gone and (via `check_objects`) the copy in the object store, then search: same hits,
/// served from COLD with a load. Then the tier survives a restart.
async fn cold_roundtrip(
    dir: &Path,
    args: Vec<String>,
    check_objects: impl AsyncFnOnce(&BTreeMap<String, (u64, String)>),
) {
    cold_roundtrip_of(dir, args, (pb::Quantization::None, false), check_objects).await
}

/// [`cold_roundtrip`] of a collection created with `quantization` and vectors on disk or not.
async fn cold_roundtrip_of(
    dir: &Path,
    args: Vec<String>,
    (quantization, on_disk): (pb::Quantization, bool),
    check_objects: impl AsyncFnOnce(&BTreeMap<String, (u64, String)>),
) {
    let name = "docs";
    let mut srv = Server::start_unsynced(dir, &args);
    let (mut c, mut a) = srv.connect().await;
    create_with(&mut c, name, 64, pb::Metric::Cosine, quantization, on_disk).await;
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
    if on_disk {
        // The vector files and codes of the sealed segments travel with the snapshot.
        assert!(local.keys().any(|k| k.ends_with(".vec")), "{local:?}");
        assert!(local.keys().any(|k| k.ends_with(".codes")), "{local:?}");
    }

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

/// Every expected object is in the local object store under `objects`, byte for byte.
fn in_local_store(objects: &Path, expected: &BTreeMap<String, (u64, String)>) {
    for (key, (size, sum)) in expected {
        let bytes = std::fs::read(objects.join(key))
            .unwrap_or_else(|e| panic!("{key} in the local object store: {e}"));
        assert_eq!(bytes.len() as u64, *size, "{key}");
        assert_eq!(&sha(&bytes), sum, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_store_demote_to_cold_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("data/objects");
    cold_roundtrip(dir.path(), vec![], async |expected| {
        in_local_store(&objects, expected)
    })
    .await;
}

/// The same round trip for an int8 collection whose sealed segments keep their vectors in
/// mapped files: the files go to the object store with the snapshot and come back mapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_store_demote_to_cold_and_load_back_int8_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("data/objects");
    let args = vec!["--segment-max-points=400".to_string()];
    cold_roundtrip_of(
        dir.path(),
        args,
        (pb::Quantization::Int8, true),
        async |expected| in_local_store(&objects, expected),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_demote_to_cold_checked_with_boto3() {
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    cold_roundtrip(dir.path(), s3_args(&moto.url()), async |expected| {
        let listed = moto.list(BUCKET, "collections/docs/").await;
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
    let listed = moto.list(BUCKET, "collections/faulty/").await;
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
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_unsynced(dir.path(), &s3_args(&proxy.url()));
    let (mut c, mut a) = srv.connect().await;
    create(&mut c, "faulty", 16, pb::Metric::L2).await;
    let mut round = 0;
    write_and_snapshot(&mut c, &mut a, round).await;

    // S3 stops answering (SIGSTOP), then refuses connections.
    moto.pause();
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
    moto.resume();
    proxy.set(Mode::Pass);
    recovers(&srv, &moto, &mut c, &mut a).await;
    // Now a cold demotion goes through.
    let st = demote(&mut a, "faulty", pb::Tier::Cold).await.unwrap();
    assert_eq!(st.tier, pb::Tier::Cold as i32);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_slow_opens_breaker_without_hanging_requests() {
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_unsynced(dir.path(), &s3_args(&proxy.url()));
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
    let mut srv = Server::start_unsynced(dir.path(), &[]);
    let (mut c, mut a) = srv.connect().await;
    let names: Vec<String> = (0..5).map(|i| format!("budget-{i}")).collect();
    create(&mut c, &names[0], 32, pb::Metric::Dot).await;
    upsert_all(&mut c, &names[0], random_points(1, 1_000, 32, 0)).await;
    let one = tier_of(&mut a, &names[0]).await.bytes_in_memory;
    assert!(one > 0);
    let budget = one * 5 / 2;
    srv.stop();
    let mut srv = Server::start_unsynced(
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
