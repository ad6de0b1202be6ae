//! The shared benchmark data sets (siftsmall, jeopardy-ada002-10k: real data, not written by
//! this project, never copied into the repository; their README.md says where each comes
//! from): the folder `AKIDB_DATASETS`, else `../shared/data` beside the workspace root (the
//! repository sits next to `shared/`).
//!
//! A test that needs a set it cannot find fails under `CI=true` and skips loudly elsewhere
//! ([`crate::require`]).

use crate::require::missing;
use akidb_client::dataset::{find, read_fvecs, read_ivecs};
use std::io;
use std::path::{Path, PathBuf};

/// SIFT10K: 10,000 × 128 base, 100 queries, L2.
pub const SIFTSMALL: &str = "siftsmall";
/// 9,000 × 1536 ada-002 embeddings of Jeopardy questions, 1,000 queries, cosine; with
/// `jeopardy_base_meta.jsonl` (category, value, round, ... of each base row).
pub const JEOPARDY: &str = "jeopardy-ada002-10k";

/// The folder that holds the sets: `AKIDB_DATASETS`, else `../shared/data` relative to the
/// workspace root.
pub fn root() -> PathBuf {
    match std::env::var_os("AKIDB_DATASETS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => root_default(),
    }
}

/// The folder of set `name` (e.g. [`SIFTSMALL`]), or [`missing`].
pub fn dir(name: &str) -> Option<PathBuf> {
    let root = root();
    let d = root.join(name);
    if d.is_dir() {
        return Some(d);
    }
    let from = match std::env::var_os("AKIDB_DATASETS") {
        Some(v) if !v.is_empty() => format!("AKIDB_DATASETS={}", v.to_string_lossy()),
        _ => "AKIDB_DATASETS is unset: the default, ../shared/data beside the repository".into(),
    };
    missing(
        &format!(
            "data set `{name}` not found: {} is not a directory ({from})",
            d.display()
        ),
        &format!(
            "Set AKIDB_DATASETS to the folder that holds `{SIFTSMALL}/` and `{JEOPARDY}/` (the shared benchmark data; its README.md lists where each set comes from and SHA256SUMS its checksums), or put that folder at {}.",
            root_default().display()
        ),
    )
}

/// `../shared/data` relative to the workspace root (this crate's parent).
fn root_default() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the workspace root has a parent")
        .join("shared/data")
}

/// The vectors of one set.
pub struct VectorSet {
    /// Its folder's name (e.g. `siftsmall`).
    pub name: String,
    pub dir: PathBuf,
    /// `*_base.fvecs`: row `i` is point `i`.
    pub base: Vec<Vec<f32>>,
    /// `*_query.fvecs`.
    pub queries: Vec<Vec<f32>>,
    /// `*_groundtruth.ivecs`: per query, the base rows nearest first (empty when the folder
    /// has no such file).
    pub groundtruth: Vec<Vec<u64>>,
}

impl VectorSet {
    /// Set `name` from [`dir`]: `None` when the test is to skip.
    pub fn load(name: &str) -> Option<VectorSet> {
        let d = dir(name)?;
        Some(VectorSet::read(&d).unwrap_or_else(|e| panic!("data set {name}: {e}")))
    }

    /// The set in folder `dir` (files found by suffix, as `akidb bench --data` does).
    pub fn read(dir: &Path) -> io::Result<VectorSet> {
        let groundtruth = match find(dir, "_groundtruth.ivecs") {
            Ok(p) => read_ivecs(&p)?
                .into_iter()
                .map(|r| r.into_iter().map(|x| x as u64).collect())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(VectorSet {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: dir.to_path_buf(),
            base: read_fvecs(&find(dir, "_base.fvecs")?)?,
            queries: read_fvecs(&find(dir, "_query.fvecs")?)?,
            groundtruth,
        })
    }
}
