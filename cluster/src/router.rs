//! A collection's calls sent to its shards, and the shards' answers merged: what query (reads,
//! collections) and ingest (writes) do instead of calling one storage node when they run
//! with `--etcd`.
//!
//! - Each call goes to the owner of each shard it touches, with the shard's epoch from the
//!   [`ClusterView`]; a node that knows a newer map answers "stale route", and the call is
//!   sent again once with the map read from etcd.
//! - Writes: the points of an upsert (the ids of a delete) are split by shard; each shard
//!   takes its part whole or not at all, and an error names which shards took theirs.
//!   A delete by filter goes to every shard and fails unless every shard answered.
//! - Searches go to every shard with the call's deadline; a shard that does not answer in
//!   time is left out and the response says `partial` with the shards missing. Get, Count
//!   and Scroll need every shard they touch (they have no way to say "partial") and fail
//!   with UNAVAILABLE naming the shard otherwise.
//! - Collections: CreateCollection places the shards over the registered nodes and writes the
//!   map (compare-and-swap: one of two racing creators wins); each owner creates its shard
//!   when first called. DeleteCollection removes the map, then each shard's copy.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akidb_client::Link;
use akidb_proto::convert::id_order;
use akidb_proto::limits::shard_name;
use akidb_proto::v1 as pb;
use futures::future::join_all;
use prost::Message;
use tonic::{Code, Status};
use tracing::Instrument;

use crate::EtcdError;
use crate::route::{canonical_uuid, is_stale, routed, shard_of_id};
use crate::shardmap::{self, ShardMap, Versioned};
use crate::view::ClusterView;

/// Sends a sharded collection's calls to its shards.
pub struct Router {
    view: ClusterView,
    /// One link per storage node address.
    links: Mutex<HashMap<String, Link>>,
    /// The internal key presented to storage (keys on).
    key: Option<String>,
    /// Deadline of one call to one shard, retries included (less when the caller's is less).
    timeout: Duration,
    /// Copies of each shard of a collection created without `replication`.
    default_replication: u32,
    /// A read not answered by its first copy within this long is also sent to another copy
    /// (the first answer wins); `None`: never.
    hedge_after: Option<Duration>,
}

/// One shard's answer to a call: the shard, the answer, and where the call went (`None`
/// when it could not be routed).
type ShardAnswer<T> = (u32, Result<T, Status>, Option<Target>);

/// Which copy of a shard a call may go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// The owner: writes.
    Owner,
    /// The owner, or a registered follower when the owner is not registered (down, or its
    /// lease expired before the controller replaced it): reads.
    Any,
}

/// Where one shard's call goes.
#[derive(Clone)]
struct Target {
    epoch: u64,
    node: String,
    link: Link,
}

fn etcd_unavailable(e: EtcdError) -> Status {
    Status::unavailable(format!("the cluster's etcd did not answer: {e}"))
}

fn list(shards: &[u32]) -> String {
    shards
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Router {
    pub fn new(view: ClusterView, key: Option<String>, timeout: Duration) -> Router {
        Router {
            view,
            links: Default::default(),
            key,
            timeout,
            default_replication: 1,
            hedge_after: None,
        }
    }

    /// Reads not answered within `after` by the first copy of a shard go to another copy too
    /// (a follower, which may be up to a moment behind the owner); `None`: never.
    pub fn with_hedging(mut self, after: Option<Duration>) -> Router {
        self.hedge_after = after;
        self
    }

    /// Collections created without `replication` get `n` copies of each shard.
    pub fn with_default_replication(mut self, n: u32) -> Router {
        self.default_replication = n.max(1);
        self
    }

    /// The link to node `id`, made once per address.
    fn link(&self, id: &str) -> Result<Link, Status> {
        let node = self.view.node(id).ok_or_else(|| {
            Status::unavailable(format!(
                "storage node `{id}` is not registered in etcd (down, or its lease expired)"
            ))
        })?;
        let mut links = self.links.lock().expect("not poisoned");
        if let Some(l) = links.get(&node.addr) {
            return Ok(l.clone());
        }
        let l = Link::with_key(&node.addr, self.timeout, self.key.as_deref()).map_err(|e| {
            Status::internal(format!(
                "bad address `{}` of storage node `{id}`: {e}",
                node.addr
            ))
        })?;
        links.insert(node.addr.clone(), l.clone());
        Ok(l)
    }

    /// The map of `collection`, or of the collection it is an alias of (every call but
    /// DeleteCollection takes an alias): the view's, or etcd's when the view has none yet
    /// (just created).
    async fn map(&self, collection: &str) -> Result<Arc<Versioned<ShardMap>>, Status> {
        let target = self.view.alias(collection);
        self.collection_map(target.as_deref().unwrap_or(collection))
            .await
    }

    /// The map of the collection of this very name.
    async fn collection_map(&self, collection: &str) -> Result<Arc<Versioned<ShardMap>>, Status> {
        if let Some(m) = self.view.map(collection) {
            return Ok(m);
        }
        self.view
            .refresh_map(collection)
            .await
            .map_err(etcd_unavailable)?
            .ok_or_else(|| Status::not_found(format!("collection `{collection}` does not exist")))
    }

    fn target(
        &self,
        map: &ShardMap,
        shard: u32,
        timeout: Duration,
        to: Holder,
    ) -> Result<Target, Status> {
        let s = map.shard(shard).ok_or_else(|| {
            Status::internal(format!(
                "shard {shard} of `{}` is missing from its map",
                map.collection
            ))
        })?;
        let owner = s.owner.as_deref().filter(|o| {
            to == Holder::Owner || self.view.node(o).is_some() || s.followers.is_empty()
        });
        let owner = match owner {
            Some(o) => o,
            None => s
                .followers
                .iter()
                .find(|f| to == Holder::Any && self.view.node(f).is_some())
                .map(String::as_str)
                .ok_or_else(|| {
                    Status::unavailable(format!(
                        "shard {shard} of `{}` has no owner and no registered follower: its nodes are gone and none took it over yet",
                        map.collection
                    ))
                })?,
        };
        // The call's own deadline, chosen by its caller (a flush may wait for graph builds
        // far longer than --storage-timeout-ms).
        let mut link = self.link(owner)?;
        link.timeout = timeout;
        Ok(Target {
            epoch: s.epoch,
            node: owner.to_string(),
            link,
        })
    }

    /// `call` on shard `shard` of `map`'s collection at its owner; sent again once, with the
    /// map read from etcd, when the owner says the route is out of date.
    async fn on_shard<T, F, Fut>(
        &self,
        map: &ShardMap,
        shard: u32,
        timeout: Duration,
        to: Holder,
        call: F,
    ) -> (Result<T, Status>, Option<Target>)
    where
        F: Fn(Target) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let collection = map.collection.as_str();
        let t = match self.target(map, shard, timeout, to) {
            Ok(t) => t,
            Err(e) => return (Err(e), None),
        };
        match call(t.clone()).await {
            Err(e) if is_stale(&e) => {
                let fresh = match self.view.refresh_map(collection).await {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        return (
                            Err(Status::not_found(format!(
                                "collection `{collection}` does not exist"
                            ))),
                            None,
                        );
                    }
                    Err(e) => return (Err(etcd_unavailable(e)), Some(t)),
                };
                match self.target(&fresh.value, shard, timeout, to) {
                    Ok(t2) => (call(t2.clone()).await, Some(t2)),
                    Err(e) => (Err(e), Some(t)),
                }
            }
            r => (r, Some(t)),
        }
    }

    /// A read's `first` call on a shard, hedged: when it has not answered within `after`, or
    /// failed, `attempt` is sent to another registered copy of the shard too; the first
    /// answer that is not an error wins (the first call's error when both fail).
    async fn hedged<T, F, Fut>(
        &self,
        map: &ShardMap,
        shard: u32,
        timeout: Duration,
        after: Duration,
        first: impl Future<Output = (Result<T, Status>, Option<Target>)>,
        attempt: F,
    ) -> (Result<T, Status>, Option<Target>)
    where
        F: Fn(Target) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        tokio::pin!(first);
        let early = tokio::select! {
            r = &mut first => Some(r),
            _ = tokio::time::sleep(after) => None,
        };
        if let Some(r) = &early
            && r.0.is_ok()
        {
            return early.expect("checked");
        }
        let tried = match &early {
            Some((_, t)) => t.as_ref().map(|t| t.node.clone()),
            None => self
                .target(map, shard, timeout, Holder::Any)
                .ok()
                .map(|t| t.node),
        };
        let Some(other) = self.other_copy(map, shard, timeout.saturating_sub(after), tried) else {
            return match early {
                Some(r) => r,
                None => first.await,
            };
        };
        let hedges = &akidb_instrumentation::metrics().cluster_hedged_reads;
        hedges.with_label_values(&["sent"]).inc();
        let second = attempt(other.clone());
        let won = |v: T| {
            hedges.with_label_values(&["won"]).inc();
            (Ok(v), Some(other.clone()))
        };
        match early {
            // The first copy failed fast: the other one's answer, else the first error.
            Some(r) => match second.await {
                Ok(v) => won(v),
                Err(_) => r,
            },
            None => {
                tokio::pin!(second);
                tokio::select! {
                    r = &mut first => match r.0 {
                        Ok(_) => r,
                        Err(_) => match second.await {
                            Ok(v) => won(v),
                            Err(_) => r,
                        },
                    },
                    b = &mut second => match b {
                        Ok(v) => won(v),
                        Err(_) => first.await,
                    },
                }
            }
        }
    }

    /// A registered copy of `shard` other than the one on node `not`, its calls limited to
    /// `timeout`.
    fn other_copy(
        &self,
        map: &ShardMap,
        shard: u32,
        timeout: Duration,
        not: Option<String>,
    ) -> Option<Target> {
        let s = map.shard(shard)?;
        let node = s
            .owner
            .iter()
            .chain(&s.followers)
            .find(|n| Some(*n) != not.as_ref() && self.view.node(n).is_some())?;
        let mut link = self.link(node).ok()?;
        link.timeout = timeout;
        Some(Target {
            epoch: s.epoch,
            node: node.clone(),
            link,
        })
    }

    /// An idempotent call of `method` on `msg` at each of `shards` of `map`, in parallel.
    async fn each<M, T, F, Fut>(
        &self,
        map: &ShardMap,
        shards: Vec<(u32, M)>,
        timeout: Duration,
        to: Holder,
        call: F,
    ) -> Vec<ShardAnswer<T>>
    where
        M: Clone,
        F: Fn(Link, tonic::Request<M>) -> Fut + Clone,
        Fut: Future<Output = Result<T, Status>>,
    {
        join_all(shards.into_iter().map(|(shard, msg)| {
            let call = call.clone();
            // One child span per shard: a fanned-out call is one trace, each shard's storage
            // span under its own.
            let span = tracing::info_span!(
                "shard",
                collection = map.collection.as_str(),
                shard,
                node = tracing::field::Empty,
                epoch = tracing::field::Empty,
            );
            async move {
                let attempt = |t: Target| {
                    let call = call.clone();
                    let msg = msg.clone();
                    async move {
                        let link = t.link.clone();
                        link.idempotent(|left| {
                            let r = routed(akidb_client::with_deadline(msg.clone(), left), t.epoch);
                            call(link.clone(), r)
                        })
                        .await
                    }
                };
                let first = self.on_shard(map, shard, timeout, to, &attempt);
                let (r, t) = match (to, self.hedge_after) {
                    (Holder::Any, Some(after)) => {
                        self.hedged(map, shard, timeout, after, first, &attempt)
                            .await
                    }
                    _ => first.await,
                };
                let r = r.map_err(|e| {
                    // tonic ends a call at its own deadline as CANCELLED "Timeout expired".
                    let e = match e.code() {
                        Code::Cancelled => Status::deadline_exceeded(format!(
                            "no answer within {} ms ({})",
                            timeout.as_millis(),
                            e.message()
                        )),
                        _ => e,
                    };
                    akidb_instrumentation::metrics()
                        .cluster_shard_calls_failed
                        .with_label_values(&[&format!("{:?}", e.code())])
                        .inc();
                    e
                });
                if let Some(t) = &t {
                    let span = tracing::Span::current();
                    span.record("node", t.node.as_str());
                    span.record("epoch", t.epoch);
                }
                (shard, r, t)
            }
            .instrument(span)
        }))
        .await
    }

    /// Writes stop while etcd does not answer: a shard may have moved without this router
    /// knowing.
    fn writable(&self) -> Result<(), Status> {
        if self.view.etcd_reachable() {
            return Ok(());
        }
        Err(Status::unavailable(format!(
            "the cluster's etcd ({}) has not answered for {}: writes stop until it does, since a shard may have moved meanwhile (searches go on, flagged stale)",
            self.view.etcd().endpoints(),
            match self.view.stale_for() {
                Some(d) => format!("{} s", d.as_secs()),
                None => "ever since this process started".into(),
            }
        )))
    }

    fn timeout(&self, caller: Option<Duration>) -> Duration {
        caller.map_or(self.timeout, |c| c.min(self.timeout))
    }

    // ---- collections ----

    /// Place `req`'s shards over the registered nodes and write the map; each owner creates
    /// its shard on the first call, which the answer (the collection's info) makes.
    pub async fn create_collection(
        &self,
        req: pb::CreateCollectionRequest,
        caller: Option<Duration>,
    ) -> Result<pb::CollectionInfo, Status> {
        let nodes: Vec<String> = self.view.nodes().into_iter().map(|n| n.id).collect();
        if nodes.is_empty() {
            return Err(Status::unavailable(
                "no storage node is registered in etcd: start one (akidb serve storage --etcd ... --node-id ...)",
            ));
        }
        if let Some(target) = self.view.alias(&req.name) {
            return Err(Status::already_exists(format!(
                "`{}` is an alias of collection `{target}`; delete the alias first or choose another name",
                req.name
            )));
        }
        let shards = req.shards.max(1);
        let replication = match req.replication {
            0 => self.default_replication,
            n => n,
        };
        let mut map = ShardMap::place(&req.name, shards, replication, &nodes);
        map.spec = req.encode_to_vec();
        match shardmap::swap(self.view.etcd(), &map, 0)
            .await
            .map_err(etcd_unavailable)?
        {
            Ok(_) => {}
            Err(_) => {
                return Err(Status::already_exists(format!(
                    "collection `{}` already exists",
                    req.name
                )));
            }
        }
        tracing::info!(collection = %req.name, shards, replication, "shard map written");
        self.view
            .refresh_map(&req.name)
            .await
            .map_err(etcd_unavailable)?;
        self.get_collection(&req.name, caller).await
    }

    /// The collection's info: its spec, and the counts summed over its shards.
    pub async fn get_collection(
        &self,
        name: &str,
        caller: Option<Duration>,
    ) -> Result<pb::CollectionInfo, Status> {
        let map = self.map(name).await?;
        let name = map.value.collection.as_str();
        let parts = self
            .each(
                &map.value,
                every_shard(&map.value, |s| pb::GetCollectionRequest {
                    name: shard_name(name, s),
                }),
                self.timeout(caller),
                Holder::Any,
                |l: Link, r| async move { l.storage().get_collection(r).await },
            )
            .await;
        let mut info = None::<pb::CollectionInfo>;
        for (shard, r, _) in parts {
            let got = r
                .map_err(|e| within_shard(name, shard, e))?
                .into_inner()
                .collection
                .unwrap_or_default();
            match info.as_mut() {
                None => info = Some(got),
                Some(i) => {
                    i.point_count += got.point_count;
                    i.indexed_point_count += got.indexed_point_count;
                    i.segment_count += got.segment_count;
                    i.version += got.version;
                }
            }
        }
        let mut info = info.unwrap_or_default();
        info.name = name.to_string();
        info.shards = map.value.shards.len() as u32;
        info.replication = map.value.replication;
        Ok(info)
    }

    /// Every collection of the cluster with its info; a collection with a shard that does not
    /// answer is listed with the counts of the shards that did.
    pub async fn list_collections(
        &self,
        caller: Option<Duration>,
    ) -> Result<Vec<pb::CollectionInfo>, Status> {
        if !self.view.synced() {
            return Err(Status::unavailable(
                "the cluster's etcd has not answered yet; retry",
            ));
        }
        let maps = self.view.maps();
        let infos = join_all(maps.iter().map(|m| async move {
            match self.get_collection(&m.value.collection, caller).await {
                Ok(i) => Some(i),
                Err(e) if e.code() == Code::NotFound => None,
                Err(_) => {
                    let spec = m.value.spec().unwrap_or_default();
                    Some(pb::CollectionInfo {
                        name: m.value.collection.clone(),
                        dimension: spec.dimension,
                        metric: spec.metric,
                        datatype: spec.datatype,
                        quantization: spec.quantization,
                        on_disk: spec.on_disk,
                        shards: m.value.shards.len() as u32,
                        ..Default::default()
                    })
                }
            }
        }))
        .await;
        Ok(infos.into_iter().flatten().collect())
    }

    /// Remove the map (the collection is gone for every router at once), then each shard's
    /// copy; a node that does not answer keeps its copy until it is deleted by hand.
    pub async fn delete_collection(&self, name: &str) -> Result<(), Status> {
        let map = self.collection_map(name).await?;
        let removed = self
            .view
            .etcd()
            .remove_if(&crate::keys::shard_map(name), map.revision)
            .await
            .map_err(etcd_unavailable)?;
        if !removed {
            return Err(Status::aborted(format!(
                "collection `{name}` changed while being deleted; retry"
            )));
        }
        self.view
            .refresh_map(name)
            .await
            .map_err(etcd_unavailable)?;
        // Its aliases go with it.
        self.change_aliases(|aliases| {
            aliases.retain(|_, c| c != name);
            Ok(())
        })
        .await?;
        for s in &map.value.shards {
            for node in s.owner.iter().chain(&s.followers) {
                let Ok(link) = self.link(node) else {
                    tracing::warn!(
                        collection = name,
                        shard = s.id,
                        node,
                        "node not registered: its copy of the shard stays"
                    );
                    continue;
                };
                let r = link
                    .storage()
                    .delete_collection(link.request(pb::DeleteCollectionRequest {
                        name: shard_name(name, s.id),
                    }))
                    .await;
                if let Err(e) = r
                    && e.code() != Code::NotFound
                {
                    tracing::warn!(collection = name, shard = s.id, node, error = %e, "deleting a shard's copy failed; it stays");
                }
            }
        }
        Ok(())
    }

    /// Apply an UpdateAliases call (`akidb_proto::aliases::apply`) to the aliases in etcd:
    /// every action or none, by one compare-and-swap. Returns the aliases after it.
    pub async fn update_aliases(
        &self,
        actions: &[pb::AliasAction],
    ) -> Result<BTreeMap<String, String>, Status> {
        self.writable()?;
        // The collections named: read from etcd when the view has not seen them yet.
        for a in actions {
            if let Some(pb::alias_action::Action::Create(al)) = &a.action
                && self.view.map(&al.collection).is_none()
            {
                self.view
                    .refresh_map(&al.collection)
                    .await
                    .map_err(etcd_unavailable)?;
            }
        }
        self.change_aliases(|aliases| {
            akidb_proto::aliases::apply(aliases, |c| self.view.map(c).is_some(), actions)
        })
        .await
    }

    /// Every alias (as this router's view has them).
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.view.aliases().value.clone()
    }

    /// Change the aliases in etcd with `change` by compare-and-swap, trying again (on the
    /// aliases as they are then) when another change came first.
    async fn change_aliases(
        &self,
        change: impl Fn(&mut BTreeMap<String, String>) -> Result<(), Status>,
    ) -> Result<BTreeMap<String, String>, Status> {
        let etcd = self.view.etcd();
        let (mut aliases, mut revision) = {
            let held = self.view.aliases();
            (held.value.clone(), held.revision)
        };
        for _ in 0..20 {
            let mut next = aliases.clone();
            change(&mut next)?;
            if next == aliases {
                return Ok(next);
            }
            let json = serde_json::to_vec(&next).expect("a map of strings serializes");
            match etcd
                .swap(crate::keys::ALIASES, revision, json, 0)
                .await
                .map_err(etcd_unavailable)?
            {
                Ok(at) => {
                    self.view.keep_aliases(next.clone(), at);
                    return Ok(next);
                }
                Err(now) => {
                    (aliases, revision) = match now {
                        Some(kv) => (
                            serde_json::from_slice(&kv.value).map_err(|e| {
                                Status::internal(format!("the aliases in etcd are unreadable: {e}"))
                            })?,
                            kv.mod_revision,
                        ),
                        None => (BTreeMap::new(), 0),
                    };
                }
            }
        }
        Err(Status::aborted(
            "the aliases kept changing while this call changed them; retry",
        ))
    }

    // ---- writes ----

    /// Split the points by shard; each shard's owner takes its part whole or not at all.
    pub async fn upsert(&self, req: pb::UpsertRequest) -> Result<pb::UpsertResponse, Status> {
        self.writable()?;
        let map = self.map(&req.collection).await?;
        let n = map.value.shards.len() as u32;
        let parts = by_point_id(req.points, n, |p| p.id.as_ref())?;
        let c = map.value.collection.clone();
        let msgs = parts
            .into_iter()
            .map(|(s, points)| {
                (
                    s,
                    pb::UpsertRequest {
                        collection: shard_name(&c, s),
                        points,
                    },
                )
            })
            .collect();
        let results = self
            .each(
                &map.value,
                msgs,
                self.timeout,
                Holder::Owner,
                |l: Link, r| async move { l.storage().upsert(r).await.map(|r| r.into_inner()) },
            )
            .await;
        combine("upsert", &c, results, |a, b| {
            a.upserted += b.upserted;
            a.sequence = a.sequence.max(b.sequence);
        })
    }

    /// Ids: split by shard. A filter: every shard, and every shard must answer.
    pub async fn delete(&self, req: pb::DeleteRequest) -> Result<pb::DeleteResponse, Status> {
        self.writable()?;
        let map = self.map(&req.collection).await?;
        let c = map.value.collection.clone();
        let parts = by_shard(
            map.value.shards.len() as u32,
            req.ids,
            req.filter.is_some(),
            |s| pb::DeleteRequest {
                collection: shard_name(&c, s),
                ids: Vec::new(),
                filter: req.filter.clone(),
            },
            |r| &mut r.ids,
        )?;
        let results = self
            .each(
                &map.value,
                parts.into_iter().collect(),
                self.timeout,
                Holder::Owner,
                |l: Link, r| async move { l.storage().delete(r).await.map(|r| r.into_inner()) },
            )
            .await;
        combine("delete", &c, results, |a, b| {
            a.deleted += b.deleted;
            a.sequence = a.sequence.max(b.sequence);
        })
    }

    /// Split by shard, as an upsert; each shard's part is atomic.
    pub async fn update_vectors(
        &self,
        req: pb::UpdateVectorsRequest,
    ) -> Result<pb::UpdateVectorsResponse, Status> {
        self.writable()?;
        let map = self.map(&req.collection).await?;
        let n = map.value.shards.len() as u32;
        let parts = by_point_id(req.points, n, |p| p.id.as_ref())?;
        let c = map.value.collection.clone();
        let msgs = parts
            .into_iter()
            .map(|(s, points)| {
                let collection = shard_name(&c, s);
                (s, pb::UpdateVectorsRequest { collection, points })
            })
            .collect();
        let results = self
            .each(
                &map.value,
                msgs,
                self.timeout,
                Holder::Owner,
                |l: Link, r| async move {
                    l.storage().update_vectors(r).await.map(|r| r.into_inner())
                },
            )
            .await;
        combine("update_vectors", &c, results, |a, b| {
            a.updated += b.updated;
            a.sequence = a.sequence.max(b.sequence);
        })
    }

    /// Ids: split by shard. A filter: every shard, and every shard must answer.
    pub async fn update_payload(
        &self,
        req: pb::UpdatePayloadRequest,
    ) -> Result<pb::UpdatePayloadResponse, Status> {
        self.writable()?;
        let map = self.map(&req.collection).await?;
        let c = map.value.collection.clone();
        let parts = by_shard(
            map.value.shards.len() as u32,
            req.ids,
            req.filter.is_some(),
            |s| pb::UpdatePayloadRequest {
                collection: shard_name(&c, s),
                ids: Vec::new(),
                filter: req.filter.clone(),
                change: req.change.clone(),
            },
            |r| &mut r.ids,
        )?;
        let results = self
            .each(
                &map.value,
                parts.into_iter().collect(),
                self.timeout,
                Holder::Owner,
                |l: Link, r| async move {
                    l.storage().update_payload(r).await.map(|r| r.into_inner())
                },
            )
            .await;
        combine("update_payload", &c, results, |a, b| {
            a.updated += b.updated;
            a.sequence = a.sequence.max(b.sequence);
        })
    }

    /// Every shard, with the caller's deadline (a flush may wait for graph builds).
    pub async fn flush(
        &self,
        req: pb::FlushRequest,
        caller: Duration,
    ) -> Result<pb::FlushResponse, Status> {
        let map = self.map(&req.collection).await?;
        let c = map.value.collection.clone();
        let msgs = every_shard(&map.value, |s| pb::FlushRequest {
            collection: shard_name(&c, s),
            wait_indexed: req.wait_indexed,
        });
        let results = self
            .each(
                &map.value,
                msgs,
                caller,
                Holder::Owner,
                |l: Link, r| async move { l.storage().flush(r).await.map(|r| r.into_inner()) },
            )
            .await;
        combine("flush", &c, results, |a, b| {
            a.sealed_points += b.sealed_points;
            a.indexed_point_count += b.indexed_point_count;
            a.point_count += b.point_count;
        })
    }

    // ---- reads ----

    /// Every shard searched with the call's deadline; the best `k` of the shards that
    /// answered, `partial` when some did not.
    pub async fn search(
        &self,
        req: pb::SearchRequest,
        caller: Option<Duration>,
    ) -> Result<pb::SearchResponse, Status> {
        let map = self.map(&req.collection).await?;
        let c = map.value.collection.clone();
        let k = req.k as usize;
        let msgs = every_shard(&map.value, |s| {
            let mut m = req.clone();
            m.collection = shard_name(&c, s);
            m
        });
        let results = self
            .each(
                &map.value,
                msgs,
                self.timeout(caller),
                Holder::Any,
                |l: Link, r| async move { l.storage().search(r).await.map(|r| r.into_inner()) },
            )
            .await;
        self.merge(&c, k, results)
    }

    /// Searches of one collection: each shard gets one SearchBatch of all of them, and each
    /// search's answers are merged as [`Router::search`] merges them. Searches of several
    /// collections go one by one.
    pub async fn search_batch(
        &self,
        searches: Vec<pb::SearchRequest>,
        caller: Option<Duration>,
    ) -> Vec<Result<pb::SearchResponse, Status>> {
        let one = searches
            .windows(2)
            .all(|w| w[0].collection == w[1].collection);
        if !one || searches.is_empty() {
            return join_all(searches.into_iter().map(|s| self.search(s, caller))).await;
        }
        let map = match self.map(&searches[0].collection).await {
            Ok(m) => m,
            Err(e) => return searches.iter().map(|_| Err(e.clone())).collect(),
        };
        let c = map.value.collection.clone();
        let msgs = every_shard(&map.value, |s| pb::SearchBatchRequest {
            searches: searches
                .iter()
                .map(|r| {
                    let mut m = r.clone();
                    m.collection = shard_name(&c, s);
                    m
                })
                .collect(),
        });
        let results = self
            .each(&map.value, msgs, self.timeout(caller), Holder::Any, |l: Link, r| async move {
                l.storage().search_batch(r).await.map(|r| r.into_inner())
            })
            .await;
        // Per shard, its answers in the order of the searches.
        let mut per_shard: Vec<ShardAnswer<std::vec::IntoIter<pb::SearchResponse>>> = results
            .into_iter()
            .map(|(s, r, t)| (s, r.map(|b| b.results.into_iter()), t))
            .collect();
        searches
            .iter()
            .map(|req| {
                let parts = per_shard
                    .iter_mut()
                    .map(|(s, r, t)| {
                        let one = match r {
                            Ok(it) => it.next().ok_or_else(|| {
                                Status::internal(
                                    "a shard answered a search batch with fewer results",
                                )
                            }),
                            Err(e) => Err(e.clone()),
                        };
                        (*s, one, t.clone())
                    })
                    .collect();
                self.merge(&c, req.k as usize, parts)
            })
            .collect()
    }

    /// One search's answers from the shards, merged: the best `k` hits of the shards that
    /// answered (in the order their stats say: `lower_is_closer`), `partial` with the shards
    /// that did not answer in time.
    fn merge(
        &self,
        c: &str,
        k: usize,
        results: Vec<ShardAnswer<pb::SearchResponse>>,
    ) -> Result<pb::SearchResponse, Status> {
        let mut out = pb::SearchResponse::default();
        let mut stats = pb::SearchStats::default();
        for (shard, r, t) in results {
            match r {
                Ok(res) => {
                    let st = res.stats.unwrap_or_default();
                    stats.points_exact += st.points_exact;
                    stats.points_graph += st.points_graph;
                    stats.segments_searched += st.segments_searched;
                    stats.loaded |= st.loaded;
                    stats.tier = stats.tier.max(st.tier);
                    stats.ef = stats.ef.max(st.ef);
                    stats.rescored = stats.rescored.max(st.rescored);
                    stats.sparse_scored += st.sparse_scored;
                    stats.sparse_postings += st.sparse_postings;
                    stats.collection_version += st.collection_version;
                    stats.lower_is_closer |= st.lower_is_closer;
                    out.hits.extend(res.hits);
                    if let Some(t) = t {
                        out.shards.push(pb::ShardRead {
                            shard,
                            node: t.node,
                            epoch: t.epoch,
                            version: st.collection_version,
                            log_sequence: st.log_sequence,
                        });
                    }
                }
                // The shard's node is down, paused or cut off: the result is partial.
                Err(e) if matches!(e.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                    tracing::warn!(collection = %c, shard, error = %e, "shard left out of a search");
                    out.missing_shards.push(shard);
                }
                Err(e) => return Err(within_shard(c, shard, e)),
            }
        }
        if !out.missing_shards.is_empty() && out.shards.is_empty() {
            return Err(Status::unavailable(format!(
                "no shard of `{c}` answered the search (shards {} missing); retry",
                list(&out.missing_shards)
            )));
        }
        out.partial = !out.missing_shards.is_empty();
        if out.partial {
            akidb_instrumentation::metrics().search_partial.inc();
        }
        out.stale = !self.view.etcd_reachable();
        out.hits.sort_by(|a, b| {
            let o = a.score.total_cmp(&b.score);
            if stats.lower_is_closer {
                o
            } else {
                o.reverse()
            }
        });
        out.hits.truncate(k);
        // Not one collection's version: a result cache must not key on it.
        stats.collection_epoch = 0;
        out.stats = Some(stats);
        Ok(out)
    }

    /// The ids split by shard; the points in the order asked.
    pub async fn get(
        &self,
        req: pb::GetRequest,
        caller: Option<Duration>,
    ) -> Result<pb::GetResponse, Status> {
        let map = self.map(&req.collection).await?;
        let n = map.value.shards.len() as u32;
        let c = map.value.collection.clone();
        let mut parts: BTreeMap<u32, pb::GetRequest> = BTreeMap::new();
        for id in &req.ids {
            let s = shard_of_id(Some(id), n)?;
            parts
                .entry(s)
                .or_insert_with(|| pb::GetRequest {
                    collection: shard_name(&c, s),
                    ids: Vec::new(),
                    with_payload: req.with_payload,
                    with_vector: req.with_vector,
                })
                .ids
                .push(id.clone());
        }
        let results = self
            .each(
                &map.value,
                parts.into_iter().collect(),
                self.timeout(caller),
                Holder::Any,
                |l: Link, r| async move { l.storage().get(r).await.map(|r| r.into_inner()) },
            )
            .await;
        let mut found: Vec<pb::RetrievedPoint> = Vec::new();
        for (shard, r, _) in results {
            found.extend(r.map_err(|e| within_shard(&c, shard, e))?.points);
        }
        // The order of the request (storage answers in it, per shard).
        let order: HashMap<String, usize> = req
            .ids
            .iter()
            .enumerate()
            .rev()
            .map(|(i, id)| (id_key(id), i))
            .collect();
        found.sort_by_key(|p| {
            p.id.as_ref()
                .and_then(|id| order.get(&id_key(id)).copied())
                .unwrap_or(usize::MAX)
        });
        Ok(pb::GetResponse { points: found })
    }

    /// The counts of every shard, summed.
    pub async fn count(
        &self,
        req: pb::CountRequest,
        caller: Option<Duration>,
    ) -> Result<pb::CountResponse, Status> {
        let map = self.map(&req.collection).await?;
        let c = map.value.collection.clone();
        let msgs = every_shard(&map.value, |s| pb::CountRequest {
            collection: shard_name(&c, s),
            filter: req.filter.clone(),
        });
        let results = self
            .each(
                &map.value,
                msgs,
                self.timeout(caller),
                Holder::Any,
                |l: Link, r| async move { l.storage().count(r).await.map(|r| r.into_inner()) },
            )
            .await;
        let mut count = 0;
        for (shard, r, _) in results {
            count += r.map_err(|e| within_shard(&c, shard, e))?.count;
        }
        Ok(pb::CountResponse { count })
    }

    /// A page of every shard after the cursor, merged in id order (integers, then UUIDs):
    /// the first `limit` of them; the cursor names the last point of the page.
    pub async fn scroll(
        &self,
        req: pb::ScrollRequest,
        caller: Option<Duration>,
    ) -> Result<pb::ScrollResponse, Status> {
        let map = self.map(&req.collection).await?;
        let c = map.value.collection.clone();
        let limit = if req.limit == 0 {
            akidb_proto::limits::DEFAULT_SCROLL_LIMIT
        } else {
            req.limit as usize
        };
        let msgs = every_shard(&map.value, |s| {
            let mut m = req.clone();
            m.collection = shard_name(&c, s);
            m
        });
        let results = self
            .each(
                &map.value,
                msgs,
                self.timeout(caller),
                Holder::Any,
                |l: Link, r| async move { l.storage().scroll(r).await.map(|r| r.into_inner()) },
            )
            .await;
        let mut points = Vec::new();
        let mut more = false;
        for (shard, r, _) in results {
            let page = r.map_err(|e| within_shard(&c, shard, e))?;
            more |= !page.next_cursor.is_empty();
            points.extend(page.points);
        }
        points.sort_by(|a, b| id_order(a.id.as_ref()).cmp(&id_order(b.id.as_ref())));
        more |= points.len() > limit;
        points.truncate(limit);
        let next_cursor = match points.last().and_then(|p| p.id.as_ref()) {
            Some(id) if more => akidb_proto::convert::scroll_cursor(id),
            _ => String::new(),
        };
        Ok(pb::ScrollResponse {
            points,
            next_cursor,
        })
    }
}

/// Mirror whether the cluster can serve (etcd listed, at least one storage node registered)
/// into `reporter` for the services in `local`, until `stop`.
pub async fn watch_health(
    router: &Router,
    reporter: tonic_health::server::HealthReporter,
    local: Vec<String>,
    stop: impl Future<Output = ()>,
) {
    let what = format!("storage nodes in etcd {}", router.view.etcd().endpoints());
    let view = router.view.clone();
    let probe = move || {
        let v = view.clone();
        async move { v.synced() && !v.nodes().is_empty() }
    };
    akidb_client::watch_serving(
        &what,
        probe,
        reporter,
        local,
        Duration::from_millis(500),
        stop,
    )
    .await
}

/// `make(shard)` for every shard of `map`: a call to each.
fn every_shard<M>(map: &ShardMap, make: impl Fn(u32) -> M) -> Vec<(u32, M)> {
    (0..map.shards.len() as u32).map(|s| (s, make(s))).collect()
}

/// A point id as a map key.
fn id_key(id: &pb::PointId) -> String {
    match &id.kind {
        Some(pb::point_id::Kind::Num(n)) => format!("n{n}"),
        Some(pb::point_id::Kind::Uuid(u)) => {
            format!("u{}", canonical_uuid(u).unwrap_or_else(|_| u.clone()))
        }
        None => String::new(),
    }
}

/// An error of shard `shard`, saying so.
fn within_shard(collection: &str, shard: u32, e: Status) -> Status {
    Status::new(
        e.code(),
        format!("shard {shard} of `{collection}`: {}", e.message()),
    )
}

/// The shards' answers to one write: their sum when every shard took its part; otherwise an
/// error with the first failure's code that says which shards took their part and which did
/// not.
/// A write by ids and/or a filter, as one request per shard (`part` makes shard `s`'s, `ids`
/// reaches its ids): the ids go to their shards; a filter (or no ids) goes to every shard.
/// Points split by the shard of their id; an error names the point's position.
fn by_point_id<T>(
    points: Vec<T>,
    shards: u32,
    id: impl Fn(&T) -> Option<&pb::PointId>,
) -> Result<BTreeMap<u32, Vec<T>>, Status> {
    let mut parts: BTreeMap<u32, Vec<T>> = BTreeMap::new();
    for (i, p) in points.into_iter().enumerate() {
        let s = shard_of_id(id(&p), shards)
            .map_err(|e| Status::new(e.code(), format!("point #{i}: {}", e.message())))?;
        parts.entry(s).or_default().push(p);
    }
    Ok(parts)
}

fn by_shard<R>(
    shards: u32,
    ids: Vec<pb::PointId>,
    filter: bool,
    part: impl Fn(u32) -> R,
    ids_of: impl Fn(&mut R) -> &mut Vec<pb::PointId>,
) -> Result<BTreeMap<u32, R>, Status> {
    let mut parts = BTreeMap::new();
    if filter || ids.is_empty() {
        parts.extend((0..shards).map(|s| (s, part(s))));
    }
    for id in ids {
        let s = shard_of_id(Some(&id), shards)?;
        ids_of(parts.entry(s).or_insert_with(|| part(s))).push(id);
    }
    Ok(parts)
}

fn combine<T: Default>(
    op: &str,
    collection: &str,
    results: Vec<ShardAnswer<T>>,
    add: impl Fn(&mut T, T),
) -> Result<T, Status> {
    let mut sum = T::default();
    let mut took = Vec::new();
    let mut failed: Vec<(u32, Status)> = Vec::new();
    for (shard, r, _) in results {
        match r {
            Ok(v) => {
                add(&mut sum, v);
                took.push(shard);
            }
            Err(e) => failed.push((shard, e)),
        }
    }
    let Some((first, e)) = failed.first() else {
        return Ok(sum);
    };
    if took.is_empty() && failed.len() == 1 {
        return Err(within_shard(collection, *first, e.clone()));
    }
    let why: Vec<String> = failed
        .iter()
        .map(|(s, e)| format!("shard {s}: {}", e.message()))
        .collect();
    Err(Status::new(
        e.code(),
        format!(
            "{op} on `{collection}` applied on shards [{}] only, not on [{}] ({}); nothing was half-applied within a shard, and the request is safe to send again",
            list(&took),
            list(&failed.iter().map(|(s, _)| *s).collect::<Vec<_>>()),
            why.join("; ")
        ),
    ))
}
