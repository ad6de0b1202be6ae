//! Proto ↔ domain conversion for the storage service, in one place.

use crate::error::{Result, StorageError};
use crate::filter::{Condition, Filter, Match, Range};
use crate::model::*;
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
        None => Err(StorageError::InvalidArgument(
            "point id is missing; set `num` or `uuid`".into(),
        )),
    }
}

fn uuid_parse(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| {
            StorageError::InvalidArgument(format!(
                "point id `{}` is not a UUID: {e}",
                s.escape_default()
            ))
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
        _ => Err(StorageError::InvalidArgument(format!(
            "metric must be COSINE, L2 or DOT, got {m}"
        ))),
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
        Err(_) => Err(StorageError::InvalidArgument(format!(
            "datatype must be FLOAT32 or FLOAT16 (or unset for FLOAT32), got {d}"
        ))),
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
    Ok(CollectionSpec {
        name: r.name.clone(),
        dimension: r.dimension,
        metric: metric_from_pb(r.metric)?,
        m: r.m.unwrap_or(DEFAULT_M),
        ef_construction: r.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
        pinned: r.pin,
        datatype: datatype_from_pb(r.datatype)?,
    })
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
    }
}

// ---- payloads: google.protobuf.Struct <-> JSON ----

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
                return Err(StorageError::InvalidArgument(format!(
                    "payload number {n} is not finite"
                )));
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
    out.validate()?;
    Ok((!out.is_empty()).then_some(out))
}

fn filter_inner(f: &pb::Filter) -> Result<Filter> {
    let conv = |cs: &[pb::Condition]| cs.iter().map(condition_from_pb).collect::<Result<Vec<_>>>();
    Ok(Filter {
        must: conv(&f.must)?,
        should: conv(&f.should)?,
        must_not: conv(&f.must_not)?,
    })
}

fn condition_from_pb(c: &pb::Condition) -> Result<Condition> {
    use pb::condition::Condition as C;
    use pb::field_condition::Match as M;
    match c.condition.as_ref() {
        None => Err(StorageError::InvalidArgument(
            "filter condition is empty; set field, has_id or filter".into(),
        )),
        Some(C::HasId(h)) => {
            let ids = h
                .ids
                .iter()
                .map(|i| key_from_pb(Some(i)))
                .collect::<Result<_>>()?;
            Ok(Condition::HasId(ids))
        }
        Some(C::Filter(f)) => Ok(Condition::Nested(filter_inner(f)?)),
        Some(C::Field(fc)) => {
            let matcher = match fc.r#match.as_ref() {
                None => {
                    return Err(StorageError::InvalidArgument(format!(
                        "condition on `{}` has no match; set keyword, integer, boolean, any_of or range",
                        fc.key
                    )));
                }
                Some(M::Keyword(k)) => Match::Keyword(k.clone()),
                Some(M::Integer(i)) => Match::Integer(*i),
                Some(M::Boolean(b)) => Match::Bool(*b),
                Some(M::AnyOf(a)) => match (a.keywords.is_empty(), a.integers.is_empty()) {
                    (false, true) => Match::AnyKeyword(a.keywords.iter().cloned().collect()),
                    (true, false) => Match::AnyInteger(a.integers.iter().copied().collect()),
                    _ => {
                        return Err(StorageError::InvalidArgument(format!(
                            "any_of on `{}` must list either keywords or integers (exactly one kind)",
                            fc.key
                        )));
                    }
                },
                Some(M::Range(r)) => Match::Range(Range {
                    gt: r.gt,
                    gte: r.gte,
                    lt: r.lt,
                    lte: r.lte,
                }),
            };
            Ok(Condition::Field {
                key: fc.key.clone(),
                path: fc.key.split('.').map(String::from).collect(),
                matcher,
            })
        }
    }
}

// ---- scroll cursors ----

pub fn cursor_encode(k: &PointKey) -> String {
    match k {
        PointKey::Num(n) => format!("n:{n}"),
        PointKey::Uuid(u) => format!("u:{u}"),
    }
}

pub fn cursor_decode(s: &str) -> Result<Option<PointKey>> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || {
        StorageError::InvalidArgument(format!(
            "scroll cursor `{}` is not one this server issued",
            s.escape_default()
        ))
    };
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
    })
}

pub fn hit_to_pb(h: Hit) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(key_to_pb(&h.key)),
        score: h.score,
        payload: h.payload.as_ref().map(payload_to_pb),
        vector: h.vector.unwrap_or_default(),
    }
}

pub fn stored_to_pb(p: StoredPoint) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(key_to_pb(&p.key)),
        payload: p.payload.as_ref().map(payload_to_pb),
        vector: p.vector.unwrap_or_default(),
    }
}

pub fn search_from_pb(r: pb::SearchRequest) -> Result<SearchParams> {
    Ok(SearchParams {
        filter: filter_from_pb(r.filter.as_ref())?,
        vector: r.vector,
        k: r.k as usize,
        ef: r.ef.map(|e| e as usize),
        with_payload: r.with_payload,
        with_vector: r.with_vector,
        exact: r.exact,
    })
}
