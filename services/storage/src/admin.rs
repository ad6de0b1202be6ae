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
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Bytes of archive per `data` message.
const CHUNK_BYTES: usize = 1 << 20;

fn archive_end(sum: &crate::archive::ArchiveSum) -> pb::SnapshotArchiveEnd {
    pb::SnapshotArchiveEnd {
        size_bytes: sum.size_bytes,
        sha256: sum.sha256.clone(),
    }
}

/// The archive writer's end of a download: `data` messages of [`CHUNK_BYTES`], sent as they
/// fill (blocking while the channel is full). Fails once the receiver is gone.
struct ChunkSink {
    tx: tokio::sync::mpsc::Sender<Result<pb::SnapshotChunk, Status>>,
    buf: Vec<u8>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        let chunk = pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Data(data)),
        };
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the download was abandoned")
        })
    }
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// The restore's end of an upload: the `data` messages as one byte stream (blocking while
/// none has arrived).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => {
                    self.cur = chunk?;
                    self.pos = 0;
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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

    type DownloadSnapshotStream = ReceiverStream<Result<pb::SnapshotChunk, Status>>;

    /// The snapshot as an archive ([`crate::archive`]), written on the blocking pool into a
    /// bounded channel: a slow reader slows the writer, a reader that goes away stops it.
    async fn download_snapshot(
        &self,
        req: Request<pb::DownloadSnapshotRequest>,
    ) -> Result<Response<Self::DownloadSnapshotStream>, Status> {
        let r = req.into_inner();
        if r.create && !r.snapshot_id.is_empty() {
            return Err(StorageError::from(FieldProblem::SnapshotIdWithCreate).into());
        }
        let (pin, dir, m) = with_engine(&self.engine, move |engine| {
            engine.snapshot_to_send(&r.collection, &r.snapshot_id, r.create)
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let info = pb::snapshot_chunk::Part::Info(snapshot_to_pb(&m, false));
        let _ = tx.send(Ok(pb::SnapshotChunk { part: Some(info) })).await;
        let scope = akidb_instrumentation::context::RequestScope::current();
        tokio::task::spawn_blocking(move || {
            scope.in_scope(|| {
                let _pin = pin;
                let sink = ChunkSink {
                    tx: tx.clone(),
                    buf: Vec::with_capacity(CHUNK_BYTES),
                };
                let last = match crate::archive::write(&dir, sink) {
                    Ok(sum) => Ok(pb::SnapshotChunk {
                        part: Some(pb::snapshot_chunk::Part::End(archive_end(&sum))),
                    }),
                    Err(e) => Err(Status::from(e)),
                };
                let _ = tx.blocking_send(last);
            })
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// The archive from the stream (or the object store) into a new collection, read on the
    /// blocking pool as it arrives: a refused entry stops the upload at once.
    async fn restore_snapshot(
        &self,
        req: Request<tonic::Streaming<pb::RestoreSnapshotRequest>>,
    ) -> Result<Response<pb::RestoreSnapshotResponse>, Status> {
        use pb::restore_snapshot_request::Part;
        let mut inbound = req.into_inner();
        let start = match inbound.message().await? {
            Some(pb::RestoreSnapshotRequest {
                part: Some(Part::Start(s)),
            }) => s,
            _ => return Err(StorageError::from(FieldProblem::RestoreStart).into()),
        };
        crate::validate::name(&start.collection)?;
        let sha = start.sha256.clone();
        if !sha.is_empty() && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(StorageError::from(FieldProblem::Sha256(sha)).into());
        }
        let engine = self.engine.clone();
        let (stats, m, sum) = if !start.object_key.is_empty() {
            if inbound.message().await?.is_some() {
                return Err(StorageError::from(FieldProblem::RestoreSource).into());
            }
            let objects = engine
                .objects()
                .cloned()
                .ok_or(StorageError::NoObjectStore)?;
            crate::engine::blocking(move || {
                let root = engine.options().data_dir.join("collections");
                let file = root.join(format!(".upload-{}.tmp", uuid::Uuid::new_v4().simple()));
                let res = objects.fetch(&start.object_key, &file).and_then(|_| {
                    engine.restore(&start.collection, &sha, std::fs::File::open(&file)?)
                });
                let _ = std::fs::remove_file(&file);
                res
            })
            .await?
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
            let name = start.collection.clone();
            let task = crate::engine::blocking(move || {
                engine.restore(&name, &sha, ChannelReader::new(rx))
            });
            let feed = async move {
                loop {
                    let msg = match inbound.message().await {
                        Ok(None) => break,
                        Ok(Some(pb::RestoreSnapshotRequest {
                            part: Some(Part::Data(d)),
                        })) => Ok(d),
                        Ok(Some(_)) => Err(std::io::Error::other(
                            "a message other than `data` came after `start`",
                        )),
                        Err(e) => Err(std::io::Error::other(format!(
                            "the upload broke off: {}",
                            e.message()
                        ))),
                    };
                    let stop = msg.is_err();
                    // The restore stopped reading (it refused the archive): its error answers.
                    if tx.send(msg).await.is_err() || stop {
                        break;
                    }
                }
            };
            let (res, ()) = tokio::join!(task, feed);
            res?
        };
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
