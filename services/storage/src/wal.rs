//! The write-ahead log of one collection: segmented files of checksummed, framed records.
//!
//! Record layout (little-endian): `[len u32][crc32c u32][seq u64][body; len bytes]`, where the
//! checksum covers the sequence number and the body. Segment files are named after the first
//! sequence number they may hold (`00000000000000000042.wal`).
//!
//! Writers append under one lock, which assigns the sequence number, so the order on disk is
//! the order of sequence numbers. Durability is a separate step ([`Wal::wait_durable`]): the
//! first waiter becomes the leader and fsyncs everything appended so far; writers that arrive
//! meanwhile wait and are covered by the next fsync (group commit).
//!
//! Recovery ([`Wal::open`]) replays records after a given sequence number. A partial record at
//! the end of the newest segment (a write torn by a crash: no valid record follows it) is
//! truncated and counted; a record that fails its checksum or has a damaged header anywhere
//! else stops start-up with the file and offset, unless the operator chose
//! [`RecoveryMode::SkipCorrupt`].

use crate::distance::{Row, f16_to_f32};
use crate::error::{Result, StorageError, WalFailure};
use crate::fsutil::sync_dir;
use crate::model::{
    Datatype, NamedVectors, Payload, PointKey, PointRecord, SparseVector, SparseVectors,
};
use akidb_instrumentation::metrics;
use parking_lot::{Condvar, Mutex};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes before the body of a record.
pub const HEADER_LEN: usize = 16;
/// Largest body accepted; anything larger in a header is damage.
pub const MAX_RECORD_LEN: usize = 1 << 30;
/// Default size at which a new segment file is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every write returns only after an fsync covering it (group-committed). The default.
    Always,
    /// fsync in the background every interval: an acknowledged write can be lost if the
    /// machine (not just the process) crashes within the interval.
    Interval(Duration),
    /// Never fsync (the OS decides): fastest, loses recent writes on a machine crash.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => match s.strip_prefix("interval=") {
                Some(ms) => ms
                    .parse::<u64>()
                    .ok()
                    .filter(|&ms| ms > 0)
                    .map(|ms| FsyncPolicy::Interval(Duration::from_millis(ms)))
                    .ok_or_else(|| format!("`{s}`: interval must be a positive number of ms")),
                None => Err(format!(
                    "`{s}` is not an fsync policy; use always, interval=<ms> or never"
                )),
            },
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => write!(f, "always"),
            FsyncPolicy::Interval(d) => write!(f, "interval={}", d.as_millis()),
            FsyncPolicy::Never => write!(f, "never"),
        }
    }
}

/// What start-up does with a record that fails its checksum before the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RecoveryMode {
    /// Refuse to start, naming the file and offset. The default: nothing is lost silently.
    #[default]
    Strict,
    /// Skip damaged records (their writes are lost), count them and start.
    SkipCorrupt,
}

#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    pub fsync: FsyncPolicy,
    pub recovery: RecoveryMode,
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            recovery: RecoveryMode::Strict,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// One logged operation.
#[derive(Debug, Clone, PartialEq)]
pub enum WalOp {
    /// Points as applied (cosine vectors already normalized).
    Upsert(Vec<PointRecord>),
    /// Keys removed (a delete by filter is logged as the keys it resolved to).
    Delete(Vec<PointKey>),
    /// Points' new whole payloads, their vectors kept (an UpdatePayload, logged as the keys
    /// it resolved to and the payloads it made).
    Payloads(Vec<(PointKey, Payload)>),
}

const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_PAYLOADS: u8 = 3;
/// An upsert whose points carry sparse vectors (each point's followed by them).
const OP_UPSERT_SPARSE: u8 = 4;
/// An upsert whose points carry named dense vectors (each point's followed by its sparse
/// vectors, then its named ones).
const OP_UPSERT_NAMED: u8 = 5;

/// A point's named dense vectors: their count, then each one's name (length, bytes),
/// component count and components (little-endian float32). [`Decode::named`] reads it back.
pub(crate) fn put_named(out: &mut Vec<u8>, named: &NamedVectors) {
    let rows: Vec<(&str, Row<'_>)> = named
        .iter()
        .map(|(n, v)| (n.as_str(), Row::F32(v)))
        .collect();
    put_named_rows(out, &rows);
}

/// Flag of a named vector's component count: float16 components follow (2 bytes each), as a
/// float16 vector is kept; segment files write them so.
const NAMED_F16: u32 = 1 << 31;

/// [`put_named`] of vectors as they are kept: float16 ones as float16 ([`NAMED_F16`]).
pub(crate) fn put_named_rows(out: &mut Vec<u8>, rows: &[(&str, Row<'_>)]) {
    out.push(rows.len() as u8);
    for (name, v) in rows {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        match v {
            Row::F32(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            Row::F16(v) => {
                out.extend_from_slice(&(v.len() as u32 | NAMED_F16).to_le_bytes());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
        }
    }
}

/// A point's sparse vectors: their count, then each one's name (length, bytes), entry count,
/// indices and values (little-endian). [`Decode::sparse`] reads it back.
pub(crate) fn put_sparse(out: &mut Vec<u8>, sparse: &SparseVectors) {
    out.push(sparse.len() as u8);
    for (name, v) in sparse {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        v.indices
            .iter()
            .for_each(|i| out.extend_from_slice(&i.to_le_bytes()));
        v.values
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    }
}

fn put_payload(out: &mut Vec<u8>, p: &Payload) {
    if p.is_empty() {
        out.extend_from_slice(&0u32.to_le_bytes());
    } else {
        let json = serde_json::to_vec(p).expect("JSON map serializes");
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
    }
}

pub(crate) fn put_key(out: &mut Vec<u8>, k: &PointKey) {
    match k {
        PointKey::Num(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        PointKey::Uuid(u) => {
            out.push(1);
            out.push(u.len() as u8);
            out.extend_from_slice(u.as_bytes());
        }
    }
}

impl WalOp {
    /// The record body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            WalOp::Upsert(points) => {
                let dim = points.first().map_or(0, |p| p.vector.len());
                let mut out = Vec::with_capacity(9 + points.len() * (dim * 4 + 32));
                let named = points.iter().any(|p| !p.named.is_empty());
                let sparse = named || points.iter().any(|p| !p.sparse.is_empty());
                out.push(match (named, sparse) {
                    (true, _) => OP_UPSERT_NAMED,
                    (false, true) => OP_UPSERT_SPARSE,
                    (false, false) => OP_UPSERT,
                });
                out.extend_from_slice(&(points.len() as u32).to_le_bytes());
                out.extend_from_slice(&(dim as u32).to_le_bytes());
                for p in points {
                    put_key(&mut out, &p.key);
                    debug_assert_eq!(p.vector.len(), dim);
                    for x in &p.vector {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                    put_payload(&mut out, &p.payload);
                    if sparse {
                        put_sparse(&mut out, &p.sparse);
                    }
                    if named {
                        put_named(&mut out, &p.named);
                    }
                }
                out
            }
            WalOp::Delete(keys) => {
                let mut out = Vec::with_capacity(5 + keys.len() * 9);
                out.push(OP_DELETE);
                out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
                for k in keys {
                    put_key(&mut out, k);
                }
                out
            }
            WalOp::Payloads(changes) => {
                let mut out = Vec::with_capacity(5 + changes.len() * 32);
                out.push(OP_PAYLOADS);
                out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
                for (k, p) in changes {
                    put_key(&mut out, k);
                    put_payload(&mut out, p);
                }
                out
            }
        }
    }

    pub fn decode(body: &[u8]) -> std::result::Result<WalOp, String> {
        let mut r = Reader { b: body, at: 0 };
        let op = match r.u8()? {
            tag @ (OP_UPSERT | OP_UPSERT_SPARSE | OP_UPSERT_NAMED) => {
                let n = r.u32()? as usize;
                let dim = r.u32()? as usize;
                // A point takes at least a key (2 bytes), its vector and a payload length: a
                // damaged count never reserves more than the body can hold.
                let each = dim.saturating_mul(4).saturating_add(2 + 4);
                let mut points = Vec::with_capacity(n.min(r.left() / each));
                for _ in 0..n {
                    let key = r.key()?;
                    let raw = r.take(dim * 4)?;
                    let vector = raw
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    let payload = r.payload()?;
                    let sparse = if tag == OP_UPSERT {
                        SparseVectors::new()
                    } else {
                        r.sparse()?
                    };
                    let named = if tag == OP_UPSERT_NAMED {
                        r.named()?
                    } else {
                        NamedVectors::new()
                    };
                    points.push(PointRecord {
                        key,
                        vector,
                        payload,
                        sparse,
                        named,
                    });
                }
                WalOp::Upsert(points)
            }
            OP_DELETE => {
                let n = r.u32()? as usize;
                let mut keys = Vec::with_capacity(n.min(r.left() / 2));
                for _ in 0..n {
                    keys.push(r.key()?);
                }
                WalOp::Delete(keys)
            }
            OP_PAYLOADS => {
                let n = r.u32()? as usize;
                // A change takes at least a key (2 bytes) and a payload length (4).
                let mut changes = Vec::with_capacity(n.min(r.left() / 6));
                for _ in 0..n {
                    let key = r.key()?;
                    changes.push((key, r.payload()?));
                }
                WalOp::Payloads(changes)
            }
            t => return Err(format!("unknown operation tag {t}")),
        };
        if r.at != body.len() {
            return Err(format!("{} trailing bytes", body.len() - r.at));
        }
        Ok(op)
    }
}

pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Reader<'a> {
    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.b.len() - self.at
    }

    /// A payload: its JSON's length, then the JSON (none when 0).
    fn payload(&mut self) -> std::result::Result<Payload, String> {
        let len = self.u32()? as usize;
        if len == 0 {
            return Ok(Payload::new());
        }
        serde_json::from_slice(self.take(len)?).map_err(|e| format!("payload JSON: {e}"))
    }

    pub(crate) fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| format!("body ends early at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
}

/// Little-endian fields and point keys as the WAL and snapshot segment files write them,
/// over any source of bytes (`take`): a record body in memory ([`Reader`]) or a file read
/// as a stream (`snapshot.rs`).
pub(crate) trait Decode {
    /// The next `n` bytes, or an error naming where the input ended.
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String>;
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn key(&mut self) -> std::result::Result<PointKey, String> {
        match self.u8()? {
            0 => Ok(PointKey::Num(self.u64()?)),
            1 => {
                let n = self.u8()? as usize;
                let s = std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())?;
                Ok(PointKey::Uuid(s.to_string()))
            }
            t => Err(format!("unknown key tag {t}")),
        }
    }
    /// A vector's name: its length, then its bytes, checked as a request's would be.
    fn vector_name(&mut self) -> std::result::Result<String, String> {
        let n = self.u8()? as usize;
        let name = std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())?;
        akidb_proto::limits::check_vector_name(name).map_err(|e| e.to_string())?;
        Ok(name.to_string())
    }
    /// A point's sparse vectors ([`put_sparse`]), each checked as a request's would be.
    fn sparse(&mut self) -> std::result::Result<SparseVectors, String> {
        let count = self.u8()?;
        if count as usize > akidb_proto::limits::MAX_SPARSE_VECTORS {
            return Err(format!("{count} sparse vectors on one point"));
        }
        let mut out = SparseVectors::new();
        for _ in 0..count {
            let name = self.vector_name()?;
            let len = self.u32()? as usize;
            if len > akidb_proto::limits::MAX_SPARSE_ENTRIES {
                return Err(format!("sparse vector of {len} entries"));
            }
            let indices = self
                .take(len * 4)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>();
            let values = self
                .take(len * 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>();
            akidb_proto::limits::check_sparse(&indices, &values).map_err(|e| e.to_string())?;
            if len > 0 && out.insert(name, SparseVector { indices, values }).is_some() {
                return Err("a sparse vector name twice".into());
            }
        }
        Ok(out)
    }
    /// A point's named dense vectors ([`put_named`]): at most as many names as a collection
    /// may declare, each valid, once, with 1 to the largest dimension of finite components.
    /// A log record's named vectors (float32: the log keeps them as given).
    fn named(&mut self) -> std::result::Result<NamedVectors, String> {
        self.named_typed()?
            .into_iter()
            .map(|(n, v, d)| match d {
                Datatype::Float32 => Ok((n, v)),
                Datatype::Float16 => Err(format!("named vector `{n}` in float16 in a log record")),
            })
            .collect()
    }

    /// [`Decode::named`] with the datatype each vector was written in ([`put_named_rows`]),
    /// in name order.
    fn named_typed(&mut self) -> std::result::Result<Vec<(String, Vec<f32>, Datatype)>, String> {
        let count = self.u8()?;
        if count as usize > akidb_proto::limits::MAX_NAMED_VECTORS {
            return Err(format!("{count} named vectors on one point"));
        }
        let mut out: Vec<(String, Vec<f32>, Datatype)> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = self.vector_name()?;
            let len = self.u32()?;
            let (len, datatype) = match len & NAMED_F16 {
                0 => (len as usize, Datatype::Float32),
                _ => ((len & !NAMED_F16) as usize, Datatype::Float16),
            };
            if !akidb_proto::limits::DIMENSION.contains(&(len as u64)) {
                return Err(format!("named vector of {len} components"));
            }
            let values = match datatype {
                Datatype::Float32 => self
                    .take(len * 4)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<f32>>(),
                Datatype::Float16 => self
                    .take(len * 2)?
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect::<Vec<f32>>(),
            };
            if values.iter().any(|x| !x.is_finite()) {
                return Err(format!(
                    "named vector `{name}` has a component that is not finite"
                ));
            }
            if out.iter().any(|(n, _, _)| *n == name) {
                return Err("a named vector twice".into());
            }
            out.push((name, values, datatype));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

impl Decode for Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        Reader::take(self, n)
    }
}

/// Frame a body as one record.
pub fn frame(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(HEADER_LEN + body.len());
    rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
    rec.extend_from_slice(&[0; 4]);
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(body);
    let crc = crc32c::crc32c(&rec[8..]);
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
    rec
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// Segment files of a WAL directory, oldest first: (first sequence, path).
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(seq) = stem.parse::<u64>()
        {
            out.push((seq, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

struct Segment {
    first_seq: u64,
    path: PathBuf,
    len: u64,
}

struct Writer {
    file: Arc<File>,
    segments: Vec<Segment>,
    /// Sequence number of the last record written (0: none yet).
    last_seq: u64,
    /// Set when a write or fsync failed: the log can no longer promise anything.
    poisoned: Option<String>,
}

struct SyncState {
    durable: u64,
    syncing: bool,
}

/// What [`Wal::status`] reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalStatus {
    pub last_sequence: u64,
    pub durable_sequence: u64,
    pub segment_count: u64,
    pub size_bytes: u64,
}

/// What recovery found.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayReport {
    pub records: u64,
    pub torn_tails: u64,
    pub corrupt_records: u64,
    pub last_seq: u64,
}

pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// fsyncs issued, to show group commit at work.
    fsyncs: AtomicU64,
}

impl Wal {
    /// Open the log in `dir` (created if missing), call `apply` for every record after
    /// `after_seq` in order, then get ready to append. `progress` gets (bytes read, total).
    pub fn open(
        dir: &Path,
        opts: WalOptions,
        after_seq: u64,
        mut apply: impl FnMut(u64, WalOp) -> Result<()>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(Wal, ReplayReport)> {
        fs::create_dir_all(dir)?;
        let files = list_segments(dir)?;
        let total: u64 = files
            .iter()
            .map(|(_, p)| fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let mut done = 0u64;
        let mut report = ReplayReport {
            last_seq: after_seq,
            ..Default::default()
        };
        let mut segments = Vec::new();
        let n_files = files.len();
        for (i, (first_seq, path)) in files.into_iter().enumerate() {
            let newest = i + 1 == n_files;
            let data = fs::read(&path)?;
            let good_len =
                replay_segment(&path, &data, newest, opts.recovery, &mut report, &mut apply)?;
            if good_len < data.len() as u64 {
                // Only the newest segment is ever cut short (a torn or unreadable tail).
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good_len)?;
                f.sync_all()?;
            }
            done += data.len() as u64;
            progress(done, total);
            if good_len == 0 {
                fs::remove_file(&path)?;
            } else {
                segments.push(Segment {
                    first_seq,
                    path,
                    len: good_len,
                });
            }
        }
        let next = report.last_seq + 1;
        let path = dir.join(segment_name(next));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        sync_dir(dir)?;
        if segments.last().is_some_and(|s| s.path == path) {
            segments.pop();
        }
        segments.push(Segment {
            first_seq: next,
            path,
            len,
        });
        let size: u64 = segments.iter().map(|s| s.len).sum();
        metrics().wal_size.add(size as i64);
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                segments,
                last_seq: report.last_seq,
                poisoned: None,
            }),
            sync: Mutex::new(SyncState {
                durable: report.last_seq,
                syncing: false,
            }),
            synced: Condvar::new(),
            fsyncs: AtomicU64::new(0),
        };
        Ok((wal, report))
    }

    pub fn options(&self) -> WalOptions {
        self.opts
    }

    /// Append one record and return its sequence number. The record is written to the file
    /// but not yet durable: call [`Wal::wait_durable`] before acknowledging it.
    pub fn append(&self, body: &[u8]) -> Result<u64> {
        let mut w = self.writer.lock();
        if let Some(p) = &w.poisoned {
            return Err(WalFailure::Poisoned(p.clone()).into());
        }
        if w.segments
            .last()
            .is_some_and(|s| s.len >= self.opts.segment_bytes)
        {
            self.rotate_locked(&mut w)?;
        }
        let seq = w.last_seq + 1;
        let rec = frame(seq, body);
        let res = (&*w.file).write_all(&rec);
        if let Err(e) = res {
            // Cut off whatever part of the record reached the file, so that the next record
            // does not follow garbage; if that fails too, stop accepting writes.
            let len = w.segments.last().map_or(0, |s| s.len);
            if let Err(e2) = w.file.set_len(len) {
                w.poisoned = Some(format!("write failed: {e}; truncate failed: {e2}"));
            }
            return Err(WalFailure::Write(e).into());
        }
        let seg = w.segments.last_mut().expect("an open segment");
        seg.len += rec.len() as u64;
        w.last_seq = seq;
        let m = metrics();
        m.wal_size.add(rec.len() as i64);
        m.wal_appended_bytes.inc_by(rec.len() as u64);
        m.wal_records.inc();
        Ok(seq)
    }

    /// Return once record `seq` is durable under the fsync policy.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        match self.opts.fsync {
            FsyncPolicy::Always => self.sync_upto(seq),
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => Ok(()),
        }
    }

    /// fsync everything appended so far (interval flusher, snapshots, shutdown).
    pub fn flush(&self) -> Result<()> {
        let last = self.writer.lock().last_seq;
        self.sync_upto(last)
    }

    fn sync_upto(&self, seq: u64) -> Result<()> {
        let mut s = self.sync.lock();
        loop {
            if s.durable >= seq {
                return Ok(());
            }
            if s.syncing {
                self.synced.wait(&mut s);
                continue;
            }
            s.syncing = true;
            let prev = s.durable;
            drop(s);
            let (file, target) = {
                let w = self.writer.lock();
                if let Some(p) = &w.poisoned {
                    let mut s = self.sync.lock();
                    s.syncing = false;
                    self.synced.notify_all();
                    return Err(WalFailure::Poisoned(p.clone()).into());
                }
                (w.file.clone(), w.last_seq)
            };
            let start = Instant::now();
            let res = file.sync_data();
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            let m = metrics();
            m.wal_fsync_duration.observe(start.elapsed().as_secs_f64());
            s = self.sync.lock();
            s.syncing = false;
            self.synced.notify_all();
            match res {
                Ok(()) => {
                    m.wal_group_commit_records
                        .observe(target.saturating_sub(prev) as f64);
                    s.durable = s.durable.max(target);
                }
                Err(e) => {
                    // After a failed fsync the page cache state is unknown (fsyncgate).
                    drop(s);
                    self.writer.lock().poisoned = Some(format!("fsync failed: {e}"));
                    return Err(WalFailure::Fsync(e).into());
                }
            }
        }
    }

    fn rotate_locked(&self, w: &mut Writer) -> Result<()> {
        // Everything in the old segment becomes durable before the new one takes writes,
        // so that only the newest segment can ever have a torn tail.
        w.file.sync_data()?;
        {
            let mut s = self.sync.lock();
            s.durable = s.durable.max(w.last_seq);
        }
        let next = w.last_seq + 1;
        let path = self.dir.join(segment_name(next));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.dir)?;
        w.file = Arc::new(file);
        w.segments.push(Segment {
            first_seq: next,
            path,
            len: 0,
        });
        Ok(())
    }

    /// Start a new segment now (before a snapshot, so that older segments can be dropped).
    pub fn rotate(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if w.segments.last().is_some_and(|s| s.len == 0) {
            return Ok(());
        }
        self.rotate_locked(&mut w)
    }

    /// Delete every segment whose records all have sequence numbers `<= seq` (covered by a
    /// snapshot). The segment being written is never deleted.
    pub fn truncate_upto(&self, seq: u64) -> Result<u64> {
        let mut w = self.writer.lock();
        let mut removed = 0;
        while w.segments.len() > 1 && w.segments[1].first_seq <= seq + 1 {
            let s = w.segments.remove(0);
            fs::remove_file(&s.path)?;
            metrics().wal_size.sub(s.len as i64);
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    pub fn status(&self) -> WalStatus {
        let w = self.writer.lock();
        let durable = match self.opts.fsync {
            FsyncPolicy::Always | FsyncPolicy::Interval(_) => self.sync.lock().durable,
            FsyncPolicy::Never => 0,
        };
        WalStatus {
            last_sequence: w.last_seq,
            durable_sequence: durable,
            segment_count: w.segments.len() as u64,
            size_bytes: w.segments.iter().map(|s| s.len).sum(),
        }
    }

    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub fn last_seq(&self) -> u64 {
        self.writer.lock().last_seq
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let w = self.writer.get_mut();
        let _ = w.file.sync_data();
        metrics()
            .wal_size
            .sub(w.segments.iter().map(|s| s.len).sum::<u64>() as i64);
    }
}

/// A record that parses and passes its checksum at `off`: (sequence, body range end).
fn valid_record_at(data: &[u8], off: usize) -> Option<(u64, usize, std::result::Result<(), ()>)> {
    let rest = data.len().checked_sub(off)?;
    if rest < HEADER_LEN {
        return None;
    }
    let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap());
    let seq = u64::from_le_bytes(data[off + 8..off + 16].try_into().unwrap());
    if len > MAX_RECORD_LEN || rest - HEADER_LEN < len {
        return None;
    }
    let end = off + HEADER_LEN + len;
    let ok = crc32c::crc32c(&data[off + 8..end]) == crc;
    Some((seq, end, if ok { Ok(()) } else { Err(()) }))
}

/// Replay one segment; returns the length of its valid prefix.
pub(crate) fn replay_segment(
    path: &Path,
    data: &[u8],
    newest: bool,
    mode: RecoveryMode,
    report: &mut ReplayReport,
    apply: &mut impl FnMut(u64, WalOp) -> Result<()>,
) -> Result<u64> {
    let m = metrics();
    let mut off = 0usize;
    while off < data.len() {
        let problem = match valid_record_at(data, off) {
            Some((seq, end, Ok(()))) => {
                let body = &data[off + HEADER_LEN..end];
                match WalOp::decode(body) {
                    Ok(op) => {
                        // `last_seq` starts at `after_seq`: older records are in the snapshot.
                        if seq > report.last_seq {
                            apply(seq, op)?;
                            report.records += 1;
                            m.wal_replayed_records.inc();
                            report.last_seq = seq;
                        }
                        off = end;
                        continue;
                    }
                    Err(e) => format!("record {seq} does not decode: {e}"),
                }
            }
            // The last record of the newest file (its length runs to or past the end) is a
            // write torn by a crash only when no valid record follows it: a damaged length in
            // the middle of the newest file is damage (cutting there would drop acknowledged
            // records, and a second start-up would read the cut file differently).
            Some((seq, end, Err(()))) => {
                if newest && end == data.len() && next_valid(data, off, report.last_seq).is_none() {
                    return torn(path, off, report);
                }
                format!("record {seq} fails its checksum")
            }
            None => {
                if newest && next_valid(data, off, report.last_seq).is_none() {
                    return torn(path, off, report);
                }
                "a record header is damaged or the record is cut short".to_string()
            }
        };
        match mode {
            RecoveryMode::Strict => {
                return Err(StorageError::WalCorrupt {
                    path: path.to_path_buf(),
                    offset: off,
                    problem,
                });
            }
            RecoveryMode::SkipCorrupt => {
                report.corrupt_records += 1;
                m.wal_corrupt_records.inc();
                tracing::error!(file = %path.display(), offset = off, %problem, "skipping corrupt WAL data");
                // Resume at the next offset that holds a valid record newer than what we have.
                match next_valid(data, off, report.last_seq) {
                    Some(p) => off = p,
                    None if newest => return Ok(off as u64),
                    None => return Ok(data.len() as u64),
                }
            }
        }
    }
    Ok(data.len() as u64)
}

/// The first offset after `off` that holds a record recovery can apply: it passes its
/// checksum, decodes, and has a sequence number above `last_seq`. (Cutting the newest file
/// before such a record would lose it; a record that does not decode is lost anyway.)
fn next_valid(data: &[u8], off: usize, last_seq: u64) -> Option<usize> {
    (off + 1..data.len()).find(|&p| match valid_record_at(data, p) {
        Some((seq, end, Ok(()))) => {
            seq > last_seq && WalOp::decode(&data[p + HEADER_LEN..end]).is_ok()
        }
        _ => false,
    })
}

fn torn(path: &Path, off: usize, report: &mut ReplayReport) -> Result<u64> {
    report.torn_tails += 1;
    metrics().wal_torn_tail.inc();
    tracing::warn!(file = %path.display(), offset = off, "WAL ends with a torn record; truncating it (that write was never acknowledged)");
    Ok(off as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pt(n: u64, x: f32) -> PointRecord {
        PointRecord {
            key: PointKey::Num(n),
            vector: vec![x, x + 1.0, x + 2.0],
            payload: json!({"n": n, "s": "x"}).as_object().unwrap().clone(),
            sparse: Default::default(),
            named: Default::default(),
        }
    }

    #[test]
    fn sparse_vectors_round_trip_and_damaged_ones_are_refused() {
        let mut a = pt(1, 0.5);
        a.sparse.insert(
            "text".into(),
            SparseVector {
                indices: vec![3, 70_000, u32::MAX],
                values: vec![-1.5, 0.25, 7.0],
            },
        );
        a.sparse.insert(
            "b".into(),
            SparseVector {
                indices: vec![0],
                values: vec![1.0],
            },
        );
        // A batch where one point carries sparse vectors logs every point's (none: empty).
        let op = WalOp::Upsert(vec![a, pt(2, 1.0)]);
        let body = op.encode();
        assert_eq!(body[0], OP_UPSERT_SPARSE);
        assert_eq!(WalOp::decode(&body).unwrap(), op);
        // Without any, the record is the one written before sparse vectors existed.
        let plain = WalOp::Upsert(vec![pt(3, 2.0)]);
        assert_eq!(plain.encode()[0], OP_UPSERT);
        // Indices out of order (swap the first two), and a NaN weight, do not decode.
        let mut swapped = body.clone();
        // Find the `text` vector's indices by their bytes.
        let needle = 3u32.to_le_bytes();
        let pos = swapped
            .windows(8)
            .position(|w| w[..4] == needle && w[4..] == 70_000u32.to_le_bytes())
            .expect("indices in the record");
        swapped[pos..pos + 4].copy_from_slice(&80_000u32.to_le_bytes());
        assert!(WalOp::decode(&swapped).unwrap_err().contains("ascending"));
        // Nine names on one point: more than a collection may declare.
        let mut nine = pt(4, 3.0);
        for i in 0..9 {
            nine.sparse.insert(
                format!("n{i}"),
                SparseVector {
                    indices: vec![1],
                    values: vec![1.0],
                },
            );
        }
        let err = WalOp::decode(&WalOp::Upsert(vec![nine]).encode()).unwrap_err();
        assert!(err.contains("9 sparse vectors"), "{err}");
        let mut nan = body.clone();
        let v = 0.25f32.to_le_bytes();
        let pos = nan
            .windows(4)
            .position(|w| w == v)
            .expect("value in the record");
        nan[pos..pos + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(WalOp::decode(&nan).unwrap_err().contains("finite"));
    }

    #[test]
    fn named_vectors_round_trip_and_damaged_ones_are_refused() {
        let mut a = pt(1, 0.5);
        a.named.insert("img".into(), vec![0.5, -2.0, 1e-30]);
        a.named.insert("t".into(), vec![7.0]);
        a.sparse.insert(
            "kw".into(),
            SparseVector {
                indices: vec![4],
                values: vec![1.0],
            },
        );
        // Named vectors on one point: every point logs its sparse and named vectors.
        let op = WalOp::Upsert(vec![a, pt(2, 1.0)]);
        let body = op.encode();
        assert_eq!(body[0], OP_UPSERT_NAMED);
        assert_eq!(WalOp::decode(&body).unwrap(), op);
        // A non-finite component, nine names, and a vector of no component do not decode.
        let mut inf = body.clone();
        let v = (-2.0f32).to_le_bytes();
        let pos = inf.windows(4).position(|w| w == v).expect("in the record");
        inf[pos..pos + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert!(WalOp::decode(&inf).unwrap_err().contains("not finite"));
        let mut nine = pt(4, 3.0);
        for i in 0..9 {
            nine.named.insert(format!("n{i}"), vec![1.0]);
        }
        let err = WalOp::decode(&WalOp::Upsert(vec![nine]).encode()).unwrap_err();
        assert!(err.contains("9 named vectors"), "{err}");
        let mut empty = pt(5, 3.0);
        empty.named.insert("e".into(), vec![]);
        let err = WalOp::decode(&WalOp::Upsert(vec![empty]).encode()).unwrap_err();
        assert!(err.contains("0 components"), "{err}");
        // Float16 components (how segment files keep a float16 vector) decode as such, but a
        // log record keeps what was given, in float32: refused there.
        let mut bytes = Vec::new();
        put_named_rows(&mut bytes, &[("h", Row::F16(&[0x3c00, 0xc000]))]);
        let typed = Reader { b: &bytes, at: 0 }.named_typed().unwrap();
        assert_eq!(
            typed,
            [("h".to_string(), vec![1.0, -2.0], Datatype::Float16)]
        );
        let err = Reader { b: &bytes, at: 0 }.named().unwrap_err();
        assert!(err.contains("float16 in a log record"), "{err}");
    }

    fn opts() -> WalOptions {
        WalOptions::default()
    }

    fn replay(dir: &Path, o: WalOptions, after: u64) -> Result<(Vec<(u64, WalOp)>, ReplayReport)> {
        let mut out = Vec::new();
        let (_w, r) = Wal::open(
            dir,
            o,
            after,
            |s, op| {
                out.push((s, op));
                Ok(())
            },
            |_, _| {},
        )?;
        Ok((out, r))
    }

    #[test]
    fn encode_roundtrip() {
        let op = WalOp::Upsert(vec![
            pt(1, 0.5),
            PointRecord {
                key: PointKey::Uuid("6f1c0c7e-0000-4000-8000-000000000001".into()),
                vector: vec![1.0, 2.0, 3.0],
                payload: Payload::new(),
                sparse: Default::default(),
                named: Default::default(),
            },
        ]);
        assert_eq!(WalOp::decode(&op.encode()).unwrap(), op);
        let d = WalOp::Delete(vec![PointKey::Num(3), PointKey::Uuid("a".into())]);
        assert_eq!(WalOp::decode(&d.encode()).unwrap(), d);
        let mut payload = Payload::new();
        payload.insert("a".into(), serde_json::json!({"b": [1, "x"]}));
        let c = WalOp::Payloads(vec![
            (PointKey::Num(3), payload),
            (PointKey::Uuid("a".into()), Payload::new()),
        ]);
        assert_eq!(WalOp::decode(&c.encode()).unwrap(), c);
        // Cut anywhere, it is refused, never misread.
        let b = c.encode();
        assert!((0..b.len()).all(|n| WalOp::decode(&b[..n]).is_err()));
        assert!(WalOp::decode(&[9]).is_err());
    }

    fn write_n(dir: &Path, n: u64, o: WalOptions) {
        let (w, _) = Wal::open(dir, o, 0, |_, _| Ok(()), |_, _| {}).unwrap();
        for i in 1..=n {
            let s = w
                .append(&WalOp::Upsert(vec![pt(i, i as f32)]).encode())
                .unwrap();
            w.wait_durable(s).unwrap();
        }
    }

    #[test]
    fn replays_in_order_and_after_snapshot_seq() {
        let d = tempfile::tempdir().unwrap();
        write_n(d.path(), 10, opts());
        let (ops, r) = replay(d.path(), opts(), 0).unwrap();
        assert_eq!(ops.len(), 10);
        assert_eq!(r.last_seq, 10);
        assert!(ops.iter().enumerate().all(|(i, (s, _))| *s == i as u64 + 1));
        let (ops, r) = replay(d.path(), opts(), 7).unwrap();
        assert_eq!(ops.iter().map(|o| o.0).collect::<Vec<_>>(), vec![8, 9, 10]);
        assert_eq!(r.last_seq, 10);
    }

    #[test]
    fn rotation_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let o = WalOptions {
            segment_bytes: 200,
            ..opts()
        };
        write_n(d.path(), 20, o);
        let segs = list_segments(d.path()).unwrap();
        assert!(segs.len() > 3, "{segs:?}");
        let (w, _) = Wal::open(d.path(), o, 0, |_, _| Ok(()), |_, _| {}).unwrap();
        w.rotate().unwrap();
        w.truncate_upto(12).unwrap();
        drop(w);
        let (ops, r) = replay(d.path(), o, 12).unwrap();
        assert_eq!(ops.first().unwrap().0, 13);
        assert_eq!(r.last_seq, 20);
        // Nothing at or below the first kept segment's start is lost.
        let first = list_segments(d.path()).unwrap()[0].0;
        assert!(first <= 13);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        write_n(d.path(), 5, opts());
        let segs = list_segments(d.path()).unwrap();
        let (_, path) = segs
            .iter()
            .rev()
            .find(|(_, p)| fs::metadata(p).unwrap().len() > 0)
            .unwrap();
        let len = fs::metadata(path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        let before = metrics().wal_torn_tail.get();
        let (ops, r) = replay(d.path(), opts(), 0).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(r.torn_tails, 1);
        assert!(metrics().wal_torn_tail.get() > before);
        // The tail is gone for good and new writes continue after record 4.
        let (w, _) = Wal::open(d.path(), opts(), 0, |_, _| Ok(()), |_, _| {}).unwrap();
        assert_eq!(w.append(b"\x02\0\0\0\0").unwrap(), 5);
        drop(w);
        let (ops, r) = replay(d.path(), opts(), 0).unwrap();
        assert_eq!((ops.len(), r.torn_tails), (5, 0));
    }

    #[test]
    fn corruption_in_the_middle() {
        let d = tempfile::tempdir().unwrap();
        write_n(d.path(), 6, opts());
        let (_, path) = list_segments(d.path())
            .unwrap()
            .into_iter()
            .find(|(_, p)| fs::metadata(p).unwrap().len() > 0)
            .unwrap();
        let mut data = fs::read(&path).unwrap();
        let rec_len = data.len() / 6;
        let at = rec_len * 2 + HEADER_LEN + 5; // inside record 3's body
        data[at] ^= 0x40;
        fs::write(&path, &data).unwrap();
        let err = replay(d.path(), opts(), 0).unwrap_err();
        assert!(
            matches!(&err, StorageError::WalCorrupt { path: p, offset, .. }
                if *p == path && *offset == rec_len * 2),
            "{err}"
        );
        let skip = WalOptions {
            recovery: RecoveryMode::SkipCorrupt,
            ..opts()
        };
        let (ops, r) = replay(d.path(), skip, 0).unwrap();
        assert_eq!(
            ops.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![1, 2, 4, 5, 6]
        );
        assert_eq!(r.corrupt_records, 1);
    }

    /// Replay `data` as the newest file: (good length, sequence numbers applied, torn tails).
    fn replay_bytes(data: &[u8], mode: RecoveryMode) -> Result<(u64, Vec<u64>, u64)> {
        let mut report = ReplayReport::default();
        let mut seqs = Vec::new();
        let good = replay_segment(
            Path::new("x.wal"),
            data,
            true,
            mode,
            &mut report,
            &mut |s, _| {
                seqs.push(s);
                Ok(())
            },
        )?;
        Ok((good, seqs, report.torn_tails))
    }

    /// Found by the `wal_replay` fuzz target: a header whose length runs past the end of the
    /// newest segment was taken for a torn tail even with valid records after it. Strict
    /// recovery cut the file there, silently dropping acknowledged records; SkipCorrupt
    /// applied them, cut the real torn tail after them, and a start-up that read the cut file
    /// again took the damaged header for a torn tail at offset 0 and dropped them for good.
    #[test]
    fn damaged_length_in_the_newest_segment_is_not_a_torn_tail() {
        let rec = |seq: u64| frame(seq, &WalOp::Delete(vec![PointKey::Num(seq)]).encode());
        let mut data: Vec<u8> = (1..=4).flat_map(rec).collect();
        let whole = data.len();
        data.extend_from_slice(&rec(5)[..10]); // a torn fifth record
        // Record 1's length: still inside the file, but past the end of the valid records.
        let damaged = (data.len() - HEADER_LEN - 1) as u32;
        data[..4].copy_from_slice(&damaged.to_le_bytes());

        let err = replay_bytes(&data, RecoveryMode::Strict).unwrap_err();
        assert!(
            matches!(err, StorageError::WalCorrupt { offset: 0, .. }),
            "{err}"
        );
        let (good, seqs, torn) = replay_bytes(&data, RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!((good as usize, &seqs[..], torn), (whole, &[2, 3, 4][..], 1));
        // The file as start-up left it replays the same, and nothing more is cut.
        let again = replay_bytes(&data[..whole], RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!(
            (again.0 as usize, &again.1[..], again.2),
            (whole, &[2, 3, 4][..], 0)
        );
        // A length past the end of the file in the middle: Strict refuses too.
        let mut data2: Vec<u8> = (1..=4).flat_map(rec).collect();
        let at = rec(1).len();
        data2[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = replay_bytes(&data2, RecoveryMode::Strict).unwrap_err();
        assert!(matches!(err, StorageError::WalCorrupt { offset, .. } if offset == at));
        let (_, seqs, torn) = replay_bytes(&data2, RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!((&seqs[..], torn), (&[1, 3, 4][..], 0));
        // Found next: a damaged length that runs exactly to the end of the file (the record
        // then fails its checksum, as a torn last record does) is damage too.
        let mut data3: Vec<u8> = (1..=4).flat_map(rec).collect();
        let damaged = (data3.len() - HEADER_LEN) as u32;
        data3[..4].copy_from_slice(&damaged.to_le_bytes());
        assert!(matches!(
            replay_bytes(&data3, RecoveryMode::Strict).unwrap_err(),
            StorageError::WalCorrupt { offset: 0, .. }
        ));
        let (good, seqs, torn) = replay_bytes(&data3, RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!(
            (good as usize, &seqs[..], torn),
            (data3.len(), &[2, 3, 4][..], 0)
        );
        // A real torn tail (nothing valid after it) is still cut, in both modes.
        let torn_only: Vec<u8> = [&rec(1)[..], &rec(2)[..9]].concat();
        for mode in [RecoveryMode::Strict, RecoveryMode::SkipCorrupt] {
            let (good, seqs, torn) = replay_bytes(&torn_only, mode).unwrap();
            assert_eq!(
                (good as usize, &seqs[..], torn),
                (rec(1).len(), &[1][..], 1)
            );
        }
    }

    /// The `wal_replay` fuzz target's input for the bug above, minimized by `cargo fuzz tmin`:
    /// flags 3 (the newest file, SkipCorrupt), snapshot sequence 0, then the file.
    #[test]
    fn fuzz_input_cut_file_replays_the_same() {
        let input = hex::decode(
            [
            "0300fc0000000000000000000000000010000000653a322e357d17000000db72ccc803000000000000000202",
            "000000000300000000000000001500000000000000eb05513f360000007b226e657374656400000000000000",
            "000000000202000000000300000000000000001500000000000000eb05513f36000000006564222c00000000",
            "00100000006564222c226e223a342c2278223a302e347d01243030303030303000000000000000302e347d01",
            "243030303030303000000000000000000000000000000000000000100000006564222c226e223a342c227822",
            "3a302e347d01243030303030303000000000000000302e347d01243030303030303000000000000000000000",
            "00000000000000",
            ]
            .concat(),
        )
        .unwrap();
        let (flags, file) = (input[0], &input[2..]);
        assert_eq!((flags, input[1]), (3, 0));
        let (good, seqs, _) = replay_bytes(file, RecoveryMode::SkipCorrupt).unwrap();
        let again = replay_bytes(&file[..good as usize], RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!((again.0, &again.1, again.2), (good, &seqs, 0));
    }

    /// Found by the `wal_replay` fuzz target after the fix above: SkipCorrupt resumed at a
    /// record that passed its checksum but did not decode, so the first start-up kept the
    /// damage before it and cut there, and the second cut earlier. Resuming (and deciding
    /// that a tail is torn) now looks for a record that can be applied.
    #[test]
    fn skip_resumes_only_at_a_record_that_decodes() {
        let bad = |seq: u64, tag: u8| frame(seq, &[tag]);
        let data = [bad(5, 0), bad(6, 9)].concat();
        let (good, seqs, _) = replay_bytes(&data, RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!((good, seqs.len()), (0, 0));
        let ok = frame(7, &WalOp::Delete(vec![PointKey::Num(7)]).encode());
        let data = [bad(5, 0), bad(6, 9), ok].concat();
        let (good, seqs, torn) = replay_bytes(&data, RecoveryMode::SkipCorrupt).unwrap();
        assert_eq!((good as usize, &seqs[..], torn), (data.len(), &[7][..], 0));
    }

    /// Found by the `wal_record` fuzz target (about 800 executions a second): a body of a
    /// few bytes claiming a million points reserved room for them (80 MB) before reading
    /// any. The reservation is bounded by what the body can hold now.
    #[test]
    fn a_damaged_count_reserves_nothing_it_cannot_hold() {
        let mut body = vec![OP_UPSERT];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        body.extend_from_slice(&4u32.to_le_bytes());
        assert!(WalOp::decode(&body).unwrap_err().contains("ends early"));
        let mut body = vec![OP_DELETE];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(WalOp::decode(&body).unwrap_err().contains("ends early"));
    }

    #[test]
    fn group_commit_concurrent_writers() {
        let d = tempfile::tempdir().unwrap();
        let (w, _) = Wal::open(d.path(), opts(), 0, |_, _| Ok(()), |_, _| {}).unwrap();
        let w = Arc::new(w);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let mut seqs = Vec::new();
                    for i in 0..50 {
                        let s = w
                            .append(&WalOp::Upsert(vec![pt(t * 1000 + i, 1.0)]).encode())
                            .unwrap();
                        w.wait_durable(s).unwrap();
                        assert!(w.status().durable_sequence >= s);
                        seqs.push(s);
                    }
                    seqs
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        assert_eq!(all, (1..=400).collect::<Vec<_>>());
        // Writers that arrived during an fsync shared the next one.
        let fsyncs = w.fsync_count();
        assert!(fsyncs < 400, "{fsyncs} fsyncs for 400 records");
        drop(w);
        let (ops, _) = replay(d.path(), opts(), 0).unwrap();
        assert_eq!(ops.len(), 400);
    }

    #[test]
    fn policy_parsing() {
        assert_eq!(
            "always".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Always
        );
        assert_eq!(
            "interval=50".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Interval(Duration::from_millis(50))
        );
        assert!("interval=0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
