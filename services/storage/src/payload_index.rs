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

use crate::filter::{
    Condition, EARTH_RADIUS_M, Filter, GeoPoint, Match, as_integer, lookup, parse_datetime, words,
};
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

/// An `f64` as a `u64` of the same order (negative numbers below positive ones; -0 is 0, so
/// that values and bounds compare as the floats do).
fn ordered(x: f64) -> u64 {
    let b = if x == 0.0 { 0.0f64 } else { x }.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

type Postings<K> = HashMap<K, HashSet<PointKey>>;
type Ordered = BTreeMap<u64, HashSet<PointKey>>;

/// Add `key` to the posting of `k` in `map` (a [`Postings`] or an [`Ordered`]), or remove it
/// (a posting left empty goes).
macro_rules! change {
    ($map:expr, $k:expr, $key:expr, $add:expr) => {{
        let (map, k, key) = ($map, $k, $key);
        if $add {
            map.entry(k).or_default().insert(key.clone());
        } else if let Some(set) = map.get_mut(&k) {
            set.remove(key);
            if set.is_empty() {
                map.remove(&k);
            }
        }
    }};
}

/// One declared index: its values, by kind (integer and float alike: numbers; keyword and
/// bool alike: exact values).
enum Values {
    Exact(Postings<IKey>),
    Numbers(Ordered),
    /// Microseconds since the epoch.
    Dates(Ordered),
    /// Latitudes.
    Geo(Ordered),
    Words(Postings<String>),
}

struct Declared {
    key: String,
    path: Vec<String>,
    kind: IndexKind,
    values: Values,
}

/// What a condition reads in one declared index, decided without reading it.
enum Lookup<'a> {
    /// An index of no point has no postings map.
    Exact(Option<&'a Postings<IKey>>, Vec<IKey>),
    /// Ranges of [`ordered`] values: numbers, dates or latitudes.
    Ranges(&'a Ordered, Vec<(Bound<f64>, Bound<f64>)>),
    /// Every word must be there: the rarest word's points hold every match.
    Words(&'a Postings<String>, &'a [String]),
}

impl<'a> Lookup<'a> {
    /// The posting sets that together hold every point the condition may match.
    fn sets(self, empty: &'a HashSet<PointKey>) -> Vec<&'a HashSet<PointKey>> {
        match self {
            Lookup::Exact(m, iks) => iks
                .iter()
                .map(|ik| m.and_then(|m| m.get(ik)).unwrap_or(empty))
                .collect(),
            Lookup::Ranges(m, ranges) => ranges
                .iter()
                .filter(|(lo, hi)| not_empty(*lo, *hi))
                .flat_map(|(lo, hi)| m.range((lo.map(ordered), hi.map(ordered))).map(|(_, s)| s))
                .collect(),
            Lookup::Words(m, words) => words
                .iter()
                .map(|w| m.get(w).unwrap_or(empty))
                .min_by_key(|s| s.len())
                .into_iter()
                .collect(),
        }
    }
}

/// Whether a range holds any value (`BTreeMap::range` refuses one that cannot).
fn not_empty(lo: Bound<f64>, hi: Bound<f64>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

/// The tighter of two lower (or, with `upper`, upper) bounds of a filter's range.
fn bound(strict: Option<f64>, or_equal: Option<f64>, upper: bool) -> Bound<f64> {
    let strict_is_tighter = |a: f64, b: f64| if upper { a <= b } else { a >= b };
    match (strict, or_equal) {
        (Some(a), Some(b)) if strict_is_tighter(a, b) => Bound::Excluded(a),
        (_, Some(b)) => Bound::Included(b),
        (Some(a), None) => Bound::Excluded(a),
        (None, None) => Bound::Unbounded,
    }
}

impl Declared {
    /// Take `key`'s payload values into the index (`add`), or out of it.
    fn apply(&mut self, key: &PointKey, payload: &Payload, add: bool) {
        let Some(v) = lookup(payload, &self.path) else {
            return;
        };
        let items = match v {
            Value::Array(a) => a.as_slice(),
            v => std::slice::from_ref(v),
        };
        match &mut self.values {
            Values::Exact(m) => {
                let mut iks = Vec::new();
                ikeys(v, &mut iks);
                for ik in iks {
                    change!(&mut *m, ik, key, add);
                }
            }
            Values::Numbers(m) => {
                for x in items.iter().filter_map(Value::as_f64) {
                    change!(&mut *m, ordered(x), key, add);
                }
            }
            Values::Dates(m) => {
                let dates = items
                    .iter()
                    .filter_map(|v| v.as_str().and_then(parse_datetime));
                for t in dates {
                    change!(&mut *m, ordered(t as f64), key, add);
                }
            }
            Values::Geo(m) => {
                for p in items.iter().filter_map(GeoPoint::from_value) {
                    change!(&mut *m, ordered(p.lat), key, add);
                }
            }
            Values::Words(m) => {
                for w in items.iter().filter_map(Value::as_str).flat_map(words) {
                    change!(&mut *m, w, key, add);
                }
            }
        }
    }

    /// What `matcher` reads here; `None` when this index cannot answer it.
    fn lookup<'a>(&'a self, matcher: &'a Match) -> Option<Lookup<'a>> {
        let one = |x: f64| (Bound::Included(x), Bound::Included(x));
        Some(match (&self.values, matcher) {
            (Values::Exact(m), _) => Lookup::Exact(Some(m), index_keys(matcher)?),
            (Values::Numbers(m), Match::Range(r)) => Lookup::Ranges(
                m,
                vec![(bound(r.gt, r.gte, false), bound(r.lt, r.lte, true))],
            ),
            (Values::Numbers(m), Match::Integer(i)) => Lookup::Ranges(m, vec![one(*i as f64)]),
            (Values::Numbers(m), Match::AnyInteger(set)) => {
                Lookup::Ranges(m, set.iter().map(|i| one(*i as f64)).collect())
            }
            (Values::Dates(m), Match::Datetime(r)) => {
                let f = |b: Option<i64>| b.map(|t| t as f64);
                Lookup::Ranges(
                    m,
                    vec![(
                        bound(f(r.gt), f(r.gte), false),
                        bound(f(r.lt), f(r.lte), true),
                    )],
                )
            }
            (
                Values::Geo(m),
                Match::GeoBox {
                    top_left,
                    bottom_right,
                },
            ) => Lookup::Ranges(
                m,
                vec![(
                    Bound::Included(bottom_right.lat),
                    Bound::Included(top_left.lat),
                )],
            ),
            (Values::Geo(m), Match::GeoRadius { center, meters }) => {
                // The band of latitudes the circle spans (a degree of latitude is the same
                // length everywhere on the sphere), widened a little for rounding.
                let deg = meters / (EARTH_RADIUS_M * std::f64::consts::PI / 180.0) + 1e-9;
                Lookup::Ranges(
                    m,
                    vec![(
                        Bound::Included((center.lat - deg).max(-90.0)),
                        Bound::Included((center.lat + deg).min(90.0)),
                    )],
                )
            }
            (Values::Words(m), Match::Text(w) | Match::Phrase(w)) if !w.is_empty() => {
                Lookup::Words(m, w)
            }
            _ => return None,
        })
    }

    fn memory_bytes(&self) -> u64 {
        let sets: Box<dyn Iterator<Item = &HashSet<PointKey>>> = match &self.values {
            Values::Exact(m) => Box::new(m.values()),
            Values::Numbers(m) | Values::Dates(m) | Values::Geo(m) => Box::new(m.values()),
            Values::Words(m) => Box::new(m.values()),
        };
        sets.map(|s| s.len() as u64 * 48 + 64).sum()
    }
}

/// Payload values → the live points holding them (see the module documentation).
#[derive(Default)]
pub struct PayloadIndex {
    fields: HashMap<String, Postings<IKey>>,
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
                        IndexKind::Integer | IndexKind::Float => Values::Numbers(BTreeMap::new()),
                        IndexKind::Datetime => Values::Dates(BTreeMap::new()),
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
                change!(&mut *f, ik, key, true);
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
                change!(&mut *f, ik, key, false);
            }
            if f.is_empty() {
                self.fields.remove(field);
            }
        }
        for d in &mut self.declared {
            d.apply(key, payload, false);
        }
    }

    /// What one condition reads in the index (a declared index first, then the implicit
    /// one), when some part of it answers the condition; decided without reading it.
    fn lookup<'a>(&'a self, c: &'a Condition) -> Option<Lookup<'a>> {
        let Condition::Field { key, path, matcher } = c else {
            return None;
        };
        let declared = self
            .declared
            .iter()
            .filter(|d| &d.key == key)
            .find_map(|d| d.lookup(matcher));
        if declared.is_some() {
            return declared;
        }
        let [field] = path.as_slice() else {
            return None;
        };
        Some(Lookup::Exact(self.fields.get(field), index_keys(matcher)?))
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
            let Some(lookup) = self.lookup(c) else {
                continue;
            };
            let sets = lookup.sets(&empty);
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

    /// Whether [`PayloadIndex::candidates`] can narrow `filter` (without reading the index).
    pub fn narrows(&self, filter: &Filter) -> bool {
        filter
            .must
            .iter()
            .any(|c| matches!(c, Condition::HasId(_)) || self.lookup(c).is_some())
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
        // -0 is 0, in values and in bounds alike.
        let mut zero = index();
        zero.insert(
            &PointKey::Num(9),
            json!({"price": -0.0}).as_object().unwrap(),
        );
        let at_zero = |gte: f64, lte: f64| {
            nums(zero.candidates(&must(
                "price",
                Match::Range(Bounds {
                    gte: Some(gte),
                    lte: Some(lte),
                    ..Default::default()
                }),
            )))
        };
        assert_eq!(at_zero(0.0, -0.0), Some(vec![9]));
        assert_eq!(at_zero(-0.0, 0.0), Some(vec![9]));
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
