//! The etcd key layout, in one place. Everything AkiDB keeps in etcd is under `/akidb/`.
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `/akidb/nodes/<node id>` | [`crate::membership::NodeInfo`] (JSON) | bound to the node's lease |
//! | `/akidb/shardmaps/<collection>` | [`crate::shardmap::ShardMap`] (JSON: shards and the collection's spec) | created and changed only by compare-and-swap on its revision |
//! | `/akidb/applied/<node id>` | the node's applied log sequence of each shard copy it holds (JSON: `"<map id>/<shard>"` → sequence), written at most once a second when it changed | bound to the node's lease |
//! | `/akidb/store` | the id of the object store every node must share (the store holds it too, at `cluster/store-id`) | set once by the first node |
//! | `/akidb/drain/<node id>` | the `started_ms` of the node's process being drained (`akidb cluster drain`): the controller moves its shards away; a restarted node (another `started_ms`) is not drained | written by the CLI, removed by `akidb cluster undrain` |
//! | `/akidb/controller` | the id of the node that runs the controller | bound to that node's lease: a new one is elected when it goes |
//! | `/akidb/aliases` | every alias (JSON: alias → collection) | changed only by compare-and-swap on its revision (UpdateAliases, a collection's deletion) |

/// Registered nodes.
pub const NODES: &str = "/akidb/nodes/";
/// Shard maps, one per collection.
pub const SHARD_MAPS: &str = "/akidb/shardmaps/";

/// Applied log sequences, one key per node.
pub const APPLIED: &str = "/akidb/applied/";
/// The id of the object store the cluster's nodes share (also in the store, `cluster/store-id`).
pub const STORE: &str = "/akidb/store";
/// Nodes being drained.
pub const DRAIN: &str = "/akidb/drain/";
/// The key that drains node `id`.
pub fn drain(id: &str) -> String {
    format!("{DRAIN}{id}")
}
/// The elected controller.
pub const CONTROLLER: &str = "/akidb/controller";
/// Every alias, one key (a multi-step change is one compare-and-swap).
pub const ALIASES: &str = "/akidb/aliases";

/// The key of node `id`'s applied sequences.
pub fn applied(id: &str) -> String {
    format!("{APPLIED}{id}")
}

/// The key of node `id`.
pub fn node(id: &str) -> String {
    format!("{NODES}{id}")
}

/// The key of `collection`'s shard map.
pub fn shard_map(collection: &str) -> String {
    format!("{SHARD_MAPS}{collection}")
}

/// Whether `id` may name a node: 1 to 63 of `a-z 0-9 - _ .`, starting with a letter or digit
/// (it is part of etcd keys, metric labels and host names).
pub fn valid_node_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node id {id:?} is not valid: use 1 to 63 lowercase letters, digits, '-', '_' or '.', \
             starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        for ok in ["storage-0", "n1", "a.b_c", "0"] {
            assert!(valid_node_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a/b", "a b", &"x".repeat(64)] {
            assert!(valid_node_id(bad).is_err(), "{bad}");
        }
        assert_eq!(node("n1"), "/akidb/nodes/n1");
    }
}
