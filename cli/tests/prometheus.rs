//! The operability assets against the real thing: a real Prometheus (Debian's `prometheus`)
//! scrapes a running AkiDB through the telemetry aggregator's `/federate` with the repository's
//! prometheus.yml, recording rules and alert rules; a real Alertmanager (Debian's
//! `prometheus-alertmanager`) with the config rendered by `observability/alertmanager/render.sh`
//! delivers to a webhook in the test. And `promtool check metrics` on every endpoint.
//!
//! Each test is skipped, loudly, when its tool is not on PATH (`scripts/setup` installs them),
//! or fails under `CI=true` (`akidb_testkit::require`).

mod common;

use akidb_proto::v1 as pb;
use akidb_testkit::ports::free_port;
use akidb_testkit::promtool;
use akidb_testkit::require::tool;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A non-AkiDB process (Prometheus, Alertmanager), killed on drop.
struct Ext {
    child: Child,
    log: PathBuf,
}

impl Ext {
    fn start(bin: &Path, args: &[String], log: PathBuf) -> Ext {
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        Ext { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ext {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to get the tools these tests run.
const SETUP: &str =
    "scripts/setup installs them (Debian packages prometheus and prometheus-alertmanager).";

/// A webhook receiver: records the body of every POST.
async fn start_webhook() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                // one request per connection: headers, then Content-Length bytes of body
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                g.lock().unwrap().push(body);
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, got)
}

async fn get_json(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.ok()?;
    serde_json::from_str(&r.text().await.ok()?).ok()
}

/// An instant query against Prometheus' HTTP API: the result vector.
async fn prom_query(port: u16, q: &str) -> Vec<Value> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://127.0.0.1:{port}/api/v1/query"),
        &[("query", q)],
    )
    .unwrap();
    let v = get_json(url.as_str()).await.unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn sample(v: &Value) -> f64 {
    v["value"][1].as_str().unwrap().parse().unwrap()
}

/// Rewrite every `for:` of an alert rules file to `for_` and every group `interval:` to
/// `interval`. Only for the test: production waits (`for: 1m` for ServiceDown, up to 30m for
/// others) and the 5-minute evaluation of the long SLO windows would outlast any test.
fn speed_up(yaml: &str, for_: &str, interval: &str) -> String {
    yaml.lines()
        .map(|l| {
            let t = l.trim_start();
            let indent = &l[..l.len() - t.len()];
            if t.starts_with("for: ") {
                format!("{indent}for: {for_}")
            } else if t.starts_with("interval: ") {
                format!("{indent}interval: {interval}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn search(s: &Stack, name: &str, k: usize) -> (Result<(), tonic::Status>, Duration) {
    let q = s.q();
    let t = Instant::now();
    let r = q
        .query()
        .search(q.request(pb::SearchRequest {
            collection: name.into(),
            vector: (0..8).map(|d| ((k + d) % 11) as f32).collect(),
            k: 5,
            ..Default::default()
        }))
        .await;
    (r.map(|_| ()), t.elapsed())
}

fn targets(s: &Stack) -> String {
    format!(
        "storage=127.0.0.1:{},ingest=127.0.0.1:{},query=127.0.0.1:{},telemetry={{self}}",
        s.storage_metrics, s.ingest_metrics, s.query_metrics
    )
}

/// Prometheus on a free port with `dir/prometheus.yml`, its data in `dir/data`, exemplar
/// storage on (as in compose).
fn start_prometheus(bin: &Path, dir: &Path, log: PathBuf) -> (Ext, u16) {
    let port = free_port();
    let args = [
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--enable-feature=exemplar-storage".into(),
    ];
    (Ext::start(bin, &args, log), port)
}

fn near(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

/// Federation, SLO numbers and an alert end to end:
/// 1. Prometheus (the repository's prometheus.yml, pointed at the test's ports) scrapes the
///    aggregator's /federate: series of all four services with their `service` label, `up` 1.
/// 2. Known numbers of good, slow (storage SIGSTOPped for 250 ms under a search) and failing
///    (storage killed: UNAVAILABLE/DEADLINE_EXCEEDED) searches; GetSloStatus's SLI, burn rate
///    and budget equal the hand-computed values, and equal Prometheus' recording rules.
/// 3. Storage stays dead: ServiceDown{service="storage"} fires in Prometheus and reaches the
///    webhook through Alertmanager (routing: critical -> pager).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_federation_slo_and_alert_path() {
    let Some(prom_bin) = tool(&["prometheus"], SETUP) else {
        return;
    };
    // Debian names the Alertmanager binary `prometheus-alertmanager`; upstream `alertmanager`.
    let Some(am_bin) = tool(&["prometheus-alertmanager", "alertmanager"], SETUP) else {
        return;
    };
    let t0 = Instant::now();
    // Reads give up after 1 s when storage is gone; a SIGSTOP of 250 ms stays within it.
    let mut s = Stack::start_with(&[], &[], &["--storage-timeout-ms", "1000"]).await;
    create_and_fill(&s, "slo", 300).await;

    // Warm-up, before the aggregator and Prometheus first look: every series the measured
    // phase touches exists already (Search OK and Search with a server-side failure), so that
    // Prometheus' rate() sees all of the measured increase (it cannot count the first value
    // of a series that appears mid-window; AkiDB's aggregator would).
    for k in 0..5 {
        search(&s, "slo", k).await.0.unwrap();
    }
    s.storage.kill();
    let (r, _) = search(&s, "slo", 0).await;
    let warm_code = r.unwrap_err().code();
    s.storage.spawn();
    wait_serving(&s.storage_addr, Duration::from_secs(30)).await;
    wait_serving(&s.query_addr, Duration::from_secs(30)).await;
    search(&s, "slo", 1).await.0.unwrap();

    let (mut telemetry, tel_grpc, tel_http) =
        start_telemetry(s.dir.path(), &targets(&s), "1s", &[]);
    wait_serving(&tel_grpc, Duration::from_secs(30)).await;
    // Prometheus starts once /federate has every target up; before that ServiceDown's
    // absent() terms hold (with the test's 2 s `for:`, they would fire and resolve).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fed = reqwest::get(format!("http://127.0.0.1:{tel_http}/federate"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let ups = fed
            .lines()
            .filter(|l| l.starts_with("up{") && l.ends_with(" 1"))
            .count();
        if ups == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/federate never had 4 targets up:\n{fed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Alertmanager with the rendered config, webhooks pointing to the test.
    let (hook_port, hooks) = start_webhook().await;
    let dir = s.dir.path().to_path_buf();
    let am_conf = dir.join("alertmanager.yml");
    let st = Command::new("sh")
        .arg(repo().join("observability/alertmanager/render.sh"))
        .arg(&am_conf)
        .env(
            "AKIDB_PAGER_WEBHOOK_URL",
            format!("http://127.0.0.1:{hook_port}/pager"),
        )
        .env(
            "AKIDB_TICKET_WEBHOOK_URL",
            format!("http://127.0.0.1:{hook_port}/ticket"),
        )
        .status()
        .unwrap();
    assert!(st.success(), "render.sh failed");
    // group_wait 30s would make the test wait 30 s for the first notification, and
    // group_interval 5m as long for a new alert joining a group notified before.
    let rendered = std::fs::read_to_string(&am_conf).unwrap();
    assert!(rendered.contains(&format!("http://127.0.0.1:{hook_port}/pager")));
    std::fs::write(
        &am_conf,
        rendered
            .replace("group_wait: 30s", "group_wait: 1s")
            .replace("group_interval: 5m", "group_interval: 1s"),
    )
    .unwrap();
    let am_port = free_port();
    let am = Ext::start(
        &am_bin,
        &[
            format!("--config.file={}", am_conf.display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        dir.join("alertmanager.log"),
    );

    // Prometheus: the repository's config with the test's ports and 1 s intervals; the
    // repository's recording rules and alerts, sped up (see `speed_up`).
    let prom_dir = dir.join("prom");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let obs = repo().join("observability/prometheus");
    let recording = std::fs::read_to_string(obs.join("recording.yml")).unwrap();
    std::fs::write(
        prom_dir.join("recording.yml"),
        speed_up(&recording, "0s", "1s"),
    )
    .unwrap();
    let alerts = std::fs::read_to_string(obs.join("alerts.yml")).unwrap();
    std::fs::write(prom_dir.join("alerts.yml"), speed_up(&alerts, "2s", "1s")).unwrap();
    let conf = std::fs::read_to_string(obs.join("prometheus.yml")).unwrap();
    assert!(conf.contains("127.0.0.1:9100") && conf.contains("127.0.0.1:9093"));
    let conf = conf
        .replace("127.0.0.1:9100", &format!("127.0.0.1:{tel_http}"))
        .replace("127.0.0.1:9093", &format!("127.0.0.1:{am_port}"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(prom_dir.join("prometheus.yml"), conf).unwrap();
    let (prom, prom_port) = start_prometheus(&prom_bin, &prom_dir, dir.join("prometheus.log"));

    // 1. Federation: all four services, `up` 1 for each.
    let deadline = Instant::now() + Duration::from_secs(30);
    let services = loop {
        let up = prom_query(prom_port, "up{service!=\"\"} == 1").await;
        let with_series = prom_query(
            prom_port,
            "count by (service) ({__name__=~\"akidb_.+\", service!=\"\"})",
        )
        .await;
        let mut svc: Vec<String> = with_series
            .iter()
            .filter_map(|r| r["metric"]["service"].as_str().map(String::from))
            .collect();
        svc.sort();
        let mut ups: Vec<String> = up
            .iter()
            .filter_map(|r| r["metric"]["service"].as_str().map(String::from))
            .collect();
        ups.sort();
        ups.dedup();
        if svc == ["ingest", "query", "storage", "telemetry"] && svc == ups {
            break svc;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus lacks services: series from {svc:?}, up from {ups:?}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "Prometheus sees series and up=1 from {services:?} ({:?})",
        t0.elapsed()
    );
    // Prometheus' first sample of the query series, and the aggregator's baseline, are both
    // taken now, after the warm-up: the measured phase starts here.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 2. The measured workload.
    let (good, slow, failing) = (40u32, 3u32, 4u32);
    for k in 0..good {
        let (r, t) = search(&s, "slo", k as usize).await;
        r.unwrap();
        assert!(t < Duration::from_millis(80), "a good search took {t:?}");
    }
    for k in 0..slow {
        s.storage.pause();
        let q = tokio::spawn({
            let addr = s.query_addr.clone();
            async move {
                let l = Stack::link(&addr);
                let t = Instant::now();
                let r = l
                    .query()
                    .search(l.request(pb::SearchRequest {
                        collection: "slo".into(),
                        vector: vec![k as f32; 8],
                        k: 5,
                        ..Default::default()
                    }))
                    .await;
                (r.map(|_| ()), t.elapsed())
            }
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
        s.storage.signal(libc::SIGCONT);
        let (r, t) = q.await.unwrap();
        r.unwrap();
        assert!(t > Duration::from_millis(200), "a slow search took {t:?}");
    }
    s.storage.kill();
    let fails =
        futures::future::join_all((0..failing).map(|k| search(&s, "slo", k as usize))).await;
    for (r, t) in &fails {
        let code = r.as_ref().unwrap_err().code();
        assert_eq!(code, warm_code, "same failure as in the warm-up");
        assert!(
            *t > Duration::from_millis(100),
            "a failed search took {t:?}"
        );
    }
    eprintln!(
        "drove {good} good, {slow} slow, {failing} failing ({warm_code:?}) searches ({:?})",
        t0.elapsed()
    );

    // Hand-computed: every window covers the whole measured phase (the aggregator's baseline
    // is its first scrape). Availability: bad = failing. Latency (100 ms): good = good.
    let events = f64::from(good + slow + failing);
    let avail_sli = 1.0 - f64::from(failing) / events;
    let avail_burn = (1.0 - avail_sli) / (1.0 - 0.999);
    let lat_sli = f64::from(good) / events;
    let lat_burn = (1.0 - lat_sli) / (1.0 - 0.99);

    let tl = Stack::link(&tel_grpc);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let st = tl
            .telemetry()
            .get_slo_status(tl.request(pb::GetSloStatusRequest {}))
            .await
            .unwrap()
            .into_inner();
        let w5 = |name: &str| {
            st.slos
                .iter()
                .find(|x| x.name == name)
                .and_then(|x| x.windows.iter().find(|w| w.window == "5m"))
                .map(|w| w.total_events)
                .unwrap_or(0.0)
        };
        if w5("query-availability") == events && w5("query-latency") == events {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "aggregator never counted {events} events: {st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let slo = |name: &str| status.slos.iter().find(|x| x.name == name).unwrap().clone();
    for (name, sli, burn) in [
        ("query-availability", avail_sli, avail_burn),
        ("query-latency", lat_sli, lat_burn),
    ] {
        let x = slo(name);
        for w in &x.windows {
            assert_eq!(w.total_events, events, "{name} {}: {x:#?}", w.window);
            assert!(near(w.sli, sli, 1e-9), "{name} {} SLI: {x:#?}", w.window);
            assert!(
                near(w.burn_rate, burn, 1e-9),
                "{name} {} burn: {x:#?}",
                w.window
            );
        }
        assert!(
            near(x.error_budget_remaining, 1.0 - burn, 1e-9),
            "{name} budget: {x:#?}"
        );
        // 1h & 5m burn > 14.4: both SLOs page.
        assert!(x.page_alert, "{name} pages at burn {burn}: {x:#?}");
        eprintln!(
            "{name}: SLI {sli:.6} burn {burn:.3} budget {:.3} (AkiDB: SLI {:.6} burn {:.3} budget {:.3})",
            1.0 - burn,
            x.windows[0].sli,
            x.windows[0].burn_rate,
            x.error_budget_remaining
        );
    }

    // The same numbers from Prometheus' recording rules over the federated series.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut diffs = Vec::new();
        for (name, sli, burn) in [
            ("query-availability", avail_sli, avail_burn),
            ("query-latency", lat_sli, lat_burn),
        ] {
            for (q, want) in [
                (
                    format!("akidb:slo_sli:ratio_rate5m{{slo=\"{name}\",service=\"query\"}}"),
                    sli,
                ),
                (
                    format!("akidb:slo_burn_rate:rate5m{{slo=\"{name}\",service=\"query\"}}"),
                    burn,
                ),
                (
                    format!("akidb:slo_sli:ratio_rate30d{{slo=\"{name}\",service=\"query\"}}"),
                    sli,
                ),
                (
                    format!(
                        "akidb:slo_error_budget_remaining:ratio{{slo=\"{name}\",service=\"query\"}}"
                    ),
                    1.0 - burn,
                ),
            ] {
                let r = prom_query(prom_port, &q).await;
                let got = r.first().map(sample);
                if !got.is_some_and(|g| near(g, want, 1e-6)) {
                    diffs.push(format!("{q}: Prometheus {got:?}, AkiDB/hand {want}"));
                }
            }
        }
        if diffs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus disagrees:\n{}\n{}",
            diffs.join("\n"),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "Prometheus' recording rules agree with GetSloStatus ({:?})",
        t0.elapsed()
    );

    // 3. Storage stays down: ServiceDown fires and reaches the pager webhook.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get_json(&format!("http://127.0.0.1:{prom_port}/api/v1/alerts"))
            .await
            .unwrap_or(Value::Null);
        let firing = v["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["labels"]["alertname"] == "ServiceDown"
                    && x["labels"]["service"] == "storage"
                    && x["state"] == "firing"
            })
        });
        if firing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ServiceDown not firing: {v:#}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "ServiceDown{{service=storage}} firing in Prometheus ({:?})",
        t0.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = hooks.lock().unwrap().clone();
        let delivered = got.iter().any(|b| {
            let v: Value = serde_json::from_str(b).unwrap_or(Value::Null);
            v["receiver"] == "pager"
                && v["alerts"].as_array().is_some_and(|a| {
                    a.iter().any(|x| {
                        x["labels"]["alertname"] == "ServiceDown"
                            && x["labels"]["service"] == "storage"
                            && x["status"] == "firing"
                            && x["annotations"]["runbook_url"]
                                .as_str()
                                .is_some_and(|u| u.contains("ServiceDown"))
                    })
                })
        });
        if delivered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never got ServiceDown: {got:#?}\nAlertmanager's alerts: {:#}\n{}",
            get_json(&format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
                .await
                .unwrap_or(Value::Null),
            am.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "ServiceDown delivered to the pager webhook through Alertmanager ({:?})",
        t0.elapsed()
    );
    telemetry.kill();
}

/// `promtool check metrics` passes on every endpoint's /metrics (and the aggregator's
/// /federate) after a workload: searches, upserts, a snapshot, a failed call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_on_every_endpoint() {
    let Some(promtool) = promtool::bin() else {
        return;
    };
    let s = Stack::start().await;
    create_and_fill(&s, "lint", 500).await;
    for k in 0..20 {
        search(&s, "lint", k).await.0.unwrap();
    }
    let _ = search(&s, "missing", 0).await.0.unwrap_err();
    let a = Stack::link(&s.storage_addr);
    a.admin()
        .snapshot(a.request(pb::SnapshotRequest {
            collection: "lint".into(),
        }))
        .await
        .unwrap();
    let (_t, tel_grpc, tel_http) = start_telemetry(s.dir.path(), &targets(&s), "500ms", &[]);
    wait_serving(&tel_grpc, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut failures = Vec::new();
    for (name, url) in [
        (
            "storage",
            format!("http://127.0.0.1:{}/metrics", s.storage_metrics),
        ),
        (
            "ingest",
            format!("http://127.0.0.1:{}/metrics", s.ingest_metrics),
        ),
        (
            "query",
            format!("http://127.0.0.1:{}/metrics", s.query_metrics),
        ),
        ("telemetry", format!("http://127.0.0.1:{tel_http}/metrics")),
        ("federate", format!("http://127.0.0.1:{tel_http}/federate")),
    ] {
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert!(body.contains("akidb_"), "{name}: {body}");
        let (status, text) = promtool::check_metrics(&promtool, &body);
        eprintln!("promtool check metrics {name}: {} {}", status, text.trim());
        if !status.success() || !text.trim().is_empty() {
            failures.push(format!("{name} ({url}): {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "promtool check metrics:\n{}",
        failures.join("\n")
    );
}

/// Exemplars from a traced request to Prometheus: a Search sent with the client's sampled
/// `traceparent` leaves its trace id on the latency bucket it fell in, in query's and
/// storage's `/metrics` (OpenMetrics, as Prometheus asks for it; the text format has none),
/// through the aggregator's `/federate`, and in a real Prometheus with exemplar storage
/// (`/api/v1/query_exemplars`), which is what Grafana's latency panels link to Jaeger from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_lead_from_latency_buckets_to_the_trace() {
    let Some(prom_bin) = tool(&["prometheus"], SETUP) else {
        return;
    };
    // Spans are recorded (sampled) whether or not a collector takes them: none here.
    let otlp = format!("http://127.0.0.1:{}", free_port());
    let traced: [&str; 6] = [
        "--otlp-endpoint",
        &otlp,
        "--trace-sample-ratio",
        "0",
        "--trace-reservoir-per-sec",
        "0",
    ];
    let s = Stack::start_with(&traced, &traced, &traced).await;
    create_and_fill(&s, "ex", 200).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let q = s.q();
    for k in 0..3 {
        let mut req = q.request(pb::SearchRequest {
            collection: "ex".into(),
            vector: vec![k as f32; 8],
            k: 5,
            ..Default::default()
        });
        let tp = format!("00-{trace}-00f067aa0ba902b{k}-01");
        req.metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
        q.query().search(req).await.unwrap();
    }
    // Untraced searches (ratio 0): counted, no exemplar.
    for k in 0..5 {
        search(&s, "ex", k).await.0.unwrap();
    }

    let get = |port: u16, accept: &'static str| async move {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        (ct, r.text().await.unwrap())
    };
    let om_accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let with_trace = |text: &str, series: &str| {
        text.lines()
            .filter(|l| l.starts_with(series) && l.contains(&format!("# {{trace_id=\"{trace}\"}}")))
            .count()
    };
    for (port, series) in [
        (
            s.query_metrics,
            "akidb_grpc_server_request_duration_seconds_bucket{grpc_method=\"Search\",grpc_service=\"akidb.v1.QueryService\"",
        ),
        (
            s.query_metrics,
            "akidb_grpc_client_request_duration_seconds_bucket{grpc_method=\"Search\",grpc_service=\"akidb.v1.StorageService\"",
        ),
        (
            s.storage_metrics,
            "akidb_grpc_server_request_duration_seconds_bucket{grpc_method=\"Search\",grpc_service=\"akidb.v1.StorageService\"",
        ),
        (
            s.storage_metrics,
            "akidb_search_duration_seconds_bucket{tier=\"hot\"",
        ),
    ] {
        let (ct, om) = get(port, om_accept).await;
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(om.ends_with("# EOF\n"));
        let n = with_trace(&om, series);
        assert!(n >= 1, "no exemplar of trace {trace} on {series}:\n{om}");
        let (ct, text) = get(port, "text/plain;version=0.0.4").await;
        assert!(ct.starts_with("text/plain"), "{ct}");
        assert!(!text.contains("trace_id"), "exemplars in the text format");
    }
    let (_, om) = get(s.query_metrics, om_accept).await;
    assert_eq!(
        om.matches("# {trace_id=").count(),
        with_trace(&om, "akidb_grpc_"),
        "exemplars of other traces than the client's: the untraced searches left some\n{om}"
    );

    // The aggregator passes them on in /federate; Prometheus stores them.
    let (_t, tel_grpc, tel_http) = start_telemetry(s.dir.path(), &targets(&s), "500ms", &[]);
    wait_serving(&tel_grpc, Duration::from_secs(30)).await;
    let prom_dir = s.dir.path().join("prom-ex");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let conf = std::fs::read_to_string(repo().join("observability/prometheus/prometheus.yml"))
        .unwrap()
        .replace("127.0.0.1:9100", &format!("127.0.0.1:{tel_http}"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    let conf: String = conf
        .lines()
        .take_while(|l| !l.starts_with("rule_files:"))
        .chain(
            conf.lines()
                .skip_while(|l| !l.starts_with("scrape_configs:")),
        )
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(prom_dir.join("prometheus.yml"), conf).unwrap();
    let (prom, prom_port) =
        start_prometheus(&prom_bin, &prom_dir, s.dir.path().join("prometheus-ex.log"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut found = Vec::new();
        for svc in ["query", "storage"] {
            let url = reqwest::Url::parse_with_params(
                &format!("http://127.0.0.1:{prom_port}/api/v1/query_exemplars"),
                &[
                    (
                        "query",
                        format!(
                            "akidb_grpc_server_request_duration_seconds_bucket{{service=\"{svc}\",grpc_method=\"Search\"}}"
                        ),
                    ),
                    ("start", (now - 600).to_string()),
                    ("end", (now + 600).to_string()),
                ],
            )
            .unwrap();
            let v = get_json(url.as_str()).await.unwrap_or(Value::Null);
            let ids: Vec<String> = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["labels"]["trace_id"].as_str().map(String::from))
                .collect();
            if ids.iter().any(|id| id == trace) {
                found.push(svc);
            }
        }
        // The aggregator's own /metrics (job akidb-telemetry), which Prometheus takes as
        // OpenMetrics written by the same code as every service's.
        let own = prom_query(prom_port, "up{job=\"akidb-telemetry\"} == 1").await;
        if found == ["query", "storage"] && own.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has no exemplar of trace {trace} for {:?} (found for {found:?}), or \
             cannot scrape the aggregator's /metrics (up: {own:?})\n{}",
            ["query", "storage"],
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
