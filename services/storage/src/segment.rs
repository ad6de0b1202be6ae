//! The in-memory state of one collection: an appendable segment searched exactly, sealed
//! segments with an HNSW graph, the id map and the payload index.
//!
//! Invariants:
//! - `ids` maps every live key to exactly one location; every other slot is dead (appendable)
//!   or tombstoned (sealed).
//! - A sealed segment's points never change; only its tombstones do. A graph indexes the
//!   offsets that were live when it was built; later tombstones are filtered at search time.
//! - The payload index holds exactly the live points' indexable top-level values.

use crate::distance::Ranked;
use crate::distance::{Row, rank_key, score_row};
use crate::filter::Filter;
use crate::index::{Graph, candidates};
use crate::model::*;
use crate::named::{NamedColumns, NamedGraph};
use crate::payload_index::PayloadIndex;
use crate::quantize::Codes;
use crate::sparse::{SparseColumns, SparseIndex};
use crate::store::{Hit, Include, ScrollParams, SearchInfo, SearchParams};
use crate::vecfile;
use crate::vectors::Vectors;
use std::borrow::Cow;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

/// Where a live point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub seg: u64,
    pub off: u32,
}

/// A segment's point ids in slot order: 8 bytes each while every id is an integer, the
/// general form once a UUID arrives.
#[derive(Debug, Clone)]
pub enum Keys {
    Num(Vec<u64>),
    Any(Vec<PointKey>),
}

impl Default for Keys {
    fn default() -> Self {
        Keys::Num(Vec::new())
    }
}

impl Keys {
    pub fn with_capacity(n: usize) -> Self {
        Keys::Num(Vec::with_capacity(n))
    }
    pub fn len(&self) -> usize {
        match self {
            Keys::Num(v) => v.len(),
            Keys::Any(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn get(&self, off: usize) -> Cow<'_, PointKey> {
        match self {
            Keys::Num(v) => Cow::Owned(PointKey::Num(v[off])),
            Keys::Any(v) => Cow::Borrowed(&v[off]),
        }
    }
    pub fn push(&mut self, key: PointKey) {
        match (&mut *self, key) {
            (Keys::Num(v), PointKey::Num(n)) => v.push(n),
            (Keys::Any(v), key) => v.push(key),
            (Keys::Num(v), key) => {
                let mut all: Vec<PointKey> = Vec::with_capacity(v.capacity().max(v.len() + 1));
                all.extend(v.iter().map(|&n| PointKey::Num(n)));
                all.push(key);
                *self = Keys::Any(all);
            }
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, PointKey>> + '_ {
        (0..self.len()).map(|off| self.get(off))
    }
    pub fn into_keys(self) -> impl Iterator<Item = PointKey> {
        let (nums, any) = match self {
            Keys::Num(v) => (v, Vec::new()),
            Keys::Any(v) => (Vec::new(), v),
        };
        nums.into_iter().map(PointKey::Num).chain(any)
    }
    /// Heap bytes (UUIDs counted at their usual 36 characters).
    pub fn bytes(&self) -> usize {
        match self {
            Keys::Num(v) => v.capacity() * 8,
            Keys::Any(v) => v.capacity() * (std::mem::size_of::<PointKey>() + 36),
        }
    }
}

/// Equal when they hold the same ids in the same order, whatever their form.
impl PartialEq for Keys {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FromIterator<PointKey> for Keys {
    fn from_iter<I: IntoIterator<Item = PointKey>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut keys = Keys::with_capacity(iter.size_hint().0);
        iter.for_each(|k| keys.push(k));
        keys
    }
}

/// A segment's payloads in slot order. Points of many collections carry none: an empty
/// payload costs one 4-byte slot, the others are kept once, densely.
#[derive(Debug, Clone, Default)]
pub struct Payloads {
    slots: Vec<u32>,
    values: Vec<Payload>,
}

const NO_PAYLOAD: u32 = u32::MAX;
static EMPTY_PAYLOAD: std::sync::LazyLock<Payload> = std::sync::LazyLock::new(Payload::new);

impl Payloads {
    pub fn with_capacity(n: usize) -> Self {
        Payloads {
            slots: Vec::with_capacity(n),
            values: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    #[inline]
    pub fn get(&self, off: usize) -> &Payload {
        match self.slots[off] {
            NO_PAYLOAD => &EMPTY_PAYLOAD,
            i => &self.values[i as usize],
        }
    }
    pub fn push(&mut self, payload: Payload) {
        let slot = self.store(payload);
        self.slots.push(slot);
    }
    /// Replace the payload of slot `off`.
    pub fn set(&mut self, off: usize, payload: Payload) {
        match self.slots[off] {
            NO_PAYLOAD => self.slots[off] = self.store(payload),
            i => self.values[i as usize] = payload,
        }
    }
    fn store(&mut self, payload: Payload) -> u32 {
        if payload.is_empty() {
            return NO_PAYLOAD;
        }
        // Offsets are u32 (`Loc`): a segment never holds 2^32 - 1 payloads.
        self.values.push(payload);
        (self.values.len() - 1) as u32
    }
    pub fn iter(&self) -> impl Iterator<Item = &Payload> + '_ {
        (0..self.len()).map(|off| self.get(off))
    }
    pub fn into_payloads(self) -> impl Iterator<Item = Payload> {
        let mut values: Vec<Option<Payload>> = self.values.into_iter().map(Some).collect();
        self.slots.into_iter().map(move |slot| match slot {
            NO_PAYLOAD => Payload::new(),
            i => values[i as usize].take().unwrap_or_default(),
        })
    }
    /// Heap bytes of the slots and the maps' headers (not their entries).
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.values.capacity() * std::mem::size_of::<Payload>()
    }
}

/// Equal when they hold the same payloads in the same slots, however they are stored.
impl PartialEq for Payloads {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FromIterator<Payload> for Payloads {
    fn from_iter<I: IntoIterator<Item = Payload>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut payloads = Payloads::with_capacity(iter.size_hint().0);
        iter.for_each(|p| payloads.push(p));
        payloads
    }
}

/// Points of a segment in slot order.
#[derive(Debug, Clone, Default)]
pub struct SegmentData {
    pub id: u64,
    pub keys: Keys,
    pub vectors: Vectors,
    pub payloads: Payloads,
    pub sparse: SparseColumns,
    pub named: NamedColumns,
}

impl SegmentData {
    /// Empty segment `id` holding vectors of `datatype`.
    pub fn new(id: u64, datatype: Datatype) -> Self {
        SegmentData {
            id,
            vectors: Vectors::with_capacity(datatype, 0),
            ..Default::default()
        }
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    #[inline]
    pub fn vector(&self, dim: usize, off: usize) -> Row<'_> {
        self.vectors.row(dim, off)
    }
    pub fn memory_bytes(&self) -> u64 {
        (self.vectors.bytes()
            + self.keys.bytes()
            + self.payloads.bytes()
            + self.sparse.bytes()
            + self.named.bytes()) as u64
    }
}

/// The segment writes go to. Slots of overwritten keys are reused in place; deleted slots
/// stay dead until the segment is sealed.
#[derive(Default)]
pub struct Appendable {
    pub data: SegmentData,
    pub alive: Vec<bool>,
    pub live: usize,
}

impl Appendable {
    pub fn new(datatype: Datatype) -> Self {
        Appendable {
            data: SegmentData::new(0, datatype),
            ..Default::default()
        }
    }
}

pub struct Sealed {
    pub data: Arc<SegmentData>,
    pub deleted: Vec<bool>,
    pub deleted_count: usize,
    pub graph: Option<Arc<Graph>>,
    /// The graph's calibrated `ef` for k = 10 ([`Graph::calibrate`]); `None` until known.
    pub default_ef: Option<usize>,
    /// Quantized collections: the codes the graph search walks (built with the graph).
    pub codes: Option<Arc<Codes>>,
    /// The inverted indexes of its sparse vectors by name, built when first searched.
    pub sparse_indexes: std::sync::OnceLock<BTreeMap<String, SparseIndex>>,
    /// The graphs of its named dense vectors by name (built with `graph`).
    pub named_graphs: BTreeMap<String, NamedGraph>,
}

/// What a graph build produces for a segment: the graph, its quantized codes (quantized
/// collections) and its calibrated `ef`.
pub struct Index {
    pub graph: Arc<Graph>,
    pub codes: Option<Arc<Codes>>,
    pub default_ef: usize,
    /// The graphs of the segment's named dense vectors.
    pub named: BTreeMap<String, NamedGraph>,
}

impl Sealed {
    pub fn new(data: Arc<SegmentData>, deleted: Vec<bool>, graph: Option<Arc<Graph>>) -> Self {
        let deleted_count = deleted.iter().filter(|d| **d).count();
        Sealed {
            data,
            deleted,
            deleted_count,
            graph,
            default_ef: None,
            codes: None,
            sparse_indexes: Default::default(),
            named_graphs: BTreeMap::new(),
        }
    }

    /// Sealed segment with its index (when it has one).
    pub fn indexed(data: Arc<SegmentData>, deleted: Vec<bool>, index: Option<Index>) -> Self {
        match index {
            None => Sealed::new(data, deleted, None),
            Some(i) => Sealed {
                default_ef: Some(i.default_ef),
                codes: i.codes,
                named_graphs: i.named,
                ..Sealed::new(data, deleted, Some(i.graph))
            },
        }
    }

    /// The `ef` of a search for `k` that sets none: the graph's calibrated one (scaled with
    /// k), never below `floor` (`--search-ef`) nor k.
    pub fn ef_for(&self, k: usize, floor: usize) -> usize {
        Sealed::ef_with(self.default_ef, k, floor)
    }

    /// [`Sealed::ef_for`] of a graph calibrated at `calibrated` (a named vector's).
    pub fn ef_with(calibrated: Option<usize>, k: usize, floor: usize) -> usize {
        let calibrated = calibrated.map_or(0, |e| e * k.div_ceil(10));
        calibrated.max(floor).max(k)
    }
    pub fn live(&self) -> usize {
        self.data.len() - self.deleted_count
    }

    /// The inverted index of sparse vector `name` (built on first use).
    fn sparse_index(&self, name: &str) -> Option<&SparseIndex> {
        self.sparse_indexes
            .get_or_init(|| {
                self.data
                    .sparse
                    .columns()
                    .map(|(n, c)| (n.to_string(), SparseIndex::build(c)))
                    .collect()
            })
            .get(name)
    }
}

/// The dense vector a search reads: the unnamed one, or the named one of `name`.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    pub name: Option<&'a str>,
    pub metric: Metric,
    pub dim: usize,
}

impl<'a> Column<'a> {
    /// The unnamed vector of `spec`, or its named vector `name` (which `spec` declares).
    pub fn of(spec: &CollectionSpec, name: Option<&'a str>) -> Option<Column<'a>> {
        match name {
            None => Some(Column {
                name: None,
                metric: spec.metric,
                dim: spec.dimension as usize,
            }),
            Some(n) => spec.vectors.get(n).map(|v| Column {
                name: Some(n),
                metric: v.metric,
                dim: v.dimension as usize,
            }),
        }
    }

    /// The vector slot `off` of `d` has (`None`: the slot has no vector of this name).
    #[inline]
    pub fn row<'d>(&self, d: &'d SegmentData, off: usize) -> Option<Row<'d>> {
        match self.name {
            None => Some(d.vector(self.dim, off)),
            Some(n) => d.named.column(n)?.get(off),
        }
    }

    /// The graph of `s` over this vector, the rows it reads, its calibrated `ef`, and (a
    /// named vector's graph, which indexes its column's rows) each row's slot.
    pub fn graph<'s>(&self, s: &'s Sealed) -> Option<Indexed<'s>> {
        match self.name {
            None => s.graph.as_deref().map(|graph| Indexed {
                graph,
                rows: s.data.vectors.all(),
                codes: s.codes.as_deref(),
                calibrated: s.default_ef,
                slots: None,
            }),
            Some(n) => {
                let g = s.named_graphs.get(n)?;
                let col = s.data.named.column(n)?;
                Some(Indexed {
                    graph: &g.graph,
                    rows: col.values(),
                    codes: g.codes.as_deref(),
                    calibrated: Some(g.default_ef),
                    slots: Some(col.slots()),
                })
            }
        }
    }
}

/// A sealed segment's graph over one dense vector ([`Column::graph`]).
pub struct Indexed<'s> {
    pub graph: &'s Graph,
    pub rows: Row<'s>,
    /// A quantized vector's codes of those rows, which the walk reads instead.
    pub codes: Option<&'s Codes>,
    pub calibrated: Option<usize>,
    /// Row → slot, when the graph indexes rows of a named column (its offsets are slots
    /// otherwise).
    pub slots: Option<&'s [u32]>,
}

/// Points of a sealed segment sampled to estimate how many a filter the payload index cannot
/// narrow keeps (what decides between walking a sealed segment's graph and scanning it).
const FILTER_SAMPLE: usize = 256;

/// How many of a segment's `slots` pass `accept`, estimated from [`FILTER_SAMPLE`] slots
/// spread evenly over it (all of them when there are no more).
fn estimate_kept(slots: usize, accept: &dyn Fn(usize) -> bool) -> usize {
    if slots <= FILTER_SAMPLE {
        return (0..slots).filter(|&o| accept(o)).count();
    }
    let kept = (0..FILTER_SAMPLE)
        .filter(|i| accept(i * slots / FILTER_SAMPLE))
        .count();
    kept * slots / FILTER_SAMPLE
}

/// The id map: every live key and where it is, in `PointKey`'s order (integers, then UUIDs)
/// for scrolling. Integer ids, the common case, pack their location into a `u64`: in a table
/// indexed by the id while the ids are dense (8 bytes an id), in a B-tree when they are not.
#[derive(Debug, Default)]
pub struct IdMap {
    nums: Nums,
    uuids: BTreeMap<String, Loc>,
}

/// A dense table may hold up to this many vacant slots beyond twice its live ids.
const DENSE_SLACK: u64 = 4_096;
/// An empty slot of the dense table (no location packs to it: segment ids stay below 2^32 - 1).
const VACANT: u64 = u64::MAX;

/// Integer ids to packed locations. `Dense` while the largest id is below twice the live ids
/// (plus `DENSE_SLACK`); an insert beyond that turns it into `Sparse`, which turns back into
/// `Dense` when the ids have filled in (checked each time the count doubles, so the
/// conversions cost O(1) an insert, amortized).
#[derive(Debug)]
enum Nums {
    Dense {
        slots: Vec<u64>,
        len: usize,
    },
    Sparse {
        map: BTreeMap<u64, u64>,
        recheck_at: usize,
    },
}

impl Default for Nums {
    fn default() -> Self {
        Nums::Dense {
            slots: Vec::new(),
            len: 0,
        }
    }
}

fn dense_fits(max_id: u64, len: usize) -> bool {
    max_id < 2 * len as u64 + DENSE_SLACK
}

impl Nums {
    fn len(&self) -> usize {
        match self {
            Nums::Dense { len, .. } => *len,
            Nums::Sparse { map, .. } => map.len(),
        }
    }
    fn get(&self, n: u64) -> Option<u64> {
        match self {
            Nums::Dense { slots, .. } => usize::try_from(n)
                .ok()
                .and_then(|i| slots.get(i))
                .copied()
                .filter(|&v| v != VACANT),
            Nums::Sparse { map, .. } => map.get(&n).copied(),
        }
    }
    fn get_mut(&mut self, n: u64) -> Option<&mut u64> {
        match self {
            Nums::Dense { slots, .. } => usize::try_from(n)
                .ok()
                .and_then(|i| slots.get_mut(i))
                .filter(|v| **v != VACANT),
            Nums::Sparse { map, .. } => map.get_mut(&n),
        }
    }
    fn insert(&mut self, n: u64, v: u64) {
        debug_assert_ne!(v, VACANT);
        match self {
            Nums::Dense { slots, len } => {
                if let Some(slot) = usize::try_from(n).ok().and_then(|i| slots.get_mut(i)) {
                    *len += usize::from(*slot == VACANT);
                    *slot = v;
                } else if dense_fits(n, *len + 1) {
                    slots.resize(n as usize + 1, VACANT);
                    slots[n as usize] = v;
                    *len += 1;
                } else {
                    let mut map: BTreeMap<u64, u64> = self.iter_from(0).collect();
                    map.insert(n, v);
                    let recheck_at = 2 * map.len();
                    *self = Nums::Sparse { map, recheck_at };
                }
            }
            Nums::Sparse { map, recheck_at } => {
                map.insert(n, v);
                if map.len() >= *recheck_at {
                    let max = map.last_key_value().map_or(0, |(&k, _)| k);
                    if dense_fits(max, map.len()) {
                        let mut slots = vec![VACANT; max as usize + 1];
                        for (&k, &v) in map.iter() {
                            slots[k as usize] = v;
                        }
                        *self = Nums::Dense {
                            slots,
                            len: map.len(),
                        };
                    } else {
                        *recheck_at = 2 * map.len();
                    }
                }
            }
        }
    }
    fn remove(&mut self, n: u64) -> Option<u64> {
        match self {
            Nums::Dense { slots, len } => {
                let slot = usize::try_from(n).ok().and_then(|i| slots.get_mut(i))?;
                let v = std::mem::replace(slot, VACANT);
                (v != VACANT).then(|| {
                    *len -= 1;
                    v
                })
            }
            Nums::Sparse { map, .. } => map.remove(&n),
        }
    }
    /// Entries with an id of at least `lo`, in id order.
    fn iter_from(&self, lo: u64) -> Box<dyn Iterator<Item = (u64, u64)> + '_> {
        match self {
            Nums::Dense { slots, .. } => {
                let start = usize::try_from(lo).unwrap_or(usize::MAX).min(slots.len());
                Box::new(
                    slots[start..]
                        .iter()
                        .enumerate()
                        .filter(|&(_, &v)| v != VACANT)
                        .map(move |(i, &v)| ((start + i) as u64, v)),
                )
            }
            Nums::Sparse { map, .. } => Box::new(map.range(lo..).map(|(&k, &v)| (k, v))),
        }
    }
    fn memory_bytes(&self) -> u64 {
        match self {
            Nums::Dense { slots, .. } => slots.capacity() as u64 * 8,
            // B-tree nodes filled about half by ordered inserts.
            Nums::Sparse { map, .. } => map.len() as u64 * 32,
        }
    }
}

#[inline]
fn pack(loc: Loc) -> u64 {
    // One segment id per seal or merge: 2^32 - 1 of them is out of reach of any collection
    // (and `u32::MAX` stays free for `VACANT`).
    let seg = u32::try_from(loc.seg)
        .ok()
        .filter(|&s| s != u32::MAX)
        .expect("segment ids stay below 2^32 - 1");
    (u64::from(seg) << 32) | u64::from(loc.off)
}

#[inline]
fn unpack(v: u64) -> Loc {
    Loc {
        seg: v >> 32,
        off: v as u32,
    }
}

impl IdMap {
    pub fn len(&self) -> usize {
        self.nums.len() + self.uuids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn clear(&mut self) {
        self.nums = Nums::default();
        self.uuids.clear();
    }
    pub fn get(&self, key: &PointKey) -> Option<Loc> {
        match key {
            PointKey::Num(n) => self.nums.get(*n).map(unpack),
            PointKey::Uuid(u) => self.uuids.get(u).copied(),
        }
    }
    pub fn contains_key(&self, key: &PointKey) -> bool {
        self.get(key).is_some()
    }
    pub fn insert(&mut self, key: PointKey, loc: Loc) {
        match key {
            PointKey::Num(n) => self.nums.insert(n, pack(loc)),
            PointKey::Uuid(u) => {
                self.uuids.insert(u, loc);
            }
        }
    }
    pub fn remove(&mut self, key: &PointKey) -> Option<Loc> {
        match key {
            PointKey::Num(n) => self.nums.remove(*n).map(unpack),
            PointKey::Uuid(u) => self.uuids.remove(u),
        }
    }
    /// Point `key` at `to` if it is still at `from`; whether it was.
    pub fn relocate(&mut self, key: &PointKey, from: Loc, to: Loc) -> bool {
        match key {
            PointKey::Num(n) => match self.nums.get_mut(*n) {
                Some(v) if unpack(*v) == from => {
                    *v = pack(to);
                    true
                }
                _ => false,
            },
            PointKey::Uuid(u) => match self.uuids.get_mut(u) {
                Some(l) if *l == from => {
                    *l = to;
                    true
                }
                _ => false,
            },
        }
    }
    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (PointKey, Loc)> + '_ {
        self.iter_after(None)
    }
    /// The entries after `after` (all when `None`), in key order.
    pub fn iter_after(
        &self,
        after: Option<&PointKey>,
    ) -> impl Iterator<Item = (PointKey, Loc)> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        // The first integer id to list (`None`: none, the cursor is past them all).
        let (nums, uuids) = match after {
            None => (Some(0), Unbounded),
            Some(PointKey::Num(n)) => (n.checked_add(1), Unbounded),
            Some(PointKey::Uuid(u)) => (None, Excluded(u.as_str())),
        };
        let nums = nums
            .into_iter()
            .flat_map(|lo| self.nums.iter_from(lo))
            .map(|(n, v)| (PointKey::Num(n), unpack(v)));
        let uuids = self
            .uuids
            .range::<str, _>((uuids, Unbounded))
            .map(|(u, &l)| (PointKey::Uuid(u.clone()), l));
        nums.chain(uuids)
    }
    /// Estimated heap bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.nums.memory_bytes() + self.uuids.len() as u64 * 96
    }
    #[cfg(test)]
    fn nums_dense(&self) -> bool {
        matches!(self.nums, Nums::Dense { .. })
    }
}

/// Search tuning.
#[derive(Debug, Clone, Copy)]
pub struct SearchTuning {
    /// Smallest `ef` used when the request sets none.
    pub ef_floor: usize,
    /// A filter whose indexed candidates are at most this many is answered exactly.
    pub exact_filter_max: usize,
    /// Threads one search may use over the sealed segments (this one and the search pool's),
    /// at most the cores not taken by other searches; 1 searches them one after the other.
    pub search_threads: usize,
}

impl Default for SearchTuning {
    fn default() -> Self {
        Self {
            ef_floor: 64,
            exact_filter_max: 2_000,
            search_threads: cores(),
        }
    }
}

fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Searches running in this process, this one included, while it lives.
struct Running {
    count: usize,
}

static SEARCHES_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Running {
    fn enter() -> Self {
        let count = SEARCHES_RUNNING.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        Running { count }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        SEARCHES_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Sealed points below which a search never splits: handing part of it to another thread
/// costs more than it saves.
const PARALLEL_SEARCH_MIN_POINTS: usize = 40_000;

/// The threads that take the parts of a split search ([`State::search`]): its own pool, so
/// that searches never wait behind graph builds (which use rayon's global pool).
fn search_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores())
            .thread_name(|i| format!("search-{i}"))
            .build()
            .expect("the search pool starts")
    })
}

/// A candidate: its rank key, then (segment, offset) to break ties.
type Cand = Ranked<(u64, u32)>;

struct TopK {
    k: usize,
    heap: BinaryHeap<Cand>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }
    /// The rank key a candidate must beat (`None` while fewer than k).
    fn worst(&self) -> Option<f32> {
        (self.heap.len() == self.k)
            .then(|| self.heap.peek().map(|w| w.0))
            .flatten()
    }
    #[inline]
    fn push(&mut self, r: f32, seg: u64, off: u32) {
        if self.heap.len() < self.k {
            self.heap.push(Ranked(r, (seg, off)));
        } else if self.heap.peek().is_some_and(|w| r < w.0) {
            self.heap.pop();
            self.heap.push(Ranked(r, (seg, off)));
        }
    }
}

pub struct State {
    pub spec: CollectionSpec,
    pub dim: usize,
    pub app_id: u64,
    pub app: Appendable,
    pub sealed: BTreeMap<u64, Sealed>,
    pub ids: IdMap,
    pub pindex: PayloadIndex,
    /// Sequence number of the last applied WAL record.
    pub applied_seq: u64,
    pub next_segment_id: u64,
    /// On-disk collections: where sealed segments' vector files go ([`crate::vecfile`]).
    pub vectors_dir: Option<std::path::PathBuf>,
}

impl State {
    pub fn new(spec: CollectionSpec) -> Self {
        let datatype = spec.datatype;
        let pindex = PayloadIndex::new(&spec.payload_indexes);
        State {
            dim: spec.dimension as usize,
            spec,
            app_id: 1,
            app: Appendable::new(datatype),
            sealed: BTreeMap::new(),
            ids: IdMap::default(),
            pindex,
            applied_seq: 0,
            next_segment_id: 2,
            vectors_dir: None,
        }
    }

    /// Rebuild the id map and payload index after segments were loaded from a snapshot.
    pub fn reindex(&mut self) {
        self.ids.clear();
        self.pindex = self.pindex.emptied();
        for (&seg, s) in &self.sealed {
            for off in 0..s.data.len() {
                if !s.deleted[off] {
                    self.ids.insert(
                        s.data.keys.get(off).into_owned(),
                        Loc {
                            seg,
                            off: off as u32,
                        },
                    );
                    self.pindex
                        .insert(&s.data.keys.get(off), s.data.payloads.get(off));
                }
            }
        }
        for off in 0..self.app.data.len() {
            if self.app.alive[off] {
                self.ids.insert(
                    self.app.data.keys.get(off).into_owned(),
                    Loc {
                        seg: self.app_id,
                        off: off as u32,
                    },
                );
                self.pindex.insert(
                    &self.app.data.keys.get(off),
                    self.app.data.payloads.get(off),
                );
            }
        }
    }

    pub fn point_count(&self) -> usize {
        self.ids.len()
    }

    fn seg_data(&self, seg: u64) -> &SegmentData {
        if seg == self.app_id {
            &self.app.data
        } else {
            &self.sealed[&seg].data
        }
    }

    /// Tombstone (or kill) the point at `loc` and drop it from the payload index.
    fn remove_at(&mut self, key: &PointKey, loc: Loc) {
        let off = loc.off as usize;
        if loc.seg == self.app_id {
            self.pindex.remove(key, self.app.data.payloads.get(off));
            self.app.alive[off] = false;
            self.app.live -= 1;
        } else if let Some(s) = self.sealed.get_mut(&loc.seg) {
            self.pindex.remove(key, s.data.payloads.get(off));
            if !s.deleted[off] {
                s.deleted[off] = true;
                s.deleted_count += 1;
            }
        }
    }

    /// Apply an upsert (vectors already normalized for cosine). Later duplicates win.
    pub fn apply_upsert(&mut self, points: Vec<PointRecord>) {
        let dim = self.dim;
        for p in points {
            match self.ids.get(&p.key) {
                Some(loc) if loc.seg == self.app_id => {
                    let off = loc.off as usize;
                    self.pindex.remove(&p.key, self.app.data.payloads.get(off));
                    self.pindex.insert(&p.key, &p.payload);
                    self.app.data.vectors.set(dim, off, &p.vector);
                    self.app.data.payloads.set(off, p.payload);
                    self.app.data.sparse.set(off, p.sparse);
                    self.set_named(off, p.named);
                }
                other => {
                    if let Some(loc) = other {
                        self.remove_at(&p.key, loc);
                    }
                    let off = self.app.data.len();
                    self.pindex.insert(&p.key, &p.payload);
                    self.app.data.keys.push(p.key.clone());
                    self.app.data.vectors.push(&p.vector);
                    self.app.data.payloads.push(p.payload);
                    self.app.data.sparse.set(off, p.sparse);
                    self.set_named(off, p.named);
                    self.app.alive.push(true);
                    self.app.live += 1;
                    self.ids.insert(
                        p.key,
                        Loc {
                            seg: self.app_id,
                            off: off as u32,
                        },
                    );
                }
            }
        }
    }

    /// Give slot `off` of the appendable segment these named vectors (validated against the
    /// spec; one it does not declare or of another length, from a damaged log, is dropped).
    fn set_named(&mut self, off: usize, mut named: NamedVectors) {
        let vectors = &self.spec.vectors;
        let given = named.len();
        named.retain(|n, v| {
            vectors
                .get(n)
                .is_some_and(|s| s.dimension as usize == v.len())
        });
        if named.len() < given {
            tracing::warn!(collection = %self.spec.name, dropped = given - named.len(), "named vectors the collection does not declare, or of another dimension, dropped");
        }
        let datatype = |n: &str| vectors.get(n).map_or(Datatype::Float32, |s| s.datatype);
        if let Err(e) = self.app.data.named.set(off, named, &datatype) {
            tracing::warn!(collection = %self.spec.name, error = %e, "named vectors dropped");
        }
    }

    /// The points a write by ids and/or filter names: the existing `keys` and every point
    /// matching `filter`, in key order, each once.
    pub fn named(&self, keys: &[PointKey], filter: Option<&Filter>) -> Vec<PointKey> {
        let mut v: Vec<PointKey> = keys
            .iter()
            .filter(|k| self.ids.contains_key(k))
            .cloned()
            .collect();
        if let Some(f) = filter {
            v.extend(self.keys_matching(f));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The whole payloads `change` gives the existing `keys` and every point matching
    /// `filter`, in key order.
    pub fn resolve_payloads(
        &self,
        keys: &[PointKey],
        filter: Option<&Filter>,
        change: &PayloadChange,
    ) -> Vec<(PointKey, Payload)> {
        self.named(keys, filter)
            .into_iter()
            .filter_map(|k| {
                let mut p = self
                    .stored(&k, Include::PAYLOAD)?
                    .payload
                    .unwrap_or_default();
                change.apply(&mut p);
                Some((k, p))
            })
            .collect()
    }

    /// Give the points of these keys these payloads, keeping their vectors (they move to
    /// the appendable segment, as an upsert of the same vector would); keys that do not
    /// exist are skipped. Returns how many existed.
    pub fn apply_payloads(&mut self, payloads: Vec<(PointKey, Payload)>) -> u64 {
        let points: Vec<PointRecord> = payloads
            .into_iter()
            .filter_map(|(key, payload)| {
                let kept = self.stored(&key, Include::VECTOR)?;
                Some(PointRecord {
                    key,
                    vector: kept.vector?,
                    payload,
                    sparse: kept.sparse,
                    named: kept.named,
                })
            })
            .collect();
        let n = points.len() as u64;
        self.apply_upsert(points);
        n
    }

    /// Remove the given keys; returns how many existed.
    pub fn apply_delete(&mut self, keys: &[PointKey]) -> u64 {
        let mut n = 0;
        for k in keys {
            if let Some(loc) = self.ids.remove(k) {
                self.remove_at(k, loc);
                n += 1;
            }
        }
        n
    }

    /// Seal the appendable segment (dropping its dead slots); returns the new sealed id.
    pub fn seal(&mut self) -> Option<u64> {
        let datatype = self.spec.datatype;
        if self.app.live == 0 {
            self.app = Appendable::new(datatype);
            return None;
        }
        let old = std::mem::replace(&mut self.app, Appendable::new(datatype));
        let id = self.app_id;
        let mut data = SegmentData {
            id,
            keys: Keys::with_capacity(old.live),
            vectors: Vectors::default(),
            payloads: Payloads::with_capacity(old.live),
            sparse: SparseColumns::default(),
            named: NamedColumns::default(),
        };
        let SegmentData {
            keys,
            vectors,
            payloads,
            sparse,
            named,
            ..
        } = old.data;
        for (off, ((key, payload), &alive)) in keys
            .into_keys()
            .zip(payloads.into_payloads())
            .zip(&old.alive)
            .enumerate()
        {
            if !alive {
                continue;
            }
            let new_off = data.keys.len() as u32;
            data.sparse.copy_row(new_off as usize, &sparse, off);
            data.named.copy_row(new_off as usize, &named, off);
            self.ids.insert(
                key.clone(),
                Loc {
                    seg: id,
                    off: new_off,
                },
            );
            data.keys.push(key);
            data.payloads.push(payload);
        }
        data.named.shrink_to_fit();
        let rows = || {
            old.alive
                .iter()
                .enumerate()
                .filter(|(_, a)| **a)
                .map(|(off, _)| vectors.row(self.dim, off))
        };
        let file = self.vectors_dir.as_ref().map(|dir| {
            vecfile::write(
                &dir.join(vecfile::live_name(id)),
                datatype,
                self.dim,
                rows(),
            )
        });
        data.vectors = match file {
            Some(Ok(f)) => Vectors::Mapped(Arc::new(f)),
            Some(Err(e)) => {
                // The vectors stay on the heap: the segment is as correct, only larger.
                tracing::error!(segment = id, error = %e, "could not write the segment's vector file; its vectors stay in memory");
                Vectors::collect(datatype, old.live * self.dim, rows())
            }
            None => Vectors::collect(datatype, old.live * self.dim, rows()),
        };
        let n = data.len();
        self.sealed
            .insert(id, Sealed::new(Arc::new(data), vec![false; n], None));
        self.app_id = self.next_segment_id;
        self.next_segment_id += 1;
        Some(id)
    }

    /// Sealed segments still waiting for a graph.
    pub fn unindexed(&self) -> Vec<u64> {
        self.sealed
            .iter()
            .filter(|(_, s)| s.graph.is_none() && s.live() > 0)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Points not in any graph yet.
    pub fn pending_points(&self) -> usize {
        self.app.live
            + self
                .sealed
                .values()
                .filter(|s| s.graph.is_none())
                .map(|s| s.live())
                .sum::<usize>()
    }

    pub fn install_index(&mut self, seg: u64, index: Index) -> bool {
        match self.sealed.get_mut(&seg) {
            Some(s) if s.graph.is_none() => {
                s.graph = Some(index.graph);
                s.default_ef = Some(index.default_ef);
                s.codes = index.codes;
                s.named_graphs = index.named;
                true
            }
            _ => false,
        }
    }

    /// Replace `old` segments by `new` (compaction). `origins[i]` is where new point `i` came
    /// from; points moved or deleted since are tombstoned in the new segment.
    pub fn replace_segments(
        &mut self,
        old: &[u64],
        mut data: SegmentData,
        origins: &[Loc],
        index: Option<Index>,
    ) -> u64 {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        data.id = id;
        let mut deleted = vec![false; data.len()];
        for (i, origin) in origins.iter().enumerate() {
            let to = Loc {
                seg: id,
                off: i as u32,
            };
            if !self.ids.relocate(&data.keys.get(i), *origin, to) {
                deleted[i] = true;
            }
        }
        let mut removed = 0;
        for o in old {
            if let Some(s) = self.sealed.remove(o) {
                removed += s.deleted_count as u64;
            }
        }
        if !data.is_empty() {
            self.sealed
                .insert(id, Sealed::indexed(Arc::new(data), deleted, index));
        }
        removed
    }

    /// Keys of live points matching `filter`.
    pub fn keys_matching(&self, filter: &Filter) -> Vec<PointKey> {
        if let Some(cands) = self.pindex.candidates(filter) {
            return cands
                .into_iter()
                .filter(|k| {
                    self.ids.get(k).is_some_and(|loc| {
                        filter.matches(k, self.seg_data(loc.seg).payloads.get(loc.off as usize))
                    })
                })
                .collect();
        }
        self.ids
            .iter()
            .filter(|(k, loc)| {
                filter.matches(k, self.seg_data(loc.seg).payloads.get(loc.off as usize))
            })
            .map(|(k, _)| k)
            .collect()
    }

    pub fn count(&self, filter: Option<&Filter>) -> u64 {
        match filter {
            None => self.ids.len() as u64,
            Some(f) => self.keys_matching(f).len() as u64,
        }
    }

    pub fn stored(&self, key: &PointKey, include: Include) -> Option<StoredPoint> {
        let loc = self.ids.get(key)?;
        let d = self.seg_data(loc.seg);
        let off = loc.off as usize;
        Some(StoredPoint {
            key: key.clone(),
            payload: include.payload.then(|| d.payloads.get(off).clone()),
            vector: include.vector.then(|| d.vector(self.dim, off).to_vec()),
            sparse: if include.vector {
                d.sparse.row(off)
            } else {
                SparseVectors::new()
            },
            named: if include.vector {
                d.named.row(off)
            } else {
                NamedVectors::new()
            },
        })
    }

    pub fn scroll(&self, params: &ScrollParams) -> (Vec<StoredPoint>, Option<PointKey>) {
        params.page(
            self.ids.iter_after(params.after.as_ref()),
            |f, (k, loc)| f.matches(k, self.seg_data(loc.seg).payloads.get(loc.off as usize)),
            |(k, _)| self.stored(&k, params.include),
        )
    }

    /// Exact scan of one segment's live slots.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        top: &mut TopK,
        col: Column<'_>,
        q: &[f32],
        seg: u64,
        data: &SegmentData,
        dead: &dyn Fn(usize) -> bool,
        filter: Option<&Filter>,
    ) -> u64 {
        let metric = col.metric;
        let mut n = 0;
        for off in 0..data.len() {
            if dead(off) {
                continue;
            }
            if let Some(f) = filter
                && !f.matches(&data.keys.get(off), data.payloads.get(off))
            {
                continue;
            }
            let Some(row) = col.row(data, off) else {
                continue;
            };
            n += 1;
            let r = rank_key(metric, score_row(metric, q, row));
            top.push(r, seg, off as u32);
        }
        n
    }

    /// A search by sparse vector `name`: exact, by dot product, over every segment (each
    /// sealed one through its inverted index, [`crate::sparse`]); only points sharing an index
    /// with `q` are results.
    pub fn search_sparse(
        &self,
        name: &str,
        q: &SparseVector,
        params: &SearchParams,
    ) -> (Vec<Hit>, SearchInfo) {
        /// The search's top k, as the segment searches see it.
        struct Sink<'a> {
            top: &'a mut TopK,
            seg: u64,
        }
        impl crate::sparse::Threshold for Sink<'_> {
            fn threshold(&self) -> Option<f32> {
                self.top.worst().map(|r| rank_key(Metric::Dot, r))
            }
            fn offer(&mut self, off: u32, score: f32) {
                self.top.push(rank_key(Metric::Dot, score), self.seg, off);
            }
        }
        let filter = params.filter.as_ref().filter(|f| !f.is_empty());
        let mut top = TopK::new(params.k);
        let mut info = SearchInfo::default();
        let count = |w: crate::sparse::Work, info: &mut SearchInfo| {
            info.sparse_scored += w.scored;
            info.sparse_postings += w.postings;
            info.points_exact += w.scored;
            info.segments_searched += 1;
        };
        let matches = |d: &SegmentData, off: usize| {
            filter.is_none_or(|f| f.matches(&d.keys.get(off), d.payloads.get(off)))
        };
        let mut sink = Sink {
            top: &mut top,
            seg: self.app_id,
        };
        let app = &self.app;
        let w = crate::sparse::scan_segment(
            q,
            app.data.sparse.column(name),
            &|off| app.alive[off] && matches(&app.data, off),
            &mut sink,
        );
        count(w, &mut info);
        for (&seg, s) in &self.sealed {
            let Some(index) = s.sparse_index(name) else {
                info.segments_searched += 1;
                continue;
            };
            sink.seg = seg;
            let w = crate::sparse::search_segment(
                q,
                index,
                s.data.sparse.column(name),
                &|off| !s.deleted[off] && matches(&s.data, off),
                &mut sink,
            );
            count(w, &mut info);
        }
        (self.hits(top, params), info)
    }

    /// Search every segment and merge, by the unnamed vector or the named one the search
    /// names. `q` is already normalized for cosine.
    pub fn search(
        &self,
        q: &[f32],
        params: &SearchParams,
        tuning: &SearchTuning,
    ) -> (Vec<Hit>, SearchInfo) {
        // Validated: a named vector the spec declares.
        let Some(col) = Column::of(&self.spec, params.vector_name.as_deref()) else {
            return (Vec::new(), SearchInfo::default());
        };
        let metric = col.metric;
        let k = params.k;
        let filter = params.filter.as_ref().filter(|f| !f.is_empty());
        let mut top = TopK::new(k);
        let mut info = SearchInfo::default();

        let narrow = filter.and_then(|f| {
            let max = if params.exact {
                usize::MAX
            } else {
                tuning.exact_filter_max
            };
            self.pindex.candidates_up_to(f, max)
        });
        if let (Some(cands), Some(f)) = (narrow, filter) {
            // Few candidates: score exactly the ones that really match.
            for key in &cands {
                let Some(loc) = self.ids.get(key) else {
                    continue;
                };
                let d = self.seg_data(loc.seg);
                let off = loc.off as usize;
                if !f.matches(key, d.payloads.get(off)) {
                    continue;
                }
                let Some(row) = col.row(d, off) else {
                    continue;
                };
                info.points_exact += 1;
                let r = rank_key(metric, score_row(metric, q, row));
                top.push(r, loc.seg, loc.off);
            }
            info.segments_searched = 1 + self.sealed.len() as u64;
            return (self.hits(top, params), info);
        }

        // A filter the payload index cannot narrow is sampled in each sealed segment.
        let sample = filter.is_some_and(|f| !self.pindex.narrows(f));
        let alive = &self.app.alive;
        info.points_exact += self.scan(
            &mut top,
            col,
            q,
            self.app_id,
            &self.app.data,
            &|o| !alive[o],
            filter,
        );
        info.segments_searched += 1;
        // Concurrent searches share the cores: a split only uses the ones left idle.
        let running = Running::enter();
        let parts = self.split_for_search(tuning.search_threads.min(cores() / running.count));
        if parts.len() <= 1 {
            for (&seg, sealed) in &self.sealed {
                self.search_sealed(
                    &mut top, &mut info, col, q, params, tuning, seg, sealed, sample,
                );
            }
        } else {
            // Several large segments: searched in parallel, one part on this thread and the
            // others on the search pool, then merged (ties break by location: the same
            // result whatever the split).
            let mut outs: Vec<(TopK, SearchInfo)> = parts
                .iter()
                .map(|_| (TopK::new(k), SearchInfo::default()))
                .collect();
            let (first, rest) = outs.split_at_mut(1);
            search_pool().in_place_scope(|scope| {
                for (part, out) in parts[1..].iter().zip(rest.iter_mut()) {
                    scope.spawn(move |_| {
                        for &(seg, sealed) in part {
                            self.search_sealed(
                                &mut out.0, &mut out.1, col, q, params, tuning, seg, sealed, sample,
                            );
                        }
                    });
                }
                let out = &mut first[0];
                for &(seg, sealed) in &parts[0] {
                    self.search_sealed(
                        &mut out.0, &mut out.1, col, q, params, tuning, seg, sealed, sample,
                    );
                }
            });
            for (part_top, part_info) in outs {
                for Ranked(r, (seg, off)) in part_top.heap {
                    top.push(r, seg, off);
                }
                info.merge(&part_info);
            }
        }
        (self.hits(top, params), info)
    }

    /// Search one sealed segment: its graph (walked over its codes and rescored, when
    /// quantized), or an exact scan when it has none or the graph cannot deliver `k`.
    #[allow(clippy::too_many_arguments)]
    fn search_sealed(
        &self,
        top: &mut TopK,
        info: &mut SearchInfo,
        col: Column<'_>,
        q: &[f32],
        params: &SearchParams,
        tuning: &SearchTuning,
        seg: u64,
        s: &Sealed,
        sample: bool,
    ) {
        let metric = col.metric;
        let k = params.k;
        let filter = params.filter.as_ref().filter(|f| !f.is_empty());
        info.segments_searched += 1;
        let deleted = &s.deleted;
        let dead = |o: usize| deleted[o];
        let Indexed {
            graph,
            rows,
            codes,
            calibrated,
            slots,
        } = match col.graph(s) {
            Some(g) if !params.exact => g,
            _ => {
                info.points_exact += self.scan(top, col, q, seg, &s.data, &dead, filter);
                return;
            }
        };
        // A named vector's graph holds only the slots that have one.
        let live = match col.name {
            None => s.live(),
            Some(_) => graph.len(),
        };
        let ef = params.ef.map_or_else(
            || Sealed::ef_with(calibrated, k, tuning.ef_floor),
            |e| e.max(k),
        );
        info.ef = info.ef.max(ef as u64);
        // Quantized: walk the codes for `k × oversampling` candidates; every candidate
        // is rescored with the vectors below.
        let prepared = codes.map(|c| c.prepare(q));
        let kc = match &prepared {
            Some(p) => candidates(
                k,
                params
                    .oversampling
                    .unwrap_or(p.kind().default_oversampling()),
            ),
            None => k,
        };
        if prepared.is_some() {
            info.rescored = info.rescored.max(kc as u64);
        }
        let walk = |n: usize, ef: usize, accept: Option<&dyn Fn(usize) -> bool>| {
            // A named vector's graph walks its column's rows: `accept` takes slots.
            let by_row = slots
                .zip(accept)
                .map(|(m, a)| move |r: usize| a(m[r] as usize));
            let accept = match &by_row {
                Some(f) => Some(f as &dyn Fn(usize) -> bool),
                None => accept,
            };
            let found = match &prepared {
                Some(p) => graph.search_codes(p, n, ef, accept),
                None => graph.search(rows, q, n, ef, accept),
            };
            found.into_iter().map(move |r| match slots {
                None => r.0,
                Some(m) => m[r.0] as usize,
            })
        };
        let found: Vec<usize> = match filter {
            None if s.deleted_count == 0 => walk(kc, ef, None).collect(),
            None => {
                // Ask for a few more and drop tombstones; filter in the graph if too few.
                let k2 = (kc + s.deleted_count).min(2 * kc + 16);
                let mut v: Vec<usize> = walk(k2, ef.max(k2), None)
                    .filter(|&o| !deleted[o])
                    .collect();
                if v.len() < k.min(live) {
                    v = walk(kc, ef, Some(&dead_filter(&dead))).collect();
                }
                v.truncate(kc);
                v
            }
            Some(f) => {
                let accept = |o: usize| {
                    !deleted[o] && f.matches(&s.data.keys.get(o), s.data.payloads.get(o))
                };
                // A filter the payload index could not narrow: when a sample says it keeps
                // few of this segment's points, scoring those exactly is cheaper than a
                // filtered walk and finds the true nearest (a walk through few accepted
                // nodes misses some).
                if sample && estimate_kept(s.data.len(), &accept) <= tuning.exact_filter_max {
                    info.points_exact += self.scan(top, col, q, seg, &s.data, &dead, filter);
                    return;
                }
                walk(kc, ef, Some(&accept)).collect()
            }
        };
        if found.len() < k.min(live) {
            // The graph could not deliver k (tiny or heavily filtered segment): scan it.
            info.points_exact += self.scan(top, col, q, seg, &s.data, &dead, filter);
            return;
        }
        info.points_graph += live as u64;
        for off in found {
            if let Some(row) = col.row(&s.data, off) {
                top.push(rank_key(metric, score_row(metric, q, row)), seg, off as u32);
            }
        }
    }

    /// The sealed segments split into up to `threads` parts of about equal cost to search in
    /// parallel; none when the collection is too small for a split to pay. A graph search
    /// costs about the log of its segment's size, an exact scan its size.
    fn split_for_search(&self, threads: usize) -> Vec<Vec<(u64, &Sealed)>> {
        let total: usize = self.sealed.values().map(|s| s.live()).sum();
        let threads = threads.min(self.sealed.len());
        if threads <= 1 || total < PARALLEL_SEARCH_MIN_POINTS {
            return Vec::new();
        }
        let cost = |s: &Sealed| match s.graph {
            Some(_) => ((s.live() + 2) as f64).ln(),
            None => s.live() as f64 / 400.0,
        };
        let mut segs: Vec<(f64, u64, &Sealed)> = self
            .sealed
            .iter()
            .map(|(&id, s)| (cost(s), id, s))
            .collect();
        segs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut parts: Vec<(f64, Vec<(u64, &Sealed)>)> =
            (0..threads).map(|_| (0.0, Vec::new())).collect();
        for (c, id, s) in segs {
            let p = parts
                .iter_mut()
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .expect("threads >= 2");
            p.0 += c;
            p.1.push((id, s));
        }
        parts
            .into_iter()
            .map(|p| p.1)
            .filter(|p| !p.is_empty())
            .collect()
    }

    fn hits(&self, top: TopK, params: &SearchParams) -> Vec<Hit> {
        let metric = params.metric(&self.spec);
        top.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Ranked(r, (seg, off))| {
                let d = self.seg_data(seg);
                let off = off as usize;
                Hit {
                    key: d.keys.get(off).into_owned(),
                    score: rank_key(metric, r),
                    payload: params.include.payload.then(|| d.payloads.get(off).clone()),
                    vector: params
                        .include
                        .vector
                        .then(|| d.vector(self.dim, off).to_vec()),
                    sparse: if params.include.vector {
                        d.sparse.row(off)
                    } else {
                        SparseVectors::new()
                    },
                    named: if params.include.vector {
                        d.named.row(off)
                    } else {
                        NamedVectors::new()
                    },
                }
            })
            .collect()
    }

    pub fn memory_bytes(&self) -> (u64, u64, u64) {
        let vectors = self.app.data.memory_bytes()
            + self
                .sealed
                .values()
                .map(|s| s.data.memory_bytes())
                .sum::<u64>();
        let graphs = self
            .sealed
            .values()
            .map(|s| {
                s.graph.as_ref().map_or(0, |g| g.memory_bytes())
                    + s.codes.as_ref().map_or(0, |c| c.memory_bytes())
                    + s.named_graphs
                        .values()
                        .map(|g| {
                            g.graph.memory_bytes()
                                + g.codes.as_ref().map_or(0, |c| c.memory_bytes())
                        })
                        .sum::<u64>()
            })
            .sum();
        // Sparse vectors' inverted indexes (of the sealed segments searched by one so far).
        let sparse: usize = self
            .sealed
            .values()
            .filter_map(|s| s.sparse_indexes.get())
            .flat_map(|m| m.values().map(SparseIndex::bytes))
            .sum();
        (
            vectors,
            graphs,
            self.pindex.memory_bytes() + self.ids.memory_bytes() + sparse as u64,
        )
    }
}

fn dead_filter(dead: &dyn Fn(usize) -> bool) -> impl Fn(usize) -> bool + '_ {
    move |o| !dead(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Condition, Match};
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    /// A key drawn from `nums` (a UUID one time in five, from the same range).
    fn key(rng: &mut impl Rng, nums: &dyn Fn(&mut dyn rand::RngCore) -> u64) -> PointKey {
        let id = nums(rng);
        if id.is_multiple_of(5) {
            PointKey::Uuid(format!(
                "00000000-0000-4000-8000-{:012}",
                id % 1_000_000_000_000
            ))
        } else {
            PointKey::Num(id)
        }
    }

    /// Random inserts, removals and relocations against an ordered map, for integer ids that
    /// stay dense, ids spread over all of `u64`, and ids that start spread and fill in (the
    /// table turns into a tree and back).
    #[test]
    fn id_map_equals_an_ordered_map_of_keys() {
        type Gen = Box<dyn Fn(&mut dyn rand::RngCore) -> u64>;
        let cases: [(&str, Gen); 3] = [
            ("dense", Box::new(|r| r.random_range(0..2_000u64))),
            (
                "spread",
                Box::new(|r| {
                    if r.random_ratio(1, 50) {
                        u64::MAX
                    } else {
                        r.random()
                    }
                }),
            ),
            (
                "filling in",
                Box::new(|r| {
                    if r.random_ratio(1, 20) {
                        r.random_range(9_000..11_000u64)
                    } else {
                        r.random_range(0..9_000u64)
                    }
                }),
            ),
        ];
        for (name, nums) in cases {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut ids = IdMap::default();
            let mut oracle: BTreeMap<PointKey, Loc> = BTreeMap::new();
            let mut forms = vec![ids.nums_dense()];
            for step in 0..40_000u32 {
                let k = key(&mut rng, &nums);
                let loc = Loc {
                    seg: rng.random_range(0..u64::from(u32::MAX)),
                    off: rng.random(),
                };
                match rng.random_range(0..4) {
                    0 => assert_eq!(ids.remove(&k), oracle.remove(&k)),
                    1 => {
                        let from = oracle.get(&k).copied().unwrap_or(loc);
                        let moved = ids.relocate(&k, from, loc);
                        assert_eq!(moved, oracle.contains_key(&k));
                        if moved {
                            oracle.insert(k.clone(), loc);
                        }
                        // A stale origin moves nothing.
                        let stale = Loc {
                            off: loc.off ^ 1,
                            ..loc
                        };
                        assert!(!ids.relocate(&k, stale, from));
                    }
                    _ => {
                        ids.insert(k.clone(), loc);
                        oracle.insert(k.clone(), loc);
                    }
                }
                assert_eq!(ids.get(&k), oracle.get(&k).copied(), "{name}");
                assert_eq!(ids.len(), oracle.len(), "{name}");
                if forms.last() != Some(&ids.nums_dense()) {
                    forms.push(ids.nums_dense());
                }
                if step % 1_000 == 0 {
                    let all: Vec<_> = ids.iter().collect();
                    let want: Vec<_> = oracle.iter().map(|(k, l)| (k.clone(), *l)).collect();
                    assert_eq!(all, want, "{name}");
                    // Scrolling from any key (present or not, either kind, the largest integer
                    // included) continues in order.
                    for i in 0..20 {
                        let after = if i == 0 {
                            PointKey::Num(u64::MAX)
                        } else {
                            key(&mut rng, &nums)
                        };
                        let got: Vec<_> = ids.iter_after(Some(&after)).collect();
                        let want: Vec<_> = oracle
                            .range((
                                std::ops::Bound::Excluded(&after),
                                std::ops::Bound::Unbounded,
                            ))
                            .map(|(k, l)| (k.clone(), *l))
                            .collect();
                        assert_eq!(got, want, "{name}: after {after}");
                    }
                }
            }
            let want_forms: &[bool] = match name {
                "dense" => &[true],
                "spread" => &[true, false],
                _ => &[true, false, true],
            };
            assert_eq!(forms, want_forms, "{name}: dense table, tree, dense table");
        }
    }

    #[test]
    fn keys_turn_general_at_the_first_uuid_and_keep_their_order() {
        let mut keys = Keys::with_capacity(4);
        keys.push(PointKey::Num(3));
        keys.push(PointKey::Num(1));
        assert!(matches!(keys, Keys::Num(_)));
        assert_eq!(keys.bytes(), 4 * 8);
        let u = PointKey::Uuid("00000000-0000-4000-8000-000000000001".into());
        keys.push(u.clone());
        keys.push(PointKey::Num(2));
        assert!(matches!(keys, Keys::Any(_)));
        let want = vec![PointKey::Num(3), PointKey::Num(1), u, PointKey::Num(2)];
        assert_eq!(keys.iter().map(Cow::into_owned).collect::<Vec<_>>(), want);
        assert_eq!(keys, want.iter().cloned().collect::<Keys>());
        assert_ne!(keys, Keys::Any(want[..3].to_vec()));
        assert_eq!(
            Keys::Num(vec![1, 2]),
            Keys::Any(vec![PointKey::Num(1), PointKey::Num(2)])
        );
        assert_eq!(keys.into_keys().collect::<Vec<_>>(), want);
    }

    #[test]
    fn payloads_keep_only_non_empty_maps() {
        let p = |v: serde_json::Value| v.as_object().unwrap().clone();
        let mut ps = Payloads::default();
        ps.push(Payload::new());
        ps.push(p(json!({"a": 1})));
        ps.push(Payload::new());
        assert_eq!(ps.values.len(), 1);
        ps.set(0, p(json!({"b": 2})));
        ps.set(1, p(json!({"a": 3})));
        ps.set(2, Payload::new());
        assert_eq!(ps.values.len(), 2);
        let want = vec![p(json!({"b": 2})), p(json!({"a": 3})), Payload::new()];
        assert_eq!(ps.iter().cloned().collect::<Vec<_>>(), want);
        assert_eq!(ps, want.iter().cloned().collect::<Payloads>());
        assert_ne!(ps, want[..2].iter().cloned().collect::<Payloads>());
        assert_eq!(ps.into_payloads().collect::<Vec<_>>(), want);
    }

    fn spec() -> CollectionSpec {
        CollectionSpec::for_test("t", 8, Metric::L2, 32)
    }

    /// A search split over threads answers exactly as one searching the segments in turn,
    /// with and without graphs, filters and tombstones.
    #[test]
    fn a_split_search_equals_the_sequential_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut st = State::new(spec());
        let colors = ["red", "green", "blue"];
        for seg in 0..4u64 {
            let n = [30_000, 20_000, 12_000, 5_000][seg as usize];
            let points = (0..n)
                .map(|i| PointRecord {
                    key: PointKey::Num(seg * 100_000 + i),
                    vector: (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                    payload: json!({"color": colors[rng.random_range(0..3)]})
                        .as_object()
                        .unwrap()
                        .clone(),
                    sparse: Default::default(),
                    named: Default::default(),
                })
                .collect();
            st.apply_upsert(points);
            st.seal();
        }
        // Graphs on two of the four segments; tombstones in one of them.
        let with_graphs: Vec<u64> = st.sealed.keys().take(2).copied().collect();
        for seg in with_graphs {
            let s = &st.sealed[&seg];
            let rows: Vec<Vec<f32>> = (0..s.data.len())
                .map(|o| s.data.vector(8, o).to_vec())
                .collect();
            let items: Vec<(&[f32], usize)> =
                rows.iter().enumerate().map(|(o, v)| (&v[..], o)).collect();
            let graph = Arc::new(Graph::build(Metric::L2, 8, 32, 8, &items));
            let index = Index {
                graph,
                codes: None,
                default_ef: 32,
                named: BTreeMap::new(),
            };
            assert!(st.install_index(seg, index));
        }
        let gone: Vec<PointKey> = (0..3_000).map(|i| PointKey::Num(i * 7)).collect();
        st.apply_delete(&gone);
        let red = Filter {
            must: vec![Condition::Field {
                key: "color".into(),
                path: vec!["color".into()],
                matcher: Match::Keyword("red".into()),
            }],
            ..Default::default()
        };
        let one = SearchTuning {
            search_threads: 1,
            ..Default::default()
        };
        let split = SearchTuning {
            search_threads: 3,
            // Every red point is a candidate: the graph walk, not the exact path.
            exact_filter_max: 0,
            ..one
        };
        let one = SearchTuning {
            exact_filter_max: 0,
            ..one
        };
        assert_eq!(st.split_for_search(1).len(), 0);
        let parts = st.split_for_search(3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 4);
        for i in 0..30 {
            let params = SearchParams {
                vector: (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                k: 10,
                filter: (i % 2 == 1).then(|| red.clone()),
                ef: None,
                oversampling: None,
                include: Include::ALL,
                exact: i % 3 == 2,
                sparse: None,
                vector_name: None,
            };
            let (a, ia) = st.search(&params.vector, &params, &one);
            let (b, ib) = st.search(&params.vector, &params, &split);
            assert_eq!(a, b);
            assert_eq!(ia, ib);
            assert_eq!(a.len(), 10);
            assert!(ia.points_graph > 0 || params.exact);
        }
    }
}
