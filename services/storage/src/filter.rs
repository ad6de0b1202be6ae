//! Payload filters, evaluated per point (checked first by [`crate::validate::filter`]).
//!
//! A point matches when every `must` condition matches, at least one `should` condition
//! matches (when there are any), at least `min_should.min_count` of its conditions match (when
//! set), and no `must_not` condition matches. A field condition on an array value matches
//! when any element matches. Missing fields never match a field condition; `is_empty`,
//! `is_null` and `values_count` look at the whole field, missing included.

use crate::model::{Payload, PointKey};
use serde_json::Value;
use std::collections::HashSet;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub must: Vec<Condition>,
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
    pub min_should: Option<MinShould>,
}

/// At least `min_count` of `conditions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinShould {
    pub conditions: Vec<Condition>,
    pub min_count: usize,
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
    /// Missing, null, or an empty array.
    IsEmpty {
        key: String,
        path: Vec<String>,
    },
    /// Present and null.
    IsNull {
        key: String,
        path: Vec<String>,
    },
    /// The number of values (array length; 1 for another value; 0 missing or null) in range.
    ValuesCount {
        key: String,
        path: Vec<String>,
        count: Range,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Keyword(String),
    Integer(i64),
    Bool(bool),
    AnyKeyword(HashSet<String>),
    AnyInteger(HashSet<i64>),
    Range(Range),
    /// Bounds in microseconds since the Unix epoch (UTC).
    Datetime(TimeRange),
    GeoRadius {
        center: GeoPoint,
        meters: f64,
    },
    GeoBox {
        top_left: GeoPoint,
        bottom_right: GeoPoint,
    },
    /// Every word (as [`words`] splits them) is among the field's words.
    Text(Vec<String>),
    /// The words appear in the field one after another.
    Phrase(Vec<String>),
}

/// Bounds on a value; unset ones are open.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds<T> {
    pub gt: Option<T>,
    pub gte: Option<T>,
    pub lt: Option<T>,
    pub lte: Option<T>,
}

impl<T: PartialOrd + Copy> Bounds<T> {
    pub fn contains(&self, x: T) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }

    /// Every bound set.
    pub fn set(&self) -> impl Iterator<Item = T> {
        [self.gt, self.gte, self.lt, self.lte].into_iter().flatten()
    }
}

/// A numeric range.
pub type Range = Bounds<f64>;

/// A range of instants, in microseconds since the Unix epoch (UTC).
pub type TimeRange = Bounds<i64>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// Mean Earth radius (IUGG), meters: what geo radius filters measure with.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

impl GeoPoint {
    /// The point a payload value holds: an object with numeric `lat` and `lon`.
    pub fn from_value(v: &Value) -> Option<GeoPoint> {
        let o = v.as_object()?;
        let (lat, lon) = (o.get("lat")?.as_f64()?, o.get("lon")?.as_f64()?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
            .then_some(GeoPoint { lat, lon })
    }

    /// Great-circle distance in meters (haversine, on a sphere of [`EARTH_RADIUS_M`]).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// The words of a text: runs of letters and digits, in lower case.
pub fn words(text: &str) -> Vec<String> {
    raw_words(text).map(str::to_lowercase).collect()
}

/// The words of a text as they are written ([`words`] before lower-casing).
fn raw_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Whether `word` in lower case is `lower`.
fn same_word(word: &str, lower: &str) -> bool {
    word.chars().flat_map(char::to_lowercase).eq(lower.chars())
}

/// An instant written as RFC 3339 (`2004-12-31T18:30:00Z`, `...+02:00`) or as a date
/// (`2004-12-31`, midnight UTC), in microseconds since the Unix epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

impl Condition {
    /// A condition on the payload field at the dotted path `key`.
    pub fn field(key: &str, matcher: Match) -> Self {
        Condition::Field {
            key: key.to_string(),
            path: path(key),
            matcher,
        }
    }

    /// The dotted key this condition is about (none for has-id and nested filters).
    pub fn key(&self) -> Option<&str> {
        match self {
            Condition::Field { key, .. }
            | Condition::IsEmpty { key, .. }
            | Condition::IsNull { key, .. }
            | Condition::ValuesCount { key, .. } => Some(key),
            Condition::HasId(_) | Condition::Nested(_) => None,
        }
    }
}

/// The path of a dotted key.
pub fn path(key: &str) -> Vec<String> {
    key.split('.').map(String::from).collect()
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.must.is_empty()
            && self.should.is_empty()
            && self.must_not.is_empty()
            && self.min_should.is_none()
    }

    /// Every condition of this level (not those of nested filters).
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> {
        let min = self.min_should.iter().flat_map(|m| &m.conditions);
        self.must
            .iter()
            .chain(&self.should)
            .chain(&self.must_not)
            .chain(min)
    }

    pub fn matches(&self, key: &PointKey, payload: &Payload) -> bool {
        self.must.iter().all(|c| c.matches(key, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(key, payload)))
            && self.min_should.as_ref().is_none_or(|m| {
                m.conditions
                    .iter()
                    .filter(|c| c.matches(key, payload))
                    .take(m.min_count)
                    .count()
                    == m.min_count
            })
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
            Condition::IsEmpty { path, .. } => match lookup(payload, path) {
                None | Some(Value::Null) => true,
                Some(Value::Array(a)) => a.is_empty(),
                Some(_) => false,
            },
            Condition::IsNull { path, .. } => matches!(lookup(payload, path), Some(Value::Null)),
            Condition::ValuesCount { path, count, .. } => {
                let n = match lookup(payload, path) {
                    None | Some(Value::Null) => 0,
                    Some(Value::Array(a)) => a.len(),
                    Some(_) => 1,
                };
                count.contains(n as f64)
            }
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
            Match::Datetime(r) => v
                .as_str()
                .and_then(parse_datetime)
                .is_some_and(|t| r.contains(t)),
            Match::GeoRadius { center, meters } => {
                GeoPoint::from_value(v).is_some_and(|p| center.distance_m(&p) <= *meters)
            }
            Match::GeoBox {
                top_left,
                bottom_right,
            } => GeoPoint::from_value(v).is_some_and(|p| {
                let lat = p.lat <= top_left.lat && p.lat >= bottom_right.lat;
                let lon = if top_left.lon <= bottom_right.lon {
                    p.lon >= top_left.lon && p.lon <= bottom_right.lon
                } else {
                    // Across the antimeridian.
                    p.lon >= top_left.lon || p.lon <= bottom_right.lon
                };
                lat && lon
            }),
            Match::Text(want) => v.as_str().is_some_and(|s| {
                // Evaluated per point: no allocation but the found flags of few words.
                let mut found = vec![false; want.len()];
                let mut left = want.len();
                for w in raw_words(s) {
                    for (i, x) in want.iter().enumerate() {
                        if !found[i] && same_word(w, x) {
                            found[i] = true;
                            left -= 1;
                        }
                    }
                    if left == 0 {
                        return true;
                    }
                }
                false
            }),
            Match::Phrase(want) => v.as_str().is_some_and(|s| {
                let have: Vec<&str> = raw_words(s).collect();
                have.windows(want.len())
                    .any(|w| w.iter().zip(want).all(|(a, b)| same_word(a, b)))
            }),
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
            min_should: None,
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
    fn text_dates_geo_emptiness_counts_and_min_should() {
        let k = PointKey::Num(1);
        let p = payload(json!({
            "q": "The Seine flows through PARIS, the capital.",
            "many": ["no match here", "Über café"],
            "at": "2004-12-31T23:30:00-02:00",
            "day": "2005-01-01",
            "geo": {"lat": 48.8566, "lon": 2.3522},
            "far": {"lat": 10.0, "lon": 179.5},
            "none": null, "empty": [], "two": [1, 2], "one": "x"
        }));
        let yes = |c: Condition| assert!(c.matches(&k, &p), "{c:?}");
        let no = |c: Condition| assert!(!c.matches(&k, &p), "{c:?}");
        let text = |key: &str, t: &str| Condition::field(key, Match::Text(words(t)));
        let phrase = |key: &str, t: &str| Condition::field(key, Match::Phrase(words(t)));
        yes(text("q", "paris SEINE"));
        no(text("q", "paris london"));
        yes(text("many", "café über"));
        no(text("many", "no café"));
        yes(phrase("q", "flows through paris"));
        no(phrase("q", "through flows"));
        yes(phrase("q", "the capital"));
        // 23:30 at -02:00 is 01:30 UTC on the next day.
        let after = |t: &str| TimeRange {
            gte: parse_datetime(t),
            ..Default::default()
        };
        yes(Condition::field(
            "at",
            Match::Datetime(after("2005-01-01T01:30:00Z")),
        ));
        no(Condition::field(
            "at",
            Match::Datetime(after("2005-01-01T01:30:01Z")),
        ));
        yes(Condition::field(
            "day",
            Match::Datetime(after("2005-01-01")),
        ));
        assert_eq!(parse_datetime("2005-13-01"), None);
        assert_eq!(parse_datetime("yesterday"), None);
        let paris = GeoPoint {
            lat: 48.8566,
            lon: 2.3522,
        };
        let london = GeoPoint {
            lat: 51.5074,
            lon: -0.1278,
        };
        let d = paris.distance_m(&london);
        assert!((d - 343_500.0).abs() < 1_000.0, "{d}");
        let near = |m: f64| {
            Condition::field(
                "geo",
                Match::GeoRadius {
                    center: london,
                    meters: m,
                },
            )
        };
        yes(near(344_500.0));
        no(near(342_500.0));
        let bbox = |tl: (f64, f64), br: (f64, f64)| Match::GeoBox {
            top_left: GeoPoint {
                lat: tl.0,
                lon: tl.1,
            },
            bottom_right: GeoPoint {
                lat: br.0,
                lon: br.1,
            },
        };
        yes(Condition::field("geo", bbox((50.0, 2.0), (48.0, 3.0))));
        no(Condition::field("geo", bbox((50.0, 3.0), (48.0, 4.0))));
        // Across the antimeridian: 170 east to 170 west.
        yes(Condition::field("far", bbox((20.0, 170.0), (0.0, -170.0))));
        no(Condition::field("geo", bbox((60.0, 170.0), (0.0, -170.0))));
        let path = |k: &str| (k.to_string(), super::path(k));
        let empty = |k: &str| {
            let (key, path) = path(k);
            Condition::IsEmpty { key, path }
        };
        let null = |k: &str| {
            let (key, path) = path(k);
            Condition::IsNull { key, path }
        };
        let count = |k: &str, gte: f64, lte: f64| {
            let (key, path) = path(k);
            Condition::ValuesCount {
                key,
                path,
                count: Range {
                    gte: Some(gte),
                    lte: Some(lte),
                    ..Default::default()
                },
            }
        };
        for k in ["none", "empty", "missing"] {
            yes(empty(k));
        }
        no(empty("one"));
        yes(null("none"));
        no(null("missing"));
        no(null("empty"));
        yes(count("two", 2.0, 2.0));
        yes(count("one", 1.0, 1.0));
        yes(count("missing", 0.0, 0.0));
        yes(count("none", 0.0, 0.0));
        no(count("two", 3.0, 9.0));
        let min = |n: usize| Filter {
            min_should: Some(MinShould {
                conditions: vec![text("q", "paris"), null("none"), text("q", "rome")],
                min_count: n,
            }),
            ..Default::default()
        };
        assert!(min(2).matches(&k, &p));
        assert!(!min(3).matches(&k, &p));
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
