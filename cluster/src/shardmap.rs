//! A collection's shard map: for each shard its owner (the one node that acknowledges
//! writes), its followers, and its epoch. Kept in etcd at `/akidb/shardmaps/<collection>` and
//! changed only by compare-and-swap on the key's revision, so two controllers (or a
//! controller and a drain) can never both win. The epoch rises with every change of owner;
//! writes carry the epoch their sender knew, and a node acknowledges a write for a shard
//! only under the epoch the map gives it now: a stale owner is fenced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::etcd::{Etcd, EtcdError};
use crate::keys;
use crate::placement::rendezvous;

/// One shard's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub id: u32,
    /// The node that acknowledges writes; `None` while no live node can take it.
    pub owner: Option<String>,
    /// Nodes that apply the shard's log in order and can take over.
    pub followers: Vec<String>,
    /// Raised by one with every change of owner.
    pub epoch: u64,
}

/// A collection's shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    pub collection: String,
    /// Unique to this incarnation of the collection (a collection deleted and created again
    /// gets a new one): names its shard logs in the object store and the nodes' copies.
    #[serde(default)]
    pub id: String,
    /// Copies of each shard wanted (owner + followers).
    pub replication: u32,
    pub shards: Vec<Shard>,
    /// The collection's `CreateCollectionRequest`, protobuf-encoded: what a node creates its
    /// copy of a shard from.
    #[serde(default)]
    pub spec: Vec<u8>,
}

/// A value read from etcd with the revision of its last change (what a compare-and-swap of it
/// names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

/// What a change of owner did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub shard: u32,
    pub from: Option<String>,
    pub to: Option<String>,
    pub epoch: u64,
}

/// What [`ShardMap::repair`] did to one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Followers that are gone were dropped.
    Dropped { shard: u32 },
    /// A shard without an owner was given one.
    Owner {
        shard: u32,
        node: String,
        epoch: u64,
    },
    /// A follower was added.
    Follower { shard: u32, node: String },
    /// An owner leaving the shard (drained, or off the shard's place) handed it to a
    /// caught-up follower.
    Moved {
        shard: u32,
        from: String,
        to: String,
        epoch: u64,
    },
    /// A follower off the shard's place left it once the copy replacing it had caught up.
    Left { shard: u32, node: String },
}

/// A follower this close to the owner (log entries, from sequences published every second)
/// takes a drained owner's shard: it applies the rest before its first write.
pub const CAUGHT_UP: u64 = 64;

impl ShardMap {
    /// A new map: `shards` shards, each placed on `replication` of `nodes` by rendezvous
    /// hashing (fewer when there are fewer nodes), epoch 1.
    pub fn place(collection: &str, shards: u32, replication: u32, nodes: &[String]) -> ShardMap {
        let shards = (0..shards)
            .map(|id| {
                let mut chosen =
                    rendezvous(&shard_name(collection, id), nodes, replication as usize)
                        .into_iter()
                        .map(str::to_string);
                Shard {
                    id,
                    owner: chosen.next(),
                    followers: chosen.collect(),
                    epoch: 1,
                }
            })
            .collect();
        ShardMap {
            collection: collection.to_string(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            replication,
            shards,
            spec: Vec::new(),
        }
    }

    /// Replace the owner of every shard whose owner is not in `live` with its most caught-up
    /// live follower (`applied`: each node's applied sequence of the shard; a follower missing
    /// from it counts as 0), raising the epoch. A shard with no live follower is left without
    /// an owner (epoch raised too: the old owner stays fenced when it returns). What changed.
    pub fn fail_over(
        &mut self,
        live: &BTreeSet<String>,
        applied: &BTreeMap<(u32, String), u64>,
    ) -> Vec<Takeover> {
        let mut changes = Vec::new();
        for s in &mut self.shards {
            if s.owner.as_ref().is_some_and(|o| live.contains(o)) {
                continue;
            }
            let best = s
                .followers
                .iter()
                .filter(|f| live.contains(*f))
                .max_by(|a, b| {
                    let seq = |n: &String| applied.get(&(s.id, n.clone())).copied().unwrap_or(0);
                    // Most caught up first; ties to the smaller name, so every run agrees.
                    seq(a).cmp(&seq(b)).then_with(|| b.cmp(a))
                })
                .cloned();
            if best.is_none() && s.owner.is_none() {
                continue;
            }
            let from = s.owner.take();
            if let Some(b) = &best {
                s.followers.retain(|f| f != b);
            }
            s.owner = best.clone();
            s.epoch += 1;
            changes.push(Takeover {
                shard: s.id,
                from,
                to: best,
                epoch: s.epoch,
            });
        }
        changes
    }

    /// Bring every shard back to its copies over the `live` nodes: followers that are not live
    /// are dropped; a shard without an owner gets one (any live node can take a shard: its log
    /// is in the object store; epoch raised); followers are added, by rendezvous order, until
    /// the shard has `replication` copies or every live node holds one. What changed.
    pub fn repair(&mut self, live: &BTreeSet<String>) -> Vec<Repair> {
        let nodes: Vec<String> = live.iter().cloned().collect();
        let mut changes = Vec::new();
        for s in &mut self.shards {
            let before = s.followers.len();
            s.followers.retain(|f| live.contains(f));
            if s.followers.len() != before {
                changes.push(Repair::Dropped { shard: s.id });
            }
            let order = rendezvous(&shard_name(&self.collection, s.id), &nodes, nodes.len());
            if s.owner.is_none()
                && let Some(n) = order.first()
            {
                s.owner = Some(n.to_string());
                s.followers.retain(|f| f != n);
                s.epoch += 1;
                changes.push(Repair::Owner {
                    shard: s.id,
                    node: n.to_string(),
                    epoch: s.epoch,
                });
            }
            for n in order {
                if 1 + s.followers.len() >= self.replication as usize {
                    break;
                }
                if s.owner.as_deref() != Some(n) && !s.followers.iter().any(|f| f == n) {
                    s.followers.push(n.to_string());
                    changes.push(Repair::Follower {
                        shard: s.id,
                        node: n.to_string(),
                    });
                }
            }
        }
        changes
    }

    /// Move shards off the `drained` nodes without a pause longer than a catch-up: a drained
    /// owner's shard goes to its most caught-up `eligible` follower once that one is within
    /// [`CAUGHT_UP`] entries (`applied`), epoch + 1, and the old owner leaves the shard; a
    /// drained owner with no eligible follower first gets one (rendezvous order). Drained
    /// followers are left to [`Self::repair`] over the eligible nodes. What changed.
    pub fn drain(
        &mut self,
        drained: &BTreeSet<String>,
        eligible: &BTreeSet<String>,
        applied: &BTreeMap<(u32, String), u64>,
    ) -> Vec<Repair> {
        let nodes: Vec<String> = eligible.iter().cloned().collect();
        let mut changes = Vec::new();
        for s in &mut self.shards {
            let Some(owner) = s.owner.clone().filter(|o| drained.contains(o)) else {
                continue;
            };
            let seq = |n: &String| applied.get(&(s.id, n.clone())).copied().unwrap_or(0);
            let head = seq(&owner);
            let best = s
                .followers
                .iter()
                .filter(|f| eligible.contains(*f))
                .max_by(|a, b| seq(a).cmp(&seq(b)).then_with(|| b.cmp(a)))
                .cloned();
            match best {
                Some(b) if seq(&b) + CAUGHT_UP >= head => {
                    s.followers.retain(|f| f != &b);
                    s.owner = Some(b.clone());
                    s.epoch += 1;
                    changes.push(Repair::Moved {
                        shard: s.id,
                        from: owner,
                        to: b,
                        epoch: s.epoch,
                    });
                }
                // Catching up: next round.
                Some(_) => {}
                None => {
                    let order =
                        rendezvous(&shard_name(&self.collection, s.id), &nodes, nodes.len());
                    if let Some(n) = order
                        .into_iter()
                        .find(|n| !s.followers.iter().any(|f| f == n))
                    {
                        s.followers.push(n.to_string());
                        changes.push(Repair::Follower {
                            shard: s.id,
                            node: n.to_string(),
                        });
                    }
                }
            }
        }
        changes
    }

    /// Move copies to where rendezvous hashing places them over the `eligible` nodes, so that
    /// a node added to the cluster (or back from a drain) gets its share: one move per node at
    /// a time, and no pause in writes longer than a catch-up. A move first adds the node that
    /// should hold the shard as a follower (one copy more than the replication); once every
    /// copy that stays is within [`CAUGHT_UP`] entries of the owner (`applied`), the copy off
    /// its place leaves: a follower is dropped, an owner hands the shard to the most caught-up
    /// staying follower (epoch + 1), as in a drain. Shards without an owner, or with a copy on
    /// a node that is not eligible, are left to [`Self::fail_over`], [`Self::drain`] and
    /// [`Self::repair`]. What changed.
    pub fn balance(
        &mut self,
        eligible: &BTreeSet<String>,
        applied: &BTreeMap<(u32, String), u64>,
    ) -> Vec<Repair> {
        let nodes: Vec<String> = eligible.iter().cloned().collect();
        let wanted = self.replication as usize;
        let copies =
            |s: &Shard| -> Vec<String> { s.owner.iter().chain(&s.followers).cloned().collect() };
        // Every copy of a shard in a move is busy until the move ends.
        let mut busy: BTreeSet<String> = self
            .shards
            .iter()
            .filter(|s| copies(s).len() > wanted)
            .flat_map(copies)
            .collect();
        let mut changes = Vec::new();
        for s in &mut self.shards {
            let Some(owner) = s.owner.clone() else {
                continue;
            };
            let held = copies(s);
            if held.iter().any(|c| !eligible.contains(c)) {
                continue;
            }
            let place = rendezvous(&shard_name(&self.collection, s.id), &nodes, wanted);
            let seq = |n: &str| applied.get(&(s.id, n.to_string())).copied().unwrap_or(0);
            let head = seq(&owner);
            if held.len() > wanted {
                // A move in progress. What stays: the copies on their place, then (when the
                // place changed meanwhile) the others, owner first, up to the replication.
                let mut stay: Vec<&String> = held
                    .iter()
                    .filter(|c| place.contains(&c.as_str()))
                    .collect();
                for c in &held {
                    if stay.len() >= wanted {
                        break;
                    }
                    if !stay.contains(&c) {
                        stay.push(c);
                    }
                }
                if stay.iter().any(|c| seq(c) + CAUGHT_UP < head) {
                    continue; // catching up: next round
                }
                let leaving: Vec<String> =
                    held.iter().filter(|c| !stay.contains(c)).cloned().collect();
                if leaving.contains(&owner) {
                    let to = stay
                        .iter()
                        .filter(|c| **c != &owner)
                        .max_by(|a, b| seq(a).cmp(&seq(b)).then_with(|| b.cmp(a)))
                        .map(|c| (*c).clone())
                        .expect("more copies than the replication: one stays besides the owner");
                    s.followers.retain(|f| f != &to);
                    s.owner = Some(to.clone());
                    s.epoch += 1;
                    changes.push(Repair::Moved {
                        shard: s.id,
                        from: owner.clone(),
                        to,
                        epoch: s.epoch,
                    });
                }
                for l in leaving.into_iter().filter(|l| l != &owner) {
                    s.followers.retain(|f| f != &l);
                    changes.push(Repair::Left {
                        shard: s.id,
                        node: l,
                    });
                }
                continue;
            }
            if held.len() < wanted {
                continue; // repair's
            }
            let Some(incoming) = place.iter().find(|p| !held.iter().any(|c| c == *p)) else {
                continue; // in place
            };
            let Some(outgoing) = held.iter().find(|c| !place.contains(&c.as_str())) else {
                continue;
            };
            if busy.contains(*incoming) || busy.contains(outgoing) {
                continue;
            }
            busy.insert(incoming.to_string());
            busy.insert(outgoing.clone());
            s.followers.push(incoming.to_string());
            changes.push(Repair::Follower {
                shard: s.id,
                node: incoming.to_string(),
            });
        }
        changes
    }

    /// The collection's spec, decoded.
    pub fn spec(&self) -> Result<akidb_proto::v1::CreateCollectionRequest, prost::DecodeError> {
        prost::Message::decode(&*self.spec)
    }

    /// The shard `id`.
    pub fn shard(&self, id: u32) -> Option<&Shard> {
        self.shards.get(id as usize).filter(|s| s.id == id)
    }
}

/// The name a shard is placed by: `<collection>/<shard>`.
pub fn shard_name(collection: &str, shard: u32) -> String {
    format!("{collection}/{shard}")
}

pub(crate) fn decode(collection: &str, bytes: &[u8]) -> Result<ShardMap, EtcdError> {
    serde_json::from_slice(bytes).map_err(|e| EtcdError::Unreadable {
        key: keys::shard_map(collection),
        detail: e.to_string(),
    })
}

/// The shard map of `collection`, if it has one.
pub async fn load(etcd: &Etcd, collection: &str) -> Result<Option<Versioned<ShardMap>>, EtcdError> {
    match etcd.get(&keys::shard_map(collection)).await? {
        None => Ok(None),
        Some(kv) => Ok(Some(Versioned {
            value: decode(collection, &kv.value)?,
            revision: kv.mod_revision,
        })),
    }
}

/// Every shard map.
pub async fn load_all(etcd: &Etcd) -> Result<Vec<Versioned<ShardMap>>, EtcdError> {
    let (kvs, _) = etcd.list(keys::SHARD_MAPS).await?;
    kvs.into_iter()
        .map(|kv| {
            let name = String::from_utf8_lossy(&kv.key[keys::SHARD_MAPS.len()..]).into_owned();
            Ok(Versioned {
                value: decode(&name, &kv.value)?,
                revision: kv.mod_revision,
            })
        })
        .collect()
}

/// Write `map` if the stored one is still at `revision` (0: only if there is none). `Ok(Ok)`
/// with the new version; `Ok(Err)` with what is stored now when someone else changed it first.
pub async fn swap(
    etcd: &Etcd,
    map: &ShardMap,
    revision: i64,
) -> Result<Result<Versioned<ShardMap>, Option<Versioned<ShardMap>>>, EtcdError> {
    let bytes = serde_json::to_vec(map).expect("shard map serializes");
    match etcd
        .swap(&keys::shard_map(&map.collection), revision, bytes, 0)
        .await?
    {
        Ok(rev) => Ok(Ok(Versioned {
            value: map.clone(),
            revision: rev,
        })),
        Err(current) => Ok(Err(match current {
            None => None,
            Some(kv) => Some(Versioned {
                value: decode(&map.collection, &kv.value)?,
                revision: kv.mod_revision,
            }),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn placement_spreads_owners_and_never_repeats_a_node_in_a_shard() {
        let m = ShardMap::place("c", 12, 2, &names(3));
        for s in &m.shards {
            assert_eq!(s.epoch, 1);
            let owner = s.owner.clone().unwrap();
            assert_eq!(s.followers.len(), 1);
            assert!(!s.followers.contains(&owner));
        }
        let owners: BTreeSet<_> = m.shards.iter().filter_map(|s| s.owner.clone()).collect();
        assert_eq!(owners.len(), 3, "every node owns a shard: {m:?}");
        // One node: owners only.
        let one = ShardMap::place("c", 3, 2, &names(1));
        assert!(
            one.shards
                .iter()
                .all(|s| s.followers.is_empty() && s.owner.is_some())
        );
    }

    #[test]
    fn fail_over_picks_the_most_caught_up_live_follower_and_raises_the_epoch() {
        let mut m = ShardMap {
            collection: "c".into(),
            replication: 3,
            shards: vec![
                Shard {
                    id: 0,
                    owner: Some("a".into()),
                    followers: vec!["b".into(), "c".into()],
                    epoch: 4,
                },
                Shard {
                    id: 1,
                    owner: Some("b".into()),
                    followers: vec!["a".into()],
                    epoch: 2,
                },
                Shard {
                    id: 2,
                    owner: Some("a".into()),
                    followers: vec![],
                    epoch: 7,
                },
            ],
            spec: vec![],
            id: "m".into(),
        };
        let live: BTreeSet<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
        let applied: BTreeMap<(u32, String), u64> =
            [((0, "b".to_string()), 10), ((0, "c".to_string()), 12)]
                .into_iter()
                .collect();
        let changes = m.fail_over(&live, &applied);
        assert_eq!(
            changes,
            vec![
                Takeover {
                    shard: 0,
                    from: Some("a".into()),
                    to: Some("c".into()),
                    epoch: 5
                },
                Takeover {
                    shard: 2,
                    from: Some("a".into()),
                    to: None,
                    epoch: 8
                },
            ]
        );
        assert_eq!(m.shards[0].followers, vec!["b".to_string()]);
        assert_eq!(
            m.shards[1].owner.as_deref(),
            Some("b"),
            "a live owner stays"
        );
        assert_eq!(m.shards[1].epoch, 2);
        // Nothing to do twice.
        assert!(m.fail_over(&live, &applied).is_empty());

        // Repair: shard 1's dead follower `a` goes, shard 2 (no owner) gets one at a new epoch,
        // and every shard is filled up to the copies that the live nodes allow.
        let changes = m.repair(&live);
        assert!(
            changes.contains(&Repair::Dropped { shard: 1 }),
            "{changes:?}"
        );
        let s2 = &m.shards[2];
        assert!(s2.owner.is_some());
        assert_eq!(s2.epoch, 9);
        for s in &m.shards {
            let mut held: Vec<&String> = s.owner.iter().chain(&s.followers).collect();
            assert_eq!(held.len(), 2, "two live nodes, replication 3: {s:?}");
            held.sort();
            held.dedup();
            assert_eq!(held.len(), 2, "no node twice: {s:?}");
            assert!(held.iter().all(|n| live.contains(*n)));
        }
        assert!(m.repair(&live).is_empty(), "nothing to do twice");
        // A node comes back: it becomes a follower where copies are missing.
        let live3: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let changes = m.repair(&live3);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(
            m.shards
                .iter()
                .all(|s| s.followers.contains(&"a".to_string()))
        );
        assert!(
            m.shards.iter().all(|s| s.epoch == [5, 2, 9][s.id as usize]),
            "owners stay"
        );
    }

    #[test]
    fn drain_hands_shards_to_caught_up_followers_only() {
        let mut m = ShardMap::place("c", 4, 1, &names(3));
        let drained: BTreeSet<String> = ["n0".to_string()].into_iter().collect();
        let eligible: BTreeSet<String> = ["n1", "n2"].iter().map(|s| s.to_string()).collect();
        let owned: Vec<u32> = m
            .shards
            .iter()
            .filter(|s| s.owner.as_deref() == Some("n0"))
            .map(|s| s.id)
            .collect();
        assert!(!owned.is_empty());
        let mut applied: BTreeMap<(u32, String), u64> = owned
            .iter()
            .map(|s| ((*s, "n0".to_string()), 1_000))
            .collect();
        // Round 1: no follower yet: one is added, the owner stays.
        let changes = m.drain(&drained, &eligible, &applied);
        assert_eq!(changes.len(), owned.len(), "{changes:?}");
        for id in &owned {
            let s = &m.shards[*id as usize];
            assert_eq!(s.owner.as_deref(), Some("n0"));
            assert_eq!(s.followers.len(), 1);
            assert!(eligible.contains(&s.followers[0]));
        }
        // Round 2: the followers are far behind: nothing moves.
        for id in &owned {
            let f = m.shards[*id as usize].followers[0].clone();
            applied.insert((*id, f), 1_000 - CAUGHT_UP - 1);
        }
        assert!(m.drain(&drained, &eligible, &applied).is_empty());
        // Round 3: caught up: each shard moves, epoch + 1, n0 holds nothing.
        for id in &owned {
            let f = m.shards[*id as usize].followers[0].clone();
            applied.insert((*id, f), 1_000 - CAUGHT_UP);
        }
        let changes = m.drain(&drained, &eligible, &applied);
        assert_eq!(changes.len(), owned.len());
        for s in &m.shards {
            assert_ne!(s.owner.as_deref(), Some("n0"));
            assert!(!s.followers.contains(&"n0".to_string()));
        }
        for id in &owned {
            assert_eq!(m.shards[*id as usize].epoch, 2);
        }
        assert!(m.drain(&drained, &eligible, &applied).is_empty());
    }

    /// Rounds of `balance` with every copy caught up at once, until nothing changes.
    fn balance_until_still(m: &mut ShardMap, eligible: &BTreeSet<String>) -> Vec<Repair> {
        let mut all = Vec::new();
        for _ in 0..200 {
            let applied: BTreeMap<(u32, String), u64> = m
                .shards
                .iter()
                .flat_map(|s| {
                    s.owner
                        .iter()
                        .chain(&s.followers)
                        .map(move |n| ((s.id, n.clone()), 1_000))
                })
                .collect();
            let changes = m.balance(eligible, &applied);
            if changes.is_empty() {
                return all;
            }
            // One move per node at a time: no node gains more than one copy in a round.
            let mut added: Vec<&String> = changes
                .iter()
                .filter_map(|c| match c {
                    Repair::Follower { node, .. } => Some(node),
                    _ => None,
                })
                .collect();
            let n = added.len();
            added.sort();
            added.dedup();
            assert_eq!(added.len(), n, "a node got two moves at once: {changes:?}");
            all.extend(changes);
        }
        panic!("balance never settles: {m:?}");
    }

    #[test]
    fn balance_moves_a_new_node_its_share_one_move_at_a_time() {
        for replication in [1, 2] {
            let mut m = ShardMap::place("c", 12, replication, &names(2));
            let three: BTreeSet<String> = names(3).into_iter().collect();
            // Round 1: n2 follows the first shard placed on it; nothing else moves (n2 busy).
            let changes = m.balance(&three, &BTreeMap::new());
            assert_eq!(changes.len(), 1, "{changes:?}");
            let Repair::Follower { shard, node } = changes[0].clone() else {
                panic!("{changes:?}")
            };
            assert_eq!(node, "n2");
            let before = m.shards[shard as usize].clone();
            // Round 2: n2 far behind the owner: nothing moves, nothing else starts.
            let applied: BTreeMap<(u32, String), u64> = before
                .owner
                .iter()
                .chain(&before.followers)
                .map(|n| ((shard, n.clone()), if n == "n2" { 10 } else { 1_000 }))
                .collect();
            assert!(m.balance(&three, &applied).is_empty());
            // Then every move completes once caught up, and every shard sits where
            // rendezvous hashing over the three nodes places it.
            let changes = balance_until_still(&mut m, &three);
            let nodes = names(3);
            let mut moved_to_n2 = 0;
            for s in &m.shards {
                let mut held: Vec<&str> = s
                    .owner
                    .iter()
                    .chain(&s.followers)
                    .map(String::as_str)
                    .collect();
                let mut place = rendezvous(&shard_name("c", s.id), &nodes, replication as usize);
                held.sort();
                place.sort();
                assert_eq!(held, place, "{s:?}");
                if held.contains(&"n2") {
                    moved_to_n2 += 1;
                }
                let owner_moved = changes
                    .iter()
                    .any(|c| matches!(c, Repair::Moved { shard, .. } if *shard == s.id));
                assert_eq!(s.epoch, if owner_moved { 2 } else { 1 }, "{s:?}");
            }
            assert!(moved_to_n2 > 0 && moved_to_n2 < 12, "{m:?}");
            if replication == 2 {
                assert!(
                    changes.iter().any(|c| matches!(c, Repair::Left { .. })),
                    "{changes:?}"
                );
            }
            assert!(m.balance(&three, &BTreeMap::new()).is_empty(), "settled");
        }
        // A shard with a copy on a node that is not eligible (drained, gone) is not balanced.
        let mut m = ShardMap::place("c", 4, 1, &names(2));
        let only_n2: BTreeSet<String> = ["n2".to_string()].into_iter().collect();
        assert!(m.balance(&only_n2, &BTreeMap::new()).is_empty());
    }
}
