//! The telemetry service as `akidb up` runs it: `run()` on bound listeners, scraping,
//! gRPC (TelemetryService, health), `/federate`, `/metrics`, and a clean stop.

mod common;

use akidb_instrumentation::exposition::parse;
use akidb_instrumentation::lifecycle::Serving;
use akidb_instrumentation::metrics::{Component, Metrics};
use akidb_proto::v1::telemetry_service_client::TelemetryServiceClient;
use akidb_proto::v1::{GetSloStatusRequest, GetTargetsRequest};
use common::serve_fixture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn up(text: &str, service: &str) -> Option<f64> {
    parse(text)
        .unwrap()
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == "up" && s.label("service") == Some(service))
        .map(|s| s.value)
}

#[tokio::test]
async fn the_service_runs_and_stops() {
    let query = Arc::new(Metrics::new(Component::Query));
    let (q_addr, _stop) = serve_fixture(Arc::new(Mutex::new(query))).await;
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    let config = akidb_telemetry::TelemetryConfig {
        scrape_targets: format!("query={q_addr},storage={dead},telemetry={http_addr}")
            .parse()
            .unwrap(),
        scrape_interval: Duration::from_millis(200),
        scrape_timeout: Duration::from_millis(500),
        slo_file: concat!(env!("CARGO_MANIFEST_DIR"), "/../../observability/slo.yaml").into(),
        ..Default::default()
    };
    let (tx, rx) = oneshot::channel::<()>();
    let on = Serving::new(grpc, http, async {
        let _ = rx.await;
    });
    let service = tokio::spawn(akidb_telemetry::run(config, on));

    let mut client = loop {
        match TelemetryServiceClient::connect(format!("http://{grpc_addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // Wait for a scrape that found the aggregator itself up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let targets = loop {
        let t = client
            .get_targets(GetTargetsRequest {})
            .await
            .unwrap()
            .into_inner()
            .targets;
        if t.iter().all(|t| t.last_scrape_duration_seconds > 0.0) && t[2].up {
            break t;
        }
        assert!(Instant::now() < deadline, "no complete scrape: {t:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(targets[0].up && !targets[1].up && targets[2].up);
    let slos = client
        .get_slo_status(GetSloStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .slos;
    assert_eq!(slos.len(), 4);
    assert!(slos.iter().all(|s| s.windows.len() == 8));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "akidb.v1.TelemetryService"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "{service:?} SERVING");
    }

    let (status, text) = get(&format!("http://{http_addr}/federate")).await;
    assert_eq!(status, 200);
    assert_eq!(up(&text, "telemetry"), Some(1.0));
    assert_eq!(up(&text, "storage"), Some(0.0));
    let (status, metrics) = get(&format!("http://{http_addr}/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("akidb_build_info"));

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("run() returns after shutdown")
        .unwrap()
        .unwrap();
}
