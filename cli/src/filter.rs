//! The CLI's JSON filter syntax, turned into `akidb.v1.Filter`:
//!
//! ```json
//! {"must": [{"key": "Category", "keyword": "HISTORY"}, {"key": "Value", "range": {"gte": 200, "lt": 800}}],
//!  "should": [{"key": "Round", "any_of": ["Jeopardy!", "Double Jeopardy!"]}],
//!  "must_not": [{"has_id": [1, 2]}, {"filter": {"must": [...]}}]}
//! ```
//! A condition is one of `keyword`, `integer`, `bool`, `any_of` (strings or integers), `range`
//! (gt/gte/lt/lte) with a `key`; or `has_id`; or a nested `filter`.

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
        .find(|k| !matches!(k.as_str(), "must" | "should" | "must_not"))
    {
        bail!("unknown filter clause `{k}`; use must, should or must_not");
    }
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
        let g = |n: &str| r.get(n).and_then(Value::as_f64);
        M::Range(pb::Range {
            gt: g("gt"),
            gte: g("gte"),
            lt: g("lt"),
            lte: g("lte"),
        })
    } else {
        bail!("condition on `{key}` needs keyword, integer, bool, any_of or range");
    };
    Ok(pb::Condition {
        condition: Some(C::Field(pb::FieldCondition {
            key: key.to_string(),
            r#match: Some(m),
        })),
    })
}
