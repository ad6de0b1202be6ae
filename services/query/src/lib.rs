//! AkiDB query service: the public read API and collection DDL.
//!
//! Validates at the edge and forwards to storage with the caller's deadline (or the configured
//! one, whichever is shorter); reads are idempotent and retried on UNAVAILABLE until the
//! deadline. Health mirrors storage's.
//!
//! - this file: [`QueryConfig`] (flags), [`Query`] (the `QueryService` and
//!   `CollectionService` handlers) and [`run`] (the service through the lifecycle of
//!   `akidb_instrumentation`);
//! - [`cache`]: the search result cache, revalidated against storage's collection version;
//! - [`ops`]: AdminService and TelemetryService, forwarded;
//! - [`rest`]: the REST/JSON port (`--rest-addr`), every public call as JSON over HTTP.

use akidb_auth::args::Mode;
use akidb_client::{Link, with_deadline};
use akidb_instrumentation::Component;
use akidb_instrumentation::lifecycle::{Service, Serving};
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_server::AdminServiceServer;
use akidb_proto::v1::collection_service_server::{CollectionService, CollectionServiceServer};
use akidb_proto::v1::query_service_server::{QueryService, QueryServiceServer};
use akidb_proto::v1::telemetry_service_server::TelemetryServiceServer;
use akidb_proto::validate;
use std::time::Duration;
use tonic::{Request, Response, Status};

akidb_instrumentation::listen_args!(QueryConfig, Query, "QUERY", 50051, 9101);

akidb_client::storage_link_args!("QUERY", 5_000, "read");

#[derive(Debug, Clone, clap::Args)]
pub struct QueryConfig {
    #[command(flatten)]
    pub listen: Listen,
    #[command(flatten)]
    pub storage: StorageLink,
    /// A cluster of storage nodes (`--etcd`): reads fan out to every shard.
    #[command(flatten)]
    pub cluster: akidb_cluster::args::RouterArgs,
    /// The telemetry aggregator, whose SLO status query serves (`TelemetryService`).
    #[arg(
        long = "telemetry-addr",
        env = "AKIDB_TELEMETRY_ADDR",
        default_value = "127.0.0.1:50054"
    )]
    pub telemetry_addr: String,
    /// API keys (reads need a key when a key file is set), and the internal key query
    /// presents to storage and the aggregator.
    #[command(flatten)]
    pub auth: akidb_auth::AuthArgs,
    /// Most searches in one SearchBatch.
    #[arg(
        long = "max-batch-searches",
        env = "AKIDB_MAX_BATCH_SEARCHES",
        default_value_t = 1_000
    )]
    pub max_batch_searches: usize,
    /// Searches whose results are cached (0 disables the cache). A cached result is reused
    /// only after storage confirms the collection has not changed since (see `cache.rs`).
    #[arg(
        long = "cache-entries",
        env = "AKIDB_QUERY_CACHE_ENTRIES",
        default_value_t = 4_096
    )]
    pub cache_entries: usize,
    /// The REST/JSON port (`/v1/...`, `/openapi.json`); unset: no REST port (`akidb up`
    /// always sets one).
    #[arg(long = "rest-addr", env = "AKIDB_QUERY_REST_ADDR")]
    pub rest_addr: Option<std::net::SocketAddr>,
    /// Largest JSON body the REST port reads; a larger one is refused with 413.
    #[arg(
        long = "rest-max-body-bytes",
        env = "AKIDB_QUERY_REST_MAX_BODY_BYTES",
        default_value_t = rest::DEFAULT_MAX_BODY_BYTES
    )]
    pub rest_max_body_bytes: usize,
    /// The ingest service, where the REST port sends the writes.
    #[arg(
        long = "ingest-addr",
        env = "AKIDB_QUERY_INGEST_ADDR",
        default_value = "127.0.0.1:50052"
    )]
    pub ingest_addr: String,
}

pub mod cache;
pub mod ops;
pub mod rest;

#[derive(Clone)]
pub struct Query {
    storage: Link,
    /// Set with `--etcd`: every collection call goes to the shards instead of `storage`.
    cluster: Option<std::sync::Arc<akidb_cluster::router::Router>>,
    max_batch_searches: usize,
    cache: std::sync::Arc<cache::ResultCache>,
}

/// The time a forwarded call may take: the configured budget, or less when the caller's own
/// `grpc-timeout` is shorter.
fn budget<T>(link: &Link, req: &Request<T>) -> Link {
    let caller = akidb_client::caller_timeout(req);
    let mut l = link.clone();
    if let Some(t) = caller {
        l.timeout = l.timeout.min(t);
    }
    l
}

macro_rules! forward {
    ($self:ident, $req:ident, $method:ident) => {{
        let link = budget(&$self.storage, &$req);
        let res = akidb_client::storage_call!(link, $method, $req.into_inner())?;
        Ok(Response::new(res))
    }};
    // Not retried: a retry after a lost reply would answer ALREADY_EXISTS or NOT_FOUND.
    (once $self:ident, $req:ident, $method:ident) => {{
        let link = budget(&$self.storage, &$req);
        let r = link
            .storage()
            .$method(link.request($req.into_inner()))
            .await?;
        Ok(Response::new(r.into_inner()))
    }};
}

/// `akidb_cache_requests_total` of a hit or a miss, its label looked up once (every search
/// counts one).
fn cache_requests(hit: bool) -> &'static akidb_instrumentation::prometheus::IntCounter {
    static BY_RESULT: [std::sync::OnceLock<akidb_instrumentation::prometheus::IntCounter>; 2] =
        [const { std::sync::OnceLock::new() }; 2];
    BY_RESULT[hit as usize].get_or_init(|| {
        akidb_instrumentation::metrics::metrics()
            .cache_requests
            .with_label_values(&[if hit { "hit" } else { "miss" }])
    })
}

impl Query {
    /// A search through the result cache: one call to storage either way (see `cache.rs`).
    async fn cached_search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        use prost::Message;
        let link = budget(&self.storage, &req);
        let msg = req.into_inner();
        let key = msg.encode_to_vec();
        let held = self.cache.get(&key);
        let token = held.as_ref().and_then(|(e, v, _)| {
            tonic::metadata::MetadataValue::try_from(format!("{e}.{v}")).ok()
        });
        let res = link
            .idempotent(|left| {
                let mut c = link.storage();
                let mut r = with_deadline(msg.clone(), left);
                if let Some(t) = &token {
                    r.metadata_mut().insert(IF_VERSION_HEADER, t.clone());
                }
                async move { c.search(r).await }
            })
            .await?;
        let not_modified = res.metadata().contains_key(NOT_MODIFIED_HEADER);
        let mut res = res.into_inner();
        let got = res
            .stats
            .as_ref()
            .map(|s| (s.collection_epoch, s.collection_version));
        if not_modified {
            if let Some((e, v, mut cached)) = held
                && got == Some((e, v))
            {
                cache_requests(true).inc();
                if let Some(s) = cached.stats.as_mut() {
                    s.cache_hit = true;
                }
                return Ok(Response::new(cached));
            }
            // Cannot happen (storage only says so for the pair we sent); never guess.
            return Err(Status::internal(
                "storage answered not-modified for a result this query service does not hold",
            ));
        }
        cache_requests(false).inc();
        if let Some((epoch, version)) = got
            && epoch != 0
        {
            let n = self.cache.put(
                key,
                cache::Entry {
                    epoch,
                    version,
                    response: res.clone(),
                },
            );
            akidb_instrumentation::metrics::metrics()
                .cache_entries
                .set(n as i64);
        }
        if let Some(s) = res.stats.as_mut() {
            s.cache_hit = false;
        }
        Ok(Response::new(res))
    }
}

/// Request metadata: "I hold this search's result computed at `<epoch>.<version>`".
pub const IF_VERSION_HEADER: &str = "akidb-if-version";
/// Response metadata from storage: still at that version; the response carries no hits.
pub const NOT_MODIFIED_HEADER: &str = "akidb-not-modified";

#[tonic::async_trait]
impl QueryService for Query {
    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        validate::search(req.get_ref())?;
        if let Some(r) = &self.cluster {
            // No result cache: a fanned-out result has no one version to check it against.
            let caller = akidb_client::caller_timeout(&req);
            return Ok(Response::new(r.search(req.into_inner(), caller).await?));
        }
        if !self.cache.enabled() {
            return forward!(self, req, search);
        }
        self.cached_search(req).await
    }

    async fn search_batch(
        &self,
        req: Request<pb::SearchBatchRequest>,
    ) -> Result<Response<pb::SearchBatchResponse>, Status> {
        let n = req.get_ref().searches.len();
        if n == 0 {
            return Err(Status::invalid_argument(
                "search batch is empty; send at least one search",
            ));
        }
        if n > self.max_batch_searches {
            return Err(Status::resource_exhausted(format!(
                "search batch has {n} searches, over the limit of {}; split it",
                self.max_batch_searches
            )));
        }
        for (i, s) in req.get_ref().searches.iter().enumerate() {
            akidb_auth::check_collection(&req, &s.collection)?;
            validate::search(s)
                .map_err(|e| Status::new(e.code(), format!("search #{i}: {}", e.message())))?;
        }
        if let Some(r) = &self.cluster {
            let caller = akidb_client::caller_timeout(&req);
            let all = r.search_batch(req.into_inner().searches, caller).await;
            let mut results = Vec::with_capacity(all.len());
            for (i, r) in all.into_iter().enumerate() {
                results.push(
                    r.map_err(|e| Status::new(e.code(), format!("search #{i}: {}", e.message())))?,
                );
            }
            return Ok(Response::new(pb::SearchBatchResponse { results }));
        }
        forward!(self, req, search_batch)
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        validate::query(req.get_ref())?;
        if let Some(r) = &self.cluster {
            // Each branch fanned out to every shard and merged, then fused here as storage
            // fuses a collection of one node.
            let caller = akidb_client::caller_timeout(&req);
            let q = req.into_inner();
            let searches = akidb_proto::fusion::branch_searches(&q);
            let mut results = Vec::with_capacity(q.branches.len());
            for (i, r) in r
                .search_batch(searches, caller)
                .await
                .into_iter()
                .enumerate()
            {
                results.push(r.map_err(|e| akidb_proto::fusion::in_branch(i, e))?);
            }
            return Ok(Response::new(akidb_proto::fusion::response(
                &results, &q.weights, q.fusion, q.rrf_k, q.k,
            )));
        }
        forward!(self, req, query)
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        validate::collection_name(&req.get_ref().collection)?;
        for id in &req.get_ref().ids {
            validate::point_id(Some(id), &"get")?;
        }
        if let Some(r) = &self.cluster {
            let caller = akidb_client::caller_timeout(&req);
            return Ok(Response::new(r.get(req.into_inner(), caller).await?));
        }
        forward!(self, req, get)
    }

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        validate::collection_name(&req.get_ref().collection)?;
        validate::filter(req.get_ref().filter.as_ref())?;
        if let Some(r) = &self.cluster {
            let caller = akidb_client::caller_timeout(&req);
            return Ok(Response::new(r.count(req.into_inner(), caller).await?));
        }
        forward!(self, req, count)
    }

    async fn scroll(
        &self,
        req: Request<pb::ScrollRequest>,
    ) -> Result<Response<pb::ScrollResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        validate::collection_name(&req.get_ref().collection)?;
        validate::filter(req.get_ref().filter.as_ref())?;
        if let Some(r) = &self.cluster {
            let caller = akidb_client::caller_timeout(&req);
            return Ok(Response::new(r.scroll(req.into_inner(), caller).await?));
        }
        forward!(self, req, scroll)
    }
}

#[tonic::async_trait]
impl CollectionService for Query {
    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().name)?;
        validate::create_collection(req.get_ref())?;
        if let Some(r) = &self.cluster {
            let caller = akidb_client::caller_timeout(&req);
            let info = r.create_collection(req.into_inner(), caller).await?;
            return Ok(Response::new(pb::CreateCollectionResponse {
                collection: Some(info),
            }));
        }
        forward!(once self, req, create_collection)
    }

    async fn get_collection(
        &self,
        req: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::GetCollectionResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().name)?;
        validate::collection_name(&req.get_ref().name)?;
        if let Some(r) = &self.cluster {
            let caller = akidb_client::caller_timeout(&req);
            let info = r.get_collection(&req.get_ref().name, caller).await?;
            return Ok(Response::new(pb::GetCollectionResponse {
                collection: Some(info),
            }));
        }
        forward!(self, req, get_collection)
    }

    async fn list_collections(
        &self,
        req: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        // A key limited to some collections sees those only.
        let who = akidb_auth::principal(&req).cloned();
        let mut res = match &self.cluster {
            Some(r) => pb::ListCollectionsResponse {
                collections: r
                    .list_collections(akidb_client::caller_timeout(&req))
                    .await?,
                aliases: akidb_proto::aliases::to_pb(&r.aliases()),
            },
            None => {
                let link = budget(&self.storage, &req);
                akidb_client::storage_call!(link, list_collections, req.into_inner())?
            }
        };
        res.collections
            .retain(|c| akidb_auth::principal::sees(who.as_ref(), &c.name));
        res.aliases
            .retain(|a| akidb_auth::principal::sees(who.as_ref(), &a.alias));
        Ok(Response::new(res))
    }

    async fn update_aliases(
        &self,
        req: Request<pb::UpdateAliasesRequest>,
    ) -> Result<Response<pb::UpdateAliasesResponse>, Status> {
        // A collection-scoped key may name only its own collections and aliases.
        for a in &req.get_ref().actions {
            match &a.action {
                Some(pb::alias_action::Action::Create(al)) => {
                    akidb_auth::check_collection(&req, &al.alias)?;
                    akidb_auth::check_collection(&req, &al.collection)?;
                }
                Some(pb::alias_action::Action::Delete(alias)) => {
                    akidb_auth::check_collection(&req, alias)?;
                }
                None => {}
            }
        }
        if let Some(r) = &self.cluster {
            let aliases = r.update_aliases(&req.get_ref().actions).await?;
            return Ok(Response::new(pb::UpdateAliasesResponse {
                aliases: akidb_proto::aliases::to_pb(&aliases),
            }));
        }
        forward!(once self, req, update_aliases)
    }

    async fn delete_collection(
        &self,
        req: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().name)?;
        validate::collection_name(&req.get_ref().name)?;
        if let Some(r) = &self.cluster {
            r.delete_collection(&req.get_ref().name).await?;
            return Ok(Response::new(pb::DeleteCollectionResponse {}));
        }
        forward!(once self, req, delete_collection)
    }
}

/// Run on already-bound listeners until told to stop; in-flight reads finish first.
pub async fn run(config: QueryConfig, on: Serving) -> anyhow::Result<()> {
    let internal = config.auth.internal_key()?;
    let stop_watching = tokio_util::sync::CancellationToken::new();
    let cluster = config.cluster.router(
        internal.clone(),
        Duration::from_millis(config.storage.storage_timeout_ms),
        stop_watching.clone(),
    )?;
    let query = Query {
        cluster: cluster.clone(),
        storage: config.storage.link(internal.as_deref())?,
        max_batch_searches: config.max_batch_searches,
        cache: std::sync::Arc::new(cache::ResultCache::new(config.cache_entries)),
    };
    let mut service = Service::new(Component::Query, on.shutdown).await;
    let health = service.health().clone();
    health.set_not_serving::<QueryServiceServer<Query>>().await;
    let storage = query.storage.clone();
    let local = vec![
        "akidb.v1.QueryService".to_string(),
        "akidb.v1.CollectionService".into(),
    ];
    match cluster {
        None => service.spawn("storage health", move |stopped| {
            akidb_client::watch_health(storage, health, local, Duration::from_millis(500), stopped)
        }),
        Some(r) => service.spawn("cluster health", move |stopped| async move {
            akidb_cluster::router::watch_health(&r, health, local, stopped).await;
            stop_watching.cancel();
        }),
    }
    let listening = [on.grpc.local_addr()?, on.http.local_addr()?];
    let rest_listener = match config.rest_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding the REST port {addr}: {e}"))?,
        ),
        None => None,
    };
    let mut listening = listening.to_vec();
    if let Some(l) = &rest_listener {
        listening.push(l.local_addr()?);
    }
    let protection =
        akidb_auth::args::protect(&mut service, &config.auth, Mode::Public, &listening)?;
    let rest_tls = on.http.tls.clone();
    service.serve_http(on.http, None, protection.access);
    let ops = ops::Ops {
        storage: query.storage.clone(),
        telemetry: Link::with_key(
            &config.telemetry_addr,
            Duration::from_secs(10),
            internal.as_deref(),
        )?,
    };
    tracing::info!(grpc = %on.grpc.local_addr()?, storage = %config.storage.storage_addr, "query serving");
    let max = config.listen.max_message_bytes;
    let routes = tonic::service::Routes::new(
        QueryServiceServer::new(query.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        CollectionServiceServer::new(query)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        AdminServiceServer::new(ops.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        TelemetryServiceServer::new(ops)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    if let Some(listener) = rest_listener {
        let rest = rest::Rest {
            max_body: config.rest_max_body_bytes,
            local: service.local(routes.clone()),
            ingest: akidb_instrumentation::transport::plain_channel(
                &config.ingest_addr,
                Duration::from_secs(5),
            )?,
            auth: protection.auth,
        };
        tracing::info!(rest = %listener.local_addr()?, ingest = %config.ingest_addr, "REST serving");
        service.spawn("rest", move |stopped| async move {
            let app = rest::router(rest);
            if let Err(e) =
                akidb_instrumentation::http::serve_app(listener, rest_tls, app, stopped).await
            {
                tracing::error!(error = %e, "REST port failed");
            }
        });
    }
    service
        .run(on.grpc, routes, async { Ok(()) }, || async {})
        .await
}
