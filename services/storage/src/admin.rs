//! The `AdminService` handlers: tiers (status, promote, demote, pin), snapshots,
//! compaction, WAL status, the dead-letter queue and the object-store circuit breaker.

use crate::convert::{
    breaker_to_pb, dlq_to_pb, snapshot_to_pb, tier_move_from_pb, tier_status_to_pb,
};
use crate::engine::Engine;
use crate::engine::with_engine;
use crate::error::{FieldProblem, StorageError};
use crate::objstore::ObjectLayer;
use crate::objstore::dlq::Target;
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_server::AdminService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct AdminApi {
    pub engine: Arc<Engine>,
    pub objects: Arc<ObjectLayer>,
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn tier_status(
        &self,
        req: Request<pb::TierStatusRequest>,
    ) -> Result<Response<pb::TierStatusResponse>, Status> {
        let name = req.into_inner().collection;
        let (all, used) = with_engine(&self.engine, move |engine| {
            let all = engine.tier_status(&name)?;
            Ok((all, engine.hot_memory_bytes()))
        })
        .await?;
        Ok(Response::new(pb::TierStatusResponse {
            collections: all.iter().map(tier_status_to_pb).collect(),
            hot_memory_budget_bytes: self.engine.options().tiers.hot_memory_bytes,
            hot_memory_used_bytes: used,
        }))
    }

    async fn promote(
        &self,
        req: Request<pb::TierMoveRequest>,
    ) -> Result<Response<pb::TierMoveResponse>, Status> {
        let (name, to) = tier_move_from_pb(req.into_inner())?;
        let st = with_engine(&self.engine, move |engine| engine.promote(&name, to)).await?;
        Ok(Response::new(pb::TierMoveResponse {
            status: Some(tier_status_to_pb(&st)),
        }))
    }

    async fn demote(
        &self,
        req: Request<pb::TierMoveRequest>,
    ) -> Result<Response<pb::TierMoveResponse>, Status> {
        let (name, to) = tier_move_from_pb(req.into_inner())?;
        let st = with_engine(&self.engine, move |engine| engine.demote(&name, to)).await?;
        Ok(Response::new(pb::TierMoveResponse {
            status: Some(tier_status_to_pb(&st)),
        }))
    }

    async fn pin(&self, req: Request<pb::PinRequest>) -> Result<Response<pb::PinResponse>, Status> {
        let req = req.into_inner();
        let st = with_engine(&self.engine, move |engine| {
            engine.pin(&req.collection, req.pinned)
        })
        .await?;
        Ok(Response::new(pb::PinResponse {
            status: Some(tier_status_to_pb(&st)),
        }))
    }

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let name = req.into_inner().collection;
        let m = with_engine(&self.engine, move |engine| {
            let c = engine.lookup(&name)?.get()?.collection;
            engine.snapshot_collection(&c)
        })
        .await?;
        Ok(Response::new(pb::SnapshotResponse {
            snapshot: Some(snapshot_to_pb(&m, false)),
        }))
    }

    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let name = req.into_inner().collection;
        let local = with_engine(&self.engine, move |engine| {
            let slots = if name.is_empty() {
                engine.slots()
            } else {
                vec![engine.slot(&name)?]
            };
            let mut out = Vec::new();
            for s in slots {
                out.extend(crate::snapshot::list(&s.dir)?);
            }
            Ok(out)
        })
        .await?;
        let mut snapshots = Vec::with_capacity(local.len());
        for (dir, m) in local {
            let uploaded = match self.engine.objects() {
                Some(o) => tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    o.is_confirmed(&m.collection.name, &dir, &m.id),
                )
                .await
                .unwrap_or(false),
                None => false,
            };
            snapshots.push(snapshot_to_pb(&m, uploaded));
        }
        Ok(Response::new(pb::ListSnapshotsResponse { snapshots }))
    }

    async fn compact(
        &self,
        req: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        let name = req.into_inner().collection;
        let r = with_engine(&self.engine, move |engine| {
            engine.lookup(&name)?.get()?.collection.compact()
        })
        .await?;
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
        let entries = self.objects.dlq.list().await;
        Ok(Response::new(pb::DlqListResponse {
            entries: entries.into_iter().map(dlq_to_pb).collect(),
        }))
    }

    async fn dlq_retry(
        &self,
        req: Request<pb::DlqRetryRequest>,
    ) -> Result<Response<pb::DlqRetryResponse>, Status> {
        let id = req.into_inner().id;
        let target = if id.is_empty() {
            Target::All
        } else {
            Target::One(id)
        };
        let r = self
            .objects
            .dlq
            .retry(target)
            .await
            .map_err(StorageError::from)?;
        Ok(Response::new(pb::DlqRetryResponse {
            succeeded: r.succeeded,
            failed: r.failed,
        }))
    }

    async fn dlq_purge(
        &self,
        req: Request<pb::DlqPurgeRequest>,
    ) -> Result<Response<pb::DlqPurgeResponse>, Status> {
        let req = req.into_inner();
        let target = match (req.id.is_empty(), req.all) {
            (false, _) => Target::One(req.id),
            (true, true) => Target::All,
            (true, false) => {
                return Err(StorageError::from(FieldProblem::DlqPurgeTarget).into());
            }
        };
        let purged = self
            .objects
            .dlq
            .purge(target)
            .await
            .map_err(StorageError::from)?;
        Ok(Response::new(pb::DlqPurgeResponse { purged }))
    }

    async fn breaker_get(
        &self,
        _req: Request<pb::BreakerGetRequest>,
    ) -> Result<Response<pb::BreakerStatus>, Status> {
        Ok(Response::new(breaker_to_pb(
            &self.objects.breaker_status(),
            self.objects.is_remote(),
        )))
    }

    async fn breaker_reset(
        &self,
        _req: Request<pb::BreakerResetRequest>,
    ) -> Result<Response<pb::BreakerStatus>, Status> {
        let st = self.objects.breaker().reset();
        tracing::info!("object store circuit breaker reset by an operator");
        Ok(Response::new(breaker_to_pb(&st, self.objects.is_remote())))
    }

    /// One collection's WAL, or (empty name) the sum over all collections.
    async fn wal_status(
        &self,
        req: Request<pb::WalStatusRequest>,
    ) -> Result<Response<pb::WalStatusResponse>, Status> {
        let name = req.into_inner().collection;
        let policy = self.engine.options().collection.wal.fsync.to_string();
        let colls = if name.is_empty() {
            self.engine.all()
        } else {
            match self.engine.slot(&name)?.loaded() {
                Some(c) => vec![c],
                None => vec![],
            }
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
