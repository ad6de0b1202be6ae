//! A node's part in a cluster's data path: which routed calls it serves, and the copies of
//! shards it keeps in step.
//!
//! A call routed to shard `<collection>.<shard>` at an epoch is served only when the shard map
//! (the node's view of etcd, read again when the call names a newer epoch) says the same epoch
//! and that this node holds the shard (owns it, for a write); otherwise the answer is "stale
//! route" ([`akidb_cluster::route::stale`]) and the router reads the map again. A node that
//! does not hold its etcd lease (etcd unreachable, or the node was paused past its TTL) takes
//! no routed write: its shards may belong to another node by now.
//!
//! A write goes to the shard's log in the object store before it is applied and acknowledged
//! ([`crate::shardlog`]). Every copy of a shard on this node is kept in step by
//! [`ShardGate::keep_copies`]: a follower applies the log as it grows; an owner new at its
//! epoch catches up and fences the log before its first write. A node creates its copy of a
//! shard from the map's spec when the shard is first given to it.
//!
//! Membership (the node's key on a lease) is `akidb_cluster::membership`, started by
//! [`crate::service`]; the controller that changes the maps is `akidb_cluster::controller`.

use crate::convert::spec_from_pb;
use crate::engine::Engine;
use crate::error::StorageError;
use crate::shardlog::{Applied, ShardCursor, ShardLogs, Write};
use akidb_cluster::membership::{LeaseState, Membership};
use akidb_cluster::route::stale;
use akidb_cluster::shardmap::ShardMap;
use akidb_cluster::view::ClusterView;
use akidb_proto::limits;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// How often followers look for new log entries.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Shards kept in step at once.
const FOLLOW_CONCURRENCY: usize = 8;

/// Admits routed calls on a node of a cluster.
pub struct ShardGate {
    pub view: ClusterView,
    /// This node's id.
    pub node: String,
    pub engine: Arc<Engine>,
    /// The node's membership (set once it joined): a node without its lease takes no writes.
    pub membership: Arc<Mutex<Option<Membership>>>,
    /// The shards' logs in the object store.
    pub logs: Arc<ShardLogs>,
    /// How long a local copy of a shard this node no longer holds is kept
    /// (`--orphan-grace-secs`; the shard's log and its other copies hold its data).
    pub orphan_grace: Duration,
    /// Log entries between the snapshots an owner takes of its shards
    /// (`--shard-snapshot-entries`; 0: none, the log is never cut).
    pub snapshot_entries: u64,
}

/// A routed call this node serves: its copy of the shard, at the call's epoch.
pub struct Admitted {
    pub shard: Arc<ShardCursor>,
    pub epoch: u64,
}

impl ShardGate {
    fn lease_state(&self) -> Option<LeaseState> {
        self.membership
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map(Membership::state)
    }

    /// Whether a call routed to `name` at `epoch` may run here (`write`: it changes data);
    /// the node's copy of the shard (created when it has none yet).
    pub async fn admit(&self, name: &str, epoch: u64, write: bool) -> Result<Admitted, Status> {
        if write {
            let state = self.lease_state();
            if !matches!(state, Some(LeaseState::Held { .. })) {
                let why = match state {
                    Some(LeaseState::Joining { why } | LeaseState::Lost { why }) => why,
                    _ => "not joined yet".into(),
                };
                return Err(Status::unavailable(format!(
                    "storage node `{}` holds no etcd lease ({why}): it takes no writes until it does, since its shards may have been given to another node meanwhile",
                    self.node
                )));
            }
        }
        let Ok(Some((collection, shard))) = limits::check_local_name(name) else {
            return Err(Status::invalid_argument(format!(
                "`{}` is not a shard's name (<collection>.<shard>); a routed call names one",
                name.escape_default()
            )));
        };
        let mut map = self.view.map(collection);
        let behind = map
            .as_ref()
            .and_then(|m| m.value.shard(shard))
            .is_none_or(|s| s.epoch < epoch);
        if behind {
            map = self.view.refresh_map(collection).await.map_err(|e| {
                Status::unavailable(format!(
                    "this storage node cannot read the shard map of `{collection}` from etcd: {e}"
                ))
            })?;
        }
        let Some(map) = map else {
            return Err(stale(format!(
                "collection `{collection}` has no shard map in etcd (deleted?)"
            )));
        };
        let Some(s) = map.value.shard(shard) else {
            return Err(Status::invalid_argument(format!(
                "collection `{collection}` has {} shards, not a shard {shard}",
                map.value.shards.len()
            )));
        };
        if s.epoch != epoch {
            return Err(stale(format!(
                "shard {shard} of `{collection}` is at epoch {} (owner {}); the call was routed at epoch {epoch}",
                s.epoch,
                s.owner.as_deref().unwrap_or("none")
            )));
        }
        let owner = s.owner.as_deref() == Some(self.node.as_str());
        if !(owner || (!write && s.followers.contains(&self.node))) {
            return Err(stale(format!(
                "storage node `{}` does not {} shard {shard} of `{collection}` at epoch {epoch} (owner {})",
                self.node,
                if write { "own" } else { "hold" },
                s.owner.as_deref().unwrap_or("none")
            )));
        }
        let shard = self.copy(name, shard, &map.value).await?;
        Ok(Admitted { shard, epoch })
    }

    /// The cursor of this node's copy `name` of shard `shard` of `map`; the copy is created
    /// from the map's spec when missing (or of an older incarnation: see
    /// [`ShardLogs::cursor`]).
    async fn copy(
        &self,
        name: &str,
        shard: u32,
        map: &ShardMap,
    ) -> Result<Arc<ShardCursor>, Status> {
        if let Some(c) = self.logs.get(name, &map.id)
            && self.engine.slot(name).is_ok()
        {
            // Every routed call after the first: no spec to decode, no blocking pool.
            return Ok(c);
        }
        let mut spec = map.spec().map_err(|e| {
            Status::internal(format!(
                "the shard map of `{}` holds no readable collection spec: {e}",
                map.collection
            ))
        })?;
        spec.name = name.to_string();
        spec.shards = 0;
        spec.replication = 0;
        let spec = spec_from_pb(&spec)?;
        let (logs, engine) = (self.logs.clone(), self.engine.clone());
        let (name, collection, map_id) = (name.to_string(), map.collection.clone(), map.id.clone());
        Ok(crate::engine::blocking(move || {
            let cursor = logs.cursor(&name, &collection, shard, &map_id)?;
            if engine.slot(&name).is_err() {
                match engine.create(spec) {
                    Ok(_) => tracing::info!(shard = %name, "created this node's copy of a shard"),
                    // Created by a call that came at the same time.
                    Err(StorageError::CollectionExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(cursor)
        })
        .await?)
    }

    /// A routed write, admitted: checked, written to the shard's log, applied here.
    pub async fn write(
        &self,
        admitted: &Admitted,
        name: &str,
        write: Write,
    ) -> Result<Applied, Status> {
        let write = match write {
            Write::Op(op) => {
                let engine = self.engine.clone();
                let n = name.to_string();
                Write::Op(
                    crate::engine::blocking(move || {
                        let coll = engine.lookup(&n)?.get()?.collection;
                        crate::shardlog::check(&*coll, &op)?;
                        Ok(op)
                    })
                    .await?,
                )
            }
            Write::UpdateVectors(updates) => {
                let engine = self.engine.clone();
                let n = name.to_string();
                Write::UpdateVectors(
                    crate::engine::blocking(move || {
                        let coll = engine.lookup(&n)?.get()?.collection;
                        crate::validate::vector_updates(coll.spec(), &updates)?;
                        Ok(updates)
                    })
                    .await?,
                )
            }
            w => w,
        };
        self.logs
            .append(&admitted.shard, admitted.epoch, write)
            .await
    }

    /// Keep every copy of a shard this node holds in step with its log until `stop`: every
    /// [`FOLLOW_EVERY`], a follower applies new entries and an owner new at its epoch takes
    /// the shard over (catch up, fence); every second the applied sequences are saved and
    /// published in etcd (`/akidb/applied/<node>`, on the node's lease) for the controller
    /// and `akidb cluster status`.
    pub async fn keep_copies(self: Arc<Self>, stop: CancellationToken) {
        let mut saved_at = Instant::now();
        let mut published: Option<(i64, Vec<u8>)> = None;
        let errors: Mutex<HashMap<String, String>> = Default::default();
        let mut orphans: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            if !self.view.synced() {
                continue;
            }
            let lease = match self.lease_state() {
                Some(LeaseState::Held { lease }) => Some(lease),
                _ => None,
            };
            let mut work = Vec::new();
            let mut held = std::collections::HashSet::new();
            for map in self.view.maps() {
                for s in &map.value.shards {
                    let owner = s.owner.as_deref() == Some(self.node.as_str());
                    if owner || s.followers.contains(&self.node) {
                        held.insert(limits::shard_name(&map.value.collection, s.id));
                        work.push((map.clone(), s.id, s.epoch, owner));
                    }
                }
            }
            let errors = &errors;
            futures::stream::iter(work)
                .for_each_concurrent(FOLLOW_CONCURRENCY, |(map, id, epoch, owner)| {
                    let this = self.clone();
                    async move {
                        let name = limits::shard_name(&map.value.collection, id);
                        let r = async {
                            let shard = this.copy(&name, id, &map.value).await?;
                            let step = if owner {
                                if lease.is_none() {
                                    return Ok(());
                                }
                                let r = this.logs.try_take_over(&shard, epoch).await;
                                if matches!(r, Some(Ok(()))) {
                                    this.snapshot_or_cut(&map.value, id, &shard);
                                }
                                r
                            } else {
                                this.logs.try_catch_up(&shard).await
                            };
                            step.unwrap_or(Ok(()))
                        }
                        .await;
                        let mut errors = errors.lock().expect("not poisoned");
                        match r {
                            Ok(()) => {
                                if errors.remove(&name).is_some() {
                                    tracing::info!(shard = %name, "this node's copy of the shard is in step with its log again");
                                }
                            }
                            Err(e) => {
                                let msg = e.message().to_string();
                                if errors.get(&name) != Some(&msg) {
                                    tracing::warn!(shard = %name, owner, error = %msg, "keeping this node's copy of the shard in step failed; retrying");
                                    errors.insert(name, msg);
                                }
                            }
                        }
                    }
                })
                .await;
            if saved_at.elapsed() >= Duration::from_secs(1) {
                saved_at = Instant::now();
                let logs = self.logs.clone();
                let _ = crate::engine::blocking(move || {
                    logs.save();
                    Ok(())
                })
                .await;
                if let Some(lease) = lease {
                    published = self.publish(lease, published).await;
                }
                if self.view.etcd_reachable() {
                    self.remove_orphans(&held, &mut orphans).await;
                } else {
                    orphans.clear();
                }
            }
        }
        self.logs.save();
    }

    /// As the owner of shard `id` of `map`, in the background unless one is running: take a
    /// snapshot every `snapshot_entries` entries, else cut the log behind the latest one as
    /// far as [`Self::cut_floor`] allows.
    fn snapshot_or_cut(self: &Arc<Self>, map: &ShardMap, id: u32, shard: &Arc<ShardCursor>) {
        if self.snapshot_entries == 0 {
            return;
        }
        let job = if shard.snapshot_due(self.snapshot_entries) {
            None
        } else if shard.snapshot_at() <= shard.cut_at() {
            return; // nothing behind the latest snapshot left to cut
        } else {
            match self.cut_floor(map, id, shard.snapshot_at()) {
                Some(upto) if upto > shard.cut_at() => Some(upto),
                _ => return,
            }
        };
        if !shard.begin() {
            return;
        }
        let (logs, shard) = (self.logs.clone(), shard.clone());
        tokio::spawn(async move {
            match job {
                None => {
                    let _ = logs.snapshot(&shard).await;
                }
                Some(upto) => {
                    if let Err(e) = logs.cut(&shard, upto).await {
                        tracing::warn!(shard = %shard.name(), error = %e.message(), "cutting the shard's log behind its snapshot failed; retrying");
                    }
                }
            }
            shard.end();
        });
    }

    /// How far the log of shard `id` of `map` may be cut behind a snapshot at `snapshot`: to
    /// the lowest sequence applied by every node that published one for the shard (its
    /// copies, and copies no longer held but not yet deleted), and only once every copy in
    /// the map has published one. A copy away meanwhile (not publishing) finds the log cut
    /// when it returns and starts from the snapshot.
    fn cut_floor(&self, map: &ShardMap, id: u32, snapshot: u64) -> Option<u64> {
        let applied = self.view.applied(map);
        let s = map.shard(id)?;
        let mut upto = snapshot;
        for copy in s.owner.iter().chain(&s.followers) {
            upto = upto.min(*applied.get(&(id, copy.clone()))?);
        }
        for ((sh, _), a) in &applied {
            if *sh == id {
                upto = upto.min(*a);
            }
        }
        Some(upto)
    }

    /// Delete the local copies of shards this node has not held for `orphan_grace`: moved
    /// away (failover, drain) or of a collection deleted while the node was away (then its
    /// log goes too).
    async fn remove_orphans(
        &self,
        held: &std::collections::HashSet<String>,
        orphans: &mut HashMap<String, Instant>,
    ) {
        let now = Instant::now();
        let names = self.engine.names();
        orphans.retain(|n, _| names.contains(n) && !held.contains(n));
        for name in names {
            let Ok(Some((collection, _))) = limits::check_local_name(&name) else {
                continue;
            };
            if held.contains(&name) {
                continue;
            }
            let since = *orphans.entry(name.clone()).or_insert(now);
            if now.duration_since(since) < self.orphan_grace {
                continue;
            }
            orphans.remove(&name);
            let gone = self.view.map(collection).is_none();
            let engine = self.engine.clone();
            let n = name.clone();
            match crate::engine::blocking(move || engine.delete(&n)).await {
                Ok(()) | Err(StorageError::CollectionNotFound(_)) => {
                    self.logs.forget(&name, gone);
                    akidb_instrumentation::metrics().forget_collection(&name);
                    tracing::info!(shard = %name, collection_deleted = gone, "deleted this node's copy of a shard it no longer holds");
                }
                Err(e) => {
                    tracing::warn!(shard = %name, error = %e, "deleting this node's copy of a shard it no longer holds failed; retrying later")
                }
            }
        }
    }

    /// Write the applied sequences to etcd when they (or the lease) changed; what is there now.
    async fn publish(&self, lease: i64, last: Option<(i64, Vec<u8>)>) -> Option<(i64, Vec<u8>)> {
        let applied: std::collections::BTreeMap<String, u64> = self
            .logs
            .applied_all()
            .into_iter()
            .filter_map(|((map_id, name), seq)| {
                let (_, shard) = limits::check_local_name(&name).ok()??;
                Some((format!("{map_id}/{shard}"), seq))
            })
            .collect();
        let value = serde_json::to_vec(&applied).expect("serializes");
        if last.as_ref() == Some(&(lease, value.clone())) {
            return last;
        }
        match self
            .view
            .etcd()
            .put(
                &akidb_cluster::keys::applied(&self.node),
                value.clone(),
                lease,
            )
            .await
        {
            Ok(_) => Some((lease, value)),
            Err(e) => {
                tracing::debug!(error = %e, "publishing the applied log sequences failed; retrying");
                last
            }
        }
    }
}

/// The object holding the id of the object store a cluster's nodes share.
const STORE_ID_KEY: &str = "cluster/store-id";

/// Check that this node's object store is the one the cluster's other nodes use: the shards'
/// logs are there, so a node with a store of its own would take writes no other node can
/// see. The first node marks the store with a random id and records it in etcd; every node
/// compares. A store or etcd that does not answer skips the check (logged): the node starts
/// and its writes fail until the store answers anyway.
pub async fn check_shared_store(
    store: &dyn crate::objstore::ObjectStore,
    etcd: &akidb_cluster::Etcd,
) -> anyhow::Result<()> {
    let mark = uuid::Uuid::new_v4().simple().to_string();
    let here = async {
        store
            .put_if_absent(STORE_ID_KEY, bytes::Bytes::from(mark.clone()))
            .await?;
        let b = store.get(STORE_ID_KEY).await?;
        Ok::<_, crate::objstore::ObjectStoreError>(String::from_utf8_lossy(&b).into_owned())
    };
    let here = match here.await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the object store's id: the check that every node shares one store is skipped");
            return Ok(());
        }
    };
    let key = akidb_cluster::keys::STORE;
    let cluster = match etcd.swap(key, 0, here.clone().into_bytes(), 0).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(Some(kv))) => String::from_utf8_lossy(&kv.value).into_owned(),
        Ok(Err(None)) => return Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the cluster's object store id from etcd: the check that every node shares one store is skipped");
            return Ok(());
        }
    };
    if cluster != here {
        anyhow::bail!(
            "this node's object store ({}) is not the one the cluster's nodes share (its id is {here}, the cluster's {cluster}): every storage node of a cluster must use the same store (one S3 bucket, or --object-dir on a shared file system), since the shards' logs are there",
            store.describe()
        );
    }
    Ok(())
}
