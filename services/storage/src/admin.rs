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

/// Bytes of archive per `data` message, at most.
const CHUNK_BYTES: usize = 1 << 20;

fn archive_end(sum: &crate::fsutil::Sums) -> pb::SnapshotArchiveEnd {
    pb::SnapshotArchiveEnd {
        size_bytes: sum.size_bytes,
        sha256: sum.sha256.clone(),
    }
}

fn chunk(part: pb::snapshot_chunk::Part) -> pb::SnapshotChunk {
    pb::SnapshotChunk { part: Some(part) }
}

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

    type DownloadSnapshotStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

    /// The snapshot as an archive ([`crate::archive`]), written on the blocking pool into an
    /// in-memory pipe of [`CHUNK_BYTES`] that the response reads: a slow reader slows the
    /// writer, a reader that goes away stops it.
    async fn download_snapshot(
        &self,
        req: Request<pb::DownloadSnapshotRequest>,
    ) -> Result<Response<Self::DownloadSnapshotStream>, Status> {
        use futures::StreamExt;
        use pb::snapshot_chunk::Part;
        let r = req.into_inner();
        if r.create && !r.snapshot_id.is_empty() {
            return Err(StorageError::from(FieldProblem::SnapshotIdWithCreate).into());
        }
        let (pin, dir, m) = with_engine(&self.engine, move |engine| {
            engine.snapshot_to_send(&r.collection, &r.snapshot_id, r.create)
        })
        .await?;
        let (writer, reader) = tokio::io::duplex(CHUNK_BYTES);
        let writer = tokio_util::io::SyncIoBridge::new(writer);
        // Started now (the response polls `end` only after the last byte).
        let scope = akidb_instrumentation::context::RequestScope::current();
        let written = tokio::task::spawn_blocking(move || {
            scope.in_scope(|| {
                let _pin = pin;
                crate::archive::write(&dir, writer)
            })
        });
        let info =
            futures::stream::once(async move { Ok(chunk(Part::Info(snapshot_to_pb(&m, false)))) });
        let data = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK_BYTES)
            .map(|b| Ok(chunk(Part::Data(b?.to_vec()))));
        // The writer's end closes the pipe when the archive is written (or fails): then its
        // sums, or its error.
        let end = futures::stream::once(async move {
            let sum = written
                .await
                .map_err(|e| StorageError::WorkerFailed(format!("worker task failed: {e}")))??;
            Ok(chunk(Part::End(archive_end(&sum))))
        });
        Ok(Response::new(Box::pin(info.chain(data).chain(end))))
    }

    /// The archive from the stream (read on the blocking pool as it arrives: a refused entry
    /// stops the upload at once) or from the object store, into a new collection.
    async fn restore_snapshot(
        &self,
        req: Request<tonic::Streaming<pb::RestoreSnapshotRequest>>,
    ) -> Result<Response<pb::RestoreSnapshotResponse>, Status> {
        use futures::StreamExt;
        use pb::restore_snapshot_request::Part;
        let mut inbound = req.into_inner();
        let start = match inbound.message().await? {
            Some(pb::RestoreSnapshotRequest {
                part: Some(Part::Start(s)),
            }) => s,
            _ => return Err(StorageError::from(FieldProblem::RestoreStart).into()),
        };
        let pb::RestoreSnapshotStart {
            collection,
            sha256,
            object_key,
        } = start;
        let restored = if !object_key.is_empty() {
            if inbound.message().await?.is_some() {
                return Err(StorageError::from(FieldProblem::RestoreSource).into());
            }
            with_engine(&self.engine, move |engine| {
                engine.restore_from_store(&collection, &sha256, &object_key)
            })
            .await?
        } else {
            let data = inbound.map(|m| match m {
                Ok(pb::RestoreSnapshotRequest {
                    part: Some(Part::Data(d)),
                }) => Ok(bytes::Bytes::from(d)),
                Ok(_) => Err(std::io::Error::other(
                    "a message other than `data` came after `start`",
                )),
                Err(e) => Err(std::io::Error::other(format!(
                    "the upload broke off: {}",
                    e.message()
                ))),
            });
            let upload = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(data));
            with_engine(&self.engine, move |engine| {
                engine.restore(&collection, &sha256, upload)
            })
            .await?
        };
        let (stats, m, sum) = restored;
        let mut info = snapshot_to_pb(&m, false);
        info.point_count = stats.point_count;
        Ok(Response::new(pb::RestoreSnapshotResponse {
            snapshot: Some(info),
            archive: Some(archive_end(&sum)),
        }))
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
