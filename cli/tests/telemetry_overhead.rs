//! Telemetry overhead benchmark (ignored by default; results in docs/benchmarks-telemetry.md):
//!
//!   cargo test --release -p akidb --test telemetry_overhead -- --ignored --nocapture
//!
//! Two stacks side by side on the same machine, same data: one exporting traces over OTLP
//! at 10% sampling to a receiver in the test, one without trace export. Metrics are always on
//! (there is no switch to turn them off). Rounds alternate between the two stacks so that both
//! see the same machine load; search QPS at a fixed concurrency is compared. While the traced
//! stack is loaded, storage's /metrics is scraped repeatedly and timed.
//!
//! `AKIDB_BENCH_RATIO` sets the traced stack's sample ratio (default 0.1; `off`: no trace
//! export, an A/A run that shows the noise of the comparison itself); `AKIDB_BENCH_ROUNDS` the
//! number of rounds (default 10); `AKIDB_BENCH_PLAIN_FIRST=1` starts the plain stack first;
//! `AKIDB_BENCH_MODE=together` loads both stacks at the same time in each round (each with
//! its own clients) instead of one after the other, so that the machine's noise (other
//! tenants of a shared VM) hits both alike; QPS is then each stack's share of a saturated
//! machine, and CPU per search the figure to read.

mod common;

use akidb_proto::v1 as pb;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DIM: usize = 32;
const POINTS: u64 = 5000;
const CONCURRENCY: usize = 8;
const ROUND: Duration = Duration::from_secs(3);

fn rounds() -> usize {
    std::env::var("AKIDB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = req
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn vector(seed: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|d| (((seed * 2654435761 + d * 40503) % 1000) as f32) / 1000.0)
        .collect()
}

async fn load(s: &Stack) {
    let q = s.q();
    q.collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "bench".into(),
            dimension: DIM as u32,
            metric: pb::Metric::L2 as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    let i = s.i();
    for chunk in (0..POINTS).collect::<Vec<_>>().chunks(1000) {
        i.ingest()
            .upsert(
                i.request(pb::UpsertRequest {
                    collection: "bench".into(),
                    points: chunk
                        .iter()
                        .map(|&k| pb::Point {
                            id: Some(pb::PointId::num(k)),
                            vector: vector(k),
                            payload: None,
                        })
                        .collect(),
                }),
            )
            .await
            .unwrap();
    }
}

/// CPU seconds (user + system) the process has used so far, from /proc.
fn cpu_seconds(p: &Proc) -> f64 {
    let pid = p.child.as_ref().expect("process running").id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15 (1-based).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Query's and storage's CPU.
fn service_cpu(s: &Stack) -> (f64, f64) {
    (cpu_seconds(&s.query), cpu_seconds(&s.storage))
}

/// Searches per second with `CONCURRENCY` clients for `ROUND`, and the CPU query and storage
/// spent per search (µs): the product's own cost, whatever else shares the machine.
async fn qps(s: &Stack) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = service_cpu(s);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let addr = s.query_addr.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let l = Stack::link(&addr);
                let mut c = l.query();
                let mut k = w as u64 * 1_000_003;
                while start.elapsed() < ROUND {
                    k += 1;
                    c.search(l.request(pb::SearchRequest {
                        collection: "bench".into(),
                        vector: vector(k),
                        k: 10,
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed) as f64;
    let cpu1 = service_cpu(s);
    let (q_us, s_us) = ((cpu1.0 - cpu0.0) * 1e6 / n, (cpu1.1 - cpu0.1) * 1e6 / n);
    eprintln!("  {n:.0} searches: query {q_us:.1} + storage {s_us:.1} µs CPU/search");
    (n / start.elapsed().as_secs_f64(), q_us + s_us)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn search_qps_with_and_without_tracing() {
    let spans = Counter::default();
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let svc = TraceServiceServer::new(spans.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let ratio = std::env::var("AKIDB_BENCH_RATIO").unwrap_or_else(|_| "0.1".into());
    let on: Vec<&str> = if ratio == "off" {
        Vec::new()
    } else {
        vec![
            "--otlp-endpoint",
            endpoint.as_str(),
            "--trace-sample-ratio",
            ratio.as_str(),
        ]
    };
    // Idle polling off in both: its spinner's CPU would blur the CPU-per-search figures.
    let mut on = on;
    on.extend(["--idle-poll-us", "0"]);
    let off = ["--idle-poll-us", "0"];
    // Which stack starts and loads first (`AKIDB_BENCH_PLAIN_FIRST=1`: the plain one), to
    // check that the order leaves no bias of its own.
    let (traced, plain) = if std::env::var_os("AKIDB_BENCH_PLAIN_FIRST").is_some() {
        let plain = Stack::start_with(&off, &off, &off).await;
        load(&plain).await;
        let traced = Stack::start_with(&on, &on, &on).await;
        load(&traced).await;
        (traced, plain)
    } else {
        let traced = Stack::start_with(&on, &on, &on).await;
        load(&traced).await;
        let plain = Stack::start_with(&off, &off, &off).await;
        load(&plain).await;
        (traced, plain)
    };
    // warm-up
    qps(&traced).await;
    qps(&plain).await;

    let (mut t, mut p) = (Vec::new(), Vec::new());
    let rounds = rounds();
    let together = std::env::var("AKIDB_BENCH_MODE").is_ok_and(|m| m == "together");
    for r in 0..rounds {
        if together {
            // Both stacks loaded at once: every moment of the machine's noise hits both.
            let (a, b) = tokio::join!(qps(&traced), qps(&plain));
            t.push(a);
            p.push(b);
        } else if r % 2 == 0 {
            // alternate which stack goes first
            t.push(qps(&traced).await);
            p.push(qps(&plain).await);
        } else {
            p.push(qps(&plain).await);
            t.push(qps(&traced).await);
        }
        eprintln!(
            "round {r}: traced {:.0} qps {:.1} µs CPU/search, plain {:.0} qps {:.1} µs CPU/search",
            t[r].0, t[r].1, p[r].0, p[r].1
        );
    }
    let mean =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    // Median of the per-round ratios: each round's pair ran back to back, so a burst of
    // other load on the machine moves both and drops out of the ratio.
    let median_ratio = |f: fn(&(f64, f64)) -> f64| {
        let mut r: Vec<f64> = t.iter().zip(&p).map(|(a, b)| f(a) / f(b)).collect();
        r.sort_by(f64::total_cmp);
        let n = r.len();
        (if n % 2 == 1 {
            r[n / 2]
        } else {
            (r[n / 2 - 1] + r[n / 2]) / 2.0
        } - 1.0)
            * 100.0
    };
    let (mt, mp) = (mean(&t, |x| x.0), mean(&p, |x| x.0));
    let (ct, cp) = (mean(&t, |x| x.1), mean(&p, |x| x.1));
    eprintln!(
        "search QPS ({CONCURRENCY} clients, {POINTS} x {DIM}d, {rounds} rounds of {ROUND:?}): \
         tracing on (ratio {ratio}, collector receiving) {mt:.0}, tracing off {mp:.0}: \
         {:+.2}% (median of per-round ratios {:+.2}%); spans received {}",
        (mt / mp - 1.0) * 100.0,
        median_ratio(|x| x.0),
        spans.0.load(Ordering::Relaxed)
    );
    eprintln!(
        "query + storage CPU per search: tracing on {ct:.1} µs, off {cp:.1} µs: {:+.2}% \
         (median of per-round ratios {:+.2}%)",
        (ct / cp - 1.0) * 100.0,
        median_ratio(|x| x.1)
    );

    // /metrics of a loaded storage: scrape while the traced stack is under search load.
    let load_task = tokio::spawn({
        let addr = traced.query_addr.clone();
        async move {
            let l = Stack::link(&addr);
            let mut c = l.query();
            let start = Instant::now();
            let mut k = 0;
            while start.elapsed() < Duration::from_secs(6) {
                k += 1;
                let _ = c
                    .search(l.request(pb::SearchRequest {
                        collection: "bench".into(),
                        vector: vector(k),
                        k: 10,
                        ..Default::default()
                    }))
                    .await;
            }
        }
    });
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/metrics", traced.storage_metrics);
    let mut times = Vec::new();
    let mut bytes = 0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..100 {
        let t0 = Instant::now();
        let body = http.get(&url).send().await.unwrap().text().await.unwrap();
        times.push(t0.elapsed());
        bytes = body.len();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    load_task.await.unwrap();
    eprintln!(
        "storage /metrics under load ({bytes} bytes): p50 {:?} p99 {:?} max {:?}",
        pct(&mut times, 0.5),
        pct(&mut times, 0.99),
        pct(&mut times, 1.0)
    );
}
