//! `akidb cluster`: what etcd says about the cluster (nodes and their leases, shard maps).

use crate::global::{Global, emit, table};
use akidb_cluster::{Etcd, membership, shardmap};
use serde_json::json;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum ClusterCmd {
    /// Nodes (with their lease's time left) and every collection's shards: owner,
    /// followers, epoch, and each copy's applied log sequence (a follower's lag is the
    /// owner's minus its own).
    Status {
        /// etcd endpoints (`http://host:port`, comma-separated).
        #[arg(long = "etcd", env = "AKIDB_ETCD")]
        etcd: String,
    },
}

pub async fn run(g: &Global, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Status { etcd } => status(g, &etcd).await,
    }
}

async fn status(g: &Global, endpoints: &str) -> anyhow::Result<()> {
    let etcd = Etcd::new(endpoints, Duration::from_secs(3))?;
    let nodes = membership::nodes(&etcd).await?;
    let mut rows = Vec::with_capacity(nodes.len());
    for (n, lease) in nodes {
        // -1: the lease is gone (the key goes with it a moment later).
        let left = etcd.time_to_live(lease).await.unwrap_or(-1);
        rows.push((n, lease, left));
    }
    let maps = shardmap::load_all(&etcd).await?;
    // Each node's applied sequences, `"<map id>/<shard>"` → sequence.
    let (kvs, _) = etcd.list(akidb_cluster::keys::APPLIED).await?;
    let applied: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> = kvs
        .into_iter()
        .filter_map(|kv| {
            let node =
                String::from_utf8_lossy(&kv.key[akidb_cluster::keys::APPLIED.len()..]).into_owned();
            Some((node, serde_json::from_slice(&kv.value).ok()?))
        })
        .collect();
    let seq = |node: &str, map: &shardmap::ShardMap, shard: u32| -> Option<u64> {
        applied
            .get(node)?
            .get(&format!("{}/{shard}", map.id))
            .copied()
    };
    emit(
        g,
        json!({
            "nodes": rows.iter().map(|(n, lease, left)| json!({
                "id": n.id, "addr": n.addr, "started_ms": n.started_ms,
                "lease": format!("{lease:x}"), "lease_seconds_left": left,
            })).collect::<Vec<_>>(),
            "collections": maps.iter().map(|m| json!({
                "collection": m.value.collection,
                "replication": m.value.replication,
                "revision": m.revision,
                "shards": m.value.shards.iter().map(|s| json!({
                    "shard": s.id, "owner": s.owner, "followers": s.followers, "epoch": s.epoch,
                    "applied": s.owner.iter().chain(&s.followers).map(|n| (n.clone(), seq(n, &m.value, s.id))).collect::<std::collections::BTreeMap<_, _>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        || {
            let mut t = table(&["node", "address", "lease", "lease s left"]);
            for (n, lease, left) in &rows {
                t.add_row(vec![
                    n.id.clone(),
                    n.addr.clone(),
                    format!("{lease:x}"),
                    left.to_string(),
                ]);
            }
            for m in &maps {
                for s in &m.value.shards {
                    let at =
                        |n: &str| seq(n, &m.value, s.id).map_or("?".to_string(), |q| q.to_string());
                    t.add_row(vec![
                        format!("{}/{}", m.value.collection, s.id),
                        match &s.owner {
                            Some(o) => format!("owner {o} @{}", at(o)),
                            None => "owner NONE".into(),
                        },
                        format!("epoch {}", s.epoch),
                        format!(
                            "followers {}",
                            s.followers
                                .iter()
                                .map(|f| format!("{f} @{}", at(f)))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                    ]);
                }
            }
            t
        },
    );
    Ok(())
}
