//! The one meaning of a Query: its branches as searches ([`branch_searches`], errors named
//! by [`in_branch`]) and their results made into one ranking ([`fuse`], [`response`]).
//! Storage fuses the branches it searched (a collection on one node); a cluster's query
//! service fuses the branches it gathered from the shards.

use crate::convert::id_order;
use crate::v1 as pb;
use std::collections::HashMap;
use tonic::Status;

/// A Query's branches as the searches they are: of the Query's collection, with its
/// `with_payload` and `with_vector`.
pub fn branch_searches(q: &pb::QueryRequest) -> Vec<pb::SearchRequest> {
    q.branches
        .iter()
        .map(|b| pb::SearchRequest {
            collection: q.collection.clone(),
            with_payload: q.with_payload,
            with_vector: q.with_vector,
            ..b.clone()
        })
        .collect()
}

/// Error `e` of branch `i`, saying so.
pub fn in_branch(i: usize, e: Status) -> Status {
    Status::new(e.code(), format!("branch #{i}: {}", e.message()))
}

/// One branch's results, best first, and how to read its scores.
pub struct Branch<'a> {
    pub hits: &'a [pb::ScoredPoint],
    /// The scores rank ascending (L2 distances).
    pub lower_is_closer: bool,
    pub weight: f32,
}

/// What each of a branch's hits contributes to its point's fused score.
fn contributions(b: &Branch<'_>, fusion: pb::Fusion, rrf_k: u32) -> Vec<f64> {
    let w = f64::from(b.weight);
    match fusion {
        pb::Fusion::Dbsf => {
            let n = b.hits.len() as f64;
            let mean = b.hits.iter().map(|h| f64::from(h.score)).sum::<f64>() / n;
            let var = b
                .hits
                .iter()
                .map(|h| (f64::from(h.score) - mean).powi(2))
                .sum::<f64>()
                / n;
            let (lo, hi) = (mean - 3.0 * var.sqrt(), mean + 3.0 * var.sqrt());
            b.hits
                .iter()
                .map(|h| {
                    // Scores all equal (or one): each sits in the middle of the range.
                    let norm = if hi > lo {
                        ((f64::from(h.score) - lo) / (hi - lo)).clamp(0.0, 1.0)
                    } else {
                        0.5
                    };
                    w * if b.lower_is_closer { 1.0 - norm } else { norm }
                })
                .collect()
        }
        // RRF (and the unset value, which means it).
        _ => (1..=b.hits.len())
            .map(|rank| w / (f64::from(rrf_k) + rank as f64))
            .collect(),
    }
}

/// The `k` best points of the fused ranking: each point's score the sum of what every branch
/// that returned it contributes (RRF: `weight / (rrf_k + rank)`, ranks from 1; DBSF: the
/// weight times its score normalized by the branch's mean ± 3 standard deviations to [0, 1],
/// flipped when lower is closer). Best first; equal scores in id order
/// ([`crate::convert::id_order`]). A point's payload and vectors are those of its first
/// appearance.
pub fn fuse(
    branches: &[Branch<'_>],
    fusion: pb::Fusion,
    rrf_k: u32,
    k: usize,
) -> Vec<pb::ScoredPoint> {
    let mut by_id: HashMap<(u8, u64, &str), (f64, &pb::ScoredPoint)> = HashMap::new();
    for b in branches.iter().filter(|b| !b.hits.is_empty()) {
        for (h, c) in b.hits.iter().zip(contributions(b, fusion, rrf_k)) {
            by_id.entry(id_order(h.id.as_ref())).or_insert((0.0, h)).0 += c;
        }
    }
    let mut all: Vec<((u8, u64, &str), f64, &pb::ScoredPoint)> =
        by_id.into_iter().map(|(id, (s, h))| (id, s, h)).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    all.into_iter()
        .map(|(_, score, h)| pb::ScoredPoint {
            score: score as f32,
            ..h.clone()
        })
        .collect()
}

/// A Query's response from its branches' search results, in branch order: the fused hits
/// ([`fuse`]; `weights` empty means 1 each), each branch's stats and count, and whether any
/// branch was partial or stale.
pub fn response(
    results: &[pb::SearchResponse],
    weights: &[f32],
    fusion: i32,
    rrf_k: Option<u32>,
    k: u32,
) -> pb::QueryResponse {
    let branches: Vec<Branch<'_>> = results
        .iter()
        .enumerate()
        .map(|(i, r)| Branch {
            hits: &r.hits,
            lower_is_closer: r.stats.as_ref().is_some_and(|s| s.lower_is_closer),
            weight: weights.get(i).copied().unwrap_or(1.0),
        })
        .collect();
    let fusion = pb::Fusion::try_from(fusion).unwrap_or(pb::Fusion::Rrf);
    let rrf_k = rrf_k.unwrap_or(crate::limits::DEFAULT_RRF_K);
    let mut missing: Vec<u32> = results
        .iter()
        .flat_map(|r| r.missing_shards.iter().copied())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    pb::QueryResponse {
        hits: fuse(&branches, fusion, rrf_k, k as usize),
        branches: results
            .iter()
            .map(|r| pb::BranchStats {
                stats: r.stats,
                returned: r.hits.len() as u32,
            })
            .collect(),
        partial: results.iter().any(|r| r.partial),
        missing_shards: missing,
        stale: results.iter().any(|r| r.stale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::PointId;

    fn hit(id: u64, score: f32) -> pb::ScoredPoint {
        pb::ScoredPoint {
            id: Some(PointId::num(id)),
            score,
            ..Default::default()
        }
    }

    /// A branch for the reference: (id, score) best first, lower is closer, weight.
    type RefBranch = (Vec<(u64, f32)>, bool, f32);

    /// The reference: written from the definitions, point by point over every id any branch
    /// returned, with no shared code.
    fn reference(branches: &[RefBranch], dbsf: bool, rrf_k: f64, k: usize) -> Vec<(u64, f64)> {
        let mut ids: Vec<u64> = branches
            .iter()
            .flat_map(|b| b.0.iter().map(|h| h.0))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out: Vec<(u64, f64)> = ids
            .into_iter()
            .map(|id| {
                let mut total = 0.0;
                for (hits, lower, w) in branches {
                    let Some(pos) = hits.iter().position(|h| h.0 == id) else {
                        continue;
                    };
                    let w = *w as f64;
                    if dbsf {
                        let xs: Vec<f64> = hits.iter().map(|h| h.1 as f64).collect();
                        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                        let sd = (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>()
                            / xs.len() as f64)
                            .sqrt();
                        let mut n = if sd == 0.0 {
                            0.5
                        } else {
                            ((xs[pos] - (mean - 3.0 * sd)) / (6.0 * sd)).clamp(0.0, 1.0)
                        };
                        if *lower {
                            n = 1.0 - n;
                        }
                        total += w * n;
                    } else {
                        total += w / (rrf_k + (pos + 1) as f64);
                    }
                }
                (id, total)
            })
            .collect();
        out.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    #[test]
    fn rrf_and_dbsf_equal_the_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for round in 0..500 {
            let nb = rng.random_range(1..=4);
            let branches: Vec<RefBranch> = (0..nb)
                .map(|_| {
                    let lower = rng.random_range(0..3) == 0;
                    let n = rng.random_range(0..30);
                    let mut ids: Vec<u64> = (0..n).map(|_| rng.random_range(0..60)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    let mut scores: Vec<f32> = ids
                        .iter()
                        .map(|_| {
                            // Some equal scores on purpose.
                            (rng.random_range(0..40) as f32) / 8.0 - 1.0
                        })
                        .collect();
                    scores.sort_by(|a, b| a.total_cmp(b));
                    if !lower {
                        scores.reverse();
                    }
                    // Order the hits best first, as a search returns them.
                    let mut hits: Vec<(u64, f32)> = ids.into_iter().zip(scores).collect();
                    if round % 2 == 0 {
                        let len = hits.len();
                        for i in 0..len {
                            let j = rng.random_range(i..len);
                            let (a, b) = (hits[i].0, hits[j].0);
                            hits[i].0 = b;
                            hits[j].0 = a;
                        }
                    }
                    let w = [1.0, 0.5, 2.0, 0.0][rng.random_range(0..4)];
                    (hits, lower, w)
                })
                .collect();
            let k = rng.random_range(1..20);
            let pbs: Vec<Vec<pb::ScoredPoint>> = branches
                .iter()
                .map(|b| b.0.iter().map(|&(id, s)| hit(id, s)).collect())
                .collect();
            let bs: Vec<Branch<'_>> = branches
                .iter()
                .zip(&pbs)
                .map(|(b, h)| Branch {
                    hits: h,
                    lower_is_closer: b.1,
                    weight: b.2,
                })
                .collect();
            for (fusion, dbsf) in [(pb::Fusion::Rrf, false), (pb::Fusion::Dbsf, true)] {
                let got: Vec<(u64, f32)> = fuse(&bs, fusion, 60, k)
                    .into_iter()
                    .map(|h| match h.id.unwrap().kind {
                        Some(crate::v1::point_id::Kind::Num(n)) => (n, h.score),
                        _ => unreachable!(),
                    })
                    .collect();
                let want = reference(&branches, dbsf, 60.0, k);
                assert_eq!(got.len(), want.len(), "{fusion:?} round {round}");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g.1 as f64 - w.1).abs() < 1e-6,
                        "{fusion:?} round {round}: {got:?} vs {want:?}"
                    );
                }
                // Ids rank by score; equal fused scores (within float noise) may swap only
                // with each other.
                for (g, w) in got.iter().zip(&want) {
                    if g.0 != w.0 {
                        assert!(
                            (g.1 as f64 - w.1).abs() < 1e-9 || {
                                let wg = want.iter().find(|x| x.0 == g.0);
                                wg.is_some_and(|x| (x.1 - w.1).abs() < 1e-9)
                            }
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rrf_by_hand() {
        let a = [hit(1, 0.9), hit(2, 0.8), hit(3, 0.1)];
        let b = [hit(3, 5.0), hit(1, 1.0)];
        let bs = [
            Branch {
                hits: &a,
                lower_is_closer: false,
                weight: 1.0,
            },
            Branch {
                hits: &b,
                lower_is_closer: false,
                weight: 1.0,
            },
        ];
        let got = fuse(&bs, pb::Fusion::Rrf, 60, 10);
        let ids: Vec<String> = got
            .iter()
            .map(|h| h.id.as_ref().unwrap().to_string())
            .collect();
        // 1: 1/61 + 1/62; 3: 1/63 + 1/61; 2: 1/62.
        assert_eq!(ids, ["1", "3", "2"]);
        assert!((got[0].score as f64 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
    }
}
