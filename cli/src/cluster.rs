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
    /// Move every shard off a storage node (before stopping it): the controller hands each
    /// shard it owns to a follower once that one has caught up, and gives its copies to other
    /// nodes. Applies to the node's running process only: once restarted it takes shards again.
    Drain {
        /// The node's id (default: `AKIDB_NODE_ID`, as a storage node's own preStop hook has it).
        #[arg(env = "AKIDB_NODE_ID")]
        node: String,
        /// Wait until the node holds no shard, at most this many seconds (0: do not wait).
        #[arg(long, default_value_t = 0)]
        wait_secs: u64,
        /// etcd endpoints (`http://host:port`, comma-separated).
        #[arg(long = "etcd", env = "AKIDB_ETCD")]
        etcd: String,
    },
    /// Stop draining a node: it takes shards again.
    Undrain {
        /// The node's id.
        node: String,
        /// etcd endpoints (`http://host:port`, comma-separated).
        #[arg(long = "etcd", env = "AKIDB_ETCD")]
        etcd: String,
    },
}

pub async fn run(g: &Global, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Status { etcd } => status(g, &etcd).await,
        ClusterCmd::Drain {
            node,
            wait_secs,
            etcd,
        } => drain(g, &etcd, &node, wait_secs).await,
        ClusterCmd::Undrain { node, etcd } => {
            let etcd = Etcd::new(&etcd, Duration::from_secs(3))?;
            let removed = etcd.delete(&akidb_cluster::keys::drain(&node)).await?;
            emit(g, json!({"node": node, "undrained": removed}), || {
                let mut t = table(&["node", "drain"]);
                t.add_row(vec![
                    node.clone(),
                    if removed {
                        "removed"
                    } else {
                        "was not drained"
                    }
                    .to_string(),
                ]);
                t
            });
            Ok(())
        }
    }
}

/// The shards (`collection/shard`) node `id` owns or follows.
fn held_by(maps: &[shardmap::Versioned<shardmap::ShardMap>], id: &str) -> Vec<String> {
    maps.iter()
        .flat_map(|m| {
            m.value
                .shards
                .iter()
                .filter(move |s| {
                    s.owner.as_deref() == Some(id) || s.followers.iter().any(|f| f == id)
                })
                .map(move |s| format!("{}/{}", m.value.collection, s.id))
        })
        .collect()
}

async fn drain(g: &Global, endpoints: &str, id: &str, wait_secs: u64) -> anyhow::Result<()> {
    let etcd = Etcd::new(endpoints, Duration::from_secs(3))?;
    let Some((node, _)) = membership::nodes(&etcd)
        .await?
        .into_iter()
        .find(|(n, _)| n.id == id)
    else {
        anyhow::bail!(
            "storage node `{id}` is not registered in etcd (`akidb cluster status` lists the nodes)"
        );
    };
    etcd.put(
        &akidb_cluster::keys::drain(id),
        serde_json::to_vec(&node.started_ms)?,
        0,
    )
    .await?;
    let start = std::time::Instant::now();
    let mut held = held_by(&shardmap::load_all(&etcd).await?, id);
    while !held.is_empty() && start.elapsed() < Duration::from_secs(wait_secs) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        held = held_by(&shardmap::load_all(&etcd).await?, id);
    }
    if wait_secs > 0 && !held.is_empty() {
        anyhow::bail!(
            "storage node `{id}` still holds {} shard(s) after {wait_secs} s ({}): a follower may still be catching up, or no other node can take them; the drain goes on",
            held.len(),
            held.join(", ")
        );
    }
    emit(
        g,
        json!({"node": id, "draining": true, "holds": held, "waited_ms": start.elapsed().as_millis() as u64}),
        || {
            let mut t = table(&["node", "holds"]);
            t.add_row(vec![
                id.to_string(),
                if held.is_empty() {
                    "nothing".to_string()
                } else {
                    held.join(", ")
                },
            ]);
            t
        },
    );
    Ok(())
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
    let (drains, _) = etcd.list(akidb_cluster::keys::DRAIN).await?;
    // A marker drains the process it names (its start time), not a restarted one.
    let drained: std::collections::BTreeMap<String, u64> = drains
        .into_iter()
        .filter_map(|kv| {
            let id =
                String::from_utf8_lossy(&kv.key[akidb_cluster::keys::DRAIN.len()..]).into_owned();
            Some((id, serde_json::from_slice(&kv.value).ok()?))
        })
        .collect();
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
                "draining": drained.get(&n.id) == Some(&n.started_ms),
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
