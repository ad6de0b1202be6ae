//! Distributed tracing across the real services: an OTLP/gRPC receiver in the test (a tonic
//! server on the official `opentelemetry-proto` types) collects the spans that storage, ingest
//! and query export. One Search and one Upsert, each sent with the client's own W3C
//! `traceparent`, must arrive as one trace: the client's trace id on every span, the front
//! service's server span a child of the client's span, storage's server span a child of the
//! front service's client span, and the costly steps (`segment.search`, `wal.commit`) inside
//! storage's span. A caller's `traceparent` with flags 00 leaves no span in any service (and
//! storage starts no trace of its own); at ratio 0 requests without `traceparent` leave none
//! either. With the receiver gone, requests still succeed at full speed.

mod common;

use akidb_proto::v1 as pb;
use akidb_testkit::ports::free_port;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received span with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Got {
                        service: service.clone(),
                        name: s.name,
                        kind: s.kind,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent: s.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Whether `g` holds the front service's server and client spans, storage's server span and
/// the inner step `step`.
fn complete(
    front: &'static str,
    fm: &'static str,
    sm: &'static str,
    step: &'static str,
) -> impl Fn(&[Got]) -> bool {
    move |g: &[Got]| {
        !find(g, front, SpanKind::Server, fm).is_empty()
            && !find(g, front, SpanKind::Client, sm).is_empty()
            && !find(g, "akidb-storage", SpanKind::Server, sm).is_empty()
            && g.iter().any(|s| s.name == step)
    }
}

/// A search sent with a sampled `traceparent` (`trace`, caller span `span`) into collection
/// `c`; returns its spans once query's and storage's are in, after checking their links.
async fn sampled_search(
    recv: &Receiver,
    l: &akidb_client::Link,
    c: &str,
    trace: &str,
    span: &str,
) -> Vec<Got> {
    l.query()
        .search(with_traceparent(
            pb::SearchRequest {
                collection: c.into(),
                vector: vec![0.5; 8],
                k: 3,
                ..Default::default()
            },
            trace,
            span,
        ))
        .await
        .unwrap();
    linked_chain(recv, trace, span, Duration::from_secs(15), SEARCH).await
}

/// The spans one call leaves: the front service's server and client spans, storage's server
/// span and an inner step of storage.
#[derive(Clone, Copy)]
struct Chain {
    front: &'static str,
    front_method: &'static str,
    storage_method: &'static str,
    step: &'static str,
}

const SEARCH: Chain = Chain {
    front: "akidb-query",
    front_method: "akidb.v1.QueryService/Search",
    storage_method: "akidb.v1.StorageService/Search",
    step: "segment.search",
};

const UPSERT: Chain = Chain {
    front: "akidb-ingest",
    front_method: "akidb.v1.IngestService/Upsert",
    storage_method: "akidb.v1.StorageService/Upsert",
    step: "wal.commit",
};

/// Wait (up to `within`) for the spans of `trace` to hold the whole `chain`, then check its
/// links under the caller's span `caller`.
async fn linked_chain(
    recv: &Receiver,
    trace: &str,
    caller: &str,
    within: Duration,
    c: Chain,
) -> Vec<Got> {
    let spans = wait_spans(
        recv,
        trace,
        within,
        complete(c.front, c.front_method, c.storage_method, c.step),
    )
    .await;
    check_chain(
        &spans,
        caller,
        c.front,
        c.front_method,
        c.storage_method,
        c.step,
    );
    spans
}

/// Serve the receiver on `port` until the returned sender is dropped or fired.
async fn start_receiver(port: u16, recv: Receiver) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(recv))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    tx
}

/// A receiver on a free port and a stack exporting to it at sampling `ratio`; the stack, the
/// receiver's stop handle and its port.
async fn exporting_stack(
    recv: &Receiver,
    ratio: &str,
) -> (Stack, tokio::sync::oneshot::Sender<()>, u16) {
    let port = free_port();
    let stop = start_receiver(port, recv.clone()).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    // The ratio alone decides (no reservoir), as the tests expect.
    let otlp = [
        "--otlp-endpoint",
        &endpoint,
        "--trace-sample-ratio",
        ratio,
        "--trace-reservoir-per-sec",
        "0",
    ];
    (Stack::start_with(&otlp, &otlp, &otlp).await, stop, port)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn with_traceparent<T>(msg: T, trace: &str, span: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(10));
    r.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{span}-01").parse().unwrap(),
    );
    r
}

/// A request carrying `traceparent` with flags 00 (the caller did not sample).
fn unsampled<T>(msg: T, trace: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(10));
    r.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-a0f067aa0ba902b7-00").parse().unwrap(),
    );
    r
}

/// Poll the receiver until `done` holds for the spans of `trace`, up to `within`
/// (the services' batch processors export every 5 s).
async fn wait_spans(
    recv: &Receiver,
    trace: &str,
    within: Duration,
    done: impl Fn(&[Got]) -> bool,
) -> Vec<Got> {
    let id = unhex(trace);
    let deadline = Instant::now() + within;
    loop {
        let got: Vec<Got> = recv
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == id)
            .cloned()
            .collect();
        if done(&got) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find<'a>(spans: &'a [Got], service: &str, kind: SpanKind, name: &str) -> Vec<&'a Got> {
    spans
        .iter()
        .filter(|s| s.service == service && s.kind == kind as i32 && s.name == name)
        .collect()
}

/// Whether `span` descends from `ancestor` through the parent links among `spans`.
fn descends(spans: &[Got], span: &Got, ancestor: &[u8]) -> bool {
    let mut cur = span.parent.clone();
    for _ in 0..32 {
        if cur == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == cur) {
            Some(p) => cur = p.parent.clone(),
            None => return false,
        }
    }
    false
}

fn dump(spans: &[Got]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{:<14} {:<40} kind={} id={} parent={}\n",
                s.service,
                s.name,
                s.kind,
                hex(&s.span_id),
                hex(&s.parent)
            )
        })
        .collect()
}

/// Asserts the chain client -> `front` server span -> `front` client span -> storage server
/// span -> `step` span, all in `trace`, and returns nothing but panics with the spans seen.
fn check_chain(
    spans: &[Got],
    client_span: &str,
    front: &str,
    front_method: &str,
    storage_method: &str,
    step: &str,
) {
    let ctx = dump(spans);
    let servers = find(spans, front, SpanKind::Server, front_method);
    assert_eq!(
        servers.len(),
        1,
        "one {front} server span {front_method}:\n{ctx}"
    );
    let server = servers[0];
    assert_eq!(
        hex(&server.parent),
        client_span,
        "{front} server span continues the client's span:\n{ctx}"
    );
    let clients = find(spans, front, SpanKind::Client, storage_method);
    assert!(
        !clients.is_empty(),
        "{front} client span {storage_method}:\n{ctx}"
    );
    for c in &clients {
        assert!(
            descends(spans, c, &server.span_id),
            "{front} client span is inside its server span:\n{ctx}"
        );
    }
    let st = find(spans, "akidb-storage", SpanKind::Server, storage_method);
    assert!(
        !st.is_empty(),
        "storage server span {storage_method}:\n{ctx}"
    );
    for s in &st {
        assert!(
            clients.iter().any(|c| c.span_id == s.parent),
            "storage server span's parent is {front}'s client span:\n{ctx}"
        );
    }
    let steps: Vec<&Got> = spans
        .iter()
        .filter(|s| s.service == "akidb-storage" && s.name == step)
        .collect();
    assert!(!steps.is_empty(), "storage span {step}:\n{ctx}");
    assert!(
        steps
            .iter()
            .any(|x| st.iter().any(|s| descends(spans, x, &s.span_id))),
        "{step} inside storage's server span:\n{ctx}"
    );
}

fn point(id: u64, v: Vec<f32>) -> pb::Point {
    pb::Point {
        id: Some(pb::PointId::num(id)),
        vector: v,
        payload: None,
        ..Default::default()
    }
}

/// Mean and p50 latency of `n` sequential searches, every one of which must succeed.
async fn search_latency(s: &Stack, name: &str, n: usize) -> (Duration, Duration) {
    let q = s.q();
    let mut c = q.query();
    let mut lat = Vec::with_capacity(n);
    for k in 0..n {
        let t = Instant::now();
        c.search(q.request(pb::SearchRequest {
            collection: name.into(),
            vector: (0..8).map(|d| ((k + d) % 11) as f32).collect(),
            k: 10,
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("search {k} failed: {e}\n{}", s.logs()));
        lat.push(t.elapsed());
    }
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / n as u32;
    (mean, lat[n / 2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_services_and_export_never_slows_requests() {
    let recv = Receiver::default();
    let (s, stop, port) = exporting_stack(&recv, "1.0").await;
    let endpoint = format!("http://127.0.0.1:{port}");
    create_and_fill(&s, "t", 200).await;

    // Upsert through ingest with the client's own trace context.
    let (t_up, c_up) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let i = s.i();
    i.ingest()
        .upsert(with_traceparent(
            pb::UpsertRequest {
                collection: "t".into(),
                points: vec![point(1000, vec![0.5; 8])],
            },
            t_up,
            c_up,
        ))
        .await
        .unwrap();
    // Search through query, same.
    let (t_se, c_se) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let q = s.q();
    let r = q
        .query()
        .search(with_traceparent(
            pb::SearchRequest {
                collection: "t".into(),
                vector: vec![0.5; 8],
                k: 3,
                ..Default::default()
            },
            t_se,
            c_se,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.hits.len(), 3);

    // The same over the REST port: the caller's `traceparent` reaches query's span (called in
    // the process) and ingest's (called on its port), and the chain below them.
    let rest = format!("http://127.0.0.1:{}", s.rest_port);
    let http = reqwest::Client::new();
    let (t_rs, c_rs) = ("1af7651916cd43dd8448eb211c80319d", "c7ad6b7169203332");
    let (t_ru, c_ru) = ("2bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8");
    for (path, body, t, c) in [
        (
            "/v1/collections/t/points/search",
            // Another vector than the gRPC search's: a cached result would not search.
            r#"{"vector": [0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "k": 3}"#,
            t_rs,
            c_rs,
        ),
        (
            "/v1/collections/t/points",
            r#"{"points": [{"id": {"num": 1001}, "vector": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}]}"#,
            t_ru,
            c_ru,
        ),
    ] {
        let res = http
            .post(format!("{rest}{path}"))
            .header("traceparent", format!("00-{t}-{c}-01"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}: {}", res.text().await.unwrap());
    }

    let t0 = Instant::now();
    linked_chain(&recv, t_se, c_se, Duration::from_secs(15), SEARCH).await;
    linked_chain(&recv, t_up, c_up, Duration::from_secs(5), UPSERT).await;
    linked_chain(&recv, t_rs, c_rs, Duration::from_secs(5), SEARCH).await;
    linked_chain(&recv, t_ru, c_ru, Duration::from_secs(5), UPSERT).await;
    eprintln!(
        "spans of both traces received {:?} after the requests",
        t0.elapsed()
    );
    // Export shows in metrics: spans ended, and exported (none failed so far). The exporter
    // counts a batch when the collector's answer comes back, which can be a moment after the
    // receiver has recorded its spans: poll for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (ended, exported, failed) = loop {
        let m = scrape(s.storage_metrics).await;
        let v = (
            series_value(&m, "akidb_trace_spans_ended_total").unwrap(),
            series_value(&m, r#"akidb_trace_export_spans_total{outcome="exported"}"#).unwrap(),
            series_value(&m, r#"akidb_trace_export_spans_total{outcome="failed"}"#).unwrap(),
        );
        if v.1 >= 4.0 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        exported >= 4.0 && ended >= exported && failed == 0.0,
        "storage: ended {ended}, exported {exported}, failed {failed}"
    );

    // A caller that did not sample (flags 00): no service exports a span of its trace, and
    // storage is told so too (at ratio 1.0 it would otherwise start a root trace of its own).
    let (t_no_se, t_no_up) = (
        "5bf92f3577b34da6a3ce929d0e0e4700",
        "6af7651916cd43dd8448eb211c803100",
    );
    q.query()
        .search(unsampled(
            pb::SearchRequest {
                collection: "t".into(),
                vector: vec![0.5; 8],
                k: 3,
                ..Default::default()
            },
            t_no_se,
        ))
        .await
        .unwrap();
    i.ingest()
        .upsert(unsampled(
            pb::UpsertRequest {
                collection: "t".into(),
                points: vec![point(1001, vec![0.25; 8])],
            },
            t_no_up,
        ))
        .await
        .unwrap();
    // A sampled search after them, as a barrier: once its spans are in, theirs would be too.
    let (t_b, c_b) = ("7af7651916cd43dd8448eb211c80319c", "c7ad6b7169203331");
    sampled_search(&recv, &q, "t", t_b, c_b).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let all = recv.spans.lock().unwrap().clone();
        let ctx = dump(&all);
        for t in [t_no_se, t_no_up] {
            let id = unhex(t);
            assert!(
                !all.iter().any(|s| s.trace_id == id),
                "spans of unsampled trace {t} exported:\n{ctx}"
            );
        }
        let storage_roots: Vec<&Got> = all
            .iter()
            .filter(|s| {
                s.service == "akidb-storage"
                    && s.kind == SpanKind::Server as i32
                    && s.parent.is_empty()
            })
            .collect();
        assert!(
            storage_roots.is_empty(),
            "storage started root traces of its own:\n{}",
            dump(&storage_roots.into_iter().cloned().collect::<Vec<_>>())
        );
    }

    // Ratio 0: requests without traceparent export nothing from any service; a sampled
    // caller is still traced through every hop.
    let zero = [
        "--otlp-endpoint",
        endpoint.as_str(),
        "--trace-sample-ratio",
        "0.0",
        "--trace-reservoir-per-sec",
        "0",
    ];
    let z = Stack::start_with(&zero, &zero, &zero).await;
    let seen_before = recv.spans.lock().unwrap().len();
    create_and_fill(&z, "z", 50).await;
    search_latency(&z, "z", 20).await;
    let (t_z, c_z) = ("8af7651916cd43dd8448eb211c80319c", "d7ad6b7169203331");
    sampled_search(&recv, &z.q(), "z", t_z, c_z).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let all = recv.spans.lock().unwrap().clone();
        let z_id = unhex(t_z);
        let known: Vec<Vec<u8>> = [t_up, t_se, t_b].iter().map(|t| unhex(t)).collect();
        let stray: Vec<Got> = all[seen_before..]
            .iter()
            .filter(|s| s.trace_id != z_id && !known.contains(&s.trace_id))
            .cloned()
            .collect();
        assert!(
            stray.is_empty(),
            "ratio 0 exported spans of requests without traceparent:\n{}",
            dump(&stray)
        );
    }
    drop(z);

    // The collector goes away: requests still succeed, and as fast as without export.
    drop(stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plain = Stack::start().await;
    create_and_fill(&plain, "t", 200).await;
    // warm both up, then alternate so that both see the same machine load
    search_latency(&s, "t", 50).await;
    search_latency(&plain, "t", 50).await;
    let (mut down, mut off) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        down.push(search_latency(&s, "t", 200).await);
        off.push(search_latency(&plain, "t", 200).await);
    }
    let best = |v: &[(Duration, Duration)]| v.iter().map(|x| x.1).min().unwrap();
    let mean = |v: &[(Duration, Duration)]| v.iter().map(|x| x.0).sum::<Duration>() / 3;
    eprintln!(
        "search latency, collector down (sampling 100%): p50 {:?} mean {:?}; no export: p50 {:?} mean {:?}",
        best(&down),
        mean(&down),
        best(&off),
        mean(&off)
    );
    assert!(
        best(&down) < best(&off) * 2 + Duration::from_millis(2),
        "collector down slows searches: {down:?} vs {off:?}"
    );
    assert!(
        mean(&down) < mean(&off) * 2 + Duration::from_millis(5),
        "collector down slows searches: {down:?} vs {off:?}"
    );
    // ... and says so in its metrics: the spans of those searches fail to export.
    let failed = r#"akidb_trace_export_spans_total{outcome="failed"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(s.query_metrics).await;
        if series_value(&m, failed).unwrap() > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed export counted with the collector down:\n{}",
            m.lines()
                .filter(|l| l.starts_with("akidb_trace"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `PUT /tracing` on a service's metrics port; the status and body.
async fn put_tracing(port: u16, query: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/tracing?{query}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_tracing(port: u16) -> String {
    get_text(port, "/tracing").await
}

/// The trace settings change at run time through every service's metrics port: a bad value
/// is refused and changes nothing; ratio 1 traces a search that arrives without
/// `traceparent` through query and storage; export off stops query's spans at once (a sampled
/// caller is then forwarded, and storage still traces it); a process started without an
/// exporter refuses to export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_settings_change_at_run_time() {
    let recv = Receiver::default();
    let (s, _stop, _) = exporting_stack(&recv, "0.0").await;
    create_and_fill(&s, "r", 50).await;
    let qm = s.query_metrics;
    assert_eq!(
        get_tracing(qm).await.trim(),
        r#"{"exporter":true,"export":true,"sample_ratio":0.0}"#
    );
    for bad in [
        "sample_ratio=1.5",
        "sample_ratio=-0.1",
        "sample_ratio=NaN",
        "sample_ratio=x&export=off",
        "sample_ratio=1&export=maybe",
    ] {
        let (code, body) = put_tracing(qm, bad).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(
            body.contains("sample ratio must be") || body.contains("export must be"),
            "{bad}: {body}"
        );
    }
    assert_eq!(
        get_tracing(qm).await.trim(),
        r#"{"exporter":true,"export":true,"sample_ratio":0.0}"#,
        "a refused change changed nothing"
    );

    // Ratio 1 on query only: a search without traceparent starts a trace there, and storage
    // (still at ratio 0) follows the sampled parent.
    let (code, body) = put_tracing(qm, "sample_ratio=1").await;
    assert_eq!(
        (code, body.trim()),
        (200, r#"{"exporter":true,"export":true,"sample_ratio":1.0}"#)
    );
    search_latency(&s, "r", 1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let traced = loop {
        let all = recv.spans.lock().unwrap().clone();
        let roots: Vec<Got> = find(&all, "akidb-query", SpanKind::Server, SEARCH.front_method)
            .into_iter()
            .filter(|g| g.parent.is_empty())
            .cloned()
            .collect();
        if let Some(root) = roots.first()
            && all.iter().any(|g| {
                g.trace_id == root.trace_id && g.service == "akidb-storage" && g.name == SEARCH.step
            })
        {
            break all
                .into_iter()
                .filter(|g| g.trace_id == root.trace_id)
                .collect::<Vec<_>>();
        }
        assert!(
            Instant::now() < deadline,
            "no trace of a search without traceparent at ratio 1:\n{}",
            dump(&all)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !find(
            &traced,
            "akidb-storage",
            SpanKind::Server,
            SEARCH.storage_method
        )
        .is_empty(),
        "{}",
        dump(&traced)
    );

    // Export off on query: searches leave no query span; a sampled caller's context is
    // forwarded and storage traces it (its span's parent is the caller's span).
    let (code, body) = put_tracing(qm, "export=off").await;
    assert_eq!(
        (code, body.trim()),
        (
            200,
            r#"{"exporter":true,"export":false,"sample_ratio":1.0}"#
        )
    );
    let seen = recv.spans.lock().unwrap().len();
    search_latency(&s, "r", 20).await;
    let (t, c) = ("9af7651916cd43dd8448eb211c80319c", "e7ad6b7169203331");
    s.q()
        .query()
        .search(with_traceparent(
            pb::SearchRequest {
                collection: "r".into(),
                vector: vec![0.5; 8],
                k: 3,
                ..Default::default()
            },
            t,
            c,
        ))
        .await
        .unwrap();
    let spans = wait_spans(&recv, t, Duration::from_secs(15), |g| {
        !find(g, "akidb-storage", SpanKind::Server, SEARCH.storage_method).is_empty()
    })
    .await;
    let st = find(
        &spans,
        "akidb-storage",
        SpanKind::Server,
        SEARCH.storage_method,
    );
    assert!(
        st.len() == 1 && hex(&st[0].parent) == c,
        "storage continues the forwarded caller's span:\n{}",
        dump(&spans)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<Got> = recv.spans.lock().unwrap()[seen..]
        .iter()
        .filter(|g| g.service == "akidb-query")
        .cloned()
        .collect();
    assert!(
        after.is_empty(),
        "query exported with export off:\n{}",
        dump(&after)
    );

    // Without an exporter, export cannot be switched on (and nothing changes).
    let plain = Stack::start().await;
    let (code, body) = put_tracing(plain.query_metrics, "sample_ratio=0.5&export=on").await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--otlp-endpoint"), "{body}");
    assert_eq!(
        get_tracing(plain.query_metrics).await.trim(),
        r#"{"exporter":false,"export":false,"sample_ratio":0.05}"#
    );
}

/// A search over a collection of three shards on two storage nodes (separate processes with
/// etcd) is one trace: query's server span, one `shard` span under it per shard, and under
/// each of those a client span and the storage node's server span of that shard's call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanned_out_search_is_one_trace_with_a_span_per_shard() {
    let Some(etcd) = akidb_testkit::etcd::Etcd::start().await else {
        return;
    };
    let recv = Receiver::default();
    let port = free_port();
    let _stop = start_receiver(port, recv.clone()).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let serve = |service: &'static str, extra: Vec<String>| {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "--grpc-addr".to_string(),
            addr.clone(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{}", free_port()),
            "--etcd".into(),
            etcd.url.clone(),
            "--otlp-endpoint".into(),
            endpoint.clone(),
            "--trace-sample-ratio".into(),
            "1".into(),
        ];
        args.extend(extra);
        let log = dir.path().join(format!("{service}-{}.log", free_port()));
        (Proc::start(service, args, log), addr)
    };
    let mut procs = Vec::new();
    for id in ["n0", "n1"] {
        let data = dir.path().join(id).display().to_string();
        let (p, addr) = serve(
            "storage",
            vec![
                "--data-dir".into(),
                data,
                "--node-id".into(),
                id.into(),
                // A cluster's nodes share one object store.
                "--object-dir".into(),
                dir.path().join("objects").display().to_string(),
            ],
        );
        wait_serving(&addr, Duration::from_secs(60)).await;
        procs.push(p);
    }
    let (q, q_addr) = serve("query", vec![]);
    procs.push(q);
    wait_serving(&q_addr, Duration::from_secs(60)).await;
    let l = Stack::link(&q_addr);
    // Both nodes registered before the shards are placed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let client = akidb_cluster::Etcd::new(&etcd.url, Duration::from_secs(2)).unwrap();
        if akidb_cluster::membership::nodes(&client)
            .await
            .unwrap()
            .len()
            == 2
        {
            break;
        }
        assert!(Instant::now() < deadline, "two nodes registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    l.collections()
        .create_collection(l.request(pb::CreateCollectionRequest {
            name: "t".into(),
            dimension: 8,
            metric: pb::Metric::Cosine as i32,
            shards: 3,
            ..Default::default()
        }))
        .await
        .unwrap();
    let trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let r = l
        .query()
        .search(with_traceparent(
            pb::SearchRequest {
                collection: "t".into(),
                vector: vec![0.5; 8],
                k: 3,
                ..Default::default()
            },
            trace,
            caller,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.shards.len(), 3);
    let spans = wait_spans(&recv, trace, Duration::from_secs(20), |g| {
        find(
            g,
            "akidb-storage",
            SpanKind::Server,
            "akidb.v1.StorageService/Search",
        )
        .len()
            == 3
            && g.iter().filter(|s| s.name == "shard").count() == 3
            && !find(
                g,
                "akidb-query",
                SpanKind::Server,
                "akidb.v1.QueryService/Search",
            )
            .is_empty()
    })
    .await;
    let server = find(
        &spans,
        "akidb-query",
        SpanKind::Server,
        "akidb.v1.QueryService/Search",
    );
    assert_eq!(server.len(), 1, "{}", dump(&spans));
    assert_eq!(server[0].parent, unhex(caller));
    let shards: Vec<&Got> = spans
        .iter()
        .filter(|s| s.service == "akidb-query" && s.name == "shard")
        .collect();
    assert_eq!(shards.len(), 3, "{}", dump(&spans));
    for s in &shards {
        assert_eq!(s.parent, server[0].span_id, "{}", dump(&spans));
    }
    // Each storage span under its own shard span.
    let mut under = std::collections::BTreeSet::new();
    for st in find(
        &spans,
        "akidb-storage",
        SpanKind::Server,
        "akidb.v1.StorageService/Search",
    ) {
        let shard = shards
            .iter()
            .find(|s| descends(&spans, st, &s.span_id))
            .unwrap_or_else(|| panic!("storage span outside every shard span:\n{}", dump(&spans)));
        under.insert(shard.span_id.clone());
    }
    assert_eq!(under.len(), 3, "{}", dump(&spans));
}
