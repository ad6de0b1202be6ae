//! The dead-letter queue: uploads that still failed after retries, kept on local disk and
//! retried in the background until the object store takes them.
//!
//! Layout under the DLQ directory:
//!
//! ```text
//! entries/<id>.entry   one record per entry, written atomically (temp, fsync, rename, fsync dir)
//! spool/<id>.data      the bytes to upload (a hard link to the caller's file, or a copy)
//! ```
//!
//! An entry record is framed like a WAL record: magic `ADLQ`, format version (u8), payload
//! length (u32 LE), CRC-32C of the payload (u32 LE), then the payload (JSON). The spool file
//! is written and fsynced before its entry, so an entry on disk always had its data; an
//! enqueue is acknowledged only once the entry is durable.
//!
//! Invariants:
//! - Entries leave the queue only when their object is uploaded, when the operator purges
//!   them, or when a newer upload of the same key supersedes them. Never by age or by space:
//!   a full queue rejects the new entry ([`DlqError::Full`]) and the caller keeps its data.
//! - On open, leftovers that were never acknowledged (temp files, spool files without an
//!   entry) are removed; an entry record that fails its checksum is renamed to
//!   `<id>.entry.corrupt`, logged, and its spool file kept for the operator.
//! - The spool file's CRC-32C is checked before each upload, so a damaged spool file is never
//!   uploaded as if it were the object.

use super::error::{ErrorKind, ObjectStoreError, Operation};
use super::store::ObjectStore;
use crate::fsutil::{file_crc, is_temp_file, now_ms, sync_dir, write_atomic};
use akidb_client::backoff;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Dead-letter queue settings (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct DlqConfig {
    /// DLQ directory. Default: `<data-dir>/dlq`.
    #[arg(long = "dlq-dir", env = "AKIDB_DLQ_DIR")]
    pub dir: Option<PathBuf>,
    /// Most entries the DLQ holds; further failed uploads are rejected (never evicted).
    #[arg(
        long = "dlq-max-entries",
        env = "AKIDB_DLQ_MAX_ENTRIES",
        default_value_t = 10_000
    )]
    pub max_entries: u64,
    /// Most spooled bytes the DLQ holds; further failed uploads are rejected.
    #[arg(
        long = "dlq-max-bytes",
        env = "AKIDB_DLQ_MAX_BYTES",
        default_value_t = 10 * 1024 * 1024 * 1024
    )]
    pub max_bytes: u64,
    /// Delay before an entry's first background retry (ms); doubles per failed retry, with
    /// jitter.
    #[arg(
        long = "dlq-retry-base-ms",
        env = "AKIDB_DLQ_RETRY_BASE_MS",
        default_value_t = 5_000
    )]
    pub retry_base_ms: u64,
    /// Longest delay between two background retries of an entry (ms).
    #[arg(
        long = "dlq-retry-max-ms",
        env = "AKIDB_DLQ_RETRY_MAX_MS",
        default_value_t = 300_000
    )]
    pub retry_max_ms: u64,
    /// How often the background worker wakes to look for due entries and refresh the DLQ
    /// gauges (ms).
    #[arg(
        long = "dlq-poll-ms",
        env = "AKIDB_DLQ_POLL_MS",
        default_value_t = 1_000
    )]
    pub poll_ms: u64,
}

impl Default for DlqConfig {
    fn default() -> Self {
        DlqConfig {
            dir: None,
            max_entries: 10_000,
            max_bytes: 10 * 1024 * 1024 * 1024,
            retry_base_ms: 5_000,
            retry_max_ms: 300_000,
            poll_ms: 1_000,
        }
    }
}

/// One failed upload waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqEntry {
    /// 32 lowercase hex digits.
    pub id: String,
    /// Enqueue order; among entries for the same key the highest wins.
    pub seq: u64,
    /// The object key to upload to.
    pub key: String,
    /// The collection the object belongs to (empty if none).
    pub collection: String,
    pub size_bytes: u64,
    /// CRC-32C of the spooled bytes.
    pub crc32c: u32,
    /// Uploads tried, the one that sent it here included.
    pub attempts: u32,
    pub first_failed_unix_ms: u64,
    pub next_retry_unix_ms: u64,
    pub last_error: String,
    /// [`ErrorKind::as_str`] of the last error.
    pub last_error_kind: String,
}

/// What an upload source is.
#[derive(Debug, Clone)]
pub enum UploadSource {
    /// Bytes in memory (written to the spool if the upload fails).
    Bytes(Bytes),
    /// A local file. It must not be modified in place afterwards (it may be hard-linked into
    /// the spool); replacing or deleting it is fine.
    File(PathBuf),
}

/// Which entries an operator action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    One(String),
    All,
}

/// Result of [`Dlq::retry`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryReport {
    pub succeeded: u64,
    pub failed: u64,
}

/// Counters and gauges of the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqStats {
    pub depth: u64,
    pub bytes: u64,
    pub oldest_age: Duration,
    pub max_entries: u64,
    pub max_bytes: u64,
    /// Enqueues rejected because the queue was full, since start.
    pub rejected_total: u64,
    /// Entry records found damaged at open (kept as `*.entry.corrupt`).
    pub corrupt_records: u64,
}

/// Something that happened to an entry; see [`Dlq::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqEvent {
    /// The object is now in the store.
    Uploaded { id: String, key: String },
    /// The operator purged the entry; the object was not uploaded by the DLQ.
    Purged { id: String, key: String },
    /// A newer upload of the same key replaced the entry.
    Superseded { id: String, key: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The queue is at its entry or byte limit; the upload was not queued and the caller
    /// must keep its data.
    #[error(
        "dead-letter queue full ({entries}/{max_entries} entries, {bytes}/{max_bytes} bytes): upload of `{key}` not queued; fix the object store, then `akidb admin dlq retry`, or raise --dlq-max-entries/--dlq-max-bytes"
    )]
    Full {
        key: String,
        entries: u64,
        max_entries: u64,
        bytes: u64,
        max_bytes: u64,
    },
    #[error("no dead-letter entry `{0}` (list them with `akidb admin dlq list`)")]
    NoSuchEntry(String),
    #[error("cannot read the upload source {path}: {source}")]
    Source {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dead-letter queue I/O error: {0}")]
    Io(#[from] std::io::Error),
}

const MAGIC: &[u8; 4] = b"ADLQ";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4 + 4;

pub(crate) fn encode(entry: &DlqEntry) -> Vec<u8> {
    let payload = serde_json::to_vec(entry).expect("entry serializes");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

pub(crate) fn decode(buf: &[u8]) -> Result<DlqEntry, String> {
    if buf.len() < HEADER {
        return Err(format!("{} bytes, shorter than the header", buf.len()));
    }
    if &buf[..4] != MAGIC {
        return Err("bad magic".into());
    }
    if buf[4] != VERSION {
        return Err(format!("unknown format version {}", buf[4]));
    }
    let len = u32::from_le_bytes(buf[5..9].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[9..13].try_into().expect("4 bytes"));
    let payload = &buf[HEADER..];
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        ));
    }
    if crc32c::crc32c(payload) != crc {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(payload).map_err(|e| format!("bad payload: {e}"))
}

fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// How one upload attempt of an entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Uploaded (or superseded and dropped); the entry is gone.
    Uploaded,
    /// The store failed; rescheduled with backoff.
    Failed,
    /// The breaker failed it fast; rescheduled for when the breaker lets calls through.
    Rejected,
    /// Not tried: gone, already in flight, or an older entry of its key is in flight.
    Skipped,
}

/// In-memory index of the queue; the files are the truth, this mirrors them.
#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<String, DlqEntry>,
    bytes: u64,
    next_seq: u64,
    /// Entries being uploaded right now.
    in_flight: HashSet<String>,
    /// In-flight entries replaced by a newer enqueue of the same key: removed when done.
    superseded: HashSet<String>,
}

/// The dead-letter queue. Share it as `Arc<Dlq>`.
#[derive(Debug)]
pub struct Dlq {
    dir: PathBuf,
    cfg: DlqConfig,
    store: Arc<dyn ObjectStore>,
    /// Held across the small disk writes that must agree with the index (never across an
    /// upload), so that a purge and a retry finishing at once cannot resurrect an entry.
    index: tokio::sync::Mutex<Index>,
    /// Mirror of the entries' (first_failed_unix_ms, key) for synchronous reads.
    summary: parking_lot::Mutex<HashMap<String, (u64, String)>>,
    rejected: AtomicU64,
    corrupt: AtomicU64,
    wake: tokio::sync::Notify,
    events: tokio::sync::broadcast::Sender<DlqEvent>,
}

impl Dlq {
    /// Open (or create) the queue in `dir`, loading the entries left by the last run.
    /// `store` is where retries upload to: pass the [`crate::breaker::ResilientStore`].
    pub async fn open(
        dir: &Path,
        cfg: DlqConfig,
        store: Arc<dyn ObjectStore>,
    ) -> std::io::Result<Arc<Self>> {
        let d = dir.to_path_buf();
        let (entries, corrupt) = blocking(move || Self::load(&d)).await?;
        let mut index = Index::default();
        // Among entries for the same key, the newest wins; older ones were superseded but
        // their removal was interrupted.
        let mut newest: HashMap<String, (u64, String)> = HashMap::new();
        for e in &entries {
            let slot = newest.entry(e.key.clone()).or_insert((e.seq, e.id.clone()));
            if e.seq > slot.0 {
                *slot = (e.seq, e.id.clone());
            }
        }
        let mut stale = Vec::new();
        for e in entries {
            index.next_seq = index.next_seq.max(e.seq + 1);
            if newest
                .get(&e.key)
                .map(|(_, id)| id != &e.id)
                .unwrap_or(false)
            {
                stale.push(e.id.clone());
                continue;
            }
            index.bytes += e.size_bytes;
            index.entries.insert(e.id.clone(), e);
        }
        let d = dir.to_path_buf();
        blocking(move || {
            for id in stale {
                Self::remove_files(&d, &id)?;
            }
            Ok(())
        })
        .await?;
        let summary = index
            .entries
            .values()
            .map(|e| (e.id.clone(), (e.first_failed_unix_ms, e.key.clone())))
            .collect();
        let dlq = Arc::new(Dlq {
            dir: dir.to_path_buf(),
            cfg,
            store,
            index: tokio::sync::Mutex::new(index),
            summary: parking_lot::Mutex::new(summary),
            rejected: AtomicU64::new(0),
            corrupt: AtomicU64::new(corrupt),
            wake: tokio::sync::Notify::new(),
            events: tokio::sync::broadcast::channel(1024).0,
        });
        let depth = dlq.depth();
        if depth > 0 {
            tracing::warn!(depth, dir = %dir.display(), "dead-letter queue holds uploads from the last run; retrying in the background");
        }
        dlq.publish();
        Ok(dlq)
    }

    fn entries_dir(dir: &Path) -> PathBuf {
        dir.join("entries")
    }

    fn spool_dir(dir: &Path) -> PathBuf {
        dir.join("spool")
    }

    fn entry_path(dir: &Path, id: &str) -> PathBuf {
        Self::entries_dir(dir).join(format!("{id}.entry"))
    }

    fn spool_path(dir: &Path, id: &str) -> PathBuf {
        Self::spool_dir(dir).join(format!("{id}.data"))
    }

    /// The spooled data of an entry.
    pub fn spool_file(&self, id: &str) -> PathBuf {
        Self::spool_path(&self.dir, id)
    }

    /// Read every entry; clean up what was never acknowledged. Blocking.
    fn load(dir: &Path) -> std::io::Result<(Vec<DlqEntry>, u64)> {
        let edir = Self::entries_dir(dir);
        let sdir = Self::spool_dir(dir);
        std::fs::create_dir_all(&edir)?;
        std::fs::create_dir_all(&sdir)?;
        let mut entries = Vec::new();
        let mut keep_spool = HashSet::new();
        let mut corrupt = 0;
        for item in std::fs::read_dir(&edir)? {
            let path = item?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if is_temp_file(&name) {
                std::fs::remove_file(&path)?;
                continue;
            }
            if let Some(id) = name.strip_suffix(".entry.corrupt") {
                keep_spool.insert(id.to_string());
                corrupt += 1;
                continue;
            }
            let Some(id) = name.strip_suffix(".entry") else {
                continue;
            };
            let decoded = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode(&b))
                .and_then(|e| {
                    if e.id == id {
                        Ok(e)
                    } else {
                        Err(format!("record id {} does not match the file name", e.id))
                    }
                });
            match decoded {
                Ok(e) => {
                    keep_spool.insert(e.id.clone());
                    entries.push(e);
                }
                Err(why) => {
                    let to = edir.join(format!("{id}.entry.corrupt"));
                    tracing::error!(file = %path.display(), moved_to = %to.display(), %why, "damaged dead-letter entry; kept aside for the operator, its data is in the spool directory");
                    std::fs::rename(&path, &to)?;
                    keep_spool.insert(id.to_string());
                    corrupt += 1;
                }
            }
        }
        for item in std::fs::read_dir(&sdir)? {
            let path = item?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = name.strip_suffix(".data").unwrap_or("");
            if !keep_spool.contains(id) {
                // Spooled before a crash, but its entry never became durable: the enqueue
                // was never acknowledged.
                std::fs::remove_file(&path)?;
            }
        }
        sync_dir(&sdir)?;
        sync_dir(&edir)?;
        entries.sort_by_key(|e| e.seq);
        Ok((entries, corrupt))
    }

    fn write_entry(dir: &Path, e: &DlqEntry) -> std::io::Result<()> {
        write_atomic(&Self::entry_path(dir, &e.id), &encode(e))
    }

    /// Remove an entry's record, then its spool file. Blocking.
    fn remove_files(dir: &Path, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(Self::entry_path(dir, id)) {
            Ok(()) => sync_dir(&Self::entries_dir(dir))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::remove_file(Self::spool_path(dir, id)) {
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// Put the data of `source` into the spool as `id`; returns (crc, size). Blocking.
    fn spool(dir: &Path, id: &str, source: &UploadSource) -> Result<(u32, u64), DlqError> {
        let dst = Self::spool_path(dir, id);
        match source {
            UploadSource::Bytes(b) => {
                let mut f = std::fs::File::create(&dst)?;
                f.write_all(b)?;
                f.sync_all()?;
                sync_dir(&Self::spool_dir(dir))?;
                Ok((crc32c::crc32c(b), b.len() as u64))
            }
            UploadSource::File(src) => {
                let source_err = |e| DlqError::Source {
                    path: src.clone(),
                    source: e,
                };
                std::fs::metadata(src).map_err(source_err)?;
                if std::fs::hard_link(src, &dst).is_err() {
                    // Another file system (or no hard links): copy.
                    let mut from = std::fs::File::open(src).map_err(source_err)?;
                    let mut to = std::fs::File::create(&dst)?;
                    std::io::copy(&mut from, &mut to)?;
                    to.sync_all()?;
                }
                sync_dir(&Self::spool_dir(dir))?;
                Ok(file_crc(&dst)?)
            }
        }
    }

    fn source_len(source: &UploadSource) -> u64 {
        match source {
            UploadSource::Bytes(b) => b.len() as u64,
            UploadSource::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        }
    }

    fn check_room(&self, idx: &Index, key: &str, size: u64) -> Result<(), DlqError> {
        let entries = idx.entries.len() as u64;
        if entries + 1 > self.cfg.max_entries || idx.bytes + size > self.cfg.max_bytes {
            return Err(DlqError::Full {
                key: key.to_string(),
                entries,
                max_entries: self.cfg.max_entries,
                bytes: idx.bytes,
                max_bytes: self.cfg.max_bytes,
            });
        }
        Ok(())
    }

    fn reject(&self, e: DlqError) -> DlqError {
        if matches!(e, DlqError::Full { .. }) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "dead-letter queue full: upload rejected, not queued");
        }
        e
    }

    /// Queue a failed upload. Returns once the entry is durable on disk.
    ///
    /// An older entry for the same key is superseded (removed) once the new one is durable.
    /// A full queue rejects the entry with [`DlqError::Full`] and evicts nothing.
    pub async fn enqueue(
        &self,
        collection: &str,
        key: &str,
        source: UploadSource,
        error: &ObjectStoreError,
    ) -> Result<DlqEntry, DlqError> {
        let size = Self::source_len(&source);
        {
            let idx = self.index.lock().await;
            self.check_room(&idx, key, size)
                .map_err(|e| self.reject(e))?;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (d, i) = (self.dir.clone(), id.clone());
        let (crc, size) = tokio::task::spawn_blocking(move || Self::spool(&d, &i, &source))
            .await
            .map_err(std::io::Error::other)??;
        let now = now_ms();
        let mut idx = self.index.lock().await;
        let discard_spool = |dir: PathBuf, id: String| {
            let _ = std::fs::remove_file(Self::spool_path(&dir, &id));
        };
        if let Err(e) = self.check_room(&idx, key, size) {
            discard_spool(self.dir.clone(), id);
            return Err(self.reject(e));
        }
        let entry = DlqEntry {
            id: id.clone(),
            seq: idx.next_seq,
            key: key.to_string(),
            collection: collection.to_string(),
            size_bytes: size,
            crc32c: crc,
            attempts: 1,
            first_failed_unix_ms: now,
            next_retry_unix_ms: now
                + backoff(self.cfg.retry_base_ms, self.cfg.retry_max_ms, 1).as_millis() as u64,
            last_error: error.to_string(),
            last_error_kind: error.kind().as_str().to_string(),
        };
        let (d, e) = (self.dir.clone(), entry.clone());
        if let Err(err) = blocking(move || Self::write_entry(&d, &e)).await {
            discard_spool(self.dir.clone(), id);
            return Err(err.into());
        }
        idx.next_seq += 1;
        idx.bytes += size;
        idx.entries.insert(id.clone(), entry.clone());
        self.summary
            .lock()
            .insert(id.clone(), (entry.first_failed_unix_ms, key.to_string()));
        // Supersede older entries of the same key.
        let older: Vec<String> = idx
            .entries
            .values()
            .filter(|e| e.key == key && e.id != id)
            .map(|e| e.id.clone())
            .collect();
        for old in older {
            if idx.in_flight.contains(&old) {
                idx.superseded.insert(old);
            } else {
                match self.remove_locked(&mut idx, &old).await {
                    Ok(_) => {
                        let _ = self.events.send(DlqEvent::Superseded {
                            id: old,
                            key: key.to_string(),
                        });
                    }
                    // The new entry is durable either way; the stale one is dropped at the
                    // next open (newest entry per key wins).
                    Err(e) => {
                        tracing::warn!(id = %old, key, error = %e, "could not remove a superseded dead-letter entry")
                    }
                }
            }
        }
        drop(idx);
        akidb_instrumentation::metrics().dlq_enqueued.inc();
        tracing::warn!(id = %entry.id, key, collection, size, error = %error, "upload failed; queued in the dead-letter queue for background retry");
        self.publish();
        self.wake.notify_one();
        Ok(entry)
    }

    /// Remove an entry (files, then index). Caller holds the index lock.
    async fn remove_locked(&self, idx: &mut Index, id: &str) -> std::io::Result<Option<DlqEntry>> {
        let (d, i) = (self.dir.clone(), id.to_string());
        blocking(move || Self::remove_files(&d, &i)).await?;
        let removed = idx.entries.remove(id);
        if let Some(e) = &removed {
            idx.bytes = idx.bytes.saturating_sub(e.size_bytes);
        }
        idx.superseded.remove(id);
        self.summary.lock().remove(id);
        Ok(removed)
    }

    /// Every entry, oldest first.
    pub async fn list(&self) -> Vec<DlqEntry> {
        let idx = self.index.lock().await;
        let mut v: Vec<DlqEntry> = idx.entries.values().cloned().collect();
        v.sort_by_key(|e| (e.first_failed_unix_ms, e.seq));
        v
    }

    pub async fn get(&self, id: &str) -> Option<DlqEntry> {
        self.index.lock().await.entries.get(id).cloned()
    }

    /// Entries waiting.
    pub fn depth(&self) -> u64 {
        self.summary.lock().len() as u64
    }

    /// Age of the oldest entry (zero when empty).
    pub fn oldest_age(&self) -> Duration {
        let oldest = self.summary.lock().values().map(|(t, _)| *t).min();
        oldest
            .map(|t| Duration::from_millis(now_ms().saturating_sub(t)))
            .unwrap_or_default()
    }

    /// Whether an upload of `key` is waiting in the queue (not yet confirmed by the store).
    pub fn contains_key(&self, key: &str) -> bool {
        self.summary.lock().values().any(|(_, k)| k == key)
    }

    pub async fn stats(&self) -> DlqStats {
        let idx = self.index.lock().await;
        DlqStats {
            depth: idx.entries.len() as u64,
            bytes: idx.bytes,
            oldest_age: self.oldest_age(),
            max_entries: self.cfg.max_entries,
            max_bytes: self.cfg.max_bytes,
            rejected_total: self.rejected.load(Ordering::Relaxed),
            corrupt_records: self.corrupt.load(Ordering::Relaxed),
        }
    }

    /// Uploaded, purged and superseded entries, as they happen.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<DlqEvent> {
        self.events.subscribe()
    }

    /// Refresh `akidb_dlq_depth` and `akidb_dlq_oldest_age_seconds`.
    pub fn publish(&self) {
        let m = akidb_instrumentation::metrics();
        m.dlq_depth.set(self.depth() as i64);
        m.dlq_oldest_age.set(self.oldest_age().as_secs_f64());
    }

    /// Remove entries without uploading them (operator action). Returns how many.
    pub async fn purge(&self, target: Target) -> Result<u64, DlqError> {
        let mut idx = self.index.lock().await;
        let ids: Vec<String> = match &target {
            Target::All => idx.entries.keys().cloned().collect(),
            Target::One(id) => {
                if !valid_id(id) || !idx.entries.contains_key(id) {
                    return Err(DlqError::NoSuchEntry(id.clone()));
                }
                vec![id.clone()]
            }
        };
        let mut n = 0;
        for id in ids {
            if let Some(e) = self.remove_locked(&mut idx, &id).await? {
                tracing::warn!(id = %e.id, key = %e.key, size = e.size_bytes, attempts = e.attempts, "dead-letter entry purged by operator; the object was not uploaded");
                let _ = self.events.send(DlqEvent::Purged {
                    id: e.id,
                    key: e.key,
                });
                n += 1;
            }
        }
        drop(idx);
        self.publish();
        Ok(n)
    }

    /// Try the uploads now, whatever their schedule (operator action). Entries already being
    /// retried by the worker are skipped.
    pub async fn retry(&self, target: Target) -> Result<RetryReport, DlqError> {
        let ids: Vec<String> = {
            let idx = self.index.lock().await;
            match &target {
                Target::All => {
                    let mut v: Vec<&DlqEntry> = idx.entries.values().collect();
                    v.sort_by_key(|e| e.seq);
                    v.into_iter().map(|e| e.id.clone()).collect()
                }
                Target::One(id) => {
                    if !valid_id(id) || !idx.entries.contains_key(id) {
                        return Err(DlqError::NoSuchEntry(id.clone()));
                    }
                    vec![id.clone()]
                }
            }
        };
        let mut report = RetryReport::default();
        for id in ids {
            match self.attempt(&id).await? {
                Attempt::Uploaded => report.succeeded += 1,
                Attempt::Failed | Attempt::Rejected => report.failed += 1,
                Attempt::Skipped => {}
            }
        }
        Ok(report)
    }

    /// Upload one entry now.
    async fn attempt(&self, id: &str) -> Result<Attempt, DlqError> {
        let entry = {
            let mut idx = self.index.lock().await;
            let Some(e) = idx.entries.get(id).cloned() else {
                return Ok(Attempt::Skipped);
            };
            let key_busy = idx
                .in_flight
                .iter()
                .any(|f| idx.entries.get(f).map(|o| o.key == e.key).unwrap_or(false));
            if key_busy {
                return Ok(Attempt::Skipped);
            }
            idx.in_flight.insert(id.to_string());
            e
        };
        let path = self.spool_file(id);
        let check_path = path.clone();
        let result: Result<u64, ObjectStoreError> = match blocking(move || file_crc(&check_path))
            .await
        {
            Ok((crc, len)) if crc == entry.crc32c && len == entry.size_bytes => {
                self.store.put_file(&entry.key, &path).await
            }
            Ok((_, len)) => Err(ObjectStoreError::permanent(
                Operation::Put,
                &entry.key,
                format!(
                    "spool file {} is damaged (checksum or size mismatch: {len} bytes, expected {}); purge the entry after recovering the data",
                    path.display(),
                    entry.size_bytes
                ),
            )),
            Err(e) => Err(ObjectStoreError::permanent(
                Operation::Put,
                &entry.key,
                format!("cannot read spool file {}: {e}", path.display()),
            )),
        };
        let m = akidb_instrumentation::metrics();
        let mut idx = self.index.lock().await;
        idx.in_flight.remove(id);
        let superseded = idx.superseded.contains(id);
        if !idx.entries.contains_key(id) {
            // Purged while uploading.
            return Ok(Attempt::Skipped);
        }
        let outcome = match result {
            Ok(_) => {
                m.dlq_retries.with_label_values(&["success"]).inc();
                self.remove_locked(&mut idx, id).await?;
                tracing::info!(id, key = %entry.key, attempts = entry.attempts + 1, "dead-letter upload succeeded");
                let _ = self.events.send(if superseded {
                    DlqEvent::Superseded {
                        id: id.to_string(),
                        key: entry.key.clone(),
                    }
                } else {
                    DlqEvent::Uploaded {
                        id: id.to_string(),
                        key: entry.key.clone(),
                    }
                });
                Attempt::Uploaded
            }
            Err(e) if superseded => {
                m.dlq_retries.with_label_values(&["error"]).inc();
                tracing::debug!(id, error = %e, "superseded dead-letter entry failed; dropping it for the newer one");
                self.remove_locked(&mut idx, id).await?;
                let _ = self.events.send(DlqEvent::Superseded {
                    id: id.to_string(),
                    key: entry.key.clone(),
                });
                Attempt::Failed
            }
            Err(e) => {
                let rejected = e.kind() == ErrorKind::BreakerOpen;
                let now = now_ms();
                let mut updated = entry.clone();
                let delay = if rejected {
                    // Not tried: wait for the breaker, do not count an attempt.
                    let retry_in = match &e {
                        ObjectStoreError::BreakerOpen(b) => b.retry_in,
                        _ => Duration::ZERO,
                    };
                    retry_in.max(Duration::from_millis(self.cfg.poll_ms))
                        + backoff(self.cfg.poll_ms, self.cfg.poll_ms, 1)
                } else {
                    updated.attempts += 1;
                    backoff(
                        self.cfg.retry_base_ms,
                        self.cfg.retry_max_ms,
                        updated.attempts,
                    )
                };
                m.dlq_retries
                    .with_label_values(&[if rejected { "rejected" } else { "error" }])
                    .inc();
                updated.next_retry_unix_ms = now + delay.as_millis() as u64;
                if !rejected {
                    // A rejection says nothing new about the upload: keep the last real error.
                    updated.last_error = e.to_string();
                    updated.last_error_kind = e.kind().as_str().to_string();
                }
                let (d, u) = (self.dir.clone(), updated.clone());
                blocking(move || Self::write_entry(&d, &u)).await?;
                tracing::debug!(id, key = %entry.key, attempts = updated.attempts, next_retry_ms = delay.as_millis() as u64, error = %e, "dead-letter upload failed; rescheduled");
                idx.entries.insert(id.to_string(), updated);
                if rejected {
                    Attempt::Rejected
                } else {
                    Attempt::Failed
                }
            }
        };
        drop(idx);
        self.publish();
        Ok(outcome)
    }

    /// Entries due for a retry now, by schedule, and the time until the next one.
    async fn due(&self) -> (Vec<String>, Option<Duration>) {
        let idx = self.index.lock().await;
        let now = now_ms();
        let mut due: Vec<&DlqEntry> = Vec::new();
        let mut next: Option<u64> = None;
        for e in idx.entries.values() {
            if idx.in_flight.contains(&e.id) {
                continue;
            }
            if e.next_retry_unix_ms <= now {
                due.push(e);
            } else {
                next = Some(next.map_or(e.next_retry_unix_ms, |n| n.min(e.next_retry_unix_ms)));
            }
        }
        due.sort_by_key(|e| (e.next_retry_unix_ms, e.seq));
        (
            due.into_iter().map(|e| e.id.clone()).collect(),
            next.map(|n| Duration::from_millis(n - now)),
        )
    }

    /// One pass of the background worker: retry every due entry, oldest schedule first.
    /// Stops early when the breaker is open (the rest would be rejected too).
    pub async fn run_due(&self) -> RetryReport {
        let (due, _) = self.due().await;
        let mut report = RetryReport::default();
        for id in due {
            match self.attempt(&id).await {
                Ok(Attempt::Uploaded) => report.succeeded += 1,
                Ok(Attempt::Failed) => report.failed += 1,
                Ok(Attempt::Rejected) => {
                    report.failed += 1;
                    break;
                }
                Ok(Attempt::Skipped) => {}
                Err(e) => {
                    tracing::error!(id, error = %e, "dead-letter queue could not record a retry");
                    report.failed += 1;
                }
            }
        }
        report
    }

    /// Start the background retry worker. It stops when `cancel` fires, after finishing the
    /// upload in progress (uploads are bounded by the store's timeouts).
    pub fn spawn_retry_worker(self: &Arc<Self>, cancel: CancellationToken) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let poll = Duration::from_millis(me.cfg.poll_ms.max(10));
            let worker = &akidb_instrumentation::metrics().worker_runs;
            loop {
                me.publish();
                let (_, next) = me.due().await;
                let wait = next.map_or(poll, |n| n.min(poll));
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                    _ = me.wake.notified() => {}
                }
                if cancel.is_cancelled() {
                    break;
                }
                let r = me.run_due().await;
                if r.succeeded + r.failed > 0 {
                    let outcome = if r.failed == 0 { "success" } else { "error" };
                    worker.with_label_values(&["dlq_retry", outcome]).inc();
                }
            }
            me.publish();
            tracing::debug!("dead-letter retry worker stopped");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::breaker::{Breaker, BreakerConfig, ResilientStore, RetryConfig};
    use crate::objstore::error::Operation;
    use crate::objstore::fault::{Fault, FaultStore};

    fn cfg() -> DlqConfig {
        DlqConfig {
            dir: None,
            max_entries: 100,
            max_bytes: 1 << 20,
            retry_base_ms: 20,
            retry_max_ms: 100,
            poll_ms: 10,
        }
    }

    fn err() -> ObjectStoreError {
        ObjectStoreError::transient(Operation::Put, "k", "injected")
    }

    #[test]
    fn record_roundtrip_and_damage() {
        let e = DlqEntry {
            id: "0".repeat(32),
            seq: 7,
            key: "a/b".into(),
            collection: "c".into(),
            size_bytes: 3,
            crc32c: 42,
            attempts: 2,
            first_failed_unix_ms: 1,
            next_retry_unix_ms: 2,
            last_error: "x".into(),
            last_error_kind: "transient".into(),
        };
        let buf = encode(&e);
        assert_eq!(decode(&buf).unwrap(), e);
        let mut bad = buf.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("checksum"));
        assert!(decode(&buf[..buf.len() - 1]).is_err());
        assert!(decode(&buf[..5]).is_err());
    }

    #[tokio::test]
    async fn enqueue_survives_reopen_and_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultStore::new());
        let dlq = Dlq::open(dir.path(), cfg(), store.clone()).await.unwrap();
        let src = dir.path().join("snap.bin");
        std::fs::write(&src, b"file-bytes").unwrap();
        let a = dlq
            .enqueue(
                "c1",
                "c1/a",
                UploadSource::Bytes(Bytes::from_static(b"AAA")),
                &err(),
            )
            .await
            .unwrap();
        let b = dlq
            .enqueue("c1", "c1/b", UploadSource::File(src.clone()), &err())
            .await
            .unwrap();
        assert_eq!(b.size_bytes, 10);
        assert_eq!(dlq.depth(), 2);
        assert!(dlq.contains_key("c1/a"));
        // The caller may delete its file: the spool keeps the data.
        std::fs::remove_file(&src).unwrap();
        drop(dlq);

        let dlq = Dlq::open(dir.path(), cfg(), store.clone()).await.unwrap();
        let listed = dlq.list().await;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], a);
        assert_eq!(listed[1], b);
        let r = dlq.retry(Target::All).await.unwrap();
        assert_eq!(
            r,
            RetryReport {
                succeeded: 2,
                failed: 0
            }
        );
        assert_eq!(store.object("c1/a").unwrap(), Bytes::from_static(b"AAA"));
        assert_eq!(
            store.object("c1/b").unwrap(),
            Bytes::from_static(b"file-bytes")
        );
        assert_eq!(dlq.depth(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("entries"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn full_queue_rejects_and_never_evicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultStore::new());
        let c = DlqConfig {
            max_entries: 2,
            max_bytes: 10,
            ..cfg()
        };
        let dlq = Dlq::open(dir.path(), c, store).await.unwrap();
        let b = |s: &'static [u8]| UploadSource::Bytes(Bytes::from_static(s));
        dlq.enqueue("", "k1", b(b"1234"), &err()).await.unwrap();
        // Byte limit.
        let e = dlq
            .enqueue("", "k2", b(b"1234567"), &err())
            .await
            .unwrap_err();
        assert!(matches!(e, DlqError::Full { .. }), "{e}");
        dlq.enqueue("", "k2", b(b"12"), &err()).await.unwrap();
        // Entry limit.
        let e = dlq.enqueue("", "k3", b(b"1"), &err()).await.unwrap_err();
        assert!(matches!(e, DlqError::Full { .. }), "{e}");
        let keys: Vec<String> = dlq.list().await.into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["k1", "k2"]);
        let st = dlq.stats().await;
        assert_eq!(st.rejected_total, 2);
        assert_eq!(st.bytes, 6);
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            2,
            "rejected data is not left in the spool"
        );
    }

    #[tokio::test]
    async fn purge_one_and_all() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = Dlq::open(dir.path(), cfg(), Arc::new(FaultStore::new()))
            .await
            .unwrap();
        let mut events = dlq.subscribe();
        let mut ids = Vec::new();
        for k in ["a", "b", "c"] {
            let e = dlq
                .enqueue("", k, UploadSource::Bytes(Bytes::from_static(b"x")), &err())
                .await
                .unwrap();
            ids.push(e.id);
        }
        assert!(matches!(
            dlq.purge(Target::One("../../etc/passwd".into())).await,
            Err(DlqError::NoSuchEntry(_))
        ));
        assert_eq!(dlq.purge(Target::One(ids[1].clone())).await.unwrap(), 1);
        assert_eq!(
            events.recv().await.unwrap(),
            DlqEvent::Purged {
                id: ids[1].clone(),
                key: "b".into()
            }
        );
        assert_eq!(dlq.purge(Target::All).await.unwrap(), 2);
        assert_eq!(dlq.depth(), 0);
        let dlq = Dlq::open(dir.path(), cfg(), Arc::new(FaultStore::new()))
            .await
            .unwrap();
        assert_eq!(dlq.depth(), 0, "purge is durable");
    }

    #[tokio::test]
    async fn failed_retry_reschedules_and_counts_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultStore::new());
        store.set(Fault::Down);
        let dlq = Dlq::open(dir.path(), cfg(), store.clone()).await.unwrap();
        let e = dlq
            .enqueue(
                "",
                "k",
                UploadSource::Bytes(Bytes::from_static(b"v")),
                &err(),
            )
            .await
            .unwrap();
        let r = dlq.retry(Target::One(e.id.clone())).await.unwrap();
        assert_eq!(
            r,
            RetryReport {
                succeeded: 0,
                failed: 1
            }
        );
        let after = dlq.get(&e.id).await.unwrap();
        assert_eq!(after.attempts, 2);
        assert_eq!(after.last_error_kind, "transient");
        assert!(after.next_retry_unix_ms >= now_ms());
        assert_eq!(after.first_failed_unix_ms, e.first_failed_unix_ms);
        // Durable.
        drop(dlq);
        let dlq = Dlq::open(dir.path(), cfg(), store).await.unwrap();
        assert_eq!(dlq.get(&e.id).await.unwrap().attempts, 2);
    }

    #[tokio::test]
    async fn newer_upload_of_same_key_supersedes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultStore::new());
        let dlq = Dlq::open(dir.path(), cfg(), store.clone()).await.unwrap();
        let b = |s: &'static [u8]| UploadSource::Bytes(Bytes::from_static(s));
        dlq.enqueue("", "k", b(b"old"), &err()).await.unwrap();
        dlq.enqueue("", "k", b(b"new"), &err()).await.unwrap();
        assert_eq!(dlq.depth(), 1);
        dlq.retry(Target::All).await.unwrap();
        assert_eq!(store.object("k").unwrap(), Bytes::from_static(b"new"));
    }

    #[tokio::test]
    async fn damaged_records_are_kept_aside_and_leftovers_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultStore::new());
        let dlq = Dlq::open(dir.path(), cfg(), store.clone()).await.unwrap();
        let e = dlq
            .enqueue(
                "",
                "k",
                UploadSource::Bytes(Bytes::from_static(b"v")),
                &err(),
            )
            .await
            .unwrap();
        drop(dlq);
        // Damage the record; add an orphan spool file and a temp file.
        let rec = Dlq::entry_path(dir.path(), &e.id);
        let mut buf = std::fs::read(&rec).unwrap();
        let n = buf.len();
        buf[n - 3] ^= 0xff;
        std::fs::write(&rec, buf).unwrap();
        std::fs::write(Dlq::spool_path(dir.path(), &"f".repeat(32)), b"orphan").unwrap();
        std::fs::write(dir.path().join("entries").join(".x.entry.tmp-1"), b"t").unwrap();
        let dlq = Dlq::open(dir.path(), cfg(), store).await.unwrap();
        assert_eq!(dlq.depth(), 0);
        assert_eq!(dlq.stats().await.corrupt_records, 1);
        assert!(
            dir.path()
                .join("entries")
                .join(format!("{}.entry.corrupt", e.id))
                .exists()
        );
        assert!(
            Dlq::spool_path(dir.path(), &e.id).exists(),
            "data kept for the operator"
        );
        assert!(!Dlq::spool_path(dir.path(), &"f".repeat(32)).exists());
        assert!(!dir.path().join("entries").join(".x.entry.tmp-1").exists());
    }

    #[tokio::test]
    async fn damaged_spool_is_not_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultStore::new());
        let dlq = Dlq::open(dir.path(), cfg(), store.clone()).await.unwrap();
        let e = dlq
            .enqueue(
                "",
                "k",
                UploadSource::Bytes(Bytes::from_static(b"good")),
                &err(),
            )
            .await
            .unwrap();
        std::fs::write(dlq.spool_file(&e.id), b"evil").unwrap();
        let r = dlq.retry(Target::All).await.unwrap();
        assert_eq!(r.failed, 1);
        assert!(store.object("k").is_none());
        let after = dlq.get(&e.id).await.unwrap();
        assert_eq!(after.last_error_kind, "permanent");
        assert!(after.last_error.contains("damaged"), "{}", after.last_error);
    }

    #[tokio::test]
    async fn worker_drains_when_store_returns() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(FaultStore::new());
        inner.set(Fault::Down);
        let breaker = Breaker::new(BreakerConfig {
            consecutive_failures: 2,
            open_ms: 50,
            max_open_ms: 100,
            ..Default::default()
        });
        let store = Arc::new(ResilientStore::new(
            inner.clone(),
            breaker.clone(),
            RetryConfig {
                attempts: 1,
                base_ms: 1,
                max_ms: 1,
            },
        ));
        let dlq = Dlq::open(dir.path(), cfg(), store).await.unwrap();
        let cancel = CancellationToken::new();
        let worker = dlq.spawn_retry_worker(cancel.clone());
        for i in 0..5 {
            dlq.enqueue(
                "",
                &format!("k{i}"),
                UploadSource::Bytes(Bytes::from(vec![i as u8; 10])),
                &err(),
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(dlq.depth(), 5, "store down: nothing drains");
        assert!(dlq.list().await.iter().any(|e| e.attempts > 1));
        inner.set(Fault::None);
        let t = std::time::Instant::now();
        while dlq.depth() > 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "DLQ did not drain");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(inner.keys().len(), 5);
        assert_eq!(dlq.oldest_age(), Duration::ZERO);
        cancel.cancel();
        worker.await.unwrap();
    }
}
