//! The seam between the gRPC layer and the engine: one collection's operations, and the
//! search request and results they take and give.
//!
//! Every method is synchronous and may block (a write waits for its WAL fsync); the server
//! calls them from the blocking pool. Writes are all-or-nothing: a batch that fails validation
//! changes nothing.

use crate::error::Result;
use crate::filter::Filter;
use crate::model::{
    CollectionSpec, CollectionStats, Metric, NamedVectors, Payload, PayloadChange, PointKey,
    PointRecord, SparseVector, SparseVectors, StoredPoint, VectorUpdate,
};

/// What a read returns of each point besides its id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    pub payload: bool,
    pub vector: bool,
}

impl Include {
    pub const ALL: Include = Include {
        payload: true,
        vector: true,
    };
    pub const VECTOR: Include = Include {
        payload: false,
        vector: true,
    };
    pub const PAYLOAD: Include = Include {
        payload: true,
        vector: false,
    };
}

/// One search.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// The dense query (empty when `sparse` is set).
    pub vector: Vec<f32>,
    /// A search by the sparse vector of this name instead (always exact).
    pub sparse: Option<(String, SparseVector)>,
    /// Search the named dense vector of this name with `vector` instead of the unnamed one.
    pub vector_name: Option<String>,
    pub k: usize,
    pub filter: Option<Filter>,
    pub ef: Option<usize>,
    /// Quantized collections: candidates rescored per result (default: the quantization's).
    pub oversampling: Option<f32>,
    pub include: Include,
    /// Search every point exactly.
    pub exact: bool,
}

impl SearchParams {
    /// The metric the search scores by: dot product for a sparse search, else that of the
    /// dense vector it reads (the named one, or the collection's).
    pub fn metric(&self, spec: &CollectionSpec) -> Metric {
        match (&self.sparse, &self.vector_name) {
            (Some(_), _) => Metric::Dot,
            (None, Some(n)) => spec.vectors.get(n).map_or(spec.metric, |v| v.metric),
            (None, None) => spec.metric,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub key: PointKey,
    pub score: f32,
    pub payload: Option<Payload>,
    pub vector: Option<Vec<f32>>,
    /// With the vector: its sparse vectors (empty otherwise).
    pub sparse: SparseVectors,
    /// With the vector: its named dense vectors (empty otherwise).
    pub named: NamedVectors,
}

/// How a search was served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchInfo {
    pub points_exact: u64,
    pub points_graph: u64,
    pub segments_searched: u64,
    /// Collection version the result was computed at (0 with `epoch` 0: unknown).
    pub version: u64,
    /// Incarnation of the collection; 0 = unknown, not cacheable.
    pub epoch: u64,
    /// The `ef` of the graph searches (the largest, when segments differed); 0 when no graph
    /// was searched.
    pub ef: u64,
    /// Candidates of a walk over quantized codes rescored with the vectors (the most of any
    /// segment); 0 when no quantized graph was searched.
    pub rescored: u64,
    /// A sparse search: the points it scored, and the posting entries of the query's indices.
    pub sparse_scored: u64,
    pub sparse_postings: u64,
}

impl SearchInfo {
    /// Add the counts of a part of the same search (searched on another thread).
    pub fn merge(&mut self, part: &SearchInfo) {
        self.points_exact += part.points_exact;
        self.points_graph += part.points_graph;
        self.segments_searched += part.segments_searched;
        self.ef = self.ef.max(part.ef);
        self.rescored = self.rescored.max(part.rescored);
        self.sparse_scored += part.sparse_scored;
        self.sparse_postings += part.sparse_postings;
    }
}

pub trait CollectionStore: Send + Sync {
    fn stats(&self) -> CollectionStats;

    /// Apply a validated batch; returns once it is durable, with its sequence number.
    /// Duplicate keys inside one batch: the last one wins.
    fn upsert(&self, points: Vec<PointRecord>) -> Result<u64>;

    /// Delete the given keys and every point matching `filter`; returns (deleted, sequence).
    fn delete(&self, keys: &[PointKey], filter: Option<&Filter>) -> Result<(u64, u64)>;

    /// Change the payloads of the given keys and of every point matching `filter`, keeping
    /// their vectors, in one durable write that no other write can come between; returns
    /// (points changed, sequence). Keys that do not exist are skipped. This default leaves
    /// a gap between the two steps: a store with concurrent writers closes it.
    fn update_payload(
        &self,
        keys: &[PointKey],
        filter: Option<&Filter>,
        change: &PayloadChange,
    ) -> Result<(u64, u64)> {
        let payloads = self.resolve_payloads(keys, filter, change)?;
        self.set_payloads(payloads)
    }

    /// The whole payloads an [`Self::update_payload`] would give, point by point (in key
    /// order), changing nothing.
    fn resolve_payloads(
        &self,
        keys: &[PointKey],
        filter: Option<&Filter>,
        change: &PayloadChange,
    ) -> Result<Vec<(PointKey, Payload)>>;

    /// Give these points these whole payloads, keeping their vectors, in one durable write;
    /// returns (points changed, sequence). Keys that do not exist are skipped. Applying the
    /// same payloads again changes nothing.
    fn set_payloads(&self, payloads: Vec<(PointKey, Payload)>) -> Result<(u64, u64)>;

    /// The whole points an [`Self::update_vectors`] of validated `updates` makes (each
    /// point's payload and vectors with the given ones replacing its own), changing nothing;
    /// `PointNotFound` for the first point that does not exist.
    fn resolve_vectors(&self, updates: &[VectorUpdate]) -> Result<Vec<PointRecord>> {
        let keys: Vec<PointKey> = updates.iter().map(|u| u.key.clone()).collect();
        let mut stored: std::collections::HashMap<PointKey, StoredPoint> = self
            .get(&keys, Include::ALL)?
            .into_iter()
            .map(|p| (p.key.clone(), p))
            .collect();
        updates
            .iter()
            .map(|u| match stored.remove(&u.key) {
                Some(p) => {
                    let r = u.apply(p);
                    // A later update of the same point builds on this one.
                    stored.insert(r.key.clone(), record_as_stored(&r));
                    Ok(r)
                }
                None => Err(crate::error::StorageError::PointNotFound {
                    collection: self.stats().spec.name,
                    id: u.key.to_string(),
                }),
            })
            .collect()
    }

    /// Replace the given vectors of existing points (validated `updates`), keeping their
    /// other vectors and payloads, in one durable write; returns (points updated, sequence).
    /// Nothing changes when a point does not exist. This default leaves a gap between
    /// reading and writing: a store with concurrent writers closes it.
    fn update_vectors(&self, updates: &[VectorUpdate]) -> Result<(u64, u64)> {
        let points = self.resolve_vectors(updates)?;
        let n = points.len() as u64;
        Ok((n, self.upsert(points)?))
    }

    fn search(&self, params: &SearchParams) -> Result<(Vec<Hit>, SearchInfo)>;

    /// Seal what is still scanned exactly so that it gets indexed now; with `wait_indexed`,
    /// return only once every sealed segment has its graph. Returns the live points sealed.
    /// Stores without segments have nothing to seal.
    fn flush(&self, _wait_indexed: bool) -> Result<u64> {
        Ok(0)
    }

    /// (epoch, version) of the collection now, read as cheaply as possible, for a caller that
    /// holds a result computed at some (epoch, version) and wants to know whether it is still
    /// current. `None` when the store cannot tell (its results are then never reused).
    fn version_token(&self) -> Option<(u64, u64)> {
        None
    }

    /// Points in the order of `keys`; missing keys are skipped.
    fn get(&self, keys: &[PointKey], include: Include) -> Result<Vec<StoredPoint>>;

    fn count(&self, filter: Option<&Filter>) -> Result<u64>;

    /// Up to `limit` matching points with keys strictly after `after`, in key order, and the
    /// key to continue from when there are more.
    fn scroll(&self, params: &ScrollParams) -> Result<(Vec<StoredPoint>, Option<PointKey>)>;
}

/// A point to write as the point read back.
fn record_as_stored(r: &PointRecord) -> StoredPoint {
    StoredPoint {
        key: r.key.clone(),
        payload: Some(r.payload.clone()),
        vector: Some(r.vector.clone()),
        sparse: r.sparse.clone(),
        named: r.named.clone(),
    }
}

/// One page of a Scroll.
#[derive(Debug, Clone, Default)]
pub struct ScrollParams {
    pub filter: Option<Filter>,
    /// Most points in the page.
    pub limit: usize,
    /// Continue strictly after this key.
    pub after: Option<PointKey>,
    pub include: Include,
}

impl ScrollParams {
    /// The page of `candidates` (in key order) that starts after `self.after`: those
    /// `self.filter` keeps, at most `self.limit`, made into points by `point`; and the key to
    /// continue from when there are more. `matches` tells whether a candidate passes a filter.
    pub fn page<T>(
        &self,
        candidates: impl Iterator<Item = T>,
        matches: impl Fn(&Filter, &T) -> bool,
        mut point: impl FnMut(T) -> Option<StoredPoint>,
    ) -> (Vec<StoredPoint>, Option<PointKey>) {
        let mut out = Vec::with_capacity(self.limit.min(1024));
        let mut more = false;
        for c in candidates {
            if self.filter.as_ref().is_some_and(|f| !matches(f, &c)) {
                continue;
            }
            if out.len() == self.limit {
                more = true;
                break;
            }
            out.extend(point(c));
        }
        let next = if more {
            out.last().map(|p| p.key.clone())
        } else {
            None
        };
        (out, next)
    }

    /// The lower bound of the page's keys.
    pub fn lower(&self) -> std::ops::Bound<PointKey> {
        self.after
            .clone()
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded)
    }
}
