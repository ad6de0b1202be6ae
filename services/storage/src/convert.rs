//! Proto ↔ domain conversion for the storage service, in one place.

use crate::error::{EmptyRequest, FieldProblem, FilterProblem, Result, StorageError};
use crate::filter::{Condition, Filter, GeoPoint, Match, MinShould, Range, TimeRange};
use crate::model::*;
use crate::objstore::breaker::BreakerStatus;
use crate::objstore::dlq::DlqEntry;
use crate::objstore::error::BreakerState;
use crate::snapshot::SnapshotManifest;
use crate::store::{Hit, Include, SearchParams};
use crate::tier::TierStatus;
use akidb_proto::prost_types::{self, value::Kind};
use akidb_proto::v1 as pb;
use serde_json::Value;

pub fn key_from_pb(id: Option<&pb::PointId>) -> Result<PointKey> {
    match id.and_then(|i| i.kind.as_ref()) {
        Some(pb::point_id::Kind::Num(n)) => Ok(PointKey::Num(*n)),
        Some(pb::point_id::Kind::Uuid(s)) => {
            let u = uuid_parse(s)?;
            Ok(PointKey::Uuid(u))
        }
        None => Err(FieldProblem::MissingPointId.into()),
    }
}

/// Every id of a request, in order.
pub fn keys_from_pb(ids: &[pb::PointId]) -> Result<Vec<PointKey>> {
    ids.iter().map(|i| key_from_pb(Some(i))).collect()
}

fn uuid_parse(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| {
            FieldProblem::NotUuid {
                id: s.to_string(),
                reason: e.to_string(),
            }
            .into()
        })
}

pub fn key_to_pb(k: &PointKey) -> pb::PointId {
    match k {
        PointKey::Num(n) => pb::PointId::num(*n),
        PointKey::Uuid(u) => pb::PointId::uuid(u.clone()),
    }
}

pub fn metric_from_pb(m: i32) -> Result<Metric> {
    match pb::Metric::try_from(m) {
        Ok(pb::Metric::Cosine) => Ok(Metric::Cosine),
        Ok(pb::Metric::L2) => Ok(Metric::L2),
        Ok(pb::Metric::Dot) => Ok(Metric::Dot),
        _ => Err(FieldProblem::Metric(m).into()),
    }
}

pub fn metric_to_pb(m: Metric) -> pb::Metric {
    match m {
        Metric::Cosine => pb::Metric::Cosine,
        Metric::L2 => pb::Metric::L2,
        Metric::Dot => pb::Metric::Dot,
    }
}

pub fn datatype_from_pb(d: i32) -> Result<Datatype> {
    match pb::VectorDatatype::try_from(d) {
        Ok(pb::VectorDatatype::Unspecified | pb::VectorDatatype::Float32) => Ok(Datatype::Float32),
        Ok(pb::VectorDatatype::Float16) => Ok(Datatype::Float16),
        Err(_) => Err(FieldProblem::Datatype(d).into()),
    }
}

pub fn quantization_from_pb(q: i32) -> Result<Quantization> {
    match pb::Quantization::try_from(q) {
        Ok(pb::Quantization::Unspecified | pb::Quantization::None) => Ok(Quantization::None),
        Ok(pb::Quantization::Int8) => Ok(Quantization::Int8),
        Ok(pb::Quantization::Binary) => Ok(Quantization::Binary),
        Err(_) => Err(FieldProblem::Quantization(q).into()),
    }
}

pub fn quantization_to_pb(q: Quantization) -> pb::Quantization {
    match q {
        Quantization::None => pb::Quantization::None,
        Quantization::Int8 => pb::Quantization::Int8,
        Quantization::Binary => pb::Quantization::Binary,
    }
}

pub fn datatype_to_pb(d: Datatype) -> pb::VectorDatatype {
    match d {
        Datatype::Float32 => pb::VectorDatatype::Float32,
        Datatype::Float16 => pb::VectorDatatype::Float16,
    }
}

pub fn tier_to_pb(t: Tier) -> pb::Tier {
    match t {
        Tier::Hot => pb::Tier::Hot,
        Tier::Warm => pb::Tier::Warm,
        Tier::Cold => pb::Tier::Cold,
    }
}

pub fn spec_from_pb(r: &pb::CreateCollectionRequest) -> Result<CollectionSpec> {
    // A node holds one shard as one collection: the cluster's router splits the points.
    if r.shards > 1 {
        return Err(FieldProblem::ShardsNeedCluster(r.shards).into());
    }
    if r.replication > 1 {
        return Err(FieldProblem::ReplicationNeedsCluster(r.replication).into());
    }
    let m = r.m.unwrap_or(DEFAULT_M);
    let ef_construction = r.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION);
    Ok(CollectionSpec {
        name: r.name.clone(),
        dimension: r.dimension,
        metric: metric_from_pb(r.metric)?,
        m,
        ef_construction,
        pinned: r.pin,
        datatype: datatype_from_pb(r.datatype)?,
        quantization: quantization_from_pb(r.quantization)?,
        on_disk: r.on_disk,
        payload_indexes: r
            .payload_indexes
            .iter()
            .map(|(k, &kind)| Ok((k.clone(), index_kind_from_pb(k, kind)?)))
            .collect::<Result<_>>()?,
        sparse_vectors: r.sparse_vectors.iter().cloned().collect(),
        vectors: r
            .vectors
            .iter()
            .map(|(name, v)| {
                let hnsw = v.hnsw.unwrap_or_default();
                Ok((
                    name.clone(),
                    VectorSpec {
                        dimension: v.dimension,
                        metric: metric_from_pb(v.metric)?,
                        m: hnsw.m.unwrap_or(m),
                        ef_construction: hnsw.ef_construction.unwrap_or(ef_construction),
                        datatype: datatype_from_pb(v.datatype)?,
                        quantization: quantization_from_pb(v.quantization)?,
                    },
                ))
            })
            .collect::<Result<_>>()?,
    })
}

fn index_kind_from_pb(key: &str, kind: i32) -> Result<IndexKind> {
    use pb::PayloadIndexKind as P;
    Ok(match P::try_from(kind) {
        Ok(P::PayloadIndexKeyword) => IndexKind::Keyword,
        Ok(P::PayloadIndexInteger) => IndexKind::Integer,
        Ok(P::PayloadIndexFloat) => IndexKind::Float,
        Ok(P::PayloadIndexBool) => IndexKind::Bool,
        Ok(P::PayloadIndexDatetime) => IndexKind::Datetime,
        Ok(P::PayloadIndexGeo) => IndexKind::Geo,
        Ok(P::PayloadIndexText) => IndexKind::Text,
        Ok(P::Unspecified) | Err(_) => {
            return Err(FieldProblem::IndexKind {
                key: key.to_string(),
                kind,
            }
            .into());
        }
    })
}

pub fn index_kind_to_pb(kind: IndexKind) -> pb::PayloadIndexKind {
    use pb::PayloadIndexKind as P;
    match kind {
        IndexKind::Keyword => P::PayloadIndexKeyword,
        IndexKind::Integer => P::PayloadIndexInteger,
        IndexKind::Float => P::PayloadIndexFloat,
        IndexKind::Bool => P::PayloadIndexBool,
        IndexKind::Datetime => P::PayloadIndexDatetime,
        IndexKind::Geo => P::PayloadIndexGeo,
        IndexKind::Text => P::PayloadIndexText,
    }
}

pub fn info_to_pb(s: &CollectionStats) -> pb::CollectionInfo {
    pb::CollectionInfo {
        name: s.spec.name.clone(),
        dimension: s.spec.dimension,
        metric: metric_to_pb(s.spec.metric) as i32,
        point_count: s.point_count,
        tier: tier_to_pb(s.tier) as i32,
        hnsw: Some(pb::HnswConfig {
            m: Some(s.spec.m),
            ef_construction: Some(s.spec.ef_construction),
        }),
        pinned: s.spec.pinned,
        version: s.version,
        indexed_point_count: s.indexed_point_count,
        segment_count: s.segment_count,
        datatype: datatype_to_pb(s.spec.datatype) as i32,
        quantization: quantization_to_pb(s.spec.quantization) as i32,
        on_disk: s.spec.on_disk,
        shards: 1,
        replication: 1,
        payload_indexes: s
            .spec
            .payload_indexes
            .iter()
            .map(|(k, &kind)| (k.clone(), index_kind_to_pb(kind) as i32))
            .collect(),
        sparse_vectors: s.spec.sparse_vectors.iter().cloned().collect(),
        vectors: s
            .spec
            .vectors
            .iter()
            .map(|(name, v)| {
                let params = pb::NamedVectorParams {
                    dimension: v.dimension,
                    metric: metric_to_pb(v.metric) as i32,
                    hnsw: Some(pb::HnswConfig {
                        m: Some(v.m),
                        ef_construction: Some(v.ef_construction),
                    }),
                    datatype: datatype_to_pb(v.datatype) as i32,
                    quantization: quantization_to_pb(v.quantization) as i32,
                };
                (name.clone(), params)
            })
            .collect(),
    }
}

// ---- payloads: google.protobuf.Struct <-> JSON ----

/// What an UpdatePayload changes.
pub fn payload_change_from_pb(
    c: Option<&pb::update_payload_request::Change>,
) -> Result<PayloadChange> {
    use pb::update_payload_request::Change;
    let empty = || StorageError::EmptyRequest(EmptyRequest::PayloadChange);
    Ok(match c {
        Some(Change::Set(p)) if !p.fields.is_empty() => {
            PayloadChange::Set(payload_from_pb(Some(p))?)
        }
        Some(Change::Overwrite(p)) => PayloadChange::Overwrite(payload_from_pb(Some(p))?),
        Some(Change::DeleteKeys(k))
            if !k.keys.is_empty() && k.keys.iter().all(|k| !k.is_empty()) =>
        {
            PayloadChange::DeleteKeys(k.keys.clone())
        }
        Some(Change::Clear(true)) => PayloadChange::Clear,
        _ => return Err(empty()),
    })
}

pub fn payload_from_pb(s: Option<&prost_types::Struct>) -> Result<Payload> {
    let Some(s) = s else {
        return Ok(Payload::new());
    };
    s.fields
        .iter()
        .map(|(k, v)| Ok((k.clone(), value_from_pb(v)?)))
        .collect()
}

fn value_from_pb(v: &prost_types::Value) -> Result<Value> {
    Ok(match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => {
            if !n.is_finite() {
                return Err(FieldProblem::PayloadNotFinite(*n).into());
            }
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                Value::from(*n as i64)
            } else {
                Value::from(*n)
            }
        }
        Some(Kind::StructValue(s)) => Value::Object(payload_from_pb(Some(s))?),
        Some(Kind::ListValue(l)) => {
            Value::Array(l.values.iter().map(value_from_pb).collect::<Result<_>>()?)
        }
    })
}

pub fn payload_to_pb(p: &Payload) -> prost_types::Struct {
    prost_types::Struct {
        fields: p.iter().map(|(k, v)| (k.clone(), value_to_pb(v))).collect(),
    }
}

fn value_to_pb(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(value_to_pb).collect(),
        }),
        Value::Object(o) => Kind::StructValue(payload_to_pb(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

// ---- filters ----

pub fn filter_from_pb(f: Option<&pb::Filter>) -> Result<Option<Filter>> {
    let Some(f) = f else { return Ok(None) };
    let out = filter_inner(f)?;
    crate::validate::filter(&out)?;
    Ok((!out.is_empty()).then_some(out))
}

fn filter_inner(f: &pb::Filter) -> Result<Filter> {
    let conv = |cs: &[pb::Condition]| cs.iter().map(condition_from_pb).collect::<Result<Vec<_>>>();
    let min_should = match &f.min_should {
        None => None,
        Some(m) => Some(MinShould {
            conditions: conv(&m.conditions)?,
            min_count: m.min_count as usize,
        }),
    };
    Ok(Filter {
        must: conv(&f.must)?,
        should: conv(&f.should)?,
        must_not: conv(&f.must_not)?,
        min_should,
    })
}

fn datetime_bound(key: &str, b: &Option<String>) -> Result<Option<i64>> {
    match b {
        None => Ok(None),
        Some(s) => crate::filter::parse_datetime(s).map(Some).ok_or_else(|| {
            FilterProblem::BadDatetime {
                key: key.to_string(),
                value: s.clone(),
            }
            .into()
        }),
    }
}

fn geo_point(key: &str, p: Option<&pb::GeoPoint>, what: &'static str) -> Result<GeoPoint> {
    let p = p.ok_or_else(|| FilterProblem::GeoMissing {
        key: key.to_string(),
        what,
    })?;
    Ok(GeoPoint {
        lat: p.lat,
        lon: p.lon,
    })
}

fn condition_from_pb(c: &pb::Condition) -> Result<Condition> {
    use pb::condition::Condition as C;
    use pb::field_condition::Match as M;
    match c.condition.as_ref() {
        None => Err(FilterProblem::EmptyCondition.into()),
        Some(C::HasId(h)) => {
            let ids = h
                .ids
                .iter()
                .map(|i| key_from_pb(Some(i)))
                .collect::<Result<_>>()?;
            Ok(Condition::HasId(ids))
        }
        Some(C::Filter(f)) => Ok(Condition::Nested(filter_inner(f)?)),
        Some(C::IsEmpty(k)) => Ok(Condition::IsEmpty {
            key: k.key.clone(),
            path: crate::filter::path(&k.key),
        }),
        Some(C::IsNull(k)) => Ok(Condition::IsNull {
            key: k.key.clone(),
            path: crate::filter::path(&k.key),
        }),
        Some(C::ValuesCount(v)) => {
            let r = v.count.unwrap_or_default();
            Ok(Condition::ValuesCount {
                key: v.key.clone(),
                path: crate::filter::path(&v.key),
                count: Range {
                    gt: r.gt,
                    gte: r.gte,
                    lt: r.lt,
                    lte: r.lte,
                },
            })
        }
        Some(C::Field(fc)) => {
            let matcher = match fc.r#match.as_ref() {
                None => {
                    return Err(FilterProblem::NoMatch {
                        key: fc.key.clone(),
                    }
                    .into());
                }
                Some(M::Keyword(k)) => Match::Keyword(k.clone()),
                Some(M::Integer(i)) => Match::Integer(*i),
                Some(M::Boolean(b)) => Match::Bool(*b),
                Some(M::AnyOf(a)) => match (a.keywords.is_empty(), a.integers.is_empty()) {
                    (false, true) => Match::AnyKeyword(a.keywords.iter().cloned().collect()),
                    (true, false) => Match::AnyInteger(a.integers.iter().copied().collect()),
                    _ => {
                        return Err(FilterProblem::AnyOfMixed {
                            key: fc.key.clone(),
                        }
                        .into());
                    }
                },
                Some(M::Range(r)) => Match::Range(Range {
                    gt: r.gt,
                    gte: r.gte,
                    lt: r.lt,
                    lte: r.lte,
                }),
                Some(M::DatetimeRange(r)) => {
                    let k = &fc.key;
                    Match::Datetime(TimeRange {
                        gt: datetime_bound(k, &r.gt)?,
                        gte: datetime_bound(k, &r.gte)?,
                        lt: datetime_bound(k, &r.lt)?,
                        lte: datetime_bound(k, &r.lte)?,
                    })
                }
                Some(M::GeoRadius(g)) => Match::GeoRadius {
                    center: geo_point(&fc.key, g.center.as_ref(), "center")?,
                    meters: g.radius_m,
                },
                Some(M::GeoBoundingBox(b)) => Match::GeoBox {
                    top_left: geo_point(&fc.key, b.top_left.as_ref(), "top_left")?,
                    bottom_right: geo_point(&fc.key, b.bottom_right.as_ref(), "bottom_right")?,
                },
                Some(M::Text(t)) => Match::Text(crate::filter::words(t)),
                Some(M::Phrase(t)) => Match::Phrase(crate::filter::words(t)),
            };
            Ok(Condition::field(&fc.key, matcher))
        }
    }
}

// ---- scroll cursors ----

pub fn cursor_encode(k: &PointKey) -> String {
    akidb_proto::convert::scroll_cursor(&key_to_pb(k))
}

pub fn cursor_decode(s: &str) -> Result<Option<PointKey>> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || StorageError::from(FieldProblem::Cursor(s.to_string()));
    match s.split_once(':') {
        Some(("n", n)) => n.parse().map(|n| Some(PointKey::Num(n))).map_err(|_| bad()),
        Some(("u", u)) => Ok(Some(PointKey::Uuid(uuid_parse(u).map_err(|_| bad())?))),
        _ => Err(bad()),
    }
}

pub fn point_from_pb(p: pb::Point) -> Result<PointRecord> {
    Ok(PointRecord {
        key: key_from_pb(p.id.as_ref())?,
        payload: payload_from_pb(p.payload.as_ref())?,
        vector: p.vector,
        sparse: sparse_map_from_pb(p.sparse),
        named: named_from_pb(p.vectors),
    })
}

/// An UpdateVectors' points (an empty unnamed vector is kept, as are empty named and
/// sparse ones).
pub fn vector_updates_from_pb(points: Vec<pb::PointVectors>) -> Result<Vec<VectorUpdate>> {
    points
        .into_iter()
        .map(|p| {
            Ok(VectorUpdate {
                key: key_from_pb(p.id.as_ref())?,
                vector: (!p.vector.is_empty()).then_some(p.vector),
                named: named_from_pb(p.vectors),
                sparse: sparse_map_from_pb(p.sparse),
            })
        })
        .collect()
}

/// A point to write, as the API carries it.
pub fn record_to_pb(p: PointRecord) -> pb::Point {
    pb::Point {
        id: Some(key_to_pb(&p.key)),
        vector: p.vector,
        payload: Some(payload_to_pb(&p.payload)),
        sparse: sparse_to_pb(p.sparse),
        vectors: named_to_pb(p.named),
    }
}

/// Named dense vectors from the API (an empty one is the same as none).
pub fn named_from_pb(v: std::collections::HashMap<String, pb::DenseVector>) -> NamedVectors {
    v.into_iter()
        .filter(|(_, v)| !v.values.is_empty())
        .map(|(n, v)| (n, v.values))
        .collect()
}

pub fn named_to_pb(v: NamedVectors) -> std::collections::HashMap<String, pb::DenseVector> {
    v.into_iter()
        .map(|(n, values)| (n, pb::DenseVector { values }))
        .collect()
}

/// Sparse vectors by name from the API (an empty one is the same as none).
fn sparse_map_from_pb(v: std::collections::HashMap<String, pb::SparseVector>) -> SparseVectors {
    v.into_iter()
        .filter(|(_, v)| !v.indices.is_empty() || !v.values.is_empty())
        .map(|(n, v)| (n, sparse_from_pb(v)))
        .collect()
}

pub fn sparse_from_pb(v: pb::SparseVector) -> SparseVector {
    SparseVector {
        indices: v.indices,
        values: v.values,
    }
}

pub fn sparse_to_pb(s: SparseVectors) -> std::collections::HashMap<String, pb::SparseVector> {
    s.into_iter()
        .map(|(n, v)| {
            (
                n,
                pb::SparseVector {
                    indices: v.indices,
                    values: v.values,
                },
            )
        })
        .collect()
}

pub fn hit_to_pb(h: Hit) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(key_to_pb(&h.key)),
        score: h.score,
        payload: h.payload.as_ref().map(payload_to_pb),
        vector: h.vector.unwrap_or_default(),
        sparse: sparse_to_pb(h.sparse),
        vectors: named_to_pb(h.named),
    }
}

pub fn stored_to_pb(p: StoredPoint) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(key_to_pb(&p.key)),
        payload: p.payload.as_ref().map(payload_to_pb),
        vector: p.vector.unwrap_or_default(),
        sparse: sparse_to_pb(p.sparse),
        vectors: named_to_pb(p.named),
    }
}

pub fn search_from_pb(r: pb::SearchRequest) -> Result<SearchParams> {
    Ok(SearchParams {
        filter: filter_from_pb(r.filter.as_ref())?,
        sparse: r
            .sparse
            .map(|q| (q.name, sparse_from_pb(q.vector.unwrap_or_default()))),
        vector_name: (!r.vector_name.is_empty()).then_some(r.vector_name),
        vector: r.vector,
        k: r.k as usize,
        ef: r.ef.map(|e| e as usize),
        oversampling: r.oversampling,
        include: Include {
            payload: r.with_payload,
            vector: r.with_vector,
        },
        exact: r.exact,
    })
}

// ---- admin: tiers, snapshots, breaker, dead-letter queue ----

pub fn snapshot_to_pb(m: &SnapshotManifest, uploaded: bool) -> pb::SnapshotInfo {
    pb::SnapshotInfo {
        collection: m.collection.name.clone(),
        id: m.id.clone(),
        sequence: m.sequence,
        created_unix_ms: m.created_unix_ms,
        size_bytes: m.size_bytes(),
        point_count: m.point_count,
        uploaded,
    }
}

pub fn tier_status_to_pb(s: &TierStatus) -> pb::CollectionTierStatus {
    pb::CollectionTierStatus {
        name: s.name.clone(),
        tier: tier_to_pb(s.tier) as i32,
        pinned: s.pinned,
        bytes_in_memory: s.bytes_in_memory,
        bytes_on_disk: s.bytes_on_disk,
        bytes_in_object_store: s.bytes_in_object_store,
        last_access_unix_ms: s.last_access_unix_ms,
        moving_to: s.moving_to.map_or(pb::Tier::Unspecified, tier_to_pb) as i32,
    }
}

fn tier_from_pb(t: i32) -> Result<Tier> {
    match pb::Tier::try_from(t) {
        Ok(pb::Tier::Hot) => Ok(Tier::Hot),
        Ok(pb::Tier::Warm) => Ok(Tier::Warm),
        Ok(pb::Tier::Cold) => Ok(Tier::Cold),
        _ => Err(FieldProblem::Tier(t).into()),
    }
}

pub fn breaker_to_pb(s: &BreakerStatus, remote: bool) -> pb::BreakerStatus {
    pb::BreakerStatus {
        state: match s.state {
            BreakerState::Closed => pb::BreakerState::Closed,
            BreakerState::Open => pb::BreakerState::Open,
            BreakerState::HalfOpen => pb::BreakerState::HalfOpen,
        } as i32,
        consecutive_failures: s.consecutive_failures as u64,
        failure_ratio: s.failure_ratio,
        open_until_unix_ms: s.open_until_unix_ms(),
        remote,
    }
}

pub fn dlq_to_pb(e: DlqEntry) -> pb::DlqEntry {
    pb::DlqEntry {
        id: e.id,
        collection: e.collection,
        object_key: e.key,
        size_bytes: e.size_bytes,
        attempts: e.attempts,
        first_failed_unix_ms: e.first_failed_unix_ms,
        next_retry_unix_ms: e.next_retry_unix_ms,
        last_error: e.last_error,
    }
}

/// The collection and target tier of a Promote or Demote.
pub fn tier_move_from_pb(req: pb::TierMoveRequest) -> Result<(String, Tier)> {
    let to = if req.target == pb::Tier::Unspecified as i32 {
        Err(FieldProblem::TierUnset.into())
    } else {
        tier_from_pb(req.target)
    }?;
    Ok((req.collection, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldProblem;

    #[test]
    fn datatype_is_validated_with_an_actionable_message() {
        let req = |datatype: i32| pb::CreateCollectionRequest {
            name: "c".into(),
            dimension: 4,
            metric: pb::Metric::L2 as i32,
            datatype,
            ..Default::default()
        };
        let spec = spec_from_pb(&req(0)).unwrap();
        assert_eq!(spec.datatype, Datatype::Float32);
        let spec = spec_from_pb(&req(pb::VectorDatatype::Float16 as i32)).unwrap();
        assert_eq!(spec.datatype, Datatype::Float16);
        let err = spec_from_pb(&req(9)).unwrap_err();
        assert!(matches!(
            err,
            StorageError::InvalidField(FieldProblem::Datatype(9))
        ));
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::InvalidArgument
        );
        let status = akidb_proto::validate::create_collection(&req(9)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("FLOAT32 or FLOAT16"));
        assert!(akidb_proto::validate::create_collection(&req(2)).is_ok());
    }

    #[test]
    fn quantization_converts_and_unknown_values_are_refused() {
        let req = |quantization: i32, on_disk: bool| pb::CreateCollectionRequest {
            name: "c".into(),
            dimension: 4,
            metric: pb::Metric::Cosine as i32,
            quantization,
            on_disk,
            ..Default::default()
        };
        let spec = spec_from_pb(&req(0, false)).unwrap();
        assert_eq!(
            (spec.quantization, spec.on_disk),
            (Quantization::None, false)
        );
        let spec = spec_from_pb(&req(pb::Quantization::Binary as i32, true)).unwrap();
        assert_eq!(
            (spec.quantization, spec.on_disk),
            (Quantization::Binary, true)
        );
        let err = spec_from_pb(&req(99, false)).unwrap_err();
        assert!(matches!(
            err,
            StorageError::InvalidField(FieldProblem::Quantization(99))
        ));
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::InvalidArgument
        );
    }

    /// Declared payload indexes: each kind converts and back; an unknown kind, an empty or
    /// malformed key and more than 32 indexes are refused.
    #[test]
    fn payload_indexes_convert_and_bad_ones_are_refused() {
        use pb::PayloadIndexKind as P;
        let req = |indexes: Vec<(&str, i32)>| pb::CreateCollectionRequest {
            name: "c".into(),
            dimension: 4,
            metric: pb::Metric::Cosine as i32,
            payload_indexes: indexes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..Default::default()
        };
        let all = [
            P::PayloadIndexKeyword,
            P::PayloadIndexInteger,
            P::PayloadIndexFloat,
            P::PayloadIndexBool,
            P::PayloadIndexDatetime,
            P::PayloadIndexGeo,
            P::PayloadIndexText,
        ];
        for kind in all {
            let spec = spec_from_pb(&req(vec![("a.b", kind as i32)])).unwrap();
            crate::validate::spec(&spec).unwrap();
            assert_eq!(index_kind_to_pb(spec.payload_indexes["a.b"]), kind);
        }
        let refused = |r: pb::CreateCollectionRequest| {
            let err = spec_from_pb(&r)
                .and_then(|spec| crate::validate::spec(&spec))
                .unwrap_err();
            assert_eq!(
                tonic::Status::from(err).code(),
                tonic::Code::InvalidArgument
            );
        };
        refused(req(vec![("a", 0)]));
        refused(req(vec![("a", 99)]));
        for key in ["", "a..b", ".a", "a."] {
            refused(req(vec![(key, P::PayloadIndexText as i32)]));
        }
        let many: Vec<String> = (0..33).map(|i| format!("f{i}")).collect();
        refused(req(many
            .iter()
            .map(|k| (k.as_str(), P::PayloadIndexFloat as i32))
            .collect()));
        let ok: Vec<(&str, i32)> = many[..32].iter().map(|k| (k.as_str(), 3)).collect();
        crate::validate::spec(&spec_from_pb(&req(ok)).unwrap()).unwrap();
    }
}
