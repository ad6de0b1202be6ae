//! Every service answers grpc.health.v1 and lists its `akidb.v1` services through server
//! reflection, so grpcurl and any grpcio client can discover it.

mod common;

use akidb_testkit::ports::free_port;
use common::*;
use std::time::Duration;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn list_services(addr: &str) -> Vec<String> {
    let link = Stack::link(addr);
    let mut c = ServerReflectionClient::new(link.channel());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    match resp.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_on_every_service() {
    let s = Stack::start().await;
    let (tg, tm) = (free_port(), free_port());
    let mut telemetry = Proc::start(
        "telemetry",
        vec![
            "--grpc-addr".into(),
            format!("127.0.0.1:{tg}"),
            "--metrics-addr".into(),
            format!("127.0.0.1:{tm}"),
            "--scrape-targets".into(),
            format!(
                "storage=127.0.0.1:{},telemetry=127.0.0.1:{tm}",
                s.storage_metrics
            ),
        ],
        s.dir.path().join("telemetry.log"),
    );
    let telemetry_addr = format!("127.0.0.1:{tg}");
    wait_serving(&telemetry_addr, Duration::from_secs(30)).await;
    for (addr, want) in [
        (
            &s.query_addr,
            &["akidb.v1.QueryService", "akidb.v1.CollectionService"][..],
        ),
        (&s.ingest_addr, &["akidb.v1.IngestService"][..]),
        (
            &s.storage_addr,
            &["akidb.v1.StorageService", "akidb.v1.AdminService"][..],
        ),
        (&telemetry_addr, &["akidb.v1.TelemetryService"][..]),
    ] {
        assert_eq!(health(addr).await, "SERVING", "{addr}");
        let services = list_services(addr).await;
        for w in want {
            assert!(
                services.iter().any(|s| s == w),
                "{addr} lists {services:?}, missing {w}"
            );
        }
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{services:?}"
        );
    }
    assert!(telemetry.stop().unwrap().success());
}
