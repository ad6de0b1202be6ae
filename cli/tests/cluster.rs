//! Storage nodes in etcd, as separate processes: each registers under its `--node-id` once it
//! serves, `akidb cluster status` lists them, a stopped node leaves at once (its lease
//! revoked), a killed one when its lease expires; flags that do not fit are refused before
//! anything starts.

mod common;

use akidb_testkit::etcd::Etcd as EtcdServer;
use akidb_testkit::ports::free_port;
use common::{BIN, Proc, health, scrape, series_value, wait_serving};
use std::time::{Duration, Instant};

fn node(etcd: &str, id: &str, dir: &std::path::Path, ttl: u64) -> (Proc, String) {
    let (p, addr, _) = node_with_metrics(etcd, id, dir, ttl);
    (p, addr)
}

fn node_with_metrics(etcd: &str, id: &str, dir: &std::path::Path, ttl: u64) -> (Proc, String, u16) {
    let addr = format!("127.0.0.1:{}", free_port());
    let metrics = free_port();
    let args = vec![
        "--grpc-addr".into(),
        addr.clone(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{metrics}"),
        "--data-dir".into(),
        dir.join(id).display().to_string(),
        "--etcd".into(),
        etcd.to_string(),
        "--node-id".into(),
        id.to_string(),
        "--lease-ttl-secs".into(),
        ttl.to_string(),
        // The nodes of a cluster share one object store (their shards' logs are there).
        "--object-dir".into(),
        dir.join("objects").display().to_string(),
    ];
    (
        Proc::start("storage", args, dir.join(format!("{id}.log"))),
        addr,
        metrics,
    )
}

/// `akidb --json cluster status`: node id → address.
fn status(etcd: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new(BIN)
        .args(["--json", "cluster", "status", "--etcd", etcd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["addr"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn wait_nodes(etcd: &str, want: &[&str], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let ids: Vec<String> = status(etcd).into_iter().map(|(id, _)| id).collect();
        if ids == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "nodes {ids:?}, want {want:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn storage_nodes_register_and_leave_the_cluster() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ttl = 3;
    let (mut a, a_addr) = node(&etcd.url, "storage-a", dir.path(), ttl);
    let (mut b, b_addr) = node(&etcd.url, "storage-b", dir.path(), ttl);
    wait_serving(&a_addr, Duration::from_secs(30)).await;
    wait_serving(&b_addr, Duration::from_secs(30)).await;
    wait_nodes(
        &etcd.url,
        &["storage-a", "storage-b"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        status(&etcd.url),
        vec![
            ("storage-a".into(), a_addr.clone()),
            ("storage-b".into(), b_addr)
        ]
    );

    // A clean stop gives the lease back: gone at once, not after the TTL.
    let t = Instant::now();
    assert!(
        a.stop().is_some_and(|s| s.success()),
        "storage-a exits cleanly"
    );
    let gone = wait_nodes(&etcd.url, &["storage-b"], Duration::from_secs(2)).await;
    eprintln!(
        "stopped node gone {:?} after exit ({:?} after SIGTERM)",
        gone,
        t.elapsed()
    );

    // A killed node stays until its lease expires, then goes by itself.
    b.kill();
    assert_eq!(
        status(&etcd.url).len(),
        1,
        "a killed node's lease still runs"
    );
    let gone = wait_nodes(&etcd.url, &[], Duration::from_secs(ttl + 3)).await;
    assert!(
        gone >= Duration::from_secs(1),
        "gone after {gone:?}: before its lease could expire"
    );

    // It comes back under the same id after a restart.
    a.spawn();
    wait_serving(&a_addr, Duration::from_secs(30)).await;
    wait_nodes(&etcd.url, &["storage-a"], Duration::from_secs(10)).await;
}

async fn wait_sample(port: u16, name: &str, want: f64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = series_value(&scrape(port).await, name);
        if got == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{name} = {got:?}, want {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_node_whose_etcd_goes_silent_says_so_keeps_serving_and_rejoins() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ttl = 3;
    let (_n, addr, metrics) = node_with_metrics(&etcd.url, "storage-a", dir.path(), ttl);
    wait_serving(&addr, Duration::from_secs(30)).await;
    wait_sample(
        metrics,
        "akidb_cluster_lease_held",
        1.0,
        Duration::from_secs(10),
    )
    .await;
    let text = scrape(metrics).await;
    assert_eq!(series_value(&text, "akidb_cluster_enabled"), Some(1.0));
    assert_eq!(
        series_value(&text, "akidb_cluster_lease_losses_total"),
        Some(0.0)
    );

    etcd.pause();
    let lost = wait_sample(
        metrics,
        "akidb_cluster_lease_held",
        0.0,
        Duration::from_secs(ttl + 3),
    )
    .await;
    eprintln!("lease reported lost {lost:?} after etcd went silent (TTL {ttl} s)");
    assert_eq!(
        series_value(&scrape(metrics).await, "akidb_cluster_lease_losses_total"),
        Some(1.0)
    );
    // Liveness never depends on etcd: the node still serves.
    assert_eq!(health(&addr).await, "SERVING");
    assert!(
        std::fs::read_to_string(dir.path().join("storage-a.log"))
            .unwrap()
            .contains("node lease lost"),
        "the loss is logged"
    );

    etcd.resume();
    wait_sample(
        metrics,
        "akidb_cluster_lease_held",
        1.0,
        Duration::from_secs(ttl * 3),
    )
    .await;
    wait_nodes(&etcd.url, &["storage-a"], Duration::from_secs(5)).await;
    assert_eq!(
        series_value(&scrape(metrics).await, "akidb_cluster_lease_losses_total"),
        Some(1.0)
    );
}

#[test]
fn cluster_flags_that_do_not_fit_are_refused() {
    for (args, says) in [
        (vec!["--etcd", "http://127.0.0.1:1"], "--node-id"),
        (vec!["--node-id", "n1"], "--etcd"),
        (
            vec!["--etcd", "http://127.0.0.1:1", "--node-id", "Bad/Id"],
            "node id",
        ),
        (
            vec![
                "--etcd",
                "http://127.0.0.1:1",
                "--node-id",
                "n1",
                "--lease-ttl-secs",
                "1",
            ],
            "--lease-ttl-secs",
        ),
        (
            vec![
                "--etcd",
                "http://127.0.0.1:1",
                "--node-id",
                "n1",
                "--shard-snapshot-entries",
                "5",
            ],
            "--shard-snapshot-entries 5 is too small",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(BIN)
            .args([
                "serve",
                "storage",
                "--grpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A node whose object store is not the one the cluster's nodes share refuses to start, saying
/// why: the shards' logs are in the shared store, and a node with its own would take writes
/// no other node sees.
#[tokio::test]
async fn a_node_with_an_object_store_of_its_own_refuses_to_start() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_a, a_addr) = node(&etcd.url, "a", dir.path(), 3);
    wait_serving(&a_addr, Duration::from_secs(60)).await;
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "storage",
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--etcd",
            &etcd.url,
            "--node-id",
            "b",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("b"))
        .arg("--object-dir")
        .arg(dir.path().join("b-objects"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(
        err.contains("is not the one the cluster's nodes share"),
        "{err}"
    );
    // The cluster still has one node.
    let ids: Vec<String> = status(&etcd.url).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["a"]);
}

/// `GetTargets` of the aggregator: (service, instance, up) of every target.
async fn targets(addr: &str) -> Vec<(String, String, bool)> {
    use akidb_proto::v1 as pb;
    let l = common::Stack::link(addr);
    let mut t: Vec<_> = l
        .telemetry()
        .get_targets(l.request(pb::GetTargetsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .targets
        .into_iter()
        .map(|t| (t.service, t.instance, t.up))
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn the_aggregator_finds_storage_nodes_in_etcd_and_drops_those_that_leave() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut a, a_addr, a_metrics) = node_with_metrics(&etcd.url, "storage-a", dir.path(), 3);
    let (_b, b_addr, b_metrics) = node_with_metrics(&etcd.url, "storage-b", dir.path(), 3);
    wait_serving(&a_addr, Duration::from_secs(30)).await;
    wait_serving(&b_addr, Duration::from_secs(30)).await;
    // No storage target given: every one comes from etcd.
    let (_t, t_addr, t_metrics) = common::start_telemetry(
        dir.path(),
        "telemetry={self}",
        "500ms",
        &["--etcd", &etcd.url],
    );
    wait_serving(&t_addr, Duration::from_secs(30)).await;
    let want = |ports: &[u16]| -> Vec<(String, String, bool)> {
        let mut v: Vec<_> = ports
            .iter()
            .map(|p| ("storage".to_string(), format!("127.0.0.1:{p}"), true))
            .collect();
        v.sort();
        v
    };
    let storage_targets = |t: Vec<(String, String, bool)>| -> Vec<(String, String, bool)> {
        t.into_iter().filter(|(s, _, _)| s == "storage").collect()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = storage_targets(targets(&t_addr).await);
        if got == want(&[a_metrics, b_metrics]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both nodes found and scraped: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Federated with each node's instance label.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fed = common::get_text(t_metrics, "/federate").await;
        let has = |p: u16| {
            fed.lines().any(|l| {
                l.starts_with("akidb_cluster_lease_held{")
                    && l.contains("service=\"storage\"")
                    && l.contains(&format!("instance=\"127.0.0.1:{p}\""))
            })
        };
        if has(a_metrics) && has(b_metrics) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "federated series of both nodes:\n{fed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A node that stops leaves etcd at once, and the aggregator's targets with it.
    assert!(a.stop().is_some_and(|s| s.success()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = storage_targets(targets(&t_addr).await);
        if got == want(&[b_metrics]) {
            break;
        }
        assert!(Instant::now() < deadline, "storage-a dropped: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
