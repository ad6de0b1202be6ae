//! The shared data sets (`akidb_testkit::datasets`) as storage collections in this process:
//! one sealed segment with its HNSW graph, searched through the public API, and recall@10
//! against the sets' ground truth.

use akidb_storage::collection::{Collection, CollectionOptions};
use akidb_storage::filter::Filter;
use akidb_storage::model::{
    CollectionSpec, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, Datatype, Metric, NamedVectors, Payload,
    PointKey, PointRecord, Quantization, SparseVector, SparseVectors, VectorSpec,
};
use akidb_storage::store::{CollectionStore, Include, SearchParams};
use akidb_testkit::datasets::{JEOPARDY, SIFTSMALL, VectorSet};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A data set with what storage needs beside the vectors.
#[derive(Clone)]
pub struct Set {
    pub base: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
    pub gt: Vec<Vec<u64>>,
    /// Per base row: none for siftsmall; category, value and round for jeopardy.
    pub payloads: Vec<Payload>,
    /// Per base row, its sparse vectors (none unless a test adds them).
    pub sparse: Vec<SparseVectors>,
    /// Per base row, its named dense vectors, and their declarations (none unless a test
    /// adds them).
    pub named: Vec<NamedVectors>,
    pub vectors: std::collections::BTreeMap<String, VectorSpec>,
    pub metric: Metric,
}

/// [`SIFTSMALL`] or [`JEOPARDY`]; `None` when the test is to skip (the set is missing and
/// this is not CI).
pub fn load(name: &str) -> Option<Set> {
    let v = VectorSet::load(name)?;
    let n = v.base.len();
    let (payloads, metric) = match name {
        SIFTSMALL => (vec![Payload::new(); n], Metric::L2),
        JEOPARDY => {
            let meta = std::fs::read_to_string(v.dir.join("jeopardy_base_meta.jsonl")).unwrap();
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
            (payloads, Metric::Cosine)
        }
        other => panic!("no storage set `{other}`"),
    };
    Some(Set {
        base: v.base,
        queries: v.queries,
        gt: v.groundtruth,
        payloads,
        sparse: Vec::new(),
        named: Vec::new(),
        vectors: Default::default(),
        metric,
    })
}

/// A collection holding the whole set in one sealed, indexed segment; returns build seconds.
/// Its datatype is float32, or `AKIDB_BENCH_DATATYPE` (`float16`).
pub fn indexed(set: &Set, dir: &Path) -> (Arc<Collection>, f64) {
    let datatype = match std::env::var("AKIDB_BENCH_DATATYPE").as_deref() {
        Ok("float16") => Datatype::Float16,
        _ => Datatype::Float32,
    };
    indexed_as(set, dir, datatype)
}

/// [`indexed`] with `datatype`; `ef_construction` is the default or
/// `AKIDB_BENCH_EF_CONSTRUCTION`.
pub fn indexed_as(set: &Set, dir: &Path, datatype: Datatype) -> (Arc<Collection>, f64) {
    indexed_with(set, dir, datatype, Quantization::None)
}

/// [`indexed_as`] with `quantization`.
pub fn indexed_with(
    set: &Set,
    dir: &Path,
    datatype: Datatype,
    quantization: Quantization,
) -> (Arc<Collection>, f64) {
    indexed_declaring(set, dir, datatype, quantization, Default::default())
}

/// [`indexed_with`] with declared payload indexes.
pub fn indexed_declaring(
    set: &Set,
    dir: &Path,
    datatype: Datatype,
    quantization: Quantization,
    payload_indexes: std::collections::BTreeMap<String, akidb_storage::model::IndexKind>,
) -> (Arc<Collection>, f64) {
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
        quantization,
        on_disk: false,
        payload_indexes,
        sparse_vectors: set.sparse.iter().flat_map(|s| s.keys().cloned()).collect(),
        vectors: set.vectors.clone(),
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
                    sparse: set.sparse.get(id).cloned().unwrap_or_default(),
                    named: set.named.get(id).cloned().unwrap_or_default(),
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

/// Search parameters: no payloads or vectors in the hits, graph search.
pub fn params(q: &[f32], k: usize, ef: Option<usize>, filter: Option<Filter>) -> SearchParams {
    SearchParams {
        vector: q.to_vec(),
        k,
        filter,
        ef,
        oversampling: None,
        include: Include::default(),
        exact: false,
        sparse: None,
        vector_name: None,
    }
}

/// (mean recall@10, mean µs per search) at `ef` (None: the default) over the first `nq`
/// queries.
pub fn recall(c: &Collection, set: &Set, ef: Option<usize>, nq: usize) -> (f64, f64) {
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

/// Mean recall@10 of result offsets (row numbers) against the ground truth.
pub fn recall_rows(results: &[Vec<usize>], gt: &[Vec<u64>]) -> f64 {
    let mut hit = 0;
    for (r, g) in results.iter().zip(gt) {
        let truth: HashSet<u64> = g[..10].iter().copied().collect();
        hit += r.iter().filter(|o| truth.contains(&(**o as u64))).count();
    }
    hit as f64 / (10 * results.len()) as f64
}

/// The words of a text as the tests read them: runs of letters and digits, lower-cased.
pub fn words(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for ch in s.chars() {
        if ch.is_alphanumeric() {
            out.last_mut().unwrap().extend(ch.to_lowercase());
        } else if !out.last().unwrap().is_empty() {
            out.push(String::new());
        }
    }
    out.retain(|w| !w.is_empty());
    out
}

/// The rows of one of jeopardy's meta files (`jeopardy_base_meta.jsonl`, `..._query_...`).
pub fn meta_rows(file: &str) -> Vec<serde_json::Value> {
    let path = akidb_testkit::datasets::dir(JEOPARDY).unwrap().join(file);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sparse vectors of jeopardy's questions, computed here: each base question weighted by BM25
/// (k1 1.2, b 0.75, over its [`words`]), and each query question's words that the base has
/// (weight: how often the question has the word). (base, queries), in row order.
pub fn jeopardy_bm25() -> (Vec<SparseVector>, Vec<SparseVector>) {
    use std::collections::HashMap;
    let question = |m: &serde_json::Value| words(m["Question"].as_str().unwrap());
    let docs: Vec<Vec<String>> = meta_rows("jeopardy_base_meta.jsonl")
        .iter()
        .map(question)
        .collect();
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let mut df: Vec<f64> = Vec::new();
    for d in &docs {
        let mut seen: Vec<&String> = d.iter().collect();
        seen.sort();
        seen.dedup();
        for w in seen {
            let n = vocab.len() as u32;
            let i = *vocab.entry(w.clone()).or_insert(n);
            if i as usize == df.len() {
                df.push(0.0);
            }
            df[i as usize] += 1.0;
        }
    }
    let n = docs.len() as f64;
    let avgdl = docs.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let (k1, b) = (1.2, 0.75);
    let sparse = |mut e: Vec<(u32, f32)>| {
        e.sort_by_key(|x| x.0);
        SparseVector {
            indices: e.iter().map(|x| x.0).collect(),
            values: e.iter().map(|x| x.1).collect(),
        }
    };
    let base = docs
        .iter()
        .map(|d| {
            let mut tf: HashMap<u32, f64> = HashMap::new();
            for w in d {
                *tf.entry(vocab[w]).or_default() += 1.0;
            }
            sparse(
                tf.into_iter()
                    .map(|(t, f)| {
                        let df = df[t as usize];
                        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                        let norm = k1 * (1.0 - b + b * d.len() as f64 / avgdl);
                        (t, (idf * f * (k1 + 1.0) / (f + norm)) as f32)
                    })
                    .collect(),
            )
        })
        .collect();
    let queries = meta_rows("jeopardy_query_meta.jsonl")
        .iter()
        .map(|m| {
            let mut tf: HashMap<u32, f32> = HashMap::new();
            for w in question(m) {
                if let Some(&t) = vocab.get(&w) {
                    *tf.entry(t).or_default() += 1.0;
                }
            }
            sparse(tf.into_iter().collect())
        })
        .collect();
    (base, queries)
}
