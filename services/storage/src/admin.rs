//! The `AdminService` handlers: snapshots, compaction and WAL status. Tier moves, the
//! dead-letter queue and the object-store breaker are not implemented yet.

use crate::engine::Engine;
use crate::error::{Result, StorageError};
use crate::snapshot::SnapshotManifest;
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_server::AdminService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct AdminApi {
    pub engine: Arc<Engine>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| StorageError::Internal(format!("worker task failed: {e}")))?
}

fn snapshot_to_pb(m: &SnapshotManifest) -> pb::SnapshotInfo {
    pb::SnapshotInfo {
        collection: m.collection.name.clone(),
        id: m.id.clone(),
        sequence: m.sequence,
        created_unix_ms: m.created_unix_ms,
        size_bytes: m.size_bytes(),
        point_count: m.point_count,
        uploaded: false,
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not available in this storage build yet (tiers, object storage and the DLQ come later)"
    ))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn tier_status(
        &self,
        _req: Request<pb::TierStatusRequest>,
    ) -> Result<Response<pb::TierStatusResponse>, Status> {
        Err(not_yet("TierStatus"))
    }

    async fn promote(
        &self,
        _req: Request<pb::TierMoveRequest>,
    ) -> Result<Response<pb::TierMoveResponse>, Status> {
        Err(not_yet("Promote"))
    }

    async fn demote(
        &self,
        _req: Request<pb::TierMoveRequest>,
    ) -> Result<Response<pb::TierMoveResponse>, Status> {
        Err(not_yet("Demote"))
    }

    async fn pin(
        &self,
        _req: Request<pb::PinRequest>,
    ) -> Result<Response<pb::PinResponse>, Status> {
        Err(not_yet("Pin"))
    }

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let c = self.engine.collection(&req.get_ref().collection)?;
        let m = blocking(move || c.snapshot()).await?;
        Ok(Response::new(pb::SnapshotResponse {
            snapshot: Some(snapshot_to_pb(&m)),
        }))
    }

    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let name = req.into_inner().collection;
        let engine = self.engine.clone();
        let snapshots = blocking(move || {
            let names = if name.is_empty() {
                engine.names()
            } else {
                vec![name]
            };
            let mut out = Vec::new();
            for n in names {
                out.extend(
                    engine
                        .collection(&n)?
                        .snapshots()?
                        .iter()
                        .map(snapshot_to_pb),
                );
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(pb::ListSnapshotsResponse { snapshots }))
    }

    async fn compact(
        &self,
        req: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        let c = self.engine.collection(&req.get_ref().collection)?;
        let r = blocking(move || c.compact()).await?;
        Ok(Response::new(pb::CompactResponse {
            segments_before: r.segments_before,
            segments_after: r.segments_after,
            tombstones_removed: r.tombstones_removed,
        }))
    }

    async fn dlq_list(
        &self,
        _req: Request<pb::DlqListRequest>,
    ) -> Result<Response<pb::DlqListResponse>, Status> {
        Err(not_yet("DlqList"))
    }

    async fn dlq_retry(
        &self,
        _req: Request<pb::DlqRetryRequest>,
    ) -> Result<Response<pb::DlqRetryResponse>, Status> {
        Err(not_yet("DlqRetry"))
    }

    async fn dlq_purge(
        &self,
        _req: Request<pb::DlqPurgeRequest>,
    ) -> Result<Response<pb::DlqPurgeResponse>, Status> {
        Err(not_yet("DlqPurge"))
    }

    async fn breaker_get(
        &self,
        _req: Request<pb::BreakerGetRequest>,
    ) -> Result<Response<pb::BreakerStatus>, Status> {
        Err(not_yet("BreakerGet"))
    }

    async fn breaker_reset(
        &self,
        _req: Request<pb::BreakerResetRequest>,
    ) -> Result<Response<pb::BreakerStatus>, Status> {
        Err(not_yet("BreakerReset"))
    }

    /// One collection's WAL, or (empty name) the sum over all collections.
    async fn wal_status(
        &self,
        req: Request<pb::WalStatusRequest>,
    ) -> Result<Response<pb::WalStatusResponse>, Status> {
        let name = req.into_inner().collection;
        let policy = self.engine.options().collection.wal.fsync.to_string();
        let colls = if name.is_empty() {
            self.engine
                .names()
                .iter()
                .filter_map(|n| self.engine.collection(n).ok())
                .collect()
        } else {
            vec![self.engine.collection(&name)?]
        };
        let mut out = pb::WalStatusResponse {
            fsync_policy: policy,
            ..Default::default()
        };
        for c in colls {
            let s = c.wal_status();
            out.last_sequence = out.last_sequence.max(s.last_sequence);
            out.snapshot_sequence = out.snapshot_sequence.max(c.snapshot_sequence());
            out.segment_count += s.segment_count;
            out.size_bytes += s.size_bytes;
        }
        Ok(Response::new(out))
    }
}
