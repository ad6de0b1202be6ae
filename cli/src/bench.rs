//! `akidb bench`: load a data set through the public API and measure what a user sees.
//!
//! Durable ingest vectors/s through ingest, time until fully indexed, then for each `ef` and
//! concurrency: QPS, p50/p95/p99/p99.9/p99.99/max latency measured per request by the client (HDR
//! histogram, warm-up excluded) and recall@10 against the ground truth; plus SearchBatch
//! throughput. Closed loop by default; `--rate` makes it open loop (fixed request rate,
//! latency counted from the intended send time).

use crate::client::{datatype_of, metric_of, quantization_of};
use crate::global::{Global, link};
use crate::stack::{self, Plan, Ports, Spawn};
use akidb_client::Link;
use akidb_client::dataset::{self, find};
use akidb_proto::v1 as pb;
use anyhow::{Context, bail};
use comfy_table::Table;
use hdrhistogram::Histogram;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// Data set folder with `*_base.fvecs`, `*_query.fvecs` and `*_groundtruth.ivecs`.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "l2", value_parser = ["l2", "cosine", "dot"])]
    pub metric: String,
    /// Vector datatype of the collection created.
    #[arg(long, default_value = "float32", value_parser = ["float32", "float16"])]
    pub datatype: String,
    /// Quantization of the collection created.
    #[arg(long, default_value = "none", value_parser = ["none", "int8", "binary"])]
    pub quantization: String,
    /// Keep sealed segments' vectors in mapped files (`collection create --on-disk`).
    #[arg(long)]
    pub on_disk: bool,
    /// Quantized collections: candidates rescored per result (default: the server's).
    #[arg(long)]
    pub oversampling: Option<f32>,
    /// Collection to (re)create.
    #[arg(long, default_value = "bench")]
    pub collection: String,
    /// Points per Upsert.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Upserts in flight while loading.
    #[arg(long, default_value_t = 4)]
    pub load_concurrency: usize,
    /// ef values to measure (comma-separated); 0 = the server's default.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub ef: Vec<u32>,
    /// Concurrent clients to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub concurrency: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    pub k: u32,
    /// Seconds measured per (ef, concurrency) cell.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Seconds of warm-up before each cell (not measured).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Open loop: total requests per second across clients (0 = closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Queries per SearchBatch (0 = skip).
    #[arg(long, default_value_t = 100)]
    pub search_batch: usize,
    /// Start a stack of our own (in a temporary data dir) instead of using the endpoints.
    #[arg(long)]
    pub start: bool,
    /// With --start: a cluster of this many storage nodes on a local etcd (as `akidb up
    /// --storage-nodes`); 0: one storage node.
    #[arg(long = "storage-nodes", default_value_t = 0)]
    pub storage_nodes: usize,
    /// Shards of the collection created (more than 1 needs a cluster).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Copies of each shard of the collection created (a cluster: --storage-nodes).
    #[arg(long, default_value_t = 1)]
    pub replication: u32,
    /// Extra arguments for the query service of a started stack (e.g. `--query-arg=--cache-entries=0`).
    #[arg(long = "query-arg", allow_hyphen_values = true)]
    pub query_args: Vec<String>,
    /// Extra arguments for the storage service of a started stack.
    #[arg(long = "storage-arg", allow_hyphen_values = true)]
    pub storage_args: Vec<String>,
    /// Storage metrics URLs (comma-separated: every node's), to read their memory (default:
    /// the started stack's).
    #[arg(long)]
    pub storage_metrics: Option<String>,
    /// Seconds to wait for the collection to be fully indexed before measuring anyway.
    #[arg(long, default_value_t = 300)]
    pub index_timeout: u64,
    /// Skip loading (the collection already holds the data set).
    #[arg(long)]
    pub no_load: bool,
    /// After loading, do not call Flush: the last points are then indexed when storage seals
    /// the idle segment (`--seal-idle-ms`), and that wait is part of "fully indexed".
    #[arg(long)]
    pub no_flush: bool,
}

/// A stack started by the benchmark: its processes (killed on drop) and its data directory
/// (removed on drop).
struct OwnStack {
    _services: Vec<stack::Svc>,
    _dir: TempDir,
}

/// A directory removed, with what is in it, on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Storage, ingest and query (no telemetry aggregator: its scrapes would share the machine
/// with the measurement), started as `akidb up` starts them, on free ports over a temporary
/// data directory and logging warnings only; `g` then points at them. Returns the stack and
/// storage's metrics URL.
async fn start_stack(a: &BenchArgs, g: &mut Global) -> anyhow::Result<(OwnStack, String)> {
    let dir = std::env::temp_dir().join(format!("akidb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let dir = TempDir(dir);
    let p = Ports::free(a.storage_nodes)?;
    if a.storage_nodes > stack::MAX_STORAGE_NODES {
        bail!("--storage-nodes: at most {}", stack::MAX_STORAGE_NODES);
    }
    let cluster = match a.storage_nodes {
        0 => None,
        n => Some(stack::Cluster {
            nodes: n,
            replication: 1,
            etcd: stack::EtcdPlan::Start(stack::etcd_binary()?),
        }),
    };
    let services = stack::start(
        &Plan {
            data_dir: dir.0.clone(),
            ports: p.clone(),
            storage_args: a.storage_args.clone(),
            query_args: a.query_args.clone(),
            telemetry: false,
            common_args: Vec::new(),
            tls: None,
            cluster,
        },
        // Not a process group of their own: a Ctrl-C stops them with the benchmark.
        &Spawn {
            exe: std::env::current_exe()?,
            log: Some("warn"),
            own_group: false,
            logs_to_stderr: true,
        },
    )?;
    g.query_addr = format!("http://{}", p.addr(p.query.grpc));
    g.ingest_addr = format!("http://{}", p.addr(p.ingest.grpc));
    g.storage_addr = format!("http://{}", p.addr(p.storage.grpc));
    for addr in [&g.query_addr, &g.ingest_addr] {
        let l = Link::new(addr, Duration::from_secs(2))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = l
                .health()
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == 1);
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("the started stack did not become healthy at {addr}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if a.storage_nodes > 0 {
        // Shards are placed over the nodes registered when the collection is created.
        let etcd = akidb_cluster::Etcd::new(
            &format!("http://{}", p.addr(p.etcd.0)),
            Duration::from_secs(2),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while akidb_cluster::membership::nodes(&etcd)
            .await
            .map_or(0, |n| n.len())
            < a.storage_nodes
        {
            if Instant::now() > deadline {
                bail!(
                    "the {} storage nodes did not all register in etcd",
                    a.storage_nodes
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((
        OwnStack {
            _services: services,
            _dir: dir,
        },
        (0..a.storage_nodes.max(1))
            .map(|i| format!("http://{}/metrics", p.addr(p.storage_node(i).metrics)))
            .collect::<Vec<_>>()
            .join(","),
    ))
}

/// The resident memory of the storage nodes whose metrics URLs `urls` lists
/// (comma-separated), summed.
async fn storage_rss(urls: &Option<String>) -> Option<f64> {
    let mut sum = 0.0;
    for url in urls.as_ref()?.split(',') {
        let text = reqwest_get(url).await?;
        sum += text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok())?;
    }
    Some(sum)
}

async fn reqwest_get(url: &str) -> Option<String> {
    // A tiny HTTP/1.1 GET, enough for a local /metrics endpoint.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

struct Cell {
    ef: u32,
    concurrency: usize,
    qps: f64,
    hist: Histogram<u64>,
    recall: f64,
    errors: u64,
}

pub async fn bench(g: &Global, a: BenchArgs) -> anyhow::Result<()> {
    let mut g = g.clone();
    let base = dataset::read_fvecs(&find(&a.data, "_base.fvecs")?)?;
    let queries = Arc::new(dataset::read_fvecs(&find(&a.data, "_query.fvecs")?)?);
    let gt = Arc::new(dataset::read_ivecs(&find(&a.data, "_groundtruth.ivecs")?)?);
    let dim = base.first().map(Vec::len).context("empty base file")?;
    let (_stack, metrics_url) = if a.start {
        let (s, m) = start_stack(&a, &mut g).await?;
        (Some(s), Some(m))
    } else {
        (None, a.storage_metrics.clone())
    };
    let q = link(&g, &g.query_addr)?;
    let mut report = json!({"data": a.data.display().to_string(), "points": base.len(), "dimension": dim, "queries": queries.len()});

    if !a.no_load {
        let mut coll = q.collections();
        let _ = coll
            .delete_collection(q.request(pb::DeleteCollectionRequest {
                name: a.collection.clone(),
            }))
            .await;
        coll.create_collection(q.request(pb::CreateCollectionRequest {
            name: a.collection.clone(),
            dimension: dim as u32,
            metric: metric_of(&a.metric) as i32,
            datatype: datatype_of(&a.datatype) as i32,
            quantization: quantization_of(&a.quantization) as i32,
            on_disk: a.on_disk,
            shards: a.shards,
            replication: a.replication,
            ..Default::default()
        }))
        .await?;
        let i = link(&g, &g.ingest_addr)?;
        let bar = if g.json {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(base.len() as u64)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("loading {bar:40} {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        // Requests are built before the clock starts: the figure is the server's, not the encoder's.
        let batches: Vec<pb::UpsertRequest> = base
            .chunks(a.batch_size.max(1))
            .enumerate()
            .map(|(bi, chunk)| pb::UpsertRequest {
                collection: a.collection.clone(),
                points: chunk
                    .iter()
                    .enumerate()
                    .map(|(j, v)| pb::Point {
                        id: Some(pb::PointId::num((bi * a.batch_size + j) as u64)),
                        vector: v.clone(),
                        payload: None,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        let start = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(a.load_concurrency.max(1)));
        let mut tasks = vec![];
        for b in batches {
            let permit = sem.clone().acquire_owned().await?;
            let i = i.clone();
            let bar = bar.clone();
            tasks.push(tokio::spawn(async move {
                let n = b.points.len() as u64;
                let r = i.ingest().upsert(i.request(b)).await;
                bar.inc(n);
                drop(permit);
                r
            }));
        }
        for t in tasks {
            t.await??;
        }
        let load = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if !a.no_flush {
            let mut r = tonic::Request::new(pb::FlushRequest {
                collection: a.collection.clone(),
                wait_indexed: true,
            });
            r.set_timeout(Duration::from_secs(a.index_timeout));
            i.ingest()
                .flush(r)
                .await
                .context("flushing after the load")?;
        }
        report["flushed"] = json!(!a.no_flush);
        let mut indexed_after = None;
        let deadline = Instant::now() + Duration::from_secs(a.index_timeout);
        while Instant::now() < deadline {
            let info = coll
                .get_collection(q.request(pb::GetCollectionRequest {
                    name: a.collection.clone(),
                }))
                .await?
                .into_inner()
                .collection
                .unwrap_or_default();
            if info.indexed_point_count >= info.point_count
                && info.point_count as usize == base.len()
            {
                indexed_after = Some(start.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report["ingest_seconds"] = json!(load);
        report["ingest_vectors_per_second"] = json!(base.len() as f64 / load);
        report["indexed_seconds"] = json!(indexed_after);
        report["indexed_vectors_per_second"] = json!(indexed_after.map(|t| base.len() as f64 / t));
    }

    let mut cells = vec![];
    for &ef in &a.ef {
        for &conc in &a.concurrency {
            cells.push(run_cell(&q, &a, ef, conc, queries.clone(), gt.clone()).await?);
        }
    }
    let mut batch_qps = None;
    if a.search_batch > 0 {
        let n = a.search_batch.min(queries.len());
        let reqs: Vec<pb::SearchRequest> = queries[..n]
            .iter()
            .map(|v| pb::SearchRequest {
                collection: a.collection.clone(),
                vector: v.clone(),
                k: a.k,
                oversampling: a.oversampling,
                ..Default::default()
            })
            .collect();
        let mut c = q.query();
        let _ = c
            .search_batch(q.request(pb::SearchBatchRequest {
                searches: reqs.clone(),
            }))
            .await?;
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed().as_secs_f64() < a.seconds {
            c.search_batch(q.request(pb::SearchBatchRequest {
                searches: reqs.clone(),
            }))
            .await?;
            done += n;
        }
        batch_qps = Some(done as f64 / start.elapsed().as_secs_f64());
    }
    let rss = storage_rss(&metrics_url).await;
    report["search_batch_size"] = json!(a.search_batch);
    report["search_batch_queries_per_second"] = json!(batch_qps);
    report["storage_rss_bytes"] = json!(rss);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    report["search"] = json!(cells.iter().map(|c| json!({
        "ef": c.ef, "concurrency": c.concurrency, "qps": c.qps, "recall_at_10": c.recall, "errors": c.errors,
        "p50_ms": ms(&c.hist, 0.5), "p95_ms": ms(&c.hist, 0.95), "p99_ms": ms(&c.hist, 0.99), "p999_ms": ms(&c.hist, 0.999), "p9999_ms": ms(&c.hist, 0.9999),
        "max_ms": c.hist.max() as f64 / 1000.0, "requests": c.hist.len(),
        // The distribution ([quantile, ms] pairs, denser towards the tail), for models
        // such as a fan-out's latency from one shard's.
        "quantiles_ms": c.hist.iter_quantiles(4).map(|v| [v.quantile_iterated_to(), v.value_iterated_to() as f64 / 1000.0]).collect::<Vec<_>>(),
    })).collect::<Vec<_>>());

    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.set_header([
        "ef",
        "clients",
        "QPS",
        "recall@10",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.99 ms",
        "max ms",
        "requests",
        "errors",
    ]);
    for c in &cells {
        t.add_row(vec![
            if c.ef == 0 {
                "default".into()
            } else {
                c.ef.to_string()
            },
            c.concurrency.to_string(),
            format!("{:.0}", c.qps),
            format!("{:.4}", c.recall),
            format!("{:.3}", ms(&c.hist, 0.5)),
            format!("{:.3}", ms(&c.hist, 0.95)),
            format!("{:.3}", ms(&c.hist, 0.99)),
            format!("{:.3}", ms(&c.hist, 0.999)),
            format!("{:.3}", ms(&c.hist, 0.9999)),
            format!("{:.3}", c.hist.max() as f64 / 1000.0),
            c.hist.len().to_string(),
            c.errors.to_string(),
        ]);
    }
    let f = |k: &str| {
        report[k]
            .as_f64()
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "data set {} ({} × {}), {} queries, k={}",
        a.data.display(),
        base.len(),
        dim,
        queries.len(),
        a.k
    );
    println!(
        "ingest: {} vectors/s durable (batch {}, {} in flight); fully indexed after {} s ({} vectors/s, {})",
        f("ingest_vectors_per_second"),
        a.batch_size,
        a.load_concurrency,
        f("indexed_seconds"),
        f("indexed_vectors_per_second"),
        if a.no_flush {
            "no flush: idle sealing"
        } else {
            "Flush after the load"
        }
    );
    println!("{t}");
    if let Some(b) = batch_qps {
        println!("SearchBatch of {}: {b:.0} queries/s", a.search_batch);
    }
    if let Some(r) = rss {
        let nodes = metrics_url.as_deref().map_or(1, |u| u.split(',').count());
        match nodes {
            1 => println!("storage resident memory: {:.1} MiB", r / 1048576.0),
            n => println!(
                "storage resident memory: {:.1} MiB over {n} nodes",
                r / 1048576.0
            ),
        }
    }
    Ok(())
}

async fn run_cell(
    q: &Link,
    a: &BenchArgs,
    ef: u32,
    conc: usize,
    queries: Arc<Vec<Vec<f32>>>,
    gt: Arc<Vec<Vec<i32>>>,
) -> anyhow::Result<Cell> {
    let reqs: Arc<Vec<pb::SearchRequest>> = Arc::new(
        queries
            .iter()
            .map(|v| pb::SearchRequest {
                collection: a.collection.clone(),
                vector: v.clone(),
                k: a.k,
                ef: (ef > 0).then_some(ef),
                oversampling: a.oversampling,
                ..Default::default()
            })
            .collect(),
    );
    let warm_end = Instant::now() + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.seconds);
    let per_client_interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(conc as f64 / a.rate));
    let mut tasks = vec![];
    for w in 0..conc {
        let mut c = q.query();
        let reqs = reqs.clone();
        let gt = gt.clone();
        let k = a.k as usize;
        tasks.push(tokio::spawn(async move {
            let mut h =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let (mut hits, mut total, mut n, mut errors) = (0usize, 0usize, 0u64, 0u64);
            let mut i = w * 7919 % reqs.len();
            let mut next_send = Instant::now();
            loop {
                if per_client_interval.is_some() {
                    let now = Instant::now();
                    if next_send > now {
                        tokio::time::sleep(next_send - now).await;
                    }
                }
                let sent = per_client_interval.map_or_else(Instant::now, |_| next_send);
                if let Some(iv) = per_client_interval {
                    next_send += iv;
                }
                if sent >= end {
                    break;
                }
                let r = c.search(reqs[i].clone()).await;
                let done = Instant::now();
                if sent >= warm_end {
                    n += 1;
                    let _ = h.record((done - sent).as_micros().max(1) as u64);
                    match r {
                        Ok(r) => {
                            let truth: std::collections::HashSet<u64> =
                                gt[i].iter().take(k.min(10)).map(|&x| x as u64).collect();
                            let resp = r.into_inner();
                            let got = resp.hits.iter().take(k.min(10)).filter_map(|h| {
                                match h.id.as_ref()?.kind {
                                    Some(pb::point_id::Kind::Num(x)) => Some(x),
                                    _ => None,
                                }
                            });
                            hits += got.filter(|x| truth.contains(x)).count();
                            total += truth.len();
                        }
                        Err(_) => errors += 1,
                    }
                }
                i = (i + 1) % reqs.len();
            }
            (h, hits, total, n, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut hits, mut total, mut n, mut errors) = (0, 0, 0, 0);
    for t in tasks {
        let (h, a1, b1, c1, e1) = t.await?;
        hist.add(h)?;
        hits += a1;
        total += b1;
        n += c1;
        errors += e1;
    }
    Ok(Cell {
        ef,
        concurrency: conc,
        qps: n as f64 / a.seconds,
        hist,
        recall: if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        },
        errors,
    })
}
