//! Recall, filtered search and speed on the shared benchmark sets (siftsmall, jeopardy).
//! Skipped when `/work/shared/data` (or `AKIDB_DATA`) is absent. The `bench_*` tests are
//! ignored by default and print the numbers: `cargo test --release -p akidb-storage
//! bench_ -- --ignored --nocapture`.

use super::*;
use crate::filter::{Condition, Match};
use crate::memory::MemoryCollection;
use std::time::Instant;

fn data_dir() -> Option<PathBuf> {
    let d = std::env::var("AKIDB_DATA")
        .map_or_else(|_| PathBuf::from("/work/shared/data"), PathBuf::from);
    d.exists().then_some(d)
}

fn read_xvecs(p: &Path) -> Vec<Vec<u32>> {
    let b = fs::read(p).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let d = i32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        out.push(
            b[at..at + 4 * d]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        );
        at += 4 * d;
    }
    out
}

fn fvecs(p: &Path) -> Vec<Vec<f32>> {
    read_xvecs(p)
        .into_iter()
        .map(|r| r.into_iter().map(f32::from_bits).collect())
        .collect()
}

fn ivecs(p: &Path) -> Vec<Vec<u64>> {
    read_xvecs(p)
        .into_iter()
        .map(|r| r.into_iter().map(u64::from).collect())
        .collect()
}

struct Set {
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    gt: Vec<Vec<u64>>,
    payloads: Vec<Payload>,
    metric: Metric,
}

fn load(name: &str) -> Option<Set> {
    let d = data_dir()?;
    Some(match name {
        "siftsmall" => {
            let d = d.join("siftsmall");
            let base = fvecs(&d.join("siftsmall_base.fvecs"));
            let n = base.len();
            Set {
                base,
                queries: fvecs(&d.join("siftsmall_query.fvecs")),
                gt: ivecs(&d.join("siftsmall_groundtruth.ivecs")),
                payloads: vec![Payload::new(); n],
                metric: Metric::L2,
            }
        }
        _ => {
            let d = d.join("jeopardy-ada002-10k");
            let meta = fs::read_to_string(d.join("jeopardy_base_meta.jsonl")).unwrap();
            let payloads = meta
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let mut p = Payload::new();
                    for f in ["Category", "Value", "Round"] {
                        p.insert(f.to_lowercase(), v[f].clone());
                    }
                    p
                })
                .collect();
            Set {
                base: fvecs(&d.join("jeopardy_base.fvecs")),
                queries: fvecs(&d.join("jeopardy_query.fvecs")),
                gt: ivecs(&d.join("jeopardy_groundtruth.ivecs")),
                payloads,
                metric: Metric::Cosine,
            }
        }
    })
}

/// A collection holding the whole set in one sealed, indexed segment; returns build seconds.
/// Its datatype is float32, or `AKIDB_BENCH_DATATYPE` (`float16`).
fn indexed(set: &Set, dir: &Path) -> (Arc<Collection>, f64) {
    let datatype = match std::env::var("AKIDB_BENCH_DATATYPE").as_deref() {
        Ok("float16") => Datatype::Float16,
        _ => Datatype::Float32,
    };
    indexed_as(set, dir, datatype)
}

fn indexed_as(set: &Set, dir: &Path, datatype: Datatype) -> (Arc<Collection>, f64) {
    let spec = CollectionSpec {
        name: "bench".into(),
        dimension: set.base[0].len() as u32,
        metric: set.metric,
        m: DEFAULT_M,
        ef_construction: std::env::var("AKIDB_BENCH_EF_CONSTRUCTION")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_EF_CONSTRUCTION),
        pinned: false,
        datatype,
    };
    // Where the storage engine looks for it when `dir` is its data directory.
    let c = Collection::create(
        &dir.join("collections").join("bench"),
        spec,
        CollectionOptions::default(),
    )
    .unwrap();
    for (chunk_no, chunk) in set.base.chunks(1000).enumerate() {
        let pts = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = chunk_no * 1000 + i;
                PointRecord {
                    key: PointKey::Num(id as u64),
                    vector: v.clone(),
                    payload: set.payloads[id].clone(),
                }
            })
            .collect();
        c.upsert(pts).unwrap();
    }
    c.seal();
    let start = Instant::now();
    c.build_pending().unwrap();
    (c, start.elapsed().as_secs_f64())
}

fn params(q: &[f32], k: usize, ef: Option<usize>, filter: Option<Filter>) -> SearchParams {
    SearchParams {
        vector: q.to_vec(),
        k,
        filter,
        ef,
        with_payload: false,
        with_vector: false,
        exact: false,
    }
}

/// (mean recall@10, mean µs per search) at `ef` (None: the default).
fn recall(c: &Collection, set: &Set, ef: Option<usize>, nq: usize) -> (f64, f64) {
    let mut hit = 0usize;
    let start = Instant::now();
    let mut results = Vec::with_capacity(nq);
    for q in &set.queries[..nq] {
        results.push(c.search(&params(q, 10, ef, None)).unwrap().0);
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / nq as f64;
    for (hits, gt) in results.iter().zip(&set.gt) {
        let truth: HashSet<u64> = gt[..10].iter().copied().collect();
        hit += hits
            .iter()
            .filter(|h| matches!(h.key, PointKey::Num(n) if truth.contains(&n)))
            .count();
    }
    (hit as f64 / (10 * nq) as f64, us)
}

use std::collections::HashSet;

#[test]
fn siftsmall_recall_at_default_ef() {
    let Some(set) = load("siftsmall") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed(&set, dir.path());
    assert_eq!(c.stats().indexed_point_count, 10_000);
    let (r, _) = recall(&c, &set, None, set.queries.len());
    assert!(r >= 0.95, "siftsmall recall@10 at default ef: {r}");
}

#[test]
fn siftsmall_float16_is_exact_and_keeps_recall() {
    let Some(set) = load("siftsmall") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed_as(&set, dir.path(), Datatype::Float16);
    assert_eq!(c.stats().indexed_point_count, 10_000);
    // SIFT components are integers from 0 to 255: float16 holds them exactly.
    for i in [0usize, 4321, 9999] {
        let got = c.get(&[PointKey::Num(i as u64)], false, true).unwrap();
        assert_eq!(got[0].vector.as_deref(), Some(&set.base[i][..]));
    }
    // Exact search over the float16 vectors equals brute force over the float32 originals,
    // order and scores included (integer sums below 2^24 are exact in float32).
    for q in set.queries.iter().take(25) {
        let got = c
            .search(&SearchParams {
                exact: true,
                ..params(q, 10, None, None)
            })
            .unwrap()
            .0;
        let mut all: Vec<(f32, usize)> = set
            .base
            .iter()
            .enumerate()
            .map(|(o, v)| (crate::distance::l2_scalar(q, v), o))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want: Vec<(PointKey, f32)> = all[..10]
            .iter()
            .map(|&(d, o)| (PointKey::Num(o as u64), d.sqrt()))
            .collect();
        let got: Vec<(PointKey, f32)> = got.into_iter().map(|h| (h.key, h.score)).collect();
        assert_eq!(got, want);
    }
    let (r, _) = recall(&c, &set, Some(64), set.queries.len());
    assert!(r >= 0.98, "siftsmall float16 recall@10 at ef 64: {r}");
}

#[test]
fn siftsmall_flat_graph_recall_and_filtered_search_match_brute_force() {
    let Some(set) = load("siftsmall") else { return };
    let dim = 128;
    let rows: Vec<f32> = set.base.concat();
    let items: Vec<(&[f32], usize)> = rows.chunks(dim).enumerate().map(|(o, r)| (r, o)).collect();
    let g = crate::index::Graph::build(Metric::L2, 16, 100, dim, &items);
    let found: Vec<Vec<usize>> = set
        .queries
        .iter()
        .map(|q| {
            g.search(&rows, q, 10, 64, None)
                .into_iter()
                .map(|r| r.0)
                .collect()
        })
        .collect();
    let r = recall_rows(&found, &set.gt);
    assert!(r >= 0.98, "siftsmall recall@10 at ef 64: {r}");
    // Filtered: a third of the points pass; compare with an exact scan of those.
    let ok = |o: usize| o % 3 == 1;
    let (mut hit, mut total) = (0, 0);
    for q in &set.queries {
        let got = g.search(&rows, q, 10, 64, Some(&ok));
        assert!(got.iter().all(|(o, _)| ok(*o)));
        let mut all: Vec<(f32, usize)> = (0..set.base.len())
            .filter(|&o| ok(o))
            .map(|o| {
                (
                    crate::distance::l2_squared(q, &rows[o * dim..(o + 1) * dim]),
                    o,
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: HashSet<usize> = all[..10].iter().map(|x| x.1).collect();
        hit += got.iter().filter(|x| want.contains(&x.0)).count();
        total += 10;
    }
    let r = hit as f64 / total as f64;
    assert!(r >= 0.97, "siftsmall filtered recall@10 at ef 64: {r}");
}

fn field(key: &str, m: Match) -> Condition {
    Condition::Field {
        key: key.into(),
        path: vec![key.into()],
        matcher: m,
    }
}

#[test]
fn jeopardy_filtered_search_matches_brute_force() {
    let Some(set) = load("jeopardy") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed(&set, dir.path());
    let oracle = MemoryCollection::new(c.spec().clone());
    for (i, v) in set.base.iter().enumerate() {
        oracle
            .upsert(vec![PointRecord {
                key: PointKey::Num(i as u64),
                vector: v.clone(),
                payload: set.payloads[i].clone(),
            }])
            .unwrap();
    }
    let (r, _) = recall(&c, &set, None, 200);
    assert!(r >= 0.95, "jeopardy recall@10 at default ef: {r}");
    let mut narrow_total = 0;
    let (mut broad_hit, mut broad_total) = (0usize, 0usize);
    for (qi, q) in set.queries.iter().take(60).enumerate() {
        // The category of the nearest base question: a narrow filter with real matches.
        let near = set.gt[qi][0] as usize;
        let cat = set.payloads[near]["category"].as_str().unwrap().to_string();
        let filters = [
            (
                true,
                Filter {
                    must: vec![field("category", Match::Keyword(cat.clone()))],
                    ..Default::default()
                },
            ),
            (
                true,
                Filter {
                    must: vec![
                        field("value", Match::Integer(800)),
                        field("category", Match::Keyword(cat)),
                    ],
                    ..Default::default()
                },
            ),
            (
                false,
                Filter {
                    must: vec![field("round", Match::Keyword("Jeopardy!".into()))],
                    ..Default::default()
                },
            ),
            (
                false,
                Filter {
                    must_not: vec![field("value", Match::AnyInteger([200, 400].into()))],
                    ..Default::default()
                },
            ),
            (
                false,
                Filter {
                    should: vec![
                        field("round", Match::Keyword("Double Jeopardy!".into())),
                        field("value", Match::Integer(1000)),
                    ],
                    ..Default::default()
                },
            ),
        ];
        for (narrow, f) in filters {
            let (got, info) = c.search(&params(q, 10, None, Some(f.clone()))).unwrap();
            let (want, _) = oracle
                .search(&SearchParams {
                    exact: true,
                    ..params(q, 10, None, Some(f.clone()))
                })
                .unwrap();
            let matching = oracle.count(Some(&f)).unwrap() as usize;
            assert_eq!(
                got.len(),
                want.len().min(10),
                "k results whenever k points match"
            );
            assert_eq!(want.len(), matching.min(10));
            for h in &got {
                let PointKey::Num(n) = h.key else { panic!() };
                assert!(
                    f.matches(&h.key, &set.payloads[n as usize]),
                    "result violates the filter"
                );
            }
            if narrow {
                assert_eq!(info.points_graph, 0, "a narrow filter is answered exactly");
                let a: Vec<_> = got.iter().map(|h| &h.key).collect();
                let b: Vec<_> = want.iter().map(|h| &h.key).collect();
                assert_eq!(a, b);
                narrow_total += 1;
            } else {
                let truth: HashSet<&PointKey> = want.iter().map(|h| &h.key).collect();
                broad_hit += got.iter().filter(|h| truth.contains(&h.key)).count();
                broad_total += want.len();
            }
        }
    }
    assert!(narrow_total > 0);
    let r = broad_hit as f64 / broad_total as f64;
    assert!(r >= 0.95, "broad filtered recall {r}");
}

/// Resident and peak memory of this process in KiB (`/proc/self/status`).
fn rss_kib() -> (u64, u64) {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Mean recall@10 of result offsets (row numbers) against the ground truth.
fn recall_rows(results: &[Vec<usize>], gt: &[Vec<u64>]) -> f64 {
    let mut hit = 0;
    for (r, g) in results.iter().zip(gt) {
        let truth: HashSet<u64> = g[..10].iter().copied().collect();
        hit += r.iter().filter(|o| truth.contains(&(**o as u64))).count();
    }
    hit as f64 / (10 * results.len()) as f64
}

/// For each variant (queries, search): (µs per query, results), best of `reps` passes that
/// take turns, so a busy machine slows every variant alike.
type Variant<'a> = (&'a [Vec<f32>], &'a dyn Fn(&[f32]) -> Vec<usize>);

fn timed_interleaved(variants: &[Variant], reps: usize) -> Vec<(f64, Vec<Vec<usize>>)> {
    let mut out: Vec<(f64, Vec<Vec<usize>>)> = variants
        .iter()
        .map(|(qs, f)| (f64::INFINITY, qs.iter().map(|q| f(q)).collect()))
        .collect();
    for _ in 0..reps {
        for (i, (qs, f)) in variants.iter().enumerate() {
            let start = Instant::now();
            for q in qs.iter() {
                std::hint::black_box(f(q));
            }
            out[i].0 = out[i]
                .0
                .min(start.elapsed().as_secs_f64() * 1e6 / qs.len() as f64);
        }
    }
    out
}

fn bench(name: &str) {
    let Some(set) = load(name) else { return };
    let dir = tempfile::tempdir().unwrap();
    let dim = set.base[0].len();
    let (rss0, _) = rss_kib();
    let t = Instant::now();
    let (c, build) = indexed(&set, dir.path());
    let total = t.elapsed().as_secs_f64();
    let n = set.base.len();
    println!(
        "## {name}: {n} points, dim {dim}, {:?}, m {DEFAULT_M}",
        set.metric
    );
    println!(
        "build in-engine (ef_construction {}): ingest+build {total:.2}s = {:.0} vectors/s; graph build alone {build:.2}s = {:.0} vectors/s",
        c.spec().ef_construction,
        n as f64 / total,
        n as f64 / build
    );
    let (v, g, o) = c.state.read().memory_bytes();
    let (rss1, _) = rss_kib();
    println!(
        "memory: segment vectors+keys {:.1} MiB, graph {:.2} MiB, other {:.2} MiB; RSS grew {:.1} MiB while ingesting and indexing",
        mib(v),
        mib(g),
        mib(o),
        (rss1 as f64 - rss0 as f64) / 1024.0
    );

    // The same queries on the same graph: hnsw_rs's search, then ours.
    let rows: Vec<f32> = set
        .base
        .iter()
        .flat_map(|r| {
            let mut r = r.clone();
            if set.metric == Metric::Cosine {
                normalize(&mut r);
            }
            r
        })
        .collect();
    let items: Vec<(&[f32], usize)> = rows.chunks(dim).enumerate().map(|(o, r)| (r, o)).collect();
    let efc = c.spec().ef_construction as usize;
    let m = DEFAULT_M as usize;
    let start = Instant::now();
    let (flat, bare) = crate::index::Graph::build_with_hnsw_rs(set.metric, m, efc, dim, &items);
    let rs_build = start.elapsed().as_secs_f64();
    println!(
        "build alone, {} threads, ef_construction {efc}: hnsw_rs through graph_distance (+ flat copy) {:.0} vectors/s",
        rayon_threads(),
        n as f64 / rs_build,
    );
    if set.metric == Metric::L2 {
        // hnsw_rs with its own distance, at our ef_construction and at 200.
        for e in [efc, 200] {
            let secs = crate::index::bench_hnsw_rs_native_build(m, e, &items);
            println!(
                "build alone: hnsw_rs with its own DistL2, ef_construction {e}: {:.0} vectors/s",
                n as f64 / secs
            );
        }
    }
    let qs: Vec<Vec<f32>> = set
        .queries
        .iter()
        .map(|q| {
            let mut q = q.clone();
            if set.metric == Metric::Cosine {
                normalize(&mut q);
            }
            q
        })
        .collect();
    let reps = if dim > 512 { 3 } else { 7 };
    println!();
    println!(
        "Same queries; A = hnsw_rs's graph searched by hnsw_rs, B = the same graph searched by ours, S = storage-side Collection::search (its own graph, built in-engine the same way). Best of {reps} interleaved passes."
    );
    println!();
    println!(
        "| ef | A µs | A QPS | A recall@10 | B µs | B QPS | B recall@10 | A/B | S µs | S QPS | S recall@10 | A/S |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ef in [16usize, 32, 64, 128] {
        let variants: [Variant; 3] = [
            (&qs, &|q| {
                bare.search(q, 10, ef).into_iter().map(|r| r.0).collect()
            }),
            (&qs, &|q| {
                flat.search(&rows, q, 10, ef, None)
                    .into_iter()
                    .map(|r| r.0)
                    .collect()
            }),
            (&set.queries, &|q| {
                c.search(&params(q, 10, Some(ef), None))
                    .unwrap()
                    .0
                    .into_iter()
                    .map(|h| match h.key {
                        PointKey::Num(n) => n as usize,
                        _ => usize::MAX,
                    })
                    .collect()
            }),
        ];
        let res = timed_interleaved(&variants, reps);
        let r: Vec<f64> = res
            .iter()
            .map(|(_, out)| recall_rows(out, &set.gt))
            .collect();
        let us: Vec<f64> = res.iter().map(|x| x.0).collect();
        println!(
            "| {ef} | {:.1} | {:.0} | {:.4} | {:.1} | {:.0} | {:.4} | {:.2}× | {:.1} | {:.0} | {:.4} | {:.2}× |",
            us[0],
            1e6 / us[0],
            r[0],
            us[1],
            1e6 / us[1],
            r[1],
            us[0] / us[1],
            us[2],
            1e6 / us[2],
            r[2],
            us[0] / us[2],
        );
    }
    println!();
    drop(bare);
    // Restart: snapshot, drop, open again (graphs loaded, not rebuilt).
    c.snapshot().unwrap();
    let path = c.dir().to_path_buf();
    drop(c);
    let start = Instant::now();
    let c = Collection::open(&path, CollectionOptions::default(), |_, _| {}).unwrap();
    println!(
        "restart from snapshot {:.3}s, indexed points {}",
        start.elapsed().as_secs_f64(),
        c.stats().indexed_point_count
    );
    drop(c);
    // A fresh process that only opens the snapshot: its memory is the collection's.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "collection::dataset_tests::rss_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AKIDB_RSS_PROBE", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("rss ").map(|i| &l[i..]))
        .collect();
    if lines.is_empty() {
        println!(
            "rss probe failed: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lines.iter().for_each(|l| println!("{l}"));
    // The storage service itself (gRPC server, engine, object layer) started on the data
    // directory, as `akidb-storage --data-dir` would, in a fresh process; and on an empty one.
    let empty = tempfile::tempdir().unwrap();
    for (what, d) in [("empty", empty.path()), ("this set", dir.path())] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "collection::dataset_tests::storage_rss_probe",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AKIDB_RSS_PROBE", d)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find_map(|l| l.find("rss ").map(|i| &l[i..])) {
            Some(l) => println!("{l} ({what})"),
            None => println!(
                "storage rss probe failed: {}\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// Run by [`bench`] in a child process: serve the data directory at `AKIDB_RSS_PROBE` with
/// the storage service for 2 s (recovery loads the snapshot in milliseconds), then print the
/// process's memory.
#[test]
#[ignore]
fn storage_rss_probe() {
    let Ok(dir) = std::env::var("AKIDB_RSS_PROBE") else {
        return;
    };
    #[derive(clap::Parser)]
    struct A {
        #[command(flatten)]
        c: crate::config::StorageConfig,
    }
    use clap::Parser;
    let a = A::try_parse_from([
        "akidb-storage",
        "--data-dir",
        &dir,
        "--grpc-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ])
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (rss, peak) = rss_kib();
            println!(
                "rss of the storage service serving the data directory: {:.1} MiB, peak {:.1} MiB",
                rss as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        };
        crate::service::run(
            a.c,
            akidb_instrumentation::lifecycle::Serving::new(grpc, metrics, stop),
        )
        .await
        .unwrap();
    });
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run by [`bench`] in a child process: open the collection at `AKIDB_RSS_PROBE` and print
/// the process's memory before and after.
#[test]
#[ignore]
fn rss_probe() {
    let Ok(path) = std::env::var("AKIDB_RSS_PROBE") else {
        return;
    };
    let (before, _) = rss_kib();
    let c = Collection::open(Path::new(&path), CollectionOptions::default(), |_, _| {}).unwrap();
    let (after, peak) = rss_kib();
    let (v, g, o) = c.state.read().memory_bytes();
    println!(
        "rss of a process opening the snapshot: {:.1} MiB before, {:.1} MiB after (+{:.1} MiB), peak {:.1} MiB; collection accounts vectors+keys {:.1} MiB, graph {:.2} MiB, other {:.2} MiB",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0,
        peak as f64 / 1024.0,
        mib(v),
        mib(g),
        mib(o)
    );
    // What storage held next to the segment before the flat graph: hnsw_rs's structure
    // (its own copy of every vector and its neighbour lists).
    let st = c.state.read();
    let seg = st.sealed.values().next().unwrap();
    let dim = c.spec().dimension as usize;
    let all = seg.data.vectors.to_f32();
    let items: Vec<(&[f32], usize)> = (0..seg.data.len())
        .map(|o| (&all[o * dim..(o + 1) * dim], o))
        .collect();
    let (g, h) = crate::index::Graph::build_with_hnsw_rs(
        c.spec().metric,
        c.spec().m as usize,
        c.spec().ef_construction as usize,
        dim,
        &items,
    );
    drop(g);
    let (with_rs, _) = rss_kib();
    println!(
        "rss with hnsw_rs's structure for the same points also held (as before): {:.1} MiB (+{:.1} MiB, build garbage included)",
        with_rs as f64 / 1024.0,
        (with_rs as f64 - after as f64) / 1024.0
    );
    drop(h);
    drop(st);
    drop(c);
}

#[test]
#[ignore]
fn bench_siftsmall() {
    bench("siftsmall");
}

#[test]
#[ignore]
fn bench_jeopardy() {
    bench("jeopardy");
}

#[test]
#[ignore]
fn bench_ingest() {
    // Durable ingest with fsync=always: 1000-point batches of 128-d vectors, 1 and 4 writers.
    let Some(set) = load("siftsmall") else { return };
    for writers in [1usize, 4] {
        let dir = tempfile::tempdir_in(
            std::env::var("AKIDB_BENCH_DIR").unwrap_or_else(|_| "/work".into()),
        )
        .unwrap();
        let spec = CollectionSpec {
            name: "ingest".into(),
            dimension: 128,
            metric: Metric::L2,
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            pinned: false,
            datatype: Datatype::Float32,
        };
        let c = Collection::create(
            &dir.path().join("i"),
            spec,
            CollectionOptions {
                segment_max_points: 1_000_000,
                ..Default::default()
            },
        )
        .unwrap();
        let rounds = 10;
        let start = Instant::now();
        std::thread::scope(|s| {
            for w in 0..writers {
                let (c, set) = (&c, &set);
                s.spawn(move || {
                    for r in 0..rounds {
                        for (b, chunk) in set.base.chunks(1000).enumerate() {
                            let pts = chunk
                                .iter()
                                .enumerate()
                                .map(|(i, v)| PointRecord {
                                    key: PointKey::Num(
                                        ((w * rounds + r) * 10_000 + b * 1000 + i) as u64,
                                    ),
                                    vector: v.clone(),
                                    payload: Payload::new(),
                                })
                                .collect();
                            c.upsert(pts).unwrap();
                        }
                    }
                });
            }
        });
        let n = writers * rounds * set.base.len();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "ingest: {writers} writer(s), {n} vectors durable in {secs:.2}s = {:.0} vectors/s, {} fsyncs",
            n as f64 / secs,
            c.wal.fsync_count()
        );
    }
}
