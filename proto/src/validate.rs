//! Checks the front doors (ingest, query) run before forwarding, so a bad request is refused
//! at the edge with a message a person can act on. Storage re-checks everything that needs the
//! collection (dimension, filter semantics). The limits and the name rule are in
//! [`crate::limits`], shared with storage.

use crate::limits;
use crate::v1 as pb;
use std::ops::RangeInclusive;
use tonic::Status;

pub fn collection_name(name: &str) -> Result<(), Status> {
    limits::check_name(name).map_err(|p| Status::invalid_argument(p.to_string()))
}

fn in_range(what: &'static str, range: &RangeInclusive<u64>, got: u64) -> Result<(), Status> {
    limits::check_range(what, range, got).map_err(|p| Status::invalid_argument(p.to_string()))
}

/// A filter's size: at most [`limits::MAX_FILTER_DEPTH`] levels and
/// [`limits::MAX_FILTER_CONDITIONS`] conditions (checked before anything walks it deeper).
pub fn filter(f: Option<&pb::Filter>) -> Result<(), Status> {
    fn walk(f: &pb::Filter, depth: usize, conditions: &mut usize) -> Result<(), Status> {
        if depth > limits::MAX_FILTER_DEPTH {
            return Err(Status::invalid_argument(format!(
                "filter is nested deeper than {} levels; flatten it",
                limits::MAX_FILTER_DEPTH
            )));
        }
        let min = f.min_should.iter().flat_map(|m| &m.conditions);
        for c in f.must.iter().chain(&f.should).chain(&f.must_not).chain(min) {
            *conditions += 1;
            if *conditions > limits::MAX_FILTER_CONDITIONS {
                return Err(Status::invalid_argument(format!(
                    "filter has more than {} conditions; split the request or use any_of",
                    limits::MAX_FILTER_CONDITIONS
                )));
            }
            if let Some(pb::condition::Condition::Filter(inner)) = &c.condition {
                walk(inner, depth + 1, conditions)?;
            }
        }
        Ok(())
    }
    match f {
        Some(f) => walk(f, 1, &mut 0),
        None => Ok(()),
    }
}

pub fn finite_vector(v: &[f32], what: &dyn std::fmt::Display) -> Result<(), Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{what}: vector is empty")));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Status::invalid_argument(format!(
            "{what}: component {i} is {}; vectors must be finite",
            v[i]
        )));
    }
    Ok(())
}

pub fn point_id(id: Option<&pb::PointId>, what: &dyn std::fmt::Display) -> Result<(), Status> {
    match id.and_then(|i| i.kind.as_ref()) {
        Some(_) => Ok(()),
        None => Err(Status::invalid_argument(format!(
            "{what}: id is missing; set `num` or `uuid`"
        ))),
    }
}

/// An UpdatePayload: the points it names (ids and/or a filter) and what it changes. The
/// storage node checks the same again (its own callers are not only ingest).
pub fn update_payload(req: &pb::UpdatePayloadRequest) -> Result<(), Status> {
    use pb::update_payload_request::Change;
    collection_name(&req.collection)?;
    filter(req.filter.as_ref())?;
    for id in &req.ids {
        point_id(Some(id), &"update_payload")?;
    }
    let no_filter = req
        .filter
        .as_ref()
        .is_none_or(|f| f.must.is_empty() && f.should.is_empty() && f.must_not.is_empty());
    if req.ids.is_empty() && no_filter {
        return Err(Status::invalid_argument(
            "update_payload needs ids or a non-empty filter naming the points to change",
        ));
    }
    let ok = match &req.change {
        Some(Change::Set(p)) => !p.fields.is_empty(),
        Some(Change::Overwrite(_)) => true,
        Some(Change::DeleteKeys(k)) => !k.keys.is_empty() && k.keys.iter().all(|k| !k.is_empty()),
        Some(Change::Clear(c)) => *c,
        None => false,
    };
    if !ok {
        return Err(Status::invalid_argument(
            "update_payload needs a change: `set` (at least one key), `overwrite`, `delete_keys` (at least one non-empty key) or `clear` = true",
        ));
    }
    Ok(())
}

/// Limits of one write.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_points: usize,
    pub max_bytes: usize,
}

impl BatchLimits {
    /// A write of `points` points in `encoded_len` bytes: RESOURCE_EXHAUSTED over either limit.
    fn check(&self, points: usize, encoded_len: usize) -> Result<(), Status> {
        if points > self.max_points {
            return Err(Status::resource_exhausted(format!(
                "batch has {points} points, over the limit of {}; split it into smaller batches",
                self.max_points
            )));
        }
        if encoded_len > self.max_bytes {
            return Err(Status::resource_exhausted(format!(
                "batch is {encoded_len} bytes, over the limit of {} bytes; split it into smaller batches",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// How a message names point #`i` of a write (formatted only when a message is made).
struct PointWhat<'a>(usize, Option<&'a pb::PointId>);

impl std::fmt::Display for PointWhat<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.1.map(|x| x.to_string()).unwrap_or_default();
        write!(f, "point #{} (id {id})", self.0)
    }
}

pub fn upsert(
    req: &pb::UpsertRequest,
    limits: BatchLimits,
    encoded_len: usize,
) -> Result<(), Status> {
    collection_name(&req.collection)?;
    if req.points.is_empty() {
        return Err(Status::invalid_argument(
            "upsert batch is empty; send at least one point",
        ));
    }
    limits.check(req.points.len(), encoded_len)?;
    let dim = req.points[0].vector.len();
    for (i, p) in req.points.iter().enumerate() {
        let what = PointWhat(i, p.id.as_ref());
        point_id(p.id.as_ref(), &what)?;
        finite_vector(&p.vector, &what)?;
        for (name, v) in &p.sparse {
            sparse(name, v, &what)?;
        }
        for (name, v) in &p.vectors {
            named(name, &v.values, &what)?;
        }
        if p.vector.len() != dim {
            return Err(Status::invalid_argument(format!(
                "{what}: vector has {} components but point #0 has {dim}; all vectors of a collection have its dimension",
                p.vector.len()
            )));
        }
    }
    Ok(())
}

/// An UpdateVectors: its points (at most a batch's, each naming a point and giving at least
/// one vector, every vector as an upsert's would be) and its size.
pub fn update_vectors(
    req: &pb::UpdateVectorsRequest,
    limits: BatchLimits,
    encoded_len: usize,
) -> Result<(), Status> {
    collection_name(&req.collection)?;
    if req.points.is_empty() {
        return Err(Status::invalid_argument(
            "update_vectors needs at least one point with the vectors to replace",
        ));
    }
    limits.check(req.points.len(), encoded_len)?;
    for (i, p) in req.points.iter().enumerate() {
        let what = PointWhat(i, p.id.as_ref());
        point_id(p.id.as_ref(), &what)?;
        let given = !p.vector.is_empty()
            || p.vectors.values().any(|v| !v.values.is_empty())
            || p.sparse
                .values()
                .any(|v| !v.indices.is_empty() || !v.values.is_empty());
        if !given {
            return Err(Status::invalid_argument(format!(
                "{what}: gives no vector to replace"
            )));
        }
        if !p.vector.is_empty() {
            finite_vector(&p.vector, &what)?;
        }
        for (name, v) in &p.vectors {
            named(name, &v.values, &what)?;
        }
        for (name, v) in &p.sparse {
            sparse(name, v, &what)?;
        }
    }
    Ok(())
}

/// A named dense vector `name` carried: its name and finite components (an empty one is the
/// same as none).
pub fn named(name: &str, v: &[f32], what: &dyn std::fmt::Display) -> Result<(), Status> {
    limits::check_vector_name(name)
        .map_err(|p| Status::invalid_argument(format!("{what}: {p}")))?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Status::invalid_argument(format!(
            "{what}: named vector `{name}`: component {i} is {}; vectors must be finite",
            v[i]
        )));
    }
    Ok(())
}

/// A sparse vector `name` carried or searched: its name and its entries.
pub fn sparse(
    name: &str,
    v: &pb::SparseVector,
    what: &dyn std::fmt::Display,
) -> Result<(), Status> {
    limits::check_vector_name(name)
        .map_err(|p| Status::invalid_argument(format!("{what}: {p}")))?;
    limits::check_sparse(&v.indices, &v.values)
        .map_err(|p| Status::invalid_argument(format!("{what}: sparse vector `{name}`: {p}")))
}

pub fn search(req: &pb::SearchRequest) -> Result<(), Status> {
    collection_name(&req.collection)?;
    search_body(req)
}

/// A search but for the collection it names.
fn search_body(req: &pb::SearchRequest) -> Result<(), Status> {
    in_range("k", &limits::K, req.k.into())?;
    if let Some(o) = req.oversampling {
        limits::check_oversampling(o).map_err(|p| Status::invalid_argument(p.to_string()))?;
    }
    filter(req.filter.as_ref())?;
    if !req.vector_name.is_empty() {
        if req.sparse.is_some() {
            return Err(Status::invalid_argument(
                "query: set either `vector_name` or `sparse`, not both",
            ));
        }
        limits::check_vector_name(&req.vector_name)
            .map_err(|p| Status::invalid_argument(format!("query: {p}")))?;
    }
    match &req.sparse {
        Some(q) => {
            if !req.vector.is_empty() {
                return Err(Status::invalid_argument(
                    "query: set either `vector` or `sparse`, not both",
                ));
            }
            let v = q.vector.clone().unwrap_or_default();
            sparse(&q.name, &v, &"query")?;
            if v.indices.is_empty() {
                return Err(Status::invalid_argument(
                    "query: sparse vector has no entries; it would match no point",
                ));
            }
            Ok(())
        }
        None => finite_vector(&req.vector, &"query"),
    }
}

/// A Query: its branches (each a valid search of the same collection), weights, fusion and k.
pub fn query(req: &pb::QueryRequest) -> Result<(), Status> {
    collection_name(&req.collection)?;
    in_range("k", &limits::K, req.k.into())?;
    in_range(
        "branches",
        &limits::QUERY_BRANCHES,
        req.branches.len() as u64,
    )?;
    if let Some(r) = req.rrf_k {
        in_range("rrf_k", &limits::RRF_K, r.into())?;
    }
    if pb::Fusion::try_from(req.fusion).is_err() {
        return Err(Status::invalid_argument(format!(
            "fusion must be RRF or DBSF (or unset for RRF), got {}",
            req.fusion
        )));
    }
    if !req.weights.is_empty() && req.weights.len() != req.branches.len() {
        return Err(Status::invalid_argument(format!(
            "query has {} weights for {} branches; give one per branch or none",
            req.weights.len(),
            req.branches.len()
        )));
    }
    if let Some((i, w)) = req
        .weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
    {
        return Err(Status::invalid_argument(format!(
            "weight #{i} is {w}; weights must be finite and at least 0"
        )));
    }
    for (i, b) in req.branches.iter().enumerate() {
        let at = |e| crate::fusion::in_branch(i, e);
        if !b.collection.is_empty() && b.collection != req.collection {
            return Err(at(Status::invalid_argument(format!(
                "names collection `{}`; every branch searches the Query's collection (leave it empty)",
                b.collection
            ))));
        }
        if b.with_payload || b.with_vector {
            return Err(at(Status::invalid_argument(
                "sets with_payload or with_vector; set them on the Query",
            )));
        }
        search_body(b).map_err(at)?;
    }
    Ok(())
}

/// A metric: COSINE, L2 or DOT; `what` names the field.
fn metric(m: i32, what: &dyn std::fmt::Display) -> Result<(), Status> {
    match pb::Metric::try_from(m) {
        Ok(pb::Metric::Cosine | pb::Metric::L2 | pb::Metric::Dot) => Ok(()),
        _ => Err(Status::invalid_argument(format!(
            "{what} must be COSINE, L2 or DOT, got {m}"
        ))),
    }
}

pub fn create_collection(req: &pb::CreateCollectionRequest) -> Result<(), Status> {
    collection_name(&req.name)?;
    in_range("dimension", &limits::DIMENSION, req.dimension.into())?;
    if req.shards != 0 {
        in_range("shards", &limits::SHARDS, req.shards.into())?;
    }
    if req.replication != 0 {
        in_range("replication", &limits::REPLICATION, req.replication.into())?;
    }
    if req.sparse_vectors.len() > limits::MAX_SPARSE_VECTORS {
        return Err(Status::invalid_argument(format!(
            "collection declares {} sparse vectors, over the limit of {}",
            req.sparse_vectors.len(),
            limits::MAX_SPARSE_VECTORS
        )));
    }
    for (i, name) in req.sparse_vectors.iter().enumerate() {
        limits::check_vector_name(name).map_err(|p| Status::invalid_argument(p.to_string()))?;
        if req.sparse_vectors[..i].contains(name) {
            return Err(Status::invalid_argument(format!(
                "sparse vector `{name}` is declared twice"
            )));
        }
    }
    metric(req.metric, &"metric")?;
    if req.vectors.len() > limits::MAX_NAMED_VECTORS {
        return Err(Status::invalid_argument(format!(
            "collection declares {} named vectors, over the limit of {}",
            req.vectors.len(),
            limits::MAX_NAMED_VECTORS
        )));
    }
    for (name, v) in &req.vectors {
        limits::check_vector_name(name).map_err(|p| Status::invalid_argument(p.to_string()))?;
        if req.sparse_vectors.contains(name) {
            return Err(Status::invalid_argument(format!(
                "`{name}` is declared both as a sparse and as a named dense vector; give each its own name"
            )));
        }
        let at =
            |e: Status| Status::invalid_argument(format!("named vector `{name}`: {}", e.message()));
        in_range("dimension", &limits::DIMENSION, v.dimension.into()).map_err(at)?;
        metric(v.metric, &format_args!("named vector `{name}`: metric"))?;
        storage_kind(v.datatype, v.quantization, v.metric).map_err(at)?;
        if let Some(h) = &v.hnsw {
            if let Some(m) = h.m {
                in_range("m", &limits::M, m.into()).map_err(at)?;
            }
            if let Some(e) = h.ef_construction {
                in_range("ef_construction", &limits::EF_CONSTRUCTION, e.into()).map_err(at)?;
            }
        }
    }
    storage_kind(req.datatype, req.quantization, req.metric)
}

/// A vector's datatype and quantization, for its metric: known values, binary codes only for
/// metrics of angle.
fn storage_kind(datatype: i32, quantization: i32, metric: i32) -> Result<(), Status> {
    if pb::VectorDatatype::try_from(datatype).is_err() {
        return Err(Status::invalid_argument(format!(
            "datatype must be FLOAT32 or FLOAT16 (or unset for FLOAT32), got {datatype}"
        )));
    }
    match pb::Quantization::try_from(quantization) {
        Ok(pb::Quantization::Binary) if metric == pb::Metric::L2 as i32 => {
            Err(Status::invalid_argument(limits::BINARY_NEEDS_ANGLE))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(Status::invalid_argument(format!(
            "quantization must be QUANTIZATION_NONE, INT8 or BINARY (or unset for none), got {quantization}"
        ))),
    }
}
