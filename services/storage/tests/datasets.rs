//! Recall and filtered search on the shared benchmark sets (siftsmall, jeopardy), through
//! the storage crate's public API. A missing set skips the test loudly, or fails it under
//! `CI=true` (`akidb_testkit::datasets`: `AKIDB_DATASETS`, default `../shared/data`). The
//! speed and memory figures of the same sets are `benches/datasets.rs`.

mod common;

use akidb_storage::filter::{Condition, Filter, Match};
use akidb_storage::memory::MemoryCollection;
use akidb_storage::model::{Datatype, Metric, PointKey, PointRecord, Quantization};
use akidb_storage::store::{CollectionStore, Include, SearchParams};
use akidb_testkit::datasets::{JEOPARDY, SIFTSMALL};
use common::sets::{Set, indexed, indexed_as, indexed_with, load, params, recall, recall_rows};
use std::collections::HashSet;

#[test]
fn siftsmall_recall_at_default_ef() {
    let Some(set) = load(SIFTSMALL) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed(&set, dir.path());
    assert_eq!(c.stats().indexed_point_count, 10_000);
    let (r, _) = recall(&c, &set, None, set.queries.len());
    assert!(r >= 0.95, "siftsmall recall@10 at default ef: {r}");
    // The ef a default search used is the graph's calibrated one (never below 64).
    let ef = default_ef(&c, &set.queries[0]);
    eprintln!("siftsmall: default ef {ef}");
    assert!(ef >= 64, "{ef}");
}

/// Quantized collections at the defaults: recall@10 of at least 0.95 on both sets (int8 on
/// siftsmall's L2; int8 and binary on jeopardy's 1536-d ada-002 embeddings under cosine),
/// every hit scored exactly (rescored with the stored vectors), and the candidates rescored
/// reported.
#[test]
fn quantized_recall_at_the_defaults() {
    let mut ran = 0;
    for (name, quantizations) in [
        (SIFTSMALL, &[Quantization::Int8][..]),
        (JEOPARDY, &[Quantization::Int8, Quantization::Binary][..]),
    ] {
        let Some(set) = load(name) else { continue };
        let nq = set.queries.len().min(200);
        for &q in quantizations {
            let dir = tempfile::tempdir().unwrap();
            let (c, build) = indexed_with(&set, dir.path(), Datatype::Float32, q);
            let (r, us) = recall(&c, &set, None, nq);
            let (_, info) = c.search(&params(&set.queries[0], 10, None, None)).unwrap();
            eprintln!(
                "{name} {}: recall@10 {r:.4} at default ef {} rescoring {}, {us:.0} us/query, built in {build:.1} s",
                q.as_str(),
                info.ef,
                info.rescored
            );
            assert!(
                r >= 0.95,
                "{name} {} recall@10 at the defaults: {r}",
                q.as_str()
            );
            assert_eq!(info.rescored, 10 * q.default_oversampling() as u64);
            assert_exact_scores(&c, &set);
            ran += 1;
        }
    }
    assert!(ran > 0 || std::env::var("CI").is_err(), "no data set found");
}

/// Every hit's score is the exact score of its stored vector.
fn assert_exact_scores(c: &akidb_storage::collection::Collection, set: &Set) {
    for q in set.queries.iter().take(20) {
        let (hits, _) = c.search(&params(q, 10, None, None)).unwrap();
        for h in hits {
            let PointKey::Num(n) = h.key else { panic!() };
            let mut v = set.base[n as usize].clone();
            let mut q = q.clone();
            let want = match set.metric {
                Metric::L2 => akidb_storage::distance::l2_scalar(&q, &v).sqrt(),
                _ => {
                    if set.metric == Metric::Cosine {
                        akidb_storage::distance::normalize(&mut v);
                        akidb_storage::distance::normalize(&mut q);
                    }
                    akidb_storage::distance::dot_scalar(&q, &v)
                }
            };
            assert!(
                (h.score - want).abs() <= 1e-4 * want.abs().max(1.0),
                "point {n}: score {} but exactly {want}",
                h.score
            );
        }
    }
}

/// The ef a search that sets none used, as its stats say.
fn default_ef(c: &akidb_storage::collection::Collection, q: &[f32]) -> u64 {
    c.search(&params(q, 10, None, None)).unwrap().1.ef
}

#[test]
fn siftsmall_float16_is_exact_and_keeps_recall() {
    let Some(set) = load(SIFTSMALL) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = indexed_as(&set, dir.path(), Datatype::Float16);
    assert_eq!(c.stats().indexed_point_count, 10_000);
    // SIFT components are integers from 0 to 255: float16 holds them exactly.
    for i in [0usize, 4321, 9999] {
        let got = c.get(&[PointKey::Num(i as u64)], Include::VECTOR).unwrap();
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
            .map(|(o, v)| (akidb_storage::distance::l2_scalar(q, v), o))
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
    let Some(set) = load(SIFTSMALL) else { return };
    let dim = 128;
    let rows: Vec<f32> = set.base.concat();
    let items: Vec<(&[f32], usize)> = rows.chunks(dim).enumerate().map(|(o, r)| (r, o)).collect();
    let g = akidb_storage::index::Graph::build(Metric::L2, 16, 100, dim, &items);
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
                    akidb_storage::distance::l2_squared(q, &rows[o * dim..(o + 1) * dim]),
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
    let Some(set) = load(JEOPARDY) else { return };
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
    let ef = default_ef(&c, &set.queries[0]);
    eprintln!("jeopardy: recall@10 {r} at the default ef {ef}");
    assert!(r >= 0.95, "jeopardy recall@10 at default ef {ef}: {r}");
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
