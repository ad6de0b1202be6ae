//! Operations through the front door: `AdminService` (forwarded to storage) and
//! `TelemetryService` (forwarded to the aggregator). Storage and the aggregator take only
//! internal callers when keys are on, so `akidb admin ...` and `akidb slo` reach them here, with
//! an admin key (AdminService) or any key (SLO status), and query presents the internal key.
//!
//! Every call is forwarded once (an admin action is not retried behind the operator's back),
//! with the caller's deadline or ten minutes (a demotion to cold uploads a snapshot). A key
//! limited to some collections may act on those only; calls about every collection at once
//! (the dead-letter queue, the breaker, status of all) need an unlimited key.

use akidb_auth::principal::{check, check_unscoped};
use akidb_client::Link;
use akidb_proto::v1 as pb;
use akidb_proto::v1::admin_service_server::AdminService;
use akidb_proto::v1::telemetry_service_server::TelemetryService;
use tonic::{Request, Response, Status};

/// The forwarding front of storage's AdminService and the aggregator's TelemetryService.
#[derive(Clone)]
pub struct Ops {
    pub storage: Link,
    pub telemetry: Link,
}

/// Check the key's scope for a request about `collection` (empty: every collection), then
/// forward it once to `$client.$method` of `$link`.
macro_rules! relay {
    ($req:ident, $link:expr, $client:ident, $method:ident, $collection:expr) => {{
        let collection: &str = $collection;
        let who = akidb_auth::principal(&$req);
        if collection.is_empty() {
            check_unscoped(who, concat!(stringify!($method), " of every collection"))?;
        } else {
            check(who, collection)?;
        }
        let link = $link.with_caller_deadline(&$req);
        let r = link
            .$client()
            .$method(link.request($req.into_inner()))
            .await?;
        Ok(Response::new(r.into_inner()))
    }};
}

#[tonic::async_trait]
impl AdminService for Ops {
    async fn tier_status(
        &self,
        req: Request<pb::TierStatusRequest>,
    ) -> Result<Response<pb::TierStatusResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, tier_status, &c)
    }
    async fn promote(
        &self,
        req: Request<pb::TierMoveRequest>,
    ) -> Result<Response<pb::TierMoveResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, promote, &c)
    }
    async fn demote(
        &self,
        req: Request<pb::TierMoveRequest>,
    ) -> Result<Response<pb::TierMoveResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, demote, &c)
    }
    async fn pin(&self, req: Request<pb::PinRequest>) -> Result<Response<pb::PinResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, pin, &c)
    }
    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, snapshot, &c)
    }
    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, list_snapshots, &c)
    }
    type DownloadSnapshotStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

    async fn download_snapshot(
        &self,
        req: Request<pb::DownloadSnapshotRequest>,
    ) -> Result<Response<Self::DownloadSnapshotStream>, Status> {
        check(akidb_auth::principal(&req), &req.get_ref().collection)?;
        let link = self.storage.with_caller_deadline(&req);
        let r = link
            .admin()
            .download_snapshot(link.request(req.into_inner()))
            .await?;
        Ok(Response::new(Box::pin(r.into_inner())))
    }

    /// The first message names the collection (checked against the key's scope); the rest
    /// is passed on as it comes. An upload that breaks off ends the forwarded stream, which
    /// storage then refuses as a truncated archive.
    async fn restore_snapshot(
        &self,
        req: Request<tonic::Streaming<pb::RestoreSnapshotRequest>>,
    ) -> Result<Response<pb::RestoreSnapshotResponse>, Status> {
        use futures::StreamExt;
        let who = akidb_auth::principal(&req).cloned();
        let link = self.storage.with_caller_deadline(&req);
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("RestoreSnapshot got no message"))?;
        if let Some(pb::restore_snapshot_request::Part::Start(s)) = &first.part {
            check(who.as_ref(), &s.collection)?;
        }
        let rest = inbound
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(|m| std::future::ready(m.ok()));
        let upload = futures::stream::once(std::future::ready(first)).chain(rest);
        let r = link.admin().restore_snapshot(link.request(upload)).await?;
        Ok(Response::new(r.into_inner()))
    }
    async fn compact(
        &self,
        req: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, compact, &c)
    }
    async fn dlq_list(
        &self,
        req: Request<pb::DlqListRequest>,
    ) -> Result<Response<pb::DlqListResponse>, Status> {
        relay!(req, self.storage, admin, dlq_list, "")
    }
    async fn dlq_retry(
        &self,
        req: Request<pb::DlqRetryRequest>,
    ) -> Result<Response<pb::DlqRetryResponse>, Status> {
        relay!(req, self.storage, admin, dlq_retry, "")
    }
    async fn dlq_purge(
        &self,
        req: Request<pb::DlqPurgeRequest>,
    ) -> Result<Response<pb::DlqPurgeResponse>, Status> {
        relay!(req, self.storage, admin, dlq_purge, "")
    }
    async fn breaker_get(
        &self,
        req: Request<pb::BreakerGetRequest>,
    ) -> Result<Response<pb::BreakerStatus>, Status> {
        relay!(req, self.storage, admin, breaker_get, "")
    }
    async fn breaker_reset(
        &self,
        req: Request<pb::BreakerResetRequest>,
    ) -> Result<Response<pb::BreakerStatus>, Status> {
        relay!(req, self.storage, admin, breaker_reset, "")
    }
    async fn wal_status(
        &self,
        req: Request<pb::WalStatusRequest>,
    ) -> Result<Response<pb::WalStatusResponse>, Status> {
        let c = req.get_ref().collection.clone();
        relay!(req, self.storage, admin, wal_status, &c)
    }
}

#[tonic::async_trait]
impl TelemetryService for Ops {
    async fn get_slo_status(
        &self,
        req: Request<pb::GetSloStatusRequest>,
    ) -> Result<Response<pb::GetSloStatusResponse>, Status> {
        // Not about any collection: every key that may read sees the SLOs.
        let link = self.telemetry.with_caller_deadline(&req);
        let r = link
            .telemetry()
            .get_slo_status(link.request(req.into_inner()))
            .await?;
        Ok(Response::new(r.into_inner()))
    }
    async fn get_targets(
        &self,
        req: Request<pb::GetTargetsRequest>,
    ) -> Result<Response<pb::GetTargetsResponse>, Status> {
        let link = self.telemetry.with_caller_deadline(&req);
        let r = link
            .telemetry()
            .get_targets(link.request(req.into_inner()))
            .await?;
        Ok(Response::new(r.into_inner()))
    }
}
