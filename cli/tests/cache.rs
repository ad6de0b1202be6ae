//! The query result cache across real processes: a repeated search hits, an acknowledged write
//! (upsert or delete through ingest) is seen by the very next search, a re-created collection
//! never serves an old result, and `--cache-entries 0` turns it off.

mod common;

use akidb_proto::v1 as pb;
use common::*;

fn point(id: u64, v: Vec<f32>) -> pb::Point {
    pb::Point {
        id: Some(pb::PointId::num(id)),
        vector: v,
        payload: None,
        ..Default::default()
    }
}

fn search(c: &str, v: Vec<f32>) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: c.into(),
        vector: v,
        k: 3,
        ..Default::default()
    }
}

async fn create(s: &Stack, name: &str) {
    s.q()
        .collections()
        .create_collection(pb::CreateCollectionRequest {
            name: name.into(),
            dimension: 2,
            metric: pb::Metric::L2 as i32,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn upsert(s: &Stack, c: &str, points: Vec<pb::Point>) {
    s.i()
        .ingest()
        .upsert(pb::UpsertRequest {
            collection: c.into(),
            points,
        })
        .await
        .unwrap();
}

/// (ids of the hits, cache_hit).
async fn run(s: &Stack, c: &str, v: Vec<f32>) -> (Vec<u64>, bool) {
    let r = s
        .q()
        .query()
        .search(search(c, v))
        .await
        .unwrap()
        .into_inner();
    let ids = r
        .hits
        .iter()
        .map(|h| match h.id.as_ref().and_then(|i| i.kind.as_ref()) {
            Some(pb::point_id::Kind::Num(n)) => *n,
            _ => u64::MAX,
        })
        .collect();
    (ids, r.stats.unwrap_or_default().cache_hit)
}

/// The value of `series` in a `/metrics` text; 0 when it is not there yet.
fn metric(text: &str, series: &str) -> f64 {
    series_value(text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_invalidate_cached_results() {
    let s = Stack::start().await;
    create(&s, "c").await;
    upsert(
        &s,
        "c",
        vec![point(1, vec![0.0, 0.0]), point(2, vec![5.0, 5.0])],
    )
    .await;
    let q = vec![1.0, 1.0];

    assert_eq!(run(&s, "c", q.clone()).await, (vec![1, 2], false));
    assert_eq!(run(&s, "c", q.clone()).await, (vec![1, 2], true));

    // An acknowledged upsert is in the very next answer, which is not a cache hit.
    upsert(&s, "c", vec![point(3, vec![1.0, 1.0])]).await;
    assert_eq!(run(&s, "c", q.clone()).await, (vec![3, 1, 2], false));
    assert_eq!(run(&s, "c", q.clone()).await, (vec![3, 1, 2], true));

    // Overwrite moves point 3 away.
    upsert(&s, "c", vec![point(3, vec![9.0, 9.0])]).await;
    assert_eq!(run(&s, "c", q.clone()).await, (vec![1, 2, 3], false));

    // So does a delete.
    s.i()
        .ingest()
        .delete(pb::DeleteRequest {
            collection: "c".into(),
            ids: vec![pb::PointId::num(1)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(run(&s, "c", q.clone()).await, (vec![2, 3], false));
    assert_eq!(run(&s, "c", q.clone()).await, (vec![2, 3], true));

    // Deleted and re-created with the same number of writes: its version counts from 0 again,
    // and still the old result never comes back.
    s.q()
        .collections()
        .delete_collection(pb::DeleteCollectionRequest { name: "c".into() })
        .await
        .unwrap();
    create(&s, "c").await;
    for i in 0..3 {
        upsert(&s, "c", vec![point(10 + i, vec![i as f32, 0.0])]).await;
    }
    s.i()
        .ingest()
        .delete(pb::DeleteRequest {
            collection: "c".into(),
            ids: vec![pb::PointId::num(10)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(run(&s, "c", q.clone()).await, (vec![11, 12], false));

    let text = scrape(s.query_metrics).await;
    assert_eq!(
        metric(&text, "akidb_cache_requests_total{result=\"hit\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "akidb_cache_requests_total{result=\"miss\"}"),
        5.0,
        "{text}"
    );
    assert!(metric(&text, "akidb_cache_entries") >= 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_is_never_missed() {
    // Each acknowledged upsert adds a point nearer to the query than any before it: a search
    // issued after the ack must return it first, never a cached older answer.
    let s = Stack::start().await;
    create(&s, "w").await;
    let q = vec![0.0, 0.0];
    upsert(&s, "w", vec![point(0, vec![2.0, 0.0])]).await;
    for i in 1..=30u64 {
        let (_, _) = run(&s, "w", q.clone()).await;
        let (_, hit) = run(&s, "w", q.clone()).await;
        assert!(hit, "unchanged collection should hit");
        upsert(&s, "w", vec![point(i, vec![1.0 / i as f32, 0.0])]).await;
        let (ids, hit) = run(&s, "w", q.clone()).await;
        assert!(!hit, "write {i} was acknowledged, the result must be fresh");
        assert_eq!(ids.first(), Some(&i), "write {i} not visible: {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_entries_zero_disables_it() {
    let s = Stack::start_with(&[], &[], &["--cache-entries", "0"]).await;
    create(&s, "d").await;
    upsert(&s, "d", vec![point(1, vec![0.0, 0.0])]).await;
    for _ in 0..3 {
        assert_eq!(run(&s, "d", vec![0.0, 0.0]).await, (vec![1], false));
    }
    let text = scrape(s.query_metrics).await;
    assert_eq!(
        metric(&text, "akidb_cache_requests_total{result=\"hit\"}"),
        0.0
    );
}
