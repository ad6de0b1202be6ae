//! The cluster flags of a storage node. Without `--etcd` the node is alone (the default:
//! `akidb up` needs no etcd); with it, the node registers under `--node-id` on a lease.

use std::time::Duration;

use crate::etcd::{Etcd, EtcdError};
use crate::keys::valid_node_id;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// etcd endpoints (`http://host:port`, comma-separated). Unset: a single node, no etcd.
    #[arg(long = "etcd", env = "AKIDB_ETCD")]
    pub etcd: Option<String>,
    /// This node's id in the cluster (1 to 63 of a-z 0-9 - _ .): stable across restarts;
    /// required with --etcd.
    #[arg(long = "node-id", env = "AKIDB_NODE_ID")]
    pub node_id: Option<String>,
    /// The address other processes reach this node's gRPC server at (default: the address
    /// it listens on).
    #[arg(long = "advertise-addr", env = "AKIDB_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Seconds the node's lease lives without a keep-alive: how long a crashed or cut-off
    /// node still counts as a member.
    #[arg(
        long = "lease-ttl-secs",
        env = "AKIDB_LEASE_TTL_SECS",
        default_value_t = 10
    )]
    pub lease_ttl_secs: u64,
    /// Deadline of each etcd call, in milliseconds.
    #[arg(
        long = "etcd-timeout-ms",
        env = "AKIDB_ETCD_TIMEOUT_MS",
        default_value_t = 2_000
    )]
    pub etcd_timeout_ms: u64,
    /// Seconds a local copy of a shard this node no longer holds (moved away, or of a deleted
    /// collection) is kept before it is deleted.
    #[arg(
        long = "orphan-grace-secs",
        env = "AKIDB_ORPHAN_GRACE_SECS",
        default_value_t = 30
    )]
    pub orphan_grace_secs: u64,
    /// Log entries after which a shard's owner writes a snapshot of the shard to the object
    /// store and cuts the log behind it (new copies start from the snapshot). 0: never.
    #[arg(
        long = "shard-snapshot-entries",
        env = "AKIDB_SHARD_SNAPSHOT_ENTRIES",
        default_value_t = 10_000
    )]
    pub shard_snapshot_entries: u64,
}

/// The cluster flags of query and ingest: with `--etcd`, each collection's calls go to its
/// shards on the storage nodes registered there ([`crate::router::Router`]), not to
/// `--storage-addr`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RouterArgs {
    /// etcd endpoints (`http://host:port`, comma-separated) of a cluster of storage nodes.
    /// Unset: one storage node at --storage-addr.
    #[arg(long = "etcd", env = "AKIDB_ETCD")]
    pub etcd: Option<String>,
    /// Copies of each shard (1 to 5) of a collection created without `replication`.
    #[arg(
        long = "default-replication",
        env = "AKIDB_DEFAULT_REPLICATION",
        default_value_t = 1
    )]
    pub default_replication: u32,
    /// Milliseconds after which a read not yet answered by one copy of a shard is also sent
    /// to another copy (collections with replication 2 or more; the first answer wins; a
    /// follower may be a moment behind the owner). 0: never.
    #[arg(
        long = "hedge-after-ms",
        env = "AKIDB_HEDGE_AFTER_MS",
        default_value_t = 50
    )]
    pub hedge_after_ms: u64,
    /// Deadline of each etcd call, in milliseconds.
    #[arg(
        long = "etcd-timeout-ms",
        env = "AKIDB_ETCD_TIMEOUT_MS",
        default_value_t = 2_000
    )]
    pub etcd_timeout_ms: u64,
}

impl RouterArgs {
    /// `None` without `--etcd`; a router (its view of etcd watched until `stop`) with it.
    /// `key`: the internal key presented to storage; `timeout`: of one call to one shard.
    pub fn router(
        &self,
        key: Option<String>,
        timeout: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Option<std::sync::Arc<crate::router::Router>>> {
        let Some(endpoints) = self.etcd.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        if !akidb_proto::limits::REPLICATION.contains(&u64::from(self.default_replication)) {
            anyhow::bail!(
                "--default-replication {} is out of range: use 1 to 5",
                self.default_replication
            );
        }
        let etcd = Etcd::new(endpoints, Duration::from_millis(self.etcd_timeout_ms))?;
        akidb_instrumentation::metrics().cluster_enabled.set(1);
        let view = crate::view::ClusterView::start(etcd, stop);
        Ok(Some(std::sync::Arc::new(
            crate::router::Router::new(view, key, timeout)
                .with_default_replication(self.default_replication)
                .with_hedging(
                    (self.hedge_after_ms > 0).then(|| Duration::from_millis(self.hedge_after_ms)),
                ),
        )))
    }
}

/// What the flags ask for, checked.
pub struct ClusterConfig {
    pub etcd: Etcd,
    pub node_id: String,
    pub lease_ttl: Duration,
    pub orphan_grace: Duration,
    /// Entries between shard snapshots (0: none).
    pub snapshot_entries: u64,
}

impl ClusterArgs {
    /// `None` for a single node; an error a person can act on when the flags do not fit.
    pub fn config(&self) -> Result<Option<ClusterConfig>, String> {
        let Some(endpoints) = self.etcd.as_deref().filter(|e| !e.trim().is_empty()) else {
            if self.node_id.is_some() {
                return Err("--node-id is set but --etcd is not: a node id only means something in a cluster; set --etcd too or drop --node-id".into());
            }
            return Ok(None);
        };
        let node_id = self
            .node_id
            .clone()
            .ok_or("--etcd is set but --node-id is not: each storage node needs a stable id (e.g. --node-id storage-0)")?;
        valid_node_id(&node_id)?;
        if !(2..=300).contains(&self.lease_ttl_secs) {
            return Err(format!(
                "--lease-ttl-secs {} is out of range: use 2 to 300",
                self.lease_ttl_secs
            ));
        }
        if !(100..=60_000).contains(&self.etcd_timeout_ms) {
            return Err(format!(
                "--etcd-timeout-ms {} is out of range: use 100 to 60000",
                self.etcd_timeout_ms
            ));
        }
        if self.shard_snapshot_entries != 0 && self.shard_snapshot_entries < 10 {
            return Err(format!(
                "--shard-snapshot-entries {} is too small: use 10 or more (or 0 for no snapshots)",
                self.shard_snapshot_entries
            ));
        }
        let etcd = Etcd::new(endpoints, Duration::from_millis(self.etcd_timeout_ms))
            .map_err(|e: EtcdError| e.to_string())?;
        Ok(Some(ClusterConfig {
            etcd,
            node_id,
            lease_ttl: Duration::from_secs(self.lease_ttl_secs),
            orphan_grace: Duration::from_secs(self.orphan_grace_secs),
            snapshot_entries: self.shard_snapshot_entries,
        }))
    }
}
