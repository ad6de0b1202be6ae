//! `akidb up` as its supervisor dies: a `kill -9` of `akidb up` leaves no service behind
//! holding its ports (each child is told to stop when its parent dies).

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

/// A port offset whose eight ports are all free now.
fn free_offset() -> u16 {
    let base = [50051u16, 50052, 50053, 50054, 9100, 9101, 9102, 9103];
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
