//! The coordination layer against a real etcd (Debian's `etcd-server`, started per test):
//! compare-and-swap, node leases kept alive, lost while etcd stops answering and taken again,
//! watches, shard maps that only one writer can change.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use akidb_cluster::etcd::{EventType, WatchUpdate};
use akidb_cluster::membership::{self, LeaseState, Membership, NodeInfo};
use akidb_cluster::shardmap::{self, ShardMap};
use akidb_cluster::{Etcd, EtcdError, keys};
use akidb_testkit::etcd::Etcd as EtcdServer;
use tokio_util::sync::CancellationToken;

fn client(server: &EtcdServer) -> Etcd {
    Etcd::new(&server.url, Duration::from_secs(1)).unwrap()
}

async fn wait_for(
    m: &Membership,
    what: &str,
    within: Duration,
    pred: impl Fn(&LeaseState) -> bool,
) -> Duration {
    let start = Instant::now();
    while !pred(&m.state()) {
        assert!(
            start.elapsed() < within,
            "{what} not reached within {within:?}: {:?}",
            m.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn swap_sets_only_from_the_revision_it_names() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    let rev = etcd
        .swap("/t/k", 0, b"one".to_vec(), 0)
        .await
        .unwrap()
        .unwrap();
    // Create-only a second time: refused, with what is there.
    let cur = etcd
        .swap("/t/k", 0, b"two".to_vec(), 0)
        .await
        .unwrap()
        .unwrap_err()
        .unwrap();
    assert_eq!(cur.value, b"one");
    assert_eq!(cur.mod_revision, rev);
    let rev2 = etcd
        .swap("/t/k", rev, b"two".to_vec(), 0)
        .await
        .unwrap()
        .unwrap();
    assert!(rev2 > rev);
    // A stale revision changes nothing.
    assert!(
        etcd.swap("/t/k", rev, b"three".to_vec(), 0)
            .await
            .unwrap()
            .is_err()
    );
    assert_eq!(etcd.get("/t/k").await.unwrap().unwrap().value, b"two");
    let (kvs, _) = etcd.list("/t/").await.unwrap();
    assert_eq!(kvs.len(), 1);
    assert!(etcd.delete("/t/k").await.unwrap());
    assert!(etcd.get("/t/k").await.unwrap().is_none());
}

#[tokio::test]
async fn an_unreachable_etcd_is_unavailable_within_the_deadline_and_names_itself() {
    let port = akidb_testkit::ports::free_port();
    let etcd = Etcd::new(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(500),
    )
    .unwrap();
    let t = Instant::now();
    let err = etcd.get("/x").await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(err, EtcdError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(Etcd::new(" , ", Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn a_node_holds_its_key_while_alive_and_one_process_per_id() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    // Long enough that the first node's renewals never lapse on a loaded machine while the
    // second one waits (the test is about who holds the id, not about losing it).
    let ttl = Duration::from_secs(4);
    let a = Membership::start(etcd.clone(), NodeInfo::new("n1", "127.0.0.1:1"), ttl);
    wait_for(&a, "held", Duration::from_secs(5), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await;
    let nodes = membership::nodes(&etcd).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].0.addr, "127.0.0.1:1");
    let first = a.state();
    // Renewed: the same lease still held after several TTLs (not lost and taken again).
    tokio::time::sleep(ttl * 3).await;
    assert_eq!(a.state(), first, "renewed, never lost");
    assert!(etcd.get(&keys::node("n1")).await.unwrap().is_some());

    // A second process with the same id waits; it never takes over a live lease.
    let b = Membership::start(etcd.clone(), NodeInfo::new("n1", "127.0.0.1:2"), ttl);
    tokio::time::sleep(Duration::from_secs(1)).await;
    match b.state() {
        LeaseState::Joining { why } => assert!(why.contains("--node-id"), "{why}"),
        s => panic!("the second process must wait: {s:?}"),
    }
    // The first leaves (its lease revoked at once): the second takes the id.
    a.leave().await;
    wait_for(&b, "held by the second", Duration::from_secs(5), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await;
    let nodes = membership::nodes(&etcd).await.unwrap();
    assert_eq!(nodes[0].0.addr, "127.0.0.1:2");
    b.leave().await;
    assert!(membership::nodes(&etcd).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_keep_alive_stream_opens_and_each_renewal_gets_its_own_answer() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    let lease = etcd.grant(5).await.unwrap();
    let t = Instant::now();
    let mut ka = etcd.keep_alive(lease).await.expect("the stream opens");
    for _ in 0..3 {
        let ttl = ka.renew().await.expect("an answer");
        assert!(ttl > 0, "ttl {ttl}");
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    etcd.revoke(lease).await.unwrap();
    assert!(
        ka.renew().await.unwrap() <= 0,
        "a revoked lease renews to nothing"
    );
}

#[tokio::test]
async fn a_lease_is_lost_while_etcd_is_silent_and_taken_again_after() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    let ttl = Duration::from_secs(2);
    let m = Membership::start(etcd.clone(), NodeInfo::new("n1", "127.0.0.1:1"), ttl);
    wait_for(&m, "held", Duration::from_secs(5), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await;
    let LeaseState::Held { lease: first } = m.state() else {
        unreachable!()
    };

    // etcd stops answering (SIGSTOP: connections stay open, keep-alives go unanswered).
    server.pause();
    let lost = wait_for(&m, "lost", ttl * 3, |s| {
        matches!(s, LeaseState::Lost { .. })
    })
    .await;
    assert!(lost <= ttl + Duration::from_secs(1), "lost after {lost:?}");
    server.resume();
    // The old lease expired in etcd meanwhile (or is waited out): a new one, the key back.
    wait_for(
        &m,
        "held again",
        ttl * 4,
        |s| matches!(s, LeaseState::Held { lease } if *lease != first),
    )
    .await;
    let kv = etcd
        .get(&keys::node("n1"))
        .await
        .unwrap()
        .expect("node key back");
    assert_ne!(kv.lease, first);
    m.leave().await;
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<WatchUpdate>) -> WatchUpdate {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a watch update within 10 s")
        .expect("watch open")
}

#[tokio::test]
async fn a_watch_lists_then_follows_changes_across_an_etcd_pause() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    etcd.put("/w/a", b"1".to_vec(), 0).await.unwrap();
    let stop = CancellationToken::new();
    let mut rx = etcd.watch("/w/", stop.clone());
    match next(&mut rx).await {
        WatchUpdate::Listed { kvs, .. } => {
            assert_eq!(kvs.len(), 1);
            assert_eq!(kvs[0].key, b"/w/a");
        }
        u => panic!("first a listing: {u:?}"),
    }
    etcd.put("/w/b", b"2".to_vec(), 0).await.unwrap();
    etcd.put("/other", b"x".to_vec(), 0).await.unwrap();
    etcd.delete("/w/a").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next(&mut rx).await {
            WatchUpdate::Changed { events, .. } => {
                for e in events {
                    let kv = e.kv.unwrap();
                    seen.push((e.r#type, String::from_utf8(kv.key).unwrap()));
                }
            }
            u => panic!("changes: {u:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventType::Put as i32, "/w/b".to_string()),
            (EventType::Delete as i32, "/w/a".to_string())
        ]
    );
    // A pause of etcd: changes made after it still arrive, once each.
    server.pause();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.resume();
    etcd.put("/w/c", b"3".to_vec(), 0).await.unwrap();
    let mut after = Vec::new();
    while after.is_empty() {
        match next(&mut rx).await {
            WatchUpdate::Changed { events, .. } => after.extend(
                events
                    .into_iter()
                    .map(|e| String::from_utf8(e.kv.unwrap().key).unwrap()),
            ),
            WatchUpdate::Listed { kvs, .. } => {
                assert!(
                    kvs.iter().all(|kv| kv.key != b"/w/a"),
                    "a deleted key came back"
                );
            }
        }
    }
    assert_eq!(after, vec!["/w/c".to_string()]);
    stop.cancel();
}

#[tokio::test]
async fn only_one_of_two_writers_changes_a_shard_map() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    let nodes: Vec<String> = ["n0", "n1", "n2"].iter().map(|s| s.to_string()).collect();
    let map = ShardMap::place("docs", 4, 2, &nodes);
    let v = shardmap::swap(&etcd, &map, 0).await.unwrap().unwrap();
    assert!(
        shardmap::swap(&etcd, &map, 0).await.unwrap().is_err(),
        "created twice"
    );

    // Two controllers fail over n0 from the same version: one wins, the other sees its result.
    let live: BTreeSet<String> = ["n1", "n2"].iter().map(|s| s.to_string()).collect();
    let mut x = v.value.clone();
    let moved = x.fail_over(&live, &Default::default());
    assert!(!moved.is_empty(), "n0 owns a shard: {map:?}");
    let mut y = v.value.clone();
    y.fail_over(&live, &Default::default());
    let (first, second) = tokio::join!(
        shardmap::swap(&etcd, &x, v.revision),
        shardmap::swap(&etcd, &y, v.revision)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first.is_ok() != second.is_ok(), "exactly one wins");
    let stored = shardmap::load(&etcd, "docs").await.unwrap().unwrap();
    for s in &stored.value.shards {
        let before = v.value.shard(s.id).unwrap();
        if before.owner.as_deref() == Some("n0") {
            assert_eq!(s.epoch, before.epoch + 1, "one takeover, one epoch step");
            assert_ne!(s.owner.as_deref(), Some("n0"));
        } else {
            assert_eq!(s, before);
        }
    }
    assert_eq!(shardmap::load_all(&etcd).await.unwrap().len(), 1);
}

#[tokio::test]
async fn unreadable_values_are_named_not_trusted() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let etcd = client(&server);
    etcd.put(&keys::shard_map("docs"), b"{not json".to_vec(), 0)
        .await
        .unwrap();
    let err = shardmap::load(&etcd, "docs").await.unwrap_err();
    assert!(matches!(err, EtcdError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("/akidb/shardmaps/docs"), "{err}");
    assert!(shardmap::load_all(&etcd).await.is_err());
    // A node key that is not a node is left out of the listing (and logged).
    etcd.put(&keys::node("junk"), b"\xff".to_vec(), 0)
        .await
        .unwrap();
    let m = Membership::start(
        etcd.clone(),
        NodeInfo::new("n1", "127.0.0.1:1"),
        Duration::from_secs(4),
    );
    wait_for(&m, "held", Duration::from_secs(5), |s| {
        matches!(s, LeaseState::Held { .. })
    })
    .await;
    let ids: Vec<String> = membership::nodes(&etcd)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.id)
        .collect();
    assert_eq!(ids, vec!["n1".to_string()]);
    m.leave().await;
}
