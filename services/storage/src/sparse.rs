//! Sparse vectors: a segment's columns of them ([`SparseColumns`]), the inverted index of a
//! sealed segment ([`SparseIndex`]), and the exact search by dot product over a segment
//! ([`search_segment`]).
//!
//! The search is exact; its pruning only skips points that cannot enter the results. The
//! query's indices are taken in descending order of the most each can add to a score (its
//! `bound`: the query's weight times the posting list's largest or smallest weight, never
//! below 0), and each list's points are scored exactly, by their stored vectors, once. With
//! `θ` the k-th best score so far, a point not scored yet appears only in the lists left, so
//! it scores at most the sum of their bounds: once that sum (plus a margin for the rounding
//! of a score summed in f32) is below `θ`, the search stops.

use crate::model::{SparseVector, SparseVectors};
use std::collections::{BTreeMap, HashMap};

/// A segment's sparse vectors, one column per name, rows aligned with the segment's slots.
/// Rows past a column's end are empty (a segment whose points carry no sparse vector of a
/// name holds no column of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseColumns {
    cols: BTreeMap<String, Vec<SparseVector>>,
}

impl SparseColumns {
    /// Whether no row holds a vector.
    pub fn is_empty(&self) -> bool {
        self.cols
            .values()
            .all(|c| c.iter().all(SparseVector::is_empty))
    }

    /// The vectors of slot `off`, by name.
    pub fn row(&self, off: usize) -> SparseVectors {
        self.cols
            .iter()
            .filter_map(|(name, c)| c.get(off).filter(|v| !v.is_empty()).map(|v| (name, v)))
            .map(|(name, v)| (name.clone(), v.clone()))
            .collect()
    }

    /// Give slot `off` exactly the vectors of `row` (the others of the slot emptied).
    pub fn set(&mut self, off: usize, row: SparseVectors) {
        for c in self.cols.values_mut() {
            if let Some(v) = c.get_mut(off) {
                *v = SparseVector::default();
            }
        }
        for (name, v) in row {
            if v.is_empty() {
                continue;
            }
            let c = self.cols.entry(name).or_default();
            if c.len() <= off {
                c.resize(off + 1, SparseVector::default());
            }
            c[off] = v;
        }
    }

    /// Give slot `off` the vectors slot `from_off` has in `from`.
    pub fn copy_row(&mut self, off: usize, from: &SparseColumns, from_off: usize) {
        if !from.cols.is_empty() || !self.cols.is_empty() {
            self.set(off, from.row(from_off));
        }
    }

    /// The rows of `name` (shorter than the segment when its last slots have none).
    pub fn column(&self, name: &str) -> &[SparseVector] {
        self.cols.get(name).map_or(&[], Vec::as_slice)
    }

    /// The names that have a column, and their rows.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &[SparseVector])> + '_ {
        self.cols.iter().map(|(n, c)| (n.as_str(), c.as_slice()))
    }

    /// Heap bytes it holds.
    pub fn bytes(&self) -> usize {
        self.cols
            .iter()
            .map(|(n, c)| {
                n.len()
                    + c.capacity() * std::mem::size_of::<SparseVector>()
                    + c.iter().map(SparseVector::bytes).sum::<usize>()
            })
            .sum()
    }
}

/// One index's postings in a sealed segment: the slots whose vector has it, ascending, and
/// the extremes of their weights there (points are scored by their stored vectors).
#[derive(Debug, Default)]
struct Postings {
    slots: Vec<u32>,
    max: f32,
    min: f32,
}

/// The inverted index of one sparse vector name in a sealed segment (built when first
/// searched; a sealed segment's vectors never change).
#[derive(Debug, Default)]
pub struct SparseIndex {
    postings: HashMap<u32, Postings>,
}

impl SparseIndex {
    pub fn build(column: &[SparseVector]) -> Self {
        let mut postings: HashMap<u32, Postings> = HashMap::new();
        for (off, v) in column.iter().enumerate() {
            for (&i, &w) in v.indices.iter().zip(&v.values) {
                let p = postings.entry(i).or_insert_with(|| Postings {
                    max: f32::NEG_INFINITY,
                    min: f32::INFINITY,
                    ..Default::default()
                });
                p.slots.push(off as u32);
                p.max = p.max.max(w);
                p.min = p.min.min(w);
            }
        }
        SparseIndex { postings }
    }

    /// Heap bytes it holds (about).
    pub fn bytes(&self) -> usize {
        self.postings
            .values()
            .map(|p| 48 + p.slots.capacity() * 4)
            .sum()
    }
}

/// The k best points so far of a sparse search: the k-th best score is `θ`.
pub trait Threshold {
    /// The score a point must beat to enter the results (`None` while fewer than k).
    fn threshold(&self) -> Option<f32>;
    /// Offer slot `off` of the segment with `score`.
    fn offer(&mut self, off: u32, score: f32);
}

/// What a sparse search of one segment did: points scored, posting entries of the query's
/// indices.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub scored: u64,
    pub postings: u64,
}

/// Search a segment by `q` through `index`, scoring with the stored `column`; `accept` says
/// whether a slot may be returned (live, and matching the filter). Every accepted slot that
/// shares an index with `q` and whose score can still enter `top` is offered, once.
pub fn search_segment(
    q: &SparseVector,
    index: &SparseIndex,
    column: &[SparseVector],
    accept: &dyn Fn(usize) -> bool,
    top: &mut dyn Threshold,
) -> Work {
    let mut work = Work::default();
    // The query's indices the segment has, with the most each can add to a score and the
    // largest size of a product (for the rounding margin below).
    let mut terms: Vec<(f64, f64, &Postings)> = q
        .indices
        .iter()
        .zip(&q.values)
        .filter_map(|(i, &w)| {
            let p = index.postings.get(i)?;
            let (hi, lo) = (f64::from(w * p.max), f64::from(w * p.min));
            Some((hi.max(lo).max(0.0), hi.abs().max(lo.abs()), p))
        })
        .collect();
    work.postings = terms.iter().map(|t| t.2.slots.len() as u64).sum();
    if terms.is_empty() {
        return work;
    }
    // Largest bound first: the lists most likely to hold the best points set θ early.
    terms.sort_by(|a, b| b.0.total_cmp(&a.0));
    // rest[j]: the most the lists from j on can add to a point's score, in f64. A score is
    // summed in f32 (`SparseVector::dot`), which may round it above the exact sum by up to
    // (terms + 1) ε times the sum of the products' sizes: the margin keeps a point that
    // rounding lifts to θ from being skipped.
    let mut rest = vec![0.0f64; terms.len() + 1];
    for j in (0..terms.len()).rev() {
        rest[j] = rest[j + 1] + terms[j].0;
    }
    let size: f64 = terms.iter().map(|t| t.1).sum();
    let margin = (terms.len() as f64 + 1.0) * f64::from(f32::EPSILON) * size;
    let mut seen = vec![0u64; column.len().div_ceil(64)];
    for (j, (_, _, p)) in terms.iter().enumerate() {
        // A point not scored yet is only in lists j.. and scores at most rest[j]: when
        // that is below θ, none of them can enter the top k.
        if top
            .threshold()
            .is_some_and(|theta| rest[j] + margin < f64::from(theta))
        {
            break;
        }
        for &off in &p.slots {
            let (word, bit) = (off as usize / 64, 1u64 << (off % 64));
            if seen[word] & bit != 0 {
                continue;
            }
            seen[word] |= bit;
            let off = off as usize;
            if !accept(off) {
                continue;
            }
            let (s, shared) = q.dot(&column[off]);
            work.scored += 1;
            if shared > 0 {
                top.offer(off as u32, s);
            }
        }
    }
    work
}

/// Search the slots of a segment without an index (the appendable one): every accepted slot
/// that shares an index with `q` is offered.
pub fn scan_segment(
    q: &SparseVector,
    column: &[SparseVector],
    accept: &dyn Fn(usize) -> bool,
    top: &mut dyn Threshold,
) -> Work {
    let mut work = Work::default();
    for (off, v) in column.iter().enumerate() {
        if v.is_empty() || !accept(off) {
            continue;
        }
        let (s, shared) = q.dot(v);
        work.scored += 1;
        // The entries the query's indices would have in postings of this segment.
        work.postings += shared as u64;
        if shared > 0 {
            top.offer(off as u32, s);
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Top(Vec<(u32, f32)>, usize);
    impl Threshold for Top {
        fn threshold(&self) -> Option<f32> {
            (self.0.len() == self.1)
                .then(|| self.0.iter().map(|x| x.1).fold(f32::INFINITY, f32::min))
        }
        fn offer(&mut self, off: u32, score: f32) {
            self.0.push((off, score));
            self.0.sort_by(|a, b| b.1.total_cmp(&a.1));
            self.0.truncate(self.1);
        }
    }

    #[test]
    fn a_score_rounded_above_the_bounds_sum_is_not_pruned() {
        // Summed in f32 in index order, A scores 1 + 5u; B's list (bound 1 + 4u) comes
        // first and sets θ; the bounds of A's other lists, summed the other way, come to
        // 1 + 3u in f32: without the margin the search stopped before A.
        let u = f32::EPSILON;
        let a = SparseVector {
            indices: vec![0, 1, 2, 3, 4, 5],
            values: vec![1.0, 0.6 * u, 0.6 * u, 0.6 * u, 0.6 * u, 0.6 * u],
        };
        let b = SparseVector {
            indices: vec![100],
            values: vec![1.0 + 4.0 * u],
        };
        let q = SparseVector {
            indices: vec![0, 1, 2, 3, 4, 5, 100],
            values: vec![1.0; 7],
        };
        let column = vec![a.clone(), b.clone()];
        let index = SparseIndex::build(&column);
        let mut top = Top(Vec::new(), 1);
        search_segment(&q, &index, &column, &|_| true, &mut top);
        let mut scan = Top(Vec::new(), 1);
        scan_segment(&q, &column, &|_| true, &mut scan);
        assert_eq!(top.0, scan.0);
        assert!(q.dot(&a).0 > q.dot(&b).0);
        assert_eq!(top.0[0].0, 0);
    }
}
