//! Harness for cross-service tests (and `benches/`, which include this file by path): starts
//! the real `akidb` binary as separate processes (`akidb serve <service>`) on free loopback
//! ports and talks gRPC to them. What is not particular to the CLI (ports, tools on PATH,
//! data sets, moto) is in `akidb-testkit`.
#![allow(dead_code)]

use akidb_client::Link;
use akidb_testkit::ports::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_akidb");

pub struct Proc {
    pub name: &'static str,
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// A program that runs `akidb` (e.g. valgrind and its options); empty: run it directly.
    pub wrapper: Vec<String>,
}

impl Proc {
    pub fn start(name: &'static str, args: Vec<String>, log: PathBuf) -> Self {
        Self::start_wrapped(Vec::new(), name, args, log)
    }
    pub fn start_wrapped(
        wrapper: Vec<String>,
        name: &'static str,
        args: Vec<String>,
        log: PathBuf,
    ) -> Self {
        let mut p = Proc {
            name,
            args,
            child: None,
            log,
            wrapper,
        };
        p.spawn();
        p
    }
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .arg("serve")
            .arg(self.name)
            .args(&self.args)
            .env("AKIDB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start akidb");
        self.child = Some(child);
    }
    pub fn signal(&mut self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }
    /// SIGSTOP, returning once every thread of the process is stopped (a signal is
    /// delivered asynchronously; on a busy machine a thread may run on for a moment).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        let Some(c) = &self.child else { return };
        let deadline = Instant::now() + Duration::from_secs(5);
        let stopped = || {
            std::fs::read_dir(format!("/proc/{}/task", c.id()))
                .map(|tasks| {
                    tasks.flatten().all(|t| {
                        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
                            s.rsplit_once(')')
                                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                        })
                    })
                })
                .unwrap_or(true)
        };
        while !stopped() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    /// SIGTERM and the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub storage: Proc,
    pub ingest: Proc,
    pub query: Proc,
    pub storage_addr: String,
    pub ingest_addr: String,
    pub query_addr: String,
    pub storage_metrics: u16,
    pub ingest_metrics: u16,
    pub query_metrics: u16,
    /// Query's REST port (`http` or `https`, as the stack's scheme).
    pub rest_port: u16,
}

/// The CA and certificates of this test process's TLS stacks (`akidb tls init`, once), with
/// this process's calls set to check the services against the CA and to show the operator's
/// client certificate. After the first call, an address without a scheme is `https://` for
/// every call this process makes: a test binary uses only TLS stacks or none.
pub struct Tls {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Tls {
    /// The certificates `akidb tls init --dir <dir>` makes.
    pub fn init(dir: &Path) -> Tls {
        let out = Command::new(BIN)
            .args(["tls", "init", "--dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "akidb tls init: {out:?}");
        Tls {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }

    /// `--tls-cert`, `--tls-key` and `--ca-cert` of a service; with `mtls`, `--tls-client-ca`.
    pub fn service_args(&self, mtls: bool) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        let mut v = vec![
            "--tls-cert".to_string(),
            p(&self.server_cert),
            "--tls-key".into(),
            p(&self.server_key),
            "--ca-cert".into(),
            p(&self.ca),
        ];
        if mtls {
            v.extend(["--tls-client-ca".to_string(), p(&self.ca)]);
        }
        v
    }

    /// An HTTPS client that trusts the CA.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&self.ca).unwrap()).unwrap(),
            )
            .build()
            .unwrap()
    }
}

static TLS: std::sync::OnceLock<(tempfile::TempDir, Tls)> = std::sync::OnceLock::new();

/// This process's TLS (made once; see [`Tls`]).
pub fn tls() -> &'static Tls {
    &TLS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let t = Tls::init(dir.path());
        let client = akidb_instrumentation::tls::ClientTls::from_files(
            Some(&t.ca),
            Some((&t.client_cert, &t.client_key)),
        )
        .unwrap();
        akidb_instrumentation::tls::set_client(client);
        (dir, t)
    })
    .1
}

impl Stack {
    /// storage, ingest and query, all SERVING.
    pub async fn start() -> Stack {
        Self::start_with(&[], &[], &[]).await
    }

    /// [`Stack::start_with`] with TLS on every port and call ([`tls`]); storage asks its
    /// callers for a certificate of the CA (mTLS). Addresses stay without a scheme (`https://`
    /// for this process once [`tls`] ran).
    pub async fn start_tls(
        storage_extra: &[&str],
        ingest_extra: &[&str],
        query_extra: &[&str],
    ) -> Stack {
        let t = tls();
        let with = |extra: &[&str], mtls: bool| -> Vec<String> {
            let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            v.extend(t.service_args(mtls));
            v
        };
        let (s, i, q) = (
            with(storage_extra, true),
            with(ingest_extra, false),
            with(query_extra, false),
        );
        fn r(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        Self::start_inner(&r(&s), &r(&i), &r(&q), |_| Vec::new(), "https").await
    }

    pub async fn start_with(
        storage_extra: &[&str],
        ingest_extra: &[&str],
        query_extra: &[&str],
    ) -> Stack {
        Self::start_wrapped(storage_extra, ingest_extra, query_extra, |_| Vec::new()).await
    }

    /// As [`Stack::start_with`], each service run through `wrapper(service name)`.
    pub async fn start_wrapped(
        storage_extra: &[&str],
        ingest_extra: &[&str],
        query_extra: &[&str],
        wrapper: impl Fn(&str) -> Vec<String>,
    ) -> Stack {
        Self::start_inner(storage_extra, ingest_extra, query_extra, wrapper, "http").await
    }

    async fn start_inner(
        storage_extra: &[&str],
        ingest_extra: &[&str],
        query_extra: &[&str],
        wrapper: impl Fn(&str) -> Vec<String>,
        scheme: &str,
    ) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let (sp, ip, qp) = (free_port(), free_port(), free_port());
        let (sm, im, qm) = (free_port(), free_port(), free_port());
        let rest_port = free_port();
        let storage_addr = format!("127.0.0.1:{sp}");
        let mut sargs: Vec<String> = vec![
            "--grpc-addr".into(),
            storage_addr.clone(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{sm}"),
            "--data-dir".into(),
            dir.path().join("storage").display().to_string(),
        ];
        sargs.extend(storage_extra.iter().map(|s| s.to_string()));
        let storage = Proc::start_wrapped(
            wrapper("storage"),
            "storage",
            sargs,
            dir.path().join("storage.log"),
        );
        let front = |p: u16, m: u16, extra: &[&str]| {
            let mut v: Vec<String> = vec![
                "--grpc-addr".into(),
                format!("127.0.0.1:{p}"),
                "--metrics-addr".into(),
                format!("127.0.0.1:{m}"),
                "--storage-addr".into(),
                format!("{scheme}://{storage_addr}"),
            ];
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        let ingest = Proc::start_wrapped(
            wrapper("ingest"),
            "ingest",
            front(ip, im, ingest_extra),
            dir.path().join("ingest.log"),
        );
        let mut qargs = front(qp, qm, query_extra);
        qargs.extend([
            "--rest-addr".into(),
            format!("127.0.0.1:{rest_port}"),
            "--ingest-addr".into(),
            format!("{scheme}://127.0.0.1:{ip}"),
        ]);
        let query = Proc::start_wrapped(
            wrapper("query"),
            "query",
            qargs,
            dir.path().join("query.log"),
        );
        let s = Stack {
            storage,
            ingest,
            query,
            storage_addr,
            ingest_addr: format!("127.0.0.1:{ip}"),
            query_addr: format!("127.0.0.1:{qp}"),
            storage_metrics: sm,
            ingest_metrics: im,
            query_metrics: qm,
            rest_port,
            dir,
        };
        for a in [&s.storage_addr, &s.ingest_addr, &s.query_addr] {
            wait_serving(a, Duration::from_secs(60)).await;
        }
        s
    }

    pub fn link(addr: &str) -> Link {
        Link::new(addr, Duration::from_secs(10)).unwrap()
    }
    pub fn q(&self) -> Link {
        Self::link(&self.query_addr)
    }
    pub fn i(&self) -> Link {
        Self::link(&self.ingest_addr)
    }

    pub fn logs(&self) -> String {
        ["storage", "ingest", "query"]
            .iter()
            .map(|n| {
                format!(
                    "--- {n} ---\n{}",
                    std::fs::read_to_string(self.dir.path().join(format!("{n}.log")))
                        .unwrap_or_default()
                )
            })
            .collect()
    }
}

/// Collection `name` (8-d, L2) with `n` points, ids 0..n, through query and ingest.
pub async fn create_and_fill(s: &Stack, name: &str, n: u64) {
    use akidb_proto::v1 as pb;
    let q = s.q();
    q.collections()
        .create_collection(q.request(pb::CreateCollectionRequest {
            name: name.into(),
            dimension: 8,
            metric: pb::Metric::L2 as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    let i = s.i();
    let points: Vec<pb::Point> = (0..n)
        .map(|k| pb::Point {
            id: Some(pb::PointId::num(k)),
            vector: (0..8).map(|d| ((k * 7 + d) % 13) as f32).collect(),
            payload: None,
            ..Default::default()
        })
        .collect();
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: name.into(),
            points,
        }))
        .await
        .unwrap();
}

/// The overall grpc.health.v1 status of `addr` ("" service), as its enum name.
pub async fn health(addr: &str) -> String {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let l = Link::new(addr, Duration::from_secs(1)).unwrap();
    match l
        .health()
        .check(l.request(HealthCheckRequest {
            service: String::new(),
        }))
        .await
    {
        Ok(r) => ServingStatus::try_from(r.into_inner().status)
            .map(|s| s.as_str_name().to_string())
            .unwrap_or_default(),
        Err(e) => format!("ERROR {:?}", e.code()),
    }
}

pub async fn wait_health(addr: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let h = health(addr).await;
        if h == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still {h} after {within:?}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_serving(addr: &str, within: Duration) {
    wait_health(addr, "SERVING", within).await
}

/// A telemetry aggregator (`akidb serve telemetry`) scraping `targets`
/// (`service=host:port,...`) every `interval`; returns the process and its gRPC address
/// and HTTP port (`/metrics`, `/federate`).
pub fn start_telemetry(
    dir: &Path,
    targets: &str,
    interval: &str,
    extra: &[&str],
) -> (Proc, String, u16) {
    let (gp, hp) = (free_port(), free_port());
    let mut args: Vec<String> = vec![
        "--grpc-addr".into(),
        format!("127.0.0.1:{gp}"),
        "--metrics-addr".into(),
        format!("127.0.0.1:{hp}"),
        "--scrape-targets".into(),
        targets.replace("{self}", &format!("127.0.0.1:{hp}")),
        "--scrape-interval".into(),
        interval.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let p = Proc::start("telemetry", args, dir.join("telemetry.log"));
    (p, format!("127.0.0.1:{gp}"), hp)
}

/// The body of `GET http://127.0.0.1:<port><path>` (`https://` once [`tls`] ran).
pub async fn get_text(port: u16, path: &str) -> String {
    let (client, scheme) = http_client();
    client
        .get(format!("{scheme}://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// An HTTP client for the services' HTTP ports and its scheme: HTTPS trusting the CA once
/// [`tls`] ran, plain HTTP before.
pub fn http_client() -> (reqwest::Client, &'static str) {
    match TLS.get() {
        Some((_, t)) => (t.http(), "https"),
        None => (reqwest::Client::new(), "http"),
    }
}

pub async fn scrape(port: u16) -> String {
    get_text(port, "/metrics").await
}

/// The value of one series of a `/metrics` text (`name{labels}` exactly as printed).
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
