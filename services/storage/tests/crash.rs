//! Crash test: a real `akidb-storage` process is SIGKILLed at random moments while a client
//! writes (upserts, deletes, payload updates by ids and by filter) and another searches with
//! a filter on the payload those updates change; after every restart each acknowledged write
//! is there with its latest vector and payload, and the write in flight at the kill is either
//! fully applied or not at all.

mod common;

use akidb_proto::prost_types::{Struct, Value, value::Kind};
use akidb_proto::v1 as pb;
use akidb_proto::v1::storage_service_client::StorageServiceClient;
use common::server::Server;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const COLLECTION: &str = "crash";
const DIM: usize = 16;
const IDS: u64 = 400;
const KILLS: usize = 22;

/// A directory on a real disk (fsync means nothing on tmpfs).
fn data_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let tmpfs = |p: &Path| {
        mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 2).then(|| (f[1], f[2]))
            })
            .filter(|(mnt, _)| p.starts_with(mnt))
            .max_by_key(|(mnt, _)| mnt.len())
            .is_some_and(|(_, fs)| fs == "tmpfs")
    };
    let tmp = std::env::temp_dir();
    if !tmpfs(&tmp) {
        return tmp;
    }
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    assert!(!tmpfs(&p), "no non-tmpfs directory for the crash test");
    p
}

/// Storage over `dir`, fsync on every commit, sealing, snapshotting and pruning snapshots
/// often so that the kills land in all of it.
fn start(dir: &Path) -> Server {
    Server::start(
        dir,
        &[
            "--fsync=always",
            "--segment-max-points=150",
            "--snapshot-interval-secs=1",
            "--snapshot-keep=2",
        ]
        .map(String::from),
    )
}

async fn connect(s: &mut Server) -> StorageServiceClient<Channel> {
    s.connect().await.0
}

/// What a point should look like: (vector, batch number, index in batch).
type Model = HashMap<u64, (Vec<f32>, f64, f64)>;

#[derive(Clone, Debug)]
enum Op {
    Upsert(u64, Vec<(u64, Vec<f32>)>),
    Delete(Vec<u64>),
    /// UpdatePayload: merge `{"batch": b}` into the payloads of these ids and, with `Some(i)`,
    /// of every point whose `i` is `i` (a filter); vectors stay.
    SetBatch(u64, Vec<u64>, Option<i64>),
}

impl Op {
    /// The model after this op.
    fn apply(&self, m: &mut Model) {
        match self {
            Op::Upsert(b, pts) => {
                for (i, (id, v)) in pts.iter().enumerate() {
                    m.insert(*id, (v.clone(), *b as f64, i as f64));
                }
            }
            Op::Delete(ids) => ids.iter().for_each(|id| {
                m.remove(id);
            }),
            Op::SetBatch(b, ids, by_i) => {
                for (id, (_, batch, i)) in m.iter_mut() {
                    if ids.contains(id) || by_i.is_some_and(|x| x as f64 == *i) {
                        *batch = *b as f64;
                    }
                }
            }
        }
    }
}

fn num(v: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(v)),
    }
}

async fn send(c: &mut StorageServiceClient<Channel>, op: &Op) -> Result<(), tonic::Status> {
    match op {
        Op::Upsert(b, pts) => {
            let points = pts
                .iter()
                .enumerate()
                .map(|(i, (id, v))| pb::Point {
                    id: Some(pb::PointId::num(*id)),
                    vector: v.clone(),
                    payload: Some(Struct {
                        fields: [
                            ("batch".to_string(), num(*b as f64)),
                            ("i".to_string(), num(i as f64)),
                        ]
                        .into_iter()
                        .collect(),
                    }),
                    ..Default::default()
                })
                .collect();
            c.upsert(pb::UpsertRequest {
                collection: COLLECTION.into(),
                points,
            })
            .await?;
        }
        Op::Delete(ids) => {
            c.delete(pb::DeleteRequest {
                collection: COLLECTION.into(),
                ids: ids.iter().map(|i| pb::PointId::num(*i)).collect(),
                filter: None,
            })
            .await?;
        }
        Op::SetBatch(b, ids, by_i) => {
            c.update_payload(pb::UpdatePayloadRequest {
                collection: COLLECTION.into(),
                ids: ids.iter().map(|i| pb::PointId::num(*i)).collect(),
                filter: by_i.map(i_is),
                change: Some(pb::update_payload_request::Change::Set(Struct {
                    fields: [("batch".to_string(), num(*b as f64))]
                        .into_iter()
                        .collect(),
                })),
            })
            .await?;
        }
    }
    Ok(())
}

/// Points whose payload field `i` is `i`.
fn i_is(i: i64) -> pb::Filter {
    pb::Filter {
        must: vec![pb::Condition {
            condition: Some(pb::condition::Condition::Field(pb::FieldCondition {
                key: "i".into(),
                r#match: Some(pb::field_condition::Match::Integer(i)),
            })),
        }],
        ..Default::default()
    }
}

/// The test collection: L2, float32, `dim` dimensions, HNSW `m` and `ef_construction`, with
/// `quantization`, vectors on disk or not.
async fn create(
    c: &mut StorageServiceClient<Channel>,
    dim: usize,
    (m, ef_construction): (u32, u32),
    quantization: pb::Quantization,
    on_disk: bool,
) {
    c.create_collection(pb::CreateCollectionRequest {
        name: COLLECTION.into(),
        dimension: dim as u32,
        metric: pb::Metric::L2 as i32,
        m: Some(m),
        ef_construction: Some(ef_construction),
        pin: false,
        datatype: pb::VectorDatatype::Float32 as i32,
        quantization: quantization as i32,
        on_disk,
        shards: 0,
        replication: 0,
        // Declared indexes on the fields the filters use: kept through every kill and replay.
        payload_indexes: [
            (
                "i".to_string(),
                pb::PayloadIndexKind::PayloadIndexInteger as i32,
            ),
            (
                "batch".to_string(),
                pb::PayloadIndexKind::PayloadIndexFloat as i32,
            ),
        ]
        .into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// How many hits a search for the 5 points nearest the origin returns.
async fn nearest_5(c: &mut StorageServiceClient<Channel>, dim: usize) -> usize {
    c.search(pb::SearchRequest {
        collection: COLLECTION.into(),
        vector: vec![0.0; dim],
        k: 5,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .hits
    .len()
}

async fn read_all(c: &mut StorageServiceClient<Channel>) -> Model {
    let r = c
        .get(pb::GetRequest {
            collection: COLLECTION.into(),
            ids: (0..IDS).map(pb::PointId::num).collect(),
            with_payload: true,
            with_vector: true,
        })
        .await
        .unwrap()
        .into_inner();
    let field = |p: &Option<Struct>, k: &str| match p
        .as_ref()
        .and_then(|s| s.fields.get(k))
        .and_then(|v| v.kind.clone())
    {
        Some(Kind::NumberValue(n)) => n,
        other => panic!("payload field {k}: {other:?}"),
    };
    r.points
        .into_iter()
        .map(|p| {
            let Some(pb::point_id::Kind::Num(id)) = p.id.and_then(|i| i.kind) else {
                panic!("numeric ids only")
            };
            (
                id,
                (p.vector, field(&p.payload, "batch"), field(&p.payload, "i")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write() {
    sigkill_rounds(KILLS, pb::Quantization::None, false, 0xC0FFEE).await;
}

/// The same on an int8-quantized collection whose sealed segments keep their vectors in
/// mapped files: the kills land while vector files are written, linked into snapshots and
/// adopted back at restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_quantized_on_disk() {
    sigkill_rounds(KILLS / 2, pb::Quantization::Int8, true, 0xD15C).await;
}

async fn sigkill_rounds(kills: usize, quantization: pb::Quantization, on_disk: bool, seed: u64) {
    let dir = tempfile::tempdir_in(data_root()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = Model::new();
    let mut batch = 0u64;
    let mut in_flight_applied = 0;
    let started = Instant::now();
    let mut server = start(dir.path());
    let mut c = connect(&mut server).await;
    create(&mut c, DIM, (8, 32), quantization, on_disk).await;
    for round in 0..kills {
        // Write until the kill; the writer stops at its first failure.
        let kill_after = Duration::from_millis(rng.random_range(300..1800));
        let ops: Vec<Op> = (0..40_000)
            .map(|_| {
                batch += 1;
                let dice = rng.random_range(0.0..1.0);
                if dice < 0.1 {
                    Op::Delete((0..5).map(|_| rng.random_range(0..IDS)).collect())
                } else if dice < 0.25 {
                    // Payload updates by ids, by filter, or both.
                    let ids = (0..rng.random_range(0..6))
                        .map(|_| rng.random_range(0..IDS))
                        .collect::<Vec<_>>();
                    let by_i =
                        (ids.is_empty() || rng.random_bool(0.3)).then(|| rng.random_range(0..40));
                    Op::SetBatch(batch, ids, by_i)
                } else {
                    let n = rng.random_range(1..40);
                    Op::Upsert(
                        batch,
                        (0..n)
                            .map(|_| {
                                let id = rng.random_range(0..IDS);
                                (
                                    id,
                                    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                                )
                            })
                            .collect(),
                    )
                }
            })
            .collect();
        let mut wc = c.clone();
        let writer = tokio::spawn(async move {
            let mut acked = 0usize;
            for op in &ops {
                if send(&mut wc, op).await.is_err() {
                    break;
                }
                acked += 1;
            }
            (ops, acked)
        });
        // Searches filtered on the payload the updates change run meanwhile.
        let mut sc = c.clone();
        let searcher = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let r = sc
                    .search(pb::SearchRequest {
                        collection: COLLECTION.into(),
                        vector: vec![0.0; DIM],
                        k: 5,
                        filter: Some(i_is(n as i64 % 40)),
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(_) => n += 1,
                    Err(e) if n > 0 && e.code() == tonic::Code::Unavailable => return n,
                    Err(e) if n > 0 && e.code() == tonic::Code::Unknown => return n,
                    Err(e) => panic!("search failed before the kill: {e:?}"),
                }
            }
        });
        tokio::time::sleep(kill_after).await;
        server.kill(); // SIGKILL
        let (ops, acked) = writer.await.unwrap();
        let searched = searcher.await.unwrap();
        assert!(searched > 0);
        assert!(acked < ops.len(), "the writer outran the kill");
        for op in &ops[..acked] {
            op.apply(&mut model);
        }
        let pending = &ops[acked];

        server = start(dir.path());
        c = connect(&mut server).await;
        let seen = read_all(&mut c).await;
        let mut with_pending = model.clone();
        pending.apply(&mut with_pending);
        if seen == with_pending && seen != model {
            in_flight_applied += 1;
            model = with_pending;
        } else {
            // Not applied at all: everything must equal the acknowledged state exactly.
            for (id, want) in &model {
                assert_eq!(
                    seen.get(id),
                    Some(want),
                    "round {round}: point {id} lost or stale"
                );
            }
            assert_eq!(
                seen.len(),
                model.len(),
                "round {round}: unexpected points (half-applied batch?)"
            );
        }
        eprintln!(
            "round {round}: {acked} ops acknowledged ({} payload updates), {searched} searches, {} points, in-flight applied so far {in_flight_applied}",
            ops[..acked]
                .iter()
                .filter(|o| matches!(o, Op::SetBatch(..)))
                .count(),
            model.len()
        );
    }
    // A search still works over the recovered segments and graphs.
    let hits = nearest_5(&mut c, DIM).await;
    assert_eq!(hits, 5.min(model.len()));
    if on_disk {
        // Sealed segments read their vectors from files the restarts adopted.
        let files = std::fs::read_dir(server.collection_dir(COLLECTION).join("vectors"))
            .unwrap()
            .count();
        eprintln!("vector files in use: {files}");
        assert!(files > 0, "no sealed segment keeps its vectors in a file");
    }
    server.kill();
    // The kills hit a process that sealed segments, built graphs and took snapshots.
    let log = std::fs::read_to_string(dir.path().join("storage.log")).unwrap();
    for what in [
        "snapshot written",
        "HNSW graph built",
        "snapshot loaded",
        "WAL replayed",
    ] {
        eprintln!("log lines with `{what}`: {}", log.matches(what).count());
        assert!(
            log.contains(what),
            "storage never logged `{what}`; log tail:\n{}",
            &log[log.len().saturating_sub(3000)..]
        );
    }
    eprintln!("crash test took {:.1}s", started.elapsed().as_secs_f64());
}

/// A SIGTERM while the index builder is in the middle of a long graph build: storage
/// abandons the build and exits within seconds (it used to wait for the whole backlog);
/// after the restart every point is there, searchable at once, and the graph is built again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_graph_build_stops_in_seconds() {
    const N: u64 = 100_000;
    const DIM: usize = 128;
    let dir = tempfile::tempdir_in(data_root()).unwrap();
    let args = [
        "--fsync=never",
        "--segment-max-points=1000000",
        "--seal-idle-ms=0",
        "--snapshot-interval-secs=0",
    ]
    .map(String::from);
    let mut server = Server::start(dir.path(), &args);
    let mut c = connect(&mut server).await;
    create(&mut c, DIM, (16, 200), pb::Quantization::None, false).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for from in (0..N).step_by(2000) {
        let points = (from..from + 2000)
            .map(|id| pb::Point {
                id: Some(pb::PointId::num(id)),
                vector: (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                payload: None,
                ..Default::default()
            })
            .collect();
        c.upsert(pb::UpsertRequest {
            collection: COLLECTION.into(),
            points,
        })
        .await
        .unwrap();
    }
    c.flush(pb::FlushRequest {
        collection: COLLECTION.into(),
        wait_indexed: false,
    })
    .await
    .unwrap();
    // Wait until the build is under way, and not near its end.
    let inserted = r#"akidb_index_build_points{progress="inserted",work="segment"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let m = server.metrics().await;
        let v = m
            .lines()
            .find_map(|l| l.strip_prefix(inserted))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if v > 0.0 {
            break v;
        }
        assert!(Instant::now() < deadline, "no graph build started:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(done < N as f64 / 2.0, "the build was already at {done}");
    let t = Instant::now();
    server.stop();
    let took = t.elapsed();
    eprintln!("SIGTERM with a build at {done} of {N} points: exited in {took:?}");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let log = server.log();
    assert!(log.contains("HNSW graph build abandoned"), "{log}");

    let mut server = start(dir.path());
    let mut c = connect(&mut server).await;
    let stats = c
        .get_collection(pb::GetCollectionRequest {
            name: COLLECTION.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    assert_eq!(stats.point_count, N);
    let hits = nearest_5(&mut c, DIM).await;
    assert_eq!(hits, 5);
}
