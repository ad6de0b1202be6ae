//! `akidb admin ...`: operator actions on storage's AdminService (used by the runbooks).

use crate::global::{Global, emit, link};
use akidb_proto::v1 as pb;
use comfy_table::Table;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum AdminCmd {
    /// Tiers: status, promote, demote, pin, unpin.
    Tier {
        #[command(subcommand)]
        cmd: TierCmd,
    },
    /// Snapshots: create, list, download as an archive, restore into a new collection.
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Compact a collection now (rewrite segments with many tombstones, merge small ones).
    Compact { collection: String },
    /// The dead-letter queue of uploads that failed.
    Dlq {
        #[command(subcommand)]
        cmd: DlqCmd,
    },
    /// The object store circuit breaker.
    Breaker {
        #[command(subcommand)]
        cmd: BreakerCmd,
    },
    /// The write-ahead log.
    Wal {
        #[command(subcommand)]
        cmd: WalCmd,
    },
}

#[derive(clap::Subcommand)]
pub enum TierCmd {
    /// Tier, memory, disk and object store bytes of every (or one) collection.
    Status {
        #[arg(long)]
        collection: Option<String>,
    },
    /// Load a collection into memory (hot).
    Promote { collection: String },
    /// Move a collection to warm (local disk only) or cold (object store only).
    Demote {
        collection: String,
        #[arg(long, default_value = "warm", value_parser = ["warm", "cold"])]
        to: String,
    },
    /// Keep a collection hot whatever the policy says.
    Pin { collection: String },
    /// Let the policy move a pinned collection again.
    Unpin { collection: String },
}

#[derive(clap::Subcommand)]
pub enum SnapshotCmd {
    /// Take a snapshot now.
    Create { collection: String },
    /// List a collection's snapshots.
    List { collection: String },
    /// Save a snapshot as a tar archive (checked against the SHA-256 storage sends).
    Download {
        collection: String,
        /// The archive to write (written whole or not at all).
        #[arg(long, short)]
        output: std::path::PathBuf,
        /// The snapshot to send (an id from `snapshot list`); default: the newest.
        #[arg(long, conflicts_with = "new")]
        id: Option<String>,
        /// Take a new snapshot and send it.
        #[arg(long)]
        new: bool,
    },
    /// Create a collection from a snapshot archive (a file, or an object-store key).
    Restore {
        /// Name of the new collection.
        collection: String,
        /// The archive file to upload.
        #[arg(
            long,
            required_unless_present = "object_key",
            conflicts_with = "object_key"
        )]
        from: Option<std::path::PathBuf>,
        /// Restore from this key of storage's object store instead.
        #[arg(long)]
        object_key: Option<String>,
        /// The SHA-256 the archive must have (as `snapshot download` printed it).
        #[arg(long)]
        sha256: Option<String>,
    },
}

#[derive(clap::Subcommand)]
pub enum DlqCmd {
    /// List entries.
    List,
    /// Retry one entry (--id) or all now.
    Retry {
        #[arg(long)]
        id: Option<String>,
    },
    /// Drop one entry (--id) or all (--all); the data of a purged upload is not in the object store.
    Purge {
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum BreakerCmd {
    /// Current state.
    Get,
    /// Close the breaker now.
    Reset,
}

#[derive(clap::Subcommand)]
pub enum WalCmd {
    /// Sequence numbers, segments and size of a collection's WAL.
    Status { collection: String },
}

fn tier_name(t: i32) -> &'static str {
    pb::Tier::try_from(t)
        .map(|t| t.as_str_name())
        .unwrap_or("?")
}

fn tier_rows(g: &Global, rows: &[pb::CollectionTierStatus]) {
    let v = json!(rows.iter().map(|s| json!({
        "collection": s.name, "tier": tier_name(s.tier), "pinned": s.pinned, "bytes_in_memory": s.bytes_in_memory,
        "bytes_on_disk": s.bytes_on_disk, "bytes_in_object_store": s.bytes_in_object_store,
        "last_access_unix_ms": s.last_access_unix_ms, "moving_to": tier_name(s.moving_to)})).collect::<Vec<_>>());
    emit(g, v, || {
        let mut t = Table::new();
        t.set_header([
            "collection",
            "tier",
            "pinned",
            "memory",
            "disk",
            "object store",
            "moving to",
        ]);
        for s in rows {
            t.add_row(vec![
                s.name.clone(),
                tier_name(s.tier).into(),
                s.pinned.to_string(),
                s.bytes_in_memory.to_string(),
                s.bytes_on_disk.to_string(),
                s.bytes_in_object_store.to_string(),
                if s.moving_to == 0 {
                    String::new()
                } else {
                    tier_name(s.moving_to).into()
                },
            ]);
        }
        t
    });
}

fn breaker(g: &Global, b: &pb::BreakerStatus) {
    let state = pb::BreakerState::try_from(b.state)
        .map(|s| s.as_str_name())
        .unwrap_or("?");
    emit(
        g,
        json!({"state": state, "consecutive_failures": b.consecutive_failures, "failure_ratio": b.failure_ratio,
               "open_until_unix_ms": b.open_until_unix_ms, "remote": b.remote}),
        || {
            let mut t = Table::new();
            t.set_header([
                "state",
                "consecutive failures",
                "failure ratio",
                "open until (unix ms)",
                "remote store",
            ]);
            t.add_row(vec![
                state.into(),
                b.consecutive_failures.to_string(),
                format!("{:.3}", b.failure_ratio),
                b.open_until_unix_ms.to_string(),
                b.remote.to_string(),
            ]);
            t
        },
    );
}

fn snapshots(g: &Global, s: &[pb::SnapshotInfo]) {
    let v = json!(s.iter().map(|s| json!({"collection": s.collection, "id": s.id, "sequence": s.sequence,
        "created_unix_ms": s.created_unix_ms, "size_bytes": s.size_bytes, "points": s.point_count, "uploaded": s.uploaded})).collect::<Vec<_>>());
    emit(g, v, || {
        let mut t = Table::new();
        t.set_header([
            "collection",
            "id",
            "sequence",
            "created (unix ms)",
            "bytes",
            "points",
            "uploaded",
        ]);
        for s in s {
            t.add_row(vec![
                s.collection.clone(),
                s.id.clone(),
                s.sequence.to_string(),
                s.created_unix_ms.to_string(),
                s.size_bytes.to_string(),
                s.point_count.to_string(),
                s.uploaded.to_string(),
            ]);
        }
        t
    });
}

/// An archive's transfer gets the longest deadline a front door allows (10 minutes), not
/// `--timeout`: a large collection takes longer than a call.
fn archive_request<T>(msg: T) -> tonic::Request<T> {
    akidb_client::with_deadline(msg, akidb_proto::limits::MAX_DEADLINE)
}

/// Write a DownloadSnapshot stream to `output` (through a `.partial` file renamed once the
/// archive's size and SHA-256 match what storage sent last).
async fn save_archive(
    mut stream: tonic::Streaming<pb::SnapshotChunk>,
    output: &std::path::Path,
) -> anyhow::Result<(pb::SnapshotInfo, pb::SnapshotArchiveEnd)> {
    use pb::snapshot_chunk::Part;
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?;
    let (mut info, mut sha, mut size) = (None, sha2::Sha256::new(), 0u64);
    let res = async {
        while let Some(chunk) = stream.message().await? {
            match chunk.part {
                Some(Part::Info(i)) => info = Some(i),
                Some(Part::Data(d)) => {
                    sha.update(&d);
                    size += d.len() as u64;
                    file.write_all(&d).await?;
                }
                Some(Part::End(end)) => {
                    let got = hex::encode(sha.clone().finalize());
                    anyhow::ensure!(
                        end.size_bytes == size && end.sha256 == got,
                        "the archive arrived damaged ({size} bytes, SHA-256 {got}; storage sent {} bytes, {})",
                        end.size_bytes,
                        end.sha256
                    );
                    file.sync_all().await?;
                    return Ok(end);
                }
                None => {}
            }
        }
        anyhow::bail!("the download ended before the archive did")
    }
    .await;
    match res {
        Ok(end) => {
            tokio::fs::rename(&partial, output).await?;
            Ok((info.unwrap_or_default(), end))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

fn archive_line(g: &Global, s: &pb::SnapshotInfo, end: &pb::SnapshotArchiveEnd, file: &str) {
    let v = json!({"collection": s.collection, "id": s.id, "points": s.point_count,
        "archive": file, "size_bytes": end.size_bytes, "sha256": end.sha256});
    emit(g, v, || {
        let mut t = Table::new();
        t.set_header([
            "collection",
            "snapshot",
            "points",
            "archive",
            "bytes",
            "sha256",
        ]);
        t.add_row(vec![
            s.collection.clone(),
            s.id.clone(),
            s.point_count.to_string(),
            file.to_string(),
            end.size_bytes.to_string(),
            end.sha256.clone(),
        ]);
        t
    });
}

pub async fn run(g: &Global, cmd: AdminCmd) -> anyhow::Result<()> {
    // Through the query service, which forwards to storage (storage takes only internal
    // callers when keys are on).
    let l = link(g, &g.query_addr)?;
    let mut a = l.admin();
    match cmd {
        AdminCmd::Tier { cmd } => {
            let rows = match cmd {
                TierCmd::Status { collection } => {
                    let r = a
                        .tier_status(l.request(pb::TierStatusRequest {
                            collection: collection.unwrap_or_default(),
                        }))
                        .await?
                        .into_inner();
                    r.collections
                }
                TierCmd::Promote { collection } => {
                    let r = a
                        .promote(l.request(pb::TierMoveRequest {
                            collection,
                            target: pb::Tier::Hot as i32,
                        }))
                        .await?;
                    r.into_inner().status.into_iter().collect()
                }
                TierCmd::Demote { collection, to } => {
                    let target = if to == "cold" {
                        pb::Tier::Cold
                    } else {
                        pb::Tier::Warm
                    };
                    let r = a
                        .demote(l.request(pb::TierMoveRequest {
                            collection,
                            target: target as i32,
                        }))
                        .await?;
                    r.into_inner().status.into_iter().collect()
                }
                TierCmd::Pin { collection } => a
                    .pin(l.request(pb::PinRequest {
                        collection,
                        pinned: true,
                    }))
                    .await?
                    .into_inner()
                    .status
                    .into_iter()
                    .collect(),
                TierCmd::Unpin { collection } => a
                    .pin(l.request(pb::PinRequest {
                        collection,
                        pinned: false,
                    }))
                    .await?
                    .into_inner()
                    .status
                    .into_iter()
                    .collect(),
            };
            tier_rows(g, &rows);
        }
        AdminCmd::Snapshot { cmd } => match cmd {
            SnapshotCmd::Create { collection } => {
                let r = a
                    .snapshot(l.request(pb::SnapshotRequest { collection }))
                    .await?
                    .into_inner();
                snapshots(g, &r.snapshot.into_iter().collect::<Vec<_>>());
            }
            SnapshotCmd::List { collection } => {
                let r = a
                    .list_snapshots(l.request(pb::ListSnapshotsRequest { collection }))
                    .await?
                    .into_inner();
                snapshots(g, &r.snapshots);
            }
            SnapshotCmd::Download {
                collection,
                output,
                id,
                new,
            } => {
                let stream = a
                    .download_snapshot(archive_request(pb::DownloadSnapshotRequest {
                        collection,
                        snapshot_id: id.unwrap_or_default(),
                        create: new,
                    }))
                    .await?
                    .into_inner();
                let (info, end) = save_archive(stream, &output).await?;
                archive_line(g, &info, &end, &output.display().to_string());
            }
            SnapshotCmd::Restore {
                collection,
                from,
                object_key,
                sha256,
            } => {
                use futures::StreamExt;
                let start = pb::RestoreSnapshotRequest {
                    part: Some(pb::restore_snapshot_request::Part::Start(
                        pb::RestoreSnapshotStart {
                            collection,
                            sha256: sha256.unwrap_or_default(),
                            object_key: object_key.clone().unwrap_or_default(),
                        },
                    )),
                };
                let data = match &from {
                    Some(path) => {
                        let file = tokio::fs::File::open(path)
                            .await
                            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                        tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                            .map(|chunk| pb::RestoreSnapshotRequest {
                                part: Some(pb::restore_snapshot_request::Part::Data(
                                    chunk.map(|b| b.to_vec()).unwrap_or_default(),
                                )),
                            })
                            .boxed()
                    }
                    None => futures::stream::empty().boxed(),
                };
                let upload = futures::stream::once(std::future::ready(start)).chain(data);
                let r = a
                    .restore_snapshot(archive_request(upload))
                    .await?
                    .into_inner();
                let source = match (from, object_key) {
                    (Some(p), _) => p.display().to_string(),
                    (None, k) => format!("object {}", k.unwrap_or_default()),
                };
                archive_line(
                    g,
                    &r.snapshot.unwrap_or_default(),
                    &r.archive.unwrap_or_default(),
                    &source,
                );
            }
        },
        AdminCmd::Compact { collection } => {
            let r = a
                .compact(l.request(pb::CompactRequest { collection }))
                .await?
                .into_inner();
            emit(
                g,
                json!({"segments_before": r.segments_before, "segments_after": r.segments_after, "tombstones_removed": r.tombstones_removed}),
                || {
                    let mut t = Table::new();
                    t.set_header(["segments before", "segments after", "tombstones removed"]);
                    t.add_row(vec![
                        r.segments_before.to_string(),
                        r.segments_after.to_string(),
                        r.tombstones_removed.to_string(),
                    ]);
                    t
                },
            );
        }
        AdminCmd::Dlq { cmd } => match cmd {
            DlqCmd::List => {
                let r = a
                    .dlq_list(l.request(pb::DlqListRequest {}))
                    .await?
                    .into_inner();
                let v = json!(r.entries.iter().map(|e| json!({"id": e.id, "collection": e.collection, "object_key": e.object_key,
                    "size_bytes": e.size_bytes, "attempts": e.attempts, "first_failed_unix_ms": e.first_failed_unix_ms,
                    "next_retry_unix_ms": e.next_retry_unix_ms, "last_error": e.last_error})).collect::<Vec<_>>());
                emit(g, v, || {
                    let mut t = Table::new();
                    t.set_header([
                        "id",
                        "collection",
                        "object key",
                        "bytes",
                        "attempts",
                        "last error",
                    ]);
                    for e in &r.entries {
                        t.add_row(vec![
                            e.id.clone(),
                            e.collection.clone(),
                            e.object_key.clone(),
                            e.size_bytes.to_string(),
                            e.attempts.to_string(),
                            e.last_error.clone(),
                        ]);
                    }
                    t
                });
            }
            DlqCmd::Retry { id } => {
                let r = a
                    .dlq_retry(l.request(pb::DlqRetryRequest {
                        id: id.unwrap_or_default(),
                    }))
                    .await?
                    .into_inner();
                emit(
                    g,
                    json!({"succeeded": r.succeeded, "failed": r.failed}),
                    || {
                        let mut t = Table::new();
                        t.set_header(["succeeded", "failed"]);
                        t.add_row(vec![r.succeeded.to_string(), r.failed.to_string()]);
                        t
                    },
                );
            }
            DlqCmd::Purge { id, all } => {
                let r = a
                    .dlq_purge(l.request(pb::DlqPurgeRequest {
                        id: id.unwrap_or_default(),
                        all,
                    }))
                    .await?
                    .into_inner();
                emit(g, json!({"purged": r.purged}), || {
                    let mut t = Table::new();
                    t.set_header(["purged"]);
                    t.add_row(vec![r.purged.to_string()]);
                    t
                });
            }
        },
        AdminCmd::Breaker { cmd } => {
            let b = match cmd {
                BreakerCmd::Get => a
                    .breaker_get(l.request(pb::BreakerGetRequest {}))
                    .await?
                    .into_inner(),
                BreakerCmd::Reset => a
                    .breaker_reset(l.request(pb::BreakerResetRequest {}))
                    .await?
                    .into_inner(),
            };
            breaker(g, &b);
        }
        AdminCmd::Wal {
            cmd: WalCmd::Status { collection },
        } => {
            let r = a
                .wal_status(l.request(pb::WalStatusRequest { collection }))
                .await?
                .into_inner();
            emit(
                g,
                json!({"last_sequence": r.last_sequence, "snapshot_sequence": r.snapshot_sequence, "segments": r.segment_count,
                       "size_bytes": r.size_bytes, "fsync_policy": r.fsync_policy}),
                || {
                    let mut t = Table::new();
                    t.set_header([
                        "last sequence",
                        "snapshot sequence",
                        "segments",
                        "bytes",
                        "fsync",
                    ]);
                    t.add_row(vec![
                        r.last_sequence.to_string(),
                        r.snapshot_sequence.to_string(),
                        r.segment_count.to_string(),
                        r.size_bytes.to_string(),
                        r.fsync_policy.clone(),
                    ]);
                    t
                },
            );
        }
    }
    Ok(())
}
