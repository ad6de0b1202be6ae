//! AkiDB ingest service: the public write API.
//!
//! Validates every write at the edge, bounds the writes in flight (backpressure answered with
//! RESOURCE_EXHAUSTED), and forwards to storage with a deadline; an upsert is acknowledged only
//! after storage has made it durable. Health mirrors storage's.
//!
//! One file: [`IngestConfig`] (flags), [`Ingest`] (the `IngestService` handlers) and [`run`]
//! (the service through the lifecycle of `akidb_instrumentation`).

use akidb_auth::args::Mode;
use akidb_client::Link;
use akidb_instrumentation::lifecycle::{Service, Serving};
use akidb_instrumentation::{Component, metrics};
use akidb_proto::v1 as pb;
use akidb_proto::v1::ingest_service_server::{IngestService, IngestServiceServer};
use akidb_proto::validate::{self, BatchLimits};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

akidb_instrumentation::listen_args!(IngestConfig, Ingest, "INGEST", 50052, 9102);

akidb_client::storage_link_args!("INGEST", 10_000, "write");

#[derive(Debug, Clone, clap::Args)]
pub struct IngestConfig {
    #[command(flatten)]
    pub listen: Listen,
    /// API keys (writes need a `write` key when a key file is set), and the internal key
    /// ingest presents to storage.
    #[command(flatten)]
    pub auth: akidb_auth::AuthArgs,
    #[command(flatten)]
    pub storage: StorageLink,
    /// A cluster of storage nodes (`--etcd`): each point goes to its shard's owner.
    #[command(flatten)]
    pub cluster: akidb_cluster::args::RouterArgs,
    /// Most points in one batch.
    #[arg(
        long = "max-batch-points",
        env = "AKIDB_MAX_BATCH_POINTS",
        default_value_t = 10_000
    )]
    pub max_batch_points: usize,
    /// Most bytes in one batch (encoded).
    #[arg(long = "max-batch-bytes", env = "AKIDB_MAX_BATCH_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// Writes forwarded at once; more wait up to `--queue-wait-ms`, then get RESOURCE_EXHAUSTED.
    #[arg(
        long = "max-in-flight",
        env = "AKIDB_INGEST_MAX_IN_FLIGHT",
        default_value_t = 64
    )]
    pub max_in_flight: usize,
    #[arg(
        long = "queue-wait-ms",
        env = "AKIDB_INGEST_QUEUE_WAIT_MS",
        default_value_t = 1_000
    )]
    pub queue_wait_ms: u64,
}

#[derive(Clone)]
pub struct Ingest {
    storage: Link,
    /// Set with `--etcd`: writes go to the shards' owners instead of `storage`.
    cluster: Option<Arc<akidb_cluster::router::Router>>,
    limits: BatchLimits,
    in_flight: Arc<Semaphore>,
    queue_wait: Duration,
}

fn reject(reason: &str, s: Status) -> Status {
    metrics().ingest_rejected.with_label_values(&[reason]).inc();
    s
}

impl Ingest {
    /// `stop`: ends the watch of etcd (with `--etcd`).
    pub fn new(
        cfg: &IngestConfig,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let internal = cfg.auth.internal_key()?;
        Ok(Self {
            cluster: cfg.cluster.router(
                internal.clone(),
                Duration::from_millis(cfg.storage.storage_timeout_ms),
                stop,
            )?,
            storage: cfg.storage.link(internal.as_deref())?,
            limits: BatchLimits {
                max_points: cfg.max_batch_points,
                max_bytes: cfg.max_batch_bytes,
            },
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            queue_wait: Duration::from_millis(cfg.queue_wait_ms),
        })
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        match tokio::time::timeout(self.queue_wait, self.in_flight.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(reject(
                "backpressure",
                Status::resource_exhausted(format!(
                    "ingest is at its limit of {} writes in flight; retry with backoff",
                    self.in_flight.available_permits().max(1)
                )),
            )),
        }
    }

    async fn upsert_one(&self, req: pb::UpsertRequest) -> Result<pb::UpsertResponse, Status> {
        validate::upsert(&req, self.limits, req.encoded_len()).map_err(refused)?;
        let _permit = self.permit().await?;
        let n = req.points.len() as u64;
        let res = match &self.cluster {
            Some(r) => r.upsert(req).await,
            None => akidb_client::storage_call!(self.storage, upsert, req),
        }
        .map_err(|s| {
            if s.code() == tonic::Code::Unavailable {
                reject("unavailable", s)
            } else {
                s
            }
        })?;
        metrics().ingest_points.inc_by(n);
        Ok(res)
    }
}

/// A write its front-door check refused, counted by why: too large or invalid.
fn refused(s: Status) -> Status {
    let reason = if s.code() == tonic::Code::ResourceExhausted {
        "too_large"
    } else {
        "invalid"
    };
    reject(reason, s)
}

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn upsert(
        &self,
        req: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        Ok(Response::new(self.upsert_one(req.into_inner()).await?))
    }

    async fn upsert_stream(
        &self,
        req: Request<Streaming<pb::UpsertRequest>>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        let who = akidb_auth::principal(&req).cloned();
        let mut stream = req.into_inner();
        let mut total = pb::UpsertResponse::default();
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            let allowed = akidb_auth::principal::check(who.as_ref(), &msg.collection);
            let r = async {
                allowed?;
                self.upsert_one(msg).await
            }
            .await
            .map_err(|s| {
                Status::new(
                    s.code(),
                    format!(
                        "{} (after {} points of this stream were acknowledged)",
                        s.message(),
                        total.upserted
                    ),
                )
            })?;
            total.upserted += r.upserted;
            total.sequence = r.sequence;
        }
        Ok(Response::new(total))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        let req = req.into_inner();
        validate::collection_name(&req.collection).map_err(|s| reject("invalid", s))?;
        validate::filter(req.filter.as_ref()).map_err(|s| reject("invalid", s))?;
        for id in &req.ids {
            validate::point_id(Some(id), &"delete").map_err(|s| reject("invalid", s))?;
        }
        let _permit = self.permit().await?;
        let res = match &self.cluster {
            Some(r) => r.delete(req).await?,
            None => akidb_client::storage_call!(self.storage, delete, req)?,
        };
        Ok(Response::new(res))
    }

    async fn update_payload(
        &self,
        req: Request<pb::UpdatePayloadRequest>,
    ) -> Result<Response<pb::UpdatePayloadResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        let req = req.into_inner();
        validate::update_payload(&req).map_err(|s| reject("invalid", s))?;
        let _permit = self.permit().await?;
        let res = match &self.cluster {
            Some(r) => r.update_payload(req).await?,
            None => akidb_client::storage_call!(self.storage, update_payload, req)?,
        };
        Ok(Response::new(res))
    }

    async fn update_vectors(
        &self,
        req: Request<pb::UpdateVectorsRequest>,
    ) -> Result<Response<pb::UpdateVectorsResponse>, Status> {
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        let req = req.into_inner();
        validate::update_vectors(&req, self.limits, req.encoded_len()).map_err(refused)?;
        let _permit = self.permit().await?;
        let res = match &self.cluster {
            Some(r) => r.update_vectors(req).await?,
            None => akidb_client::storage_call!(self.storage, update_vectors, req)?,
        };
        Ok(Response::new(res))
    }

    async fn flush(
        &self,
        req: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        // Waiting for a graph build takes longer than a write: the caller's deadline rules
        // (10 minutes without one), not --storage-timeout-ms.
        let link = self.storage.with_caller_deadline(&req);
        akidb_auth::check_collection(&req, &req.get_ref().collection)?;
        let req = req.into_inner();
        validate::collection_name(&req.collection).map_err(|s| reject("invalid", s))?;
        // Idempotent: a second flush seals nothing new.
        let res = match &self.cluster {
            Some(r) => r.flush(req, link.timeout).await?,
            None => akidb_client::storage_call!(link, flush, req)?,
        };
        Ok(Response::new(res))
    }
}

/// Run on already-bound listeners until told to stop; in-flight writes finish first.
pub async fn run(config: IngestConfig, on: Serving) -> anyhow::Result<()> {
    let stop_watching = tokio_util::sync::CancellationToken::new();
    let ingest = Ingest::new(&config, stop_watching.clone())?;
    let mut service = Service::new(Component::Ingest, on.shutdown).await;
    let health = service.health().clone();
    health
        .set_not_serving::<IngestServiceServer<Ingest>>()
        .await;
    let storage = ingest.storage.clone();
    let local = vec!["akidb.v1.IngestService".to_string()];
    match ingest.cluster.clone() {
        None => service.spawn("storage health", move |stopped| {
            akidb_client::watch_health(storage, health, local, Duration::from_millis(500), stopped)
        }),
        Some(r) => service.spawn("cluster health", move |stopped| async move {
            akidb_cluster::router::watch_health(&r, health, local, stopped).await;
            stop_watching.cancel();
        }),
    }
    let listening = [on.grpc.local_addr()?, on.http.local_addr()?];
    let access =
        akidb_auth::args::protect(&mut service, &config.auth, Mode::Public, &listening)?.access;
    service.serve_http(on.http, None, access);
    tracing::info!(grpc = %on.grpc.local_addr()?, storage = %config.storage.storage_addr, "ingest serving");
    let routes = tonic::service::Routes::new(
        IngestServiceServer::new(ingest)
            .max_decoding_message_size(config.listen.max_message_bytes)
            .max_encoding_message_size(config.listen.max_message_bytes),
    );
    service
        .run(on.grpc, routes, async { Ok(()) }, || async {})
        .await
}
