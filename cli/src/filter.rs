//! The CLI's JSON filter syntax, turned into `akidb.v1.Filter`:
//!
//! ```json
//! {"must": [{"key": "Category", "keyword": "HISTORY"}, {"key": "Value", "range": {"gte": 200, "lt": 800}}],
//!  "should": [{"key": "Round", "any_of": ["Jeopardy!", "Double Jeopardy!"]}],
//!  "must_not": [{"has_id": [1, 2]}, {"filter": {"must": [...]}}]}
//! ```
//! A condition is one of `keyword`, `integer`, `bool`, `any_of` (strings or integers), `range`
//! (gt/gte/lt/lte), `datetime_range` (the same bounds as RFC 3339 strings or dates),
//! `geo_radius` (`{"lat", "lon", "radius_m"}`), `geo_bounding_box` (`{"top_left": {"lat",
//! "lon"}, "bottom_right": {...}}`), `text` (every word), `phrase` (the words in a row) or
//! `values_count` (a range) with a `key`; or `{"is_empty": key}`, `{"is_null": key}`,
//! `has_id`, or a nested `filter`. A filter may also have `"min_should": {"min_count": N,
//! "conditions": [...]}`.

use akidb_proto::v1 as pb;
use anyhow::{Context, anyhow, bail};
use serde_json::Value;

pub fn parse(text: &str) -> anyhow::Result<pb::Filter> {
    let v: Value = serde_json::from_str(text).context("--filter is not JSON")?;
    filter(&v)
}

fn filter(v: &Value) -> anyhow::Result<pb::Filter> {
    let o = v
        .as_object()
        .ok_or_else(|| anyhow!("a filter is an object with must/should/must_not"))?;
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "must" | "should" | "must_not" | "min_should"))
    {
        bail!("unknown filter clause `{k}`; use must, should, must_not or min_should");
    }
    let min_should = match o.get("min_should") {
        None => None,
        Some(m) => Some(pb::MinShould {
            conditions: m
                .get("conditions")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("min_should needs a list of `conditions`"))?
                .iter()
                .map(condition)
                .collect::<anyhow::Result<_>>()?,
            min_count: m
                .get("min_count")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| anyhow!("min_should needs a whole `min_count`"))?,
        }),
    };
    let list = |name: &str| -> anyhow::Result<Vec<pb::Condition>> {
        match o.get(name) {
            None => Ok(vec![]),
            Some(Value::Array(a)) => a.iter().map(condition).collect(),
            Some(_) => bail!("`{name}` must be a list of conditions"),
        }
    };
    Ok(pb::Filter {
        must: list("must")?,
        should: list("should")?,
        must_not: list("must_not")?,
        min_should,
    })
}

pub fn point_id(v: &Value) -> anyhow::Result<pb::PointId> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(pb::PointId::num)
            .ok_or_else(|| anyhow!("id {n} is not an unsigned integer")),
        Value::String(s) => Ok(pb::PointId::uuid(s.clone())),
        other => bail!("id {other} must be an unsigned integer or a UUID string"),
    }
}

fn condition(v: &Value) -> anyhow::Result<pb::Condition> {
    use pb::condition::Condition as C;
    use pb::field_condition::Match as M;
    let o = v
        .as_object()
        .ok_or_else(|| anyhow!("a condition is an object"))?;
    if let Some(ids) = o.get("has_id") {
        let ids = ids
            .as_array()
            .ok_or_else(|| anyhow!("has_id takes a list of ids"))?;
        let ids = ids.iter().map(point_id).collect::<anyhow::Result<_>>()?;
        return Ok(pb::Condition {
            condition: Some(C::HasId(pb::HasIdCondition { ids })),
        });
    }
    if let Some(f) = o.get("filter") {
        return Ok(pb::Condition {
            condition: Some(C::Filter(filter(f)?)),
        });
    }
    for (name, make) in [
        ("is_empty", C::IsEmpty as fn(pb::FieldKey) -> C),
        ("is_null", C::IsNull),
    ] {
        if let Some(k) = o.get(name) {
            let key = k
                .as_str()
                .ok_or_else(|| anyhow!("{name} takes a field key"))?;
            return Ok(pb::Condition {
                condition: Some(make(pb::FieldKey { key: key.into() })),
            });
        }
    }
    let key = o
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a field condition needs a string `key`"))?;
    let m = if let Some(k) = o.get("keyword") {
        M::Keyword(
            k.as_str()
                .ok_or_else(|| anyhow!("keyword must be a string"))?
                .to_string(),
        )
    } else if let Some(i) = o.get("integer") {
        M::Integer(
            i.as_i64()
                .ok_or_else(|| anyhow!("integer must be an integer"))?,
        )
    } else if let Some(b) = o.get("bool") {
        M::Boolean(
            b.as_bool()
                .ok_or_else(|| anyhow!("bool must be true or false"))?,
        )
    } else if let Some(a) = o.get("any_of") {
        let a = a.as_array().ok_or_else(|| anyhow!("any_of takes a list"))?;
        let mut any = pb::AnyOf::default();
        for x in a {
            match x {
                Value::String(s) => any.keywords.push(s.clone()),
                Value::Number(n) if n.is_i64() => any.integers.push(n.as_i64().unwrap()),
                other => bail!("any_of value {other} must be a string or an integer"),
            }
        }
        M::AnyOf(any)
    } else if let Some(r) = o.get("range") {
        M::Range(range(r))
    } else if let Some(r) = o.get("values_count") {
        return Ok(pb::Condition {
            condition: Some(C::ValuesCount(pb::ValuesCount {
                key: key.into(),
                count: Some(range(r)),
            })),
        });
    } else if let Some(r) = o.get("datetime_range") {
        let g = |n: &str| r.get(n).and_then(Value::as_str).map(String::from);
        M::DatetimeRange(pb::DatetimeRange {
            gt: g("gt"),
            gte: g("gte"),
            lt: g("lt"),
            lte: g("lte"),
        })
    } else if let Some(g) = o.get("geo_radius") {
        M::GeoRadius(pb::GeoRadius {
            center: Some(geo_point(g)?),
            radius_m: g
                .get("radius_m")
                .and_then(Value::as_f64)
                .ok_or_else(|| anyhow!("geo_radius needs `radius_m`"))?,
        })
    } else if let Some(b) = o.get("geo_bounding_box") {
        let corner = |n: &str| {
            b.get(n)
                .ok_or_else(|| anyhow!("geo_bounding_box needs `{n}`"))
                .and_then(geo_point)
        };
        M::GeoBoundingBox(pb::GeoBoundingBox {
            top_left: Some(corner("top_left")?),
            bottom_right: Some(corner("bottom_right")?),
        })
    } else if let Some(t) = o.get("text") {
        M::Text(
            t.as_str()
                .ok_or_else(|| anyhow!("text must be a string"))?
                .into(),
        )
    } else if let Some(t) = o.get("phrase") {
        M::Phrase(
            t.as_str()
                .ok_or_else(|| anyhow!("phrase must be a string"))?
                .into(),
        )
    } else {
        bail!(
            "condition on `{key}` needs keyword, integer, bool, any_of, range, datetime_range, geo_radius, geo_bounding_box, text, phrase or values_count"
        );
    };
    Ok(pb::Condition {
        condition: Some(C::Field(pb::FieldCondition {
            key: key.to_string(),
            r#match: Some(m),
        })),
    })
}

fn range(r: &Value) -> pb::Range {
    let g = |n: &str| r.get(n).and_then(Value::as_f64);
    pb::Range {
        gt: g("gt"),
        gte: g("gte"),
        lt: g("lt"),
        lte: g("lte"),
    }
}

fn geo_point(v: &Value) -> anyhow::Result<pb::GeoPoint> {
    let g = |n: &str| {
        v.get(n)
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow!("a geo point needs numeric `{n}`"))
    };
    Ok(pb::GeoPoint {
        lat: g("lat")?,
        lon: g("lon")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's example, every kind once, and what is refused before it is sent.
    #[test]
    fn every_condition_kind_parses() {
        use pb::condition::Condition as C;
        use pb::field_condition::Match as M;
        let f = parse(
            r#"{"must": [
              {"key": "aired", "datetime_range": {"gte": "1997-01-01", "lt": "1998-01-01"}},
              {"key": "question", "text": "capital city"}, {"key": "q", "phrase": "this country"},
              {"key": "box", "geo_bounding_box": {"top_left": {"lat": 1, "lon": 2}, "bottom_right": {"lat": 0, "lon": 3}}},
              {"key": "tags", "values_count": {"gte": 2}}, {"is_null": "n"}],
              "min_should": {"min_count": 1, "conditions": [
                {"key": "place", "geo_radius": {"lat": 48.85, "lon": 2.35, "radius_m": 50000}}, {"is_empty": "place"}]}}"#,
        )
        .unwrap();
        let kinds: Vec<_> = f
            .must
            .iter()
            .chain(&f.min_should.as_ref().unwrap().conditions)
            .map(|c| match c.condition.as_ref().unwrap() {
                C::Field(fc) => match fc.r#match.as_ref().unwrap() {
                    M::DatetimeRange(r) => {
                        assert_eq!(r.gte.as_deref(), Some("1997-01-01"));
                        "datetime"
                    }
                    M::Text(_) => "text",
                    M::Phrase(_) => "phrase",
                    M::GeoBoundingBox(_) => "box",
                    M::GeoRadius(g) => {
                        assert_eq!(g.radius_m, 50000.0);
                        "radius"
                    }
                    _ => "other",
                },
                C::ValuesCount(_) => "count",
                C::IsNull(_) => "null",
                C::IsEmpty(_) => "empty",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "datetime", "text", "phrase", "box", "count", "null", "radius", "empty"
            ]
        );
        assert_eq!(f.min_should.unwrap().min_count, 1);
        for bad in [
            r#"{"min_should": {"conditions": []}}"#,
            r#"{"must": [{"key": "g", "geo_radius": {"lat": 1, "lon": 2}}]}"#,
            r#"{"must": [{"is_empty": 3}]}"#,
            r#"{"must": [{"key": "t", "text": 3}]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
