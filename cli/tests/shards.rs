//! A collection split into shards over three storage nodes, as separate processes with etcd:
//! writes reach each shard's owner, searches fan out and equal the exact answer over all the
//! points, Get/Count/Scroll see every shard, and a node that stops answering makes searches
//! `partial` (naming its shards) within the deadline, writes to its shards fail saying which
//! shards took their part, and everything is whole again when it answers.

mod common;

use akidb_proto::v1 as pb;
use akidb_testkit::etcd::Etcd as EtcdServer;
use akidb_testkit::ports::free_port;
use common::{Proc, Stack, wait_serving};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const DIM: usize = 16;
const SHARDS: u32 = 6;

fn listen_args() -> (String, Vec<String>) {
    listen_with_metrics().0
}

/// The gRPC address and arguments, and the metrics port.
fn listen_with_metrics() -> ((String, Vec<String>), u16) {
    let addr = format!("127.0.0.1:{}", free_port());
    let metrics = free_port();
    let args = vec![
        "--grpc-addr".into(),
        addr.clone(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{metrics}"),
    ];
    ((addr, args), metrics)
}

fn storage_node(etcd: &str, id: &str, dir: &Path) -> (Proc, String) {
    storage_node_with(etcd, id, dir, 3)
}

/// A storage node whose lease lives `ttl` seconds; every node shares `dir/objects`.
fn storage_node_with(etcd: &str, id: &str, dir: &Path, ttl: u64) -> (Proc, String) {
    let store = vec![
        "--object-dir".to_string(),
        dir.join("objects").display().to_string(),
    ];
    storage_node_on(etcd, id, dir, ttl, store)
}

/// A storage node whose objects go where `store` (flags) says.
fn storage_node_on(
    etcd: &str,
    id: &str,
    dir: &Path,
    ttl: u64,
    store: Vec<String>,
) -> (Proc, String) {
    let (addr, mut args) = listen_args();
    args.extend([
        "--data-dir".into(),
        dir.join(id).display().to_string(),
        "--etcd".into(),
        etcd.to_string(),
        "--node-id".into(),
        id.to_string(),
        "--lease-ttl-secs".into(),
        ttl.to_string(),
        "--orphan-grace-secs".into(),
        "2".into(),
    ]);
    args.extend(store);
    (
        Proc::start("storage", args, dir.join(format!("{id}.log"))),
        addr,
    )
}

fn front(service: &'static str, etcd: &str, dir: &Path) -> (Proc, String) {
    let (p, addr, _) = front_with_metrics(service, etcd, dir);
    (p, addr)
}

fn front_with_metrics(service: &'static str, etcd: &str, dir: &Path) -> (Proc, String, u16) {
    let ((addr, mut args), metrics) = listen_with_metrics();
    args.extend([
        "--etcd".into(),
        etcd.to_string(),
        "--storage-timeout-ms".into(),
        "1500".into(),
    ]);
    (
        Proc::start(service, args, dir.join(format!("{service}.log"))),
        addr,
        metrics,
    )
}

/// Deterministic pseudo-random vectors.
fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            (0..DIM)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect()
        })
        .collect()
}

fn id_of(k: usize) -> pb::PointId {
    if k % 10 == 3 {
        // Spelled without hyphens and in capitals: the router must find its shard as storage
        // names it (canonical form).
        pb::PointId::uuid(format!(
            "{:032X}",
            0xA0000000_0000_4000_8000_000000000000u128 + k as u128
        ))
    } else {
        pb::PointId::num(k as u64)
    }
}

fn id_str(id: &pb::PointId) -> String {
    match id.kind.as_ref().unwrap() {
        pb::point_id::Kind::Num(n) => format!("n{n}"),
        pb::point_id::Kind::Uuid(u) => {
            format!("u{}", uuid::Uuid::parse_str(u).unwrap().hyphenated())
        }
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

async fn search(
    q: &akidb_client::Link,
    v: &[f32],
    k: u32,
) -> Result<pb::SearchResponse, tonic::Status> {
    let mut r = q.request(pb::SearchRequest {
        collection: "docs".into(),
        vector: v.to_vec(),
        k,
        exact: true,
        ..Default::default()
    });
    r.set_timeout(Duration::from_secs(5));
    q.query().search(r).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn a_sharded_collection_over_three_nodes_answers_like_one_and_says_when_a_shard_is_missing() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Leases that outlive the pause below: this test is about partial reads, not failover.
    let mut nodes: Vec<(Proc, String)> = ["s0", "s1", "s2"]
        .iter()
        .map(|id| storage_node_with(&etcd.url, id, dir.path(), 15))
        .collect();
    for (_, a) in &nodes {
        wait_serving(a, Duration::from_secs(60)).await;
    }
    let (_query, q_addr) = front("query", &etcd.url, dir.path());
    let (_ingest, i_addr) = front("ingest", &etcd.url, dir.path());
    // Serving once etcd listed at least one node: wait for all three to be registered.
    wait_serving(&q_addr, Duration::from_secs(60)).await;
    wait_serving(&i_addr, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let q = Stack::link(&q_addr);
    let i = Stack::link(&i_addr);
    let info = loop {
        // Placement uses the nodes registered at creation; wait until all three are.
        let status = std::process::Command::new(common::BIN)
            .args(["--json", "cluster", "status", "--etcd", &etcd.url])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        if v["nodes"].as_array().map_or(0, |n| n.len()) == 3 {
            break q
                .collections()
                .create_collection(q.request(pb::CreateCollectionRequest {
                    name: "docs".into(),
                    dimension: DIM as u32,
                    metric: pb::Metric::L2 as i32,
                    shards: SHARDS,
                    ..Default::default()
                }))
                .await
                .expect("create a sharded collection")
                .into_inner()
                .collection
                .unwrap();
        }
        assert!(Instant::now() < deadline, "three nodes registered: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info.shards, SHARDS);
    assert_eq!(info.point_count, 0);

    // A second create of the same name: exactly one wins.
    let again = q
        .collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "docs".into(),
            dimension: DIM as u32,
            metric: pb::Metric::L2 as i32,
            shards: SHARDS,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    // Write 3,000 points in batches of 500.
    let n = 3_000;
    let data = vectors(n, 7);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let points = chunk
            .iter()
            .map(|&k| pb::Point {
                id: Some(id_of(k)),
                vector: data[k].clone(),
                payload: None,
                ..Default::default()
            })
            .collect();
        let r = i
            .ingest()
            .upsert(i.request(pb::UpsertRequest {
                collection: "docs".into(),
                points,
            }))
            .await
            .expect("upsert")
            .into_inner();
        assert_eq!(r.upserted, chunk.len() as u64);
    }
    let count = |q: akidb_client::Link| async move {
        q.query()
            .count(q.request(pb::CountRequest {
                collection: "docs".into(),
                filter: None,
            }))
            .await
    };
    assert_eq!(count(q.clone()).await.unwrap().into_inner().count, n as u64);

    // Every node holds some shards, and together exactly the collection's.
    let mut held = BTreeMap::new();
    for (id, (_, addr)) in ["s0", "s1", "s2"].iter().zip(&nodes) {
        let l = Stack::link(addr);
        let list = l
            .storage()
            .list_collections(l.request(pb::ListCollectionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let names: Vec<String> = list.collections.iter().map(|c| c.name.clone()).collect();
        assert!(!names.is_empty(), "node {id} holds no shard");
        let points: u64 = list.collections.iter().map(|c| c.point_count).sum();
        assert!(points > 0, "node {id}'s shards hold no point");
        for name in names {
            held.insert(name, id.to_string());
        }
    }
    let want: BTreeSet<String> = (0..SHARDS).map(|s| format!("docs.{s}")).collect();
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);

    // Exact searches over the shards equal the exact answer over all the points.
    let queries = vectors(30, 99);
    for v in &queries {
        let r = search(&q, v, 10).await.unwrap();
        assert!(!r.partial);
        assert_eq!(r.shards.len(), SHARDS as usize);
        let mut truth: Vec<(f32, usize)> = data
            .iter()
            .enumerate()
            .map(|(k, p)| (l2(v, p), k))
            .collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<String> = truth[..10]
            .iter()
            .map(|(_, k)| id_str(&id_of(*k)))
            .collect();
        let got: Vec<String> = r
            .hits
            .iter()
            .map(|h| id_str(h.id.as_ref().unwrap()))
            .collect();
        assert_eq!(got, want);
    }

    // A SearchBatch (one batch per shard) answers each search as Search does.
    let batch = q
        .query()
        .search_batch(
            q.request(pb::SearchBatchRequest {
                searches: queries
                    .iter()
                    .map(|v| pb::SearchRequest {
                        collection: "docs".into(),
                        vector: v.clone(),
                        k: 10,
                        exact: true,
                        ..Default::default()
                    })
                    .collect(),
            }),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results.len(), queries.len());
    for (v, got) in queries.iter().zip(&batch.results) {
        let one = search(&q, v, 10).await.unwrap();
        let ids = |r: &pb::SearchResponse| -> Vec<String> {
            r.hits
                .iter()
                .map(|h| id_str(h.id.as_ref().unwrap()))
                .collect()
        };
        assert_eq!(ids(got), ids(&one));
        assert_eq!(got.shards.len(), SHARDS as usize);
    }

    // Get in the order asked, across shards, UUIDs in any spelling.
    let ask: Vec<pb::PointId> = [13usize, 5, 2_993, 0, 1_203]
        .iter()
        .map(|&k| id_of(k))
        .collect();
    let got = q
        .query()
        .get(q.request(pb::GetRequest {
            collection: "docs".into(),
            ids: ask.clone(),
            with_vector: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.points
            .iter()
            .map(|p| id_str(p.id.as_ref().unwrap()))
            .collect::<Vec<_>>(),
        ask.iter().map(id_str).collect::<Vec<_>>()
    );
    assert_eq!(got.points[1].vector, data[5]);

    // Scroll through every point: each once, integers ascending, then UUIDs.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = q
            .query()
            .scroll(q.request(pb::ScrollRequest {
                collection: "docs".into(),
                limit: 400,
                cursor: cursor.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.points.iter().map(|p| id_str(p.id.as_ref().unwrap())));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    let mut want: Vec<String> = (0..n).map(|k| id_str(&id_of(k))).collect();
    let (mut nums, mut uuids): (Vec<String>, Vec<String>) =
        want.drain(..).partition(|s| s.starts_with('n'));
    nums.sort_by_key(|s| s[1..].parse::<u64>().unwrap());
    uuids.sort();
    nums.extend(uuids);
    assert_eq!(seen, nums, "scroll order and completeness");

    // Delete by ids across shards.
    let r = i
        .ingest()
        .delete(i.request(pb::DeleteRequest {
            collection: "docs".into(),
            ids: (0..100).map(id_of).collect(),
            filter: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.deleted, 100);
    assert_eq!(
        count(q.clone()).await.unwrap().into_inner().count,
        n as u64 - 100
    );

    // Payload updates: by ids split by shard, by filter on every shard.
    let tag_is = |t: &str| pb::Filter {
        must: vec![pb::Condition {
            condition: Some(pb::condition::Condition::Field(pb::FieldCondition {
                key: "tag".into(),
                r#match: Some(pb::field_condition::Match::Keyword(t.into())),
            })),
        }],
        ..Default::default()
    };
    let set_tag = |t: &str| {
        let mut m = serde_json::Map::new();
        m.insert("tag".into(), t.into());
        Some(pb::update_payload_request::Change::Set(
            akidb_storage::convert::payload_to_pb(&m),
        ))
    };
    let updated = |req| {
        let i = i.clone();
        async move {
            i.ingest()
                .update_payload(i.request(req))
                .await
                .map(|r| r.into_inner().updated)
        }
    };
    let by_ids = pb::UpdatePayloadRequest {
        collection: "docs".into(),
        ids: (100..400).map(id_of).collect(),
        filter: None,
        change: set_tag("x"),
    };
    assert_eq!(updated(by_ids).await.unwrap(), 300);
    let by_filter = pb::UpdatePayloadRequest {
        collection: "docs".into(),
        ids: vec![],
        filter: Some(tag_is("x")),
        change: set_tag("y"),
    };
    assert_eq!(updated(by_filter.clone()).await.unwrap(), 300);
    let tagged = |t: &'static str| {
        let q = q.clone();
        async move {
            q.query()
                .count(q.request(pb::CountRequest {
                    collection: "docs".into(),
                    filter: Some(tag_is(t)),
                }))
                .await
                .unwrap()
                .into_inner()
                .count
        }
    };
    assert_eq!((tagged("x").await, tagged("y").await), (0, 300));

    // An alias reaches every shard: counts, searches, writes.
    let made = q
        .collections()
        .update_aliases(q.request(pb::UpdateAliasesRequest {
            actions: vec![pb::AliasAction::create("d", "docs")],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.aliases.len(), 1);
    let via = q
        .query()
        .count(q.request(pb::CountRequest {
            collection: "d".into(),
            filter: Some(tag_is("y")),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(via.count, 300);
    let r = q
        .query()
        .search(q.request(pb::SearchRequest {
            collection: "d".into(),
            vector: queries[0].clone(),
            k: 10,
            exact: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.shards.len(), SHARDS as usize);
    assert_eq!(
        r.hits
            .iter()
            .map(|h| id_str(h.id.as_ref().unwrap()))
            .collect::<Vec<_>>(),
        search(&q, &queries[0], 10)
            .await
            .unwrap()
            .hits
            .iter()
            .map(|h| id_str(h.id.as_ref().unwrap()))
            .collect::<Vec<_>>()
    );
    let by_alias = pb::UpdatePayloadRequest {
        collection: "d".into(),
        ..by_filter.clone()
    };
    assert_eq!(
        updated(by_alias).await.unwrap(),
        0,
        "no point is tagged x any more"
    );

    // One node stops answering: searches are partial within the deadline and name its shards.
    let paused: BTreeSet<u32> = held
        .iter()
        .filter(|(_, node)| *node == "s1")
        .map(|(name, _)| name.rsplit_once('.').unwrap().1.parse().unwrap())
        .collect();
    nodes[1].0.pause();
    let t = Instant::now();
    let r = search(&q, &queries[0], 10)
        .await
        .expect("a partial answer, not an error");
    let took = t.elapsed();
    assert!(r.partial, "{r:?}");
    assert_eq!(
        r.missing_shards.iter().copied().collect::<BTreeSet<_>>(),
        paused
    );
    assert_eq!(r.shards.len() + paused.len(), SHARDS as usize);
    assert!(
        took < Duration::from_secs(4),
        "partial answer took {took:?}"
    );
    eprintln!("partial search answered in {took:?} with shards {paused:?} missing");
    // Count cannot say "partial": it fails naming a shard.
    let e = count(q.clone()).await.unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        ),
        "{e:?}"
    );
    assert!(e.message().contains("shard"), "{e:?}");
    // A batch over every shard: the others take their part, the error says which.
    let points: Vec<pb::Point> = (0..60)
        .map(|k| pb::Point {
            id: Some(id_of(10_000 + k)),
            vector: data[k].clone(),
            payload: None,
            ..Default::default()
        })
        .collect();
    let e = i
        .ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "docs".into(),
            points: points.clone(),
        }))
        .await
        .unwrap_err();
    assert!(e.message().contains("applied on shards"), "{e:?}");
    // A payload update by filter is a write: never partial; it fails naming the shards.
    let e = updated(pb::UpdatePayloadRequest {
        change: set_tag("z"),
        ..by_filter
    })
    .await
    .unwrap_err();
    assert!(e.message().contains("shard"), "{e:?}");
    nodes[1].0.signal(libc::SIGCONT);

    // Whole again, and the batch sent again lands everywhere.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = search(&q, &queries[0], 10).await;
        if r.as_ref().is_ok_and(|r| !r.partial) {
            break;
        }
        assert!(Instant::now() < deadline, "still partial: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "docs".into(),
            points,
        }))
        .await
        .unwrap();
    assert_eq!(
        count(q.clone()).await.unwrap().into_inner().count,
        n as u64 - 100 + 60
    );

    // Deleting the collection removes every shard's copy.
    q.collections()
        .delete_collection(q.request(pb::DeleteCollectionRequest {
            name: "docs".into(),
        }))
        .await
        .unwrap();
    for (_, addr) in &nodes {
        let l = Stack::link(addr);
        let list = l
            .storage()
            .list_collections(l.request(pb::ListCollectionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert!(list.collections.is_empty(), "{list:?}");
    }
    let e = count(q.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Its alias went with it.
    let listed = q
        .collections()
        .list_collections(q.request(pb::ListCollectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.aliases.is_empty(), "{listed:?}");

    // Named vectors over the shards: a search by name, a Query branch naming it (fanned out,
    // then fused), and UpdateVectors split by shard, each against the answer over all points.
    q.collections()
        .create_collection(
            q.request(pb::CreateCollectionRequest {
                name: "multi".into(),
                dimension: DIM as u32,
                metric: pb::Metric::L2 as i32,
                shards: SHARDS,
                vectors: [(
                    "pos".to_string(),
                    pb::NamedVectorParams {
                        dimension: 2,
                        metric: pb::Metric::L2 as i32,
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let mut pos: BTreeMap<usize, Vec<f32>> = (0..300)
        .filter(|k| k % 2 == 0)
        .map(|k| (k, vec![(k % 17) as f32, (k / 17) as f32]))
        .collect();
    let points = (0..300)
        .map(|k| pb::Point {
            id: Some(id_of(k)),
            vector: data[k].clone(),
            vectors: pos
                .get(&k)
                .map(|v| ("pos".to_string(), pb::DenseVector { values: v.clone() }))
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .collect();
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "multi".into(),
            points,
        }))
        .await
        .unwrap();
    let by_pos = |v: Vec<f32>| pb::SearchRequest {
        collection: "multi".into(),
        vector: v,
        k: 5,
        vector_name: "pos".into(),
        exact: true,
        ..Default::default()
    };
    let check = |pos: BTreeMap<usize, Vec<f32>>| {
        let q = q.clone();
        async move {
            for v in [vec![0.0, 0.0], vec![8.0, 8.0], vec![16.0, 3.0]] {
                let mut truth: Vec<(f32, usize)> =
                    pos.iter().map(|(k, p)| (l2(&v, p).sqrt(), *k)).collect();
                truth.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let want: Vec<f32> = truth[..5].iter().map(|t| t.0).collect();
                let r = q
                    .query()
                    .search(q.request(by_pos(v.clone())))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(!r.partial && r.stats.unwrap().lower_is_closer);
                let got: Vec<f32> = r.hits.iter().map(|h| h.score).collect();
                assert!(
                    got.len() == 5 && got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4),
                    "{v:?}: {got:?} vs {want:?}"
                );
                let fused = q
                    .query()
                    .query(q.request(pb::QueryRequest {
                        collection: "multi".into(),
                        branches: vec![pb::SearchRequest {
                            collection: String::new(),
                            ..by_pos(v.clone())
                        }],
                        k: 5,
                        ..Default::default()
                    }))
                    .await
                    .unwrap()
                    .into_inner();
                let ids = |hits: &[pb::ScoredPoint]| -> Vec<String> {
                    hits.iter()
                        .map(|h| id_str(h.id.as_ref().unwrap()))
                        .collect()
                };
                assert_eq!(ids(&fused.hits), ids(&r.hits), "{v:?}");
            }
        }
    };
    check(pos.clone()).await;
    let moved: Vec<usize> = (0..300).step_by(15).collect();
    let r = i
        .ingest()
        .update_vectors(
            i.request(pb::UpdateVectorsRequest {
                collection: "multi".into(),
                points: moved
                    .iter()
                    .map(|&k| pb::PointVectors {
                        id: Some(id_of(k)),
                        vectors: [(
                            "pos".to_string(),
                            pb::DenseVector {
                                values: vec![8.0 + k as f32 / 1000.0, 8.0],
                            },
                        )]
                        .into(),
                        ..Default::default()
                    })
                    .collect(),
            }),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.updated, moved.len() as u64);
    for &k in &moved {
        pos.insert(k, vec![8.0 + k as f32 / 1000.0, 8.0]);
    }
    check(pos).await;
    let e = i
        .ingest()
        .update_vectors(i.request(pb::UpdateVectorsRequest {
            collection: "multi".into(),
            points: vec![pb::PointVectors {
                id: Some(id_of(100_000)),
                vector: data[0].clone(),
                ..Default::default()
            }],
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
}

#[tokio::test]
async fn one_storage_node_refuses_more_than_one_shard() {
    let s = Stack::start().await;
    let q = s.q();
    let e = q
        .collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "c".into(),
            dimension: 4,
            metric: pb::Metric::Cosine as i32,
            shards: 3,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("--storage-nodes"), "{e:?}");
    let e = q
        .collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "c".into(),
            dimension: 4,
            metric: pb::Metric::Cosine as i32,
            shards: 5_000,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("shards"), "{e:?}");
}

/// A Flush that waits for graph builds is bound by its caller's deadline, not by ingest's
/// `--storage-timeout-ms` (a flush of a large shard builds for minutes).
#[tokio::test]
async fn a_routed_flush_waits_for_graph_builds_as_long_as_its_caller_allows() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = storage_node(&etcd.url, "s0", dir.path());
    wait_serving(&node.1, Duration::from_secs(60)).await;
    let ((i_addr, mut args), _) = listen_with_metrics();
    let timeout_ms = 1_000;
    args.extend([
        "--etcd".into(),
        etcd.url.clone(),
        "--storage-timeout-ms".into(),
        timeout_ms.to_string(),
    ]);
    let _ingest = Proc::start("ingest", args, dir.path().join("ingest.log"));
    let (_query, q_addr) = front("query", &etcd.url, dir.path());
    wait_serving(&i_addr, Duration::from_secs(60)).await;
    wait_serving(&q_addr, Duration::from_secs(60)).await;
    let (q, i) = (Stack::link(&q_addr), Stack::link(&i_addr));
    // Slow to build on purpose (many links, a wide build list).
    q.collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "docs".into(),
            dimension: DIM as u32,
            metric: pb::Metric::L2 as i32,
            m: Some(32),
            ef_construction: Some(400),
            ..Default::default()
        }))
        .await
        .unwrap();
    let n = 10_000;
    let data = vectors(n, 7);
    for from in (0..n).step_by(1_000) {
        i.ingest()
            .upsert(i.request(batch(from, 1_000, &data)))
            .await
            .unwrap();
    }
    let mut r = tonic::Request::new(pb::FlushRequest {
        collection: "docs".into(),
        wait_indexed: true,
    });
    r.set_timeout(Duration::from_secs(300));
    let t = Instant::now();
    let res = i
        .ingest()
        .flush(r)
        .await
        .expect("flush within the caller's deadline")
        .into_inner();
    let took = t.elapsed();
    assert_eq!(
        (res.point_count, res.indexed_point_count),
        (n as u64, n as u64),
        "{res:?}"
    );
    assert!(
        took > Duration::from_millis(timeout_ms),
        "the build took {took:?}, under --storage-timeout-ms: this test then proves nothing; make the collection slower to build"
    );
}

/// A routed call at `epoch` of `method` on node `addr`.
fn at_epoch<T>(msg: T, epoch: u64) -> tonic::Request<T> {
    let mut r = akidb_cluster::route::routed(tonic::Request::new(msg), epoch);
    r.set_timeout(Duration::from_secs(5));
    r
}

#[tokio::test]
async fn a_node_serves_only_the_shards_and_epochs_the_map_gives_it() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_a, a_addr) = storage_node(&etcd.url, "a", dir.path());
    let (_b, b_addr) = storage_node(&etcd.url, "b", dir.path());
    wait_serving(&a_addr, Duration::from_secs(60)).await;
    wait_serving(&b_addr, Duration::from_secs(60)).await;
    let client = akidb_cluster::Etcd::new(&etcd.url, Duration::from_secs(2)).unwrap();
    // One shard, owned by `a` at epoch 1.
    use prost::Message;
    let spec = pb::CreateCollectionRequest {
        name: "c".into(),
        dimension: 2,
        metric: pb::Metric::L2 as i32,
        ..Default::default()
    };
    let mut map = akidb_cluster::shardmap::ShardMap::place("c", 1, 1, &["a".to_string()]);
    map.spec = spec.encode_to_vec();
    let rev = akidb_cluster::shardmap::swap(&client, &map, 0)
        .await
        .unwrap()
        .unwrap()
        .revision;
    let upsert = |k: u64| pb::UpsertRequest {
        collection: "c.0".into(),
        points: vec![pb::Point {
            id: Some(pb::PointId::num(k)),
            vector: vec![k as f32, 1.0],
            payload: None,
            ..Default::default()
        }],
    };
    let a = Stack::link(&a_addr);
    let b = Stack::link(&b_addr);
    // The owner takes a write at the map's epoch (creating its copy of the shard first).
    a.storage().upsert(at_epoch(upsert(1), 1)).await.unwrap();
    // Another node does not own it: stale route, nothing written there.
    let e = b
        .storage()
        .upsert(at_epoch(upsert(2), 1))
        .await
        .unwrap_err();
    assert!(akidb_cluster::route::is_stale(&e), "{e:?}");
    assert!(e.message().contains("does not own"), "{e:?}");
    // An epoch the map never had: read again from etcd, still refused.
    let e = a
        .storage()
        .upsert(at_epoch(upsert(3), 7))
        .await
        .unwrap_err();
    assert!(akidb_cluster::route::is_stale(&e), "{e:?}");

    // The shard moves to `b` at epoch 2: `a` is fenced from then on, `b` takes writes.
    map.shards[0].owner = Some("b".into());
    map.shards[0].epoch = 2;
    akidb_cluster::shardmap::swap(&client, &map, rev)
        .await
        .unwrap()
        .unwrap();
    // Right after the move, `a` may not know of it yet. A write it takes at epoch 1 now is
    // either refused (the new owner's fence is in the shard's log already) or acknowledged,
    // and then in the log before the fence: the new owner has it. No acknowledged write is
    // lost either way.
    let raced = a.storage().upsert(at_epoch(upsert(4), 1)).await;
    match &raced {
        Ok(_) => eprintln!("a's write at epoch 1 landed before b's fence"),
        Err(e) => assert!(akidb_cluster::route::is_stale(e), "{e:?}"),
    }
    // `a` learns of the move through its watch of etcd (a read at the old epoch, which
    // changes nothing, tells when).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = a
            .storage()
            .count(at_epoch(
                pb::CountRequest {
                    collection: "c.0".into(),
                    filter: None,
                },
                1,
            ))
            .await;
        match r {
            Err(e) if akidb_cluster::route::is_stale(&e) => break,
            r => assert!(Instant::now() < deadline, "a never saw the move: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = a
        .storage()
        .upsert(at_epoch(upsert(5), 1))
        .await
        .unwrap_err();
    assert!(akidb_cluster::route::is_stale(&e), "{e:?}");
    assert!(e.message().contains("epoch 2"), "{e:?}");
    // Routed at the new epoch: `a` does not own the shard there.
    let e = a
        .storage()
        .upsert(at_epoch(upsert(5), 2))
        .await
        .unwrap_err();
    assert!(akidb_cluster::route::is_stale(&e), "{e:?}");
    // `b` takes the shard over from its log: the write `a` acknowledged at epoch 1 is there.
    b.storage().upsert(at_epoch(upsert(6), 2)).await.unwrap();
    let ids = |l: akidb_client::Link| async move {
        let got = l
            .storage()
            .get(at_epoch(
                pb::GetRequest {
                    collection: "c.0".into(),
                    ids: (1..=7).map(pb::PointId::num).collect(),
                    with_payload: false,
                    with_vector: false,
                },
                2,
            ))
            .await
            .unwrap()
            .into_inner();
        got.points
            .into_iter()
            .map(|p| match p.id.unwrap().kind.unwrap() {
                pb::point_id::Kind::Num(n) => n,
                k => panic!("{k:?}"),
            })
            .collect::<BTreeSet<u64>>()
    };
    let mut want: BTreeSet<u64> = [1, 6].into_iter().collect();
    if raced.is_ok() {
        want.insert(4);
    }
    assert_eq!(
        ids(b.clone()).await,
        want,
        "every acknowledged write, no other"
    );
    // A node without etcd refuses routed calls outright.
    let s = Stack::start().await;
    let e = Stack::link(&s.storage_addr)
        .storage()
        .upsert(at_epoch(upsert(7), 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
}

#[tokio::test]
async fn while_etcd_is_silent_writes_stop_and_searches_go_on_flagged_stale() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<(Proc, String)> = ["s0", "s1"]
        .iter()
        .map(|id| storage_node(&etcd.url, id, dir.path()))
        .collect();
    for (_, a) in &nodes {
        wait_serving(a, Duration::from_secs(60)).await;
    }
    let (_query, q_addr, q_metrics) = front_with_metrics("query", &etcd.url, dir.path());
    let (_ingest, i_addr) = front("ingest", &etcd.url, dir.path());
    wait_serving(&q_addr, Duration::from_secs(60)).await;
    wait_serving(&i_addr, Duration::from_secs(60)).await;
    let q = Stack::link(&q_addr);
    let i = Stack::link(&i_addr);
    create_docs(&q, 2, 1).await;
    let data = vectors(100, 3);
    let batch = |from: usize| pb::UpsertRequest {
        collection: "docs".into(),
        points: (from..from + 50)
            .map(|k| pb::Point {
                id: Some(id_of(k)),
                vector: data[k % 100].clone(),
                payload: None,
                ..Default::default()
            })
            .collect(),
    };
    i.ingest().upsert(i.request(batch(0))).await.unwrap();
    let r = search(&q, &data[0], 5).await.unwrap();
    assert!(!r.stale && !r.partial);
    assert_eq!(
        common::series_value(
            &common::scrape(q_metrics).await,
            "akidb_cluster_etcd_reachable"
        ),
        Some(1.0)
    );

    etcd.pause();
    // Past the silence threshold (3 s) and the nodes' lease TTL (3 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = search(&q, &data[0], 5).await.expect("searches go on");
    assert!(r.stale, "flagged stale: {r:?}");
    assert!(!r.partial);
    assert_eq!(r.hits.len(), 5);
    let e = i.ingest().upsert(i.request(batch(50))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("etcd"), "{e:?}");
    assert_eq!(
        common::series_value(
            &common::scrape(q_metrics).await,
            "akidb_cluster_etcd_reachable"
        ),
        Some(0.0)
    );
    // A node that lost its lease refuses a routed write itself, whoever routes it.
    let node = Stack::link(&nodes[0].1);
    let e = node
        .storage()
        .upsert(at_epoch(
            pb::UpsertRequest {
                collection: "docs.0".into(),
                points: batch(50).points[..1].to_vec(),
            },
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("holds no etcd lease"), "{e:?}");

    // etcd answers again: writes resume by themselves.
    etcd.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match i.ingest().upsert(i.request(batch(50))).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "writes still refused: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = search(&q, &data[0], 5).await.unwrap();
    assert!(!r.stale);
    let n = q
        .query()
        .count(q.request(pb::CountRequest {
            collection: "docs".into(),
            filter: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 100);
}

/// Query and ingest on `etcd`, started once every one of `nodes` serves and is registered
/// (shards are placed over the nodes registered when a collection is created).
async fn fronts(
    etcd: &str,
    dir: &Path,
    nodes: &[(Proc, String)],
) -> (Proc, Proc, akidb_client::Link, akidb_client::Link) {
    for (_, a) in nodes {
        wait_serving(a, Duration::from_secs(60)).await;
    }
    let (query, q_addr) = front("query", etcd, dir);
    let (ingest, i_addr) = front("ingest", etcd, dir);
    wait_serving(&q_addr, Duration::from_secs(60)).await;
    wait_serving(&i_addr, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster_status(etcd)["nodes"]
        .as_array()
        .map_or(0, |n| n.len())
        < nodes.len()
    {
        assert!(
            Instant::now() < deadline,
            "{} nodes registered",
            nodes.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (query, ingest, Stack::link(&q_addr), Stack::link(&i_addr))
}

/// The shards of the first collection in `cluster status` once each has `copies` copies at
/// one applied sequence. Nodes publish their sequences every second: the same answer twice,
/// 1.5 s apart, is final when nothing writes.
async fn copies_in_step(etcd: &str, copies: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Option<serde_json::Value> = None;
    loop {
        let v = cluster_status(etcd);
        let shards = v["collections"][0]["shards"].clone();
        let in_step = shards.as_array().unwrap().iter().all(|s| {
            let applied: Vec<Option<u64>> = s["applied"]
                .as_object()
                .unwrap()
                .values()
                .map(|x| x.as_u64())
                .collect();
            applied.len() == copies
                && applied[0].is_some()
                && applied.windows(2).all(|w| w[0] == w[1])
        });
        if in_step && last.as_ref() == Some(&shards) {
            return shards.as_array().unwrap().clone();
        }
        last = Some(shards);
        assert!(Instant::now() < deadline, "copies never in step: {v}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
}

/// Collection `docs` (L2, `DIM`) of `shards` shards with `replication` copies each.
async fn create_docs(q: &akidb_client::Link, shards: u32, replication: u32) {
    q.collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "docs".into(),
            dimension: DIM as u32,
            metric: pb::Metric::L2 as i32,
            shards,
            replication,
            ..Default::default()
        }))
        .await
        .unwrap();
}

/// The gRPC address of node `id`.
fn addr_of_node(ids: &[&str], nodes: &[(Proc, String)], id: &str) -> String {
    nodes[ids.iter().position(|i| *i == id).unwrap()].1.clone()
}

/// `akidb --json cluster status`.
fn cluster_status(etcd: &str) -> serde_json::Value {
    let out = std::process::Command::new(common::BIN)
        .args(["--json", "cluster", "status", "--etcd", etcd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Batches of 10 points from id 200 on (0..200 written before), one every 20 ms, until the
/// flag is set: the ids acknowledged (0..200 included) and the longest gap between two
/// acknowledgements.
fn steady_writer(
    i: &akidb_client::Link,
    data: &[Vec<f32>],
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<(BTreeSet<u64>, Duration)>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (i, flag, data) = (i.clone(), stop.clone(), data.to_vec());
    let writer = tokio::spawn(async move {
        let mut acked: BTreeSet<u64> = (0..200).collect();
        let mut longest = Duration::ZERO;
        let mut last_ok = Instant::now();
        let mut next = 200;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let mut r = i.request(batch(next, 10, &data));
            r.set_timeout(Duration::from_secs(5));
            if i.ingest().upsert(r).await.is_ok() {
                acked.extend((next..next + 10).map(|k| k as u64));
                longest = longest.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            next += 10;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (acked, longest)
    });
    (stop, writer)
}

/// Every point of `acked` is found through query.
async fn assert_all_there(q: &akidb_client::Link, acked: &BTreeSet<u64>) {
    let got = q
        .query()
        .get(q.request(pb::GetRequest {
            collection: "docs".into(),
            ids: acked.iter().map(|k| pb::PointId::num(*k)).collect(),
            with_payload: false,
            with_vector: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points.len(), acked.len(), "acknowledged points missing");
}

/// Points `from..from + n`, vectors from `data`.
fn batch(from: usize, n: usize, data: &[Vec<f32>]) -> pb::UpsertRequest {
    pb::UpsertRequest {
        collection: "docs".into(),
        points: (from..from + n)
            .map(|k| pb::Point {
                id: Some(pb::PointId::num(k as u64)),
                vector: data[k % data.len()].clone(),
                payload: None,
                ..Default::default()
            })
            .collect(),
    }
}

/// Three nodes, two copies of each shard in one shared object directory. The owner of a
/// shard is killed (SIGKILL) while writes go on: its follower takes the shard over from the
/// shard's log, the writes pause for about the lease TTL, every acknowledged write is there,
/// and the two copies of every shard end at the same log sequence with the same points.
#[tokio::test]
async fn a_killed_owner_is_replaced_by_its_follower_and_no_acknowledged_write_is_lost() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ids = ["s0", "s1", "s2"];
    let mut nodes: Vec<(Proc, String)> = ids
        .iter()
        .map(|id| storage_node_with(&etcd.url, id, dir.path(), 2))
        .collect();
    let (_query, _ingest, q, i) = fronts(&etcd.url, dir.path(), &nodes).await;
    let info = q
        .collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "docs".into(),
            dimension: DIM as u32,
            metric: pb::Metric::L2 as i32,
            shards: 2,
            replication: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    assert_eq!((info.shards, info.replication), (2, 2));
    let data = vectors(500, 11);
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    for b in 0..10 {
        i.ingest()
            .upsert(i.request(batch(b * 20, 20, &data)))
            .await
            .unwrap();
        acked.extend((b * 20..b * 20 + 20).map(|k| k as u64));
    }
    let v = cluster_status(&etcd.url);
    let shard0 = &v["collections"][0]["shards"][0];
    assert_eq!(shard0["followers"].as_array().unwrap().len(), 1, "{v}");
    let owner = shard0["owner"].as_str().unwrap().to_string();
    let victim = ids.iter().position(|id| *id == owner).unwrap();

    // Kill the owner of shard 0 and keep writing.
    nodes[victim].0.kill();
    let killed = Instant::now();
    let mut next = 200;
    let mut failing_since: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    let mut after = 0;
    while after < 15 {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "writes did not resume after the owner was killed"
        );
        let mut r = i.request(batch(next, 10, &data));
        r.set_timeout(Duration::from_secs(3));
        match i.ingest().upsert(r).await {
            Ok(_) => {
                acked.extend((next..next + 10).map(|k| k as u64));
                if let Some(t) = failing_since.take() {
                    longest = longest.max(t.elapsed());
                }
                after += 1;
            }
            Err(_) => {
                failing_since.get_or_insert_with(Instant::now);
            }
        }
        next += 10;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("writes paused {longest:?} when the owner was killed (lease TTL 2 s)");
    assert!(
        longest < Duration::from_secs(12),
        "writes paused {longest:?}"
    );
    let v = cluster_status(&etcd.url);
    let shard0 = &v["collections"][0]["shards"][0];
    assert_ne!(shard0["owner"].as_str(), Some(owner.as_str()), "{v}");
    assert!(shard0["epoch"].as_u64().unwrap() >= 2, "{v}");

    // Every acknowledged write is there.
    assert_all_there(&q, &acked).await;
    let r = search(&q, &data[0], 10).await.unwrap();
    assert!(!r.partial, "{r:?}");

    // The copies of each shard end at the same sequence, with the same points. Nodes publish
    // their sequences every second: equal twice, 1.5 s apart, is final (no writes now).
    let addr_of: BTreeMap<String, String> = ids
        .iter()
        .zip(&nodes)
        .map(|(id, (_, a))| (id.to_string(), a.clone()))
        .collect();
    for s in &copies_in_step(&etcd.url, 2).await {
        let mut counts = Vec::new();
        for node in s["applied"].as_object().unwrap().keys() {
            let l = Stack::link(&addr_of[node]);
            let n = l
                .storage()
                .count(tonic::Request::new(pb::CountRequest {
                    collection: format!("docs.{}", s["shard"]),
                    filter: None,
                }))
                .await
                .unwrap()
                .into_inner()
                .count;
            counts.push((node.clone(), n));
        }
        assert_eq!(counts[0].1, counts[1].1, "copies differ: {counts:?} {s}");
    }
    // The killed node comes back and registers again.
    nodes[victim].0.spawn();
    wait_serving(&nodes[victim].1, Duration::from_secs(60)).await;
}

/// `akidb cluster drain` under writes: every shard of the drained node moves to another node
/// (a follower takes over once caught up), the writes never pause for 2 s, every acknowledged
/// write is there, and the node ends holding nothing until it is undrained.
#[tokio::test]
async fn a_drained_node_hands_its_shards_over_without_stopping_writes() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ids = ["s0", "s1", "s2"];
    let nodes: Vec<(Proc, String)> = ids
        .iter()
        .map(|id| storage_node_with(&etcd.url, id, dir.path(), 10))
        .collect();
    let (_query, _ingest, q, i) = fronts(&etcd.url, dir.path(), &nodes).await;
    // One copy of each shard: the drain must first make a follower, then move.
    create_docs(&q, 3, 1).await;
    let data = vectors(500, 5);
    for b in 0..10 {
        i.ingest()
            .upsert(i.request(batch(b * 20, 20, &data)))
            .await
            .unwrap();
    }
    let v = cluster_status(&etcd.url);
    let victim = v["collections"][0]["shards"][0]["owner"]
        .as_str()
        .unwrap()
        .to_string();

    // Writes go on in the background while the node is drained.
    let (stop, writer) = steady_writer(&i, &data);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Not on this (single) test thread: the writer runs meanwhile.
    let out = tokio::process::Command::new(common::BIN)
        .args([
            "--json",
            "cluster",
            "drain",
            &victim,
            "--wait-secs",
            "60",
            "--etcd",
            &etcd.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("drained in {} ms", drained["waited_ms"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, longest) = writer.await.unwrap();
    eprintln!("longest gap between acknowledged writes during the drain: {longest:?}");
    assert!(
        longest < Duration::from_secs(2),
        "writes paused {longest:?}"
    );

    let v = cluster_status(&etcd.url);
    let node = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == victim.as_str())
        .unwrap();
    assert_eq!(node["draining"], true, "{v}");
    for s in v["collections"][0]["shards"].as_array().unwrap() {
        assert_ne!(s["owner"].as_str(), Some(victim.as_str()), "{v}");
        assert!(
            !s["followers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == victim.as_str()),
            "{v}"
        );
    }
    assert_all_there(&q, &acked).await;

    // The drained node deletes its copies once it has not held them for the grace (2 s here).
    let l = Stack::link(&addr_of_node(&ids, &nodes, &victim));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = l
            .storage()
            .list_collections(l.request(pb::ListCollectionsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .collections;
        if held.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "copies left: {held:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Undrained, it gets back the shards placed on it (moved back by the controller).
    let out = std::process::Command::new(common::BIN)
        .args(["--json", "cluster", "undrain", &victim, "--etcd", &etcd.url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = cluster_status(&etcd.url);
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["draining"] == false),
        "{v}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = cluster_status(&etcd.url);
        let owned = v["collections"][0]["shards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["owner"].as_str() == Some(victim.as_str()))
            .count();
        if owned > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the undrained node got nothing back: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A third node joins two that hold a collection: the controller moves it its share of the
/// shards (where rendezvous hashing over three nodes places them), one at a time, each as a
/// follower that catches up from the shard's log and then takes over (epoch + 1), while writes
/// go on: they never pause for 2 s, every acknowledged write is there, and the nodes the shards
/// left delete their copies.
#[tokio::test]
async fn a_new_node_gets_its_share_of_the_shards_without_stopping_writes() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ids = ["s0", "s1", "s2"];
    let mut nodes: Vec<(Proc, String)> = ids[..2]
        .iter()
        .map(|id| storage_node_with(&etcd.url, id, dir.path(), 10))
        .collect();
    let (_query, _ingest, q, i) = fronts(&etcd.url, dir.path(), &nodes).await;
    create_docs(&q, SHARDS, 1).await;
    let data = vectors(500, 7);
    for b in 0..10 {
        i.ingest()
            .upsert(i.request(batch(b * 20, 20, &data)))
            .await
            .unwrap();
    }
    let all: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let place: Vec<String> = (0..SHARDS)
        .map(|k| {
            akidb_cluster::placement::rendezvous(
                &akidb_cluster::shardmap::shard_name("docs", k),
                &all,
                1,
            )[0]
            .to_string()
        })
        .collect();
    let to_move = place.iter().filter(|n| *n == "s2").count();
    assert!(
        to_move > 0,
        "no shard placed on s2 among {SHARDS}: {place:?}"
    );

    let (stop, writer) = steady_writer(&i, &data);
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes.push(storage_node_with(&etcd.url, "s2", dir.path(), 10));
    let joined = Instant::now();
    let deadline = joined + Duration::from_secs(60);
    loop {
        let v = cluster_status(&etcd.url);
        let shards = v["collections"][0]["shards"].as_array().unwrap().clone();
        let settled = shards.iter().all(|s| {
            s["followers"].as_array().unwrap().is_empty()
                && s["owner"].as_str()
                    == Some(place[s["shard"].as_u64().unwrap() as usize].as_str())
        });
        if settled {
            for s in &shards {
                let moved = place[s["shard"].as_u64().unwrap() as usize] == "s2";
                assert_eq!(s["epoch"].as_u64(), Some(if moved { 2 } else { 1 }), "{v}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shards never settled on {place:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{to_move} of {SHARDS} shards moved to the new node in {:?}",
        joined.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, longest) = writer.await.unwrap();
    eprintln!("longest gap between acknowledged writes while shards moved: {longest:?}");
    assert!(
        longest < Duration::from_secs(2),
        "writes paused {longest:?}"
    );
    assert_all_there(&q, &acked).await;
    let r = search(&q, &data[0], 10).await.unwrap();
    assert!(!r.partial, "{r:?}");
    // Each node ends holding exactly the copies of its place (the others deleted after the
    // 2 s grace).
    for (id, (_, addr)) in ids.iter().zip(&nodes) {
        let want: BTreeSet<String> = (0..SHARDS)
            .filter(|k| place[*k as usize] == *id)
            .map(|k| format!("docs.{k}"))
            .collect();
        let l = Stack::link(addr);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let held: BTreeSet<String> = l
                .storage()
                .list_collections(l.request(pb::ListCollectionsRequest {}))
                .await
                .unwrap()
                .into_inner()
                .collections
                .into_iter()
                .map(|c| c.name)
                .collect();
            if held == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} holds {held:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The objects under `dir/objects/<prefix>` (the shared object directory), as paths
/// relative to it.
fn objects_under(dir: &Path, prefix: &str) -> Vec<String> {
    let root = dir.join("objects");
    let mut out = Vec::new();
    let mut todo = vec![root.join(prefix)];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Each shard's owner takes a snapshot every 20 entries and the log behind it is cut; a
/// follower killed meanwhile (its saved place now behind the cut) comes back, finds the
/// entry after its own gone, and rebuilds its copy from the snapshot; a copy new to a shard
/// starts from the snapshot too. Every copy ends with the same points as the owner.
#[tokio::test]
async fn the_log_is_cut_behind_shard_snapshots_and_copies_behind_the_cut_start_from_them() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ids = ["s0", "s1", "s2"];
    let node = |id: &str| {
        let flags = [
            "--object-dir",
            &dir.path().join("objects").display().to_string(),
            "--shard-snapshot-entries",
            "20",
        ]
        .map(String::from)
        .to_vec();
        storage_node_on(&etcd.url, id, dir.path(), 3, flags)
    };
    let mut nodes: Vec<(Proc, String)> = ids.iter().map(|id| node(id)).collect();
    let (_query, _ingest, q, i) = fronts(&etcd.url, dir.path(), &nodes).await;
    create_docs(&q, 1, 2).await;
    let data = vectors(500, 13);
    let mut next = 0;
    let mut write = async |n: usize| {
        for _ in 0..n {
            i.ingest()
                .upsert(i.request(batch(next, 5, &data)))
                .await
                .unwrap();
            next += 5;
        }
        next
    };
    write(60).await;
    let v = cluster_status(&etcd.url);
    let shard = &v["collections"][0]["shards"][0];
    let owner = shard["owner"].as_str().unwrap().to_string();
    let follower = shard["followers"][0].as_str().unwrap().to_string();
    let third = ids
        .iter()
        .find(|id| **id != owner && **id != follower)
        .unwrap()
        .to_string();
    // A snapshot at 20 or more, and the log cut behind it once both copies said where they are.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snaps = objects_under(dir.path(), "shardsnap/docs");
        let log = objects_under(dir.path(), "shardlog/docs");
        if snaps.iter().any(|k| k.ends_with("/latest")) && log.len() < 40 {
            eprintln!(
                "{} log entries left of 61, snapshot objects {snaps:?}",
                log.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot or no cut: {snaps:?}, {} log entries",
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The follower is killed; writes go on and the log is cut past its place (once the
    // controller dropped it, and a third node took its place from the snapshot).
    let victim = ids.iter().position(|id| *id == follower).unwrap();
    nodes[victim].0.kill();
    write(100).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = cluster_status(&etcd.url);
        let s = &v["collections"][0]["shards"][0];
        let copies: Vec<&str> = std::iter::once(s["owner"].as_str().unwrap())
            .chain(
                s["followers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap()),
            )
            .collect();
        let log = objects_under(dir.path(), "shardlog/docs");
        if !copies.contains(&follower.as_str()) && log.len() < 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the victim still holds the shard or the log was not cut: {v}, {} entries",
            log.len()
        );
        // The cut waits for every copy to say where it is: keep the log moving.
        write(5).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let total = write(0).await;
    let started = |id: &str| {
        std::fs::read_to_string(dir.path().join(format!("{id}.log")))
            .unwrap()
            .contains("rebuilt this node's copy of the shard from the shard's snapshot")
    };
    assert!(
        started(&third),
        "the node new to the shard did not start from the snapshot"
    );
    // Back: the controller moves the shard's copy back to it (its place); it finds the log cut
    // past its saved place and rebuilds from the snapshot.
    nodes[victim].0.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = cluster_status(&etcd.url);
        let s = &v["collections"][0]["shards"][0];
        let applied = s["applied"].as_object().unwrap();
        let at: Vec<Option<u64>> = applied.values().map(|x| x.as_u64()).collect();
        if s["followers"].as_array().unwrap().len() == 1
            && (s["owner"] == follower.as_str() || s["followers"][0] == follower.as_str())
            && at.len() == 2
            && at.windows(2).all(|w| w[0] == w[1])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the returning node never caught up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        started(&follower),
        "the returning node did not start from the snapshot"
    );
    let final_copies = copies_in_step(&etcd.url, 2).await;
    for node in final_copies[0]["applied"].as_object().unwrap().keys() {
        let l = Stack::link(&addr_of_node(&ids, &nodes, node));
        let n = l
            .storage()
            .count(tonic::Request::new(pb::CountRequest {
                collection: "docs.0".into(),
                filter: None,
            }))
            .await
            .unwrap()
            .into_inner()
            .count;
        assert_eq!(n, total as u64, "copy on {node}");
    }
}

/// The nodes' shared object store is S3 (moto), and it stops answering: writes fail (never
/// acknowledged without their log entry) while searches go on; when it answers again, writes
/// resume by themselves and every acknowledged write is there.
#[tokio::test]
async fn while_the_object_store_is_down_writes_fail_searches_go_on_and_both_recover() {
    let Some(moto) = akidb_testkit::moto::Moto::from_env().await else {
        return;
    };
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s3 = |bucket: &str| {
        [
            "--s3-endpoint",
            &moto.url(),
            "--s3-bucket",
            bucket,
            "--s3-access-key",
            "testing",
            "--s3-secret-key",
            "testing",
            "--s3-timeout-ms",
            "500",
            "--s3-connect-timeout-ms",
            "300",
            "--breaker-open-ms",
            "1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    };
    let nodes: Vec<(Proc, String)> = ["s0", "s1"]
        .iter()
        .map(|id| storage_node_on(&etcd.url, id, dir.path(), 10, s3("cluster-log")))
        .collect();
    let (_query, _ingest, q, i) = fronts(&etcd.url, dir.path(), &nodes).await;
    create_docs(&q, 2, 1).await;
    let data = vectors(300, 9);
    i.ingest()
        .upsert(i.request(batch(0, 100, &data)))
        .await
        .unwrap();
    // The log entries are in the bucket.
    assert!(!moto.list("cluster-log", "shardlog/docs/").await.is_empty());

    moto.pause();
    let t = Instant::now();
    let mut said = None;
    while said.is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "writes never failed naming the object store"
        );
        let mut r = i.request(batch(100, 10, &data));
        r.set_timeout(Duration::from_secs(5));
        match i.ingest().upsert(r).await {
            Ok(_) => panic!("a write was acknowledged while the object store was down"),
            Err(e) if e.message().contains("object store") => said = Some(e),
            Err(_) => {}
        }
    }
    let e = said.unwrap();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    eprintln!("write refused after {:?}: {}", t.elapsed(), e.message());
    // Reads go on.
    let r = search(&q, &data[0], 5).await.expect("searches go on");
    assert!(!r.partial && r.hits.len() == 5, "{r:?}");

    moto.resume();
    let t = Instant::now();
    loop {
        let mut r = i.request(batch(200, 10, &data));
        r.set_timeout(Duration::from_secs(5));
        if i.ingest().upsert(r).await.is_ok() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "writes did not resume"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "writes resumed {:?} after the object store came back",
        t.elapsed()
    );
    let got = q
        .query()
        .get(q.request(pb::GetRequest {
            collection: "docs".into(),
            ids: (0..100).chain(200..210).map(pb::PointId::num).collect(),
            with_payload: false,
            with_vector: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points.len(), 110, "acknowledged points missing");
}

/// Two copies of each shard: an owner that stops answering (SIGSTOP; its lease outlives the
/// test, so nothing fails over) does not make searches partial: after `--hedge-after-ms` the
/// read also goes to the follower, whose answer is used. Searches stay exact.
#[tokio::test]
async fn a_paused_owner_is_covered_by_a_hedged_read_to_its_follower() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ids = ["s0", "s1", "s2"];
    let mut nodes: Vec<(Proc, String)> = ids
        .iter()
        .map(|id| storage_node_with(&etcd.url, id, dir.path(), 60))
        .collect();
    let (_query, _ingest, q, i) = fronts(&etcd.url, dir.path(), &nodes).await;
    create_docs(&q, 3, 2).await;
    let data = vectors(300, 13);
    i.ingest()
        .upsert(i.request(batch(0, 300, &data)))
        .await
        .unwrap();
    let shards = copies_in_step(&etcd.url, 2).await;
    let owner = shards[0]["owner"].as_str().unwrap().to_string();
    let follower = shards[0]["followers"][0].as_str().unwrap().to_string();
    let victim = ids.iter().position(|id| *id == owner).unwrap();

    nodes[victim].0.pause();
    let mut slowest = Duration::ZERO;
    for (n, query) in data.iter().take(20).enumerate() {
        let t = Instant::now();
        let r = search(&q, query, 10).await.expect("searches go on");
        assert!(!r.partial, "search {n} partial: {r:?}");
        slowest = slowest.max(t.elapsed());
        assert!(
            t.elapsed() < Duration::from_millis(1_400),
            "{:?}",
            t.elapsed()
        );
        // Exact over every point, as if nothing were paused.
        let mut want: Vec<(f32, usize)> = data.iter().map(|v| l2(v, query)).zip(0..).collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0));
        let got: Vec<String> = r
            .hits
            .iter()
            .map(|h| id_str(h.id.as_ref().unwrap()))
            .collect();
        let want: Vec<String> = want[..10]
            .iter()
            .map(|(_, k)| id_str(&pb::PointId::num(*k as u64)))
            .collect();
        assert_eq!(got, want, "search {n}");
        let s0 = r.shards.iter().find(|s| s.shard == 0).unwrap();
        assert_eq!(s0.node, follower, "shard 0 answered by its follower");
    }
    eprintln!("slowest of 20 searches with an owner paused: {slowest:?} (hedge after 50 ms)");
    // Count needs every shard: it goes through too.
    let n = q
        .query()
        .count(q.request(pb::CountRequest {
            collection: "docs".into(),
            filter: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 300);
    nodes[victim].0.signal(libc::SIGCONT);
}
