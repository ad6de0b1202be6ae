//! Promotion times of jeopardy-ada002-10k (results in docs/benchmarks-tiers.md): a real
//! `akidb-storage` process with its cold tier in moto; five rounds of demote to warm, first
//! search (warm->hot), demote to cold, first search (cold->hot).
//!
//!   AKIDB_TEST_MOTO_BIN=.../moto_server cargo bench -p akidb-storage --bench tiers
//!
//! Needs `AKIDB_TEST_MOTO_BIN` (and boto3's Python beside it, or `AKIDB_TEST_PYTHON`) and
//! the shared data sets (`AKIDB_DATASETS`, default `../shared/data`).

#[path = "../tests/common/mod.rs"]
mod common;

use akidb_proto::v1 as pb;
use akidb_testkit::datasets::{JEOPARDY, VectorSet};
use akidb_testkit::moto::Moto;
use common::server::{Server, create, demote, s3_args, search, upsert_all};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let Some(set) = VectorSet::load(JEOPARDY) else {
        return;
    };
    let (base, queries) = (set.base, set.queries);
    let dir = tempfile::tempdir().unwrap();
    let mut args = s3_args(&moto.url());
    // Sealed, HNSW-indexed segments, as a collection that went idle has.
    args.push("--segment-max-points=3000".into());
    let mut srv = Server::start_unsynced(dir.path(), &args);
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
            ..Default::default()
        })
        .collect();
    upsert_all(&mut c, name, pts).await;
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
