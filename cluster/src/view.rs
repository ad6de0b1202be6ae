//! What a process knows of the cluster: the registered nodes and every shard map, kept by one
//! etcd watch of `/akidb/` (listed first, then followed; re-listed after a compaction).
//!
//! Readers get the last state seen without waiting on etcd; when etcd stops answering, the
//! view keeps what it had and says since when it has not heard from etcd
//! ([`ClusterView::stale_for`]; etcd is asked every second, `akidb_cluster_etcd_reachable`). A caller that learns of a newer shard map than the view holds
//! (a storage node answering "stale route") asks for it with [`ClusterView::refresh_map`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::etcd::{Etcd, EtcdError, EventType, KeyValue, WatchUpdate};
use crate::keys;
use crate::membership::NodeInfo;
use crate::shardmap::{self, ShardMap, Versioned};

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeInfo>,
    /// Shared, not copied, with every call routed by them.
    maps: BTreeMap<String, Arc<Versioned<ShardMap>>>,
    /// Each node's applied log sequence of each shard copy it holds (`"<map id>/<shard>"`).
    applied: BTreeMap<String, BTreeMap<String, u64>>,
    /// Drain markers: node id → the `started_ms` of the process being drained.
    drain: BTreeMap<String, u64>,
    /// Alias → collection, and the revision of the key they came from (0: none yet).
    aliases: Arc<Versioned<BTreeMap<String, String>>>,
    /// Whether the first listing arrived.
    synced: bool,
    /// When etcd last answered the watch (a listing, events, or a progress notice).
    heard: Option<Instant>,
}

/// etcd not heard from for this long counts as unreachable: writes stop, reads are flagged
/// stale.
pub const ETCD_SILENCE: Duration = Duration::from_secs(3);

/// The cluster as one etcd watch sees it; cheap to clone.
#[derive(Clone)]
pub struct ClusterView {
    etcd: Etcd,
    state: Arc<RwLock<State>>,
}

impl ClusterView {
    /// Start watching; the view is empty until the first listing ([`Self::synced`]).
    /// The watch ends when `stop` is cancelled.
    pub fn start(etcd: Etcd, stop: CancellationToken) -> ClusterView {
        let view = ClusterView {
            etcd: etcd.clone(),
            state: Default::default(),
        };
        let mut rx = etcd.watch("/akidb/", stop.clone());
        let v = view.clone();
        tokio::spawn(async move {
            while let Some(update) = rx.recv().await {
                v.apply(update);
            }
        });
        // A watch hears nothing while nothing changes: ask etcd something every second.
        let v = view.clone();
        tokio::spawn(async move {
            loop {
                let ask =
                    tokio::time::timeout(Duration::from_secs(1), v.etcd.get(crate::keys::NODES));
                let answered = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = ask => matches!(r, Ok(Ok(_))),
                };
                if answered {
                    v.state.write().expect("not poisoned").heard = Some(Instant::now());
                }
                akidb_instrumentation::metrics()
                    .cluster_etcd_reachable
                    .set(v.etcd_reachable() as i64);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        view
    }

    /// Whether etcd answered within the last [`ETCD_SILENCE`].
    pub fn etcd_reachable(&self) -> bool {
        self.stale_for().is_some_and(|d| d < ETCD_SILENCE)
    }

    fn apply(&self, update: WatchUpdate) {
        let mut s = self.state.write().expect("not poisoned");
        match update {
            WatchUpdate::Listed { kvs, .. } => {
                s.nodes.clear();
                s.maps.clear();
                s.applied.clear();
                s.drain.clear();
                s.aliases = Default::default();
                for kv in kvs {
                    put(&mut s, kv);
                }
                s.synced = true;
            }
            WatchUpdate::Changed { events, .. } => {
                for e in events {
                    let Some(kv) = e.kv else { continue };
                    if e.r#type == EventType::Delete as i32 {
                        remove(&mut s, &kv.key);
                    } else {
                        put(&mut s, kv);
                    }
                }
            }
        }
        s.heard = Some(Instant::now());
    }

    /// The etcd client the view watches with.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Whether the first listing arrived.
    pub fn synced(&self) -> bool {
        self.state.read().expect("not poisoned").synced
    }

    /// How long since etcd last answered the watch (`None` before the first listing).
    pub fn stale_for(&self) -> Option<Duration> {
        self.state
            .read()
            .expect("not poisoned")
            .heard
            .map(|t| t.elapsed())
    }

    /// Every registered node, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let s = self.state.read().expect("not poisoned");
        s.nodes.values().cloned().collect()
    }

    /// Node `id`, if registered.
    pub fn node(&self, id: &str) -> Option<NodeInfo> {
        self.state
            .read()
            .expect("not poisoned")
            .nodes
            .get(id)
            .cloned()
    }

    /// `collection`'s shard map, if it has one.
    pub fn map(&self, collection: &str) -> Option<Arc<Versioned<ShardMap>>> {
        self.state
            .read()
            .expect("not poisoned")
            .maps
            .get(collection)
            .cloned()
    }

    /// The collection alias `name` names, if it is an alias.
    pub fn alias(&self, name: &str) -> Option<String> {
        let s = self.state.read().expect("not poisoned");
        s.aliases.value.get(name).cloned()
    }

    /// Every alias, with the revision of the key it came from.
    pub fn aliases(&self) -> Arc<Versioned<BTreeMap<String, String>>> {
        self.state.read().expect("not poisoned").aliases.clone()
    }

    /// Keep `aliases` (read from etcd at `revision`) unless the view holds newer ones.
    pub fn keep_aliases(&self, aliases: BTreeMap<String, String>, revision: i64) {
        let mut s = self.state.write().expect("not poisoned");
        set_aliases(&mut s, aliases, revision);
    }

    /// Every shard map, by collection name.
    pub fn maps(&self) -> Vec<Arc<Versioned<ShardMap>>> {
        let s = self.state.read().expect("not poisoned");
        s.maps.values().cloned().collect()
    }

    /// The registered nodes being drained (a marker naming the process registered now).
    pub fn drained(&self) -> std::collections::BTreeSet<String> {
        let s = self.state.read().expect("not poisoned");
        s.drain
            .iter()
            .filter(|(id, started)| s.nodes.get(*id).is_some_and(|n| n.started_ms == **started))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The applied log sequence of every copy of `map`'s shards, by `(shard, node)`, as the
    /// nodes last published them (at most a second old).
    pub fn applied(&self, map: &ShardMap) -> BTreeMap<(u32, String), u64> {
        let s = self.state.read().expect("not poisoned");
        let mut out = BTreeMap::new();
        for (node, seqs) in &s.applied {
            for sh in &map.shards {
                if let Some(seq) = seqs.get(&format!("{}/{}", map.id, sh.id)) {
                    out.insert((sh.id, node.clone()), *seq);
                }
            }
        }
        out
    }

    /// `collection`'s shard map read from etcd now (not the watch), kept in the view when it is
    /// newer than the one held.
    pub async fn refresh_map(
        &self,
        collection: &str,
    ) -> Result<Option<Arc<Versioned<ShardMap>>>, EtcdError> {
        let fresh = shardmap::load(&self.etcd, collection).await?.map(Arc::new);
        let mut s = self.state.write().expect("not poisoned");
        match &fresh {
            Some(m) => {
                let newer = s
                    .maps
                    .get(collection)
                    .is_none_or(|held| held.revision < m.revision);
                if newer {
                    s.maps.insert(collection.to_string(), m.clone());
                }
            }
            None => {
                s.maps.remove(collection);
            }
        }
        Ok(fresh)
    }
}

fn set_aliases(s: &mut State, aliases: BTreeMap<String, String>, revision: i64) {
    if s.aliases.revision <= revision {
        s.aliases = Arc::new(Versioned {
            value: aliases,
            revision,
        });
    }
}

fn put(s: &mut State, kv: KeyValue) {
    let key = String::from_utf8_lossy(&kv.key).into_owned();
    if key == keys::ALIASES {
        match serde_json::from_slice(&kv.value) {
            Ok(a) => set_aliases(s, a, kv.mod_revision),
            Err(e) => tracing::warn!(key, error = %e, "unreadable aliases; ignored"),
        }
    } else if let Some(id) = key.strip_prefix(keys::NODES) {
        match serde_json::from_slice::<NodeInfo>(&kv.value) {
            Ok(n) => {
                s.nodes.insert(id.to_string(), n);
            }
            Err(e) => tracing::warn!(key, error = %e, "unreadable node key; ignored"),
        }
    } else if let Some(name) = key.strip_prefix(keys::SHARD_MAPS) {
        match shardmap::decode(name, &kv.value) {
            Ok(m) => {
                // Never go back to an older map (a refresh may have brought a newer one).
                let older = s
                    .maps
                    .get(name)
                    .is_some_and(|held| held.revision > kv.mod_revision);
                if !older {
                    s.maps.insert(
                        name.to_string(),
                        Arc::new(Versioned {
                            value: m,
                            revision: kv.mod_revision,
                        }),
                    );
                }
            }
            Err(e) => tracing::warn!(key, error = %e, "unreadable shard map; ignored"),
        }
    } else if let Some(node) = key.strip_prefix(keys::DRAIN) {
        match serde_json::from_slice(&kv.value) {
            Ok(started) => {
                s.drain.insert(node.to_string(), started);
            }
            Err(e) => tracing::warn!(key, error = %e, "unreadable drain marker; ignored"),
        }
    } else if let Some(node) = key.strip_prefix(keys::APPLIED) {
        match serde_json::from_slice(&kv.value) {
            Ok(a) => {
                s.applied.insert(node.to_string(), a);
            }
            Err(e) => tracing::warn!(key, error = %e, "unreadable applied sequences; ignored"),
        }
    }
}

fn remove(s: &mut State, key: &[u8]) {
    let key = String::from_utf8_lossy(key);
    if key == keys::ALIASES {
        s.aliases = Default::default();
    } else if let Some(id) = key.strip_prefix(keys::NODES) {
        s.nodes.remove(id);
    } else if let Some(name) = key.strip_prefix(keys::SHARD_MAPS) {
        s.maps.remove(name);
    } else if let Some(node) = key.strip_prefix(keys::APPLIED) {
        s.applied.remove(node);
    } else if let Some(node) = key.strip_prefix(keys::DRAIN) {
        s.drain.remove(node);
    }
}
