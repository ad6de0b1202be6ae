//! Snapshots: a consistent point-in-time copy of one collection on local disk.
//!
//! Layout: `<collection>/snapshots/<id>/` with `manifest.json`, one `seg-<id>.pts` file per
//! segment (keys, vectors, payloads, tombstones) and, for segments with a graph, its neighbour
//! lists `seg-<id>.graph` ([`Graph::encode`]). Snapshots of format 1 hold `hnsw_rs` dumps
//! (`seg-<id>.hnsw.graph` + `.hnsw.data`) instead: those still load (converted, not rebuilt),
//! and the next snapshot is written in the new format. The manifest lists every other
//! file with its size, sha256 and crc32c. A snapshot is written into `.tmp-<id>/`, every file
//! is fsynced, and the directory is renamed into place: a snapshot directory without the
//! `.tmp-` prefix is always complete. Ids sort by sequence number.

use crate::error::{Result, StorageError};
use crate::index::Graph;
use crate::model::{CollectionSpec, Payload};
use crate::segment::SegmentData;
use crate::wal::{Reader, put_key, sync_dir};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MANIFEST: &str = "manifest.json";
const TMP_PREFIX: &str = ".tmp-";
const SEG_MAGIC: &[u8; 8] = b"AKSEG01\0";

/// One file of a snapshot, as listed in its manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotFile {
    /// Path relative to the snapshot directory.
    pub name: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub crc32c: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SegmentEntry {
    pub id: u64,
    pub points_file: String,
    /// Format 1 only: `hnsw_rs` dump basename, when the segment has a graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    /// Format 2: the graph file ([`Graph::encode`]), when the segment has a graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_file: Option<String>,
    /// Whether this is the segment writes go to.
    pub appendable: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnapshotManifest {
    pub format: u32,
    pub id: String,
    pub collection: CollectionSpec,
    /// Every WAL record up to and including this sequence number is in the snapshot.
    pub sequence: u64,
    pub created_unix_ms: u64,
    pub point_count: u64,
    pub next_segment_id: u64,
    pub segments: Vec<SegmentEntry>,
    pub files: Vec<SnapshotFile>,
}

impl SnapshotManifest {
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }
}

/// One segment as captured under the collection's write lock.
pub struct CapturedSegment {
    pub data: Arc<SegmentData>,
    pub deleted: Vec<bool>,
    pub graph: Option<Arc<Graph>>,
    pub appendable: bool,
}

/// Everything a snapshot holds, captured at one sequence number.
pub struct Capture {
    pub spec: CollectionSpec,
    pub sequence: u64,
    pub point_count: u64,
    pub next_segment_id: u64,
    pub segments: Vec<CapturedSegment>,
}

/// A segment read back from a snapshot.
pub struct LoadedSegment {
    pub data: SegmentData,
    pub deleted: Vec<bool>,
    pub graph: Option<Graph>,
    pub appendable: bool,
}

pub struct Loaded {
    pub manifest: SnapshotManifest,
    pub segments: Vec<LoadedSegment>,
}

pub fn snapshots_dir(collection_dir: &Path) -> PathBuf {
    collection_dir.join("snapshots")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn checksum(path: &Path, name: String) -> Result<SnapshotFile> {
    let bytes = fs::read(path)?;
    Ok(SnapshotFile {
        name,
        size_bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        crc32c: crc32c::crc32c(&bytes),
    })
}

/// The files of the snapshot in `dir` with their checksums, the manifest included (its own
/// checksums are computed now). What the cold tier uploads.
pub fn list_files(dir: &Path) -> Result<Vec<SnapshotFile>> {
    let manifest = read_manifest(dir)?;
    let mut files = manifest.files;
    files.push(checksum(&dir.join(MANIFEST), MANIFEST.to_string())?);
    Ok(files)
}

pub fn read_manifest(dir: &Path) -> Result<SnapshotManifest> {
    let bytes = fs::read(dir.join(MANIFEST))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        StorageError::DataLoss(format!(
            "snapshot manifest {} is unreadable: {e}",
            dir.join(MANIFEST).display()
        ))
    })
}

/// Complete snapshots of a collection, oldest first.
pub fn list(collection_dir: &Path) -> Result<Vec<(PathBuf, SnapshotManifest)>> {
    let dir = snapshots_dir(collection_dir);
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut names: Vec<String> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        match read_manifest(&p) {
            Ok(m) => out.push((p, m)),
            Err(e) => {
                tracing::warn!(snapshot = %p.display(), error = %e, "ignoring unreadable snapshot")
            }
        }
    }
    Ok(out)
}

/// Remove temp directories left by a snapshot interrupted by a crash.
pub fn clean_temp(collection_dir: &Path) -> Result<usize> {
    let dir = snapshots_dir(collection_dir);
    let mut n = 0;
    if dir.exists() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_dir_all(e.path())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Keep the newest `keep` snapshots (at least one) and delete the rest.
pub fn prune(collection_dir: &Path, keep: usize) -> Result<usize> {
    let all = list(collection_dir)?;
    let excess = all.len().saturating_sub(keep.max(1));
    for (p, _) in &all[..excess] {
        fs::remove_dir_all(p)?;
    }
    Ok(excess)
}

fn encode_segment(data: &SegmentData, deleted: &[bool], dim: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + data.vectors.len() * 4 + data.len() * 64);
    out.extend_from_slice(SEG_MAGIC);
    out.extend_from_slice(&data.id.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    for k in &data.keys {
        put_key(&mut out, k);
    }
    for x in &data.vectors {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend(deleted.iter().map(|&d| d as u8));
    for p in &data.payloads {
        if p.is_empty() {
            out.extend_from_slice(&0u32.to_le_bytes());
        } else {
            let json = serde_json::to_vec(p).expect("JSON map serializes");
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
            out.extend_from_slice(&json);
        }
    }
    out
}

fn decode_segment(bytes: &[u8]) -> std::result::Result<(SegmentData, Vec<bool>), String> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.take(8)? != SEG_MAGIC {
        return Err("not a segment file".into());
    }
    let id = r.u64()?;
    let n = r.u64()? as usize;
    let dim = r.u32()? as usize;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(r.key()?);
    }
    let raw = r.take(n * dim * 4)?;
    let vectors = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let deleted = r.take(n)?.iter().map(|&b| b != 0).collect();
    let mut payloads = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.u32()? as usize;
        payloads.push(if len == 0 {
            Payload::new()
        } else {
            serde_json::from_slice(r.take(len)?).map_err(|e| e.to_string())?
        });
    }
    Ok((
        SegmentData {
            id,
            keys,
            vectors,
            payloads,
        },
        deleted,
    ))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Write `cap` as a new snapshot of the collection in `collection_dir`; returns its manifest.
pub fn write(collection_dir: &Path, cap: &Capture) -> Result<(PathBuf, SnapshotManifest)> {
    let created = now_ms();
    let id = format!("{:020}-{created}", cap.sequence);
    let root = snapshots_dir(collection_dir);
    fs::create_dir_all(&root)?;
    let tmp = root.join(format!("{TMP_PREFIX}{id}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let dim = cap.spec.dimension as usize;
    let mut files = Vec::new();
    let mut segments = Vec::new();
    for s in &cap.segments {
        let base = format!("seg-{}", s.data.id);
        let points_file = format!("{base}.pts");
        let path = tmp.join(&points_file);
        let bytes = encode_segment(&s.data, &s.deleted, dim);
        write_synced(&path, &bytes)?;
        files.push(SnapshotFile {
            name: points_file.clone(),
            size_bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            crc32c: crc32c::crc32c(&bytes),
        });
        let graph_file = match &s.graph {
            Some(g) => {
                let name = format!("{base}.graph");
                let bytes = g.encode();
                write_synced(&tmp.join(&name), &bytes)?;
                files.push(SnapshotFile {
                    name: name.clone(),
                    size_bytes: bytes.len() as u64,
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    crc32c: crc32c::crc32c(&bytes),
                });
                Some(name)
            }
            None => None,
        };
        segments.push(SegmentEntry {
            id: s.data.id,
            points_file,
            graph: None,
            graph_file,
            appendable: s.appendable,
        });
    }
    let manifest = SnapshotManifest {
        format: 2,
        id: id.clone(),
        collection: cap.spec.clone(),
        sequence: cap.sequence,
        created_unix_ms: created,
        point_count: cap.point_count,
        next_segment_id: cap.next_segment_id,
        segments,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    write_synced(&tmp.join(MANIFEST), &json)?;
    sync_dir(&tmp)?;
    let dst = root.join(&id);
    fs::rename(&tmp, &dst)?;
    sync_dir(&root)?;
    Ok((dst, manifest))
}

/// Load the snapshot in `dir`, checking every file against its crc32c. Graphs are loaded
/// from their files (format 1: from `hnsw_rs` dumps, converted), not rebuilt.
pub fn load(dir: &Path) -> Result<Loaded> {
    let manifest = read_manifest(dir)?;
    let mut contents = std::collections::HashMap::new();
    for f in &manifest.files {
        let p = dir.join(&f.name);
        let bytes = fs::read(&p).map_err(|e| {
            StorageError::DataLoss(format!("snapshot file {} is unreadable: {e}", p.display()))
        })?;
        if bytes.len() as u64 != f.size_bytes || crc32c::crc32c(&bytes) != f.crc32c {
            return Err(StorageError::DataLoss(format!(
                "snapshot file {} does not match its manifest checksum",
                p.display()
            )));
        }
        contents.insert(f.name.clone(), bytes);
    }
    let mut read = |name: &str| -> Result<Vec<u8>> {
        match contents.remove(name) {
            Some(b) => Ok(b),
            None => Ok(fs::read(dir.join(name))?),
        }
    };
    let spec = &manifest.collection;
    let mut segments = Vec::new();
    for e in &manifest.segments {
        let p = dir.join(&e.points_file);
        let (data, deleted) = decode_segment(&read(&e.points_file)?).map_err(|err| {
            StorageError::DataLoss(format!(
                "snapshot segment {} is damaged: {err}",
                p.display()
            ))
        })?;
        let dim = spec.dimension as usize;
        let graph = match (&e.graph_file, &e.graph) {
            (Some(name), _) => Some(Graph::decode(&read(name)?, spec.metric, dim).map_err(
                |err| {
                    StorageError::DataLoss(format!(
                        "snapshot graph {} is damaged: {err}",
                        dir.join(name).display()
                    ))
                },
            )?),
            (None, Some(base)) => Some(Graph::load_hnsw_rs(dir, base, spec.metric, dim)?),
            (None, None) => None,
        };
        if let Some(g) = &graph
            && g.slots() > data.len()
        {
            return Err(StorageError::DataLoss(format!(
                "snapshot graph of segment {} indexes offsets past its {} points",
                e.id,
                data.len()
            )));
        }
        segments.push(LoadedSegment {
            data,
            deleted,
            graph,
            appendable: e.appendable,
        });
    }
    Ok(Loaded { manifest, segments })
}
