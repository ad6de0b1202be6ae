//! The etcd v3 client: keys, compare-and-swap transactions, leases and their keep-alive
//! stream, and watches that resume by themselves. Over tonic stubs compiled from
//! `proto/etcd/` by `build.rs` (protox: the `etcd-client` crate's build script needs a system
//! `protoc`, which AkiDB's run command must not).
//!
//! Every unary call has a deadline (`timeout`); an unreachable or silent etcd is an
//! [`EtcdError::Unavailable`] that names the endpoints, never a hang.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// The generated messages and clients.
pub mod pb {
    /// Stored keys and watch events (`mvccpb`).
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// KV, Lease and Watch (`etcdserverpb`).
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

use pb::etcdserverpb as rpc;
pub use pb::mvccpb::{Event, KeyValue, event::EventType};
use rpc::{
    compare, kv_client::KvClient, lease_client::LeaseClient, request_op, watch_client::WatchClient,
    watch_request,
};

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No answer: etcd is down, unreachable, or did not answer within the deadline.
    #[error("etcd ({endpoints}) is unavailable: {detail}")]
    Unavailable { endpoints: String, detail: String },
    /// etcd answered with an error (an unknown lease, a compacted revision, a bad request).
    #[error("etcd ({endpoints}) refused the request: {detail}")]
    Refused { endpoints: String, detail: String },
    /// A key holds a value AkiDB cannot read (written by something else, or damaged).
    #[error("etcd key {key} holds an unreadable value: {detail}")]
    Unreadable { key: String, detail: String },
}

/// A client of one etcd cluster. Cheap to clone (the channel is shared).
#[derive(Clone)]
pub struct Etcd {
    channel: Channel,
    endpoints: String,
    timeout: Duration,
}

/// The condition "`key` was last changed at revision `expected`" (0: it does not exist).
fn last_changed_at(key: &[u8], expected: i64) -> rpc::Compare {
    rpc::Compare {
        result: rpc::compare::CompareResult::Equal as i32,
        target: rpc::compare::CompareTarget::Mod as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(expected)),
        range_end: Vec::new(),
    }
}

/// The first key after every key that starts with `prefix`: `[prefix, prefix_end)` is the
/// prefix's range.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

impl Etcd {
    /// A client of the etcd members at `endpoints` (`http://host:port`, comma-separated),
    /// balancing over them. Connects lazily: an etcd that is down surfaces at the first call.
    pub fn new(endpoints: &str, timeout: Duration) -> Result<Etcd, EtcdError> {
        let list: Vec<&str> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let refused = |detail: String| EtcdError::Refused {
            endpoints: endpoints.to_string(),
            detail,
        };
        if list.is_empty() {
            return Err(refused("no etcd endpoint given".into()));
        }
        let mut eps = Vec::with_capacity(list.len());
        for e in &list {
            let ep = Endpoint::from_shared(e.to_string())
                .map_err(|err| refused(format!("endpoint {e:?} is not a URL: {err}")))?
                .connect_timeout(timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
            eps.push(ep);
        }
        let channel = if eps.len() == 1 {
            eps.pop().expect("one endpoint").connect_lazy()
        } else {
            Channel::balance_list(eps.into_iter())
        };
        Ok(Etcd {
            channel,
            endpoints: list.join(","),
            timeout,
        })
    }

    /// The endpoints, as given (for messages).
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn error(&self, s: tonic::Status) -> EtcdError {
        use tonic::Code::*;
        match s.code() {
            Unavailable | DeadlineExceeded | Cancelled | Unknown | Internal | Aborted => {
                EtcdError::Unavailable {
                    endpoints: self.endpoints.clone(),
                    detail: s.message().to_string(),
                }
            }
            _ => EtcdError::Refused {
                endpoints: self.endpoints.clone(),
                detail: format!("{:?}: {}", s.code(), s.message()),
            },
        }
    }

    async fn call<T, F>(&self, f: F) -> Result<T, EtcdError>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r
                .map(tonic::Response::into_inner)
                .map_err(|s| self.error(s)),
            Err(_) => Err(EtcdError::Unavailable {
                endpoints: self.endpoints.clone(),
                detail: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, EtcdError> {
        let req = rpc::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        Ok(self.call(self.kv().range(req)).await?.kvs.pop())
    }

    /// Every key under `prefix`, in key order, and the store's revision they were read at.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), EtcdError> {
        let req = rpc::RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        };
        let r = self.call(self.kv().range(req)).await?;
        Ok((r.kvs, r.header.map_or(0, |h| h.revision)))
    }

    /// Set `key` (bound to `lease` unless it is 0); the new revision.
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64, EtcdError> {
        let req = rpc::PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            prev_kv: false,
        };
        Ok(self
            .call(self.kv().put(req))
            .await?
            .header
            .map_or(0, |h| h.revision))
    }

    /// Delete `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, EtcdError> {
        let req = rpc::DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        Ok(self.call(self.kv().delete_range(req)).await?.deleted > 0)
    }

    /// Set `key` only if its last change is `expected` (its `mod_revision`; 0: only if the key
    /// does not exist). `Ok(new revision)` when set, `Err(current)` (the key as it is now, if
    /// it exists) when not.
    pub async fn swap(
        &self,
        key: &str,
        expected: i64,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<Result<i64, Option<KeyValue>>, EtcdError> {
        let k = key.as_bytes().to_vec();
        let cmp = last_changed_at(&k, expected);
        let put = rpc::RequestOp {
            request: Some(request_op::Request::RequestPut(rpc::PutRequest {
                key: k.clone(),
                value,
                lease,
                prev_kv: false,
            })),
        };
        let get = rpc::RequestOp {
            request: Some(request_op::Request::RequestRange(rpc::RangeRequest {
                key: k,
                ..Default::default()
            })),
        };
        let r = self
            .call(self.kv().txn(rpc::TxnRequest {
                compare: vec![cmp],
                success: vec![put],
                failure: vec![get],
            }))
            .await?;
        if r.succeeded {
            return Ok(Ok(r.header.map_or(0, |h| h.revision)));
        }
        let current = r.responses.into_iter().find_map(|op| match op.response {
            Some(rpc::response_op::Response::ResponseRange(mut rr)) => rr.kvs.pop(),
            _ => None,
        });
        Ok(Err(current))
    }

    /// Delete `key` only if its last change is `expected` (its `mod_revision`); whether it
    /// was deleted.
    pub async fn remove_if(&self, key: &str, expected: i64) -> Result<bool, EtcdError> {
        let k = key.as_bytes().to_vec();
        let cmp = last_changed_at(&k, expected);
        let delete = rpc::RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                rpc::DeleteRangeRequest {
                    key: k,
                    ..Default::default()
                },
            )),
        };
        let r = self
            .call(self.kv().txn(rpc::TxnRequest {
                compare: vec![cmp],
                success: vec![delete],
                failure: vec![],
            }))
            .await?;
        Ok(r.succeeded)
    }

    /// A lease of `ttl` seconds; its id.
    pub async fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let r = self
            .call(
                self.lease()
                    .lease_grant(rpc::LeaseGrantRequest { ttl, id: 0 }),
            )
            .await?;
        if !r.error.is_empty() {
            return Err(EtcdError::Refused {
                endpoints: self.endpoints.clone(),
                detail: r.error,
            });
        }
        Ok(r.id)
    }

    /// Revoke `lease`: every key bound to it is deleted now.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call(
            self.lease()
                .lease_revoke(rpc::LeaseRevokeRequest { id: lease }),
        )
        .await
        .map(|_| ())
    }

    /// Seconds `lease` has left (-1: it has expired or never existed).
    pub async fn time_to_live(&self, lease: i64) -> Result<i64, EtcdError> {
        Ok(self
            .call(
                self.lease()
                    .lease_time_to_live(rpc::LeaseTimeToLiveRequest {
                        id: lease,
                        keys: false,
                    }),
            )
            .await?
            .ttl)
    }

    /// A keep-alive stream for `lease`: each [`KeepAlive::renew`] sends one keep-alive and
    /// waits (at most the call deadline) for etcd's answer.
    pub async fn keep_alive(&self, lease: i64) -> Result<KeepAlive, EtcdError> {
        let (tx, rx) = mpsc::channel(4);
        // etcd answers the stream's headers only with its first answer, so the stream opens
        // with a first renewal in it; its answer is read here, so that each `renew` reads
        // the answer to its own request.
        tx.send(rpc::LeaseKeepAliveRequest { id: lease })
            .await
            .expect("the receiver is held here");
        let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
        let inbound = self.call(self.lease().lease_keep_alive(outbound)).await?;
        let mut ka = KeepAlive {
            etcd: self.clone(),
            lease,
            tx,
            inbound,
        };
        ka.answer().await?;
        Ok(ka)
    }

    /// Watch every key under `prefix`: first the keys as they are ([`WatchUpdate::Listed`]),
    /// then their changes in order. Resumes after a broken stream from the last revision seen,
    /// and lists again when that revision was compacted. Ends when `stop` is cancelled or the
    /// receiver is dropped.
    pub fn watch(&self, prefix: &str, stop: CancellationToken) -> mpsc::Receiver<WatchUpdate> {
        self.watch_from(prefix, None, stop)
    }

    /// [`Etcd::watch`] resuming from revision `from` (`None`: list first), as it does after a
    /// broken stream.
    fn watch_from(
        &self,
        prefix: &str,
        from: Option<i64>,
        stop: CancellationToken,
    ) -> mpsc::Receiver<WatchUpdate> {
        let (tx, rx) = mpsc::channel(64);
        let etcd = self.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = etcd.watch_loop(&prefix, from, tx) => {}
            }
        });
        rx
    }

    /// `next`: the revision to resume from (the next one to see), or `None` to list first.
    async fn watch_loop(&self, prefix: &str, mut next: Option<i64>, tx: mpsc::Sender<WatchUpdate>) {
        let mut retry = 0u32;
        loop {
            if retry > 0 {
                tokio::time::sleep(akidb_client::backoff(100, 2_000, retry)).await;
            }
            retry += 1;
            let from = match next {
                Some(rev) => rev,
                None => match self.list(prefix).await {
                    Ok((kvs, revision)) => {
                        if tx
                            .send(WatchUpdate::Listed { kvs, revision })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        revision + 1
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, prefix, "etcd watch: cannot list; retrying");
                        continue;
                    }
                },
            };
            next = Some(from);
            let (req_tx, req_rx) = mpsc::channel(1);
            let create = rpc::WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    rpc::WatchCreateRequest {
                        key: prefix.as_bytes().to_vec(),
                        range_end: prefix_end(prefix.as_bytes()),
                        start_revision: from,
                        progress_notify: true,
                        prev_kv: false,
                        watch_id: 0,
                    },
                )),
            };
            if req_tx.send(create).await.is_err() {
                return;
            }
            let mut client = WatchClient::new(self.channel.clone());
            let stream =
                self.call(client.watch(tokio_stream::wrappers::ReceiverStream::new(req_rx)));
            let mut stream = match stream.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, prefix, "etcd watch: cannot open; retrying");
                    continue;
                }
            };
            loop {
                match stream.next().await {
                    Some(Ok(r)) => {
                        if r.compact_revision > 0 {
                            tracing::warn!(
                                prefix,
                                from,
                                compacted = r.compact_revision,
                                "etcd watch: revision compacted; listing again"
                            );
                            next = None;
                            break;
                        }
                        if r.canceled {
                            tracing::warn!(
                                prefix,
                                reason = r.cancel_reason,
                                "etcd watch canceled; resuming"
                            );
                            break;
                        }
                        retry = 0;
                        let revision = r.header.as_ref().map_or(0, |h| h.revision);
                        if r.events.is_empty() {
                            // Created or a progress notice: nothing below `revision` is left.
                            if revision >= from {
                                next = Some(revision + 1);
                            }
                            continue;
                        }
                        let last = r
                            .events
                            .iter()
                            .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
                            .max()
                            .unwrap_or(revision);
                        next = Some(last + 1);
                        if tx
                            .send(WatchUpdate::Changed {
                                events: r.events,
                                revision: last,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Some(Err(s)) => {
                        tracing::warn!(error = %self.error(s), prefix, "etcd watch broke; resuming");
                        break;
                    }
                    None => {
                        tracing::warn!(prefix, "etcd watch ended; resuming");
                        break;
                    }
                }
            }
        }
    }
}

/// What a watch reports.
#[derive(Debug)]
pub enum WatchUpdate {
    /// Every key under the prefix at `revision` (first, and again after a compaction):
    /// replaces what the watcher knew.
    Listed { kvs: Vec<KeyValue>, revision: i64 },
    /// Changes in revision order, up to `revision`.
    Changed { events: Vec<Event>, revision: i64 },
}

/// One keep-alive stream of a lease.
pub struct KeepAlive {
    etcd: Etcd,
    lease: i64,
    tx: mpsc::Sender<rpc::LeaseKeepAliveRequest>,
    inbound: tonic::Streaming<rpc::LeaseKeepAliveResponse>,
}

impl KeepAlive {
    /// Renew the lease: the TTL etcd answered (0 or less: the lease has expired), or an error
    /// when the stream is broken or etcd did not answer within the call deadline (a stalled
    /// member: open a new stream).
    pub async fn renew(&mut self) -> Result<i64, EtcdError> {
        let unavailable = |detail: String| EtcdError::Unavailable {
            endpoints: self.etcd.endpoints.clone(),
            detail,
        };
        self.tx
            .send(rpc::LeaseKeepAliveRequest { id: self.lease })
            .await
            .map_err(|_| unavailable("keep-alive stream closed".into()))?;
        self.answer().await
    }

    /// The answer to the last renewal sent: the TTL left.
    async fn answer(&mut self) -> Result<i64, EtcdError> {
        let unavailable = |detail: String| EtcdError::Unavailable {
            endpoints: self.etcd.endpoints.clone(),
            detail,
        };
        match tokio::time::timeout(self.etcd.timeout, self.inbound.next()).await {
            Ok(Some(Ok(r))) => Ok(r.ttl),
            Ok(Some(Err(s))) => Err(self.etcd.error(s)),
            Ok(None) => Err(unavailable("keep-alive stream ended".into())),
            Err(_) => Err(unavailable(format!(
                "no keep-alive answer within {:?}",
                self.etcd.timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akidb_testkit::etcd::Etcd as EtcdServer;

    async fn next(rx: &mut mpsc::Receiver<WatchUpdate>) -> WatchUpdate {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an update within 10 s")
            .expect("watch open")
    }

    /// A watch resumed from a revision etcd has compacted away lists the keys again (as they
    /// are now) instead of failing or replaying history, then follows changes.
    #[tokio::test]
    async fn a_watch_resumed_from_a_compacted_revision_lists_again() {
        let Some(server) = EtcdServer::start().await else {
            return;
        };
        let etcd = Etcd::new(&server.url, Duration::from_secs(2)).unwrap();
        let first = etcd.put("/w/a", b"1".to_vec(), 0).await.unwrap();
        etcd.put("/w/a", b"2".to_vec(), 0).await.unwrap();
        let last = etcd.put("/w/b", b"3".to_vec(), 0).await.unwrap();
        etcd.call(
            KvClient::new(etcd.channel.clone()).compact(rpc::CompactionRequest {
                revision: last,
                physical: true,
            }),
        )
        .await
        .unwrap();
        let stop = CancellationToken::new();
        let mut rx = etcd.watch_from("/w/", Some(first), stop.clone());
        match next(&mut rx).await {
            WatchUpdate::Listed { kvs, revision } => {
                assert!(revision >= last);
                let now: Vec<(&[u8], &[u8])> = kvs
                    .iter()
                    .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
                    .collect();
                assert_eq!(
                    now,
                    vec![(&b"/w/a"[..], &b"2"[..]), (&b"/w/b"[..], &b"3"[..])]
                );
            }
            u => panic!("a listing after the compaction, got {u:?}"),
        }
        etcd.put("/w/c", b"4".to_vec(), 0).await.unwrap();
        match next(&mut rx).await {
            WatchUpdate::Changed { events, .. } => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].kv.as_ref().unwrap().key, b"/w/c");
            }
            u => panic!("the change after the listing, got {u:?}"),
        }
        stop.cancel();
    }

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/akidb/nodes/"), b"/akidb/nodes0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
