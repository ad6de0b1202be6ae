//! Trace propagation through the library, in process: an OTLP receiver in the test, and a
//! two-hop gRPC chain (client -> front -> back) built with `transport::builder()` and
//! `transport::channel()`, the way the services are.
//!
//! One test only: `init` installs process-wide tracing state.

use akidb_instrumentation::{Component, TelemetryArgs, transport};
use akidb_proto::v1 as pb;
use akidb_proto::v1::telemetry_service_client::TelemetryServiceClient;
use akidb_proto::v1::telemetry_service_server::{TelemetryService, TelemetryServiceServer};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

mod common;
use common::Receiver;

use akidb_instrumentation::transport::Channel;

/// The first hop: answers GetTargets by asking the next hop.
struct Front {
    next: TelemetryServiceClient<Channel>,
}

#[tonic::async_trait]
impl TelemetryService for Front {
    async fn get_slo_status(
        &self,
        _req: tonic::Request<pb::GetSloStatusRequest>,
    ) -> Result<tonic::Response<pb::GetSloStatusResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "front only forwards GetTargets",
        ))
    }

    async fn get_targets(
        &self,
        _req: tonic::Request<pb::GetTargetsRequest>,
    ) -> Result<tonic::Response<pb::GetTargetsResponse>, tonic::Status> {
        self.next
            .clone()
            .get_targets(pb::GetTargetsRequest {})
            .await
    }
}

/// The last hop: answers GetTargets with no targets, as a telemetry service without targets
/// does.
struct Last;

#[tonic::async_trait]
impl TelemetryService for Last {
    async fn get_slo_status(
        &self,
        _req: tonic::Request<pb::GetSloStatusRequest>,
    ) -> Result<tonic::Response<pb::GetSloStatusResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "the last hop only answers GetTargets",
        ))
    }

    async fn get_targets(
        &self,
        _req: tonic::Request<pb::GetTargetsRequest>,
    ) -> Result<tonic::Response<pb::GetTargetsResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::GetTargetsResponse {
            targets: Vec::new(),
        }))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn serve<S>(svc: S, listener: TcpListener, stop: oneshot::Receiver<()>)
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (_, health) = tonic_health::server::health_reporter();
    transport::builder()
        .add_service(health)
        .add_service(svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop.await;
        })
        .await
        .unwrap();
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Wait until the receiver holds `n` spans (or 10 s).
async fn wait_for_spans(
    guard: &akidb_instrumentation::TelemetryGuard,
    rx: &Receiver,
    n: usize,
) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        guard.flush().await;
        let spans = rx.spans.lock().unwrap().clone();
        if spans.len() >= n || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_callers_trace_and_export_never_blocks() {
    // The receiver.
    let receiver = Receiver::default();
    let (rl, raddr) = listener().await;
    let (stop_receiver, rstop) = oneshot::channel();
    let receiver_task = tokio::spawn({
        let svc = TraceServiceServer::new(receiver.clone());
        async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(TcpListenerStream::new(rl), async {
                    let _ = rstop.await;
                })
                .await
                .unwrap();
        }
    });

    let guard = akidb_instrumentation::init(
        Component::Other,
        &TelemetryArgs {
            log: "warn".into(),
            otlp_endpoint: Some(format!("http://{raddr}")),
            trace_sample_ratio: 1.0,
            ..Default::default()
        },
    )
    .unwrap();

    // back: answers GetTargets (no targets); front: forwards to back.
    let (bl, baddr) = listener().await;
    let (_stop_back, bstop) = oneshot::channel();
    tokio::spawn(serve(TelemetryServiceServer::new(Last), bl, bstop));
    let (fl, faddr) = listener().await;
    let (_stop_front, fstop) = oneshot::channel();
    let to_back = transport::channel(&format!("http://{baddr}"), Duration::from_secs(1)).unwrap();
    tokio::spawn(serve(
        TelemetryServiceServer::new(Front {
            next: TelemetryServiceClient::new(to_back),
        }),
        fl,
        fstop,
    ));
    let mut client = TelemetryServiceClient::new(
        transport::channel(&format!("http://{faddr}"), Duration::from_secs(1)).unwrap(),
    );

    // 1. Through the instrumented channel, inside a span whose parent is a known remote one.
    let parent = TraceContextPropagator::new().extract(&HashMap::from([(
        "traceparent".to_string(),
        format!("00-{TRACE_ID}-{PARENT_ID}-01"),
    )]));
    let root = tracing::info_span!("test.request");
    root.set_parent(parent).unwrap();
    let root_id = root.context().span().span_context().span_id().to_string();
    async {
        client
            .get_targets(pb::GetTargetsRequest {})
            .await
            .expect("two-hop call");
    }
    .instrument_in(&root)
    .await;
    drop(root);

    let spans = wait_for_spans(&guard, &receiver, 5).await;
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .collect();
    let kind = |k: SpanKind| -> Vec<&Span> {
        ours.iter()
            .copied()
            .filter(|s| s.kind == k as i32 && s.name == "akidb.v1.TelemetryService/GetTargets")
            .collect()
    };
    let (clients, servers) = (kind(SpanKind::Client), kind(SpanKind::Server));
    assert_eq!(
        (clients.len(), servers.len()),
        (2, 2),
        "every span of the chain has the caller's trace id; got {:#?}",
        spans
            .iter()
            .map(|s| (hex(&s.trace_id), &s.name, s.kind))
            .collect::<Vec<_>>()
    );
    let root_span = ours.iter().find(|s| s.name == "test.request").unwrap();
    assert_eq!(hex(&root_span.span_id), root_id);
    assert_eq!(hex(&root_span.parent_span_id), PARENT_ID);
    // client A is the root's child; server(front) is client A's; client B is server(front)'s;
    // server(back) is client B's.
    let by_parent = |parent: &[u8], list: &[&Span]| -> Option<Vec<u8>> {
        list.iter()
            .find(|s| s.parent_span_id == parent)
            .map(|s| s.span_id.clone())
    };
    let client_a = by_parent(&root_span.span_id, &clients).expect("client span under root");
    let server_front =
        by_parent(&client_a, &servers).expect("front server span's parent is the client span");
    let client_b = by_parent(&server_front, &clients).expect("front's client span");
    let _server_back =
        by_parent(&client_b, &servers).expect("back server span's parent is front's client span");

    // 2. A plain gRPC client that sends its own traceparent (no AkiDB layer on its side).
    let own_trace = "0af7651916cd43dd8448eb211c80319c";
    let own_parent = "b7ad6b7169203331";
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{faddr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut req = tonic::Request::new(pb::GetTargetsRequest {});
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{own_trace}-{own_parent}-01").parse().unwrap(),
    );
    TelemetryServiceClient::new(plain)
        .get_targets(req)
        .await
        .unwrap();
    let before = spans.len();
    let spans = wait_for_spans(&guard, &receiver, before + 3).await;
    let theirs: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == own_trace)
        .collect();
    assert_eq!(theirs.len(), 3, "front server, its client, back server");
    let front = theirs
        .iter()
        .find(|s| hex(&s.parent_span_id) == own_parent)
        .expect("the front server span continues the caller's span");
    assert_eq!(front.kind, SpanKind::Server as i32);

    // 3. Export never blocks a request: 200 two-hop calls with the receiver down take less
    //    than twice as long as with it up, and no single call waits on the exporter (whose
    //    timeout is 3 s). The machine may be busy with other work, so a slow run of the
    //    200 calls without a receiver is measured again (up to 3 times); an exporter that
    //    blocked requests would fail every time, by far.
    async fn calls(client: &mut TelemetryServiceClient<Channel>, n: usize) -> (Duration, Duration) {
        let start = Instant::now();
        let mut slowest = Duration::ZERO;
        for _ in 0..n {
            let span = tracing::info_span!("test.load");
            let t = Instant::now();
            async {
                client.get_targets(pb::GetTargetsRequest {}).await.unwrap();
            }
            .instrument_in(&span)
            .await;
            slowest = slowest.max(t.elapsed());
        }
        (start.elapsed(), slowest)
    }
    calls(&mut client, 20).await; // warm-up
    let (up, _) = calls(&mut client, 200).await;
    guard.flush().await;
    let received = receiver.spans.lock().unwrap().len();
    assert!(
        received >= before + 3 + 200 * 5,
        "spans of the loaded calls were exported ({received})"
    );

    let _ = stop_receiver.send(());
    tokio::time::timeout(Duration::from_secs(10), receiver_task)
        .await
        .expect("receiver stops")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(raddr).await.is_err(),
        "receiver is down"
    );
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let (down, slowest) = calls(&mut client, 200).await;
        eprintln!(
            "200 two-hop calls: {up:?} with the receiver, {down:?} without (slowest {slowest:?})"
        );
        assert!(
            slowest < Duration::from_secs(1),
            "a call waited on the exporter: {slowest:?}"
        );
        attempts.push(down);
        if down < up * 2 {
            break;
        }
    }
    assert!(
        attempts.iter().any(|&d| d < up * 2),
        "calls slowed down without a collector: {attempts:?} vs {up:?}"
    );

    // Shutting down with the collector away is bounded too.
    let t = Instant::now();
    guard.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

/// `Instrument` for a borrowed span.
trait InstrumentIn: Sized {
    fn instrument_in(self, span: &tracing::Span) -> tracing::instrument::Instrumented<Self>;
}
impl<F: std::future::Future> InstrumentIn for F {
    fn instrument_in(self, span: &tracing::Span) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, span.clone())
    }
}
