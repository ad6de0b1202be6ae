//! `akidb up` as its supervisor dies: a `kill -9` of `akidb up` leaves no service behind
//! holding its ports (each child is told to stop when its parent dies). `akidb up
//! --storage-nodes 2`: a local etcd, two storage nodes, a sharded collection through the
//! front doors, and a clean stop of all of it.

mod common;

use common::{BIN, wait_serving};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Children of `pid`, from `/proc/<pid>/stat` of every process.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if stat(p).is_some_and(|(_, ppid)| ppid == pid) {
            out.push(p);
        }
    }
    out
}

/// (state, parent pid) of `pid`, if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// A port offset whose ports (the eight of one node, a second storage node's and etcd's) are
/// all free now.
fn free_offset() -> u16 {
    let base = [
        50051u16, 50052, 50053, 50054, 9100, 9101, 9102, 9103, 50061, 9111, 2379, 2380,
    ];
    for _ in 0..200 {
        let off = 1000 + rand::random::<u16>() % 9000;
        if base
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p + off)).is_ok())
        {
            return off;
        }
    }
    panic!("no free port offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_up_leaves_no_service_behind() {
    let dir = tempfile::tempdir().unwrap();
    let off = free_offset();
    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let mut up = Command::new(BIN)
        .args(["up", "--port-offset", &off.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    for port in [50051, 50052, 50053] {
        wait_serving(
            &format!("127.0.0.1:{}", port + off),
            Duration::from_secs(60),
        )
        .await;
    }
    let kids = children(up.id());
    assert_eq!(kids.len(), 4, "akidb up should run four services: {kids:?}");
    up.kill().unwrap(); // SIGKILL: nothing of `up` runs after this
    up.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Gone, or a zombie nobody reaped yet (it holds no port).
        let alive: Vec<u32> = kids
            .iter()
            .copied()
            .filter(|&p| stat(p).is_some_and(|(state, _)| state != 'Z'))
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "services still running 10 s after akidb up was killed: {alive:?}\n{}",
            std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Their ports are free again.
    for p in [50051u16, 50052, 50053, 50054] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", p + off)).is_ok(),
            "port {} still taken",
            p + off
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_cluster_of_storage_nodes_and_stops_it_cleanly() {
    use akidb_proto::v1 as pb;
    if akidb_testkit::etcd::Etcd::bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let off = free_offset();
    let log_path = dir.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut up = Command::new(BIN)
        .args([
            "up",
            "--storage-nodes",
            "2",
            "--replication",
            "2",
            "--port-offset",
            &off.to_string(),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let at = |p: u16| format!("127.0.0.1:{}", p + off);
    for port in [50051, 50052, 50053, 50061] {
        wait_serving(&at(port), Duration::from_secs(60)).await;
    }
    let etcd = format!("http://127.0.0.1:{}", 2379 + off);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(BIN)
            .args(["--json", "cluster", "status", "--etcd", &etcd])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["nodes"].as_array().map_or(0, |n| n.len()) == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "two nodes in etcd: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The aggregator found both storage nodes in etcd.
    let t = common::Stack::link(&at(50054));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let storage = t
            .telemetry()
            .get_targets(t.request(pb::GetTargetsRequest {}))
            .await
            .map(|r| {
                r.into_inner()
                    .targets
                    .iter()
                    .filter(|t| t.service == "storage")
                    .count()
            })
            .unwrap_or(0);
        if storage == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{storage} storage targets, want 2"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let q = common::Stack::link(&at(50051));
    let i = common::Stack::link(&at(50052));
    q.collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: "docs".into(),
            dimension: 4,
            metric: pb::Metric::Cosine as i32,
            shards: 4,
            ..Default::default()
        }))
        .await
        .unwrap();
    let points = (0..200u64)
        .map(|k| pb::Point {
            id: Some(pb::PointId::num(k)),
            vector: vec![1.0, k as f32, 2.0, 0.5],
            payload: None,
            ..Default::default()
        })
        .collect();
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "docs".into(),
            points,
        }))
        .await
        .unwrap();
    let info = q
        .collections()
        .get_collection(q.request(pb::GetCollectionRequest {
            name: "docs".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    assert_eq!(
        (info.shards, info.replication, info.point_count),
        (4, 2, 200)
    );
    // Two copies of each shard on two nodes: each node holds every shard (a follower makes
    // its copy within a moment of being given it).
    for port in [50053, 50061] {
        let l = common::Stack::link(&at(port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let held = l
                .storage()
                .list_collections(l.request(pb::ListCollectionsRequest {}))
                .await
                .unwrap()
                .into_inner()
                .collections;
            if held.len() == 4 {
                break;
            }
            assert!(Instant::now() < deadline, "node at {}: {held:?}", at(port));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Ctrl-C: every service, then etcd, stops cleanly.
    unsafe {
        libc::kill(up.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = up.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "akidb up did not stop within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{status}\n{log}");
    for name in ["storage-0", "storage-1", "etcd"] {
        assert!(
            log.contains(&format!("{name} stopped cleanly")),
            "{name}:\n{log}"
        );
    }
}
