//! The controller: one storage node at a time, elected through `/akidb/controller` on its
//! lease, keeps every shard map whole as nodes come and go. Every second it compares each map
//! with the registered nodes and, by compare-and-swap on the map's revision:
//!
//! - gives a shard whose owner is gone to its most caught-up live follower (epoch + 1; the
//!   new owner catches up from the shard's log and fences it before its first write);
//! - gives a shard with no owner and no live follower to any live node (the log in the object
//!   store holds every acknowledged write, so any node can rebuild it);
//! - drops followers that are gone and adds live nodes as followers until each shard has its
//!   replication (a returning node comes back this way);
//! - moves shards off drained nodes (`akidb cluster drain`): a drained owner's shard goes to a
//!   follower once it is caught up (one is added first when there is none), so writes pause
//!   only for the new owner's last catch-up and fence;
//! - moves copies to where rendezvous hashing places them over the eligible nodes (a new
//!   node gets its share, one move per node at a time): the new copy follows first, and the
//!   copy it replaces leaves once it has caught up (an owner hands over as in a drain).
//!
//! When the controller's node goes, its key goes with its lease and another node takes over
//! within a second or two. Two controllers at once (a paused one that has not noticed) are
//! harmless: each change is a compare-and-swap, so one of two conflicting changes fails.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::etcd::EtcdError;
use crate::keys;
use crate::membership::LeaseState;
use crate::shardmap::{self, Repair};
use crate::view::ClusterView;
use akidb_instrumentation::metrics;

/// How often the controller looks at the maps.
pub const EVERY: Duration = Duration::from_secs(1);

/// Run for/as the controller on node `node` until `stop`.
pub async fn run(
    view: ClusterView,
    node: String,
    lease: watch::Receiver<LeaseState>,
    stop: CancellationToken,
) {
    let mut leading = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let held = match &*lease.borrow() {
            LeaseState::Held { lease } => Some(*lease),
            _ => None,
        };
        let now = match held {
            Some(l) if view.synced() && view.etcd_reachable() => {
                match campaign(&view, &node, l).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!(error = %e, "controller election: etcd did not answer");
                        false
                    }
                }
            }
            _ => false,
        };
        if now != leading {
            if now {
                tracing::info!(node = %node, "this node is the cluster's controller now");
            } else {
                tracing::info!(node = %node, "this node is no longer the cluster's controller");
            }
            leading = now;
            metrics().cluster_controller.set(i64::from(now));
        }
        if leading {
            tend(&view).await;
        }
    }
    metrics().cluster_controller.set(0);
}

/// Whether `node` holds (or just took) the controller key on `lease`.
async fn campaign(view: &ClusterView, node: &str, lease: i64) -> Result<bool, EtcdError> {
    let etcd = view.etcd();
    match etcd.get(keys::CONTROLLER).await? {
        Some(kv) => Ok(kv.value == node.as_bytes() && kv.lease == lease),
        None => Ok(etcd
            .swap(keys::CONTROLLER, 0, node.as_bytes().to_vec(), lease)
            .await?
            .is_ok()),
    }
}

/// One round over every map.
async fn tend(view: &ClusterView) {
    let live: BTreeSet<String> = view.nodes().into_iter().map(|n| n.id).collect();
    let drained = view.drained();
    let eligible: BTreeSet<String> = live.difference(&drained).cloned().collect();
    let m = metrics();
    let mut without_owner = 0i64;
    let mut lag = 0u64;
    for held in view.maps() {
        let applied = view.applied(&held.value);
        let mut map = held.value.clone();
        let takeovers = map.fail_over(&live, &applied);
        let mut repairs = map.drain(&drained, &eligible, &applied);
        repairs.extend(map.repair(&eligible));
        repairs.extend(map.balance(&eligible, &applied));
        if !(takeovers.is_empty() && repairs.is_empty()) {
            match shardmap::swap(view.etcd(), &map, held.revision).await {
                Ok(Ok(_)) => {
                    for t in &takeovers {
                        tracing::warn!(collection = %map.collection, shard = t.shard, from = ?t.from, to = ?t.to, epoch = t.epoch, "shard owner gone: failed over");
                        m.cluster_map_changes.with_label_values(&["failover"]).inc();
                    }
                    for r in &repairs {
                        let kind = match r {
                            Repair::Dropped { .. } => "dropped",
                            Repair::Owner { .. } => "owner",
                            Repair::Follower { .. } => "follower",
                            Repair::Moved { .. } => "moved",
                            Repair::Left { .. } => "left",
                        };
                        tracing::info!(collection = %map.collection, change = ?r, "shard map repaired");
                        m.cluster_map_changes.with_label_values(&[kind]).inc();
                    }
                    let _ = view.refresh_map(&map.collection).await;
                }
                Ok(Err(_)) => {
                    tracing::debug!(collection = %map.collection, "shard map changed meanwhile; next round");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(collection = %map.collection, error = %e, "writing a repaired shard map failed; next round");
                    continue;
                }
            }
        }
        for s in &map.shards {
            let Some(owner) = &s.owner else {
                without_owner += 1;
                continue;
            };
            let head = applied.get(&(s.id, owner.clone())).copied().unwrap_or(0);
            for f in &s.followers {
                let at = applied.get(&(s.id, f.clone())).copied().unwrap_or(0);
                lag = lag.max(head.saturating_sub(at));
            }
        }
    }
    m.cluster_shards_without_owner.set(without_owner);
    m.cluster_follower_lag.set(lag as i64);
}
