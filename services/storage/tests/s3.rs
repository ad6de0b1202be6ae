//! The object layer against a real S3 server (moto).
//!
//! Needs `AKIDB_TEST_MOTO_BIN` (path to `moto_server`; `scripts/s3-test-server env` prints
//! it): without it every test here skips with a loud SKIPPED banner, or fails under
//! `CI=true`. Objects are checked with an independent client, boto3
//! (`akidb_testkit::moto`).
//!
//! Each test starts its own moto_server so that stopping one (SIGSTOP) affects no other.

use akidb_storage::objstore::dlq::{DlqConfig, UploadSource};
use akidb_storage::objstore::{BreakerConfig, BreakerState, RetryConfig};
use akidb_storage::objstore::{
    ErrorKind, ObjectStore, ObjectStoreConfig, S3Settings, S3Store, Secret,
};
use akidb_storage::objstore::{ObjectLayer, ObjectLayerConfig, UploadOutcome};
use akidb_testkit::moto::Moto;
use akidb_testkit::proxy::{Mode, Proxy};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The metrics of a storage process. Every test registers them first: the first use of the
/// process-wide catalogue decides which component's metrics it has, and the tests of this
/// file run at once.
fn storage_metrics() -> &'static akidb_instrumentation::metrics::Metrics {
    akidb_instrumentation::metrics::init_metrics(akidb_instrumentation::Component::Storage)
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ seed)
        .collect()
}

// ---------------------------------------------------------------------------------------
// configuration

fn store_cfg(endpoint: &str, bucket: &str) -> ObjectStoreConfig {
    ObjectStoreConfig {
        endpoint: Some(endpoint.to_string()),
        bucket: bucket.to_string(),
        region: "us-west-2".into(),
        access_key: Secret::new("testing"),
        secret_key: Secret::new("testing"),
        path_style: true,
        timeout_ms: 500,
        connect_timeout_ms: 300,
        part_size: 5 * 1024 * 1024,
        local_dir: None,
    }
}

fn layer_cfg(endpoint: &str, bucket: &str) -> ObjectLayerConfig {
    ObjectLayerConfig {
        store: store_cfg(endpoint, bucket),
        retry: RetryConfig {
            attempts: 2,
            base_ms: 20,
            max_ms: 50,
        },
        breaker: BreakerConfig {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            window_ms: 10_000,
            min_calls: 10,
            open_ms: 1_000,
            max_open_ms: 2_000,
            half_open_probes: 1,
            close_after: 1,
        },
        dlq: DlqConfig {
            dir: None,
            max_entries: 1_000,
            max_bytes: 1 << 30,
            retry_base_ms: 100,
            retry_max_ms: 500,
            poll_ms: 50,
        },
    }
}

async fn wait_drained(layer: &ObjectLayer, within: Duration) {
    let t = Instant::now();
    while layer.dlq.depth() > 0 {
        assert!(
            t.elapsed() < within,
            "DLQ did not drain within {within:?}: {:?}, breaker {:?}",
            layer.dlq.list().await,
            layer.breaker_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Upload `n` objects `<prefix><i>` while the store is down; all must be queued, and once the
/// breaker is open they must fail fast. Returns the expected (key -> sha) map.
async fn upload_while_down(
    layer: &ObjectLayer,
    prefix: &str,
    n: u8,
) -> BTreeMap<String, (u64, String)> {
    let mut expected = BTreeMap::new();
    let mut fast = 0;
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let body = data(i, 1000 + i as usize);
        expected.insert(key.clone(), (body.len() as u64, sha(&body)));
        // Open with time to spare: this call must be rejected without touching the network.
        let before = layer.breaker_status();
        let surely_open = before.state == BreakerState::Open
            && before
                .open_until
                .and_then(|u| u.duration_since(std::time::SystemTime::now()).ok())
                .is_some_and(|left| left > Duration::from_millis(300));
        let t = Instant::now();
        let out = layer
            .uploader
            .upload("c", &key, UploadSource::Bytes(Bytes::from(body)))
            .await
            .unwrap();
        let took = t.elapsed();
        // Never hangs: at most 2 attempts x 500 ms timeout plus backoff.
        assert!(took < Duration::from_millis(1_500), "{key} took {took:?}");
        let UploadOutcome::Queued { error, .. } = out else {
            panic!("{key}: expected queued while down, got {out:?}");
        };
        if surely_open {
            assert_eq!(error.kind(), ErrorKind::BreakerOpen, "{error}");
            assert!(
                took < Duration::from_millis(100),
                "rejected slowly: {took:?}"
            );
            fast += 1;
        }
        assert_eq!(layer.dlq.depth(), i as u64 + 1, "DLQ grows while down");
    }
    assert!(fast >= 1, "the breaker never failed a call fast");
    let st = layer.breaker_status();
    assert!(st.opened_total >= 1, "{st:?}");
    assert_ne!(st.state, BreakerState::Closed, "{st:?}");
    expected
}

// ---------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_roundtrip_checked_with_boto3() {
    storage_metrics();
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let bucket = "akidb-roundtrip";
    let cfg = ObjectStoreConfig {
        // moto takes its time over 5 MiB parts on a busy machine.
        timeout_ms: 20_000,
        ..store_cfg(&moto.url(), bucket)
    };
    let dir = tempfile::tempdir().unwrap();
    // `open` creates the missing bucket.
    let store = akidb_storage::objstore::open(&cfg, dir.path())
        .await
        .unwrap();
    assert!(store.is_remote());
    assert_eq!(store.describe(), format!("s3://{bucket} at {}", moto.url()));

    let small = data(1, 9);
    let big = data(2, 11 * 1024 * 1024 + 123); // 3 parts of 5 MiB
    store
        .put("c1/small", Bytes::from(small.clone()))
        .await
        .unwrap();
    store.put("c1/big", Bytes::from(big.clone())).await.unwrap();
    let file = dir.path().join("snap.bin");
    let from_file = data(3, 6 * 1024 * 1024 + 7); // multipart from a file
    std::fs::write(&file, &from_file).unwrap();
    assert_eq!(
        store.put_file("c2/snap", &file).await.unwrap(),
        from_file.len() as u64
    );
    store
        .put("c2/key with spaces+plus", Bytes::from_static(b"odd"))
        .await
        .unwrap();

    // Read back through our client.
    assert_eq!(&store.get("c1/small").await.unwrap()[..], &small[..]);
    assert_eq!(sha(&store.get("c1/big").await.unwrap()), sha(&big));
    let dst = dir.path().join("fetched.bin");
    assert_eq!(
        store.get_to_file("c2/snap", &dst).await.unwrap(),
        from_file.len() as u64
    );
    assert_eq!(sha(&std::fs::read(&dst).unwrap()), sha(&from_file));
    assert_eq!(store.head("c1/big").await.unwrap().size, big.len() as u64);
    assert!(store.exists("c1/small").await.unwrap());
    assert!(!store.exists("c1/none").await.unwrap());
    assert_eq!(
        store.get("c1/none").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let c1: Vec<(String, u64)> = store
        .list("c1/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect();
    assert_eq!(
        c1,
        [
            ("c1/big".to_string(), big.len() as u64),
            ("c1/small".to_string(), 9)
        ]
    );
    assert_eq!(store.list("").await.unwrap().len(), 4);

    // ... and through an independent client.
    let seen = moto.list(bucket, "").await;
    let want: BTreeMap<String, (u64, String)> = [
        ("c1/small", &small[..]),
        ("c1/big", &big[..]),
        ("c2/snap", &from_file[..]),
        ("c2/key with spaces+plus", b"odd"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), (v.len() as u64, sha(v))))
    .collect();
    assert_eq!(seen, want);

    // An object written by boto3 reads back through S3Store.
    moto.put(bucket, "ext/from-boto", b"hello from boto3").await;
    assert_eq!(
        &store.get("ext/from-boto").await.unwrap()[..],
        b"hello from boto3"
    );

    // Listing follows continuation tokens across pages.
    let paged = S3Store::new(S3Settings {
        list_page_size: 2,
        ..S3Settings::from_config(&cfg).unwrap()
    })
    .unwrap();
    let keys: Vec<String> = paged
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        keys,
        [
            "c1/big",
            "c1/small",
            "c2/key with spaces+plus",
            "c2/snap",
            "ext/from-boto"
        ]
    );

    // Delete is idempotent.
    store.delete("c1/small").await.unwrap();
    store.delete("c1/small").await.unwrap();
    assert!(!moto.list(bucket, "c1/").await.contains_key("c1/small"));

    // A create-only put (If-None-Match: *): the first creates, the second leaves it as it was.
    assert!(
        store
            .put_if_absent("c3/log/1", Bytes::from_static(b"first"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_if_absent("c3/log/1", Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(&store.get("c3/log/1").await.unwrap()[..], b"first");
    let (_, sum) = &moto.list(bucket, "c3/").await["c3/log/1"];
    assert_eq!(sum, &sha(b"first"));

    // A bucket that does not exist is a permanent error, not a retryable one.
    let other =
        S3Store::new(S3Settings::from_config(&store_cfg(&moto.url(), "no-such-bucket")).unwrap())
            .unwrap();
    let e = other.put("k", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_when_moto_is_stopped_and_dlq_drains_after() {
    storage_metrics();
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let metrics = storage_metrics();
    let opened_before = metrics
        .breaker_transitions
        .with_label_values(&["open"])
        .get();
    let bucket = "akidb-sigstop";
    let data_dir = tempfile::tempdir().unwrap();
    let cfg = layer_cfg(&moto.url(), bucket);
    let layer = ObjectLayer::start(&cfg, data_dir.path()).await.unwrap();
    assert!(layer.is_remote());

    let up = layer
        .uploader
        .upload(
            "c",
            "before/one",
            UploadSource::Bytes(Bytes::from_static(b"first")),
        )
        .await
        .unwrap();
    assert!(up.is_uploaded(), "{up:?}");

    // Unresponsive server: connections are accepted by the kernel, nothing answers.
    moto.pause();
    let mut expected = upload_while_down(&layer, "down/", 6).await;
    expected.insert("before/one".into(), (5, sha(b"first")));
    assert!(
        metrics
            .breaker_transitions
            .with_label_values(&["open"])
            .get()
            > opened_before,
        "akidb_breaker_transitions_total{{to=\"open\"}} counted"
    );
    let text = String::from_utf8(metrics.render()).unwrap();
    assert!(text.contains("akidb_dlq_depth"), "DLQ metrics exported");
    assert!(text.contains("akidb_breaker_state{state=\"open\"}"));
    assert!(text.contains("outcome=\"rejected\""));

    // Restart the layer while the store is still down: the queue is on disk.
    let queued: Vec<String> = layer.dlq.list().await.into_iter().map(|e| e.key).collect();
    layer.shutdown().await;
    let layer = ObjectLayer::start(&cfg, data_dir.path()).await.unwrap();
    let reloaded: Vec<String> = layer.dlq.list().await.into_iter().map(|e| e.key).collect();
    assert_eq!(reloaded, queued);
    assert_eq!(reloaded.len(), 6);
    assert!(layer.dlq.oldest_age() > Duration::ZERO);

    // The server is back: the worker drains the queue (after the breaker lets probes in).
    moto.resume();
    wait_drained(&layer, Duration::from_secs(20)).await;
    assert_eq!(layer.breaker_status().state, BreakerState::Closed);
    for key in expected.keys() {
        assert!(
            layer.uploader.is_confirmed(key, None).await.unwrap(),
            "{key}"
        );
    }
    assert_eq!(moto.list(bucket, "").await, expected);
    layer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_when_proxy_refuses_connections() {
    storage_metrics();
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    let bucket = "akidb-refuse";
    let data_dir = tempfile::tempdir().unwrap();
    let layer = ObjectLayer::start(&layer_cfg(&proxy.url(), bucket), data_dir.path())
        .await
        .unwrap();
    assert!(
        layer
            .uploader
            .upload(
                "c",
                "ok/0",
                UploadSource::Bytes(Bytes::from_static(b"zero"))
            )
            .await
            .unwrap()
            .is_uploaded()
    );

    proxy.set(Mode::Refuse);
    let mut expected = upload_while_down(&layer, "refused/", 5).await;
    expected.insert("ok/0".into(), (4, sha(b"zero")));
    // Reads fail fast too while open.
    let e = layer.store.get("ok/0").await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::BreakerOpen | ErrorKind::Transient),
        "{e}"
    );

    proxy.set(Mode::Pass);
    wait_drained(&layer, Duration::from_secs(20)).await;
    assert_eq!(moto.list(bucket, "").await, expected);
    assert_eq!(&layer.store.get("ok/0").await.unwrap()[..], b"zero");
    layer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_when_proxy_delays_connections() {
    storage_metrics();
    let Some(moto) = Moto::from_env().await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    let bucket = "akidb-delay";
    let data_dir = tempfile::tempdir().unwrap();
    let layer = ObjectLayer::start(&layer_cfg(&proxy.url(), bucket), data_dir.path())
        .await
        .unwrap();

    // Slower than the 500 ms request timeout: every call times out.
    proxy.set(Mode::Delay(Duration::from_secs(30)));
    let expected = upload_while_down(&layer, "delayed/", 4).await;
    let listed = layer.dlq.list().await;
    assert!(
        listed.iter().any(|e| e.last_error_kind == "transient"),
        "{listed:?}"
    );

    proxy.set(Mode::Pass);
    wait_drained(&layer, Duration::from_secs(20)).await;
    assert_eq!(moto.list(bucket, "").await, expected);
    layer.shutdown().await;
}
