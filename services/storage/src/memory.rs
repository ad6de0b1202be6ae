//! An in-memory collection searched exactly: the reference implementation of
//! [`CollectionStore`], used by tests as ground truth and by the engine's appendable segment.

use crate::distance::Ranked;
use crate::distance::{normalize, normalize_cosine, rank_key, score};
use crate::error::Result;
use crate::filter::Filter;
use crate::model::*;
use crate::store::CollectionStore;
use crate::store::{Hit, Include, ScrollParams, SearchInfo, SearchParams};
use parking_lot::RwLock;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Inner {
    /// Slot per point ever written; a slot is reused by an overwrite of the same key.
    vectors: Vec<f32>,
    keys: Vec<PointKey>,
    payloads: Vec<Payload>,
    sparse: Vec<SparseVectors>,
    named: Vec<NamedVectors>,
    alive: Vec<bool>,
    free: Vec<usize>,
    by_key: BTreeMap<PointKey, usize>,
}

pub struct MemoryCollection {
    spec: CollectionSpec,
    inner: RwLock<Inner>,
    version: AtomicU64,
}

impl MemoryCollection {
    /// Store normalized points.
    fn write(&self, points: Vec<PointRecord>) -> Result<u64> {
        let dim = self.spec.dimension as usize;
        let mut guard = self.inner.write();
        let g = &mut *guard;
        for mut p in points {
            // Stored as the datatype of each vector stores it.
            let round = |v: &mut [f32]| {
                v.iter_mut()
                    .for_each(|x| *x = crate::distance::f16_to_f32(crate::distance::f32_to_f16(*x)))
            };
            if self.spec.datatype == Datatype::Float16 {
                round(&mut p.vector);
            }
            for (name, v) in &mut p.named {
                if self.spec.vectors.get(name).map(|s| s.datatype) == Some(Datatype::Float16) {
                    round(v);
                }
            }
            let slot = match g.by_key.get(&p.key) {
                Some(&s) => s,
                None => match g.free.pop() {
                    Some(s) => s,
                    None => {
                        let len = g.vectors.len();
                        g.vectors.resize(len + dim, 0.0);
                        g.keys.push(p.key.clone());
                        g.payloads.push(Payload::new());
                        g.sparse.push(SparseVectors::new());
                        g.named.push(NamedVectors::new());
                        g.alive.push(false);
                        g.keys.len() - 1
                    }
                },
            };
            g.vectors[slot * dim..(slot + 1) * dim].copy_from_slice(&p.vector);
            g.keys[slot] = p.key.clone();
            g.payloads[slot] = p.payload;
            g.sparse[slot] = p.sparse;
            g.named[slot] = p.named;
            g.alive[slot] = true;
            g.by_key.insert(p.key, slot);
        }
        Ok(self.version.fetch_add(1, Ordering::AcqRel) + 1)
    }

    pub fn new(spec: CollectionSpec) -> Self {
        Self {
            spec,
            inner: RwLock::new(Inner::default()),
            version: AtomicU64::new(0),
        }
    }

    fn point(inner: &Inner, slot: usize, dim: usize, include: Include) -> StoredPoint {
        StoredPoint {
            key: inner.keys[slot].clone(),
            payload: include.payload.then(|| inner.payloads[slot].clone()),
            vector: include
                .vector
                .then(|| inner.vectors[slot * dim..(slot + 1) * dim].to_vec()),
            sparse: if include.vector {
                inner.sparse[slot].clone()
            } else {
                SparseVectors::new()
            },
            named: if include.vector {
                inner.named[slot].clone()
            } else {
                NamedVectors::new()
            },
        }
    }
}

impl CollectionStore for MemoryCollection {
    fn stats(&self) -> CollectionStats {
        let n = self.inner.read().by_key.len() as u64;
        CollectionStats {
            spec: self.spec.clone(),
            point_count: n,
            indexed_point_count: 0,
            segment_count: 1,
            version: self.version.load(Ordering::Acquire),
            tier: Tier::Hot,
        }
    }

    fn upsert(&self, mut points: Vec<PointRecord>) -> Result<u64> {
        for p in &mut points {
            normalize_cosine(&self.spec, &mut p.vector, &mut p.named);
        }
        self.write(points)
    }

    fn update_vectors(&self, updates: &[VectorUpdate]) -> Result<(u64, u64)> {
        // The vectors given are normalized as an upsert's; those kept already are.
        let mut updates = updates.to_vec();
        for u in &mut updates {
            normalize_cosine(
                &self.spec,
                u.vector.as_deref_mut().unwrap_or(&mut []),
                &mut u.named,
            );
        }
        let points = self.resolve_vectors(&updates)?;
        let n = points.len() as u64;
        Ok((n, self.write(points)?))
    }

    fn delete(&self, keys: &[PointKey], filter: Option<&Filter>) -> Result<(u64, u64)> {
        let mut g = self.inner.write();
        let mut victims: Vec<usize> = keys
            .iter()
            .filter_map(|k| g.by_key.get(k).copied())
            .collect();
        if let Some(f) = filter {
            victims.extend(
                g.by_key
                    .values()
                    .copied()
                    .filter(|&s| f.matches(&g.keys[s], &g.payloads[s])),
            );
        }
        victims.sort_unstable();
        victims.dedup();
        for &s in &victims {
            let key = g.keys[s].clone();
            g.by_key.remove(&key);
            g.alive[s] = false;
            g.payloads[s] = Payload::new();
            g.free.push(s);
        }
        Ok((
            victims.len() as u64,
            self.version.fetch_add(1, Ordering::AcqRel) + 1,
        ))
    }

    fn resolve_payloads(
        &self,
        keys: &[PointKey],
        filter: Option<&Filter>,
        change: &PayloadChange,
    ) -> Result<Vec<(PointKey, Payload)>> {
        let g = self.inner.read();
        let mut named: Vec<PointKey> = keys
            .iter()
            .filter(|k| g.by_key.contains_key(k))
            .cloned()
            .collect();
        if let Some(f) = filter {
            named.extend(
                g.by_key
                    .iter()
                    .filter(|(k, s)| f.matches(k, &g.payloads[**s]))
                    .map(|(k, _)| k.clone()),
            );
        }
        named.sort_unstable();
        named.dedup();
        Ok(named
            .into_iter()
            .map(|k| {
                let mut p = g.payloads[g.by_key[&k]].clone();
                change.apply(&mut p);
                (k, p)
            })
            .collect())
    }

    fn set_payloads(&self, payloads: Vec<(PointKey, Payload)>) -> Result<(u64, u64)> {
        let mut g = self.inner.write();
        let mut n = 0;
        for (k, p) in payloads {
            if let Some(&s) = g.by_key.get(&k) {
                g.payloads[s] = p;
                n += 1;
            }
        }
        let version = if n == 0 {
            self.version.load(Ordering::Acquire)
        } else {
            self.version.fetch_add(1, Ordering::AcqRel) + 1
        };
        Ok((n, version))
    }

    fn search(&self, params: &SearchParams) -> Result<(Vec<Hit>, SearchInfo)> {
        let dim = self.spec.dimension as usize;
        let metric = params.metric(&self.spec);
        let mut q = params.vector.clone();
        if metric == Metric::Cosine {
            normalize(&mut q);
        }
        let g = self.inner.read();
        let mut heap: BinaryHeap<Ranked<usize>> = BinaryHeap::with_capacity(params.k + 1);
        let mut scanned = 0u64;
        for slot in 0..g.keys.len() {
            if !g.alive[slot] {
                continue;
            }
            if let Some(f) = &params.filter
                && !f.matches(&g.keys[slot], &g.payloads[slot])
            {
                continue;
            }
            scanned += 1;
            let s = match &params.sparse {
                // Only points sharing an index with the query are results.
                Some((name, sq)) => match g.sparse[slot].get(name).map(|v| sq.dot(v)) {
                    Some((s, shared)) if shared > 0 => s,
                    _ => continue,
                },
                None => match &params.vector_name {
                    // Only points with the named vector are results.
                    Some(name) => match g.named[slot].get(name) {
                        Some(v) => score(metric, &q, v),
                        None => continue,
                    },
                    None => score(metric, &q, &g.vectors[slot * dim..(slot + 1) * dim]),
                },
            };
            let r = rank_key(metric, s);
            if heap.len() < params.k {
                heap.push(Ranked(r, slot));
            } else if heap.peek().is_some_and(|w| r < w.0) {
                heap.pop();
                heap.push(Ranked(r, slot));
            }
        }
        let hits = heap
            .into_sorted_vec()
            .into_iter()
            .map(|Ranked(r, slot)| {
                let p = Self::point(&g, slot, dim, params.include);
                Hit {
                    key: p.key,
                    score: rank_key(metric, r),
                    payload: p.payload,
                    vector: p.vector,
                    sparse: p.sparse,
                    named: p.named,
                }
            })
            .collect();
        Ok((
            hits,
            SearchInfo {
                points_exact: scanned,
                points_graph: 0,
                segments_searched: 1,
                ..Default::default()
            },
        ))
    }

    fn get(&self, keys: &[PointKey], include: Include) -> Result<Vec<StoredPoint>> {
        let dim = self.spec.dimension as usize;
        let g = self.inner.read();
        Ok(keys
            .iter()
            .filter_map(|k| g.by_key.get(k))
            .map(|&s| Self::point(&g, s, dim, include))
            .collect())
    }

    fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let g = self.inner.read();
        Ok(match filter {
            None => g.by_key.len() as u64,
            Some(f) => g
                .by_key
                .values()
                .filter(|&&s| f.matches(&g.keys[s], &g.payloads[s]))
                .count() as u64,
        })
    }

    fn scroll(&self, params: &ScrollParams) -> Result<(Vec<StoredPoint>, Option<PointKey>)> {
        use std::ops::Bound;
        let dim = self.spec.dimension as usize;
        let g = self.inner.read();
        Ok(params.page(
            g.by_key.range((params.lower(), Bound::Unbounded)),
            |f, &(_, &s)| f.matches(&g.keys[s], &g.payloads[s]),
            |(_, &s)| Some(Self::point(&g, s, dim, params.include)),
        ))
    }
}
