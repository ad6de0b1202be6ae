//! A node's membership: its key under `/akidb/nodes/` bound to a lease that the node keeps
//! alive. The key exists exactly while the lease does, so the other nodes and the controller
//! see a node leave when its lease expires (a crash, a partition, a pause longer than the TTL).
//!
//! The keep-alive is watched: a renewal that gets no answer within a third of the TTL (a
//! stalled etcd member, a dead connection) opens a new stream; a lease that expired anyway is
//! reported as lost and a new one is taken and the key written again. A node id held by a live
//! lease of another process is waited for, not taken over: two processes never both believe
//! they are the same node.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::etcd::{Etcd, EtcdError};
use crate::keys;
use akidb_instrumentation::metrics::metrics;

/// What a node publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its id (`--node-id`): stable across restarts.
    pub id: String,
    /// Where its gRPC server is reached (`host:port`).
    pub addr: String,
    /// When this process registered, milliseconds since the epoch (tells restarts apart).
    pub started_ms: u64,
    /// Where its metrics are scraped (`host:port` of its HTTP port), for the telemetry
    /// aggregator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

impl NodeInfo {
    pub fn new(id: &str, addr: &str) -> NodeInfo {
        NodeInfo {
            id: id.to_string(),
            addr: addr.to_string(),
            started_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            metrics_addr: None,
        }
    }

    /// This node with its metrics at `addr`.
    pub fn with_metrics(mut self, addr: &str) -> NodeInfo {
        self.metrics_addr = Some(addr.to_string());
        self
    }
}

/// The state of a node's lease, as its keeper last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Not registered yet (starting, or waiting for an old lease on the same id to expire).
    Joining { why: String },
    /// Registered under `lease`; renewed at most a TTL ago.
    Held { lease: i64 },
    /// The lease expired or etcd has not confirmed it for a TTL: this node must act as if it
    /// were gone (no writes acknowledged as owner) until it holds a lease again.
    Lost { why: String },
}

/// A registered node: keeps its lease alive until stopped, then revokes it (the key goes at
/// once, not after the TTL).
pub struct Membership {
    state: watch::Receiver<LeaseState>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Membership {
    /// Register `node` with a lease of `ttl` (at least 2 s) and keep it alive in a task.
    pub fn start(etcd: Etcd, node: NodeInfo, ttl: Duration) -> Membership {
        let ttl = ttl.max(Duration::from_secs(2));
        let (tx, rx) = watch::channel(LeaseState::Joining {
            why: "registering".into(),
        });
        let stop = CancellationToken::new();
        metrics().cluster_enabled.set(1);
        metrics().cluster_lease_held.set(0);
        let task = tokio::spawn(keep(etcd, node, ttl, tx, stop.clone()));
        Membership {
            state: rx,
            stop,
            task,
        }
    }

    /// The lease state now.
    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    /// Changes of the lease state.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }

    /// Stop keeping the lease and revoke it (at most one etcd call deadline).
    pub async fn leave(self) {
        self.stop.cancel();
        let _ = self.task.await;
        metrics().cluster_lease_held.set(0);
    }
}

fn set(tx: &watch::Sender<LeaseState>, s: LeaseState) {
    tx.send_if_modified(|cur| {
        if *cur == s {
            return false;
        }
        let m = metrics();
        m.cluster_lease_held
            .set(i64::from(matches!(s, LeaseState::Held { .. })));
        match &s {
            LeaseState::Held { lease } => tracing::info!(lease, "node lease held"),
            LeaseState::Lost { why } => {
                if !matches!(cur, LeaseState::Lost { .. }) {
                    m.cluster_lease_losses.inc();
                }
                tracing::error!(why, "node lease lost")
            }
            LeaseState::Joining { why } => tracing::warn!(why, "node not registered yet"),
        }
        *cur = s;
        true
    });
}

async fn keep(
    etcd: Etcd,
    node: NodeInfo,
    ttl: Duration,
    tx: watch::Sender<LeaseState>,
    stop: CancellationToken,
) {
    let mut lease = None;
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = keep_loop(&etcd, &node, ttl, &tx, &mut lease) => {}
    }
    if let Some(id) = lease
        && let Err(e) = etcd.revoke(id).await
    {
        tracing::warn!(error = %e, "could not revoke the node lease; it expires by itself");
    }
}

async fn keep_loop(
    etcd: &Etcd,
    node: &NodeInfo,
    ttl: Duration,
    tx: &watch::Sender<LeaseState>,
    held: &mut Option<i64>,
) {
    let key = keys::node(&node.id);
    let value = serde_json::to_vec(node).expect("node info serializes");
    let mut retry = 0u32;
    // This process's last lease: if it still holds the key after being declared lost, it is
    // revoked rather than waited out.
    let mut previous = None;
    loop {
        if retry > 0 {
            tokio::time::sleep(akidb_client::backoff(
                200,
                ttl.as_millis() as u64 / 2,
                retry,
            ))
            .await;
        }
        retry += 1;
        // 1. A lease and the node's key on it, only if no live process holds the id.
        let lease = match register(etcd, &key, &value, ttl, previous).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(taken)) => {
                set(tx, LeaseState::Joining { why: taken.why });
                // Wait out the holder's lease rather than asking again and again.
                retry = 0;
                let wait = taken.left.clamp(Duration::from_millis(200), ttl / 2);
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => {
                set(
                    tx,
                    LeaseState::Joining {
                        why: format!("cannot register: {e}"),
                    },
                );
                continue;
            }
        };
        *held = Some(lease);
        set(tx, LeaseState::Held { lease });
        retry = 0;
        // 2. Keep it alive; a stream that stalls is replaced, a lease that expired is lost.
        let why = renew_until_lost(etcd, lease, ttl).await;
        *held = None;
        previous = Some(lease);
        set(tx, LeaseState::Lost { why });
    }
}

/// The id is held by another live lease: why, and how long that lease has left.
struct IdTaken {
    why: String,
    left: Duration,
}

/// Take a lease and create the node's key on it. `Ok(Err(taken))`: another live lease holds the
/// id (the key is left alone and that lease is never revoked from here, unless it is
/// `previous`, this process's own); no lease is taken while the key is held.
async fn register(
    etcd: &Etcd,
    key: &str,
    value: &[u8],
    ttl: Duration,
    previous: Option<i64>,
) -> Result<Result<i64, IdTaken>, EtcdError> {
    let taken = |holder: i64, left: i64| IdTaken {
        why: format!(
            "node id {key} is held by lease {holder:x} ({left} s left): another process \
             with the same --node-id, or this node before a crash; waiting for it to expire"
        ),
        left: Duration::from_secs(left.max(0) as u64),
    };
    if let Some(kv) = etcd.get(key).await? {
        if Some(kv.lease) == previous {
            let _ = etcd.revoke(kv.lease).await;
        } else {
            let left = etcd.time_to_live(kv.lease).await?;
            if left > 0 {
                return Ok(Err(taken(kv.lease, left)));
            }
        }
    }
    let lease = etcd.grant(ttl.as_secs() as i64).await?;
    match etcd.swap(key, 0, value.to_vec(), lease).await {
        Ok(Ok(_)) => Ok(Ok(lease)),
        Ok(Err(current)) => {
            // Taken between the look and the write.
            let _ = etcd.revoke(lease).await;
            let holder = current.map_or(0, |kv| kv.lease);
            let left = etcd.time_to_live(holder).await.unwrap_or(0);
            Ok(Err(taken(holder, left)))
        }
        Err(e) => {
            let _ = etcd.revoke(lease).await;
            Err(e)
        }
    }
}

/// Renew `lease` until it is lost; why it was.
async fn renew_until_lost(etcd: &Etcd, lease: i64, ttl: Duration) -> String {
    let every = ttl / 3;
    // Until when the lease is known to live: the last confirmed renewal plus the TTL.
    let mut alive_until = Instant::now() + ttl;
    let mut stream = None;
    let mut failures = 0u32;
    loop {
        if Instant::now() >= alive_until {
            return format!(
                "no keep-alive confirmed for {ttl:?} (etcd {}): the lease may have expired",
                etcd.endpoints()
            );
        }
        if stream.is_none() {
            match tokio::time::timeout(every, etcd.keep_alive(lease)).await {
                Ok(Ok(s)) => stream = Some(s),
                Ok(Err(e)) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "cannot open the lease keep-alive stream");
                }
                Err(_) => {
                    failures += 1;
                    tracing::warn!(failures, "opening the lease keep-alive stream stalled");
                }
            }
        }
        if let Some(s) = stream.as_mut() {
            let sent = Instant::now();
            match tokio::time::timeout(every, s.renew()).await {
                Ok(Ok(left)) if left > 0 => {
                    alive_until = sent + Duration::from_secs(left as u64);
                    failures = 0;
                }
                Ok(Ok(_)) => return format!("lease {lease:x} expired (etcd answered TTL 0)"),
                Ok(Err(e)) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "lease keep-alive failed; reopening the stream");
                    stream = None;
                }
                Err(_) => {
                    failures += 1;
                    tracing::warn!(failures, "lease keep-alive stalled; reopening the stream");
                    stream = None;
                }
            }
        }
        let wait = if failures == 0 {
            every
        } else {
            akidb_client::backoff(100, every.as_millis() as u64, failures)
        };
        tokio::time::sleep(wait.min(alive_until.saturating_duration_since(Instant::now()))).await;
    }
}

/// Every registered node, by id, as etcd lists them now.
pub async fn nodes(etcd: &Etcd) -> Result<Vec<(NodeInfo, i64)>, EtcdError> {
    let (kvs, _) = etcd.list(keys::NODES).await?;
    Ok(kvs
        .into_iter()
        .filter_map(|kv| {
            serde_json::from_slice::<NodeInfo>(&kv.value)
                .map_err(|e| tracing::warn!(error = %e, "unreadable node key; ignored"))
                .ok()
                .map(|n| (n, kv.lease))
        })
        .collect())
}
