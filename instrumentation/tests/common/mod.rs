//! Head-sampling tests: an OTLP receiver, and a two-hop chain (plain client -> front -> back)
//! built with `transport::builder()` and `transport::channel()` as the services are. The back
//! service records the `traceparent` it receives and opens an inner span on a blocking thread
//! (as storage does for a search).
#![allow(dead_code)]

use akidb_instrumentation::transport::{self, Channel};
use akidb_instrumentation::{Component, TelemetryArgs, TelemetryGuard};
use akidb_proto::v1 as pb;
use akidb_proto::v1::telemetry_service_client::TelemetryServiceClient;
use akidb_proto::v1::telemetry_service_server::{TelemetryService, TelemetryServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// The OTLP receiver: keeps every span it is sent.
#[derive(Clone, Default)]
pub struct Receiver {
    pub spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Forwards GetTargets to the next hop through the instrumented channel.
struct Front {
    next: TelemetryServiceClient<Channel>,
}

/// Records the trace headers of every call and does its work in an inner span on a blocking
/// thread (carried there as the services carry theirs).
#[derive(Clone, Default)]
pub struct Back {
    pub received: Arc<Mutex<Vec<Received>>>,
}

/// The trace headers back received with one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub traceparent: Option<String>,
    /// The caller's "not traced, no context" marker (`akidb-untraced`).
    pub untraced: bool,
}

#[tonic::async_trait]
impl TelemetryService for Front {
    async fn get_slo_status(
        &self,
        _req: tonic::Request<pb::GetSloStatusRequest>,
    ) -> Result<tonic::Response<pb::GetSloStatusResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("front only forwards"))
    }
    async fn get_targets(
        &self,
        _req: tonic::Request<pb::GetTargetsRequest>,
    ) -> Result<tonic::Response<pb::GetTargetsResponse>, tonic::Status> {
        tracing::info!("front forwards");
        self.next
            .clone()
            .get_targets(pb::GetTargetsRequest {})
            .await
    }
}

#[tonic::async_trait]
impl TelemetryService for Back {
    async fn get_slo_status(
        &self,
        _req: tonic::Request<pb::GetSloStatusRequest>,
    ) -> Result<tonic::Response<pb::GetSloStatusResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("back only answers GetTargets"))
    }
    async fn get_targets(
        &self,
        req: tonic::Request<pb::GetTargetsRequest>,
    ) -> Result<tonic::Response<pb::GetTargetsResponse>, tonic::Status> {
        let tp = req
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let untraced = req
            .metadata()
            .contains_key(akidb_instrumentation::propagation::UNTRACED_HEADER);
        self.received.lock().unwrap().push(Received {
            traceparent: tp,
            untraced,
        });
        let scope = akidb_instrumentation::context::RequestScope::current();
        tokio::task::spawn_blocking(move || {
            scope.in_scope(|| {
                // A costly step's span, made as the services make theirs.
                let _step =
                    akidb_instrumentation::context::step_span(|| tracing::info_span!("back.step"))
                        .entered();
                tracing::info!("back works");
            })
        })
        .await
        .unwrap();
        Ok(tonic::Response::new(pb::GetTargetsResponse {
            targets: Vec::new(),
        }))
    }
}

pub struct Chain {
    pub guard: TelemetryGuard,
    pub receiver: Receiver,
    pub back: Back,
    pub front_addr: String,
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, format!("http://{a}"))
}

/// The receiver, telemetry initialised with `ratio`, back and front serving.
pub async fn start(ratio: f64) -> Chain {
    let receiver = Receiver::default();
    let (rl, raddr) = listener().await;
    let svc = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(rl))
            .await
            .unwrap();
    });
    let guard = akidb_instrumentation::init(
        Component::Other,
        &TelemetryArgs {
            log: "info".into(),
            otlp_endpoint: Some(raddr),
            trace_sample_ratio: ratio,
            // The ratio alone decides, as the tests expect.
            trace_reservoir_per_sec: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let back = Back::default();
    let (bl, baddr) = listener().await;
    let svc = TelemetryServiceServer::new(back.clone());
    tokio::spawn(async move {
        transport::builder()
            .add_service(svc)
            .serve_with_incoming(transport::incoming(bl))
            .await
            .unwrap();
    });
    let (fl, front_addr) = listener().await;
    let next =
        TelemetryServiceClient::new(transport::channel(&baddr, Duration::from_secs(1)).unwrap());
    tokio::spawn(async move {
        transport::builder()
            .add_service(TelemetryServiceServer::new(Front { next }))
            .serve_with_incoming(transport::incoming(fl))
            .await
            .unwrap();
    });
    Chain {
        guard,
        receiver,
        back,
        front_addr,
    }
}

impl Chain {
    /// One call to front from a plain client (no AkiDB layer), with `traceparent` if given;
    /// returns the trace headers back received.
    pub async fn call(&self, traceparent: Option<String>) -> Received {
        let ch = tonic::transport::Endpoint::from_shared(self.front_addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut req = tonic::Request::new(pb::GetTargetsRequest {});
        if let Some(tp) = traceparent {
            req.metadata_mut()
                .insert("traceparent", tp.parse().unwrap());
        }
        let before = self.back.received.lock().unwrap().len();
        TelemetryServiceClient::new(ch)
            .get_targets(req)
            .await
            .unwrap();
        let got = self.back.received.lock().unwrap();
        assert_eq!(got.len(), before + 1);
        got[before].clone()
    }

    /// Waits for the four spans of `trace` and checks they are linked (see [`assert_chain`]);
    /// returns the front client span id.
    pub async fn linked(&self, trace: &str, parent: Option<&str>) -> String {
        let spans = self
            .spans_until(|s| s.iter().filter(|s| hex(&s.trace_id) == trace).count() >= 4)
            .await;
        assert_chain(&spans, trace, parent)
    }

    /// Checks, after the exporter had time to send everything, that no span of a trace other
    /// than `trace` was received (`what`: the assertion's message).
    pub async fn assert_only(&self, trace: &str, what: &str) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.guard.flush().await;
        let spans = self.receiver.spans.lock().unwrap().clone();
        let others: Vec<_> = spans.iter().filter(|s| hex(&s.trace_id) != trace).collect();
        assert!(others.is_empty(), "{what}:\n{}", describe(&spans));
    }

    /// Flush until `done` holds for the received spans (or 10 s); returns them.
    pub async fn spans_until(&self, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.guard.flush().await;
            let spans = self.receiver.spans.lock().unwrap().clone();
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (trace id, parent span id, flags) of a `traceparent`.
pub fn parts(tp: &str) -> (String, String, String) {
    let v: Vec<&str> = tp.split('-').collect();
    assert_eq!(v.len(), 4, "{tp}");
    (v[1].to_string(), v[2].to_string(), v[3].to_string())
}

pub fn describe(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} {} kind={} id={} parent={}\n",
                hex(&s.trace_id),
                s.name,
                s.kind,
                hex(&s.span_id),
                hex(&s.parent_span_id)
            )
        })
        .collect()
}

pub const METHOD: &str = "akidb.v1.TelemetryService/GetTargets";

/// Asserts the spans of `trace` are exactly: front server (parent `parent`, or a root when
/// `None`), front client under it, back server under that, `back.step` under that; returns the
/// front client span id.
pub fn assert_chain(spans: &[Span], trace: &str, parent: Option<&str>) -> String {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let ctx = describe(spans);
    let ours: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == trace).collect();
    assert_eq!(ours.len(), 4, "four spans in trace {trace}:\n{ctx}");
    let one = |kind: SpanKind, name: &str, parent: &[u8]| -> Vec<u8> {
        let v: Vec<&&Span> = ours
            .iter()
            .filter(|s| s.kind == kind as i32 && s.name == name && s.parent_span_id == parent)
            .collect();
        assert_eq!(
            v.len(),
            1,
            "{name} ({kind:?}) under {}:\n{ctx}",
            hex(parent)
        );
        v[0].span_id.clone()
    };
    let root: Vec<u8> = parent.map(unhex).unwrap_or_default();
    let front = one(SpanKind::Server, METHOD, &root);
    let client = one(SpanKind::Client, METHOD, &front);
    let back = one(SpanKind::Server, METHOD, &client);
    one(SpanKind::Internal, "back.step", &back);
    hex(&client)
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
