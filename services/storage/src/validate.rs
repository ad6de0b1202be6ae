//! Every check a request to storage passes before it changes or reads anything, in one place.
//!
//! The limits and the name rule are `akidb_proto::limits`, which the front doors (ingest,
//! query) check too; storage checks again, with the collection at hand (dimension, datatype),
//! because it is reachable directly (tools, the admin API) and must not trust its callers.
//! Each check returns a typed [`StorageError`] that names what is wrong.

use crate::distance::fits_f16;
use crate::error::{EmptyRequest, FieldProblem, FilterProblem, Result, StorageError};
use crate::filter::{Condition, Filter, Match};
use crate::model::{
    CollectionSpec, Datatype, Metric, PointKey, PointRecord, Quantization, SparseVector,
    VectorUpdate,
};
use crate::store::SearchParams;
use akidb_proto::limits::{self, check_range};

/// A collection name, `[A-Za-z0-9_-]{1,64}`, or a shard's, `<collection>.<shard>` (a node
/// of a cluster holds each of its shards as a collection of that name).
pub fn name(name: &str) -> Result<()> {
    limits::check_local_name(name)?;
    Ok(())
}

/// Payload indexes a collection may declare.
pub const MAX_PAYLOAD_INDEXES: usize = 32;

/// A new collection's spec.
pub fn spec(spec: &CollectionSpec) -> Result<()> {
    name(&spec.name)?;
    if spec.payload_indexes.len() > MAX_PAYLOAD_INDEXES {
        return Err(FieldProblem::TooManyIndexes {
            max: MAX_PAYLOAD_INDEXES,
            got: spec.payload_indexes.len(),
        }
        .into());
    }
    if let Some(k) = spec
        .payload_indexes
        .keys()
        .find(|k| k.is_empty() || k.len() > 256 || k.split('.').any(str::is_empty))
    {
        return Err(FieldProblem::IndexKey(k.clone()).into());
    }
    if spec.sparse_vectors.len() > limits::MAX_SPARSE_VECTORS {
        return Err(FieldProblem::TooManySparse {
            max: limits::MAX_SPARSE_VECTORS,
            got: spec.sparse_vectors.len(),
        }
        .into());
    }
    for n in &spec.sparse_vectors {
        limits::check_vector_name(n).map_err(FieldProblem::from)?;
    }
    if spec.vectors.len() > limits::MAX_NAMED_VECTORS {
        return Err(FieldProblem::TooManyNamed {
            max: limits::MAX_NAMED_VECTORS,
            got: spec.vectors.len(),
        }
        .into());
    }
    for (n, v) in &spec.vectors {
        limits::check_vector_name(n).map_err(FieldProblem::from)?;
        if spec.sparse_vectors.contains(n) {
            return Err(FieldProblem::NameTwice(n.clone()).into());
        }
        check_range(
            "named vector dimension",
            &limits::DIMENSION,
            v.dimension.into(),
        )?;
        check_range("named vector HNSW m", &limits::M, v.m.into())?;
        check_range(
            "named vector HNSW ef_construction",
            &limits::EF_CONSTRUCTION,
            v.ef_construction.into(),
        )?;
        if v.quantization == Quantization::Binary && v.metric == Metric::L2 {
            return Err(FieldProblem::BinaryNeedsAngle.into());
        }
    }
    check_range("dimension", &limits::DIMENSION, spec.dimension.into())?;
    check_range("HNSW m", &limits::M, spec.m.into())?;
    check_range(
        "HNSW ef_construction",
        &limits::EF_CONSTRUCTION,
        spec.ef_construction.into(),
    )?;
    if spec.quantization == Quantization::Binary && spec.metric == Metric::L2 {
        return Err(FieldProblem::BinaryNeedsAngle.into());
    }
    Ok(())
}

/// A vector against a collection's dimension; `what` names it in the message.
pub fn vector(spec: &CollectionSpec, v: &[f32], what: &dyn std::fmt::Display) -> Result<()> {
    if v.len() != spec.dimension as usize {
        return Err(StorageError::WrongDimension {
            what: what.to_string(),
            collection: spec.name.clone(),
            expected: spec.dimension,
            received: v.len(),
        });
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(StorageError::NotFinite {
            what: what.to_string(),
            index: i,
            value: v[i],
        });
    }
    Ok(())
}

/// Declared vector names, comma-separated, or `none`.
fn declared<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Named dense vector `name` (carried by a point or searched, `what`) against the collection
/// of `spec`: declared, of its dimension, finite.
pub fn named(
    spec: &CollectionSpec,
    name: &str,
    v: &[f32],
    what: &dyn std::fmt::Display,
) -> Result<()> {
    let Some(s) = spec.vectors.get(name) else {
        return Err(FieldProblem::UnknownVector {
            what: what.to_string(),
            collection: spec.name.clone(),
            name: name.escape_default().to_string(),
            declared: declared(spec.vectors.keys()),
        }
        .into());
    };
    if v.len() != s.dimension as usize {
        return Err(StorageError::WrongNamedDimension {
            what: what.to_string(),
            name: name.to_string(),
            collection: spec.name.clone(),
            expected: s.dimension,
            received: v.len(),
        });
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(StorageError::NotFinite {
            what: format!("{what}: named vector `{name}`"),
            index: i,
            value: v[i],
        });
    }
    Ok(())
}

/// Sparse vector `name` (carried by a point or searched, `what`) against the collection of
/// `spec`: declared, with entries a request may have.
pub fn sparse(
    spec: &CollectionSpec,
    name: &str,
    v: &SparseVector,
    what: &dyn std::fmt::Display,
) -> Result<()> {
    if !spec.sparse_vectors.contains(name) {
        return Err(FieldProblem::UnknownSparse {
            what: what.to_string(),
            collection: spec.name.clone(),
            name: name.escape_default().to_string(),
            declared: declared(spec.sparse_vectors.iter()),
        }
        .into());
    }
    limits::check_sparse(&v.indices, &v.values).map_err(|problem| FieldProblem::Sparse {
        what: what.to_string(),
        name: name.to_string(),
        problem,
    })?;
    Ok(())
}

/// A batch of points to upsert into the collection of `spec`.
pub fn points(spec: &CollectionSpec, points: &[PointRecord]) -> Result<()> {
    if points.is_empty() {
        return Err(StorageError::EmptyRequest(EmptyRequest::Upsert));
    }
    for p in points {
        vector(spec, &p.vector, &format_args!("point {}", p.key))?;
        for (name, v) in &p.sparse {
            sparse(spec, name, v, &format_args!("point {}", p.key))?;
        }
        for (name, v) in &p.named {
            named(spec, name, v, &format_args!("point {}", p.key))?;
        }
        fits(spec, &p.key, None, &p.vector)?;
        for (name, v) in &p.named {
            fits(spec, &p.key, Some(name), v)?;
        }
    }
    Ok(())
}

/// The unnamed vector of point `key` (or its named vector `name`, declared) within what its
/// datatype holds.
fn fits(spec: &CollectionSpec, key: &PointKey, name: Option<&str>, v: &[f32]) -> Result<()> {
    let (datatype, metric) = match name.map(|n| spec.vectors.get(n)) {
        None => (spec.datatype, spec.metric),
        Some(Some(s)) => (s.datatype, s.metric),
        Some(None) => return Ok(()),
    };
    // Cosine vectors are stored normalized (components within ±1): always in range.
    if datatype == Datatype::Float16
        && metric != Metric::Cosine
        && let Some(i) = v.iter().position(|&x| !fits_f16(x))
    {
        return Err(StorageError::OutsideFloat16 {
            point: match name {
                None => key.to_string(),
                Some(n) => format!("{key}, named vector `{n}`"),
            },
            index: i,
            value: v[i],
            collection: spec.name.clone(),
        });
    }
    Ok(())
}

/// An UpdateVectors' points against the collection of `spec`: at least one, each giving a
/// vector to replace, every vector as an upsert's would be.
pub fn vector_updates(spec: &CollectionSpec, updates: &[VectorUpdate]) -> Result<()> {
    if updates.is_empty() {
        return Err(StorageError::EmptyRequest(EmptyRequest::UpdateVectors));
    }
    for u in updates {
        let what = format_args!("point {}", u.key);
        if u.vector.is_none() && u.named.is_empty() && u.sparse.is_empty() {
            return Err(FieldProblem::NoVectorGiven(u.key.to_string()).into());
        }
        if let Some(v) = &u.vector {
            vector(spec, v, &what)?;
            fits(spec, &u.key, None, v)?;
        }
        for (name, v) in &u.named {
            named(spec, name, v, &what)?;
            fits(spec, &u.key, Some(name), v)?;
        }
        for (name, v) in &u.sparse {
            sparse(spec, name, v, &what)?;
        }
    }
    Ok(())
}

/// A search in the collection of `spec`.
pub fn search(spec: &CollectionSpec, params: &SearchParams) -> Result<()> {
    check_range("k", &limits::K, params.k as u64)?;
    if let Some(ef) = params.ef {
        check_range("ef", &limits::EF, ef as u64)?;
    }
    if let Some(o) = params.oversampling {
        limits::check_oversampling(o).map_err(FieldProblem::from)?;
    }
    match (&params.sparse, &params.vector_name) {
        (Some(_), Some(_)) => return Err(FieldProblem::NamedAndSparse.into()),
        (Some((name, q)), None) => {
            if !params.vector.is_empty() {
                return Err(FieldProblem::DenseAndSparse.into());
            }
            sparse(spec, name, q, &"query")?;
            if q.is_empty() {
                return Err(FieldProblem::EmptySparseQuery.into());
            }
        }
        (None, Some(name)) => named(spec, name, &params.vector, &"query")?,
        (None, None) => vector(spec, &params.vector, &"query")?,
    }
    if let Some(f) = &params.filter {
        filter(f)?;
    }
    Ok(())
}

/// A Scroll page size: 0 asks for the default.
pub fn scroll_limit(limit: u32) -> Result<usize> {
    if limit == 0 {
        return Ok(limits::DEFAULT_SCROLL_LIMIT);
    }
    check_range("scroll limit", &limits::SCROLL_LIMIT, limit.into())?;
    Ok(limit as usize)
}

/// A filter's structure: depth, condition count, non-empty keys, sane ranges.
pub fn filter(f: &Filter) -> Result<()> {
    filter_at(f, 1, &mut 0)
}

fn filter_at(f: &Filter, depth: usize, conditions: &mut usize) -> Result<()> {
    if depth > limits::MAX_FILTER_DEPTH {
        return Err(FilterProblem::TooDeep {
            max: limits::MAX_FILTER_DEPTH,
        }
        .into());
    }
    if let Some(m) = &f.min_should
        && (m.min_count == 0 || m.min_count > m.conditions.len())
    {
        return Err(FilterProblem::MinShould {
            min_count: m.min_count,
            conditions: m.conditions.len(),
        }
        .into());
    }
    for c in f.conditions() {
        *conditions += 1;
        if *conditions > limits::MAX_FILTER_CONDITIONS {
            return Err(FilterProblem::TooManyConditions {
                max: limits::MAX_FILTER_CONDITIONS,
            }
            .into());
        }
        if let Some(key) = c.key()
            && (key.is_empty() || key.split('.').any(str::is_empty))
        {
            return Err(FilterProblem::EmptyKey {
                key: key.to_string(),
            }
            .into());
        }
        match c {
            Condition::Field { key, matcher, .. } => matcher_ok(key, matcher)?,
            Condition::ValuesCount { key, count, .. } => range_ok(key, count)?,
            Condition::HasId(_) | Condition::IsEmpty { .. } | Condition::IsNull { .. } => {}
            Condition::Nested(inner) => filter_at(inner, depth + 1, conditions)?,
        }
    }
    Ok(())
}

fn range_ok(key: &str, r: &crate::filter::Range) -> Result<()> {
    if r.set().next().is_none() {
        return Err(FilterProblem::RangeWithoutBound { key: key.into() }.into());
    }
    if r.set().any(|b| !b.is_finite()) {
        return Err(FilterProblem::RangeNotFinite { key: key.into() }.into());
    }
    Ok(())
}

fn geo_ok(key: &str, p: &crate::filter::GeoPoint) -> Result<()> {
    if !(-90.0..=90.0).contains(&p.lat) || !(-180.0..=180.0).contains(&p.lon) {
        return Err(FilterProblem::GeoOutOfRange {
            key: key.into(),
            lat: p.lat,
            lon: p.lon,
        }
        .into());
    }
    Ok(())
}

fn matcher_ok(key: &str, m: &Match) -> Result<()> {
    match m {
        Match::Range(r) => range_ok(key, r),
        Match::Datetime(r) => {
            if r.set().next().is_none() {
                return Err(FilterProblem::RangeWithoutBound { key: key.into() }.into());
            }
            Ok(())
        }
        Match::GeoRadius { center, meters } => {
            geo_ok(key, center)?;
            if !(meters.is_finite() && *meters > 0.0) {
                return Err(FilterProblem::GeoRadius {
                    key: key.into(),
                    radius: *meters,
                }
                .into());
            }
            Ok(())
        }
        Match::GeoBox {
            top_left,
            bottom_right,
        } => {
            geo_ok(key, top_left)?;
            geo_ok(key, bottom_right)?;
            if top_left.lat < bottom_right.lat {
                return Err(FilterProblem::GeoBoxUpsideDown { key: key.into() }.into());
            }
            Ok(())
        }
        Match::Text(w) | Match::Phrase(w) if w.is_empty() => {
            Err(FilterProblem::NoWords { key: key.into() }.into())
        }
        Match::Keyword(_)
        | Match::Integer(_)
        | Match::Bool(_)
        | Match::AnyKeyword(_)
        | Match::AnyInteger(_)
        | Match::Text(_)
        | Match::Phrase(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Range;
    use crate::model::{Payload, PointKey, VectorSpec};
    use akidb_proto::limits::NameProblem;

    #[test]
    fn names() {
        assert!(name("a-b_C9").is_ok());
        assert!(matches!(
            name(""),
            Err(StorageError::InvalidName(NameProblem::Length(0)))
        ));
        assert!(matches!(
            name("../x"),
            Err(StorageError::InvalidName(NameProblem::Character { .. }))
        ));
        assert!(name(&"a".repeat(65)).is_err());
        assert!(name(&"a".repeat(64)).is_ok());
    }

    /// Storage's own sparse checks (the front doors refuse most of these first, so the
    /// cross-process tests do not reach them).
    #[test]
    fn sparse_vectors_and_searches_are_checked_against_the_spec() {
        use crate::error::FieldProblem as F;
        use crate::store::{Include, SearchParams};
        let spec = CollectionSpec {
            sparse_vectors: ["kw".to_string()].into(),
            ..CollectionSpec::for_test("c", 2, Metric::Dot, 16)
        };
        let sv = |indices: Vec<u32>, values: Vec<f32>| SparseVector { indices, values };
        let point = |name: &str, v: SparseVector| PointRecord {
            key: PointKey::Num(1),
            vector: vec![1.0, 0.0],
            payload: Payload::new(),
            sparse: [(name.to_string(), v)].into(),
            named: Default::default(),
        };
        let field = |r: Result<()>| match r {
            Err(StorageError::InvalidField(f)) => f,
            other => panic!("expected a field problem, got {other:?}"),
        };
        assert!(points(&spec, &[point("kw", sv(vec![1, 2], vec![1.0, -1.0]))]).is_ok());
        assert!(matches!(
            field(points(&spec, &[point("other", sv(vec![1], vec![1.0]))])),
            F::UnknownSparse { declared, .. } if declared == "kw"
        ));
        for bad in [sv(vec![2, 1], vec![1.0, 1.0]), sv(vec![1], vec![f32::NAN])] {
            assert!(matches!(
                field(points(&spec, &[point("kw", bad)])),
                F::Sparse { .. }
            ));
        }
        let search = |vector: Vec<f32>, q: SparseVector| SearchParams {
            vector,
            sparse: Some(("kw".into(), q)),
            k: 10,
            filter: None,
            ef: None,
            oversampling: None,
            include: Include::default(),
            exact: false,
            vector_name: None,
        };
        assert!(super::search(&spec, &search(vec![], sv(vec![3], vec![1.0]))).is_ok());
        assert!(matches!(
            field(super::search(
                &spec,
                &search(vec![1.0, 0.0], sv(vec![3], vec![1.0]))
            )),
            F::DenseAndSparse
        ));
        assert!(matches!(
            field(super::search(&spec, &search(vec![], sv(vec![], vec![])))),
            F::EmptySparseQuery
        ));
        let many = CollectionSpec {
            sparse_vectors: (0..9).map(|i| format!("s{i}")).collect(),
            ..spec.clone()
        };
        assert!(matches!(
            field(super::spec(&many)),
            F::TooManySparse { max: 8, got: 9 }
        ));
        let badly_named = CollectionSpec {
            sparse_vectors: ["a b".to_string()].into(),
            ..spec.clone()
        };
        assert!(matches!(field(super::spec(&badly_named)), F::VectorName(_)));
    }

    #[test]
    fn float16_range_on_write_but_not_for_cosine() {
        let mut spec = CollectionSpec {
            name: "c".into(),
            dimension: 4,
            metric: Metric::L2,
            m: 16,
            ef_construction: 100,
            pinned: false,
            datatype: Datatype::Float16,
            quantization: Default::default(),
            on_disk: false,
            payload_indexes: Default::default(),
            sparse_vectors: Default::default(),
            vectors: Default::default(),
        };
        let p = |x: f32| PointRecord {
            key: PointKey::Num(1),
            vector: vec![x, 0.0, 0.0, 0.0],
            payload: Payload::new(),
            sparse: Default::default(),
            named: Default::default(),
        };
        assert!(points(&spec, &[p(65504.0)]).is_ok());
        assert!(matches!(
            points(&spec, &[p(-1e6)]),
            Err(StorageError::OutsideFloat16 { index: 0, .. })
        ));
        spec.metric = Metric::Cosine;
        assert!(points(&spec, &[p(-1e6)]).is_ok());
        // A named vector by its own datatype and metric, in upserts and UpdateVectors.
        let named = |datatype, metric| VectorSpec {
            dimension: 2,
            metric,
            m: 16,
            ef_construction: 100,
            datatype,
            quantization: Quantization::None,
        };
        spec.vectors
            .insert("h".into(), named(Datatype::Float16, Metric::Dot));
        spec.vectors
            .insert("f".into(), named(Datatype::Float32, Metric::Dot));
        spec.vectors
            .insert("c".into(), named(Datatype::Float16, Metric::Cosine));
        let with = |n: &str, x: f32| PointRecord {
            named: [(n.to_string(), vec![1.0, x])].into(),
            ..p(0.0)
        };
        assert!(points(&spec, &[with("f", 1e6), with("c", 1e6), with("h", 6e4)]).is_ok());
        match points(&spec, &[with("h", 1e6)]) {
            Err(e @ StorageError::OutsideFloat16 { index: 1, .. }) => {
                assert!(e.to_string().contains("point 1, named vector `h`"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let update = VectorUpdate {
            key: PointKey::Num(1),
            vector: None,
            named: [("h".to_string(), vec![-7e4, 0.0])].into(),
            sparse: Default::default(),
        };
        assert!(matches!(
            vector_updates(&spec, &[update]),
            Err(StorageError::OutsideFloat16 { index: 0, .. })
        ));
        // Binary codes of a named vector need a metric of angle, as the unnamed one's.
        spec.vectors.get_mut("f").unwrap().quantization = Quantization::Binary;
        assert!(super::spec(&spec).is_ok());
        spec.vectors.get_mut("f").unwrap().metric = Metric::L2;
        assert!(matches!(
            super::spec(&spec),
            Err(StorageError::InvalidField(FieldProblem::BinaryNeedsAngle))
        ));
    }

    /// Storage checks quantization and oversampling itself (it is reachable directly):
    /// binary on L2 and an oversampling of 0, NaN or above the cap are refused with
    /// INVALID_ARGUMENT; an unknown quantization never converts.
    #[test]
    fn quantization_and_oversampling() {
        let mut spec = CollectionSpec {
            name: "c".into(),
            dimension: 4,
            metric: Metric::L2,
            m: 16,
            ef_construction: 100,
            pinned: false,
            datatype: Datatype::Float32,
            quantization: Quantization::Binary,
            payload_indexes: Default::default(),
            on_disk: true,
            sparse_vectors: Default::default(),
            vectors: Default::default(),
        };
        let e = super::spec(&spec).unwrap_err();
        assert!(matches!(
            e,
            StorageError::InvalidField(FieldProblem::BinaryNeedsAngle)
        ));
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        for (metric, q) in [
            (Metric::Cosine, Quantization::Binary),
            (Metric::Dot, Quantization::Binary),
            (Metric::L2, Quantization::Int8),
        ] {
            spec.metric = metric;
            spec.quantization = q;
            assert!(super::spec(&spec).is_ok(), "{metric:?} {q:?}");
        }
        let params = |o: f32| SearchParams {
            vector: vec![0.0; 4],
            k: 10,
            filter: None,
            ef: None,
            oversampling: Some(o),
            include: Default::default(),
            exact: false,
            sparse: None,
            vector_name: None,
        };
        for ok in [1.0, 2.5, 16.0] {
            assert!(search(&spec, &params(ok)).is_ok(), "{ok}");
        }
        for bad in [0.0, 0.99, -1.0, 16.01, f32::NAN, f32::INFINITY] {
            let e = search(&spec, &params(bad)).unwrap_err();
            assert!(
                matches!(e, StorageError::InvalidField(FieldProblem::Oversampling(_))),
                "{bad}: {e}"
            );
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
    }

    #[test]
    fn validation_rejects_bad_filters() {
        let bad_range = Filter {
            must: vec![Condition::field("v", Match::Range(Range::default()))],
            ..Default::default()
        };
        assert!(matches!(
            filter(&bad_range),
            Err(StorageError::InvalidFilter(
                FilterProblem::RangeWithoutBound { .. }
            ))
        ));
        let nan = Filter {
            must: vec![Condition::field(
                "v",
                Match::Range(Range {
                    lt: Some(f64::NAN),
                    ..Default::default()
                }),
            )],
            ..Default::default()
        };
        assert!(matches!(
            filter(&nan),
            Err(StorageError::InvalidFilter(
                FilterProblem::RangeNotFinite { .. }
            ))
        ));
        let empty_key = Filter {
            must: vec![Condition::field("a..b", Match::Integer(1))],
            ..Default::default()
        };
        assert!(matches!(
            filter(&empty_key),
            Err(StorageError::InvalidFilter(FilterProblem::EmptyKey { .. }))
        ));
        let mut deep = Filter::default();
        for _ in 0..20 {
            deep = Filter {
                must: vec![Condition::Nested(deep)],
                ..Default::default()
            };
        }
        assert!(matches!(
            filter(&deep),
            Err(StorageError::InvalidFilter(FilterProblem::TooDeep { .. }))
        ));
    }

    #[test]
    fn scroll_limits() {
        assert_eq!(scroll_limit(0).unwrap(), limits::DEFAULT_SCROLL_LIMIT);
        assert_eq!(scroll_limit(10_000).unwrap(), 10_000);
        assert!(matches!(
            scroll_limit(10_001),
            Err(StorageError::OutOfRange(_))
        ));
    }
}
