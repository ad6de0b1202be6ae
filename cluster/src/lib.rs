//! Coordination of several storage nodes through etcd, with no consensus of AkiDB's own.
//!
//! | module | owns |
//! |---|---|
//! | [`etcd`] | the etcd v3 client (compiled from `proto/etcd/` without a system protoc): keys, compare-and-swap, leases and keep-alive, watches that resume |
//! | [`keys`] | the etcd key layout, and the node id rule |
//! | [`membership`] | a node's registration on a lease, kept alive and watched for stalls |
//! | [`shardmap`] | a collection's shards (owner, followers, epoch), changed by compare-and-swap; failover and repair |
//! | [`controller`] | the elected storage node that keeps every shard map whole as nodes come and go |
//! | [`args`] | a storage node's cluster flags (`--etcd`, `--node-id`, ...), checked |
//! | [`placement`] | pure functions: a point's shard, a shard's nodes (rendezvous hashing) |
//! | [`view`] | the nodes and shard maps as one etcd watch sees them, for any process |
//! | [`route`] | a call to one shard on both ends: the epoch it carries, the "stale route" answer, a point's shard from its API id |
//! | [`router`] | query's and ingest's side: a collection's calls sent to its shards, the answers merged (partial searches) |
//!
//! Import order: `etcd` ← `keys` ← `membership`, `args`; `placement` ← `shardmap` (on `etcd`,
//! `keys`); `view` (on `membership`, `shardmap`) ← `route` ← `router`; `controller` (on `view`).

pub mod args;
pub mod controller;
pub mod etcd;
pub mod keys;
pub mod membership;
pub mod placement;
pub mod route;
pub mod router;
pub mod shardmap;
pub mod view;

pub use etcd::{Etcd, EtcdError};
