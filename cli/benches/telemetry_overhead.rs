//! Telemetry overhead benchmark (results in docs/benchmarks.md):
//!
//!   cargo bench -p akidb --bench telemetry_overhead [-- search_qps|instructions]
//!
//! With no name, both: `search_qps` (search QPS and CPU per search with and without trace
//! export) and `instructions` (instructions per search, under valgrind).
//!
//! Default (`AKIDB_BENCH_MODE=switch`): one stack (storage, ingest, query as separate
//! processes) exporting traces over OTLP to a receiver in the test, searched by 8 clients
//! without pause; trace export is switched on and off in the same processes at run time
//! (`PUT /tracing` on each service's metrics port). Each round measures three slices in a
//! random order: export on at the ratio (`AKIDB_BENCH_RATIO`, default 0.1), export off, and
//! export off again (an A/A control that shows the method's own noise). Per slice: searches
//! per second and query's + storage's CPU per search (the processes' CPU clocks, ns). The
//! summary is the mean of the per-round differences with a 95% confidence interval, for
//! on/off and for the A/A control. Same processes, same memory layout, same connections:
//! nothing differs between the slices but the setting and the moment.
//!
//! `AKIDB_BENCH_MODE=alternate|together`: two stacks side by side instead, one exporting and
//! one without an exporter (`AKIDB_BENCH_RATIO=off`: neither exports, an A/A run), loaded one
//! after the other (alternating order) or both at once; their A/A runs differ by 0-7%, which
//! is why the default switches settings inside one stack. `AKIDB_BENCH_PLAIN_FIRST=1` starts
//! the plain stack first.
//!
//! `AKIDB_BENCH_ROUNDS` (default 20 for switch, 10 otherwise), `AKIDB_BENCH_SLICE_MS`
//! (switch: default 1000). After the comparison, storage's `/metrics` is fetched 200 times
//! (the text format and OpenMetrics with exemplars, alternating)
//! under search load and timed.
//!
//! `instructions` (needs valgrind) counts the
//! instructions query and storage execute per search with export on and off instead of
//! timing them: the figure that does not move with the machine's load.
//!
//! Both: query's result cache is off (every search is searched); the data are a synthetic
//! 5000 x 32 set (the cheapest search there is, so telemetry's share is largest), or
//! `AKIDB_BENCH_DATA=../shared/data/siftsmall` (or `jeopardy-ada002-10k`;
//! `AKIDB_BENCH_POINTS=<n>` keeps its first n rows).

#[path = "../tests/common/mod.rs"]
mod common;

use akidb_proto::v1 as pb;
use akidb_testkit::datasets::VectorSet;
use akidb_testkit::ports::free_port;
use akidb_testkit::require::tool;
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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

/// What the stacks hold and the clients search: by default a synthetic set (`POINTS` ×
/// `DIM`, L2: the cheapest search, so telemetry's share is the largest); with
/// `AKIDB_BENCH_DATA=<dir of ../shared/data>` that data set (its base and query files; cosine
/// for jeopardy, L2 otherwise).
struct Data {
    name: String,
    dim: usize,
    metric: pb::Metric,
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

static DATA: std::sync::LazyLock<Data> = std::sync::LazyLock::new(|| {
    let Some(dir) = std::env::var_os("AKIDB_BENCH_DATA").map(std::path::PathBuf::from) else {
        return Data {
            name: format!("synthetic {POINTS} x {DIM}"),
            dim: DIM,
            metric: pb::Metric::L2,
            base: (0..POINTS).map(vector).collect(),
            queries: (0..1000).map(vector).collect(),
        };
    };
    let set = VectorSet::read(&dir).unwrap_or_else(|e| panic!("AKIDB_BENCH_DATA: {e}"));
    let (mut base, queries) = (set.base, set.queries);
    // `AKIDB_BENCH_POINTS`: the first rows only (a graph of all of jeopardy takes longer to
    // build under valgrind than the benchmark waits).
    if let Some(n) = std::env::var("AKIDB_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        base.truncate(n);
    }
    let name = set.name;
    Data {
        metric: if name.contains("jeopardy") {
            pb::Metric::Cosine
        } else {
            pb::Metric::L2
        },
        dim: base[0].len(),
        name,
        base,
        queries,
    }
});

/// The query vector of the `k`-th search (the data set's queries in turn).
fn query(k: u64) -> Vec<f32> {
    DATA.queries[(k % DATA.queries.len() as u64) as usize].clone()
}

async fn load(s: &Stack) {
    let q = s.q();
    q.collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "bench".into(),
            dimension: DATA.dim as u32,
            metric: DATA.metric as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    let i = s.i();
    // batches of at most ~1 MB
    let per_batch = (1_000_000 / (4 * DATA.dim)).clamp(1, 1000);
    for (c, chunk) in DATA.base.chunks(per_batch).enumerate() {
        i.ingest()
            .upsert(
                i.request(pb::UpsertRequest {
                    collection: "bench".into(),
                    points: chunk
                        .iter()
                        .enumerate()
                        .map(|(j, v)| pb::Point {
                            id: Some(pb::PointId::num((c * per_batch + j) as u64)),
                            vector: v.clone(),
                            payload: None,
                            ..Default::default()
                        })
                        .collect(),
                }),
            )
            .await
            .unwrap();
    }
}

/// Query's arguments: `args` and its result cache off, so that every search is searched
/// (the clients' vectors repeat: a cache hit costs storage a version check, not a search).
fn with_cache_off<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--cache-entries", "0"]);
    v
}

/// CPU seconds (user + system) the process has used so far, every thread, exited ones
/// included: its CPU-time clock (nanoseconds; /proc's ticks are 10 ms).
fn cpu_seconds(p: &Proc) -> f64 {
    let pid = p.child.as_ref().expect("process running").id();
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain libc calls on valid out-pointers.
    unsafe {
        assert_eq!(libc::clock_getcpuclockid(pid as i32, &mut clock), 0);
        assert_eq!(libc::clock_gettime(clock, &mut ts), 0);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Query's and storage's CPU.
fn service_cpu(s: &Stack) -> (f64, f64) {
    (cpu_seconds(&s.query), cpu_seconds(&s.storage))
}

/// Client `w` searching `s` without pause while `go()` holds (its own sequence of query
/// vectors), counting its searches in `done`.
fn searcher(
    s: &Stack,
    w: usize,
    done: &Arc<AtomicU64>,
    go: impl Fn() -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (addr, done) = (s.query_addr.clone(), Arc::clone(done));
    tokio::spawn(async move {
        let l = Stack::link(&addr);
        let mut c = l.query();
        let mut k = w as u64 * 1_000_003;
        while go() {
            k += 1;
            c.search(l.request(pb::SearchRequest {
                collection: "bench".into(),
                vector: query(k),
                k: 10,
                ..Default::default()
            }))
            .await
            .unwrap();
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Searches per second with `CONCURRENCY` clients for `ROUND`, and the CPU query and storage
/// spent per search (µs): the product's own cost, whatever else shares the machine.
async fn qps(s: &Stack) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = service_cpu(s);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|w| searcher(s, w, &done, move || start.elapsed() < ROUND))
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

/// Mean of `v` and the half-width of its 95% confidence interval (Student's t, approximated
/// as 1.96 + 2.4 / degrees of freedom: within 1% of the table from 3 degrees of freedom on).
fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (1.96 + 2.4 / (n - 1.0)) * (var / n).sqrt())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `name: mean ± ci% (median m%)` of per-round relative differences.
fn summary(name: &str, diffs: &[f64]) -> String {
    let pct: Vec<f64> = diffs.iter().map(|d| d * 100.0).collect();
    let (m, ci) = mean_ci(&pct);
    format!(
        "{name}: {m:+.2}% ± {ci:.2}% (95% CI, {} rounds; median {:+.2}%)",
        pct.len(),
        median(&pct)
    )
}

/// An OTLP receiver in the test that counts the spans it gets; its endpoint.
async fn start_receiver() -> (Counter, String) {
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
    (spans, format!("http://127.0.0.1:{port}"))
}

fn main() {
    // `cargo bench` adds `--bench`; other words select benchmarks by a part of their name.
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |n: &str| names.is_empty() || names.iter().any(|f| n.contains(f.as_str()));
    let runtime = |threads| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    if run("search_qps_with_and_without_tracing") {
        runtime(4).block_on(search_qps_with_and_without_tracing());
    }
    if run("instructions_per_search_with_and_without_tracing") {
        runtime(2).block_on(instructions_per_search_with_and_without_tracing());
    }
}

async fn search_qps_with_and_without_tracing() {
    let (spans, endpoint) = start_receiver().await;
    let ratio = std::env::var("AKIDB_BENCH_RATIO").unwrap_or_else(|_| "0.1".into());
    let mode = std::env::var("AKIDB_BENCH_MODE").unwrap_or_else(|_| "switch".into());
    let traced = if mode == "switch" {
        switch_settings(&endpoint, &ratio, &spans).await
    } else {
        two_stacks(&endpoint, &ratio, mode == "together", &spans).await
    };
    metrics_under_load(&traced).await;
}

/// Trace export on or off in every service of `s` (`PUT /tracing`).
async fn set_export(http: &reqwest::Client, s: &Stack, on: bool) {
    for port in [s.storage_metrics, s.ingest_metrics, s.query_metrics] {
        let r = http
            .put(format!(
                "http://127.0.0.1:{port}/tracing?export={}",
                if on { "on" } else { "off" }
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

/// The default mode: one stack, export switched at run time (see the module docs).
async fn switch_settings(endpoint: &str, ratio: &str, spans: &Counter) -> Stack {
    assert_ne!(
        ratio, "off",
        "switch mode compares export on (at a ratio) with off"
    );
    // Export within 250 ms of a span's end (the SDK's default waits up to 5 s), so that the
    // export work of a slice with export on is done in that slice or in the settling time
    // after it, not in the next slice. At 10% of this load the batches fill to 300-500 spans
    // in that time anyway (the default maximum is 512).
    // (In the services' environment: `env` runs them.)
    let env = || vec!["env".to_string(), "OTEL_BSP_SCHEDULE_DELAY=250".to_string()];
    let on = [
        "--otlp-endpoint",
        endpoint,
        "--trace-sample-ratio",
        ratio,
        // Idle polling off: its spinner's CPU would blur the CPU-per-search figures.
        "--idle-poll-us",
        "0",
    ];
    let s = Stack::start_wrapped(&on, &on, &with_cache_off(&on), |_| env()).await;
    load(&s).await;
    let http = reqwest::Client::new();
    let rounds = env_or("AKIDB_BENCH_ROUNDS", 20usize);
    let slice = Duration::from_millis(env_or("AKIDB_BENCH_SLICE_MS", 1000u64));
    let settle = Duration::from_millis(300);

    // The load runs through every slice, never pausing.
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let stop = stop.clone();
            searcher(&s, w, &done, move || !stop.load(Ordering::Relaxed))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await; // warm-up

    let snapshot = || {
        (
            done.load(Ordering::Relaxed),
            service_cpu(&s),
            Instant::now(),
        )
    };
    // One slice: (searches per second, µs of query + storage CPU per search).
    let measure = async |on: bool| {
        set_export(&http, &s, on).await;
        tokio::time::sleep(settle).await;
        let (n0, c0, t0) = snapshot();
        tokio::time::sleep(slice).await;
        let (n1, c1, t1) = snapshot();
        let n = (n1 - n0) as f64;
        let cpu = (c1.0 - c0.0) + (c1.1 - c0.1);
        (n / (t1 - t0).as_secs_f64(), cpu * 1e6 / n)
    };
    // splitmix64, seeded from the clock: a new random order of the slices in every round
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rand = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (mut qps_on, mut qps_aa, mut cpu_on, mut cpu_aa) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sums = [(0.0, 0.0); 3];
    eprintln!(
        "{rounds} rounds of 3 slices of {slice:?} (random order), {CONCURRENCY} clients, \
         export ratio {ratio}, {}",
        DATA.name
    );
    for r in 0..rounds {
        // 0: export on, 1: off, 2: off again (the A/A control)
        let mut order = [0usize, 1, 2];
        for i in (1..order.len()).rev() {
            order.swap(i, (rand() % (i as u64 + 1)) as usize);
        }
        let mut got = [(0.0, 0.0); 3];
        for &k in &order {
            got[k] = measure(k == 0).await;
        }
        for k in 0..3 {
            sums[k].0 += got[k].0;
            sums[k].1 += got[k].1;
        }
        qps_on.push(got[0].0 / got[1].0 - 1.0);
        qps_aa.push(got[2].0 / got[1].0 - 1.0);
        cpu_on.push(got[0].1 / got[1].1 - 1.0);
        cpu_aa.push(got[2].1 / got[1].1 - 1.0);
        eprintln!(
            "round {r:>2} (order {order:?}): on {:>6.0} qps {:>6.1} µs | off {:>6.0} qps {:>6.1} µs \
             | off again {:>6.0} qps {:>6.1} µs",
            got[0].0, got[0].1, got[1].0, got[1].1, got[2].0, got[2].1
        );
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    set_export(&http, &s, true).await;
    let n = rounds as f64;
    eprintln!(
        "means: on {:.0} qps {:.1} µs CPU/search, off {:.0} qps {:.1} µs, off again {:.0} qps \
         {:.1} µs; spans received {}",
        sums[0].0 / n,
        sums[0].1 / n,
        sums[1].0 / n,
        sums[1].1 / n,
        sums[2].0 / n,
        sums[2].1 / n,
        spans.0.load(Ordering::Relaxed)
    );
    eprintln!("{}", summary("search QPS, export on vs off", &qps_on));
    eprintln!("{}", summary("search QPS, off again vs off (A/A)", &qps_aa));
    eprintln!(
        "{}",
        summary("query + storage CPU per search, export on vs off", &cpu_on)
    );
    eprintln!(
        "{}",
        summary(
            "query + storage CPU per search, off again vs off (A/A)",
            &cpu_aa
        )
    );
    s
}

/// Two stacks, one exporting and one without an exporter (`alternate` or `together`).
async fn two_stacks(endpoint: &str, ratio: &str, together: bool, spans: &Counter) -> Stack {
    let on: Vec<&str> = if ratio == "off" {
        Vec::new()
    } else {
        vec!["--otlp-endpoint", endpoint, "--trace-sample-ratio", ratio]
    };
    // Idle polling off in both: its spinner's CPU would blur the CPU-per-search figures.
    let mut on = on;
    on.extend(["--idle-poll-us", "0"]);
    let off = ["--idle-poll-us", "0"];
    // Which stack starts and loads first (`AKIDB_BENCH_PLAIN_FIRST=1`: the plain one), to
    // check that the order leaves no bias of its own.
    let (traced, plain) = if std::env::var_os("AKIDB_BENCH_PLAIN_FIRST").is_some() {
        let plain = Stack::start_with(&off, &off, &with_cache_off(&off)).await;
        load(&plain).await;
        let traced = Stack::start_with(&on, &on, &with_cache_off(&on)).await;
        load(&traced).await;
        (traced, plain)
    } else {
        let traced = Stack::start_with(&on, &on, &with_cache_off(&on)).await;
        load(&traced).await;
        let plain = Stack::start_with(&off, &off, &with_cache_off(&off)).await;
        load(&plain).await;
        (traced, plain)
    };
    // warm-up
    qps(&traced).await;
    qps(&plain).await;

    let (mut t, mut p) = (Vec::new(), Vec::new());
    let rounds = env_or("AKIDB_BENCH_ROUNDS", 10usize);
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
    let diffs = |f: fn(&(f64, f64)) -> f64| -> Vec<f64> {
        t.iter().zip(&p).map(|(a, b)| f(a) / f(b) - 1.0).collect()
    };
    eprintln!(
        "search QPS ({CONCURRENCY} clients, {}, {rounds} rounds of {ROUND:?}): \
         traced stack (ratio {ratio}) {:.0}, plain stack {:.0}; spans received {}",
        DATA.name,
        mean(&t, |x| x.0),
        mean(&p, |x| x.0),
        spans.0.load(Ordering::Relaxed)
    );
    eprintln!(
        "{}",
        summary("search QPS, traced vs plain", &diffs(|x| x.0))
    );
    eprintln!(
        "{}",
        summary(
            "query + storage CPU per search, traced vs plain",
            &diffs(|x| x.1)
        )
    );
    traced
}

/// `/metrics` of a loaded storage: scraped while `traced` is under search load.
async fn metrics_under_load(traced: &Stack) {
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
                        vector: query(k),
                        k: 10,
                        ..Default::default()
                    }))
                    .await;
            }
        }
    });
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/metrics", traced.storage_metrics);
    // Both formats, alternating: the text format, and OpenMetrics with exemplars (what
    // Prometheus asks for).
    let formats = [
        ("text", "text/plain;version=0.0.4"),
        (
            "OpenMetrics",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ),
    ];
    let mut times = [Vec::new(), Vec::new()];
    let mut bytes = [0, 0];
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..200 {
        let f = i % 2;
        let t0 = Instant::now();
        let req = http.get(&url).header("accept", formats[f].1);
        let body = req.send().await.unwrap().text().await.unwrap();
        times[f].push(t0.elapsed());
        bytes[f] = body.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load_task.await.unwrap();
    for (f, (name, _)) in formats.iter().enumerate() {
        let t = &mut times[f];
        eprintln!(
            "storage /metrics under load, {name} ({} bytes): p50 {:?} p99 {:?} max {:?}",
            bytes[f],
            pct(t, 0.5),
            pct(t, 0.99),
            pct(t, 1.0)
        );
    }
}

/// Instructions `pid` has executed since its counters were last zeroed: `callgrind_control
/// --dump`, then the `totals:` line of the newest dump file `<prefix>.<n>`.
fn callgrind_dump(pid: u32, prefix: &std::path::Path) -> u64 {
    let st = std::process::Command::new("callgrind_control")
        .args(["--dump", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "callgrind_control --dump {pid}");
    let dir = prefix.parent().unwrap();
    let stem = format!("{}.", prefix.file_name().unwrap().to_str().unwrap());
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix(&stem)?.parse().ok()?;
            Some((n, dir.join(name)))
        })
        .max()
        .expect("a dump file")
        .1;
    let text = std::fs::read_to_string(&newest).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("totals: "))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("summary: ")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", newest.display()))
}

fn callgrind_zero(pid: u32) {
    let st = std::process::Command::new("callgrind_control")
        .args(["--zero", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "callgrind_control --zero {pid}");
}

/// Instructions per search in query and storage with trace export on (`AKIDB_BENCH_RATIO`,
/// default 0.1) and off, in the same processes, counted by valgrind's callgrind: a count, not
/// a time, so neither the machine's noise nor its other tenants enter it (kernel work, e.g.
/// the exporter's socket writes, is not counted; memory stalls neither). Phases of
/// `AKIDB_BENCH_SEARCHES` (default 3000) searches from 2 clients alternate off, on, off, on,
/// ... (`AKIDB_BENCH_ROUNDS`, default 3 pairs, plus a last off phase); every phase ends with
/// the same 5.5 s pause, so that the batch exporter (default settings: up to 512 spans a
/// batch, at least every 5 s) has shipped what the phase sampled.
async fn instructions_per_search_with_and_without_tracing() {
    const VALGRIND: &str = "Install valgrind (Debian package valgrind).";
    if tool(&["valgrind"], VALGRIND).is_none() || tool(&["callgrind_control"], VALGRIND).is_none() {
        return;
    }
    let (spans, endpoint) = start_receiver().await;
    let ratio = std::env::var("AKIDB_BENCH_RATIO").unwrap_or_else(|_| "0.1".into());
    let searches = env_or("AKIDB_BENCH_SEARCHES", 3000u64);
    let pairs = env_or("AKIDB_BENCH_ROUNDS", 3usize);
    // Under valgrind, which runs one thread at a time, the exporter thread can fall behind
    // for a while: a queue large enough that no span is dropped (a dropped span's export
    // would not be counted). Batches and their timing stay the SDK's defaults.
    // (In the services' environment: `env` runs them, and valgrind.)
    let env = ["env", "OTEL_BSP_MAX_QUEUE_SIZE=1000000"].map(String::from);
    let out = tempfile::tempdir().unwrap();
    // `AKIDB_BENCH_KEEP=<dir>`: keep the dumps there (callgrind_annotate shows where the
    // instructions go; dumps alternate off, on, off, ... after the warm-up).
    let out_dir = match std::env::var_os("AKIDB_BENCH_KEEP") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            std::path::PathBuf::from(d)
        }
        None => out.path().to_path_buf(),
    };
    let prefix = |name: &str| out_dir.join(format!("cg.{name}"));
    let traced_args = [
        "--otlp-endpoint",
        endpoint.as_str(),
        "--trace-sample-ratio",
        ratio.as_str(),
        "--idle-poll-us",
        "0",
    ];
    // Query and storage under callgrind, loaded and indexed; dumps named `cg.<tag>.<service>`.
    let start = async |tag: &str, args: &[&str]| {
        let s = Stack::start_wrapped(args, args, &with_cache_off(args), |name| {
            let mut w = env.to_vec();
            if name != "ingest" {
                w.extend([
                    "valgrind".into(),
                    "--tool=callgrind".into(),
                    format!(
                        "--callgrind-out-file={}",
                        prefix(&format!("{tag}.{name}")).display()
                    ),
                ]);
            }
            w
        })
        .await;
        load(&s).await;
        // Index now (under valgrind the graph build takes a while), so that every phase
        // searches the same graph.
        let l = Stack::link(&s.ingest_addr);
        let mut flush = l.request(pb::FlushRequest {
            collection: "bench".into(),
            wait_indexed: true,
        });
        flush.set_timeout(Duration::from_secs(900));
        l.ingest()
            .flush(flush)
            .await
            .unwrap_or_else(|e| panic!("flush: {e}\n{}", s.logs()));
        s
    };
    // `AKIDB_BENCH_MODE=stacks`: export on in one stack, a second stack without an exporter
    // for "off" (what a build without `PUT /tracing` can be measured with; instruction counts
    // do not depend on which process runs them the way times do). Default: one stack, export
    // switched at run time.
    let two = std::env::var("AKIDB_BENCH_MODE").is_ok_and(|m| m == "stacks");
    let traced = start("traced", &traced_args).await;
    let plain = if two {
        Some(start("plain", &["--idle-poll-us", "0"]).await)
    } else {
        None
    };
    let http = reqwest::Client::new();
    let phase = async |on: bool, seed: u64| {
        let (s, tag) = match &plain {
            Some(p) if !on => (p, "plain"),
            Some(_) => (&traced, "traced"),
            None => {
                set_export(&http, &traced, on).await;
                (&traced, "traced")
            }
        };
        let (qpid, spid) = (
            s.query.child.as_ref().unwrap().id(),
            s.storage.child.as_ref().unwrap().id(),
        );
        callgrind_zero(qpid);
        callgrind_zero(spid);
        let tasks: Vec<_> = (0..2u64)
            .map(|w| {
                let addr = s.query_addr.clone();
                tokio::spawn(async move {
                    let l = Stack::link(&addr);
                    let mut c = l.query();
                    for k in 0..searches / 2 {
                        c.search(l.request(pb::SearchRequest {
                            collection: "bench".into(),
                            vector: query(seed + w * 1_000_003 + k),
                            k: 10,
                            ..Default::default()
                        }))
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5500)).await;
        let n = (searches / 2 * 2) as f64;
        (
            callgrind_dump(qpid, &prefix(&format!("{tag}.query"))) as f64 / n,
            callgrind_dump(spid, &prefix(&format!("{tag}.storage"))) as f64 / n,
        )
    };
    if two {
        phase(true, 0).await; // warm-up of the traced stack
    }
    phase(false, 0).await; // warm-up
    let mut on = Vec::new();
    let mut off = vec![phase(false, 1 << 40).await];
    for p in 0..pairs as u64 {
        on.push(phase(true, (2 * p + 2) << 40).await);
        off.push(phase(false, (2 * p + 3) << 40).await);
        eprintln!(
            "pair {p}: off {:.0} + {:.0}, on {:.0} + {:.0}, off {:.0} + {:.0} instructions per search (query + storage)",
            off[p as usize].0,
            off[p as usize].1,
            on[p as usize].0,
            on[p as usize].1,
            off[p as usize + 1].0,
            off[p as usize + 1].1
        );
    }
    let mean = |v: &[(f64, f64)]| {
        let n = v.len() as f64;
        (
            v.iter().map(|x| x.0).sum::<f64>() / n,
            v.iter().map(|x| x.1).sum::<f64>() / n,
        )
    };
    let (mon, moff) = (mean(&on), mean(&off));
    let (ton, toff) = (mon.0 + mon.1, moff.0 + moff.1);
    let aa: Vec<f64> = off
        .iter()
        .map(|x| ((x.0 + x.1) / toff - 1.0) * 100.0)
        .collect();
    eprintln!(
        "instructions per search ({}), {searches} searches per phase, ratio {ratio}{}: export on \
         query {:.0} + storage {:.0} = {ton:.0}; off {:.0} + {:.0} = {toff:.0}: {:+.2}% \
         (query {:+.2}%, storage {:+.2}%); off phases spread {:.2}..{:+.2}% around their mean; \
         spans received {}",
        DATA.name,
        if two {
            " (off: a stack without exporter)"
        } else {
            ""
        },
        mon.0,
        mon.1,
        moff.0,
        moff.1,
        (ton / toff - 1.0) * 100.0,
        (mon.0 / moff.0 - 1.0) * 100.0,
        (mon.1 / moff.1 - 1.0) * 100.0,
        aa.iter().cloned().fold(f64::INFINITY, f64::min),
        aa.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        spans.0.load(Ordering::Relaxed)
    );
}
