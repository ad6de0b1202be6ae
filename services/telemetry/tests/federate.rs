//! The aggregator against live HTTP targets: federation labels, `up`, dead targets, SLOs
//! through the scrape path, and the whole service through `run()`.

use akidb_instrumentation::exposition::{MetricFamily, parse};
use akidb_instrumentation::metrics::{Component, Metrics};
use akidb_proto::v1::telemetry_service_server::TelemetryService;
use akidb_proto::v1::{GetSloStatusRequest, GetTargetsRequest};
use akidb_telemetry::aggregator::slo::SloConfig;
use akidb_telemetry::aggregator::{Aggregator, ManualClock, TelemetryApi, parse_targets};
use akidb_testkit::promtool;
use common::{Exposed, serve_fixture};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod common;

const SLO_YAML: &str = include_str!("../../../observability/slo.yaml");

/// A port nothing listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn requests(m: &Metrics, service: &str, method: &str, code: &str, n: u64) {
    m.grpc_server_requests
        .with_label_values(&[service, method, code])
        .inc_by(n);
}

async fn serve_federate(agg: &Arc<Aggregator>) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(akidb_instrumentation::http::serve(
        listener,
        None,
        agg.router(),
        Default::default(),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    fams.iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

/// `promtool check metrics` on `text`, when promtool is installed (else a loud skip of this
/// check, or a failure under `CI=true`). Returns its verdict, or `None` without promtool.
fn promtool(text: &str) -> Option<(bool, String)> {
    let (status, out) = promtool::check_metrics(&promtool::bin()?, text);
    Some((status.success(), out))
}

#[tokio::test]
async fn federates_live_targets_and_hides_dead_ones() {
    let query = Arc::new(Metrics::new(Component::Query));
    requests(&query, "akidb.v1.QueryService", "Search", "OK", 90);
    requests(&query, "akidb.v1.QueryService", "Search", "INTERNAL", 10);
    query
        .grpc_server_duration
        .with_label_values(&["akidb.v1.QueryService", "Search"])
        .observe(0.02);
    let ingest = Arc::new(Metrics::new(Component::Ingest));
    requests(&ingest, "akidb.v1.IngestService", "Upsert", "OK", 7);
    let (q_addr, _q_stop) = serve_fixture(Arc::new(Mutex::new(query))).await;
    let (i_addr, i_stop) = serve_fixture(Arc::new(Mutex::new(ingest))).await;
    let dead = dead_port().await;
    let (q, i, d) = (q_addr.to_string(), i_addr.to_string(), dead.to_string());

    let targets = parse_targets(&format!("query={q},ingest={i},storage={d}")).unwrap();
    // No SLOs here: the akidb_slo_* gauges are process-wide and belong to the next test.
    let agg = Arc::new(Aggregator::new(
        targets,
        SloConfig::from_yaml("slos: []").unwrap(),
        Duration::from_secs(2),
    ));
    let (fed, _fed_stop) = serve_federate(&agg).await;

    let t0 = Instant::now();
    agg.scrape_once().await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a dead port fails fast"
    );
    let (status, ct, text) = get(&format!("http://{fed}/federate")).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let fams = parse(&text).unwrap();

    // Every sample carries service and instance, and they agree with the target.
    let expected_service = |inst: &str| match inst {
        x if x == q => "query",
        x if x == i => "ingest",
        x if x == d => "storage",
        other => panic!("unknown instance {other}"),
    };
    let mut samples = 0;
    for f in &fams {
        for s in &f.samples {
            let inst = s.label("instance").expect("instance label");
            assert_eq!(s.label("service"), Some(expected_service(inst)), "{s:?}");
            samples += 1;
        }
    }
    assert!(samples > 30, "{samples} samples");
    // Each family once, with one TYPE line.
    let mut names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "a family appears twice");
    assert_eq!(
        text.matches("# TYPE akidb_build_info ").count(),
        1,
        "one TYPE per family"
    );

    // up 1/1/0 and a scrape duration for each.
    assert_eq!(value(&fams, "up", &[("service", "query")]), Some(1.0));
    assert_eq!(value(&fams, "up", &[("service", "ingest")]), Some(1.0));
    assert_eq!(value(&fams, "up", &[("service", "storage")]), Some(0.0));
    for svc in ["query", "ingest", "storage"] {
        let d = value(
            &fams,
            "akidb_target_scrape_duration_seconds",
            &[("service", svc)],
        )
        .unwrap();
        assert!((0.0..2.0).contains(&d), "{svc}: {d}");
    }
    // The targets' series, with their values.
    assert_eq!(
        value(
            &fams,
            "akidb_grpc_server_requests_total",
            &[
                ("service", "query"),
                ("instance", &q),
                ("grpc_method", "Search"),
                ("grpc_code", "INTERNAL")
            ]
        ),
        Some(10.0)
    );
    assert_eq!(
        value(
            &fams,
            "akidb_grpc_server_requests_total",
            &[("service", "ingest"), ("grpc_method", "Upsert")]
        ),
        Some(7.0)
    );
    assert_eq!(
        value(
            &fams,
            "akidb_build_info",
            &[("service", "ingest"), ("component", "ingest")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &fams,
            "akidb_grpc_server_request_duration_seconds_bucket",
            &[("service", "query"), ("le", "0.025")]
        ),
        Some(1.0)
    );

    if let Some((ok, out)) = promtool(&text) {
        eprintln!("promtool check metrics: ok={ok} {out}");
        assert!(ok, "promtool check metrics failed:\n{out}\n---\n{text}")
    }

    // GetTargets reports the same, with the dead target's error.
    let api = TelemetryApi {
        aggregator: Arc::clone(&agg),
    };
    let targets = api
        .get_targets(tonic::Request::new(GetTargetsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .targets;
    assert_eq!(targets.len(), 3);
    assert!(targets[0].up && targets[1].up && !targets[2].up);
    assert_eq!(targets[2].service, "storage");
    assert_eq!(targets[2].instance, d);
    assert!(!targets[2].last_error.is_empty());
    assert!(targets[0].last_error.is_empty());

    // Ingest dies: up 0, none of its series stay behind.
    let _ = i_stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    agg.scrape_once().await;
    let (_, _, text) = get(&format!("http://{fed}/federate")).await;
    let fams = parse(&text).unwrap();
    assert_eq!(value(&fams, "up", &[("service", "query")]), Some(1.0));
    assert_eq!(value(&fams, "up", &[("service", "ingest")]), Some(0.0));
    assert_eq!(value(&fams, "up", &[("service", "storage")]), Some(0.0));
    for f in &fams {
        for s in &f.samples {
            if s.label("service") != Some("query") {
                assert!(
                    f.name == "up" || f.name == "akidb_target_scrape_duration_seconds",
                    "stale series of a dead target: {s:?}"
                );
            }
        }
    }
    if let Some((ok, out)) = promtool(&text) {
        assert!(ok, "promtool check metrics failed:\n{out}");
    }
}

#[tokio::test]
async fn slos_follow_the_scraped_counters_across_a_restart() {
    let svc = "akidb.v1.QueryService";
    let q1 = Arc::new(Metrics::new(Component::Query));
    requests(&q1, svc, "Search", "OK", 1000);
    let exposed: Exposed = Arc::new(Mutex::new(Arc::clone(&q1)));
    let (q_addr, _stop) = serve_fixture(Arc::clone(&exposed)).await;
    let clock = Arc::new(ManualClock::default());
    let agg = Arc::new(Aggregator::with_clock(
        parse_targets(&format!("query={q_addr}")).unwrap(),
        SloConfig::from_yaml(SLO_YAML).unwrap(),
        Duration::from_secs(2),
        Arc::clone(&clock),
    ));
    let api = TelemetryApi {
        aggregator: Arc::clone(&agg),
    };
    let status = || async {
        api.get_slo_status(tonic::Request::new(GetSloStatusRequest {}))
            .await
            .unwrap()
            .into_inner()
            .slos
    };

    // t=0: the first scrape is only a baseline.
    agg.scrape_once().await;
    let slos = status().await;
    assert_eq!(slos.len(), 4);
    let avail = slos
        .iter()
        .find(|s| s.name == "query-availability")
        .unwrap();
    assert_eq!(avail.objective, 0.999);
    assert_eq!(avail.period, "30d");
    assert!(
        avail
            .windows
            .iter()
            .all(|w| w.total_events == 0.0 && w.sli == 1.0)
    );
    assert_eq!(avail.error_budget_remaining, 1.0);

    // t=60: 95 good and 5 bad Search calls, 3 caller errors (good), Scroll is not in the SLO.
    requests(&q1, svc, "Search", "OK", 92);
    requests(&q1, svc, "Search", "INVALID_ARGUMENT", 3);
    requests(&q1, svc, "Search", "UNAVAILABLE", 5);
    requests(&q1, svc, "Scroll", "INTERNAL", 50);
    clock.advance(Duration::from_secs(60));
    agg.scrape_once().await;

    // t=120: the service restarted; its new counters hold 20 calls, 2 of them bad.
    let q2 = Arc::new(Metrics::new(Component::Query));
    requests(&q2, svc, "Get", "OK", 18);
    requests(&q2, svc, "Count", "INTERNAL", 2);
    *exposed.lock().unwrap() = q2;
    clock.advance(Duration::from_secs(60));
    agg.scrape_once().await;

    // Over every window: 100 + 20 = 120 events, 7 bad.
    let slos = status().await;
    let avail = slos
        .iter()
        .find(|s| s.name == "query-availability")
        .unwrap();
    let burn = (7.0 / 120.0) / 0.001;
    for w in &avail.windows {
        assert_eq!(
            (w.total_events, w.good_events),
            (120.0, 113.0),
            "{}",
            w.window
        );
        assert!((w.sli - 113.0 / 120.0).abs() < 1e-12);
        assert!((w.burn_rate - burn).abs() < 1e-9, "{}", w.burn_rate);
    }
    assert!((avail.error_budget_remaining - (1.0 - burn)).abs() < 1e-9);
    // 58x the budget rate on every window: page and ticket.
    assert!(avail.page_alert && avail.ticket_alert);
    // The gauges say the same.
    let m = akidb_instrumentation::metrics();
    assert_eq!(
        m.slo_burn_rate
            .with_label_values(&["query-availability", "1h"])
            .get(),
        avail
            .windows
            .iter()
            .find(|w| w.window == "1h")
            .unwrap()
            .burn_rate
    );
    assert_eq!(
        m.slo_alert
            .with_label_values(&["query-availability", "page"])
            .get(),
        1
    );
    // No latency events were observed: SLI 1, no alert.
    let lat = slos.iter().find(|s| s.name == "query-latency").unwrap();
    assert!(
        lat.windows
            .iter()
            .all(|w| w.sli == 1.0 && w.burn_rate == 0.0)
    );
    assert!(!lat.page_alert && !lat.ticket_alert);

    // An hour later without new events, the 5m window is clean and the page stops.
    clock.advance(Duration::from_secs(3600));
    agg.scrape_once().await;
    let slos = status().await;
    let avail = slos
        .iter()
        .find(|s| s.name == "query-availability")
        .unwrap();
    let w5 = avail.windows.iter().find(|w| w.window == "5m").unwrap();
    assert_eq!((w5.total_events, w5.sli), (0.0, 1.0));
    assert!(!avail.page_alert);
    assert!(avail.ticket_alert);
}
