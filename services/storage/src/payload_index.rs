//! The payload index of a collection: which live points hold which payload values, so that a
//! filter's search or count starts from the points that may match instead of all of them.
//!
//! Two parts, kept up to date on every write ([`PayloadIndex::insert`], [`PayloadIndex::remove`])
//! and rebuilt when a collection is loaded:
//!
//! - **Implicit**: every top-level keyword (up to [`MAX_INDEXED_KEYWORD`] bytes), integer and
//!   bool value, for keyword, integer, bool and any-of matches.
//! - **Declared** in the collection's spec (`payload_indexes: {key: kind}`, dotted keys
//!   reaching into objects): `keyword`/`bool` (exact values), `integer`/`float`/`datetime`
//!   (ordered values, for ranges; datetimes as RFC 3339 strings or dates), `geo` (points
//!   ordered by latitude, for radius and box conditions) and `text` (words, for text and
//!   phrase matches).
//!
//! [`PayloadIndex::candidates`] answers a filter with the points of its most selective
//! top-level `must` condition the index covers: a superset of the matches, each still checked
//! against the whole filter.

use crate::filter::{Condition, EARTH_RADIUS_M, Filter, GeoPoint, Match, as_integer, lookup};
use crate::model::{IndexKind, Payload, PointKey};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

/// A value the exact indexes know.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IKey {
    S(String),
    I(i64),
    B(bool),
}

/// Longest keyword indexed; longer strings (free text) are only matched by scanning (or by a
/// declared text index).
const MAX_INDEXED_KEYWORD: usize = 128;

fn ikeys(v: &Value, out: &mut Vec<IKey>) {
    match v {
        Value::String(s) if s.len() <= MAX_INDEXED_KEYWORD => out.push(IKey::S(s.clone())),
        Value::Bool(b) => out.push(IKey::B(*b)),
        Value::Number(_) => {
            if let Some(i) = as_integer(v) {
                out.push(IKey::I(i));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| match i {
            Value::Array(_) => {}
            _ => ikeys(i, out),
        }),
        _ => {}
    }
}

/// The exact keys a matcher looks up; `None` when an exact index cannot answer it (ranges,
/// dates, geo, text; keywords too long to be indexed, which the index cannot say are absent).
fn index_keys(matcher: &Match) -> Option<Vec<IKey>> {
    let iks: Vec<IKey> = match matcher {
        Match::Keyword(s) => vec![IKey::S(s.clone())],
        Match::Integer(i) => vec![IKey::I(*i)],
        Match::Bool(b) => vec![IKey::B(*b)],
        Match::AnyKeyword(set) => set.iter().map(|s| IKey::S(s.clone())).collect(),
        Match::AnyInteger(set) => set.iter().map(|i| IKey::I(*i)).collect(),
        Match::Range(_)
        | Match::Datetime(_)
        | Match::GeoRadius { .. }
        | Match::GeoBox { .. }
        | Match::Text(_)
        | Match::Phrase(_) => return None,
    };
    let long = |k: &IKey| matches!(k, IKey::S(s) if s.len() > MAX_INDEXED_KEYWORD);
    (!iks.iter().any(long)).then_some(iks)
}

/// An `f64` as a `u64` of the same order (negative numbers below positive ones).
fn ordered(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

type Postings<K> = HashMap<K, HashSet<PointKey>>;
type Ordered = BTreeMap<u64, HashSet<PointKey>>;

/// One declared index's values.
enum Values {
    /// `keyword`, `bool`.
    Exact(Postings<IKey>),
    /// `integer`, `float`, `datetime` (microseconds since the epoch): by [`ordered`] value.
    Ordered(Ordered),
    /// `geo`: by [`ordered`] latitude.
    Geo(Ordered),
    /// `text`: by word.
    Words(Postings<String>),
}

struct Declared {
    key: String,
    path: Vec<String>,
    kind: IndexKind,
    values: Values,
}

/// What one declared index holds of a payload value (an array: of each element).
enum Keys {
    Exact(Vec<IKey>),
    Ordered(Vec<u64>),
    Words(Vec<String>),
}

impl Declared {
    fn keys(&self, payload: &Payload) -> Option<Keys> {
        let v = lookup(payload, &self.path)?;
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        Some(match self.kind {
            IndexKind::Keyword | IndexKind::Bool => {
                let mut out = Vec::new();
                items.iter().for_each(|v| ikeys(v, &mut out));
                Keys::Exact(out)
            }
            IndexKind::Integer | IndexKind::Float => Keys::Ordered(
                items
                    .iter()
                    .filter_map(|v| v.as_f64())
                    .map(ordered)
                    .collect(),
            ),
            IndexKind::Datetime => Keys::Ordered(
                items
                    .iter()
                    .filter_map(|v| v.as_str().and_then(crate::filter::parse_datetime))
                    .map(|t| ordered(t as f64))
                    .collect(),
            ),
            IndexKind::Geo => Keys::Ordered(
                items
                    .iter()
                    .filter_map(|v| GeoPoint::from_value(v))
                    .map(|p| ordered(p.lat))
                    .collect(),
            ),
            IndexKind::Text => {
                let mut w: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .flat_map(crate::filter::words)
                    .collect();
                w.sort_unstable();
                w.dedup();
                Keys::Words(w)
            }
        })
    }

    fn apply(&mut self, key: &PointKey, payload: &Payload, add: bool) {
        fn change<K>(map: &mut impl PostingMap<K>, ks: Vec<K>, key: &PointKey, add: bool) {
            for k in ks {
                map.change(k, key, add);
            }
        }
        let Some(keys) = self.keys(payload) else {
            return;
        };
        match (&mut self.values, keys) {
            (Values::Exact(m), Keys::Exact(ks)) => change(m, ks, key, add),
            (Values::Ordered(m) | Values::Geo(m), Keys::Ordered(ks)) => change(m, ks, key, add),
            (Values::Words(m), Keys::Words(ks)) => change(m, ks, key, add),
            _ => unreachable!("a declared index's keys are of its kind"),
        }
    }

    /// The posting sets that together hold every point `matcher` may match; `None` when this
    /// index cannot answer it.
    fn sets<'a>(
        &'a self,
        matcher: &Match,
        empty: &'a HashSet<PointKey>,
    ) -> Option<Vec<&'a HashSet<PointKey>>> {
        let range =
            |m: &'a Ordered, lo: Bound<f64>, hi: Bound<f64>| -> Vec<&'a HashSet<PointKey>> {
                let lo = lo.map(ordered);
                let hi = hi.map(ordered);
                let (a, b) = match (lo, hi) {
                    (
                        Bound::Included(a) | Bound::Excluded(a),
                        Bound::Included(b) | Bound::Excluded(b),
                    ) => (a, b),
                    _ => (0, 1),
                };
                let empty_range = a > b
                    || (a == b
                        && (matches!(lo, Bound::Excluded(_)) || matches!(hi, Bound::Excluded(_))));
                if empty_range {
                    return Vec::new();
                }
                m.range((lo, hi)).map(|(_, s)| s).collect()
            };
        let lower = |gt: Option<f64>, gte: Option<f64>| match (gt, gte) {
            (Some(a), Some(b)) if a >= b => Bound::Excluded(a),
            (_, Some(b)) => Bound::Included(b),
            (Some(a), None) => Bound::Excluded(a),
            (None, None) => Bound::Unbounded,
        };
        let upper = |lt: Option<f64>, lte: Option<f64>| match (lt, lte) {
            (Some(a), Some(b)) if a <= b => Bound::Excluded(a),
            (_, Some(b)) => Bound::Included(b),
            (Some(a), None) => Bound::Excluded(a),
            (None, None) => Bound::Unbounded,
        };
        match (&self.values, matcher) {
            (Values::Exact(m), _) => {
                let iks = index_keys(matcher)?;
                Some(iks.iter().map(|ik| m.get(ik).unwrap_or(empty)).collect())
            }
            (Values::Ordered(m), Match::Range(r)) if self.kind != IndexKind::Datetime => {
                Some(range(m, lower(r.gt, r.gte), upper(r.lt, r.lte)))
            }
            (Values::Ordered(m), Match::Integer(i)) if self.kind != IndexKind::Datetime => {
                let x = *i as f64;
                Some(range(m, Bound::Included(x), Bound::Included(x)))
            }
            (Values::Ordered(m), Match::AnyInteger(set)) if self.kind != IndexKind::Datetime => {
                Some(
                    set.iter()
                        .flat_map(|i| {
                            let x = *i as f64;
                            range(m, Bound::Included(x), Bound::Included(x))
                        })
                        .collect(),
                )
            }
            (Values::Ordered(m), Match::Datetime(r)) if self.kind == IndexKind::Datetime => {
                let f = |b: Option<i64>| b.map(|t| t as f64);
                Some(range(m, lower(f(r.gt), f(r.gte)), upper(f(r.lt), f(r.lte))))
            }
            (
                Values::Geo(m),
                Match::GeoBox {
                    top_left,
                    bottom_right,
                },
            ) => Some(range(
                m,
                Bound::Included(bottom_right.lat),
                Bound::Included(top_left.lat),
            )),
            (Values::Geo(m), Match::GeoRadius { center, meters }) => {
                // The band of latitudes the circle spans (a degree of latitude is the same
                // length everywhere on the sphere), widened a little for rounding.
                let deg = meters / (EARTH_RADIUS_M * std::f64::consts::PI / 180.0) + 1e-9;
                Some(range(
                    m,
                    Bound::Included((center.lat - deg).max(-90.0)),
                    Bound::Included((center.lat + deg).min(90.0)),
                ))
            }
            (Values::Words(m), Match::Text(words) | Match::Phrase(words)) => {
                // Every word must be there: the rarest word's points hold every match.
                let rarest = words
                    .iter()
                    .map(|w| m.get(w).unwrap_or(empty))
                    .min_by_key(|s| s.len())?;
                Some(vec![rarest])
            }
            _ => None,
        }
    }

    /// Whether [`Declared::sets`] answers `matcher`, without computing the sets (a range
    /// over many values costs as many steps).
    fn answers(&self, matcher: &Match) -> bool {
        let numeric = !matches!(self.kind, IndexKind::Datetime);
        match (&self.values, matcher) {
            (Values::Exact(_), m) => index_keys(m).is_some(),
            (Values::Ordered(_), Match::Range(_) | Match::Integer(_) | Match::AnyInteger(_)) => {
                numeric
            }
            (Values::Ordered(_), Match::Datetime(_)) => !numeric,
            (Values::Geo(_), Match::GeoBox { .. } | Match::GeoRadius { .. }) => true,
            (Values::Words(_), Match::Text(w) | Match::Phrase(w)) => !w.is_empty(),
            _ => false,
        }
    }

    fn memory_bytes(&self) -> u64 {
        let sets: Box<dyn Iterator<Item = &HashSet<PointKey>>> = match &self.values {
            Values::Exact(m) => Box::new(m.values()),
            Values::Ordered(m) | Values::Geo(m) => Box::new(m.values()),
            Values::Words(m) => Box::new(m.values()),
        };
        sets.map(|s| s.len() as u64 * 48 + 64).sum()
    }
}

/// A map from index keys to the points holding them.
trait PostingMap<K> {
    fn change(&mut self, k: K, key: &PointKey, add: bool);
}

impl<K: std::hash::Hash + Eq> PostingMap<K> for Postings<K> {
    fn change(&mut self, k: K, key: &PointKey, add: bool) {
        if add {
            self.entry(k).or_default().insert(key.clone());
        } else if let Some(set) = self.get_mut(&k) {
            set.remove(key);
            if set.is_empty() {
                self.remove(&k);
            }
        }
    }
}

impl PostingMap<u64> for Ordered {
    fn change(&mut self, k: u64, key: &PointKey, add: bool) {
        if add {
            self.entry(k).or_default().insert(key.clone());
        } else if let Some(set) = self.get_mut(&k) {
            set.remove(key);
            if set.is_empty() {
                self.remove(&k);
            }
        }
    }
}

/// Payload values → the live points holding them (see the module documentation).
#[derive(Default)]
pub struct PayloadIndex {
    fields: HashMap<String, HashMap<IKey, HashSet<PointKey>>>,
    declared: Vec<Declared>,
}

impl PayloadIndex {
    /// An empty index with the spec's declared indexes.
    pub fn new(declared: &BTreeMap<String, IndexKind>) -> Self {
        PayloadIndex {
            fields: HashMap::new(),
            declared: declared
                .iter()
                .map(|(key, &kind)| Declared {
                    key: key.clone(),
                    path: crate::filter::path(key),
                    kind,
                    values: match kind {
                        IndexKind::Keyword | IndexKind::Bool => Values::Exact(HashMap::new()),
                        IndexKind::Integer | IndexKind::Float | IndexKind::Datetime => {
                            Values::Ordered(BTreeMap::new())
                        }
                        IndexKind::Geo => Values::Geo(BTreeMap::new()),
                        IndexKind::Text => Values::Words(HashMap::new()),
                    },
                })
                .collect(),
        }
    }

    /// The same declared indexes, empty.
    pub fn emptied(&self) -> Self {
        let declared = self
            .declared
            .iter()
            .map(|d| (d.key.clone(), d.kind))
            .collect();
        PayloadIndex::new(&declared)
    }

    pub fn insert(&mut self, key: &PointKey, payload: &Payload) {
        let mut buf = Vec::new();
        for (field, v) in payload {
            buf.clear();
            ikeys(v, &mut buf);
            if buf.is_empty() {
                continue;
            }
            let f = self.fields.entry(field.clone()).or_default();
            for ik in buf.drain(..) {
                f.entry(ik).or_default().insert(key.clone());
            }
        }
        for d in &mut self.declared {
            d.apply(key, payload, true);
        }
    }

    pub fn remove(&mut self, key: &PointKey, payload: &Payload) {
        let mut buf = Vec::new();
        for (field, v) in payload {
            buf.clear();
            ikeys(v, &mut buf);
            let Some(f) = self.fields.get_mut(field) else {
                continue;
            };
            for ik in buf.drain(..) {
                f.change(ik, key, false);
            }
            if f.is_empty() {
                self.fields.remove(field);
            }
        }
        for d in &mut self.declared {
            d.apply(key, payload, false);
        }
    }

    /// The posting sets of one condition, when some part of the index answers it.
    fn sets<'a>(
        &'a self,
        c: &Condition,
        empty: &'a HashSet<PointKey>,
    ) -> Option<Vec<&'a HashSet<PointKey>>> {
        let Condition::Field { key, path, matcher } = c else {
            return None;
        };
        let declared = self
            .declared
            .iter()
            .filter(|d| &d.key == key)
            .find_map(|d| d.sets(matcher, empty));
        if declared.is_some() {
            return declared;
        }
        if path.len() != 1 {
            return None;
        }
        let iks = index_keys(matcher)?;
        let f = self.fields.get(&path[0]);
        Some(
            iks.iter()
                .map(|ik| f.and_then(|f| f.get(ik)).unwrap_or(empty))
                .collect(),
        )
    }

    /// Keys that may match one `must` condition, for the most selective condition the index
    /// can answer: a superset of the filter's matches. `None` when no condition is indexed.
    pub fn candidates(&self, filter: &Filter) -> Option<Vec<PointKey>> {
        self.candidates_up_to(filter, usize::MAX)
    }

    /// [`PayloadIndex::candidates`] when they are at most `max` (counted before any key is
    /// collected); `None` otherwise.
    pub fn candidates_up_to(&self, filter: &Filter, max: usize) -> Option<Vec<PointKey>> {
        let mut best: Option<Vec<&HashSet<PointKey>>> = None;
        let mut best_ids: Option<&HashSet<PointKey>> = None;
        let mut best_len = usize::MAX;
        let empty = HashSet::new();
        for c in &filter.must {
            if let Condition::HasId(ids) = c {
                if ids.len() < best_len {
                    best_len = ids.len();
                    best_ids = Some(ids);
                    best = None;
                }
                continue;
            }
            let Some(sets) = self.sets(c, &empty) else {
                continue;
            };
            let n: usize = sets.iter().map(|s| s.len()).sum();
            if n < best_len {
                best_len = n;
                best = Some(sets);
                best_ids = None;
            }
        }
        if best_len > max {
            return None;
        }
        if let Some(ids) = best_ids {
            return Some(ids.iter().cloned().collect());
        }
        let sets = best?;
        let mut out: Vec<PointKey> = sets.iter().flat_map(|s| s.iter().cloned()).collect();
        if sets.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        Some(out)
    }

    /// Whether [`PayloadIndex::candidates`] can narrow `filter` (without computing it).
    pub fn narrows(&self, filter: &Filter) -> bool {
        filter.must.iter().any(|c| match c {
            Condition::HasId(_) => true,
            Condition::Field { key, path, matcher } => {
                self.declared
                    .iter()
                    .any(|d| &d.key == key && d.answers(matcher))
                    || (path.len() == 1 && index_keys(matcher).is_some())
            }
            _ => false,
        })
    }

    pub fn memory_bytes(&self) -> u64 {
        let implicit: u64 = self
            .fields
            .values()
            .flat_map(|f| f.values())
            .map(|s| s.len() as u64 * 48 + 64)
            .sum();
        implicit
            + self
                .declared
                .iter()
                .map(Declared::memory_bytes)
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Bounds, TimeRange, parse_datetime, words};
    use serde_json::json;

    fn index() -> PayloadIndex {
        let declared = [
            ("doc.text", IndexKind::Text),
            ("at", IndexKind::Datetime),
            ("price", IndexKind::Float),
            ("n", IndexKind::Integer),
            ("place", IndexKind::Geo),
            ("meta.kind", IndexKind::Keyword),
        ];
        let mut ix =
            PayloadIndex::new(&declared.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        let rows = [
            json!({"doc": {"text": "The capital city"}, "at": "2004-12-31", "price": -2.5, "n": 3,
                   "place": {"lat": 48.85, "lon": 2.35}, "meta": {"kind": "a"}}),
            json!({"doc": {"text": ["a river", "the CITY"]}, "at": "2005-01-02T00:00:00+01:00",
                   "price": 10.0, "n": [1, 7], "place": [{"lat": -33.9, "lon": 151.2}], "meta": {"kind": "b"}}),
            json!({"doc": {"text": 7}, "at": "not a date", "price": "cheap", "place": {"lat": 95, "lon": 0}}),
        ];
        for (i, r) in rows.iter().enumerate() {
            ix.insert(&PointKey::Num(i as u64), r.as_object().unwrap());
        }
        ix
    }

    fn must(key: &str, m: Match) -> Filter {
        Filter {
            must: vec![Condition::field(key, m)],
            ..Default::default()
        }
    }

    fn nums(c: Option<Vec<PointKey>>) -> Option<Vec<u64>> {
        c.map(|v| {
            let mut n: Vec<u64> = v
                .into_iter()
                .map(|k| match k {
                    PointKey::Num(n) => n,
                    _ => panic!(),
                })
                .collect();
            n.sort();
            n
        })
    }

    /// Each declared kind narrows its conditions to the points that may match (every match
    /// among them); what it cannot answer it leaves to the scan.
    #[test]
    fn declared_indexes_narrow_each_kind() {
        let ix = index();
        let cands = |f: &Filter| nums(ix.candidates(f));
        let text = |t: &str| must("doc.text", Match::Text(words(t)));
        assert_eq!(cands(&text("city")), Some(vec![0, 1]));
        assert_eq!(cands(&text("river city")), Some(vec![1]));
        assert_eq!(cands(&text("capital nowhere")), Some(vec![]));
        assert_eq!(
            cands(&must("doc.text", Match::Phrase(words("the city")))),
            Some(vec![0, 1])
        );
        let since = |t: &str| TimeRange {
            gt: parse_datetime(t),
            ..Default::default()
        };
        // 2005-01-02T00:00:00+01:00 is 2005-01-01T23:00Z.
        assert_eq!(
            cands(&must("at", Match::Datetime(since("2005-01-01T22:59:59Z")))),
            Some(vec![1])
        );
        assert_eq!(
            cands(&must("at", Match::Datetime(since("2005-01-01T23:00:00Z")))),
            Some(vec![])
        );
        let range = |gte: f64, lt: f64| {
            Match::Range(Bounds {
                gte: Some(gte),
                lt: Some(lt),
                ..Default::default()
            })
        };
        assert_eq!(cands(&must("price", range(-3.0, 0.0))), Some(vec![0]));
        assert_eq!(cands(&must("price", range(-2.5, 10.0))), Some(vec![0]));
        assert_eq!(
            cands(&must("price", range(5.0, 1.0))),
            Some(vec![]),
            "an empty range"
        );
        assert_eq!(cands(&must("n", Match::Integer(7))), Some(vec![1]));
        assert_eq!(
            cands(&must("n", Match::AnyInteger([3, 1].into()))),
            Some(vec![0, 1])
        );
        let paris = GeoPoint {
            lat: 48.85,
            lon: 2.35,
        };
        assert_eq!(
            cands(&must(
                "place",
                Match::GeoRadius {
                    center: paris,
                    meters: 1_000.0
                }
            )),
            Some(vec![0])
        );
        let band = Match::GeoBox {
            top_left: GeoPoint {
                lat: 0.0,
                lon: 100.0,
            },
            bottom_right: GeoPoint {
                lat: -40.0,
                lon: 160.0,
            },
        };
        assert_eq!(cands(&must("place", band)), Some(vec![1]));
        assert_eq!(
            cands(&must("meta.kind", Match::Keyword("b".into()))),
            Some(vec![1])
        );
        // Not answered: a kind the index is not, or an undeclared nested key.
        assert_eq!(cands(&must("price", Match::Text(words("cheap")))), None);
        assert_eq!(cands(&must("doc.other", Match::Text(words("city")))), None);
        assert!(!ix.narrows(&must("doc.other", Match::Text(words("city")))));
        assert!(ix.narrows(&text("city")));
        assert!(ix.narrows(&must("price", range(0.0, 1.0))));
        assert!(ix.narrows(&must(
            "place",
            Match::GeoRadius {
                center: paris,
                meters: 5.0
            }
        )));
        assert!(
            !ix.narrows(&must("at", range(0.0, 1.0))),
            "a datetime index takes datetimes"
        );
        // Counted before they are collected: over the limit, none.
        assert_eq!(ix.candidates_up_to(&text("city"), 1), None);
        assert_eq!(
            nums(ix.candidates_up_to(&text("city"), 2)),
            Some(vec![0, 1])
        );
        // The most selective condition wins; removing a point takes it out of every index.
        let both = Filter {
            must: vec![
                Condition::field("doc.text", Match::Text(words("city"))),
                Condition::field("n", Match::Integer(7)),
            ],
            ..Default::default()
        };
        assert_eq!(cands(&both), Some(vec![1]));
        let mut ix = ix;
        let row1 = json!({"doc": {"text": ["a river", "the CITY"]}, "at": "2005-01-02T00:00:00+01:00",
            "price": 10.0, "n": [1, 7], "place": [{"lat": -33.9, "lon": 151.2}], "meta": {"kind": "b"}});
        ix.remove(&PointKey::Num(1), row1.as_object().unwrap());
        assert_eq!(nums(ix.candidates(&text("city"))), Some(vec![0]));
        assert_eq!(
            nums(ix.candidates(&must("n", Match::Integer(7)))),
            Some(vec![])
        );
        assert_eq!(nums(ix.emptied().candidates(&text("city"))), Some(vec![]));
    }
}
