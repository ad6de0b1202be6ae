//! A node's part in a cluster's data path: which routed calls it serves. A call routed to
//! shard `<collection>.<shard>` at an epoch is served only when the shard map (the node's
//! view of etcd, read again when the call names a newer epoch) says the same epoch and that
//! this node holds the shard (owns it, for a write); otherwise the answer is "stale route"
//! ([`akidb_cluster::route::stale`]) and the router reads the map again. The node creates its
//! copy of a shard from the map's spec on the first call routed to it (the gate gives the
//! spec; [`crate::server`] creates it). A node that does not hold its etcd lease (etcd
//! unreachable, or the node was paused past its TTL) takes no routed write: its shards may
//! belong to another node by now.
//!
//! Membership (the node's key on a lease) is `akidb_cluster::membership`, started by
//! [`crate::service`].

use crate::convert::spec_from_pb;
use crate::engine::Engine;
use crate::model::CollectionSpec;
use akidb_cluster::membership::{LeaseState, Membership};
use akidb_cluster::route::stale;
use akidb_cluster::view::ClusterView;
use akidb_proto::limits;
use std::sync::{Arc, Mutex};
use tonic::Status;

/// Admits routed calls on a node of a cluster.
pub struct ShardGate {
    pub view: ClusterView,
    /// This node's id.
    pub node: String,
    pub engine: Arc<Engine>,
    /// The node's membership (set once it joined): a node without its lease takes no writes.
    pub membership: Arc<Mutex<Option<Membership>>>,
}

impl ShardGate {
    /// Whether a call routed to `name` at `epoch` may run here (`write`: it changes data);
    /// `Some(spec)` when this node has no copy of the shard yet and must create it first.
    pub async fn admit(
        &self,
        name: &str,
        epoch: u64,
        write: bool,
    ) -> Result<Option<CollectionSpec>, Status> {
        if write {
            let state = self
                .membership
                .lock()
                .expect("not poisoned")
                .as_ref()
                .map(Membership::state);
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
        if self.engine.slot(name).is_err() {
            let mut spec = map.value.spec().map_err(|e| {
                Status::internal(format!(
                    "the shard map of `{collection}` holds no readable collection spec: {e}"
                ))
            })?;
            spec.name = name.to_string();
            spec.shards = 0;
            return Ok(Some(spec_from_pb(&spec)?));
        }
        Ok(None)
    }
}
