//! Payload filters, evaluated per point (checked first by [`crate::validate::filter`]).
//!
//! A point matches when every `must` condition matches, at least one `should` condition
//! matches (when there are any), and no `must_not` condition matches. A field condition on an
//! array value matches when any element matches. Missing fields never match.

use crate::model::{Payload, PointKey};
use serde_json::Value;
use std::collections::HashSet;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub must: Vec<Condition>,
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Field {
        key: String,
        path: Vec<String>,
        matcher: Match,
    },
    HasId(HashSet<PointKey>),
    Nested(Filter),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Keyword(String),
    Integer(i64),
    Bool(bool),
    AnyKeyword(HashSet<String>),
    AnyInteger(HashSet<i64>),
    Range(Range),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl Range {
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl Condition {
    /// A condition on the payload field at the dotted path `key`.
    pub fn field(key: &str, matcher: Match) -> Self {
        Condition::Field {
            key: key.to_string(),
            path: key.split('.').map(String::from).collect(),
            matcher,
        }
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    pub fn matches(&self, key: &PointKey, payload: &Payload) -> bool {
        self.must.iter().all(|c| c.matches(key, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(key, payload)))
            && !self.must_not.iter().any(|c| c.matches(key, payload))
    }

    /// Ids named by a top-level `must` has-id condition, if any: lets the engine skip a scan.
    pub fn required_ids(&self) -> Option<&HashSet<PointKey>> {
        self.must.iter().find_map(|c| match c {
            Condition::HasId(ids) => Some(ids),
            _ => None,
        })
    }
}

impl Condition {
    pub fn matches(&self, key: &PointKey, payload: &Payload) -> bool {
        match self {
            Condition::HasId(ids) => ids.contains(key),
            Condition::Nested(f) => f.matches(key, payload),
            Condition::Field { path, matcher, .. } => match lookup(payload, path) {
                Some(Value::Array(items)) => items.iter().any(|v| matcher.matches(v)),
                Some(v) => matcher.matches(v),
                None => false,
            },
        }
    }
}

/// Follow a dotted path into nested objects.
pub fn lookup<'a>(payload: &'a Payload, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = payload.get(first)?;
    for seg in rest {
        v = v.as_object()?.get(seg)?;
    }
    Some(v)
}

impl Match {
    pub fn matches(&self, v: &Value) -> bool {
        match self {
            Match::Keyword(k) => v.as_str() == Some(k.as_str()),
            Match::Integer(i) => as_integer(v) == Some(*i),
            Match::Bool(b) => v.as_bool() == Some(*b),
            Match::AnyKeyword(set) => v.as_str().is_some_and(|s| set.contains(s)),
            Match::AnyInteger(set) => as_integer(v).is_some_and(|i| set.contains(&i)),
            Match::Range(r) => v.as_f64().is_some_and(|x| r.contains(x)),
        }
    }
}

/// An integer value, also when it arrived as a whole float (gRPC `Struct` numbers are doubles).
pub fn as_integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        v.as_object().unwrap().clone()
    }
    #[test]
    fn must_should_must_not() {
        let p = payload(
            json!({"cat": "science", "value": 400.0, "tags": ["a", "b"], "meta": {"round": 2}}),
        );
        let k = PointKey::Num(7);
        let f = Filter {
            must: vec![
                Condition::field("cat", Match::Keyword("science".into())),
                Condition::field("meta.round", Match::Integer(2)),
            ],
            should: vec![
                Condition::field("tags", Match::Keyword("z".into())),
                Condition::field("tags", Match::Keyword("b".into())),
            ],
            must_not: vec![Condition::field(
                "value",
                Match::Range(Range {
                    gt: Some(500.0),
                    ..Default::default()
                }),
            )],
        };
        assert!(f.matches(&k, &p));
        let f2 = Filter {
            must_not: vec![Condition::field(
                "value",
                Match::Range(Range {
                    gte: Some(400.0),
                    ..Default::default()
                }),
            )],
            ..f.clone()
        };
        assert!(!f2.matches(&k, &p));
        let f3 = Filter {
            should: vec![Condition::field("tags", Match::Keyword("z".into()))],
            ..f
        };
        assert!(!f3.matches(&k, &p));
    }

    #[test]
    fn missing_field_and_has_id() {
        let p = payload(json!({}));
        assert!(!Condition::field("x", Match::Bool(true)).matches(&PointKey::Num(1), &p));
        let ids: HashSet<_> = [PointKey::Num(1)].into();
        assert!(Condition::HasId(ids.clone()).matches(&PointKey::Num(1), &p));
        assert!(!Condition::HasId(ids).matches(&PointKey::Num(2), &p));
    }
}
