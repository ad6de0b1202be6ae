//! Build speed, memory, search speed and recall on the shared benchmark sets, and durable
//! ingest (results in docs/benchmarks.md):
//!
//!   cargo bench -p akidb-storage --bench datasets [-- siftsmall|jeopardy|ingest|filters|sparse|named ...]
//!
//! `filters`: filtered search with the planner and with the graph walk alone (jeopardy).
//! `sparse`: sparse (BM25) search pruned against exhaustive, and the hybrid work (jeopardy).
//! `named`: search by a named vector against the unnamed one, over the same vectors (jeopardy).
//!
//! With no name, all six. Knobs: `AKIDB_BENCH_DATATYPE=float16`,
//! `AKIDB_BENCH_EF_CONSTRUCTION=<n>`, `AKIDB_BENCH_DIR=<dir on a real disk>` (ingest; default
//! `/work`), `AKIDB_DATASETS` (the sets; default `../shared/data`).
//!
//! The hnsw_rs baseline (column A) is `hnsw_rs`'s own structure from the same build as B
//! (`Graph::build_with_hnsw_rs`), searched by `hnsw_rs`.

#[path = "../tests/common/mod.rs"]
mod common;

use akidb_storage::collection::{Collection, CollectionOptions};
use akidb_storage::distance::normalize;
use akidb_storage::index::{Graph, bench_hnsw_rs_native_build};
use akidb_storage::model::{
    CollectionSpec, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, Datatype, Metric, Payload, PointKey,
    PointRecord,
};
use akidb_storage::store::{CollectionStore, Include};
use akidb_testkit::datasets::{JEOPARDY, SIFTSMALL};
use common::sets::{Set, indexed, load, params, recall_rows};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    // Child processes of `bench` (see there): one probe, then exit.
    if let Ok(path) = std::env::var("AKIDB_RSS_PROBE") {
        match std::env::args().nth(1).as_deref() {
            Some("--rss-probe") => return rss_probe(Path::new(&path)),
            Some("--storage-rss-probe") => return storage_rss_probe(&path),
            _ => {}
        }
    }
    // `cargo bench` adds `--bench`; other words select benchmarks by a part of their name.
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |n: &str| names.is_empty() || names.iter().any(|f| n.contains(f.as_str()));
    if run("siftsmall") {
        bench(SIFTSMALL);
    }
    if run("jeopardy") {
        bench(JEOPARDY);
    }
    if run("ingest") {
        ingest();
    }
    if run("filters") {
        filters();
    }
    if run("sparse") {
        sparse();
    }
    if run("named") {
        named();
    }
}

/// Named dense vectors on jeopardy: every point carries its ada-002 vector as the unnamed
/// vector and as a named one, in two collections built alike: `ada` (float32, walked as is,
/// as the unnamed one) and `ada16` (float16, int8 codes); the same 1,000 queries search each,
/// interleaved: what searching by name costs against the unnamed path, what float16 + int8
/// saves and costs, recall@10 of each against exact, and the memory each named copy adds.
fn named() {
    use akidb_storage::model::{Quantization, VectorSpec};
    use akidb_storage::store::SearchParams;
    let Some(mut set) = load(JEOPARDY) else {
        return;
    };
    let dim = set.base[0].len() as u32;
    let base = set.clone();
    let with_named = |name: &str, datatype, quantization| {
        let mut set = base.clone();
        let spec = VectorSpec {
            dimension: dim,
            metric: set.metric,
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            datatype,
            quantization,
        };
        set.vectors = [(name.to_string(), spec)].into();
        set.named = set
            .base
            .iter()
            .map(|v| [(name.to_string(), v.clone())].into())
            .collect();
        set
    };
    let plain = with_named("ada", Datatype::Float32, Quantization::None);
    let small = with_named("ada16", Datatype::Float16, Quantization::Int8);
    let (dir, dir2, dir3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (c, build) = indexed(&plain, dir.path());
    let (c16, build16) = indexed(&small, dir2.path());
    let qs: Vec<Vec<f32>> = set.queries.iter().take(1000).cloned().collect();
    let search = |c: &Collection, name: Option<&str>, exact: bool, q: &Vec<f32>| {
        let p = SearchParams {
            vector_name: name.map(String::from),
            exact,
            ..params(q, 10, None, None)
        };
        keys(c.search(&p).unwrap().0)
    };
    let unnamed = |q: &Vec<f32>| search(&c, None, false, q);
    let named = |q: &Vec<f32>| search(&c, Some("ada"), false, q);
    let named16 = |q: &Vec<f32>| search(&c16, Some("ada16"), false, q);
    let variants: [Variant<'_>; 3] = [(&qs, &unnamed), (&qs, &named), (&qs, &named16)];
    let res = timed_interleaved(&variants, 5);
    let truth: Vec<Vec<usize>> = qs.iter().map(|q| search(&c, None, true, q)).collect();
    let recall = |got: &[Vec<usize>]| {
        got.iter()
            .zip(&truth)
            .map(|(g, t)| g.iter().filter(|x| t.contains(x)).count())
            .sum::<usize>() as f64
            / truth.iter().map(Vec::len).sum::<usize>() as f64
    };
    let (_, _, _, (vectors, graphs, other)) = c.gauges();
    let (_, _, _, (vectors16, graphs16, other16)) = c16.gauges();
    drop((c, c16));
    // The same points without a named copy, for the memory each adds.
    set.named = Vec::new();
    set.vectors = Default::default();
    let (c2, build2) = indexed(&set, dir3.path());
    let (_, _, _, (vectors2, graphs2, _)) = c2.gauges();
    drop(c2);
    println!(
        "## named: jeopardy, {} points of {dim} dimensions, {} queries, k 10, default ef",
        set.base.len(),
        qs.len()
    );
    println!();
    println!("| search | µs a query | recall@10 against exact |");
    println!("|---|---:|---:|");
    println!(
        "| the unnamed vector | {:.0} | {:.4} |",
        res[0].0,
        recall(&res[0].1)
    );
    for (r, what) in [
        (&res[1], "the named vector `ada` (float32, same vectors)"),
        (&res[2], "the named vector `ada16` (float16, int8 codes)"),
    ] {
        println!(
            "| {what} | {:.0} ({:.2}× unnamed) | {:.4} |",
            r.0,
            r.0 / res[0].0,
            recall(&r.1)
        );
    }
    println!();
    let mib = |b: u64| b as f64 / 1048576.0;
    println!("| collection | build s | vectors MiB | graphs + codes MiB | other MiB |");
    println!("|---|---:|---:|---:|---:|");
    for (what, b, v, g, o) in [
        ("unnamed + named `ada`", build, vectors, graphs, other),
        (
            "unnamed + named `ada16`",
            build16,
            vectors16,
            graphs16,
            other16,
        ),
    ] {
        println!(
            "| {what} | {b:.1} | {:.1} (+{:.1}) | {:.1} (+{:.1}) | {:.1} |",
            mib(v),
            mib(v.saturating_sub(vectors2)),
            mib(g),
            mib(g.saturating_sub(graphs2)),
            mib(o)
        );
    }
    println!(
        "| unnamed alone | {build2:.1} | {:.1} | {:.1} | |",
        mib(vectors2),
        mib(graphs2)
    );
    println!();
}

/// Sparse search on jeopardy (BM25 of the questions, `sets::jeopardy_bm25`), 200 queries with
/// a known word, k 10: the product's pruned search through the segment's inverted index
/// against an exhaustive term-at-a-time accumulation over the same postings built here (every
/// posting read, then the top 10); both exact. Then the hybrid work of a Query in storage
/// (the dense search, the sparse search, RRF) against the dense search alone.
fn sparse() {
    use akidb_storage::model::SparseVector;
    use akidb_storage::store::SearchParams;
    use std::collections::HashMap;
    let Some(mut set) = load(JEOPARDY) else {
        return;
    };
    let (base, queries) = common::sets::jeopardy_bm25();
    set.sparse = base
        .iter()
        .map(|v| [("bm25".to_string(), v.clone())].into())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed(&set, dir.path());
    let qis: Vec<usize> = (0..queries.len())
        .filter(|&q| !queries[q].is_empty())
        .take(200)
        .collect();
    let qs: Vec<SparseVector> = qis.iter().map(|&q| queries[q].clone()).collect();
    let sparse_params = |q: &SparseVector, k: usize| SearchParams {
        vector: vec![],
        sparse: Some(("bm25".into(), q.clone())),
        ..params(&[], k, None, None)
    };
    // The exhaustive baseline's postings.
    let mut postings: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
    for (i, v) in base.iter().enumerate() {
        for (&t, &w) in v.indices.iter().zip(&v.values) {
            postings.entry(t).or_default().push((i as u32, w));
        }
    }
    let exhaustive = |q: &SparseVector| -> Vec<usize> {
        let mut acc = vec![0.0f32; base.len()];
        let mut touched = Vec::new();
        for (t, w) in q.indices.iter().zip(&q.values) {
            for &(d, x) in postings.get(t).map_or(&[][..], Vec::as_slice) {
                if acc[d as usize] == 0.0 {
                    touched.push(d);
                }
                acc[d as usize] += w * x;
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut top: Vec<(f32, u32)> = touched.iter().map(|&d| (acc[d as usize], d)).collect();
        let k = top.len().min(10);
        if k > 0 {
            top.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        }
        top.truncate(k);
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        top.into_iter().map(|x| x.1 as usize).collect()
    };
    let (mut scored, mut sharing) = (0u64, 0u64);
    for q in &qs {
        let (_, info) = c.search(&sparse_params(q, 10)).unwrap();
        scored += info.sparse_scored;
        let mut docs: Vec<u32> = q
            .indices
            .iter()
            .flat_map(|t| postings.get(t).into_iter().flatten().map(|x| x.0))
            .collect();
        docs.sort_unstable();
        docs.dedup();
        sharing += docs.len() as u64;
    }
    let product = |q: &SparseVector| keys(c.search(&sparse_params(q, 10)).unwrap().0);
    let variants: [Variant<'_, SparseVector>; 2] = [(&qs, &product), (&qs, &exhaustive)];
    let res = timed_interleaved(&variants, 3);
    let same = res[0]
        .1
        .iter()
        .zip(&res[1].1)
        .map(|(a, b)| a.iter().filter(|x| b.contains(x)).count())
        .sum::<usize>() as f64
        / res[1].1.iter().map(Vec::len).sum::<usize>() as f64;
    println!(
        "## sparse: jeopardy BM25, {} points, {} queries, k 10",
        base.len(),
        qs.len()
    );
    println!();
    println!("| search | µs a query | points scored a query | top-10 overlap with the other |");
    println!("|---|---:|---:|---:|");
    println!(
        "| pruned (the product) | {:.0} | {:.0} | {same:.4} |",
        res[0].0,
        scored as f64 / qs.len() as f64
    );
    println!(
        "| exhaustive accumulation (here) | {:.0} | {:.0} | {same:.4} |",
        res[1].0,
        sharing as f64 / qs.len() as f64
    );
    println!();
    // Hybrid: what storage does for a two-branch Query (limit 20 each, fused to 10).
    let dense_qs: Vec<Vec<f32>> = qis.iter().map(|&q| set.queries[q].clone()).collect();
    let pairs: Vec<(Vec<f32>, SparseVector)> = dense_qs.iter().cloned().zip(qs.clone()).collect();
    let dense_only =
        |p: &(Vec<f32>, SparseVector)| keys(c.search(&params(&p.0, 10, None, None)).unwrap().0);
    let hybrid = |p: &(Vec<f32>, SparseVector)| {
        let to_pb = |h: Vec<akidb_storage::store::Hit>| -> Vec<akidb_proto::v1::ScoredPoint> {
            h.into_iter()
                .map(akidb_storage::convert::hit_to_pb)
                .collect()
        };
        let d = to_pb(c.search(&params(&p.0, 20, None, None)).unwrap().0);
        let s = to_pb(c.search(&sparse_params(&p.1, 20)).unwrap().0);
        let b = |hits| akidb_proto::fusion::Branch {
            hits,
            lower_is_closer: false,
            weight: 1.0,
        };
        akidb_proto::fusion::fuse(&[b(&d), b(&s)], akidb_proto::v1::Fusion::Rrf, 60, 10)
            .into_iter()
            .map(|h| match h.id.and_then(|i| i.kind) {
                Some(akidb_proto::v1::point_id::Kind::Num(n)) => n as usize,
                _ => usize::MAX,
            })
            .collect()
    };
    let variants: [Variant<'_, (Vec<f32>, SparseVector)>; 2] =
        [(&pairs, &dense_only), (&pairs, &hybrid)];
    let res = timed_interleaved(&variants, 3);
    println!("| search | µs a query |");
    println!("|---|---:|");
    println!("| dense alone (k 10, default ef) | {:.0} |", res[0].0);
    println!(
        "| hybrid: dense + sparse (k 20 each) + RRF to 10 | {:.0} ({:.2}× dense) |",
        res[1].0,
        res[1].0 / res[0].0
    );
    println!();
}

/// Filtered search on jeopardy with `value` ranges (a filter the payload index cannot narrow)
/// from under 1 % to over 90 % of the points: the planner (a segment where a 256-point sample
/// says the filter keeps at most 2,000 points is scanned exactly) against the walk alone
/// (`exact_filter_max` 0: walked unless the sample finds no match), on copies of one
/// collection, 200 queries, recall@10 against an exact filtered search.
fn filters() {
    use akidb_storage::filter::{Condition, Filter, Match, Range};
    let Some(set) = load(JEOPARDY) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed(&set, dir.path());
    c.snapshot().unwrap();
    let path = c.dir().to_path_buf();
    drop(c);
    let copy = dir.path().join("walk");
    copy_dir(&path, &copy);
    let planned = Collection::open(&path, CollectionOptions::default(), |_, _| {}).unwrap();
    let mut opts = CollectionOptions::default();
    opts.tuning.exact_filter_max = 0;
    let walk = Collection::open(&copy, opts, |_, _| {}).unwrap();
    let qs = &set.queries[..200];
    println!(
        "## filters: jeopardy, {} points, 200 queries, k 10, default ef",
        set.base.len()
    );
    println!();
    println!(
        "| filter on `value` | points kept | planned µs | planned recall@10 | walk µs | walk recall@10 | walk / planned time |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let range = |gte: Option<f64>, lte: Option<f64>| Filter {
        must: vec![Condition::field(
            "value",
            Match::Range(Range {
                gte,
                lte,
                ..Default::default()
            }),
        )],
        ..Default::default()
    };
    for (what, f) in [
        ("≥ 4,000", range(Some(4000.0), None)),
        ("≥ 2,400", range(Some(2400.0), None)),
        ("= 1,200", range(Some(1200.0), Some(1200.0))),
        ("= 1,000", range(Some(1000.0), Some(1000.0))),
        ("≤ 400", range(None, Some(400.0))),
        ("≥ 200", range(Some(200.0), None)),
    ] {
        let kept = planned.count(Some(&f)).unwrap();
        let truth: Vec<Vec<usize>> = qs
            .iter()
            .map(|q| {
                let p = akidb_storage::store::SearchParams {
                    exact: true,
                    ..params(q, 10, None, Some(f.clone()))
                };
                keys(planned.search(&p).unwrap().0)
            })
            .collect();
        let variants: [Variant; 2] = [
            (qs, &|q| {
                keys(
                    planned
                        .search(&params(q, 10, None, Some(f.clone())))
                        .unwrap()
                        .0,
                )
            }),
            (qs, &|q| {
                keys(
                    walk.search(&params(q, 10, None, Some(f.clone())))
                        .unwrap()
                        .0,
                )
            }),
        ];
        let res = timed_interleaved(&variants, 3);
        let recall = |out: &[Vec<usize>]| {
            let (mut hit, mut all) = (0, 0);
            for (got, want) in out.iter().zip(&truth) {
                hit += got.iter().filter(|k| want.contains(k)).count();
                all += want.len();
            }
            hit as f64 / all.max(1) as f64
        };
        println!(
            "| {what} | {kept} ({:.2} %) | {:.0} | {:.4} | {:.0} | {:.4} | {:.2}× |",
            kept as f64 * 100.0 / set.base.len() as f64,
            res[0].0,
            recall(&res[0].1),
            res[1].0,
            recall(&res[1].1),
            res[1].0 / res[0].0,
        );
    }
    println!();
}

/// Copy the directory `from` to `to` (files and subdirectories).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Resident and peak memory of this process in KiB (`/proc/self/status`).
fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
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

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// For each variant (queries, search): (µs per query, results), best of `reps` passes that
/// take turns, so a busy machine slows every variant alike.
/// The ids of hits (integer ids; others as `usize::MAX`).
fn keys(hits: Vec<akidb_storage::store::Hit>) -> Vec<usize> {
    hits.into_iter()
        .map(|h| match h.key {
            PointKey::Num(n) => n as usize,
            _ => usize::MAX,
        })
        .collect()
}

/// Queries and what answers one (its ids).
type Variant<'a, Q = Vec<f32>> = (&'a [Q], &'a dyn Fn(&Q) -> Vec<usize>);

/// Each variant over all its queries, `reps` times interleaved: (the best mean µs a query,
/// the answers of the first pass).
fn timed_interleaved<Q>(variants: &[Variant<'_, Q>], reps: usize) -> Vec<(f64, Vec<Vec<usize>>)> {
    let mut out: Vec<(f64, Vec<Vec<usize>>)> = variants
        .iter()
        .map(|(qs, f)| (f64::INFINITY, qs.iter().map(f).collect()))
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

/// Vectors (normalized for cosine) as one flat array, `dim` per row.
fn rows_of(set: &Set, vs: &[Vec<f32>]) -> Vec<f32> {
    vs.iter()
        .flat_map(|r| {
            let mut r = r.clone();
            if set.metric == Metric::Cosine {
                normalize(&mut r);
            }
            r
        })
        .collect()
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
    let (v, g, o) = c.gauges().3;
    let (rss1, _) = rss_kib();
    println!(
        "memory: segment vectors+keys {:.1} MiB, graph {:.2} MiB, other {:.2} MiB; RSS grew {:.1} MiB while ingesting and indexing",
        mib(v),
        mib(g),
        mib(o),
        (rss1 as f64 - rss0 as f64) / 1024.0
    );

    // The same queries on hnsw_rs's graph searched by hnsw_rs, on our graph built the same
    // way searched by ours, and through the engine.
    let rows = rows_of(&set, &set.base);
    let items: Vec<(&[f32], usize)> = rows.chunks(dim).enumerate().map(|(o, r)| (r, o)).collect();
    let efc = c.spec().ef_construction as usize;
    let m = DEFAULT_M as usize;
    let start = Instant::now();
    let (flat, bare) = Graph::build_with_hnsw_rs(set.metric, m, efc, dim, &items);
    let rs_build = start.elapsed().as_secs_f64();
    println!(
        "build alone, {} threads, ef_construction {efc}: hnsw_rs through graph_distance {:.0} vectors/s",
        threads(),
        n as f64 / rs_build,
    );
    if set.metric == Metric::L2 {
        // hnsw_rs with its own distance, at our ef_construction and at 200.
        for e in [efc, 200] {
            let secs = bench_hnsw_rs_native_build(m, e, &items);
            println!(
                "build alone: hnsw_rs with its own DistL2, ef_construction {e}: {:.0} vectors/s",
                n as f64 / secs
            );
        }
    }
    let qs: Vec<Vec<f32>> = rows_of(&set, &set.queries)
        .chunks(dim)
        .map(<[f32]>::to_vec)
        .collect();
    let reps = if dim > 512 { 3 } else { 7 };
    println!();
    println!(
        "Same queries; A = hnsw_rs's graph searched by hnsw_rs, B = the same graph copied into our form searched by ours, S = storage-side Collection::search (its own graph, built in-engine the same way). Best of {reps} interleaved passes."
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
    drop(flat);
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
    let (text, diag) = probe("--rss-probe", &path);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("rss ").map(|i| &l[i..]))
        .collect();
    if lines.is_empty() {
        println!("rss probe failed: {diag}\n{text}");
    }
    lines.iter().for_each(|l| println!("{l}"));
    // The storage service itself (gRPC server, engine, object layer) started on the data
    // directory, as `akidb-storage --data-dir` would, in a fresh process; and on an empty one.
    let empty = tempfile::tempdir().unwrap();
    for (what, d) in [("empty", empty.path()), ("this set", dir.path())] {
        let (text, diag) = probe("--storage-rss-probe", d);
        match text.lines().find_map(|l| l.find("rss ").map(|i| &l[i..])) {
            Some(l) => println!("{l} ({what})"),
            None => println!("storage rss probe failed: {diag}\n{text}"),
        }
    }
}

/// This benchmark run again as a child process with `flag` on `path`: its stdout, and its
/// exit status and stderr.
fn probe(flag: &str, path: &Path) -> (String, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(flag)
        .env("AKIDB_RSS_PROBE", path)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        format!("{}\n{}", out.status, String::from_utf8_lossy(&out.stderr)),
    )
}

/// Child process of [`bench`]: serve the data directory `dir` with the storage service for
/// 2 s (recovery loads the snapshot in milliseconds), then print the process's memory.
fn storage_rss_probe(dir: &str) {
    #[derive(clap::Parser)]
    struct A {
        #[command(flatten)]
        c: akidb_storage::StorageConfig,
    }
    use clap::Parser;
    let a = A::try_parse_from([
        "akidb-storage",
        "--data-dir",
        dir,
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
        akidb_storage::run(
            a.c,
            akidb_instrumentation::lifecycle::Serving::new(grpc, metrics, stop),
        )
        .await
        .unwrap();
    });
}

/// Child process of [`bench`]: open the collection at `path` and print the process's memory
/// before and after; then with `hnsw_rs`'s structure for the same points also held.
fn rss_probe(path: &Path) {
    let (before, _) = rss_kib();
    let c = Collection::open(path, CollectionOptions::default(), |_, _| {}).unwrap();
    let (after, peak) = rss_kib();
    let (v, g, o) = c.gauges().3;
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
    // (its own copy of every vector and its neighbour lists). The points are read back
    // through the API (ids 0..n, as `bench` wrote them) into one array that is freed once
    // hnsw_rs has copied them.
    let spec = c.spec().clone();
    let dim = spec.dimension as usize;
    let n = c.stats().point_count;
    let mut all = Vec::with_capacity(n as usize * dim);
    for ids in (0..n).collect::<Vec<u64>>().chunks(1000) {
        let keys: Vec<PointKey> = ids.iter().map(|&i| PointKey::Num(i)).collect();
        for p in c
            .get(
                &keys,
                Include {
                    payload: false,
                    vector: true,
                },
            )
            .unwrap()
        {
            all.extend_from_slice(&p.vector.unwrap());
        }
    }
    let items: Vec<(&[f32], usize)> = all.chunks(dim).enumerate().map(|(o, r)| (r, o)).collect();
    let h = Graph::build_with_hnsw_rs(
        spec.metric,
        spec.m as usize,
        spec.ef_construction as usize,
        dim,
        &items,
    );
    drop(items);
    drop(all);
    let (with_rs, _) = rss_kib();
    println!(
        "rss with hnsw_rs's structure for the same points also held (as before): {:.1} MiB (+{:.1} MiB, build garbage included)",
        with_rs as f64 / 1024.0,
        (with_rs as f64 - after as f64) / 1024.0
    );
    drop(h);
    drop(c);
}

/// Durable ingest with fsync=always: 1000-point batches of siftsmall's 128-d vectors, 1 and
/// 4 writers, in `AKIDB_BENCH_DIR` (default `/work`: a real disk, not tmpfs).
fn ingest() {
    let Some(set) = load(SIFTSMALL) else { return };
    let fsyncs = || {
        akidb_instrumentation::metrics::metrics()
            .wal_fsync_duration
            .histogram()
            .get_sample_count()
    };
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
            quantization: Default::default(),
            on_disk: false,
            payload_indexes: Default::default(),
            sparse_vectors: Default::default(),
            vectors: Default::default(),
        };
        // The only WAL of this process from here on: the fsyncs counted are its own.
        let fsyncs0 = fsyncs();
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
                                    sparse: Default::default(),
                                    named: Default::default(),
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
            fsyncs() - fsyncs0
        );
    }
}
