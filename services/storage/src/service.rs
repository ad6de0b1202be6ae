//! The storage service: the engine and the object layer behind gRPC, started and stopped
//! through the one service lifecycle ([`akidb_instrumentation::lifecycle`]).

use crate::admin::AdminApi;
use crate::config::StorageConfig;
use crate::engine::Engine;
use crate::objstore::{ObjectLayer, ObjectStore as _, SnapshotStore};
use crate::server::StorageApi;
use akidb_auth::args::Mode;
use akidb_cluster::membership::{Membership, NodeInfo};
use akidb_instrumentation::Component;
use akidb_instrumentation::lifecycle::{Service, Serving};
use akidb_proto::v1::admin_service_server::AdminServiceServer;
use akidb_proto::v1::storage_service_server::StorageServiceServer;
use std::sync::Arc;

/// Run the storage service on already-bound listeners until told to stop; in-flight
/// requests finish first.
///
/// The gRPC server (health first) starts before the engine recovers, so that health checks
/// see NOT_SERVING while snapshots load and WALs replay; it turns SERVING once recovery is
/// done. A recovery error (e.g. a corrupt WAL in strict mode) stops the server and is
/// returned.
pub async fn run(config: StorageConfig, on: Serving) -> anyhow::Result<()> {
    crate::allocator::configure();
    let cluster = config.cluster.config().map_err(|e| anyhow::anyhow!(e))?;
    let mut service = Service::new(Component::Storage, on.shutdown).await;
    let health = service.health().clone();
    health
        .set_not_serving::<StorageServiceServer<StorageApi>>()
        .await;
    let engine = Engine::new(config.engine_options());
    let objects = ObjectLayer::start(&config.objects, &config.data_dir).await?;
    tracing::info!(store = %objects.store.describe(), remote = objects.is_remote(), "object layer started");
    let snapshots = SnapshotStore::new(&objects, tokio::runtime::Handle::current());
    // Nodes of a cluster share one object store: each keeps its snapshot copies apart.
    engine.set_objects(match &cluster {
        Some(c) => snapshots.for_node(&c.node_id),
        None => snapshots,
    });
    let objects = Arc::new(objects);
    // A node of a cluster follows the shard maps in etcd from the start: it admits the calls
    // routed to its shards (after recovery: until then the service answers NOT_SERVING).
    let stop_watching = tokio_util::sync::CancellationToken::new();
    // The node's membership: taken once recovery is done (a member is one that can serve),
    // given back (its lease revoked) when the node stops.
    let membership: Arc<std::sync::Mutex<Option<Membership>>> = Default::default();
    let gate = match cluster.as_ref() {
        None => None,
        Some(c) => {
            let store: Arc<dyn crate::objstore::ObjectStore> = objects.store.clone();
            crate::shards::check_shared_store(&*store, &c.etcd).await?;
            let logs = crate::shardlog::ShardLogs::open(
                store,
                engine.clone(),
                &config.data_dir,
                &c.node_id,
            )?;
            Some(Arc::new(crate::shards::ShardGate {
                view: akidb_cluster::view::ClusterView::start(
                    c.etcd.clone(),
                    stop_watching.clone(),
                ),
                node: c.node_id.clone(),
                engine: engine.clone(),
                membership: membership.clone(),
                logs: Arc::new(logs),
                orphan_grace: c.orphan_grace,
                snapshot_entries: c.snapshot_entries,
            }))
        }
    };
    let keeper_gate = gate.clone();
    let api = StorageApi {
        engine: engine.clone(),
        gate,
    };
    let admin_api = AdminApi {
        engine: engine.clone(),
        objects: objects.clone(),
    };
    let http_addr = on.http.local_addr()?;
    let listening = [on.grpc.local_addr()?, http_addr];
    let access =
        akidb_auth::args::protect(&mut service, &config.auth, Mode::Internal, &listening)?.access;
    service.serve_http(on.http, None, access);
    let max = config.listen.max_message_bytes;
    let routes = tonic::service::Routes::new(
        StorageServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        AdminServiceServer::new(admin_api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    tracing::info!(grpc = %on.grpc.local_addr()?, data_dir = %config.data_dir.display(), "storage listening; recovering");
    let advertise = config
        .cluster
        .advertise_addr
        .clone()
        .unwrap_or(on.grpc.local_addr()?.to_string());
    // The metrics port on the advertised host: where the aggregator scrapes this node.
    let metrics_advertise = match advertise.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{}", http_addr.port()),
        None => http_addr.to_string(),
    };
    let joined = membership.clone();
    let keep_stop = stop_watching.child_token();

    // Starting: recover (snapshots, WAL replay) while health says NOT_SERVING.
    let e2 = engine.clone();
    let starting = async move {
        match tokio::task::spawn_blocking(move || e2.recover()).await? {
            Ok(()) => {
                health
                    .set_serving::<StorageServiceServer<StorageApi>>()
                    .await;
                health
                    .set_service_status("", tonic_health::ServingStatus::Serving)
                    .await;
                tracing::info!("storage serving");
                if let Some(c) = cluster {
                    tracing::info!(node = %c.node_id, etcd = %c.etcd.endpoints(), addr = %advertise, "joining the cluster");
                    let node =
                        NodeInfo::new(&c.node_id, &advertise).with_metrics(&metrics_advertise);
                    let member = Membership::start(c.etcd, node, c.lease_ttl);
                    let lease = member.subscribe();
                    *joined.lock().expect("not poisoned") = Some(member);
                    if let Some(gate) = keeper_gate {
                        // Copies kept in step with their logs, and the controller (elected).
                        tokio::spawn(gate.clone().keep_copies(keep_stop.clone()));
                        tokio::spawn(akidb_cluster::controller::run(
                            gate.view.clone(),
                            c.node_id.clone(),
                            lease,
                            keep_stop,
                        ));
                    }
                }
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("storage recovery failed: {e}")),
        }
    };
    // Stopping: once in-flight requests are done, stop the workers, flush every WAL, and
    // stop the dead-letter queue's worker.
    let stopping = move || async move {
        let member = membership.lock().expect("not poisoned").take();
        if let Some(m) = member {
            m.leave().await;
        }
        stop_watching.cancel();
        let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
        match Arc::try_unwrap(objects) {
            Ok(layer) => layer.shutdown().await,
            Err(_) => {
                tracing::warn!("object layer still in use at shutdown; DLQ entries stay on disk")
            }
        }
    };
    service.run(on.grpc, routes, starting, stopping).await
}
