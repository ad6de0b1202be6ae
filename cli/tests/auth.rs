//! Keys, roles, TLS and limits against the real binaries: storage, ingest and query as
//! processes with an API key file, an internal key and TLS on every port (storage asks for a
//! client certificate: mTLS). Every refused call must answer the right code and change
//! nothing; no secret may reach a log line or `/metrics`. Every stack of this file runs with
//! TLS ([`common::tls`] makes this process's calls `https://`).

mod common;

use akidb_auth::Role;
use akidb_auth::keys::{KeyFile, load_or_create_internal_key};
use akidb_client::Link;
use akidb_proto::v1 as pb;
use common::*;
use std::time::Duration;
use tonic::Code;
use tonic::metadata::MetadataValue;

/// A request whose metadata holds exactly `headers` (name, value).
fn req<T>(msg: T, headers: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(10));
    for (k, v) in headers {
        r.metadata_mut()
            .append(*k, MetadataValue::try_from(*v).unwrap());
    }
    r
}

fn bearer(k: &str) -> String {
    format!("Bearer {k}")
}

fn search(collection: &str) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.into(),
        vector: vec![0.0; 8],
        k: 3,
        ..Default::default()
    }
}

fn upsert(collection: &str, id: u64) -> pb::UpsertRequest {
    pb::UpsertRequest {
        collection: collection.into(),
        points: vec![pb::Point {
            id: Some(pb::PointId::num(id)),
            vector: vec![1.0; 8],
            payload: None,
            ..Default::default()
        }],
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => {
            assert!(!s.message().contains("akidb_"), "a key in a message: {s:?}");
            s.code()
        }
    }
}

async fn count(q: &Link, admin: &str, collection: &str) -> u64 {
    q.query()
        .count(req(
            pb::CountRequest {
                collection: collection.into(),
                filter: None,
            },
            &[("authorization", &bearer(admin))],
        ))
        .await
        .unwrap()
        .into_inner()
        .count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_roles_hold_against_every_attack() {
    let keys_dir = tempfile::tempdir().unwrap();
    let file = keys_dir.path().join("keys.json");
    let admin = KeyFile::create_key(&file, Role::Admin, vec![]).unwrap();
    let write = KeyFile::create_key(&file, Role::Write, vec![]).unwrap();
    let read = KeyFile::create_key(&file, Role::Read, vec![]).unwrap();
    let scoped = KeyFile::create_key(&file, Role::Write, vec!["mine".into()]).unwrap();
    let internal_file = keys_dir.path().join("internal.key");
    let internal = load_or_create_internal_key(&internal_file).unwrap();
    let (f, i) = (
        file.display().to_string(),
        internal_file.display().to_string(),
    );
    let front = ["--api-keys-file", &f, "--internal-key-file", &i];
    let s = Stack::start_tls(&front, &front, &front).await;
    let q = Stack::link(&s.query_addr);
    let ing = Stack::link(&s.ingest_addr);
    let a = [("authorization", bearer(&admin))];
    let as_admin: Vec<(&'static str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Health needs no key (probes, load balancers).
    assert_eq!(health(&s.query_addr).await, "SERVING");
    assert_eq!(health(&s.storage_addr).await, "SERVING");

    // The admin key creates two collections and fills them.
    for name in ["mine", "theirs"] {
        q.collections()
            .create_collection(req(
                pb::CreateCollectionRequest {
                    name: name.into(),
                    dimension: 8,
                    metric: pb::Metric::L2 as i32,
                    ..Default::default()
                },
                &as_admin,
            ))
            .await
            .unwrap();
        ing.ingest()
            .upsert(req(upsert(name, 1), &as_admin))
            .await
            .unwrap();
    }
    let mut last = read.clone();
    last.pop();
    last.push(if read.ends_with('0') { '1' } else { '0' });
    let unknown = akidb_auth::keys::new_key().1;

    // 1-7: no key, an unknown key, the last byte changed, another scheme, two headers, the
    // key without a scheme, the internal key on a public port: UNAUTHENTICATED, one message.
    let bad: Vec<Vec<(&'static str, String)>> = vec![
        vec![],
        vec![("authorization", bearer(&unknown))],
        vec![("authorization", bearer(&last))],
        vec![("authorization", format!("Basic {read}"))],
        vec![
            ("authorization", bearer(&read)),
            ("authorization", bearer(&read)),
        ],
        vec![("authorization", read.clone())],
        vec![("authorization", bearer(&internal))],
    ];
    for h in &bad {
        let hv: Vec<(&'static str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let e = q
            .query()
            .search(req(search("mine"), &hv))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{h:?}");
        assert_eq!(e.message(), akidb_auth::layer::UNAUTHENTICATED);
        assert_eq!(
            code(ing.ingest().upsert(req(upsert("mine", 99), &hv)).await),
            Code::Unauthenticated
        );
    }
    // 8: forged internal markers change nothing.
    let forged = [
        ("x-internal", "1"),
        ("akidb-untraced", "1"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    assert_eq!(
        code(q.query().search(req(search("mine"), &forged)).await),
        Code::Unauthenticated
    );

    // 9: a read key reads, and may not write.
    let r = [("authorization", bearer(&read))];
    let as_read: Vec<(&'static str, &str)> = r.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        code(q.query().search(req(search("mine"), &as_read)).await),
        Code::Ok
    );
    assert_eq!(
        code(ing.ingest().upsert(req(upsert("mine", 2), &as_read)).await),
        Code::PermissionDenied
    );
    // 10: a write key writes, and may not administer or create.
    let w = [("authorization", bearer(&write))];
    let as_write: Vec<(&'static str, &str)> = w.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        code(ing.ingest().upsert(req(upsert("mine", 3), &as_write)).await),
        Code::Ok
    );
    assert_eq!(
        code(
            q.admin()
                .dlq_purge(req(
                    pb::DlqPurgeRequest {
                        id: String::new(),
                        all: true
                    },
                    &as_write
                ))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            q.collections()
                .create_collection(req(
                    pb::CreateCollectionRequest {
                        name: "made-by-write".into(),
                        dimension: 8,
                        metric: pb::Metric::L2 as i32,
                        ..Default::default()
                    },
                    &as_write
                ))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            q.collections()
                .delete_collection(req(
                    pb::DeleteCollectionRequest {
                        name: "theirs".into()
                    },
                    &as_write
                ))
                .await
        ),
        Code::PermissionDenied
    );

    // 11: a key limited to `mine`: the other collection is refused, List shows only `mine`.
    let sc = [("authorization", bearer(&scoped))];
    let as_scoped: Vec<(&'static str, &str)> = sc.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        code(q.query().search(req(search("mine"), &as_scoped)).await),
        Code::Ok
    );
    assert_eq!(
        code(q.query().search(req(search("theirs"), &as_scoped)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            ing.ingest()
                .upsert(req(upsert("theirs", 4), &as_scoped))
                .await
        ),
        Code::PermissionDenied
    );
    let batch = pb::SearchBatchRequest {
        searches: vec![search("mine"), search("theirs")],
    };
    assert_eq!(
        code(q.query().search_batch(req(batch, &as_scoped)).await),
        Code::PermissionDenied
    );
    let listed = q
        .collections()
        .list_collections(req(pb::ListCollectionsRequest {}, &as_scoped))
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(
        listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["mine"]
    );

    // 12: storage takes no public key, no key, and no forged marker: only the internal one.
    let st = Stack::link(&s.storage_addr);
    for h in [as_admin.clone(), vec![], forged.to_vec()] {
        assert_eq!(
            code(
                st.storage()
                    .delete_collection(req(
                        pb::DeleteCollectionRequest {
                            name: "theirs".into()
                        },
                        &h
                    ))
                    .await
            ),
            Code::Unauthenticated,
            "{h:?}"
        );
        assert_eq!(
            code(
                st.admin()
                    .dlq_purge(req(
                        pb::DlqPurgeRequest {
                            id: String::new(),
                            all: true
                        },
                        &h
                    ))
                    .await
            ),
            Code::Unauthenticated
        );
    }
    let ib = bearer(&internal);
    assert_eq!(
        code(
            st.storage()
                .count(req(
                    pb::CountRequest {
                        collection: "theirs".into(),
                        filter: None
                    },
                    &[("authorization", ib.as_str())]
                ))
                .await
        ),
        Code::Ok
    );

    // 13: names that try to leave the data directory: refused before storage.
    for name in ["../x", "%2e%2e%2f", "a\0b", &"a".repeat(300), "a/b", "."] {
        let r = q
            .collections()
            .create_collection(req(
                pb::CreateCollectionRequest {
                    name: name.into(),
                    dimension: 8,
                    metric: pb::Metric::L2 as i32,
                    ..Default::default()
                },
                &as_admin,
            ))
            .await;
        assert_eq!(code(r), Code::InvalidArgument, "{name:?}");
    }
    let dirs: Vec<String> = std::fs::read_dir(s.dir.path().join("storage/collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut dirs_sorted = dirs.clone();
    dirs_sorted.sort();
    assert_eq!(dirs_sorted, ["mine", "theirs"], "nothing else was created");
    assert!(!s.dir.path().join("storage/x").exists() && !s.dir.path().join("x").exists());

    // Nothing refused changed anything: counts as the allowed writes left them.
    assert_eq!(count(&q, &admin, "mine").await, 2, "ids 1 and 3");
    assert_eq!(count(&q, &admin, "theirs").await, 1);

    // 14: PUT /tracing needs an admin key; GET shows the settings.
    let (http, scheme) = http_client();
    let put = |key: Option<&str>| {
        let mut r = http.put(format!(
            "{scheme}://127.0.0.1:{}/tracing?sample_ratio=1",
            s.query_metrics
        ));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(put(None).await.unwrap().status(), 403);
    assert_eq!(put(Some(&read)).await.unwrap().status(), 403);
    assert_eq!(put(Some(&unknown)).await.unwrap().status(), 403);
    let settings = get_text(s.query_metrics, "/tracing").await;
    assert!(
        settings.contains("\"sample_ratio\":0.05"),
        "unchanged: {settings}"
    );
    assert_eq!(put(Some(&admin)).await.unwrap().status(), 200);
    assert!(
        get_text(s.query_metrics, "/tracing")
            .await
            .contains("\"sample_ratio\":1")
    );

    // 15: rotation: a new key works at once, the revoked one no longer.
    let fresh = KeyFile::create_key(&file, Role::Read, vec![]).unwrap();
    KeyFile::revoke_key(&file, akidb_auth::keys::key_id(&read).unwrap()).unwrap();
    let fresh_h = [("authorization", bearer(&fresh))];
    let as_fresh: Vec<(&'static str, &str)> =
        fresh_h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let new_ok = code(q.query().search(req(search("mine"), &as_fresh)).await) == Code::Ok;
        let old_out =
            code(q.query().search(req(search("mine"), &as_read)).await) == Code::Unauthenticated;
        if new_ok && old_out {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "keys not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 16: audit lines and the counter; no secret in any log or on /metrics.
    let m = scrape(s.query_metrics).await;
    for outcome in ["allowed", "unauthenticated", "denied"] {
        let v = series_value(
            &m,
            &format!("akidb_auth_requests_total{{outcome=\"{outcome}\"}}"),
        )
        .unwrap_or(0.0);
        assert!(v >= 1.0, "{outcome}: {v}");
    }
    let logs = s.logs();
    assert!(
        logs.lines().any(|l| l.contains("akidb_audit")
            && l.contains("CreateCollection")
            && l.contains(akidb_auth::keys::key_id(&admin).unwrap())),
        "{logs}"
    );
    assert!(logs.contains("DlqPurge") && logs.contains("outcome=\"denied\""));
    let mut all_metrics = m;
    for p in [s.storage_metrics, s.ingest_metrics] {
        all_metrics.push_str(&scrape(p).await);
    }
    for secret in [&admin, &write, &read, &scoped, &internal, &fresh, &unknown] {
        let tail = &secret[secret.len() - 32..];
        assert!(!logs.contains(tail), "a key in the logs");
        assert!(!all_metrics.contains(tail), "a key on /metrics");
    }

    // 17-25: TLS. Each refused connection leaves the services serving and the data as it was.
    tls_attacks(&s).await;
    let logs = s.logs();
    assert!(!logs.contains("PRIVATE KEY"), "a private key in the logs");
    for pem in [&tls().server_key, &tls().client_key] {
        let key = std::fs::read_to_string(pem).unwrap();
        let body = key.lines().nth(1).unwrap();
        assert!(!logs.contains(body), "a private key in the logs");
    }
    assert_eq!(count(&q, &admin, "mine").await, 2);
    assert_eq!(count(&q, &admin, "theirs").await, 1);
    for a in [&s.storage_addr, &s.ingest_addr, &s.query_addr] {
        assert_eq!(health(a).await, "SERVING", "{a}");
    }
}

/// A health check (no key needed) over a channel of the test's making: Ok when the TLS
/// handshake and the call went through.
async fn check_over(
    url: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> Result<(), String> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut ep = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(t) = tls {
        ep = ep.tls_config(t).unwrap();
    }
    let ch = ep.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(ch)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("{:?}: {}", e.code(), e.message()))
}

/// How long the server took to close a connection that sends `bytes` and then nothing;
/// None if still open after `within`.
async fn closed_after(port_addr: &str, bytes: &[u8], within: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t0 = std::time::Instant::now();
    let mut c = tokio::net::TcpStream::connect(port_addr).await.unwrap();
    c.write_all(bytes).await.unwrap();
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end)
        .await
        .ok()
        .map(|_| t0.elapsed())
}

async fn tls_attacks(s: &Stack) {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let t = tls();
    let pem = |p: &std::path::PathBuf| std::fs::read(p).unwrap();
    let ca = || Certificate::from_pem(pem(&t.ca));
    let https = |addr: &str| format!("https://{addr}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = Tls::init(other_dir.path());

    // The right CA, name and (for storage) client certificate get through.
    let good = || {
        ClientTlsConfig::new()
            .ca_certificate(ca())
            .identity(Identity::from_pem(pem(&t.client_cert), pem(&t.client_key)))
    };
    check_over(https(&s.query_addr), Some(good()))
        .await
        .unwrap();
    check_over(https(&s.storage_addr), Some(good()))
        .await
        .unwrap();

    // 17: plaintext gRPC to a TLS port.
    let e = check_over(format!("http://{}", s.query_addr), None).await;
    assert!(e.is_err(), "plaintext call to a TLS port answered: {e:?}");
    // 18: plaintext HTTP to a TLS HTTP port.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", s.query_metrics))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(r.is_err(), "plaintext /metrics answered: {r:?}");
    // 19: a client that trusts another CA refuses the services' certificate.
    let e = check_over(
        https(&s.query_addr),
        Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(&other.ca)))),
    )
    .await;
    assert!(
        e.is_err(),
        "a certificate of an untrusted CA was accepted: {e:?}"
    );
    // 20: a name the certificate is not for is refused (server-name check).
    let e = check_over(
        https(&s.query_addr),
        Some(
            ClientTlsConfig::new()
                .ca_certificate(ca())
                .domain_name("db.example.com"),
        ),
    )
    .await;
    assert!(
        e.is_err(),
        "a certificate for another name was accepted: {e:?}"
    );
    // 21: storage (mTLS) without a client certificate.
    let e = check_over(
        https(&s.storage_addr),
        Some(ClientTlsConfig::new().ca_certificate(ca())),
    )
    .await;
    assert!(
        e.is_err(),
        "storage took a caller without a certificate: {e:?}"
    );
    // 22: storage with a client certificate of another CA.
    let e = check_over(
        https(&s.storage_addr),
        Some(
            ClientTlsConfig::new()
                .ca_certificate(ca())
                .identity(Identity::from_pem(
                    pem(&other.client_cert),
                    pem(&other.client_key),
                )),
        ),
    )
    .await;
    assert!(
        e.is_err(),
        "storage took a certificate of another CA: {e:?}"
    );
    // 23: HTTPS /metrics with the CA works (and the query port's TLS stays up).
    let (http, scheme) = http_client();
    assert_eq!(scheme, "https");
    let m = http
        .get(format!("https://127.0.0.1:{}/metrics", s.query_metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    // 24-25: a client that opens a connection and stalls (no handshake, or half a request
    // line) is cut off within the 10 s handshake timeout, on the gRPC and the HTTP port.
    let stalled = [
        (s.query_addr.clone(), &b""[..]),
        (
            format!("127.0.0.1:{}", s.query_metrics),
            &b"\x16\x03\x01"[..],
        ),
        (s.storage_addr.clone(), &b"\x16\x03"[..]),
    ];
    let took = futures::future::join_all(
        stalled
            .iter()
            .map(|(port, bytes)| closed_after(port, bytes, Duration::from_secs(20))),
    )
    .await;
    for ((port, _), took) in stalled.iter().zip(took) {
        assert!(
            took.is_some_and(|d| d >= Duration::from_secs(8)),
            "{port}: a stalled connection closed after {took:?}"
        );
    }
    // A stalled connection held nobody else up.
    check_over(https(&s.query_addr), Some(good()))
        .await
        .unwrap();
}

#[test]
fn no_service_listens_beyond_loopback_without_keys() {
    for service in ["storage", "ingest", "query", "telemetry"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(BIN);
        cmd.args([
            "serve",
            service,
            "--grpc-addr",
            "0.0.0.0:0",
            "--metrics-addr",
        ])
        .arg(format!("127.0.0.1:{}", akidb_testkit::ports::free_port()));
        if service == "storage" {
            cmd.arg("--data-dir").arg(dir.path());
        }
        let out = cmd
            .env_remove("AKIDB_API_KEYS_FILE")
            .env_remove("AKIDB_INTERNAL_KEY_FILE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{service} started: {err}");
        assert!(
            err.contains("without API keys") && err.contains("akidb keys create"),
            "{service}: {err}"
        );
    }
}

/// `r` is INVALID_ARGUMENT with a message that `says` something.
fn invalid<T: std::fmt::Debug>(r: Result<T, tonic::Status>, what: &str, says: &str) {
    let s = r.expect_err(what);
    assert_eq!(s.code(), Code::InvalidArgument, "{what}: {s:?}");
    assert!(s.message().contains(says), "{what}: {s:?}");
}

/// `levels` filters, each the only condition of the one above it.
fn nested_filter(levels: usize) -> pb::Filter {
    let mut f = pb::Filter::default();
    for _ in 1..levels {
        f = pb::Filter {
            must: vec![pb::Condition {
                condition: Some(pb::condition::Condition::Filter(f)),
            }],
            ..Default::default()
        };
    }
    f
}

/// Every limit of the API against the real binaries with keys on: a deep or wide filter, an
/// oversized message, a huge `grpc-timeout`, a key over its rate. Each answers its code, and
/// nothing changes. Runs on threads with large stacks: encoding a 10,000-level filter recurses.
#[test]
fn limits_hold_against_abuse() {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(256 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(limits())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn limits() {
    let keys_dir = tempfile::tempdir().unwrap();
    let file = keys_dir.path().join("keys.json");
    let admin = KeyFile::create_key(&file, Role::Admin, vec![]).unwrap();
    let slow = KeyFile::create_key_with_rate(&file, Role::Read, vec![], Some(5)).unwrap();
    let internal_file = keys_dir.path().join("internal.key");
    load_or_create_internal_key(&internal_file).unwrap();
    let (f, i) = (
        file.display().to_string(),
        internal_file.display().to_string(),
    );
    let max = "4194304";
    let front = [
        "--api-keys-file",
        &f,
        "--internal-key-file",
        &i,
        "--max-message-bytes",
        max,
    ];
    let s = Stack::start_tls(&front[..4], &front, &front).await;
    let (q, ing) = (Stack::link(&s.query_addr), Stack::link(&s.ingest_addr));
    let ah = bearer(&admin);
    let a: &[(&'static str, &str)] = &[("authorization", &ah)];
    q.collections()
        .create_collection(req(
            pb::CreateCollectionRequest {
                name: "c".into(),
                dimension: 8,
                metric: pb::Metric::L2 as i32,
                ..Default::default()
            },
            a,
        ))
        .await
        .unwrap();
    for id in 0..10 {
        ing.ingest().upsert(req(upsert("c", id), a)).await.unwrap();
    }
    assert_eq!(count(&q, &admin, "c").await, 10);

    // 1: a filter 10,000 levels deep: refused by the decoder (prost stops at 100 levels) as
    // INVALID_ARGUMENT, on search, count and a filtered delete.
    let deep = nested_filter(10_000);
    let mut sr = search("c");
    sr.filter = Some(deep.clone());
    invalid(
        q.query().search(req(sr, a)).await,
        "deep search",
        "not a valid akidb.v1 message",
    );
    let deep_delete = pb::DeleteRequest {
        collection: "c".into(),
        filter: Some(deep),
        ..Default::default()
    };
    invalid(
        ing.ingest().delete(req(deep_delete, a)).await,
        "deep delete",
        "not a valid",
    );
    // 17 levels decode but are over the filter depth limit.
    invalid(
        q.query()
            .count(req(
                pb::CountRequest {
                    collection: "c".into(),
                    filter: Some(nested_filter(17)),
                },
                a,
            ))
            .await,
        "17 levels",
        "nested deeper than 16",
    );

    // 2: 100,000 `should` conditions: over the condition limit, before any point is read.
    let wide = pb::Filter {
        should: (0..100_000u64)
            .map(|id| pb::Condition {
                condition: Some(pb::condition::Condition::HasId(pb::HasIdCondition {
                    ids: vec![pb::PointId::num(id)],
                })),
            })
            .collect(),
        ..Default::default()
    };
    let mut sr = search("c");
    sr.filter = Some(wide.clone());
    invalid(
        q.query().search(req(sr, a)).await,
        "wide search",
        "more than 1024 conditions",
    );
    invalid(
        ing.ingest()
            .delete(req(
                pb::DeleteRequest {
                    collection: "c".into(),
                    filter: Some(wide),
                    ..Default::default()
                },
                a,
            ))
            .await,
        "wide delete",
        "more than 1024 conditions",
    );

    // 3: messages over --max-message-bytes (4 MiB here): RESOURCE_EXHAUSTED, with the sizes.
    let mut big = search("c");
    big.vector = vec![0.5; 1_500_000];
    let r = q.query().search(req(big, a)).await.unwrap_err();
    assert_eq!(r.code(), Code::ResourceExhausted, "{r:?}");
    assert!(r.message().contains("4194304"), "{r:?}");
    let huge_upsert = pb::UpsertRequest {
        collection: "c".into(),
        points: (0..100_000)
            .map(|id| pb::Point {
                id: Some(pb::PointId::num(100 + id)),
                vector: vec![1.0; 8],
                payload: None,
                ..Default::default()
            })
            .collect(),
    };
    let r = ing.ingest().upsert(req(huge_upsert, a)).await.unwrap_err();
    assert_eq!(r.code(), Code::ResourceExhausted, "{r:?}");

    // 4: a huge or malformed grpc-timeout: served (the front doors cap what they forward at
    // ten minutes), no panic, no overflow; a zero one expires (tonic answers CANCELLED).
    fn expired_or_ok<T>(r: &Result<T, tonic::Status>) -> bool {
        r.as_ref().map_or_else(
            |s| matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled),
            |_| true,
        )
    }
    for t in ["99999999H", "99999999S", "0n", "xyz", "-1S"] {
        let h: &[(&'static str, &str)] = &[("authorization", &ah), ("grpc-timeout", t)];
        let mut r = tonic::Request::new(pb::FlushRequest {
            collection: "c".into(),
            ..Default::default()
        });
        for (k, v) in h {
            r.metadata_mut()
                .insert(*k, MetadataValue::try_from(*v).unwrap());
        }
        let got = ing.ingest().flush(r).await;
        assert!(expired_or_ok(&got), "{t}: {got:?}");
        let mut r = tonic::Request::new(pb::TierStatusRequest::default());
        for (k, v) in h {
            r.metadata_mut()
                .insert(*k, MetadataValue::try_from(*v).unwrap());
        }
        let got = q.admin().tier_status(r).await;
        assert!(expired_or_ok(&got), "{t}: {got:?}");
    }

    // 5: a key with a rate of 5 calls/s: a burst of 5, then RESOURCE_EXHAUSTED with a
    // retry-after-ms hint; after the hint it is served again. Other keys are not slowed.
    let sh = bearer(&slow);
    let sl: &[(&'static str, &str)] = &[("authorization", &sh)];
    let mut served = 0;
    let mut refused = None;
    for _ in 0..20 {
        match q.query().search(req(search("c"), sl)).await {
            Ok(_) => served += 1,
            Err(s) => {
                refused = Some(s);
                break;
            }
        }
    }
    let refused = refused.expect("the rate limit never refused");
    assert!((1..=6).contains(&served), "{served} served");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let hint: u64 = refused
        .metadata()
        .get("retry-after-ms")
        .expect("a retry-after-ms hint")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1000).contains(&hint), "{hint}");
    assert!(refused.message().contains("retry in"), "{refused:?}");
    assert!(!refused.message().contains(&slow[slow.len() - 16..]));
    for _ in 0..20 {
        q.query().search(req(search("c"), a)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(hint + 50)).await;
    q.query().search(req(search("c"), sl)).await.unwrap();
    let m = scrape(s.query_metrics).await;
    assert!(
        series_value(&m, "akidb_auth_requests_total{outcome=\"rate_limited\"}").unwrap_or(0.0)
            >= 1.0,
        "rate_limited not counted"
    );

    // Nothing refused changed anything, and every service still serves.
    assert_eq!(count(&q, &admin, "c").await, 10);
    for addr in [&s.storage_addr, &s.ingest_addr, &s.query_addr] {
        assert_eq!(health(addr).await, "SERVING");
    }
    let logs = s.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    for secret in [&admin, &slow] {
        assert!(
            !logs.contains(&secret[secret.len() - 32..]),
            "a key in the logs"
        );
    }
}
