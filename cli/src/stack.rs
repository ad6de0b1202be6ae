//! The local stack: storage, ingest, query and telemetry as child processes of this binary
//! (`akidb serve <service>`), their ports and arguments, and how each is spawned. `akidb up`
//! starts and supervises one; `akidb bench --start` starts one of its own.

use anyhow::Context;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The gRPC and metrics ports of one service.
#[derive(Debug, Clone, Copy)]
pub struct ServicePorts {
    /// Its API (and grpc.health.v1).
    pub grpc: u16,
    /// `/metrics` (and `/tracing`; the aggregator's `/federate`).
    pub metrics: u16,
}

/// Where the services of a stack listen.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The interface every service listens on.
    pub host: String,
    pub query: ServicePorts,
    pub ingest: ServicePorts,
    /// The storage node (the first one of a cluster).
    pub storage: ServicePorts,
    pub telemetry: ServicePorts,
    /// Storage nodes 1, 2, ... of a cluster (node 0 is `storage`).
    more_storage: Vec<ServicePorts>,
    /// The local etcd of a cluster: client and peer port.
    pub etcd: (u16, u16),
    /// Query's REST/JSON port.
    pub rest: u16,
}

impl Ports {
    /// The default ports (gRPC 50051-50054, metrics 9100-9103, REST 8080) plus `offset`, on
    /// `host`.
    pub fn fixed(host: &str, offset: u16) -> Ports {
        let p = |grpc: u16, metrics: u16| ServicePorts {
            grpc: grpc + offset,
            metrics: metrics + offset,
        };
        Ports {
            host: host.to_string(),
            query: p(50051, 9101),
            ingest: p(50052, 9102),
            storage: p(50053, 9103),
            telemetry: p(50054, 9100),
            // Storage node i at gRPC 50060 + i, metrics 9110 + i; etcd at 2379 and 2380.
            more_storage: (1..MAX_STORAGE_NODES as u16)
                .map(|i| p(50060 + i, 9110 + i))
                .collect(),
            etcd: (2379 + offset, 2380 + offset),
            rest: 8080 + offset,
        }
    }

    /// Storage node `i` of a cluster (`i` below [`MAX_STORAGE_NODES`], and below the count
    /// [`Ports::free`] was asked for).
    pub fn storage_node(&self, i: usize) -> ServicePorts {
        match i {
            0 => self.storage,
            i => self.more_storage[i - 1],
        }
    }

    /// Ports free on 127.0.0.1 right now, for a stack of `storage_nodes` storage nodes (at
    /// least one): a stack beside any other.
    pub fn free(storage_nodes: usize) -> anyhow::Result<Ports> {
        let p = || -> anyhow::Result<ServicePorts> {
            Ok(ServicePorts {
                grpc: free_port()?,
                metrics: free_port()?,
            })
        };
        Ok(Ports {
            host: "127.0.0.1".into(),
            query: p()?,
            ingest: p()?,
            storage: p()?,
            telemetry: p()?,
            more_storage: (1..storage_nodes.max(1))
                .map(|_| p())
                .collect::<anyhow::Result<_>>()?,
            etcd: (free_port()?, free_port()?),
            rest: free_port()?,
        })
    }

    /// `host:port`.
    pub fn addr(&self, port: u16) -> String {
        format!("{}:{port}", self.host)
    }
}

/// Most storage nodes of a stack on one machine.
pub const MAX_STORAGE_NODES: usize = 32;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What to start.
pub struct Plan {
    /// Storage keeps its WAL, segments, snapshots and local object store in
    /// `<data_dir>/storage`.
    pub data_dir: PathBuf,
    pub ports: Ports,
    /// Appended to storage's arguments.
    pub storage_args: Vec<String>,
    /// Appended to query's arguments.
    pub query_args: Vec<String>,
    /// Whether the telemetry aggregator runs too (it scrapes every service's metrics).
    pub telemetry: bool,
    /// Appended to every service's arguments (keys: `--api-keys-file`, `--internal-key-file`).
    pub common_args: Vec<String>,
    /// TLS on every port and call: every service serves with the server certificate and
    /// checks its peers against the CA; storage and the aggregator also ask their callers
    /// for a certificate of that CA (mTLS).
    pub tls: Option<crate::tls::TlsFiles>,
    /// A cluster: this many storage nodes registered in etcd, query and ingest routing
    /// through it. `None`: one storage node, no etcd.
    pub cluster: Option<Cluster>,
}

/// The cluster of a stack.
pub struct Cluster {
    /// Storage nodes (`storage-0` ...).
    pub nodes: usize,
    /// Copies of each shard of a collection created without `replication`.
    pub replication: u32,
    pub etcd: EtcdPlan,
}

/// The etcd of a cluster.
pub enum EtcdPlan {
    /// A running etcd at these endpoints.
    Url(String),
    /// Start this `etcd` binary, with its data in `<data_dir>/etcd`.
    Start(PathBuf),
}

/// The `etcd` binary: on PATH, or Debian's `/usr/bin/etcd`.
pub fn etcd_binary() -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "a cluster of storage nodes needs etcd, and no `etcd` binary was found: install Debian's etcd-server package (apt-get install etcd-server; scripts/setup does), or point at a running etcd with --etcd http://host:2379"
            )
        })
}

impl Plan {
    /// The services in start order (storage first), each with its arguments.
    fn services(&self) -> Vec<Svc> {
        let p = &self.ports;
        let path = |p: &std::path::Path| p.display().to_string();
        let (scheme, tls_args, mtls_args) = match &self.tls {
            None => ("http", vec![], vec![]),
            Some(t) => (
                "https",
                vec![
                    "--tls-cert".to_string(),
                    path(&t.server_cert),
                    "--tls-key".into(),
                    path(&t.server_key),
                    "--ca-cert".into(),
                    path(&t.ca),
                ],
                vec!["--tls-client-ca".to_string(), path(&t.ca)],
            ),
        };
        // `--grpc-addr`, `--metrics-addr`, then `rest`.
        let args = |sp: ServicePorts, rest: &[&str], extra: &[String]| -> Vec<String> {
            let mut v = vec![
                "--grpc-addr".to_string(),
                p.addr(sp.grpc),
                "--metrics-addr".into(),
                p.addr(sp.metrics),
            ];
            v.extend(rest.iter().map(|s| s.to_string()));
            v.extend(self.common_args.iter().cloned());
            v.extend(tls_args.iter().cloned());
            v.extend(extra.iter().cloned());
            v
        };
        let storage_extra: Vec<String> = mtls_args
            .iter()
            .chain(&self.storage_args)
            .cloned()
            .collect();
        let mut svcs = Vec::new();
        // The storage nodes: one without etcd, or `storage-<i>` registered in etcd.
        let mut cluster_args: Vec<String> = Vec::new();
        // Query's and ingest's only: how collections are created.
        let mut router_args: Vec<String> = Vec::new();
        let mut nodes: Vec<(String, ServicePorts)> = Vec::new();
        match &self.cluster {
            None => {
                let data_dir = self.data_dir.join("storage").display().to_string();
                svcs.push(Svc::new(
                    "storage",
                    "storage",
                    args(p.storage, &["--data-dir", &data_dir], &storage_extra),
                ));
                nodes.push(("storage".into(), p.storage));
            }
            Some(c) => {
                let etcd_url = match &c.etcd {
                    EtcdPlan::Url(url) => url.clone(),
                    EtcdPlan::Start(bin) => {
                        let (client, peer) = p.etcd;
                        let url = format!("http://{}", p.addr(client));
                        let peer_url = format!("http://127.0.0.1:{peer}");
                        let dir = self.data_dir.join("etcd").display().to_string();
                        svcs.push(Svc::program(
                            "etcd",
                            bin.clone(),
                            vec![
                                "--name=akidb".into(),
                                format!("--data-dir={dir}"),
                                format!("--listen-client-urls={url}"),
                                format!("--advertise-client-urls={url}"),
                                format!("--listen-peer-urls={peer_url}"),
                                format!("--initial-advertise-peer-urls={peer_url}"),
                                format!("--initial-cluster=akidb={peer_url}"),
                            ],
                        ));
                        url
                    }
                };
                cluster_args = vec!["--etcd".into(), etcd_url.clone()];
                router_args = vec!["--default-replication".into(), c.replication.to_string()];
                // The nodes share one object store: their shards' logs are there (unless
                // the storage flags name one, S3 or a directory).
                let own_store = storage_extra
                    .iter()
                    .any(|a| a.starts_with("--s3-endpoint") || a.starts_with("--object-dir"));
                let shared = self.data_dir.join("objects").display().to_string();
                for i in 0..c.nodes {
                    let id = format!("storage-{i}");
                    let sp = p.storage_node(i);
                    let data_dir = self.data_dir.join("nodes").join(&id).display().to_string();
                    let mut extra = vec![
                        "--etcd".to_string(),
                        etcd_url.clone(),
                        "--node-id".into(),
                        id.clone(),
                    ];
                    if !own_store {
                        extra.extend(["--object-dir".to_string(), shared.clone()]);
                    }
                    extra.extend(storage_extra.iter().cloned());
                    svcs.push(Svc::new(
                        "storage",
                        &id,
                        args(sp, &["--data-dir", &data_dir], &extra),
                    ));
                    nodes.push((id, sp));
                }
            }
        }
        let storage_url = format!("{scheme}://{}", p.addr(p.storage.grpc));
        svcs.push(Svc::new(
            "ingest",
            "ingest",
            args(
                p.ingest,
                &["--storage-addr", &storage_url],
                &[cluster_args.clone(), router_args.clone()].concat(),
            ),
        ));
        let mut query_extra = [cluster_args.clone(), router_args].concat();
        query_extra.extend(self.query_args.iter().cloned());
        svcs.push(Svc::new(
            "query",
            "query",
            args(
                p.query,
                &[
                    "--storage-addr",
                    &storage_url,
                    "--telemetry-addr",
                    &format!("{scheme}://{}", p.addr(p.telemetry.grpc)),
                    "--rest-addr",
                    &p.addr(p.rest),
                    "--ingest-addr",
                    &format!("{scheme}://{}", p.addr(p.ingest.grpc)),
                ],
                &query_extra,
            ),
        ));
        if self.telemetry {
            let t = |port: u16| match &self.tls {
                None => p.addr(port),
                Some(_) => format!("https://{}", p.addr(port)),
            };
            // A cluster's storage nodes are found in etcd (the aggregator follows them as they
            // come and go); one node is a static target.
            let mut targets: Vec<String> = match &self.cluster {
                None => nodes
                    .iter()
                    .map(|(_, sp)| format!("storage={}", t(sp.metrics)))
                    .collect(),
                Some(_) => Vec::new(),
            };
            targets.push(format!("ingest={}", t(p.ingest.metrics)));
            targets.push(format!("query={}", t(p.query.metrics)));
            targets.push(format!("telemetry={}", t(p.telemetry.metrics)));
            svcs.push(Svc::new(
                "telemetry",
                "telemetry",
                args(
                    p.telemetry,
                    &["--scrape-targets", &targets.join(",")],
                    &mtls_args
                        .iter()
                        .chain(&cluster_args)
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
            ));
        }
        svcs
    }
}

/// How the children are spawned.
pub struct Spawn {
    /// This binary.
    pub exe: PathBuf,
    /// `AKIDB_LOG` of the children (None: inherited).
    pub log: Option<&'static str>,
    /// A process group of their own, so that a terminal's Ctrl-C reaches only this process,
    /// which then stops them in order (`akidb up`). Without it Ctrl-C reaches them too: for
    /// a process that does not handle the signal and would otherwise leave them running.
    pub own_group: bool,
    /// Their log lines (stdout) go to this process's stderr, so that its own stdout carries
    /// only its output (`akidb --json bench --start`).
    pub logs_to_stderr: bool,
}

/// Spawn every service of `plan`, storage first.
pub fn start(plan: &Plan, how: &Spawn) -> anyhow::Result<Vec<Svc>> {
    let mut svcs = plan.services();
    for s in &mut svcs {
        s.spawn(how)?;
    }
    Ok(svcs)
}

/// One service of the stack: a child process (killed on drop), restarted by
/// [`Svc::reap_and_restart`].
pub struct Svc {
    /// What it is called in messages (`storage-1`, `query`, `etcd`).
    pub name: String,
    /// What runs: `akidb serve <service>`, or another program.
    run: Run,
    /// Its arguments after the name, the same at every restart.
    args: Vec<String>,
    /// None once taken to be waited for (stopping).
    pub child: Option<Child>,
    /// Restarts in a row, each after less than a minute of running: the backoff grows
    /// with them.
    restarts: u32,
    /// When the running process was spawned.
    started: Instant,
}

/// The child gets SIGTERM (and stops gracefully) when this process dies, however it dies:
/// a `kill -9` of `akidb up` leaves no service behind holding its ports. (Linux; the signal
/// follows the thread that spawned the child, and the stack spawns from runtime threads
/// that live as long as it does.)
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls are made (prctl,
        // getppid, kill on itself).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the prctl: nobody will send the signal.
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), libc::SIGTERM);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// What a [`Svc`] runs.
enum Run {
    /// `akidb serve <service>`.
    Serve(&'static str),
    /// Another program (etcd).
    Program(PathBuf),
}

impl Svc {
    fn new(service: &'static str, name: &str, args: Vec<String>) -> Self {
        Self::with(Run::Serve(service), name, args)
    }

    fn program(name: &str, program: PathBuf, args: Vec<String>) -> Self {
        Self::with(Run::Program(program), name, args)
    }

    /// The `akidb serve` service it runs (`None`: another program).
    pub fn service(&self) -> Option<&'static str> {
        match self.run {
            Run::Serve(s) => Some(s),
            Run::Program(_) => None,
        }
    }

    fn with(run: Run, name: &str, args: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            run,
            args,
            child: None,
            restarts: 0,
            started: Instant::now(),
        }
    }

    fn spawn(&mut self, how: &Spawn) -> anyhow::Result<()> {
        let mut cmd = match &self.run {
            Run::Serve(service) => {
                let mut c = Command::new(&how.exe);
                c.arg("serve").arg(service);
                c
            }
            Run::Program(p) => Command::new(p),
        };
        cmd.args(&self.args).stdin(Stdio::null()).kill_on_drop(true);
        if let Some(level) = how.log {
            cmd.env("AKIDB_LOG", level);
        }
        if how.own_group {
            cmd.process_group(0);
        }
        if how.logs_to_stderr {
            cmd.stdout(std::io::stderr());
        }
        die_with_parent(&mut cmd);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", self.name))?,
        );
        self.started = Instant::now();
        Ok(())
    }

    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    /// If the process exited: report it and start it again after a backoff that grows with
    /// the restarts of the last minute.
    pub async fn reap_and_restart(&mut self, how: &Spawn) -> anyhow::Result<()> {
        let Some(c) = self.child.as_mut() else {
            return Ok(());
        };
        if let Some(st) = c.try_wait()? {
            self.restarts += 1;
            if self.started.elapsed() > Duration::from_secs(60) {
                self.restarts = 1;
            }
            let backoff = Duration::from_millis(250 * 2u64.pow(self.restarts.min(6)));
            eprintln!(
                "{} exited ({st}); restarting in {:?} (restart #{})",
                self.name, backoff, self.restarts
            );
            tokio::time::sleep(backoff).await;
            self.spawn(how)?;
        }
        Ok(())
    }
}
