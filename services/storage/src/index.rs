//! The HNSW graph of a sealed segment, built and searched here.
//!
//! The graph is a compact read-only structure: per layer, neighbour lists as flat `u32`
//! arrays (CSR). It holds no vectors: a search reads them from the segment's contiguous data,
//! which the caller passes in. Node ids are segment offsets; offsets that were not indexed
//! (tombstoned at build time) have no neighbours and are never reached.
//!
//! `hnsw_rs` builds the graph (every core, through [`graph_distance`]); its neighbour lists are
//! then copied into this form and its own structure, which holds a second copy of every
//! vector, is dropped. Its search is not used: [`Graph::build_with_hnsw_rs`] keeps it for the
//! benchmarks that compare the two searches on the same graph.
//!
//! The search is the usual HNSW one: greedy descent through the upper layers, then a beam
//! search of width `ef` on layer 0, with a reusable generation-stamped visited array and a
//! software prefetch of the next vectors. `accept` limits the results without limiting the
//! traversal (rejected nodes are walked through, never returned). Distances are
//! [`graph_distance`]: non-negative, smaller is closer, monotone in the collection's score.
//!
//! Snapshots store the graph in this module's own format ([`Graph::encode`]); graphs dumped by
//! `hnsw_rs` in older snapshots are loaded with its loader and converted ([`Graph::load_hnsw_rs`]).

use crate::distance::{Row, graph_distance, graph_distance_f16};
use crate::error::{Result, StorageError};
use crate::model::Metric;
use crate::quantize::{Codes, Prepared};
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::path::Path;

/// Layers `hnsw_rs` may use. (Its `file_dump` only round-trips graphs created with 16.)
const MAX_LAYERS: usize = 16;

const GRAPH_MAGIC: &[u8; 8] = b"AKGRAPH1";

#[derive(Clone, Copy)]
struct GraphDist(Metric);

impl hnsw_rs::anndists::dist::distances::Distance<f32> for GraphDist {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        graph_distance(self.0, a, b)
    }
}

/// Neighbour lists of one layer in CSR form: the list of node `nodes[i]` is
/// `nb[off[i]..off[i + 1]]`. On layer 0, `nodes` is empty and `i` is the node id itself.
#[derive(Debug, Clone, PartialEq, Default)]
struct Layer {
    nodes: Vec<u32>,
    off: Vec<u32>,
    nb: Vec<u32>,
}

impl Layer {
    #[inline]
    fn list(&self, i: usize) -> &[u32] {
        &self.nb[self.off[i] as usize..self.off[i + 1] as usize]
    }

    /// Upper layers: the list of node `id` (empty when it is not on this layer).
    fn list_of(&self, id: u32) -> &[u32] {
        match self.nodes.binary_search(&id) {
            Ok(i) => self.list(i),
            Err(_) => &[],
        }
    }

    fn bytes(&self) -> usize {
        (self.nodes.capacity() + self.off.capacity() + self.nb.capacity()) * 4
    }

    /// The base layer with the edges `links` (from, to) appended to their lists.
    fn with_links(&self, mut links: Vec<(u32, u32)>) -> Layer {
        links.sort_unstable();
        let mut out = Layer {
            nodes: Vec::new(),
            off: Vec::with_capacity(self.off.len()),
            nb: Vec::with_capacity(self.nb.len() + links.len()),
        };
        out.off.push(0);
        let mut extra = links.iter().peekable();
        for i in 0..self.off.len() - 1 {
            out.nb.extend_from_slice(self.list(i));
            while let Some(&(_, to)) = extra.next_if(|(from, _)| *from as usize == i) {
                out.nb.push(to);
            }
            out.off.push(out.nb.len() as u32);
        }
        out
    }
}

/// What [`Graph::connect`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Reconnected {
    /// Indexed nodes the base layer did not reach from the entry point.
    unreachable: usize,
    /// Two-way links added.
    links: usize,
}

/// Extra starting points of a base-layer search (see [`Graph::seed_layer`]).
const SEEDS: usize = 8;
/// The seed layer holds at least this many nodes...
const SEEDS_MIN_LAYER: usize = 64;
/// ...and at most this many.
const SEEDS_MAX_LAYER: usize = 512;

/// `ef` of the searches that find where an unreached node joins the graph.
const CONNECT_EF: usize = 64;

/// A read-only HNSW graph over the offsets of one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    metric: Metric,
    dim: usize,
    /// Indexed points.
    points: usize,
    /// Node id space: every neighbour id is below this.
    slots: usize,
    entry: u32,
    /// `layers[0]` is the base layer; `layers.len() - 1` is the entry point's level.
    layers: Vec<Layer>,
}

/// Recall@10 a search at a graph's calibrated `ef` reaches on a sample of the graph's own
/// points (a margin over the 0.95 promised at the defaults: the sample is small).
pub const CALIBRATION_RECALL: f64 = 0.98;
/// Points of a graph used as queries when it is calibrated.
const CALIBRATION_QUERIES: usize = 64;
/// The `ef` values calibration tries, smallest first.
const CALIBRATION_EFS: [usize; 11] = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];

/// Candidates a search of a quantized collection takes from the walk over the codes, to be
/// rescored with the vectors: `k × oversampling`, rounded up.
pub fn candidates(k: usize, oversampling: f32) -> usize {
    ((k as f64 * oversampling.max(1.0) as f64).ceil() as usize).max(k)
}

/// `hnsw_rs`'s own structure, kept only by benchmarks that compare against it.
pub struct HnswRs(Hnsw<'static, f32, GraphDist>);

impl HnswRs {
    pub fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<(usize, f32)> {
        self.0
            .search(q, k, ef)
            .into_iter()
            .map(|n| (n.d_id, n.distance))
            .collect()
    }
}

/// Points inserted per parallel step of a build: between steps a build can be abandoned
/// and reports its progress (a step is well under a second at 128-d on two cores).
const BUILD_STEP: usize = 2048;

/// What a build asks of its caller between steps.
pub trait BuildControl {
    /// True when the build should be abandoned (the service is stopping).
    fn abandoned(&self) -> bool {
        false
    }
    /// `inserted` of `total` points are in the graph.
    fn progress(&self, _inserted: usize, _total: usize) {}
}

/// A build that runs to its end and reports nothing (tests, benchmarks, tools).
pub struct ToTheEnd;

impl BuildControl for ToTheEnd {}

fn build_hnsw(
    metric: Metric,
    m: usize,
    ef_construction: usize,
    items: &[(&[f32], usize)],
    control: &dyn BuildControl,
) -> Option<Hnsw<'static, f32, GraphDist>> {
    let mut hnsw = Hnsw::new(
        m,
        items.len().max(1),
        MAX_LAYERS,
        ef_construction,
        GraphDist(metric),
    );
    // On clustered data `hnsw_rs` keeps the nearest neighbours when a list overflows and
    // loses the long links between clusters; examining ef candidates at layer 0 keeps more
    // of them (recall@10 of a 320k-point Gaussian-mixture graph at ef 128, one build each:
    // 0.942 → 0.964, and 0.994 on a later build; builds vary a lot. 6% more build time;
    // `keep_pruned` made it 0.52).
    hnsw.set_extend_candidates(true);
    let mut done = 0;
    for step in items.chunks(BUILD_STEP) {
        if control.abandoned() {
            return None;
        }
        hnsw.parallel_insert_slice(&step.to_vec());
        done += step.len();
        control.progress(done, items.len());
    }
    Some(hnsw)
}

impl Graph {
    /// Build over `(vector, offset)` pairs with `hnsw_rs` (every core), then copy its
    /// neighbour lists into this form and drop its structure (and its copy of the vectors).
    pub fn build(
        metric: Metric,
        m: usize,
        ef_construction: usize,
        dim: usize,
        items: &[(&[f32], usize)],
    ) -> Graph {
        Self::build_with(metric, m, ef_construction, dim, items, &ToTheEnd)
            .expect("a build run to the end is never abandoned")
    }

    /// [`Graph::build`] in steps of [`BUILD_STEP`] points, asking `control` between steps:
    /// `None` when it abandoned the build.
    pub fn build_with(
        metric: Metric,
        m: usize,
        ef_construction: usize,
        dim: usize,
        items: &[(&[f32], usize)],
        control: &dyn BuildControl,
    ) -> Option<Graph> {
        let hnsw = build_hnsw(metric, m, ef_construction, items, control);
        let mut g = hnsw.as_ref().map(|h| Graph::from_hnsw(h, metric, dim));
        drop(hnsw);
        if let Some(g) = g.as_mut() {
            let t = std::time::Instant::now();
            let c = g.connect(items);
            if c.unreachable > 0 {
                tracing::info!(
                    points = g.points,
                    unreachable = c.unreachable,
                    links = c.links,
                    seconds = t.elapsed().as_secs_f64(),
                    "HNSW graph: nodes the base layer did not reach from the entry point linked in"
                );
            }
        }
        // Its structure held a copy of every vector plus per-node `Arc`s and locks, ~2.5× the
        // segment: give those pages back rather than stay at the build peak.
        crate::allocator::release_free_heap();
        g
    }

    /// Build, and keep `hnsw_rs`'s structure too (benchmarks).
    pub fn build_with_hnsw_rs(
        metric: Metric,
        m: usize,
        ef_construction: usize,
        dim: usize,
        items: &[(&[f32], usize)],
    ) -> (Graph, HnswRs) {
        let mut hnsw =
            build_hnsw(metric, m, ef_construction, items, &ToTheEnd).expect("never abandoned");
        let g = Graph::from_hnsw(&hnsw, metric, dim);
        hnsw.set_searching_mode(true);
        (g, HnswRs(hnsw))
    }

    /// Copy the neighbour lists out of `hnsw_rs`'s structure.
    fn from_hnsw(hnsw: &Hnsw<'_, f32, GraphDist>, metric: Metric, dim: usize) -> Graph {
        let pi = hnsw.get_point_indexation();
        let points = pi.get_nb_point();
        if points == 0 {
            return Graph::empty(metric, dim);
        }
        let top = pi.get_max_level_observed() as usize;
        // Per layer: (node, neighbours) in any order.
        let mut per: Vec<Vec<(u32, Vec<u32>)>> = vec![Vec::new(); top + 1];
        let mut slots = 0usize;
        for p in pi {
            let id = p.get_origin_id();
            slots = slots.max(id + 1);
            let level = (p.get_point_id().0 as usize).min(top);
            let hood = p.get_neighborhood_id();
            for (l, layer) in per.iter_mut().enumerate().take(level + 1) {
                let list = hood
                    .get(l)
                    .map(|ns| {
                        ns.iter()
                            .map(|n| n.d_id)
                            .filter(|&d| d != id)
                            .map(|d| d as u32)
                            .collect()
                    })
                    .unwrap_or_default();
                layer.push((id as u32, list));
            }
        }
        let entry = pi
            .get_layer_iterator(top)
            .next()
            .map(|p| p.get_origin_id() as u32)
            .expect("the top layer holds the entry point");
        let layers = per
            .into_iter()
            .enumerate()
            .map(|(l, mut lists)| {
                lists.sort_unstable_by_key(|(id, _)| *id);
                let mut layer = Layer::default();
                if l == 0 {
                    let mut at = 0;
                    layer.off.push(0);
                    for slot in 0..slots as u32 {
                        if at < lists.len() && lists[at].0 == slot {
                            layer.nb.extend_from_slice(&lists[at].1);
                            at += 1;
                        }
                        layer.off.push(layer.nb.len() as u32);
                    }
                } else {
                    layer.off.push(0);
                    for (id, list) in lists {
                        layer.nodes.push(id);
                        layer.nb.extend_from_slice(&list);
                        layer.off.push(layer.nb.len() as u32);
                    }
                }
                layer.nb.shrink_to_fit();
                layer
            })
            .collect();
        Graph {
            metric,
            dim,
            points,
            slots,
            entry,
            layers,
        }
    }

    /// The nodes of the highest layer that holds at least [`SEEDS_MIN_LAYER`] of them (at most
    /// [`SEEDS_MAX_LAYER`]): a base-layer search also starts from the [`SEEDS`] nearest of
    /// them. The greedy descent through the upper layers follows one path and on clustered
    /// data can end in the wrong cluster, from which the base layer has no short way to the
    /// right one (a 1M Gaussian-mixture graph answered 9 of 200 queries with recall 0–0.1 at
    /// every `ef` up to 384); a few hundred distances to a layer that spans every cluster
    /// cost a few microseconds.
    fn seed_layer(&self) -> &[u32] {
        self.layers[1..]
            .iter()
            .rev()
            .find(|l| l.nodes.len() >= SEEDS_MIN_LAYER)
            .map(|l| l.nodes.as_slice())
            .filter(|n| n.len() <= SEEDS_MAX_LAYER)
            .unwrap_or(&[])
    }

    /// Make every node reachable on the base layer from the entry point. On clustered data a
    /// build can leave nodes without a path into them (their long links pruned when lists
    /// overflowed): no search ever returns them, at any `ef` (1M Gaussian-mixture graphs of
    /// the scale benchmark left 399 and 16,067 such nodes). Each node not reached is searched
    /// for among the reached ones and joined both ways to the nearest, and what it reaches is
    /// marked, until nothing is left.
    /// `items` are the `(vector, offset)` pairs the graph was built over.
    fn connect(&mut self, items: &[(&[f32], usize)]) -> Reconnected {
        let mut out = Reconnected::default();
        if self.points == 0 {
            return out;
        }
        let mut rows: Vec<Option<&[f32]>> = vec![None; self.slots];
        for &(v, o) in items {
            if o < self.slots {
                rows[o] = Some(v);
            }
        }
        let mut reached = vec![false; self.slots];
        let mut stack = Vec::new();
        self.reach(self.entry, &mut reached, &mut stack);
        out.unreachable = rows
            .iter()
            .zip(&reached)
            .filter(|(r, seen)| r.is_some() && !**seen)
            .count();
        let mut links: Vec<(u32, u32)> = Vec::new();
        for u in 0..self.slots {
            let Some(q) = rows[u] else { continue };
            if reached[u] {
                continue;
            }
            let metric = self.metric;
            let row = |id: u32| rows[id as usize].unwrap_or(q);
            // Only a reached node will do (a search may also start from an unreached seed).
            let joined = |o: usize| reached[o];
            let near = self.search_with(
                |id| graph_distance(metric, q, row(id)),
                |id| row(id).as_ptr() as *const u8,
                self.dim * 4,
                1,
                CONNECT_EF,
                Some(&joined),
            );
            let Some(&(r, _)) = near.first() else {
                continue;
            };
            links.push((r as u32, u as u32));
            links.push((u as u32, r as u32));
            self.reach(u as u32, &mut reached, &mut stack);
        }
        out.links = links.len() / 2;
        if !links.is_empty() {
            self.layers[0] = self.layers[0].with_links(links);
        }
        out
    }

    /// Mark in `reached` every node the base layer reaches from `from` (nothing when `from`
    /// is marked already); `stack` is scratch space.
    fn reach(&self, from: u32, reached: &mut [bool], stack: &mut Vec<u32>) {
        if std::mem::replace(&mut reached[from as usize], true) {
            return;
        }
        stack.push(from);
        while let Some(n) = stack.pop() {
            for &m in self.layers[0].list(n as usize) {
                if !std::mem::replace(&mut reached[m as usize], true) {
                    stack.push(m);
                }
            }
        }
    }

    fn empty(metric: Metric, dim: usize) -> Graph {
        Graph {
            metric,
            dim,
            points: 0,
            slots: 0,
            entry: 0,
            layers: Vec::new(),
        }
    }

    /// Nearest offsets with their graph distances, nearest first; `accept` limits results
    /// to offsets it returns true for (applied during traversal). `vectors` is the segment's
    /// data the graph was built over (offset `o` at `o * dim`), float32 or float16.
    pub fn search<'a>(
        &self,
        vectors: impl Into<Row<'a>>,
        q: &[f32],
        k: usize,
        ef: usize,
        accept: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        if self.points == 0 || k == 0 {
            return Vec::new();
        }
        let dim = self.dim;
        let vectors = vectors.into();
        assert!(
            vectors.len() >= self.slots * dim && q.len() == dim,
            "graph searched over the wrong data"
        );
        let metric = self.metric;
        match vectors {
            Row::F32(v) => self.search_rows(v, |r| graph_distance(metric, q, r), k, ef, accept),
            Row::F16(v) => self.search_rows(v, |r| graph_distance_f16(metric, q, r), k, ef, accept),
        }
    }

    /// [`Graph::search`] walking quantized codes of the segment's vectors instead of the
    /// vectors (`p`: the query prepared for them); distances are the codes' ranking, to be
    /// rescored with the vectors by the caller.
    pub fn search_codes(
        &self,
        p: &Prepared<'_>,
        k: usize,
        ef: usize,
        accept: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        if self.points == 0 || k == 0 {
            return Vec::new();
        }
        assert!(
            p.rows() >= self.slots,
            "graph searched over the wrong codes"
        );
        self.search_with(
            |id| p.dist(id),
            |id| p.addr(id),
            p.row_bytes(),
            k,
            ef,
            accept,
        )
    }

    /// [`Graph::search`] over rows of `T` (`f32` or float16 bits), `dist` the distance of a row
    /// to the query.
    fn search_rows<T>(
        &self,
        v: &[T],
        dist: impl Fn(&[T]) -> f32,
        k: usize,
        ef: usize,
        accept: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        let dim = self.dim;
        // SAFETY: every node id is below `slots` (checked when the graph is built or
        // decoded) and `v` holds `slots * dim` values (asserted by the caller).
        let row = |id: u32| unsafe { v.get_unchecked(id as usize * dim..(id as usize + 1) * dim) };
        self.search_with(
            |id| dist(row(id)),
            |id| row(id).as_ptr() as *const u8,
            dim * std::mem::size_of::<T>(),
            k,
            ef,
            accept,
        )
    }

    /// The search over any vector layout: `dist(id)` is the query's graph distance to node
    /// `id`, `addr(id)` where its `row_bytes` bytes start (for prefetching).
    fn search_with(
        &self,
        dist: impl Fn(u32) -> f32,
        addr: impl Fn(u32) -> *const u8,
        row_bytes: usize,
        k: usize,
        ef: usize,
        accept: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        // Greedy descent through the upper layers.
        let mut cur = self.entry;
        let mut cur_d = dist(cur);
        for layer in self.layers[1..].iter().rev() {
            let mut changed = true;
            while changed {
                changed = false;
                for &n in layer.list_of(cur) {
                    let d = dist(n);
                    if d < cur_d {
                        cur = n;
                        cur_d = d;
                        changed = true;
                    }
                }
            }
        }

        let ef = ef.max(k);
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let s = &mut *s;
            s.begin(self.slots);
            let base = &self.layers[0];
            let lines = prefetch_lines(row_bytes);
            // `found`: the best `ef` accepted nodes so far (max-heap, worst on top).
            // `cands`: nodes to expand (min-heap).
            let ok = |id: u32| accept.is_none_or(|f| f(id as usize));
            // Start from where the descent ended and from the nearest few nodes of a small
            // upper layer (see `seed_layer`).
            let mut starts = [(f32::INFINITY, u32::MAX); SEEDS + 1];
            starts[0] = (cur_d, cur);
            for &n in self.seed_layer() {
                let d = dist(n);
                if d < starts[SEEDS].0 {
                    let mut i = SEEDS;
                    while i > 1 && starts[i - 1].0 > d {
                        starts[i] = starts[i - 1];
                        i -= 1;
                    }
                    starts[i] = (d, n);
                }
            }
            for &(d, n) in starts.iter().filter(|(_, n)| *n != u32::MAX) {
                if s.visit(n) {
                    if ok(n) {
                        s.found.push(Near(d, n));
                        if s.found.len() > ef {
                            s.found.pop();
                        }
                    }
                    s.cands.push(Reverse(Near(d, n)));
                }
            }
            let mut bound = match s.found.peek() {
                Some(w) if s.found.len() >= ef || accept.is_none() => w.0,
                _ => f32::INFINITY,
            };
            while let Some(Reverse(Near(d, c))) = s.cands.pop() {
                if d > bound && (s.found.len() >= ef || accept.is_none()) {
                    break;
                }
                s.todo.clear();
                for &n in base.list(c as usize) {
                    if s.visit(n) {
                        s.todo.push(n);
                    }
                }
                for &n in s.todo.iter().take(PREFETCH_AHEAD) {
                    prefetch(addr(n), lines);
                }
                for i in 0..s.todo.len() {
                    if let Some(&n) = s.todo.get(i + PREFETCH_AHEAD) {
                        prefetch(addr(n), lines);
                    }
                    let n = s.todo[i];
                    let dn = dist(n);
                    if s.found.len() < ef || dn < bound {
                        s.cands.push(Reverse(Near(dn, n)));
                        if ok(n) {
                            s.found.push(Near(dn, n));
                            if s.found.len() > ef {
                                s.found.pop();
                            }
                        }
                        if let Some(w) = s.found.peek() {
                            if s.found.len() >= ef || accept.is_none() {
                                bound = w.0;
                            } else {
                                // Not yet `ef` accepted nodes: keep walking.
                                bound = f32::INFINITY;
                            }
                        }
                    }
                }
            }
            s.cands.clear();
            let mut out: Vec<(usize, f32)> = s
                .found
                .drain()
                .map(|Near(d, id)| (id as usize, d))
                .collect();
            out.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            out.truncate(k);
            out
        })
    }

    /// The smallest `ef` (of [`CALIBRATION_EFS`]) at which a search for the 10 nearest
    /// neighbours of a graph's own points (up to [`CALIBRATION_QUERIES`] of them, evenly
    /// spread over the offsets) finds [`CALIBRATION_RECALL`] of the exact ones. Each sample
    /// point is hidden from its own search (never reached, as a new query would not be: a
    /// search that may land on its query's own node finds its neighbours far more easily).
    /// When no `ef` reaches the target the graph has a ceiling: the smallest `ef` within
    /// 0.005 of the best recall seen (more search would not help). `vectors` as for
    /// [`Graph::search`]; `indexed(o)` says whether offset `o` is in the graph.
    ///
    /// Hard data (low-similarity text embeddings) needs a larger `ef` than SIFT-like data,
    /// and larger graphs need a larger one than small ones: this measures it where the graph
    /// is built. Costs `CALIBRATION_QUERIES` exact scans of the segment and the searches,
    /// spread over the cores (0.35–0.39 s for 320k points of 128-d on two, from the
    /// `calibration_seconds` of the scale run's log).
    ///
    /// With `codes` (a quantized collection), each search walks the codes for
    /// `k × oversampling` candidates (the quantization's default oversampling) and keeps the
    /// 10 nearest by the vectors, as a search does.
    pub fn calibrate<'a>(
        &self,
        vectors: impl Into<Row<'a>>,
        codes: Option<&Codes>,
        indexed: &(dyn Fn(usize) -> bool + Sync),
    ) -> usize {
        let vectors = vectors.into();
        let dim = self.dim;
        let k = 10;
        let offsets: Vec<usize> = (0..self.slots).filter(|&o| indexed(o)).collect();
        if offsets.len() <= k + 1 {
            return CALIBRATION_EFS[0];
        }
        let step = (offsets.len() / CALIBRATION_QUERIES).max(1);
        let sample: Vec<usize> = offsets
            .iter()
            .step_by(step)
            .take(CALIBRATION_QUERIES)
            .copied()
            .collect();
        let row = |o: usize| vectors.row(dim, o);
        let metric = self.metric;
        let dist = |q: &[f32], o: usize| match row(o) {
            Row::F32(r) => graph_distance(metric, q, r),
            Row::F16(r) => graph_distance_f16(metric, q, r),
        };
        // Exact: the k nearest other indexed points of each sample point.
        use rayon::prelude::*;
        let truth: Vec<(Vec<f32>, Vec<usize>)> = sample
            .par_iter()
            .map(|&s| {
                let q = row(s).to_vec();
                let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(k + 1);
                for &o in offsets.iter().filter(|&&o| o != s) {
                    let d = dist(&q, o);
                    if best.len() < k {
                        best.push(Near(d, o as u32));
                    } else if best.peek().is_some_and(|w| d < w.0) {
                        best.pop();
                        best.push(Near(d, o as u32));
                    }
                }
                (q, best.into_iter().map(|n| n.1 as usize).collect())
            })
            .collect();
        let addr = |id: u32| match vectors {
            Row::F32(v) => v[id as usize * dim..].as_ptr() as *const u8,
            Row::F16(v) => v[id as usize * dim..].as_ptr() as *const u8,
        };
        let row_bytes = match vectors {
            Row::F32(_) => dim * 4,
            Row::F16(_) => dim * 2,
        };
        let want: usize = truth.iter().map(|(_, w)| w.len()).sum();
        let mut recalls = Vec::with_capacity(CALIBRATION_EFS.len());
        for ef in CALIBRATION_EFS {
            let found: usize = sample
                .par_iter()
                .zip(&truth)
                .map(|(&s, (q, want))| {
                    // The walk: over the codes for `kc` candidates (rescored below), or
                    // over the vectors for `k`; the sample point itself is never reached.
                    let p = codes.map(|c| c.prepare(q));
                    let kc = codes.map_or(k, |c| candidates(k, c.kind().default_oversampling()));
                    let hidden = s as u32;
                    let walk = |id: u32| match &p {
                        _ if id == hidden => f32::INFINITY,
                        Some(p) => p.dist(id),
                        None => dist(q, id as usize),
                    };
                    let (at, bytes) = match &p {
                        Some(p) => (
                            &(|id| p.addr(id)) as &dyn Fn(u32) -> *const u8,
                            p.row_bytes(),
                        ),
                        None => (&addr as &dyn Fn(u32) -> *const u8, row_bytes),
                    };
                    let accept = |o: usize| o != s;
                    let mut found = self.search_with(walk, at, bytes, kc, ef, Some(&accept));
                    if p.is_some() {
                        found.iter_mut().for_each(|(o, d)| *d = dist(q, *o));
                        found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
                        found.truncate(k);
                    }
                    found.into_iter().filter(|(o, _)| want.contains(o)).count()
                })
                .sum();
            let recall = found as f64 / want as f64;
            if recall >= CALIBRATION_RECALL {
                return ef;
            }
            recalls.push((ef, recall));
        }
        let best = recalls.iter().map(|r| r.1).fold(0.0, f64::max);
        recalls
            .iter()
            .find(|r| r.1 >= best - 0.005)
            .map_or(CALIBRATION_EFS[CALIBRATION_EFS.len() - 1], |r| r.0)
    }

    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// One more than the largest offset the graph may return.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Heap size of the neighbour lists (the vectors belong to the segment).
    pub fn memory_bytes(&self) -> u64 {
        (std::mem::size_of::<Graph>() + self.layers.iter().map(Layer::bytes).sum::<usize>()) as u64
    }

    /// The snapshot form: magic, header, then every layer's arrays, little-endian, followed
    /// by the crc32c of everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.memory_bytes() as usize);
        out.extend_from_slice(GRAPH_MAGIC);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.points as u64).to_le_bytes());
        out.extend_from_slice(&(self.slots as u64).to_le_bytes());
        out.extend_from_slice(&self.entry.to_le_bytes());
        out.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        let put = |out: &mut Vec<u8>, v: &[u32]| {
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        for l in &self.layers {
            put(&mut out, &l.nodes);
            put(&mut out, &l.off);
            put(&mut out, &l.nb);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Read [`Graph::encode`]'s output back, checking its checksum and that every id and
    /// list boundary is in range.
    pub fn decode(bytes: &[u8], metric: Metric, dim: usize) -> std::result::Result<Graph, String> {
        if bytes.len() < GRAPH_MAGIC.len() + 4 || &bytes[..8] != GRAPH_MAGIC {
            return Err("not a graph file".into());
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(tail.try_into().unwrap()) {
            return Err("checksum mismatch".into());
        }
        let mut at = 8usize;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            let s = at
                .checked_add(n)
                .and_then(|end| body.get(at..end))
                .ok_or("truncated")?;
            at += n;
            Ok(s)
        };
        let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
        let u64_ = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
        let file_dim = u32_(take(4)?) as usize;
        if file_dim != dim {
            return Err(format!(
                "graph of dimension {file_dim}, collection has {dim}"
            ));
        }
        let points = u64_(take(8)?) as usize;
        let slots = u64_(take(8)?) as usize;
        let entry = u32_(take(4)?);
        let nlayers = u32_(take(4)?) as usize;
        if nlayers > MAX_LAYERS || (points == 0) != (nlayers == 0) || slots > u32::MAX as usize {
            return Err("bad header".into());
        }
        let mut layers = Vec::with_capacity(nlayers);
        for l in 0..nlayers {
            let mut arr = || -> std::result::Result<Vec<u32>, String> {
                let n = u64_(take(8)?) as usize;
                let raw = take(n.checked_mul(4).ok_or("bad length")?)?;
                Ok(raw.chunks_exact(4).map(u32_).collect())
            };
            let layer = Layer {
                nodes: arr()?,
                off: arr()?,
                nb: arr()?,
            };
            let lists = if l == 0 { slots } else { layer.nodes.len() };
            let ok = (l > 0 || layer.nodes.is_empty())
                && layer.off.len() == lists + 1
                && layer.off[0] == 0
                && layer.off.windows(2).all(|w| w[0] <= w[1])
                && *layer.off.last().unwrap() as usize == layer.nb.len()
                && layer.nodes.windows(2).all(|w| w[0] < w[1])
                && layer
                    .nodes
                    .iter()
                    .chain(&layer.nb)
                    .all(|&x| (x as usize) < slots);
            if !ok {
                return Err(format!("layer {l} is inconsistent"));
            }
            layers.push(layer);
        }
        if at != body.len() {
            return Err(format!("{} bytes after the last layer", body.len() - at));
        }
        if nlayers > 0 {
            let top = &layers[nlayers - 1];
            let on_top = if nlayers == 1 {
                (entry as usize) < slots
            } else {
                top.nodes.binary_search(&entry).is_ok()
            };
            if !on_top {
                return Err("entry point is not on the top layer".into());
            }
        }
        Ok(Graph {
            metric,
            dim,
            points,
            slots,
            entry,
            layers,
        })
    }

    /// Load a graph `hnsw_rs` dumped (`<basename>.hnsw.graph` + `.hnsw.data`, snapshots
    /// written before this module had its own format) and convert it. The loader is leaked
    /// (a few hundred bytes) because `hnsw_rs` ties the loaded graph's lifetime to it.
    pub fn load_hnsw_rs(dir: &Path, basename: &str, metric: Metric, dim: usize) -> Result<Graph> {
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let hnsw: Hnsw<'static, f32, GraphDist> = io
            .load_hnsw_with_dist(GraphDist(metric))
            .map_err(|e| StorageError::Damaged {
                what: "HNSW graph",
                path: dir.join(basename),
                problem: format!("it does not load: {e}"),
            })?;
        Ok(Graph::from_hnsw(&hnsw, metric, dim))
    }
}

/// Seconds `hnsw_rs` takes to build over `items` with its own distance (`DistL2`), for comparison with the build through
/// [`graph_distance`] (benchmarks).
pub fn bench_hnsw_rs_native_build(
    m: usize,
    ef_construction: usize,
    items: &[(&[f32], usize)],
) -> f64 {
    use hnsw_rs::anndists::dist::distances::DistL2;
    let items = items.to_vec();
    let start = std::time::Instant::now();
    let h = Hnsw::<f32, DistL2>::new(m, items.len(), MAX_LAYERS, ef_construction, DistL2);
    h.parallel_insert_slice(&items);
    // Timed before the structure is dropped (dropping it is slow too).
    start.elapsed().as_secs_f64()
}

/// Write what snapshot format 1 held for a graph over `items`: an `hnsw_rs` dump
/// `<basename>.hnsw.graph` + `.hnsw.data` in `dir` (tests of old snapshots).
#[cfg(test)]
pub fn dump_hnsw_rs(
    metric: Metric,
    m: usize,
    ef_construction: usize,
    items: &[(&[f32], usize)],
    dir: &Path,
    basename: &str,
) -> [String; 2] {
    use hnsw_rs::api::AnnT;
    let hnsw = build_hnsw(metric, m, ef_construction, items, &ToTheEnd).unwrap();
    assert_eq!(hnsw.file_dump(dir, basename).unwrap(), basename);
    [
        format!("{basename}.hnsw.graph"),
        format!("{basename}.hnsw.data"),
    ]
}

/// A heap entry ordered by distance, then id.
#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Near {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Per-thread search state, reused across searches.
#[derive(Default)]
struct Scratch {
    /// `marks[id] == generation` when `id` was visited in the current search.
    marks: Vec<u32>,
    generation: u32,
    found: BinaryHeap<Near>,
    cands: BinaryHeap<Reverse<Near>>,
    todo: Vec<u32>,
}

impl Scratch {
    fn begin(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
        self.found.clear();
        self.cands.clear();
    }

    /// Mark `id` visited; true when it was not yet.
    #[inline]
    fn visit(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        if *m == self.generation {
            false
        } else {
            *m = self.generation;
            true
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// How many vectors ahead of the distance computation are prefetched.
const PREFETCH_AHEAD: usize = 1;

/// Cache lines of a vector to prefetch: all of it, up to 16 lines (the hardware prefetcher
/// follows a long vector once it is being read). On jeopardy (1536-d, 96 lines) 16 lines
/// beat both no prefetch (7 % slower at ef 64) and the whole vector (4 % slower).
#[inline]
fn prefetch_lines(row_bytes: usize) -> usize {
    row_bytes.div_ceil(64).min(16)
}

/// Prefetch the first `lines` cache lines from `p` (the start of a vector that holds at
/// least that many lines, see [`prefetch_lines`]).
#[inline(always)]
fn prefetch(p: *const u8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for i in 0..lines {
            // SAFETY: SSE is part of x86_64, and a prefetch never faults (the address is
            // within the vector anyway).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i * 64) as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::normalize;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, dim: usize, seed: u64, unit: bool) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n * dim)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect();
        if unit {
            v.chunks_mut(dim).for_each(normalize);
        }
        v
    }

    fn items<'a>(
        v: &'a [f32],
        dim: usize,
        skip: &dyn Fn(usize) -> bool,
    ) -> Vec<(&'a [f32], usize)> {
        v.chunks(dim)
            .enumerate()
            .filter(|(o, _)| !skip(*o))
            .map(|(o, x)| (x, o))
            .collect()
    }

    fn exact(
        metric: Metric,
        v: &[f32],
        dim: usize,
        q: &[f32],
        k: usize,
        ok: &dyn Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut all: Vec<(f32, usize)> = v
            .chunks(dim)
            .enumerate()
            .filter(|(o, _)| ok(*o))
            .map(|(o, x)| (graph_distance(metric, q, x), o))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    fn recall(got: &[(usize, f32)], want: &[usize]) -> usize {
        got.iter().filter(|g| want.contains(&g.0)).count()
    }

    #[test]
    fn recall_matches_brute_force_on_random_data() {
        for (metric, unit) in [
            (Metric::L2, false),
            (Metric::Cosine, true),
            (Metric::Dot, false),
        ] {
            let (n, dim) = (3000, 24);
            let v = random(n, dim, 7, unit);
            let g = Graph::build(metric, 16, 100, dim, &items(&v, dim, &|_| false));
            assert_eq!(g.len(), n);
            let qs = random(50, dim, 8, unit);
            let (mut hit, mut total) = (0, 0);
            for q in qs.chunks(dim) {
                let got = g.search(&v, q, 10, 64, None);
                assert_eq!(got.len(), 10);
                assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
                for (o, d) in &got {
                    assert!(
                        (d - graph_distance(metric, q, &v[o * dim..(o + 1) * dim])).abs() < 1e-5
                    );
                }
                hit += recall(&got, &exact(metric, &v, dim, q, 10, &|_| true));
                total += 10;
            }
            let r = hit as f64 / total as f64;
            // Dot is not a metric: HNSW does worse on it, as it does with hnsw_rs's search.
            let floor = if metric == Metric::Dot { 0.6 } else { 0.95 };
            assert!(r >= floor, "{metric:?} recall {r}");
        }
    }

    /// A build asks its control between steps: it reports progress, and stops when told.
    #[test]
    fn an_abandoned_build_stops_between_steps() {
        use std::cell::RefCell;
        struct StopAfter(usize, RefCell<Vec<(usize, usize)>>);
        impl BuildControl for StopAfter {
            fn abandoned(&self) -> bool {
                self.1.borrow().len() >= self.0
            }
            fn progress(&self, inserted: usize, total: usize) {
                self.1.borrow_mut().push((inserted, total));
            }
        }
        let (n, dim) = (2 * BUILD_STEP + 100, 4);
        let v = random(n, dim, 5, false);
        let it = items(&v, dim, &|_| false);
        let stop = StopAfter(1, RefCell::default());
        assert!(Graph::build_with(Metric::L2, 8, 32, dim, &it, &stop).is_none());
        assert_eq!(*stop.1.borrow(), vec![(BUILD_STEP, n)]);
        let all = StopAfter(usize::MAX, RefCell::default());
        let g = Graph::build_with(Metric::L2, 8, 32, dim, &it, &all).unwrap();
        assert_eq!(g.len(), n);
        assert_eq!(
            *all.1.borrow(),
            vec![(BUILD_STEP, n), (2 * BUILD_STEP, n), (n, n)]
        );
    }

    /// Calibration finds a small ef on easy data and a larger one on hard data (uniform
    /// points in 64 dimensions, where neighbours are barely nearer than the rest), and the
    /// ef it picks reaches its recall on other queries.
    #[test]
    fn calibration_adapts_ef_to_the_data() {
        let dim = 64;
        // Easy: points near a few centres, in a low-dimensional subspace.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let easy: Vec<f32> = (0..4000)
            .flat_map(|i| {
                let c = (i % 8) as f32;
                let t: f32 = rng.random::<f32>();
                (0..dim)
                    .map(move |d| c * 10.0 + t * (d % 3) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let hard = random(4000, dim, 4, false);
        let mut efs = vec![];
        for v in [&easy, &hard] {
            let g = Graph::build(Metric::L2, 8, 32, dim, &items(v, dim, &|_| false));
            let ef = g.calibrate(&v[..], None, &|_| true);
            efs.push(ef);
            // On fresh queries from the same data, the chosen ef is good to about 0.95.
            let qs = if std::ptr::eq(v, &easy) {
                easy[..dim * 50].to_vec()
            } else {
                random(50, dim, 40, false)
            };
            let (mut hit, mut total) = (0, 0);
            for q in qs.chunks(dim) {
                let got = g.search(&v[..], q, 10, ef, None);
                hit += recall(&got, &exact(Metric::L2, v, dim, q, 10, &|_| true));
                total += 10;
            }
            let r = hit as f64 / total as f64;
            assert!(r >= 0.93, "ef {ef}: recall {r}");
        }
        assert!(efs[0] < efs[1], "easy {} hard {}", efs[0], efs[1]);
    }

    #[test]
    fn filtered_search_returns_only_accepted_and_matches_brute_force() {
        let (n, dim) = (2000, 16);
        let v = random(n, dim, 1, false);
        let g = Graph::build(Metric::L2, 16, 100, dim, &items(&v, dim, &|_| false));
        let qs = random(30, dim, 2, false);
        for modulus in [2usize, 7, 50] {
            let ok = |o: usize| o.is_multiple_of(modulus);
            let (mut hit, mut total) = (0, 0);
            for q in qs.chunks(dim) {
                let got = g.search(&v, q, 10, 64, Some(&ok));
                assert_eq!(got.len(), 10);
                assert!(got.iter().all(|(o, _)| ok(*o)));
                hit += recall(&got, &exact(Metric::L2, &v, dim, q, 10, &ok));
                total += 10;
            }
            let r = hit as f64 / total as f64;
            assert!(r >= 0.95, "filter 1/{modulus}: recall {r}");
        }
        // A filter nothing passes, and one that a single point passes.
        let q = &qs[..dim];
        assert!(g.search(&v, q, 10, 32, Some(&|_| false)).is_empty());
        let one = g.search(&v, q, 10, 32, Some(&|o| o == 1234));
        assert_eq!(one.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1234]);
    }

    /// Nodes the base layer reaches from the entry point.
    fn reached(g: &Graph) -> Vec<bool> {
        let mut seen = vec![false; g.slots];
        g.reach(g.entry, &mut seen, &mut Vec::new());
        seen
    }

    #[test]
    fn a_cluster_cut_off_from_the_entry_point_is_linked_back_in() {
        // Two clusters far apart; every edge from the entry point's cluster into the other
        // one removed on every layer, as an unlucky build of clustered data leaves it.
        let (n, dim) = (2_000, 8);
        let mut v = random(n, dim, 11, false);
        let far = |o: usize| o % 2 == 1;
        for (o, x) in v.chunks_mut(dim).enumerate() {
            if far(o) {
                x.iter_mut().for_each(|c| *c += 50.0);
            }
        }
        let it = items(&v, dim, &|o| o == 7);
        let mut g = Graph::build(Metric::L2, 8, 64, dim, &it);
        let home = far(g.entry as usize);
        for layer in &mut g.layers {
            let ids: Vec<u32> = if layer.nodes.is_empty() {
                (0..layer.off.len() as u32 - 1).collect()
            } else {
                layer.nodes.clone()
            };
            let mut cut = Layer {
                nodes: layer.nodes.clone(),
                off: vec![0],
                nb: Vec::new(),
            };
            for (i, &id) in ids.iter().enumerate() {
                let list = layer.list(i);
                cut.nb.extend(
                    list.iter()
                        .filter(|&&m| far(id as usize) != home || far(m as usize) == home),
                );
                cut.off.push(cut.nb.len() as u32);
            }
            *layer = cut;
        }
        let other = (0..n).filter(|&o| far(o) != home && o != 7).count();
        let seen = reached(&g);
        let lost = (0..n).filter(|&o| o != 7 && !seen[o]).count();
        assert_eq!(lost, other, "the other cluster is cut off");

        let c = g.connect(&it);
        assert_eq!(c.unreachable, other);
        assert!(c.links >= 1 && c.links < 50, "{c:?}");
        let seen = reached(&g);
        assert!((0..n).filter(|&o| o != 7).all(|o| seen[o]), "all reached");
        assert!(!seen[7], "an offset not indexed stays out");
        // Searches find the other cluster (each point its own nearest neighbour).
        let found = (0..n)
            .filter(|&o| far(o) != home && o != 7)
            .filter(|&o| g.search(&v[..], &v[o * dim..(o + 1) * dim], 1, 32, None)[0].0 == o)
            .count();
        assert!(found >= other * 95 / 100, "{found} of {other}");
        // A connected graph is left as it is.
        let again = g.clone();
        assert_eq!(g.connect(&it), Reconnected::default());
        assert_eq!(g, again);
    }

    #[test]
    fn empty_one_point_and_unindexed_offsets() {
        let dim = 8;
        let g = Graph::build(Metric::L2, 16, 100, dim, &[]);
        assert!(g.is_empty());
        assert!(g.search(&[][..], &[0.0; 8], 5, 16, None).is_empty());
        let enc = g.encode();
        assert_eq!(Graph::decode(&enc, Metric::L2, dim).unwrap(), g);

        let v = random(1, dim, 3, false);
        let g = Graph::build(Metric::L2, 16, 100, dim, &items(&v, dim, &|_| false));
        let got = g.search(&v, &v, 5, 16, None);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 0);
        assert!(got[0].1.abs() < 1e-6);

        // Deleted at build time: every third offset is never returned.
        let v = random(500, dim, 4, false);
        let dead = |o: usize| o.is_multiple_of(3);
        let g = Graph::build(Metric::L2, 16, 100, dim, &items(&v, dim, &dead));
        assert_eq!(g.len(), 500 - 167);
        for q in v.chunks(dim).take(20) {
            let got = g.search(&v, q, 10, 32, None);
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|(o, _)| !dead(*o)));
            let want = exact(Metric::L2, &v, dim, q, 10, &|o| !dead(o));
            assert!(recall(&got, &want) >= 9);
        }
    }

    #[test]
    fn encode_decode_round_trip_and_damage() {
        let (n, dim) = (1500, 12);
        let v = random(n, dim, 9, true);
        let g = Graph::build(Metric::Cosine, 8, 64, dim, &items(&v, dim, &|o| o == 5));
        assert!(g.layers.len() >= 2, "enough points for an upper layer");
        let enc = g.encode();
        let back = Graph::decode(&enc, Metric::Cosine, dim).unwrap();
        assert_eq!(back, g);
        let q = &v[..dim];
        assert_eq!(
            back.search(&v, q, 10, 32, None),
            g.search(&v, q, 10, 32, None)
        );
        assert!(Graph::decode(&enc, Metric::Cosine, dim + 1).is_err());
        assert!(Graph::decode(&enc[..enc.len() - 9], Metric::Cosine, dim).is_err());
        let mut bad = enc.clone();
        bad[40] ^= 1;
        assert!(Graph::decode(&bad, Metric::Cosine, dim).is_err());
        // A well-formed file with an out-of-range neighbour is refused too.
        let mut g2 = g.clone();
        g2.layers[0].nb[0] = n as u32 + 3;
        assert!(Graph::decode(&g2.encode(), Metric::Cosine, dim).is_err());
    }

    /// With a new checksum over `body` (the part before the checksum).
    fn sealed(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    /// Found by the `snapshot_graph` fuzz target: bytes between the last layer and the
    /// checksum were ignored, so a damaged file decoded (and did not encode back to itself).
    #[test]
    fn bytes_after_the_last_layer_are_refused() {
        // The shape of the fuzzer's input: a graph without layers, bytes after its header.
        let enc = Graph::empty(Metric::L2, 4).encode();
        let body = enc[..enc.len() - 4].to_vec();
        assert_eq!(
            Graph::decode(&sealed(body.clone()), Metric::L2, 4).unwrap(),
            Graph::empty(Metric::L2, 4)
        );
        let padded = sealed([&body[..], &[0; 16]].concat());
        let err = Graph::decode(&padded, Metric::L2, 4).unwrap_err();
        assert!(err.contains("16 bytes after the last layer"), "{err}");
        let (n, dim) = (300, 4);
        let v = random(n, dim, 3, false);
        let g = Graph::build(Metric::L2, 4, 16, dim, &items(&v, dim, &|_| false));
        let enc = g.encode();
        let mut body = enc[..enc.len() - 4].to_vec();
        body.push(0);
        assert!(Graph::decode(&sealed(body), Metric::L2, dim).is_err());
    }

    /// A layer array whose length makes the read position overflow is refused (it panicked
    /// with overflow checks on, as the fuzz targets build).
    #[test]
    fn huge_array_length_is_refused() {
        let mut body = GRAPH_MAGIC.to_vec();
        body.extend_from_slice(&4u32.to_le_bytes()); // dim
        body.extend_from_slice(&1u64.to_le_bytes()); // points
        body.extend_from_slice(&1u64.to_le_bytes()); // slots
        body.extend_from_slice(&0u32.to_le_bytes()); // entry
        body.extend_from_slice(&1u32.to_le_bytes()); // layers
        body.extend_from_slice(&(u64::MAX / 4).to_le_bytes()); // nodes: n * 4 = usize::MAX - 3
        assert_eq!(
            Graph::decode(&sealed(body), Metric::L2, 4).unwrap_err(),
            "truncated"
        );
    }

    #[test]
    fn hnsw_rs_dump_is_converted() {
        let (n, dim) = (800, 10);
        let v = random(n, dim, 11, false);
        let it = items(&v, dim, &|_| false);
        let mut hnsw = build_hnsw(Metric::L2, 16, 100, &it, &ToTheEnd).unwrap();
        hnsw.set_searching_mode(true);
        let direct = Graph::from_hnsw(&hnsw, Metric::L2, dim);
        let dir = tempfile::tempdir().unwrap();
        use hnsw_rs::api::AnnT;
        hnsw.file_dump(dir.path(), "g").unwrap();
        let loaded = Graph::load_hnsw_rs(dir.path(), "g", Metric::L2, dim).unwrap();
        assert_eq!(loaded.len(), n);
        let q = &v[dim..2 * dim];
        assert_eq!(loaded.search(&v, q, 1, 16, None)[0].0, 1);
        let (mut a, mut b) = (0, 0);
        for q in v.chunks(dim).take(50) {
            let want = exact(Metric::L2, &v, dim, q, 10, &|_| true);
            a += recall(&loaded.search(&v, q, 10, 32, None), &want);
            b += recall(&direct.search(&v, q, 10, 32, None), &want);
        }
        assert!(a >= 450 && b >= 450, "{a} {b}");
    }

    #[test]
    fn same_results_as_hnsw_rs_on_the_same_graph() {
        let (n, dim) = (3000, 32);
        let v = random(n, dim, 12, false);
        let (g, h) =
            Graph::build_with_hnsw_rs(Metric::L2, 16, 100, dim, &items(&v, dim, &|_| false));
        let qs = random(40, dim, 13, false);
        let (mut ours, mut theirs) = (0, 0);
        for q in qs.chunks(dim) {
            let want = exact(Metric::L2, &v, dim, q, 10, &|_| true);
            ours += recall(&g.search(&v, q, 10, 64, None), &want);
            theirs += recall(&h.search(q, 10, 64), &want);
        }
        assert!(ours + 4 >= theirs, "ours {ours} hnsw_rs {theirs}");
    }
}
