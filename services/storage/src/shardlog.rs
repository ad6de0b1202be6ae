//! A shard's log in the object store: every write its owner acknowledged, in order, and what
//! every copy of the shard applies. The log, not a node's disk, is what makes a write
//! survive the loss of the node that acknowledged it.
//!
//! Entry `n` of shard `k` of a collection is the object
//! `shardlog/<collection>/<map id>/<k>/<n, 20 digits>` holding a protobuf
//! [`pb::ShardLogEntry`]. Entries are created with a create-only put
//! ([`ObjectStore::put_if_absent`]), one sequence after the other, so of two nodes that both
//! believe they own a shard only one can write each sequence. An owner writes a fence entry at
//! its epoch before its first write; a deposed owner's next put lands on a sequence already
//! taken, finds a newer epoch there and stops ("stale route"). Whatever an owner acknowledged
//! is in the log before the fence, so the new owner applies it before it writes.
//!
//! A copy applies entries in sequence and may apply the last few again after a crash (the
//! applied sequence is saved every second): applying a suffix of the log again to the state
//! it produced changes nothing (whole-point upserts, deletes by id or by filter).
//!
//! The owner's write path: validate, put the entry, apply it locally, answer. Followers poll
//! the next sequence ([`crate::shards`] runs them).
//!
//! **Snapshots and the cut log.** Every `--shard-snapshot-entries` entries the owner writes
//! its copy's points to `shardsnap/<collection>/<map id>/<k>/<seq>/<part>` (each part an
//! upsert entry of up to [`SNAPSHOT_PART_POINTS`] points) and then `…/<k>/latest` naming
//! `seq`; `seq` is the copy's applied sequence when the scan began (writes go on meanwhile,
//! so the scan holds that state plus maybe some later writes: applying the log after `seq`
//! to it gives the same state, as above). Then the log entries below the lowest sequence any
//! copy has applied (and no further than `seq`) are deleted. A copy starts from the latest
//! snapshot when it is new, or when the entry after its applied one is gone (it was away
//! while the log was cut): it empties itself, applies the snapshot, then follows the log.

use crate::convert::{filter_from_pb, keys_from_pb, point_from_pb};
use crate::engine::Engine;
use crate::error::{Result as StorageResult, StorageError};
use crate::filter::Filter;
use crate::fsutil::write_atomic;
use crate::model::{Payload, PayloadChange, PointKey};
use crate::objstore::{ObjectStore, ObjectStoreError};
use crate::store::CollectionStore;
use akidb_proto::v1 as pb;
use akidb_proto::v1::shard_log_entry::Op;
use bytes::Bytes;
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tonic::Status;

/// The key prefix of one shard's log.
pub fn prefix(collection: &str, map_id: &str, shard: u32) -> String {
    format!("shardlog/{collection}/{map_id}/{shard}/")
}

fn key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:020}")
}

/// The key prefix of one shard's snapshots.
pub fn snapshot_prefix(collection: &str, map_id: &str, shard: u32) -> String {
    format!("shardsnap/{collection}/{map_id}/{shard}/")
}

/// Points in one part of a shard snapshot.
pub const SNAPSHOT_PART_POINTS: usize = 512;

/// How long a copy trusts that the entry after its applied one is missing because it is the
/// log's end (not because the log was cut behind a snapshot) before it looks again.
const CUT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// `<snapshot prefix>latest`: the newest complete snapshot of a shard.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SnapshotPointer {
    /// The log sequence the snapshot holds (at least).
    sequence: u64,
    parts: u32,
    points: u64,
    node: String,
}

/// What applying a write did locally.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    /// Points upserted or deleted.
    pub points: u64,
    /// The log sequence of the entry.
    pub log_sequence: u64,
}

/// A shard's copy on this node and its place in the shard's log.
pub struct ShardCursor {
    /// The local copy, `<collection>.<shard>`.
    name: String,
    /// The log's key prefix.
    prefix: String,
    /// The snapshots' key prefix.
    snap_prefix: String,
    map_id: String,
    /// Entries up to here are applied locally (the last few maybe twice); moved only by the
    /// holder of `owner_at`'s lock, read by anyone.
    applied: AtomicU64,
    /// What `<data dir>/shardlog/<name>.json` says.
    saved: AtomicU64,
    /// The epoch at which this node fenced the log and writes it as owner (`None`: a
    /// follower, or an owner that has not taken the shard over yet). Its lock lets one task
    /// at a time write or apply the log.
    owner_at: tokio::sync::Mutex<Option<u64>>,
    /// When this copy last read the shard's snapshot pointer (`None`: never; a new cursor
    /// reads it before it trusts a missing entry to be the log's end).
    cut_checked: Mutex<Option<std::time::Instant>>,
    /// The sequence of the newest snapshot this node took or read.
    snapshot_at: AtomicU64,
    /// Log entries up to here were deleted by this node (behind a snapshot).
    cut_at: AtomicU64,
    /// A snapshot is being taken or the log cut.
    busy: std::sync::atomic::AtomicBool,
}

impl ShardCursor {
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether this node, as the shard's owner, should take a snapshot (`every` entries since
    /// the last one).
    pub fn snapshot_due(&self, every: u64) -> bool {
        every > 0 && self.applied() >= self.snapshot_at.load(Ordering::Acquire) + every
    }

    /// The local copy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest snapshot's sequence as this node knows it.
    pub fn snapshot_at(&self) -> u64 {
        self.snapshot_at.load(Ordering::Acquire)
    }

    /// Where this node cut the log last.
    pub fn cut_at(&self) -> u64 {
        self.cut_at.load(Ordering::Acquire)
    }

    /// Begin a snapshot or a cut unless one is running; [`Self::end`] ends it.
    pub fn begin(&self) -> bool {
        !self.busy.swap(true, Ordering::AcqRel)
    }

    pub fn end(&self) {
        self.busy.store(false, Ordering::Release);
    }

    fn set_applied(&self, seq: u64) {
        self.applied.store(seq, Ordering::Release);
    }
}

/// The saved place of a shard copy: `<data dir>/shardlog/<local name>.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    map_id: String,
    applied: u64,
}

/// The shard logs of one node.
pub struct ShardLogs {
    store: Arc<dyn ObjectStore>,
    engine: Arc<Engine>,
    dir: PathBuf,
    node: String,
    shards: Mutex<HashMap<String, Arc<ShardCursor>>>,
}

/// The answer when the object store cannot take or give a log entry.
fn store_unavailable(name: &str, e: &ObjectStoreError) -> Status {
    Status::unavailable(format!(
        "the log of shard `{name}` in the object store cannot be written or read: {e}; the write was not acknowledged (it may still be applied: sending it again is safe)"
    ))
}

fn fenced(name: &str, theirs: u64, ours: u64) -> Status {
    akidb_cluster::route::stale(format!(
        "shard `{name}` was taken over at epoch {theirs} (this node wrote at epoch {ours}): its log is fenced"
    ))
}

impl ShardLogs {
    /// Logs in `store`; applied sequences saved under `data_dir/shardlog`.
    pub fn open(
        store: Arc<dyn ObjectStore>,
        engine: Arc<Engine>,
        data_dir: &std::path::Path,
        node: &str,
    ) -> std::io::Result<ShardLogs> {
        let dir = data_dir.join("shardlog");
        std::fs::create_dir_all(&dir)?;
        Ok(ShardLogs {
            store,
            engine,
            dir,
            node: node.to_string(),
            shards: Default::default(),
        })
    }

    fn saved_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The cursor of local copy `name` of the map `map_id`, if this node has made it already.
    pub fn get(&self, name: &str, map_id: &str) -> Option<Arc<ShardCursor>> {
        let shards = self.shards.lock().expect("not poisoned");
        shards.get(name).filter(|c| c.map_id == map_id).cloned()
    }

    /// The cursor of local copy `name` (`<collection>.<shard>`) of the map `map_id`. A local
    /// copy left from another incarnation of the collection (deleted and created again while
    /// this node was away), or one with no saved place, is deleted first: the log rebuilds
    /// it. Blocking (file system).
    pub fn cursor(
        &self,
        name: &str,
        collection: &str,
        shard: u32,
        map_id: &str,
    ) -> StorageResult<Arc<ShardCursor>> {
        let mut shards = self.shards.lock().expect("not poisoned");
        if let Some(c) = shards.get(name)
            && c.map_id == map_id
        {
            return Ok(c.clone());
        }
        let path = self.saved_path(name);
        let saved: Option<Saved> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let applied = match saved {
            Some(s) if s.map_id == map_id => s.applied,
            other => {
                if self.engine.slot(name).is_ok() {
                    tracing::warn!(
                        shard = name,
                        saved_map = other.as_ref().map(|s| s.map_id.as_str()),
                        map = map_id,
                        "this node's copy of the shard is of another incarnation of the collection (or has no saved log place): deleting it; the shard's log rebuilds it"
                    );
                    match self.engine.delete(name) {
                        Ok(()) | Err(StorageError::CollectionNotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                let s = Saved {
                    map_id: map_id.to_string(),
                    applied: 0,
                };
                write_atomic(&path, &serde_json::to_vec(&s).expect("serializes"))
                    .map_err(StorageError::Io)?;
                0
            }
        };
        let c = Arc::new(ShardCursor {
            name: name.to_string(),
            prefix: prefix(collection, map_id, shard),
            snap_prefix: snapshot_prefix(collection, map_id, shard),
            map_id: map_id.to_string(),
            applied: AtomicU64::new(applied),
            saved: AtomicU64::new(applied),
            owner_at: tokio::sync::Mutex::new(None),
            cut_checked: Mutex::new(None),
            snapshot_at: AtomicU64::new(0),
            cut_at: AtomicU64::new(0),
            busy: Default::default(),
        });
        shards.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Every shard's applied sequence, by `(map id, local name)`.
    pub fn applied_all(&self) -> BTreeMap<(String, String), u64> {
        self.shards
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(n, c)| ((c.map_id.clone(), n.clone()), c.applied()))
            .collect()
    }

    /// Save every applied sequence that moved (blocking; every second, and at shutdown).
    pub fn save(&self) {
        let shards: Vec<(String, Arc<ShardCursor>)> = self
            .shards
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect();
        for (name, c) in shards {
            let applied = c.applied();
            if c.saved.load(Ordering::Acquire) == applied {
                continue;
            }
            let s = Saved {
                map_id: c.map_id.clone(),
                applied,
            };
            let path = self.saved_path(&name);
            match write_atomic(&path, &serde_json::to_vec(&s).expect("serializes")) {
                Ok(()) => c.saved.store(applied, Ordering::Release),
                Err(e) => {
                    tracing::warn!(shard = %name, error = %e, "saving the shard's applied log sequence failed; a restart applies a few entries again")
                }
            }
        }
    }

    /// Forget local copy `name` (deleted): its cursor, its saved place, and, with `log` (the
    /// collection is gone, not only this copy), its log in the object store (in the
    /// background).
    pub fn forget(&self, name: &str, log: bool) {
        let c = self.shards.lock().expect("not poisoned").remove(name);
        let _ = std::fs::remove_file(self.saved_path(name));
        let Some(c) = c.filter(|_| log) else { return };
        let store = self.store.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            for prefix in [&c.prefix, &c.snap_prefix] {
                match store.list(prefix).await {
                    Ok(objs) => {
                        for o in objs {
                            if let Err(e) = store.delete(&o.key).await {
                                tracing::warn!(shard = %name, key = %o.key, error = %e, "deleting an object of a deleted shard's log or snapshots failed; it stays");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(shard = %name, prefix = %prefix, error = %e, "listing a deleted shard's log or snapshots failed; they stay")
                    }
                }
            }
        });
    }

    /// Write `op` to the log of the shard as its owner at `epoch`, then apply it locally.
    /// `op` must have been validated: an entry is never taken back.
    pub async fn append(
        &self,
        shard: &ShardCursor,
        epoch: u64,
        write: Write,
    ) -> Result<Applied, Status> {
        let mut owner_at = shard.owner_at.lock().await;
        if *owner_at != Some(epoch) {
            self.take_over(shard, &mut owner_at, epoch).await?;
        }
        self.put_next(shard, &mut owner_at, epoch, write).await
    }

    /// The op `write` logs, resolved against this copy as it is now (every entry before
    /// the next one applied); `None` when it changes nothing.
    async fn resolve(&self, name: &str, write: &Write) -> Result<Option<Op>, Status> {
        let (keys, filter, change) = match write {
            Write::Op(op) => return Ok(Some(op.clone())),
            Write::UpdatePayload(k, f, c) => (k.clone(), f.clone(), c.clone()),
            Write::UpdateVectors(updates) => {
                // Logged as the whole points it makes: applying them again changes nothing.
                let (engine, name, updates) =
                    (self.engine.clone(), name.to_string(), updates.clone());
                let points = crate::engine::blocking(move || {
                    let coll = engine.lookup(&name)?.get()?.collection;
                    coll.resolve_vectors(&updates)
                })
                .await?;
                return Ok(Some(Op::Upsert(pb::UpsertRequest {
                    collection: String::new(),
                    points: points
                        .into_iter()
                        .map(crate::convert::record_to_pb)
                        .collect(),
                })));
            }
        };
        let (engine, name) = (self.engine.clone(), name.to_string());
        let payloads = crate::engine::blocking(move || {
            let coll = engine.lookup(&name)?.get()?.collection;
            coll.resolve_payloads(&keys, filter.as_ref(), &change)
        })
        .await?;
        Ok((!payloads.is_empty()).then(|| {
            Op::SetPayloads(pb::PointPayloads {
                points: payloads
                    .iter()
                    .map(|(k, p)| pb::PointPayload {
                        id: Some(crate::convert::key_to_pb(k)),
                        payload: Some(crate::convert::payload_to_pb(p)),
                    })
                    .collect(),
            })
        }))
    }

    /// Apply every entry past the cursor, unless another task holds it (it is being caught
    /// up or written): `None` then.
    pub async fn try_catch_up(&self, shard: &ShardCursor) -> Option<Result<(), Status>> {
        let mut owner_at = shard.owner_at.try_lock().ok()?;
        Some(self.catch_up(shard, &mut owner_at).await.map(|_| ()))
    }

    /// Take the shard over as owner at `epoch` now (catch up, then fence), unless another
    /// task holds the cursor.
    pub async fn try_take_over(
        &self,
        shard: &ShardCursor,
        epoch: u64,
    ) -> Option<Result<(), Status>> {
        let mut owner_at = shard.owner_at.try_lock().ok()?;
        if *owner_at == Some(epoch) {
            return Some(Ok(()));
        }
        Some(self.take_over(shard, &mut owner_at, epoch).await)
    }

    /// Apply every entry past the cursor; how many. An entry of a newer epoch than the one
    /// this node writes at ends its ownership.
    async fn catch_up(
        &self,
        shard: &ShardCursor,
        owner_at: &mut Option<u64>,
    ) -> Result<u64, Status> {
        let mut n = 0;
        if shard.applied() == 0
            && let Some(p) = self.cut_past(shard).await?
        {
            // A new copy: from the latest snapshot rather than the whole log.
            self.restore(shard, p).await?;
        }
        loop {
            let seq = shard.applied() + 1;
            let k = key(&shard.prefix, seq);
            let entry = match self.store.get(&k).await {
                Ok(b) => decode(&shard.name, &k, &b)?,
                Err(ObjectStoreError::NotFound { .. }) => match self.cut_past(shard).await? {
                    // The log was cut behind a snapshot while this copy was away.
                    Some(p) => {
                        self.restore(shard, p).await?;
                        continue;
                    }
                    None => return Ok(n),
                },
                Err(e) => return Err(store_unavailable(&shard.name, &e)),
            };
            if owner_at.is_some_and(|e| entry.epoch > e) {
                tracing::warn!(shard = %shard.name, epoch = entry.epoch, "the shard was taken over by a newer owner: this node no longer writes its log");
                *owner_at = None;
            }
            self.apply(&shard.name, entry).await?;
            shard.set_applied(seq);
            n += 1;
        }
    }

    /// Catch up, then put a fence entry at `epoch`: from then on no entry of an older epoch
    /// can be written, and this node writes the log.
    async fn take_over(
        &self,
        shard: &ShardCursor,
        owner_at: &mut Option<u64>,
        epoch: u64,
    ) -> Result<(), Status> {
        // A missing entry must be the log's end, not a cut this node has not seen: a fence
        // put below the cut would be read by no copy.
        *shard.cut_checked.lock().expect("not poisoned") = None;
        let caught = self.catch_up(shard, owner_at).await?;
        // The log must go on from this copy's place: a cut keeps the entry it stops at, so
        // an entry at or below the next sequence is there unless the log was cut past this
        // copy and the snapshot pointer it read offers nothing newer (a pointer put late by
        // a paused former owner): then not taking over beats a fence no copy reads.
        let next = shard.applied() + 1;
        let first = self.entries(shard).await?.first().map(|(seq, _)| *seq);
        if let Some(first) = first.filter(|f| *f > next) {
            return Err(Status::unavailable(format!(
                "the log of shard `{}` is cut past this node's copy (its first entry is {first}, this copy has applied {}) and no snapshot this node can find covers the gap: it does not take the shard over (tried again each round)",
                shard.name,
                next - 1
            )));
        }
        let fence = Op::Fence(pb::ShardLogFence {
            node: self.node.clone(),
        });
        let at = self
            .put_next(shard, owner_at, epoch, Write::Op(fence))
            .await?;
        *owner_at = Some(epoch);
        tracing::info!(shard = %shard.name, epoch, sequence = at.log_sequence, caught_up = caught, "took the shard over: its log is fenced at this epoch");
        Ok(())
    }

    /// Put `op` at the next free sequence at `epoch` and apply it. An entry found in its way
    /// is applied first (the old owner's last, acknowledged before a fence), or recognised as
    /// this one (a put retried after an ambiguous failure); one of a newer epoch means this
    /// node no longer owns the shard.
    async fn put_next(
        &self,
        shard: &ShardCursor,
        owner_at: &mut Option<u64>,
        epoch: u64,
        write: Write,
    ) -> Result<Applied, Status> {
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let appends = &akidb_instrumentation::metrics().shard_log_appends;
        loop {
            // Resolved again after an entry not ours took the place: it may change what a
            // payload update finds.
            let Some(op) = self.resolve(&shard.name, &write).await? else {
                return Ok(Applied {
                    points: 0,
                    log_sequence: shard.applied(),
                });
            };
            let entry = pb::ShardLogEntry {
                epoch,
                write_id: write_id.clone(),
                op: Some(op),
            };
            let bytes = Bytes::from(entry.encode_to_vec());
            let seq = shard.applied() + 1;
            let k = key(&shard.prefix, seq);
            let created = self.store.put_if_absent(&k, bytes).await.map_err(|e| {
                appends.with_label_values(&["error"]).inc();
                store_unavailable(&shard.name, &e)
            })?;
            let entry = if created {
                appends.with_label_values(&["written"]).inc();
                entry
            } else {
                let there = self.read(&shard.name, &k).await?;
                if there.write_id != write_id && there.epoch > epoch {
                    appends.with_label_values(&["fenced"]).inc();
                    *owner_at = None;
                    return Err(fenced(&shard.name, there.epoch, epoch));
                }
                there
            };
            let mine = entry.write_id == write_id;
            let applied = self.apply(&shard.name, entry).await?;
            shard.set_applied(seq);
            if mine {
                return Ok(Applied {
                    log_sequence: seq,
                    ..applied
                });
            }
        }
    }

    /// The shard's latest snapshot when it holds more than this copy has applied: the entry
    /// after the applied one may be gone (the log cut behind it). Read at most every
    /// [`CUT_CHECK_EVERY`] unless the copy never read it.
    async fn cut_past(&self, shard: &ShardCursor) -> Result<Option<SnapshotPointer>, Status> {
        {
            let mut checked = shard.cut_checked.lock().expect("not poisoned");
            if checked.is_some_and(|t| t.elapsed() < CUT_CHECK_EVERY) {
                return Ok(None);
            }
            *checked = Some(std::time::Instant::now());
        }
        let Some(p) = self.pointer(shard).await? else {
            return Ok(None);
        };
        shard.snapshot_at.fetch_max(p.sequence, Ordering::AcqRel);
        Ok((p.sequence > shard.applied()).then_some(p))
    }

    /// The shard's snapshot pointer, if it has one.
    async fn pointer(&self, shard: &ShardCursor) -> Result<Option<SnapshotPointer>, Status> {
        let k = format!("{}latest", shard.snap_prefix);
        match self.store.get(&k).await {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Status::data_loss(format!(
                    "the snapshot pointer `{k}` of shard `{}` is unreadable ({e})",
                    shard.name
                ))
            }),
            Err(ObjectStoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_unavailable(&shard.name, &e)),
        }
    }

    /// Rebuild the local copy from snapshot `p`: emptied (deleted and created again with its
    /// spec), the snapshot's points applied, the cursor set to its sequence. A failure leaves
    /// the cursor at 0, so the next round starts over.
    async fn restore(&self, shard: &ShardCursor, p: SnapshotPointer) -> Result<(), Status> {
        let m = &akidb_instrumentation::metrics().shard_snapshots;
        let started = std::time::Instant::now();
        let r = async {
            shard.set_applied(0);
            let (engine, name) = (self.engine.clone(), shard.name.clone());
            crate::engine::blocking(move || {
                let spec = engine.lookup(&name)?.get()?.collection.stats().spec;
                match engine.delete(&name) {
                    Ok(()) | Err(StorageError::CollectionNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                match engine.create(spec) {
                    // Created again by a routed call meanwhile: empty too.
                    Ok(_) | Err(StorageError::CollectionExists(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await?;
            for part in 0..p.parts {
                let k = format!("{}{:020}/{part:06}", shard.snap_prefix, p.sequence);
                let entry = self.read(&shard.name, &k).await?;
                self.apply(&shard.name, entry).await?;
            }
            shard.set_applied(p.sequence);
            Ok::<_, Status>(())
        }
        .await;
        match &r {
            Ok(()) => {
                m.with_label_values(&["restored"]).inc();
                tracing::info!(shard = %shard.name, sequence = p.sequence, points = p.points, seconds = started.elapsed().as_secs_f64(), "rebuilt this node's copy of the shard from the shard's snapshot; following the log from there");
            }
            Err(e) => {
                m.with_label_values(&["error"]).inc();
                // The next round reads the pointer again (a newer snapshot may have replaced
                // this one) rather than follow the log onto a half-rebuilt copy.
                *shard.cut_checked.lock().expect("not poisoned") = None;
                tracing::warn!(shard = %shard.name, sequence = p.sequence, error = %e.message(), "rebuilding this node's copy of the shard from its snapshot failed; retrying");
            }
        }
        r
    }

    /// As the shard's owner: write a snapshot of this copy at its applied sequence (the
    /// parts, then the `latest` pointer), delete older snapshots, and return its sequence.
    /// Writes go on meanwhile.
    pub async fn snapshot(&self, shard: &ShardCursor) -> Result<u64, Status> {
        let m = &akidb_instrumentation::metrics().shard_snapshots;
        let r = self.write_snapshot(shard).await;
        match &r {
            Ok(seq) => {
                m.with_label_values(&["taken"]).inc();
                shard.snapshot_at.fetch_max(*seq, Ordering::AcqRel);
            }
            Err(e) => {
                m.with_label_values(&["error"]).inc();
                tracing::warn!(shard = %shard.name, error = %e.message(), "taking a snapshot of the shard failed; its log is kept whole and the next round tries again");
            }
        }
        r
    }

    async fn write_snapshot(&self, shard: &ShardCursor) -> Result<u64, Status> {
        let started = std::time::Instant::now();
        let seq = shard.applied();
        let dir = format!("{}{seq:020}/", shard.snap_prefix);
        let (mut parts, mut points) = (0u32, 0u64);
        let mut after = None;
        loop {
            let (engine, name) = (self.engine.clone(), shard.name.clone());
            let params = crate::store::ScrollParams {
                filter: None,
                limit: SNAPSHOT_PART_POINTS,
                after: after.take(),
                include: crate::store::Include::ALL,
            };
            let (page, next) = crate::engine::blocking(move || {
                engine.lookup(&name)?.get()?.collection.scroll(&params)
            })
            .await?;
            if !page.is_empty() {
                points += page.len() as u64;
                let entry = pb::ShardLogEntry {
                    epoch: 0,
                    write_id: String::new(),
                    op: Some(Op::Upsert(pb::UpsertRequest {
                        collection: String::new(),
                        points: page
                            .into_iter()
                            .map(|p| pb::Point {
                                id: Some(crate::convert::key_to_pb(&p.key)),
                                vector: p.vector.unwrap_or_default(),
                                payload: p.payload.as_ref().map(crate::convert::payload_to_pb),
                                sparse: crate::convert::sparse_to_pb(p.sparse),
                                vectors: crate::convert::named_to_pb(p.named),
                            })
                            .collect(),
                    })),
                };
                let k = format!("{dir}{parts:06}");
                self.store
                    .put(&k, Bytes::from(entry.encode_to_vec()))
                    .await
                    .map_err(|e| store_unavailable(&shard.name, &e))?;
                parts += 1;
            }
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        let pointer = SnapshotPointer {
            sequence: seq,
            parts,
            points,
            node: self.node.clone(),
        };
        // The pointer never goes back (a paused former owner finishing late): its parts are
        // left to the next snapshot's clean-up.
        if let Some(there) = self.pointer(shard).await?
            && there.sequence >= seq
        {
            return Err(Status::failed_precondition(format!(
                "the snapshot of shard `{}` at {seq} is not newer than the one there (at {}, by {}): the pointer stays",
                shard.name, there.sequence, there.node
            )));
        }
        self.store
            .put(
                &format!("{}latest", shard.snap_prefix),
                Bytes::from(serde_json::to_vec(&pointer).expect("serializes")),
            )
            .await
            .map_err(|e| store_unavailable(&shard.name, &e))?;
        tracing::info!(shard = %shard.name, sequence = seq, parts, points, seconds = started.elapsed().as_secs_f64(), "took a snapshot of the shard");
        // Older snapshots: nothing names them any more.
        let objs = self
            .store
            .list(&shard.snap_prefix)
            .await
            .map_err(|e| store_unavailable(&shard.name, &e))?;
        for o in objs {
            let older = o.key[shard.snap_prefix.len()..]
                .split('/')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s < seq);
            if older && let Err(e) = self.store.delete(&o.key).await {
                tracing::warn!(key = %o.key, error = %e, "deleting an old shard snapshot object failed; it stays");
            }
        }
        Ok(seq)
    }

    /// Delete the shard's log entries below `upto` (a snapshot holds them, and every copy
    /// has applied them); how many. The entry at `upto` stays, so the log, once written, is
    /// never empty and its first entry shows how far it was cut.
    pub async fn cut(&self, shard: &ShardCursor, upto: u64) -> Result<u64, Status> {
        let mut n = 0;
        for (_, k) in self
            .entries(shard)
            .await?
            .into_iter()
            .take_while(|(s, _)| *s < upto)
        {
            self.store
                .delete(&k)
                .await
                .map_err(|e| store_unavailable(&shard.name, &e))?;
            n += 1;
        }
        shard.cut_at.fetch_max(upto, Ordering::AcqRel);
        if n > 0 {
            tracing::debug!(shard = %shard.name, upto, entries = n, "cut the shard's log behind its snapshot");
        }
        Ok(n)
    }

    /// The shard's log entries in the object store, `(sequence, key)` in sequence order.
    async fn entries(&self, shard: &ShardCursor) -> Result<Vec<(u64, String)>, Status> {
        let mut out: Vec<(u64, String)> = self
            .store
            .list(&shard.prefix)
            .await
            .map_err(|e| store_unavailable(&shard.name, &e))?
            .into_iter()
            .filter_map(|o| Some((o.key[shard.prefix.len()..].parse().ok()?, o.key)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn read(&self, name: &str, k: &str) -> Result<pb::ShardLogEntry, Status> {
        let b = self
            .store
            .get(k)
            .await
            .map_err(|e| store_unavailable(name, &e))?;
        decode(name, k, &b)
    }

    /// Apply one entry to the local copy. An entry the copy refuses as invalid is refused by
    /// every copy alike (same spec, same checks) and is skipped; any other failure stops
    /// here, to be tried again.
    async fn apply(&self, name: &str, entry: pb::ShardLogEntry) -> Result<Applied, Status> {
        if matches!(entry.op, Some(Op::Fence(_)) | None) {
            return Ok(Applied::default());
        }
        let engine = self.engine.clone();
        let name = name.to_string();
        let r = crate::engine::blocking(move || {
            let coll = engine.lookup(&name)?.get()?.collection;
            apply_op(&*coll, entry.op)
        })
        .await;
        match r {
            Ok(a) => Ok(a),
            Err(e) if e.code() == tonic::Code::InvalidArgument => {
                tracing::warn!(error = %e, "a shard log entry was refused as invalid; skipped (every copy refuses it alike)");
                Ok(Applied::default())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn decode(name: &str, k: &str, b: &[u8]) -> Result<pb::ShardLogEntry, Status> {
    pb::ShardLogEntry::decode(b).map_err(|e| {
        Status::data_loss(format!(
            "entry `{k}` of the log of shard `{name}` is unreadable ({e}); the shard's copies stop at it"
        ))
    })
}

/// Check a write before it is logged: what applying it would refuse, refused now.
pub fn check(coll: &dyn CollectionStore, op: &Op) -> StorageResult<()> {
    match op {
        Op::Upsert(r) => {
            let points = r
                .points
                .iter()
                .cloned()
                .map(point_from_pb)
                .collect::<StorageResult<Vec<_>>>()?;
            crate::validate::points(&coll.stats().spec, &points)
        }
        Op::Delete(r) => {
            let keys = keys_from_pb(&r.ids)?;
            let filter = filter_from_pb(r.filter.as_ref())?;
            if keys.is_empty() && filter.is_none() {
                return Err(StorageError::EmptyRequest(
                    crate::error::EmptyRequest::Delete,
                ));
            }
            Ok(())
        }
        Op::SetPayloads(r) => payloads_from_pb(r).map(|_| ()),
        Op::Fence(_) => Ok(()),
    }
}

/// A routed write: an op logged as sent, or a payload update that the owner resolves
/// against its copy into the payloads it gives ([`Op::SetPayloads`]) right before the put.
pub enum Write {
    Op(Op),
    UpdatePayload(Vec<PointKey>, Option<Filter>, PayloadChange),
    /// Resolved by the owner into an upsert of the whole points it makes.
    UpdateVectors(Vec<crate::model::VectorUpdate>),
}

fn payloads_from_pb(r: &pb::PointPayloads) -> StorageResult<Vec<(PointKey, Payload)>> {
    r.points
        .iter()
        .map(|p| {
            Ok((
                crate::convert::key_from_pb(p.id.as_ref())?,
                crate::convert::payload_from_pb(p.payload.as_ref())?,
            ))
        })
        .collect()
}

/// The ids, filter and change of an UpdatePayload, checked.
pub fn update_payload_from_pb(
    r: &pb::UpdatePayloadRequest,
) -> StorageResult<(Vec<PointKey>, Option<Filter>, PayloadChange)> {
    let keys = keys_from_pb(&r.ids)?;
    let filter = filter_from_pb(r.filter.as_ref())?;
    if keys.is_empty() && filter.is_none() {
        return Err(StorageError::EmptyRequest(
            crate::error::EmptyRequest::UpdatePayload,
        ));
    }
    let change = crate::convert::payload_change_from_pb(r.change.as_ref())?;
    Ok((keys, filter, change))
}

fn apply_op(coll: &dyn CollectionStore, op: Option<Op>) -> StorageResult<Applied> {
    match op {
        Some(Op::Upsert(r)) => {
            let points = r
                .points
                .into_iter()
                .map(point_from_pb)
                .collect::<StorageResult<Vec<_>>>()?;
            let n = points.len() as u64;
            coll.upsert(points)?;
            Ok(Applied {
                points: n,
                log_sequence: 0,
            })
        }
        Some(Op::Delete(r)) => {
            let keys = keys_from_pb(&r.ids)?;
            let filter = filter_from_pb(r.filter.as_ref())?;
            let (n, _) = coll.delete(&keys, filter.as_ref())?;
            Ok(Applied {
                points: n,
                log_sequence: 0,
            })
        }
        Some(Op::SetPayloads(r)) => {
            let (n, _) = coll.set_payloads(payloads_from_pb(&r)?)?;
            Ok(Applied {
                points: n,
                log_sequence: 0,
            })
        }
        Some(Op::Fence(_)) | None => Ok(Applied::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineOptions;
    use crate::model::{CollectionSpec, Metric};
    use crate::objstore::LocalDirStore;

    const NAME: &str = "c.0";

    /// A node: its engine and its shard logs, over the object directory `objects` every
    /// node shares.
    fn node(dir: &std::path::Path, id: &str, objects: &Arc<dyn ObjectStore>) -> ShardLogs {
        let engine = Engine::open(EngineOptions::new(dir.join(id))).unwrap();
        ShardLogs::open(objects.clone(), engine, &dir.join(id), id).unwrap()
    }

    /// The node's copy `c.0` of shard 0 of collection `c` (map `m`, dimension 2), made as
    /// `ShardGate` makes it: the cursor, then the collection.
    fn copy(logs: &ShardLogs) -> Arc<ShardCursor> {
        let c = logs.cursor(NAME, "c", 0, "m").unwrap();
        logs.engine
            .create(CollectionSpec::for_test(NAME, 2, Metric::L2, 16))
            .unwrap();
        c
    }

    fn objects(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
        Arc::new(LocalDirStore::open(&dir.join("objects")).unwrap())
    }

    fn upsert(from: u64, n: u64) -> Op {
        Op::Upsert(pb::UpsertRequest {
            collection: String::new(),
            points: (from..from + n)
                .map(|k| pb::Point {
                    id: Some(pb::PointId::num(k)),
                    vector: vec![k as f32, 1.0],
                    payload: None,
                    ..Default::default()
                })
                .collect(),
        })
    }

    fn write(from: u64, n: u64) -> Write {
        Write::Op(upsert(from, n))
    }

    /// Points `from..from + n`, each with payload `{"color": color}`.
    fn colored(from: u64, n: u64, color: &str) -> Write {
        let Op::Upsert(mut r) = upsert(from, n) else {
            unreachable!()
        };
        for p in &mut r.points {
            let mut m = Payload::new();
            m.insert("color".into(), color.into());
            p.payload = Some(crate::convert::payload_to_pb(&m));
        }
        Write::Op(Op::Upsert(r))
    }

    /// The node's copy as (id, color) pairs.
    fn colors(logs: &ShardLogs) -> Vec<(PointKey, serde_json::Value)> {
        let c = logs.engine.lookup(NAME).unwrap().get().unwrap().collection;
        let params = crate::store::ScrollParams {
            limit: 1_000,
            include: crate::store::Include::PAYLOAD,
            ..Default::default()
        };
        c.scroll(&params)
            .unwrap()
            .0
            .into_iter()
            .map(|p| {
                (
                    p.key,
                    p.payload.unwrap().get("color").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn count(logs: &ShardLogs) -> u64 {
        logs.engine
            .lookup(NAME)
            .unwrap()
            .get()
            .unwrap()
            .collection
            .count(None)
            .unwrap()
    }

    async fn put_raw(objects: &Arc<dyn ObjectStore>, seq: u64, bytes: Vec<u8>) {
        let k = key(&prefix("c", "m", 0), seq);
        assert!(objects.put_if_absent(&k, Bytes::from(bytes)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deposed_owner_is_fenced_and_the_new_one_has_every_acknowledged_write() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects(dir.path());
        let (a, b) = (
            node(dir.path(), "a", &objects),
            node(dir.path(), "b", &objects),
        );
        let ca = copy(&a);
        let cb = copy(&b);
        let w = a.append(&ca, 1, write(0, 10)).await.unwrap();
        assert_eq!(w.log_sequence, 2, "a fence at 1, then the write");
        a.append(&ca, 1, write(10, 10)).await.unwrap();
        // b takes the shard over at epoch 2: it applies a's writes, then fences the log.
        b.append(&cb, 2, write(20, 5)).await.unwrap();
        assert_eq!(count(&b), 25);
        // a, deposed without knowing it, writes at epoch 1: its put lands on b's fence and
        // is refused as a stale route; nothing of it is in the log.
        let e = a.append(&ca, 1, write(100, 1)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(akidb_cluster::route::is_stale(&e), "{e:?}");
        assert_eq!(count(&a), 20);
        // As a follower it then applies what b wrote: the copies agree.
        a.try_catch_up(&ca).await.unwrap().unwrap();
        assert_eq!(count(&a), 25);
        assert_eq!(ca.applied(), cb.applied());
        assert_eq!(objects.list(&prefix("c", "m", 0)).await.unwrap().len(), 5);
    }

    /// A payload update by filter is logged as the payloads it gave, so a copy that applies
    /// it again after later writes (as after a crash, its saved place behind its state)
    /// ends where the owner is, not where the filter would take it now.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_payload_update_is_logged_resolved_and_applying_it_again_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects(dir.path());
        let (a, b) = (
            node(dir.path(), "a", &objects),
            node(dir.path(), "b", &objects),
        );
        let (ca, cb) = (copy(&a), copy(&b));
        a.append(&ca, 1, colored(0, 6, "blue")).await.unwrap();
        let blue = crate::filter::Filter {
            must: vec![crate::filter::Condition::Field {
                key: "color".into(),
                path: vec!["color".into()],
                matcher: crate::filter::Match::Keyword("blue".into()),
            }],
            ..Default::default()
        };
        let mut red = Payload::new();
        red.insert("color".into(), "red".into());
        let update =
            || Write::UpdatePayload(vec![], Some(blue.clone()), PayloadChange::Set(red.clone()));
        let w = a.append(&ca, 1, update()).await.unwrap();
        assert_eq!(w.points, 6);
        let after_update = w.log_sequence;
        // A blue point written afterwards: the filter would match it now.
        a.append(&ca, 1, colored(10, 1, "blue")).await.unwrap();
        // An update that finds nothing writes no entry.
        let none = Write::UpdatePayload(vec![PointKey::Num(99)], None, PayloadChange::Clear);
        let w = a.append(&ca, 1, none).await.unwrap();
        assert_eq!((w.points, w.log_sequence), (0, after_update + 1));
        b.try_catch_up(&cb).await.unwrap().unwrap();
        assert_eq!(colors(&a), colors(&b));
        assert!(colors(&a)[..6].iter().all(|(_, c)| c == "red"));
        assert_eq!(colors(&a)[6], (PointKey::Num(10), "blue".into()));
        // b applies the update and everything after it again.
        cb.set_applied(after_update - 1);
        b.try_catch_up(&cb).await.unwrap().unwrap();
        assert_eq!(
            colors(&b),
            colors(&a),
            "applying the log's tail again changed the copy"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_entry_stops_a_copy_and_an_invalid_one_is_skipped_by_every_copy() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects(dir.path());
        let a = node(dir.path(), "a", &objects);
        let ca = copy(&a);
        // Entry 1 upserts a point of the wrong dimension: every copy refuses it alike.
        let bad = pb::ShardLogEntry {
            epoch: 1,
            write_id: "w1".into(),
            op: Some(Op::Upsert(pb::UpsertRequest {
                collection: String::new(),
                points: vec![pb::Point {
                    id: Some(pb::PointId::num(1)),
                    vector: vec![1.0, 2.0, 3.0],
                    payload: None,
                    ..Default::default()
                }],
            })),
        };
        put_raw(&objects, 1, bad.encode_to_vec()).await;
        let good = pb::ShardLogEntry {
            epoch: 1,
            write_id: "w2".into(),
            op: Some(upsert(0, 3)),
        };
        put_raw(&objects, 2, good.encode_to_vec()).await;
        // Entry 3 is not a log entry at all.
        put_raw(&objects, 3, vec![0xff; 7]).await;
        let e = a.try_catch_up(&ca).await.unwrap().unwrap_err();
        assert_eq!(e.code(), tonic::Code::DataLoss, "{e:?}");
        assert!(e.message().contains("unreadable"), "{e:?}");
        assert_eq!(ca.applied(), 2, "stopped at the unreadable entry");
        assert_eq!(count(&a), 3, "the invalid entry skipped, the next applied");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_copy_starts_from_the_snapshot_and_the_cut_keeps_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects(dir.path());
        let a = node(dir.path(), "a", &objects);
        let ca = copy(&a);
        for i in 0..30 {
            a.append(&ca, 1, write(i * 40, 40)).await.unwrap();
        }
        let at = a.snapshot(&ca).await.unwrap();
        assert_eq!(at, 31);
        assert_eq!(a.cut(&ca, at).await.unwrap(), 30);
        let left = objects.list(&prefix("c", "m", 0)).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        a.append(&ca, 1, write(5_000, 7)).await.unwrap();
        assert_eq!(a.snapshot(&ca).await.unwrap(), 32);
        // A snapshot not newer than the pointer there (a former owner finishing late) is
        // refused: the pointer never goes back.
        let e = a.snapshot(&ca).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        let snaps = objects.list(&snapshot_prefix("c", "m", 0)).await.unwrap();
        assert!(
            snaps
                .iter()
                .all(|o| !o.key.contains("/00000000000000000031/")),
            "older snapshots deleted: {snaps:?}"
        );
        // A new copy: rebuilt from the snapshot (1,200 points, 3 parts), then the entries after.
        let b = node(dir.path(), "b", &objects);
        let cb = copy(&b);
        b.try_catch_up(&cb).await.unwrap().unwrap();
        assert_eq!(count(&b), 1_207);
        assert_eq!(cb.applied(), ca.applied());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_the_log_was_cut_past_without_a_newer_snapshot_does_not_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects(dir.path());
        let a = node(dir.path(), "a", &objects);
        let ca = copy(&a);
        for i in 0..10 {
            a.append(&ca, 1, write(i * 10, 10)).await.unwrap();
        }
        // b saw entries up to 3, then was away; the log was cut to 8 and the snapshot
        // pointer lost (standing for one a paused former owner put back to an older one).
        let b = node(dir.path(), "b", &objects);
        let cb = copy(&b);
        cb.set_applied(3);
        a.cut(&ca, 8).await.unwrap();
        let e = b.append(&cb, 2, write(500, 1)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(e.message().contains("cut past"), "{e:?}");
        // Nothing was written: the log still ends where a left it.
        let left = objects.list(&prefix("c", "m", 0)).await.unwrap();
        assert_eq!(left.len(), 4, "entries 8..=11: {left:?}");
        // With the snapshot there, b rebuilds from it and takes over.
        a.snapshot(&ca).await.unwrap();
        b.append(&cb, 2, write(500, 1)).await.unwrap();
        assert_eq!(count(&b), 101);
    }
}
