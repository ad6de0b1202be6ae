//! The `StorageService` gRPC handlers: thin wrappers that convert, call the engine on the
//! blocking pool, and record metrics.

use crate::convert::*;
use crate::engine::catalog::{Access, Lookup};
use crate::engine::{Engine, blocking, with_engine};
use crate::error::{EmptyRequest, Result, StorageError};
use crate::model::{CollectionStats, Tier};
use crate::shardlog::Write;
use crate::store::{CollectionStore, Include, ScrollParams};
use crate::validate;
use akidb_instrumentation::metrics;
use akidb_proto::v1 as pb;
use akidb_proto::v1::shard_log_entry::Op;
use akidb_proto::v1::storage_service_server::StorageService;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct StorageApi {
    pub engine: Arc<Engine>,
    /// A node of a cluster (`--etcd`): admits the calls routed to its shards.
    pub gate: Option<Arc<crate::shards::ShardGate>>,
}

/// Request metadata: "I hold a result of this very search computed at `<epoch>.<version>`".
pub const IF_VERSION_HEADER: &str = "akidb-if-version";
/// Response metadata: the collection is still at the version asked about; the response
/// carries no hits, only the version in its stats.
pub const NOT_MODIFIED_HEADER: &str = "akidb-not-modified";

/// Searches cheaper than this (vector components scored exactly, roughly) run on the async
/// thread that received them: handing them to the blocking pool costs more than they do.
const INLINE_EXACT_BUDGET: u64 = 512 * 1024;

fn search_one(engine: &Arc<Engine>, req: pb::SearchRequest) -> Result<pb::SearchResponse> {
    let start = Instant::now();
    let access = engine.lookup(&req.collection)?.get()?;
    let stats = access.collection.stats();
    search_in(
        &*access.collection,
        &stats,
        req,
        start,
        access.served,
        access.loaded,
    )
}

/// `akidb_search_duration_seconds` and `akidb_upsert_duration_seconds` of a tier, their
/// labels looked up once (every search and upsert observes them); traced requests leave
/// their trace id as exemplar.
fn tier_duration(
    upsert: bool,
    tier: Tier,
) -> &'static akidb_instrumentation::exemplar::TracedHistogram {
    use akidb_instrumentation::exemplar::TracedHistogram;
    static BY_TIER: [[std::sync::OnceLock<TracedHistogram>; 3]; 2] =
        [const { [const { std::sync::OnceLock::new() }; 3] }; 2];
    BY_TIER[upsert as usize][tier as usize].get_or_init(|| {
        let m = metrics();
        let vec = if upsert {
            &m.upsert_duration
        } else {
            &m.search_duration
        };
        TracedHistogram::new(vec, &[tier.as_str()])
    })
}

fn search_in(
    coll: &dyn CollectionStore,
    stats: &CollectionStats,
    req: pb::SearchRequest,
    start: Instant,
    served: Tier,
    loaded: bool,
) -> Result<pb::SearchResponse> {
    let params = search_from_pb(req)?;
    validate::search(&stats.spec, &params)?;
    let lower_is_closer = params.metric(&stats.spec) == crate::model::Metric::L2;
    let (hits, info) = {
        let _s = akidb_instrumentation::context::step_span(|| {
            tracing::info_span!("segment.search", k = params.k, exact = params.exact)
        })
        .entered();
        coll.search(&params)?
    };
    tier_duration(false, served).observe(start.elapsed().as_secs_f64());
    Ok(pb::SearchResponse {
        hits: hits.into_iter().map(hit_to_pb).collect(),
        stats: Some(pb::SearchStats {
            tier: tier_to_pb(served) as i32,
            loaded,
            points_exact: info.points_exact,
            points_graph: info.points_graph,
            cache_hit: false,
            segments_searched: info.segments_searched,
            collection_version: info.version,
            collection_epoch: info.epoch,
            ef: info.ef as u32,
            rescored: info.rescored as u32,
            log_sequence: 0,
            sparse_scored: info.sparse_scored,
            sparse_postings: info.sparse_postings,
            lower_is_closer,
        }),
        ..Default::default()
    })
}

/// Whether a search is cheap enough to run inline on the async thread: through the graph,
/// without a filter, over few points that still need an exact scan.
fn cheap(stats: &CollectionStats, req: &pb::SearchRequest) -> bool {
    let unindexed = stats.point_count.saturating_sub(stats.indexed_point_count);
    !req.exact
        && req.filter.is_none()
        && req.sparse.is_none()
        && req.vector_name.is_empty()
        && unindexed * stats.spec.dimension as u64 <= INLINE_EXACT_BUDGET
}

/// A Query's branches searched one after the other in `coll`, then fused
/// ([`akidb_proto::fusion`]). A branch's refusal names the branch.
fn query_in(
    coll: &dyn CollectionStore,
    stats: &CollectionStats,
    req: pb::QueryRequest,
    start: Instant,
    served: Tier,
    loaded: bool,
) -> std::result::Result<pb::QueryResponse, Status> {
    let mut results = Vec::with_capacity(req.branches.len());
    for (i, b) in akidb_proto::fusion::branch_searches(&req)
        .into_iter()
        .enumerate()
    {
        // Each branch observes the search latency as one search: the first from when the
        // Query arrived, the others from when they began.
        let began = if i == 0 { start } else { Instant::now() };
        let r = search_in(coll, stats, b, began, served, loaded)
            .map_err(|e| akidb_proto::fusion::in_branch(i, e.into()))?;
        results.push(r);
    }
    Ok(akidb_proto::fusion::response(
        &results,
        &req.weights,
        req.fusion,
        req.rrf_k,
        req.k,
    ))
}

fn parse_if_version(req: &Request<pb::SearchRequest>) -> Option<(u64, u64)> {
    let v = req.metadata().get(IF_VERSION_HEADER)?.to_str().ok()?;
    let (e, v) = v.split_once('.')?;
    Some((e.parse().ok()?, v.parse().ok()?))
}

/// Run a batch of searches across the cores (one scoped thread per core, contiguous chunks,
/// results in request order).
fn search_many(
    engine: &Arc<Engine>,
    searches: Vec<pb::SearchRequest>,
) -> Result<Vec<pb::SearchResponse>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(searches.len());
    if threads <= 1 || searches.len() < 8 {
        return searches
            .into_iter()
            .map(|s| search_one(engine, s))
            .collect();
    }
    let chunk = searches.len().div_ceil(threads);
    let mut parts: Vec<Vec<pb::SearchRequest>> = Vec::with_capacity(threads);
    let mut it = searches.into_iter();
    loop {
        let part: Vec<_> = it.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let scope = akidb_instrumentation::context::RequestScope::current();
    let outs: Vec<Result<Vec<pb::SearchResponse>>> = std::thread::scope(|sc| {
        let mut handles = Vec::with_capacity(parts.len());
        let mut parts = parts.into_iter();
        let first = parts.next().unwrap_or_default();
        for part in parts {
            let scope = scope.clone();
            handles.push(sc.spawn(move || {
                scope.in_scope(|| part.into_iter().map(|s| search_one(engine, s)).collect())
            }));
        }
        let mut outs = vec![first.into_iter().map(|s| search_one(engine, s)).collect()];
        for h in handles {
            outs.push(h.join().unwrap_or_else(|_| {
                Err(StorageError::WorkerFailed("search worker panicked".into()))
            }));
        }
        outs
    });
    let mut results = Vec::new();
    for o in outs {
        results.extend(o?);
    }
    Ok(results)
}

impl StorageApi {
    /// The collection a request names: a hot one at once, a warm or cold one loaded on the
    /// blocking pool first.
    async fn access(&self, name: &str) -> Result<Access> {
        match self.engine.lookup(name)? {
            Lookup::Hot(access) => Ok(access),
            Lookup::Unloaded(loader) => blocking(move || loader.load()).await,
        }
    }

    /// A call routed to a shard (it carries the shard's epoch) runs only if this node's gate
    /// admits it (`Some`: this node's copy, at the call's epoch); a call not routed runs as
    /// asked (`None`).
    async fn admit<T>(
        &self,
        req: &Request<T>,
        name: &str,
        write: bool,
    ) -> Result<Option<(Arc<crate::shards::ShardGate>, crate::shards::Admitted)>, Status> {
        match (akidb_cluster::route::epoch_of(req), &self.gate) {
            (None, _) => Ok(None),
            (Some(epoch), Some(gate)) => {
                let admitted = gate.admit(name, epoch, write).await?;
                Ok(Some((gate.clone(), admitted)))
            }
            (Some(_), None) => Err(Status::failed_precondition(
                "this storage node is not part of a cluster (started without --etcd), but the call was routed to a shard",
            )),
        }
    }

    /// [`Self::access`], for calls that need only the collection.
    async fn collection(&self, name: &str) -> Result<Arc<dyn CollectionStore>> {
        Ok(self.access(name).await?.collection)
    }
}

#[tonic::async_trait]
impl StorageService for StorageApi {
    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        let spec = spec_from_pb(req.get_ref())?;
        let stats = with_engine(&self.engine, move |engine| engine.create(spec)).await?;
        tracing::info!(collection = %stats.spec.name, dimension = stats.spec.dimension, metric = stats.spec.metric.as_str(), "collection created");
        Ok(Response::new(pb::CreateCollectionResponse {
            collection: Some(info_to_pb(&stats)),
        }))
    }

    async fn get_collection(
        &self,
        req: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::GetCollectionResponse>, Status> {
        self.admit(&req, &req.get_ref().name, false).await?;
        let name = req.into_inner().name;
        let stats = with_engine(&self.engine, move |engine| engine.stats(&name)).await?;
        Ok(Response::new(pb::GetCollectionResponse {
            collection: Some(info_to_pb(&stats)),
        }))
    }

    async fn list_collections(
        &self,
        _req: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let collections = self.engine.list().iter().map(info_to_pb).collect();
        let aliases = akidb_proto::aliases::to_pb(&self.engine.aliases());
        Ok(Response::new(pb::ListCollectionsResponse {
            collections,
            aliases,
        }))
    }

    async fn update_aliases(
        &self,
        req: Request<pb::UpdateAliasesRequest>,
    ) -> Result<Response<pb::UpdateAliasesResponse>, Status> {
        let actions = req.into_inner().actions;
        let engine = self.engine.clone();
        let aliases = blocking(move || Ok(engine.update_aliases(&actions))).await??;
        tracing::info!(aliases = aliases.len(), "aliases updated");
        Ok(Response::new(pb::UpdateAliasesResponse {
            aliases: akidb_proto::aliases::to_pb(&aliases),
        }))
    }

    async fn delete_collection(
        &self,
        req: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        let name = req.into_inner().name;
        let engine = self.engine.clone();
        let n = name.clone();
        blocking(move || engine.delete(&n)).await?;
        if let Some(gate) = &self.gate {
            // Called by the router once the collection's map is gone: its logs go too.
            gate.logs.forget(&name, true);
        }
        metrics().forget_collection(&name);
        tracing::info!(collection = %name, "collection deleted");
        Ok(Response::new(pb::DeleteCollectionResponse {}))
    }

    async fn upsert(
        &self,
        req: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        let start = Instant::now();
        let routed = self.admit(&req, &req.get_ref().collection, true).await?;
        let req = req.into_inner();
        if let Some((gate, admitted)) = routed {
            // A shard of a cluster: through its log in the object store.
            let name = req.collection.clone();
            let n = req.points.len() as u64;
            let applied = gate
                .write(&admitted, &name, Write::Op(Op::Upsert(req)))
                .await?;
            let coll = self.collection(&name).await?;
            let stats = coll.stats();
            tier_duration(true, stats.tier).observe(start.elapsed().as_secs_f64());
            metrics().upserted_points.inc_by(n);
            metrics().set_collection_points(&name, stats.point_count);
            return Ok(Response::new(pb::UpsertResponse {
                upserted: n,
                sequence: applied.log_sequence,
            }));
        }
        let coll = self.collection(&req.collection).await?;
        let points = req
            .points
            .into_iter()
            .map(point_from_pb)
            .collect::<Result<Vec<_>>>()?;
        let n = points.len() as u64;
        let c2 = coll.clone();
        // The collection validates the batch (dimension, finite values) before the WAL.
        let seq = blocking(move || c2.upsert(points)).await?;
        let stats = coll.stats();
        let m = metrics();
        tier_duration(true, stats.tier).observe(start.elapsed().as_secs_f64());
        m.upserted_points.inc_by(n);
        m.set_collection_points(&stats.spec.name, stats.point_count);
        Ok(Response::new(pb::UpsertResponse {
            upserted: n,
            sequence: seq,
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let routed = self.admit(&req, &req.get_ref().collection, true).await?;
        let req = req.into_inner();
        if let Some((gate, admitted)) = routed {
            let name = req.collection.clone();
            let applied = gate
                .write(&admitted, &name, Write::Op(Op::Delete(req)))
                .await?;
            let coll = self.collection(&name).await?;
            metrics().deleted_points.inc_by(applied.points);
            metrics().set_collection_points(&name, coll.stats().point_count);
            return Ok(Response::new(pb::DeleteResponse {
                deleted: applied.points,
                sequence: applied.log_sequence,
            }));
        }
        let coll = self.collection(&req.collection).await?;
        let keys = keys_from_pb(&req.ids)?;
        let filter = filter_from_pb(req.filter.as_ref())?;
        if keys.is_empty() && filter.is_none() {
            return Err(StorageError::EmptyRequest(EmptyRequest::Delete).into());
        }
        let c2 = coll.clone();
        let (deleted, seq) = blocking(move || c2.delete(&keys, filter.as_ref())).await?;
        metrics().deleted_points.inc_by(deleted);
        let stats = coll.stats();
        metrics().set_collection_points(&stats.spec.name, stats.point_count);
        Ok(Response::new(pb::DeleteResponse {
            deleted,
            sequence: seq,
        }))
    }

    async fn update_payload(
        &self,
        req: Request<pb::UpdatePayloadRequest>,
    ) -> Result<Response<pb::UpdatePayloadResponse>, Status> {
        let routed = self.admit(&req, &req.get_ref().collection, true).await?;
        let req = req.into_inner();
        let (keys, filter, change) = crate::shardlog::update_payload_from_pb(&req)?;
        if let Some((gate, admitted)) = routed {
            let name = req.collection.clone();
            let write = Write::UpdatePayload(keys, filter, change);
            let applied = gate.write(&admitted, &name, write).await?;
            metrics().payload_updated_points.inc_by(applied.points);
            return Ok(Response::new(pb::UpdatePayloadResponse {
                updated: applied.points,
                sequence: applied.log_sequence,
            }));
        }
        let coll = self.collection(&req.collection).await?;
        let c2 = coll.clone();
        let (updated, seq) =
            blocking(move || c2.update_payload(&keys, filter.as_ref(), &change)).await?;
        metrics().payload_updated_points.inc_by(updated);
        Ok(Response::new(pb::UpdatePayloadResponse {
            updated,
            sequence: seq,
        }))
    }

    async fn update_vectors(
        &self,
        req: Request<pb::UpdateVectorsRequest>,
    ) -> Result<Response<pb::UpdateVectorsResponse>, Status> {
        let routed = self.admit(&req, &req.get_ref().collection, true).await?;
        let req = req.into_inner();
        let updates = crate::convert::vector_updates_from_pb(req.points)?;
        if let Some((gate, admitted)) = routed {
            let write = Write::UpdateVectors(updates);
            let applied = gate.write(&admitted, &req.collection, write).await?;
            return Ok(Response::new(pb::UpdateVectorsResponse {
                updated: applied.points,
                sequence: applied.log_sequence,
            }));
        }
        let coll = self.collection(&req.collection).await?;
        let (updated, sequence) = blocking(move || coll.update_vectors(&updates)).await?;
        Ok(Response::new(pb::UpdateVectorsResponse {
            updated,
            sequence,
        }))
    }

    async fn flush(
        &self,
        req: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        self.admit(&req, &req.get_ref().collection, true).await?;
        let req = req.into_inner();
        let coll = self.collection(&req.collection).await?;
        let c2 = coll.clone();
        let wait = req.wait_indexed;
        let sealed_points = blocking(move || c2.flush(wait)).await?;
        let stats = coll.stats();
        tracing::info!(collection = %req.collection, sealed_points, wait_indexed = wait, "collection flushed");
        Ok(Response::new(pb::FlushResponse {
            sealed_points,
            indexed_point_count: stats.indexed_point_count,
            point_count: stats.point_count,
        }))
    }

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let start = Instant::now();
        let if_version = parse_if_version(&req);
        let routed = self.admit(&req, &req.get_ref().collection, false).await?;
        let log_sequence = routed.map_or(0, |(_, a)| a.shard.applied());
        let req = req.into_inner();
        let access = self.access(&req.collection).await?;
        let (coll, served, loaded) = (access.collection, access.served, access.loaded);
        if let Some(token) = if_version
            && coll.version_token() == Some(token)
        {
            // The caller's copy is current: no search, no hits on the wire.
            let mut r = Response::new(pb::SearchResponse {
                hits: vec![],
                stats: Some(pb::SearchStats {
                    collection_epoch: token.0,
                    collection_version: token.1,
                    ..Default::default()
                }),
                ..Default::default()
            });
            r.metadata_mut().insert(
                NOT_MODIFIED_HEADER,
                tonic::metadata::MetadataValue::from_static("1"),
            );
            return Ok(r);
        }
        let stats = coll.stats();
        let mut res = if cheap(&stats, &req) {
            search_in(&*coll, &stats, req, start, served, loaded)?
        } else {
            blocking(move || search_in(&*coll, &stats, req, start, served, loaded)).await?
        };
        if let Some(st) = res.stats.as_mut() {
            st.log_sequence = log_sequence;
        }
        Ok(Response::new(res))
    }

    async fn search_batch(
        &self,
        req: Request<pb::SearchBatchRequest>,
    ) -> Result<Response<pb::SearchBatchResponse>, Status> {
        let engine = self.engine.clone();
        let names: std::collections::BTreeSet<String> = req
            .get_ref()
            .searches
            .iter()
            .map(|s| s.collection.clone())
            .collect();
        for name in &names {
            self.admit(&req, name, false).await?;
        }
        let searches = req.into_inner().searches;
        if searches.is_empty() {
            return Err(StorageError::EmptyRequest(EmptyRequest::SearchBatch).into());
        }
        let results = blocking(move || search_many(&engine, searches)).await?;
        Ok(Response::new(pb::SearchBatchResponse { results }))
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let start = Instant::now();
        self.admit(&req, &req.get_ref().collection, false).await?;
        akidb_proto::validate::query(req.get_ref())?;
        let req = req.into_inner();
        let access = self.access(&req.collection).await?;
        let (coll, served, loaded) = (access.collection, access.served, access.loaded);
        let stats = coll.stats();
        let res =
            blocking(move || Ok(query_in(&*coll, &stats, req, start, served, loaded))).await??;
        Ok(Response::new(res))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.admit(&req, &req.get_ref().collection, false).await?;
        let req = req.into_inner();
        let coll = self.collection(&req.collection).await?;
        let keys = keys_from_pb(&req.ids)?;
        let include = Include {
            payload: req.with_payload,
            vector: req.with_vector,
        };
        let pts = blocking(move || coll.get(&keys, include)).await?;
        Ok(Response::new(pb::GetResponse {
            points: pts.into_iter().map(stored_to_pb).collect(),
        }))
    }

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountResponse>, Status> {
        self.admit(&req, &req.get_ref().collection, false).await?;
        let req = req.into_inner();
        let coll = self.collection(&req.collection).await?;
        let filter = filter_from_pb(req.filter.as_ref())?;
        let count = blocking(move || coll.count(filter.as_ref())).await?;
        Ok(Response::new(pb::CountResponse { count }))
    }

    async fn scroll(
        &self,
        req: Request<pb::ScrollRequest>,
    ) -> Result<Response<pb::ScrollResponse>, Status> {
        self.admit(&req, &req.get_ref().collection, false).await?;
        let req = req.into_inner();
        let coll = self.collection(&req.collection).await?;
        let params = ScrollParams {
            filter: filter_from_pb(req.filter.as_ref())?,
            limit: validate::scroll_limit(req.limit)?,
            after: cursor_decode(&req.cursor)?,
            include: Include {
                payload: req.with_payload,
                vector: req.with_vector,
            },
        };
        let (pts, next) = blocking(move || coll.scroll(&params)).await?;
        Ok(Response::new(pb::ScrollResponse {
            points: pts.into_iter().map(stored_to_pb).collect(),
            next_cursor: next.as_ref().map(cursor_encode).unwrap_or_default(),
        }))
    }
}
