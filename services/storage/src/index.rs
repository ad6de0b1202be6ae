//! The HNSW graph of a sealed segment. `hnsw_rs` types never leave this module.
//!
//! A graph indexes the offsets of a segment's points (its `DataId`s are segment offsets). It
//! orders by [`graph_distance`], which is non-negative and monotone in the collection's score.
//! Graphs are dumped next to a snapshot with `file_dump` and loaded back without a rebuild.

use crate::distance::graph_distance;
use crate::error::{Result, StorageError};
use crate::model::Metric;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use std::path::Path;

/// `file_dump` only round-trips graphs created with the maximum number of layers.
const MAX_LAYERS: usize = 16;

#[derive(Clone, Copy)]
struct GraphDist(Metric);

impl hnsw_rs::anndists::dist::distances::Distance<f32> for GraphDist {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        graph_distance(self.0, a, b)
    }
}

pub struct Graph {
    hnsw: Hnsw<'static, f32, GraphDist>,
    points: usize,
    dim: usize,
    m: usize,
}

impl Graph {
    /// Build over `(vector, offset)` pairs, using every core.
    pub fn build(
        metric: Metric,
        m: usize,
        ef_construction: usize,
        dim: usize,
        items: &[(&[f32], usize)],
    ) -> Graph {
        let mut hnsw = Hnsw::new(
            m,
            items.len().max(1),
            MAX_LAYERS,
            ef_construction,
            GraphDist(metric),
        );
        hnsw.parallel_insert_slice(&items.to_vec());
        hnsw.set_searching_mode(true);
        Graph {
            hnsw,
            points: items.len(),
            dim,
            m,
        }
    }

    /// Nearest offsets with their graph distances, nearest first; `accept` limits results
    /// to offsets it returns true for (applied during traversal).
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        accept: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        let res = match accept {
            None => self.hnsw.search(q, k, ef),
            Some(f) => {
                let filt = |id: &usize| f(*id);
                self.hnsw.search_filter(q, k, ef, Some(&filt))
            }
        };
        res.into_iter().map(|n| (n.d_id, n.distance)).collect()
    }

    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Rough heap size: the stored vectors plus the neighbour lists.
    pub fn memory_bytes(&self) -> u64 {
        (self.points * (self.dim * 4 + self.m * 2 * 24 + 160)) as u64
    }

    /// Write `<basename>.hnsw.graph` and `<basename>.hnsw.data` into `dir`.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<()> {
        let used = self
            .hnsw
            .file_dump(dir, basename)
            .map_err(|e| StorageError::Internal(format!("HNSW dump failed: {e}")))?;
        if used != basename {
            return Err(StorageError::Internal(format!(
                "HNSW dump wrote `{used}` instead of `{basename}`"
            )));
        }
        Ok(())
    }

    /// Load a dumped graph. The loader owns nothing the graph needs once loading is done
    /// (no mmap), but `hnsw_rs` ties the graph's lifetime to it, so it is leaked (a few
    /// hundred bytes per load).
    pub fn load(dir: &Path, basename: &str, metric: Metric, m: usize) -> Result<Graph> {
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let mut hnsw: Hnsw<'static, f32, GraphDist> =
            io.load_hnsw_with_dist(GraphDist(metric)).map_err(|e| {
                StorageError::DataLoss(format!(
                    "HNSW graph `{basename}` in {} does not load: {e}",
                    dir.display()
                ))
            })?;
        hnsw.set_searching_mode(true);
        let points = hnsw.get_nb_point();
        let dim = hnsw.get_point_indexation().get_data_dimension();
        Ok(Graph {
            hnsw,
            points,
            dim,
            m,
        })
    }
}

pub fn graph_files(basename: &str) -> [String; 2] {
    [
        format!("{basename}.hnsw.graph"),
        format!("{basename}.hnsw.data"),
    ]
}
