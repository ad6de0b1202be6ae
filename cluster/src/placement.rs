//! Where things go, as pure functions: a point's shard (a stable hash of its id, the same on
//! every node and in every version) and a shard's nodes (rendezvous hashing: each node scores
//! each shard, the highest scores win, so adding or removing a node moves only the shards it
//! wins or held).

use sha2::{Digest, Sha256};

/// A point id as the shard hash reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRef<'a> {
    Num(u64),
    Uuid(&'a str),
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The shard of a point among `shards` (at least 1): part of the data format (a point's shard
/// must never change), so the hash is SHA-256 of a tagged encoding of the id, not a hasher
/// whose output may change between releases. The encoding: for each part, its length as a
/// little-endian `u32` then its bytes; the parts are `"n"` and the id as a little-endian `u64`,
/// or `"u"` and the lowercase UUID text. The first 8 bytes of the digest, little-endian, times
/// `shards`, shifted right by 64, is the shard.
pub fn shard_of(id: IdRef<'_>, shards: u32) -> u32 {
    assert!(shards > 0, "a collection has at least one shard");
    let h = match id {
        IdRef::Num(n) => hash64(&[b"n", &n.to_le_bytes()]),
        IdRef::Uuid(u) => hash64(&[b"u", u.to_ascii_lowercase().as_bytes()]),
    };
    // Lemire's multiply-shift: uniform over [0, shards) without a modulo bias worth the name.
    ((u128::from(h) * u128::from(shards)) >> 64) as u32
}

/// The `n` nodes of `nodes` that a shard goes to, best first (the first is its preferred
/// owner): rendezvous (highest random weight) hashing of `(shard, node)`.
pub fn rendezvous<'a>(shard: &str, nodes: &'a [String], n: usize) -> Vec<&'a str> {
    let mut scored: Vec<(u64, &str)> = nodes
        .iter()
        .map(|node| (hash64(&[shard.as_bytes(), node.as_bytes()]), node.as_str()))
        .collect();
    // Ties (as good as impossible) by name, so every caller agrees.
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(n).map(|(_, node)| node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_is_stable_and_spread_evenly() {
        // Part of the data format: these values must never change (computed apart, with
        // Python's hashlib, from the encoding documented on `shard_of`).
        assert_eq!(shard_of(IdRef::Num(0), 1), 0);
        let pinned: Vec<u32> = (0..8).map(|i| shard_of(IdRef::Num(i), 3)).collect();
        assert_eq!(pinned, [0, 0, 2, 1, 0, 2, 2, 2]);
        assert_eq!(
            shard_of(IdRef::Uuid("6f9619ff-8b86-d011-b42d-00c04fc964ff"), 7),
            0
        );
        assert_eq!(
            shard_of(IdRef::Uuid("6F9619FF-8B86-D011-B42D-00C04FC964FF"), 7),
            shard_of(IdRef::Uuid("6f9619ff-8b86-d011-b42d-00c04fc964ff"), 7),
            "a UUID's case does not move it"
        );
        for shards in [2u32, 3, 8] {
            let mut counts = vec![0u32; shards as usize];
            for i in 0..60_000u64 {
                counts[shard_of(IdRef::Num(i), shards) as usize] += 1;
            }
            let even = 60_000 / shards;
            for c in counts {
                assert!(
                    c.abs_diff(even) < even / 20,
                    "{shards} shards: {c} vs {even}"
                );
            }
        }
    }

    #[test]
    fn rendezvous_moves_only_what_a_node_change_must() {
        let nodes: Vec<String> = (0..5).map(|i| format!("node-{i}")).collect();
        let shards: Vec<String> = (0..200).map(|s| format!("c/{s}")).collect();
        let before: Vec<Vec<&str>> = shards.iter().map(|s| rendezvous(s, &nodes, 2)).collect();
        for p in &before {
            assert_eq!(p.len(), 2);
            assert_ne!(p[0], p[1]);
        }
        // Every node owns some shards.
        for n in &nodes {
            assert!(before.iter().any(|p| p[0] == n), "{n} owns nothing");
        }
        // Removing node-2 changes only the shards that had it.
        let fewer: Vec<String> = nodes.iter().filter(|n| *n != "node-2").cloned().collect();
        for (s, old) in shards.iter().zip(&before) {
            let new = rendezvous(s, &fewer, 2);
            if !old.contains(&"node-2") {
                assert_eq!(&new, old, "{s} moved without reason");
            } else {
                let kept: Vec<&&str> = old.iter().filter(|n| **n != "node-2").collect();
                assert!(
                    kept.iter().all(|k| new.contains(k)),
                    "{s} lost a node it kept"
                );
            }
        }
        // More replicas than nodes: every node once.
        assert_eq!(rendezvous("c/0", &nodes[..2], 3).len(), 2);
    }
}
