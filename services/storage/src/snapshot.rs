//! Snapshots: a consistent point-in-time copy of one collection on local disk.
//!
//! Layout: `<collection>/snapshots/<id>/` with `manifest.json`, one `seg-<id>.pts` file per
//! segment (keys, vectors, payloads, tombstones) and, for segments with a graph, its neighbour
//! lists `seg-<id>.graph` ([`Graph::encode`]) and, in a quantized collection, the codes its
//! search walks `seg-<id>.codes` ([`Codes::encode`]). The sealed segments of an on-disk
//! collection keep their vectors in `seg-<id>.vec` ([`crate::vecfile`], hard-linked from the
//! collection's `vectors/`), and their points file says so instead of holding them (an
//! `AKSEG02` datatype byte with the flag 0x80). A float16 collection's segment files hold its
//! vectors as float16 (`AKSEG02`, manifest format 3); float32 ones are written as before
//! (`AKSEG01`, format 2). Segment files are written and read as streams, checksummed on the
//! way: loading one never holds the whole file in memory next to the decoded segment.
//! Snapshots of format 1 hold `hnsw_rs` dumps
//! (`seg-<id>.hnsw.graph` + `.hnsw.data`) instead: those still load (converted, not rebuilt),
//! and the next snapshot is written in the new format. The manifest lists every other
//! file with its size, sha256 and crc32c. A snapshot is written into `.tmp-<id>/`, every file
//! is fsynced, and the directory is renamed into place: a snapshot directory without the
//! `.tmp-` prefix is always complete. Ids sort by sequence number.

use crate::distance::Row;
use crate::error::{Result, StorageError};
use crate::fsutil::{Summing, file_crc, now_ms, sync_dir};
use crate::index::Graph;
use crate::model::{CollectionSpec, Datatype, Payload};
use crate::named::{NamedColumns, NamedGraph};
use crate::quantize::Codes;
use crate::segment::{Keys, Payloads, SegmentData};
use crate::sparse::SparseColumns;
use crate::vectors::Vectors;
use crate::wal::{Decode, put_key, put_named_rows, put_sparse};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MANIFEST: &str = "manifest.json";
const TMP_PREFIX: &str = ".tmp-";
/// Segment file with float32 vectors.
const SEG_MAGIC: &[u8; 8] = b"AKSEG01\0";
/// Segment file with a datatype byte after the header (float16 vectors).
const SEG_MAGIC_2: &[u8; 8] = b"AKSEG02\0";
/// Manifest format of snapshots whose segment files are all `AKSEG01`.
const FORMAT_F32: u32 = 2;
/// Manifest format of snapshots with `AKSEG02` segment files (older binaries cannot read
/// them).
const FORMAT_TYPED: u32 = 3;

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
    /// Tombstones in the points file. Those of a sealed segment only ever grow, so two
    /// snapshots with the same segment id, tombstone count and graph presence hold the same
    /// files: the later one hard-links them from the earlier one. (Not written before
    /// format 3's checkpoints: such entries are never reused.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstones: Option<u64>,
    /// The graph's calibrated `ef` for k = 10 (`Graph::calibrate`), so that a restart need
    /// not measure it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ef: Option<u32>,
    /// Quantized collections: the codes file ([`Codes::encode`]), written with the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes_file: Option<String>,
    /// On-disk collections: the segment's vector file ([`crate::vecfile`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors_file: Option<String>,
    /// The graphs of its named vectors, by name (written with the graph).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub named_graphs: BTreeMap<String, NamedGraphFile>,
}

/// A named vector's graph in a snapshot: its file ([`Graph::encode`]), calibrated `ef`, and
/// (a quantized vector's) the codes file of the column's rows ([`Codes::encode`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NamedGraphFile {
    pub file: String,
    pub default_ef: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes_file: Option<String>,
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
    /// Every file the manifest names (its files, each segment's points and graph files).
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.name.as_str()).chain(
            self.segments
                .iter()
                .flat_map(|s| s.files().chain(s.graph.as_deref())),
        )
    }
}

impl SegmentEntry {
    /// The files of this segment the manifest lists: points, then graph, codes and vectors
    /// when it has them (not format 1's `hnsw_rs` dump base name).
    pub fn files(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.points_file.as_str())
            .chain(
                [&self.graph_file, &self.codes_file, &self.vectors_file]
                    .into_iter()
                    .filter_map(|f| f.as_deref()),
            )
            .chain(
                self.named_graphs
                    .values()
                    .flat_map(|g| std::iter::once(g.file.as_str()).chain(g.codes_file.as_deref())),
            )
    }
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
    /// The graph's calibrated `ef`, when known.
    pub default_ef: Option<usize>,
    pub codes: Option<Arc<Codes>>,
    /// The graphs of its named vectors.
    pub named_graphs: BTreeMap<String, NamedGraph>,
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
    /// The graph's calibrated `ef`, when the manifest has it.
    pub default_ef: Option<usize>,
    pub codes: Option<Codes>,
    pub named_graphs: BTreeMap<String, NamedGraph>,
    pub appendable: bool,
}

pub struct Loaded {
    pub manifest: SnapshotManifest,
    pub segments: Vec<LoadedSegment>,
}

pub fn snapshots_dir(collection_dir: &Path) -> PathBuf {
    collection_dir.join("snapshots")
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
    manifest_from_bytes(&bytes).map_err(|reason| StorageError::Unreadable {
        what: "snapshot manifest",
        path: dir.join(MANIFEST),
        reason,
    })
}

/// The manifest in `bytes` (the contents of a `manifest.json`). Every file it names must be
/// a plain name inside the snapshot directory: loading joins the names to it, and a
/// manifest can come from the object store.
pub(crate) fn manifest_from_bytes(bytes: &[u8]) -> std::result::Result<SnapshotManifest, String> {
    let m: SnapshotManifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    // The id names the snapshot's directory.
    if !plain_file_name(&m.id) || m.id.starts_with('.') {
        return Err(format!(
            "its id `{}` is not a plain directory name",
            m.id.escape_default()
        ));
    }
    for name in m.file_names() {
        if !plain_file_name(name) {
            return Err(format!(
                "it names the file `{}`, which is not a plain name inside the snapshot",
                name.escape_default()
            ));
        }
    }
    Ok(m)
}

/// A file name with no directory part: not empty, `.` or `..`, without `/`, `\` or NUL.
pub(crate) fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
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

/// Keep the newest `keep` snapshots (at least one) and those in `pinned` (being uploaded);
/// delete the rest. Returns how many were deleted.
pub fn prune(
    collection_dir: &Path,
    keep: usize,
    pinned: &std::collections::HashSet<String>,
) -> Result<usize> {
    let all = list(collection_dir)?;
    let excess = all.len().saturating_sub(keep.max(1));
    let mut n = 0;
    for (p, m) in &all[..excess] {
        if !pinned.contains(&m.id) {
            fs::remove_dir_all(p)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Write segment `data` to `path` (fsynced) as a stream; returns its manifest entry.
fn write_segment(
    path: &Path,
    name: String,
    data: &SegmentData,
    deleted: &[bool],
    dim: usize,
) -> Result<SnapshotFile> {
    let mut w = Summing::new(std::io::BufWriter::with_capacity(
        64 * 1024,
        File::create(path)?,
    ));
    encode_segment(&mut w, data, deleted, dim)?;
    w.flush()?;
    let (sums, w) = w.finish();
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(SnapshotFile {
        name,
        size_bytes: sums.size_bytes,
        sha256: sums.sha256,
        crc32c: sums.crc32c,
    })
}

/// Segment `data` with its tombstones `deleted`, in the segment file format, into `w`
/// ([`decode_segment`] reads it back).
pub(crate) fn encode_segment<W: Write>(
    w: &mut W,
    data: &SegmentData,
    deleted: &[bool],
    dim: usize,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(64);
    let external = data.vectors.mapped().is_some();
    let datatype = data.vectors.datatype();
    if datatype == Datatype::Float32 && !external {
        head.extend_from_slice(SEG_MAGIC);
    } else {
        head.extend_from_slice(SEG_MAGIC_2);
    }
    head.extend_from_slice(&data.id.to_le_bytes());
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    head.extend_from_slice(&(dim as u32).to_le_bytes());
    match (datatype, external) {
        (Datatype::Float32, false) => {}
        (Datatype::Float16, false) => head.push(DT_FLOAT16),
        (Datatype::Float32, true) => head.push(DT_FLOAT32 | DT_EXTERNAL),
        (Datatype::Float16, true) => head.push(DT_FLOAT16 | DT_EXTERNAL),
    }
    w.write_all(&head)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for k in data.keys.iter() {
        put_key(&mut buf, &k);
        if buf.len() >= 60 * 1024 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    buf.clear();
    match &data.vectors {
        Vectors::F32(v) => write_values(w, &mut buf, v, f32::to_le_bytes)?,
        Vectors::F16(v) => write_values(w, &mut buf, v, u16::to_le_bytes)?,
        // In the segment's vector file.
        Vectors::Mapped(_) => {}
    }
    buf.clear();
    buf.extend(deleted.iter().map(|&d| d as u8));
    w.write_all(&buf)?;
    for p in data.payloads.iter() {
        if p.is_empty() {
            w.write_all(&0u32.to_le_bytes())?;
        } else {
            let json = serde_json::to_vec(p).expect("JSON map serializes");
            w.write_all(&(json.len() as u32).to_le_bytes())?;
            w.write_all(&json)?;
        }
    }
    // Sparse vectors, when any point has one or a named dense vector: each slot's, after the
    // payloads (a file without them ends with the payloads). Then named dense vectors, when
    // any point has one: each slot's (a file without them ends with the sparse vectors).
    let named = !data.named.is_empty();
    if named || !data.sparse.is_empty() {
        buf.clear();
        for off in 0..data.len() {
            put_sparse(&mut buf, &data.sparse.row(off));
            if buf.len() >= 60 * 1024 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)?;
    }
    if named {
        buf.clear();
        for off in 0..data.len() {
            put_named_rows(&mut buf, &data.named.stored(off));
            if buf.len() >= 60 * 1024 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Datatype byte of an `AKSEG02` segment file.
const DT_FLOAT16: u8 = 2;
const DT_FLOAT32: u8 = 1;
/// Flag of the datatype byte: the vectors are in the segment's vector file, not here.
const DT_EXTERNAL: u8 = 0x80;

/// A segment file read as a stream of at most `size` bytes, checksummed on the way.
struct Src<R: Read> {
    r: R,
    size: u64,
    read: u64,
    crc: u32,
    buf: Vec<u8>,
}

impl<R: Read> Decode for Src<R> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        if self.read + n as u64 > self.size {
            return Err(format!("file ends early at byte {}", self.read));
        }
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        self.r
            .read_exact(&mut self.buf[..n])
            .map_err(|e| format!("at byte {}: {e}", self.read))?;
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[..n]);
        self.read += n as u64;
        Ok(&self.buf[..n])
    }
}

impl<R: Read> Src<R> {
    /// Fail unless `n` more items of at least `each` bytes can still be in the file (so a
    /// damaged count never allocates more than the file could hold).
    fn room(&self, n: u64, each: u64) -> std::result::Result<(), String> {
        match n.checked_mul(each) {
            Some(b) if b <= self.size - self.read => Ok(()),
            _ => Err(format!("count {n} at byte {} exceeds the file", self.read)),
        }
    }
}

/// `values` written little-endian, `N` bytes each, through `buf` in 32 KiB pieces.
fn write_values<W: Write, T: Copy, const N: usize>(
    w: &mut W,
    buf: &mut Vec<u8>,
    values: &[T],
    to_le: fn(T) -> [u8; N],
) -> std::io::Result<()> {
    for c in values.chunks(32 * 1024 / N) {
        buf.clear();
        c.iter().for_each(|&x| buf.extend_from_slice(&to_le(x)));
        w.write_all(buf)?;
    }
    Ok(())
}

/// `count` little-endian values of `N` bytes each, read in chunks of 16 Ki values.
fn read_values<R: Read, T, const N: usize>(
    src: &mut Src<R>,
    count: usize,
    from_le: fn([u8; N]) -> T,
) -> std::result::Result<Vec<T>, String> {
    const CHUNK: usize = 16 * 1024;
    let mut v = Vec::with_capacity(count);
    while v.len() < count {
        let m = CHUNK.min(count - v.len());
        let raw = src.take(m * N)?;
        v.extend(
            raw.chunks_exact(N)
                .map(|c| from_le(c.try_into().expect("chunks of N bytes"))),
        );
    }
    Ok(v)
}

/// A segment file decoded: its points, tombstones, and whether its vectors are in the
/// segment's vector file (then `data.vectors` is empty).
type DecodedSegment = (SegmentData, Vec<bool>, bool);

/// Decode a segment file from `src`; the caller checks the size and checksum afterwards.
fn decode_segment<R: Read>(src: &mut Src<R>) -> std::result::Result<DecodedSegment, String> {
    let magic = src.take(8)?;
    let typed = if magic == SEG_MAGIC {
        false
    } else if magic == SEG_MAGIC_2 {
        true
    } else {
        return Err("not a segment file".into());
    };
    let id = src.u64()?;
    let n = src.u64()?;
    let dim = src.u32()? as u64;
    let (datatype, external) = if typed {
        let t = src.u8()?;
        let datatype = match t & !DT_EXTERNAL {
            DT_FLOAT16 => Datatype::Float16,
            DT_FLOAT32 if t & DT_EXTERNAL != 0 => Datatype::Float32,
            _ => return Err(format!("unknown vector datatype {t}")),
        };
        (datatype, t & DT_EXTERNAL != 0)
    } else {
        (Datatype::Float32, false)
    };
    let inline = if external { 0 } else { datatype.size() as u64 };
    src.room(n, 1 + 8 + dim * inline + 1 + 4)?;
    let n = n as usize;
    let mut keys = Keys::with_capacity(n);
    for _ in 0..n {
        keys.push(src.key()?);
    }
    let values = if external { 0 } else { n * dim as usize };
    let vectors = match datatype {
        Datatype::Float32 => Vectors::F32(read_values(src, values, f32::from_le_bytes)?),
        Datatype::Float16 => Vectors::F16(read_values(src, values, u16::from_le_bytes)?),
    };
    let deleted = src.take(n)?.iter().map(|&b| b != 0).collect();
    let mut payloads = Payloads::with_capacity(n);
    for _ in 0..n {
        let len = src.u32()? as usize;
        payloads.push(if len == 0 {
            Payload::new()
        } else {
            src.room(len as u64, 1)?;
            serde_json::from_slice(src.take(len)?).map_err(|e| e.to_string())?
        });
    }
    let mut sparse = SparseColumns::default();
    if src.read < src.size {
        src.room(n as u64, 1)?;
        for off in 0..n {
            sparse.set(off, src.sparse()?);
            // A collection declares at most that many names: more is not a file it wrote
            // (and would make every slot pay for each name).
            if sparse.columns().count() > akidb_proto::limits::MAX_SPARSE_VECTORS {
                return Err("more sparse vector names than a collection declares".into());
            }
        }
    }
    let mut named = NamedColumns::default();
    if src.read < src.size {
        src.room(n as u64, 1)?;
        for off in 0..n {
            let typed = src.named_typed()?;
            let row = typed
                .iter()
                .map(|(n, v, d)| (n.clone(), Row::F32(v), *d))
                .collect();
            named.set_rows(off, row)?;
            if named.names().count() > akidb_proto::limits::MAX_NAMED_VECTORS {
                return Err("more named vectors than a collection declares".into());
            }
        }
        named.shrink_to_fit();
    }
    Ok((
        SegmentData {
            id,
            keys,
            vectors,
            payloads,
            sparse,
            named,
        },
        deleted,
        external,
    ))
}

/// Read and decode the segment file at `p`, checking it against its manifest entry (size
/// and crc32c) when it has one.
fn load_segment(p: &Path, entry: Option<&SnapshotFile>) -> Result<DecodedSegment> {
    let unreadable = |e: &dyn std::fmt::Display| unreadable(p, e);
    let f = File::open(p).map_err(|e| unreadable(&e))?;
    let size = f.metadata().map_err(|e| unreadable(&e))?.len();
    let mismatch = || StorageError::ChecksumMismatch {
        path: p.to_path_buf(),
    };
    if entry.is_some_and(|e| e.size_bytes != size) {
        return Err(mismatch());
    }
    let mut src = Src {
        r: std::io::BufReader::with_capacity(64 * 1024, f),
        size,
        read: 0,
        crc: 0,
        buf: Vec::new(),
    };
    let decoded = decode_segment(&mut src);
    if let Some(e) = entry {
        // A file that decodes and a file that is intact are different things: the
        // checksum decides first, so damage is reported as such.
        let rest = (|| -> std::io::Result<()> {
            let mut tail = [0u8; 8192];
            loop {
                let k = src.r.read(&mut tail)?;
                if k == 0 {
                    return Ok(());
                }
                src.crc = crc32c::crc32c_append(src.crc, &tail[..k]);
            }
        })();
        rest.map_err(|e| unreadable(&e))?;
        if src.crc != e.crc32c {
            return Err(mismatch());
        }
    }
    let decoded = decoded.map_err(|err| damaged("snapshot segment", p, err))?;
    if src.read != size {
        return Err(damaged(
            "snapshot segment",
            p,
            format!("{} trailing bytes", size - src.read),
        ));
    }
    Ok(decoded)
}

/// Decode a whole segment file held in memory, as [`load_segment`] decodes one read from
/// disk (without the manifest's size and checksum, which the caller has): the fuzz targets'
/// entry point.
pub(crate) fn decode_segment_bytes(
    bytes: &[u8],
) -> std::result::Result<(SegmentData, Vec<bool>), String> {
    let mut src = Src {
        r: bytes,
        size: bytes.len() as u64,
        read: 0,
        crc: 0,
        buf: Vec::new(),
    };
    let (data, deleted, external) = decode_segment(&mut src)?;
    if src.read != src.size {
        return Err(format!("{} trailing bytes", src.size - src.read));
    }
    if external {
        // Its vectors are in another file: not a whole segment on its own.
        return Err("the vectors are in the segment's vector file".into());
    }
    Ok((data, deleted))
}

/// Check the file at `p` against its manifest entry, reading it in chunks.
fn verify_file(p: &Path, f: &SnapshotFile) -> Result<()> {
    let (crc, size) = file_crc(p).map_err(|e| unreadable(p, &e))?;
    if size != f.size_bytes || crc != f.crc32c {
        return Err(StorageError::ChecksumMismatch {
            path: p.to_path_buf(),
        });
    }
    Ok(())
}

/// A snapshot file that cannot be read.
fn unreadable(p: &Path, e: &dyn std::fmt::Display) -> StorageError {
    StorageError::Unreadable {
        what: "snapshot file",
        path: p.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A snapshot file that was read but does not hold what it should.
fn damaged(what: &'static str, p: &Path, problem: impl std::fmt::Display) -> StorageError {
    StorageError::Damaged {
        what,
        path: p.to_path_buf(),
        problem: problem.to_string(),
    }
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
    let previous = list(collection_dir)?.pop();
    for s in &cap.segments {
        let tombstones = s.deleted.iter().filter(|d| **d).count() as u64;
        if !s.appendable
            && let Some((dir, m)) = &previous
            && let Some(e) = reusable(m, s, tombstones)
        {
            for name in e.files() {
                fs::hard_link(dir.join(name), tmp.join(name))?;
                let f = m.files.iter().find(|f| f.name == name);
                files.push(f.expect("reusable() checked the manifest lists it").clone());
            }
            segments.push(SegmentEntry {
                tombstones: Some(tombstones),
                default_ef: s.default_ef.map(|e| e as u32).or(e.default_ef),
                ..e.clone()
            });
            continue;
        }
        let base = format!("seg-{}", s.data.id);
        let points_file = format!("{base}.pts");
        let path = tmp.join(&points_file);
        files.push(write_segment(
            &path,
            points_file.clone(),
            &s.data,
            &s.deleted,
            dim,
        )?);
        let vectors_file = match s.data.vectors.mapped() {
            Some(f) => {
                let name = crate::vecfile::file_name(s.data.id);
                let dst = tmp.join(&name);
                crate::fsutil::link_or_copy(f.path(), &dst)?;
                File::open(&dst)?.sync_all()?;
                let sums = f.sums();
                files.push(SnapshotFile {
                    name: name.clone(),
                    size_bytes: sums.size_bytes,
                    sha256: sums.sha256.clone(),
                    crc32c: sums.crc32c,
                });
                Some(name)
            }
            None => None,
        };
        let mut small_file = |name: String, bytes: Vec<u8>| -> Result<String> {
            write_synced(&tmp.join(&name), &bytes)?;
            files.push(SnapshotFile {
                name: name.clone(),
                size_bytes: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&bytes)),
                crc32c: crc32c::crc32c(&bytes),
            });
            Ok(name)
        };
        let graph_file = match &s.graph {
            Some(g) => Some(small_file(format!("{base}.graph"), g.encode())?),
            None => None,
        };
        let encode = |c: &Codes| -> Result<Vec<u8>> {
            let mut bytes = Vec::with_capacity(c.memory_bytes() as usize + 64);
            c.encode(&mut bytes)?;
            Ok(bytes)
        };
        let codes_file = match &s.codes {
            Some(c) => Some(small_file(format!("{base}.codes"), encode(c)?)?),
            None => None,
        };
        let mut named_graphs = BTreeMap::new();
        for (name, g) in &s.named_graphs {
            let codes_file = match &g.codes {
                Some(c) => Some(small_file(format!("{base}.{name}.codes"), encode(c)?)?),
                None => None,
            };
            let file = small_file(format!("{base}.{name}.graph"), g.graph.encode())?;
            let default_ef = g.default_ef as u32;
            named_graphs.insert(
                name.clone(),
                NamedGraphFile {
                    file,
                    default_ef,
                    codes_file,
                },
            );
        }
        segments.push(SegmentEntry {
            id: s.data.id,
            points_file,
            graph: None,
            graph_file,
            appendable: s.appendable,
            tombstones: Some(tombstones),
            default_ef: s.default_ef.map(|e| e as u32),
            codes_file,
            vectors_file,
            named_graphs,
        });
    }
    let typed = cap
        .segments
        .iter()
        .any(|s| s.data.vectors.datatype() != Datatype::Float32);
    let manifest = SnapshotManifest {
        format: if typed { FORMAT_TYPED } else { FORMAT_F32 },
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

/// The entry of the previous snapshot `m` whose files hold exactly the sealed segment `s`
/// (with `tombstones` tombstones), if there is one.
fn reusable<'m>(
    m: &'m SnapshotManifest,
    s: &CapturedSegment,
    tombstones: u64,
) -> Option<&'m SegmentEntry> {
    let e = m.segments.iter().find(|e| e.id == s.data.id)?;
    let listed = |name: &str| m.files.iter().any(|f| f.name == name);
    let same = !e.appendable
        && e.tombstones == Some(tombstones)
        && e.graph.is_none()
        && e.graph_file.is_some() == s.graph.is_some()
        && e.codes_file.is_some() == s.codes.is_some()
        && e.vectors_file.is_some() == s.data.vectors.mapped().is_some()
        && e.named_graphs
            .iter()
            .map(|(n, f)| (n, f.codes_file.is_some()))
            .eq(s.named_graphs.iter().map(|(n, g)| (n, g.codes.is_some())))
        && e.files().all(listed);
    same.then_some(e)
}

/// Load the snapshot in `dir`, checking every file against its crc32c. Graphs are loaded
/// from their files (format 1: from `hnsw_rs` dumps, converted), not rebuilt. Vector files
/// are mapped, not read into memory: linked into `vectors_dir` first (the collection's
/// `vectors/`) when given, so that they outlive the snapshot.
pub fn load(dir: &Path, vectors_dir: Option<&Path>) -> Result<Loaded> {
    let manifest = read_manifest(dir)?;
    let entry = |name: &str| manifest.files.iter().find(|f| f.name == name);
    // Files no segment entry names as its points or graph file (format 1's `hnsw_rs` dumps):
    // checked here, as a stream; the others are checked as they are decoded.
    for f in &manifest.files {
        let named = manifest
            .segments
            .iter()
            .any(|e| e.files().any(|n| n == f.name));
        if !named {
            verify_file(&dir.join(&f.name), f)?;
        }
    }
    let read = |name: &str| -> Result<Vec<u8>> {
        let p = dir.join(name);
        let bytes = fs::read(&p).map_err(|e| unreadable(&p, &e))?;
        if let Some(f) = entry(name)
            && (bytes.len() as u64 != f.size_bytes || crc32c::crc32c(&bytes) != f.crc32c)
        {
            return Err(StorageError::ChecksumMismatch { path: p });
        }
        Ok(bytes)
    };
    let spec = &manifest.collection;
    let mut segments = Vec::new();
    for e in &manifest.segments {
        let p = dir.join(&e.points_file);
        let (mut data, deleted, external) = load_segment(&p, entry(&e.points_file))?;
        match (&e.vectors_file, external) {
            (Some(name), true) => {
                let src = dir.join(name);
                let f = entry(name)
                    .ok_or_else(|| damaged("snapshot manifest", &src, "the file is not listed"))?;
                verify_file(&src, f)?;
                let mapped = match vectors_dir {
                    Some(vd) => crate::vecfile::VecFile::adopt(
                        &src,
                        &vd.join(crate::vecfile::live_name(data.id)),
                    ),
                    None => crate::vecfile::VecFile::map(&src, false),
                }
                .map_err(|err| damaged("snapshot vector file", &src, err))?;
                if mapped.points() != data.len()
                    || mapped.dim() != spec.dimension as usize
                    || mapped.datatype() != data.vectors.datatype()
                {
                    return Err(damaged(
                        "snapshot vector file",
                        &src,
                        format!(
                            "{} vectors of {} {} components for {} points of {}",
                            mapped.points(),
                            mapped.dim(),
                            mapped.datatype().as_str(),
                            data.len(),
                            spec.dimension
                        ),
                    ));
                }
                data.vectors = Vectors::Mapped(Arc::new(mapped));
            }
            (None, false) => {}
            _ => {
                return Err(damaged(
                    "snapshot segment",
                    &p,
                    "its points file and its manifest entry disagree on where its vectors are",
                ));
            }
        }
        if data.vectors.datatype() != spec.datatype {
            return Err(damaged(
                "snapshot segment",
                &p,
                format!(
                    "it holds {} vectors, the collection is {}",
                    data.vectors.datatype().as_str(),
                    spec.datatype.as_str()
                ),
            ));
        }
        let dim = spec.dimension as usize;
        let graph = match (&e.graph_file, &e.graph) {
            (Some(name), _) => Some(
                Graph::decode(&read(name)?, spec.metric, dim)
                    .map_err(|err| damaged("snapshot graph", &dir.join(name), err))?,
            ),
            (None, Some(base)) => Some(Graph::load_hnsw_rs(dir, base, spec.metric, dim)?),
            (None, None) => None,
        };
        if let Some(g) = &graph
            && g.slots() > data.len()
        {
            return Err(damaged(
                "snapshot graph of segment",
                &p,
                format!(
                    "it indexes offsets past the segment's {} points",
                    data.len()
                ),
            ));
        }
        let codes = match &e.codes_file {
            Some(name) => {
                let c = Codes::decode(&read(name)?, spec.metric, dim)
                    .map_err(|err| damaged("snapshot codes", &dir.join(name), err))?;
                if c.len() != data.len() || c.kind() != spec.quantization {
                    return Err(damaged(
                        "snapshot codes of segment",
                        &p,
                        format!(
                            "{} {} codes for {} {} points",
                            c.len(),
                            c.kind().as_str(),
                            data.len(),
                            spec.quantization.as_str()
                        ),
                    ));
                }
                Some(c)
            }
            None => None,
        };
        // Named columns of the collection's names, dimensions and datatypes only: a write of
        // a valid vector must never meet a column it cannot join.
        for name in data.named.names() {
            let (dim, datatype) = data
                .named
                .column(name)
                .map_or((0, Datatype::Float32), |c| (c.dim(), c.datatype()));
            if spec
                .vectors
                .get(name)
                .map(|v| (v.dimension as usize, v.datatype))
                != Some((dim, datatype))
            {
                return Err(damaged(
                    "snapshot segment",
                    &p,
                    format!(
                        "it holds named vector `{name}` of {dim} {} components, which the collection does not declare",
                        datatype.as_str()
                    ),
                ));
            }
        }
        let mut named_graphs = BTreeMap::new();
        for (name, f) in &e.named_graphs {
            let path = dir.join(&f.file);
            let (Some(v), Some(col)) = (spec.vectors.get(name), data.named.column(name)) else {
                return Err(damaged(
                    "snapshot graph of a named vector",
                    &path,
                    format!("the collection or the segment has no named vector `{name}`"),
                ));
            };
            let g = Graph::decode(&read(&f.file)?, v.metric, v.dimension as usize)
                .map_err(|err| damaged("snapshot graph", &path, err))?;
            if g.slots() > col.slots().len() || col.dim() != v.dimension as usize {
                return Err(damaged(
                    "snapshot graph of a named vector",
                    &path,
                    format!(
                        "it indexes rows past the column's {} (of {} components)",
                        col.slots().len(),
                        col.dim()
                    ),
                ));
            }
            let codes = match &f.codes_file {
                Some(file) => {
                    let path = dir.join(file);
                    let c = Codes::decode(&read(file)?, v.metric, v.dimension as usize)
                        .map_err(|err| damaged("snapshot codes", &path, err))?;
                    if c.len() != col.slots().len() || c.kind() != v.quantization {
                        return Err(damaged(
                            "snapshot codes of a named vector",
                            &path,
                            format!(
                                "{} {} codes for {} rows of {} `{name}`",
                                c.len(),
                                c.kind().as_str(),
                                col.slots().len(),
                                v.quantization.as_str()
                            ),
                        ));
                    }
                    Some(Arc::new(c))
                }
                None if !v.quantization.is_none() => {
                    return Err(damaged(
                        "snapshot graph of a named vector",
                        &path,
                        format!(
                            "the graph of `{name}`, quantized {}, comes without its codes",
                            v.quantization.as_str()
                        ),
                    ));
                }
                None => None,
            };
            let graph = Arc::new(g);
            let default_ef = f.default_ef as usize;
            named_graphs.insert(
                name.clone(),
                NamedGraph {
                    graph,
                    default_ef,
                    codes,
                },
            );
        }
        segments.push(LoadedSegment {
            data,
            deleted,
            graph,
            default_ef: e.default_ef.map(|e| e as usize),
            codes,
            named_graphs,
            appendable: e.appendable,
        });
    }
    Ok(Loaded { manifest, segments })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::put_named;

    /// A segment file with more sparse vector names than a collection may declare does not
    /// decode (each name would pad a column over every slot); one with 8 does.
    #[test]
    fn segment_files_with_too_many_sparse_names_are_refused() {
        let file = |names: usize| {
            let mut data = SegmentData::new(1, Datatype::Float32);
            for off in 0..names {
                data.keys.push(crate::model::PointKey::Num(off as u64));
                data.vectors.push(&[1.0]);
                data.payloads.push(Payload::new());
                data.sparse.set(
                    off,
                    [(
                        format!("n{off}"),
                        crate::model::SparseVector {
                            indices: vec![1],
                            values: vec![1.0],
                        },
                    )]
                    .into(),
                );
            }
            let mut out = Vec::new();
            encode_segment(&mut out, &data, &vec![false; names], 1).unwrap();
            out
        };
        let (eight, _) = decode_segment_bytes(&file(8)).unwrap();
        assert_eq!(eight.sparse.columns().count(), 8);
        let err = decode_segment_bytes(&file(9)).unwrap_err();
        assert!(err.contains("more sparse vector names"), "{err}");
    }

    /// Named vectors round-trip through a segment file (with no sparse vector, the sparse
    /// section is written empty before them), float16 ones as float16; a file with more names
    /// than a collection may declare, or rows of one name of two lengths, does not decode.
    #[test]
    fn segment_files_with_named_vectors_round_trip_and_bad_ones_are_refused() {
        let file = |names: usize, second_len: usize| {
            let mut data = SegmentData::new(1, Datatype::Float32);
            for off in 0..names.max(2) {
                data.keys.push(crate::model::PointKey::Num(off as u64));
                data.vectors.push(&[1.0]);
                data.payloads.push(Payload::new());
            }
            // `n1` kept as float16 (its values exact in it).
            let datatype = |n: &str| match n {
                "n1" => Datatype::Float16,
                _ => Datatype::Float32,
            };
            for off in 0..names {
                let v = vec![off as f32 + 0.5; 3];
                data.named
                    .set(off, [(format!("n{off}"), v)].into(), &datatype)
                    .unwrap();
            }
            let mut out = Vec::new();
            encode_segment(&mut out, &data, &vec![false; data.len()], 1).unwrap();
            if second_len != 3 {
                // Slots 0 and 1 given `n0` of two lengths, written by hand after an
                // empty sparse section (one byte a slot).
                let mut bytes = Vec::new();
                put_named(&mut bytes, &[("n0".to_string(), vec![1.0; 3])].into());
                put_named(
                    &mut bytes,
                    &[("n0".to_string(), vec![1.0; second_len])].into(),
                );
                let mut base = Vec::new();
                let plain = SegmentData {
                    named: NamedColumns::default(),
                    ..data.clone()
                };
                encode_segment(&mut base, &plain, &vec![false; data.len()], 1).unwrap();
                base.extend(std::iter::repeat_n(0u8, data.len()));
                base.extend(bytes);
                return base;
            }
            out
        };
        let (two, _) = decode_segment_bytes(&file(2, 3)).unwrap();
        assert_eq!(two.named.row(1), [("n1".to_string(), vec![1.5; 3])].into());
        assert!(two.sparse.is_empty());
        let datatype = |n: &str| two.named.column(n).unwrap().datatype();
        assert_eq!(
            (datatype("n0"), datatype("n1")),
            (Datatype::Float32, Datatype::Float16)
        );
        // Its 3 components in 6 bytes, not 12: the file of the float16 one is 6 bytes shorter.
        let mut all32 = SegmentData::new(1, Datatype::Float32);
        for off in 0..2 {
            all32.keys.push(crate::model::PointKey::Num(off as u64));
            all32.vectors.push(&[1.0]);
            all32.payloads.push(Payload::new());
            let v = vec![off as f32 + 0.5; 3];
            all32
                .named
                .set(off, [(format!("n{off}"), v)].into(), &|_| Datatype::Float32)
                .unwrap();
        }
        let mut out32 = Vec::new();
        encode_segment(&mut out32, &all32, &[false; 2], 1).unwrap();
        assert_eq!(out32.len(), file(2, 3).len() + 6);
        let (eight, _) = decode_segment_bytes(&file(8, 3)).unwrap();
        assert_eq!(eight.named.names().count(), 8);
        let err = decode_segment_bytes(&file(9, 3)).unwrap_err();
        assert!(err.contains("more named vectors"), "{err}");
        let err = decode_segment_bytes(&file(2, 4)).unwrap_err();
        assert!(err.contains("components"), "{err}");
    }

    /// Found by the `snapshot_segment` fuzz target: a payload float with many digits came
    /// back from a segment file one ulp off (serde_json's default float parser rounds some
    /// long decimals wrongly; the `float_roundtrip` feature parses them exactly).
    #[test]
    fn payload_floats_survive_a_segment_file_bit_for_bit() {
        let floats = [
            1.0000001968098777,
            0.30000000000000004,
            2.0612498074769974,
            5e-324,
        ];
        let payload = |x: f64| -> Payload {
            serde_json::from_value(serde_json::json!({ "x": x })).expect("an object")
        };
        let mut data = SegmentData {
            id: 1,
            keys: Keys::default(),
            vectors: Vectors::F32(Vec::new()),
            payloads: Payloads::default(),
            ..Default::default()
        };
        for (i, &x) in floats.iter().enumerate() {
            data.keys.push(crate::model::PointKey::Num(i as u64));
            if let Vectors::F32(v) = &mut data.vectors {
                v.extend([x as f32, 1.0]);
            }
            data.payloads.push(payload(x));
        }
        let mut file = Vec::new();
        encode_segment(&mut file, &data, &[false; 4], 2).unwrap();
        let (back, _) = decode_segment_bytes(&file).unwrap();
        for (i, &x) in floats.iter().enumerate() {
            let got = back.payloads.get(i)["x"].as_f64().unwrap();
            assert_eq!(got.to_bits(), x.to_bits(), "{x} came back as {got}");
        }
    }

    /// Found by the `snapshot_manifest` fuzz target: a manifest could name files outside its
    /// snapshot directory (`seg/1.pts`, `../x`, `/etc/passwd`), which loading joins to the
    /// directory and reads (format 1's graph base name too). Such a manifest is now refused.
    #[test]
    fn manifest_names_stay_inside_the_snapshot() {
        let spec = CollectionSpec::for_test("c", 4, crate::model::Metric::L2, 32);
        let manifest = |points_file: &str, graph: Option<&str>, file: &str| SnapshotManifest {
            format: FORMAT_F32,
            id: "00000000000000000001-1".into(),
            collection: spec.clone(),
            sequence: 1,
            created_unix_ms: 1,
            point_count: 0,
            next_segment_id: 2,
            segments: vec![SegmentEntry {
                id: 1,
                points_file: points_file.into(),
                graph: graph.map(String::from),
                graph_file: None,
                appendable: true,
                tombstones: None,
                default_ef: None,
                codes_file: None,
                vectors_file: None,
                named_graphs: Default::default(),
            }],
            files: vec![SnapshotFile {
                name: file.into(),
                size_bytes: 0,
                sha256: String::new(),
                crc32c: 0,
            }],
        };
        let read = |m: &SnapshotManifest| manifest_from_bytes(&serde_json::to_vec(m).unwrap());
        assert!(read(&manifest("seg-1.pts", Some("seg-1"), "seg-1.pts")).is_ok());
        // The fuzzer's input named `seg/1.pts`.
        for bad in [
            "seg/1.pts",
            "../x",
            "/etc/passwd",
            "..",
            ".",
            "",
            "a\\b",
            "a\0b",
        ] {
            assert!(read(&manifest(bad, None, "seg-1.pts")).is_err(), "{bad:?}");
            assert!(read(&manifest("seg-1.pts", None, bad)).is_err(), "{bad:?}");
            assert!(
                read(&manifest("seg-1.pts", Some(bad), "x")).is_err(),
                "{bad:?}"
            );
        }
        // A snapshot directory with such a manifest is skipped when listed, not loaded.
        let dir = tempfile::tempdir().unwrap();
        let snap = snapshots_dir(dir.path()).join("00000000000000000001-1");
        fs::create_dir_all(&snap).unwrap();
        let m = manifest("../../escape.pts", None, "seg-1.pts");
        fs::write(snap.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        assert!(matches!(
            load(&snap, None),
            Err(StorageError::Unreadable { .. })
        ));
    }
}
