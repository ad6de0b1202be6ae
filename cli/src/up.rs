//! `akidb up`: the whole stack on one machine, as four child processes of this binary.

use anyhow::Context;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Data directory: storage keeps its WAL, segments, snapshots and local object store here.
    #[arg(long, env = "AKIDB_DATA_DIR", default_value = "./akidb-data")]
    pub data_dir: PathBuf,
    /// Interface every service listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Added to every default port (50051-50054, 9100-9103), to run two stacks side by side.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Extra arguments for storage, e.g. `--storage-arg=--s3-endpoint=127.0.0.1:9000`.
    #[arg(long = "storage-arg", allow_hyphen_values = true)]
    pub storage_args: Vec<String>,
}

struct Svc {
    name: &'static str,
    args: Vec<String>,
    child: Option<Child>,
    restarts: u32,
    started: Instant,
}

pub async fn up(a: UpArgs, telemetry_args: Vec<String>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the akidb binary")?;
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let o = a.port_offset;
    let h = &a.host;
    let addr = |p: u16| format!("{h}:{}", p + o);
    let storage_grpc = addr(50053);
    let mut storage = vec![
        "--grpc-addr".into(),
        storage_grpc.clone(),
        "--metrics-addr".into(),
        addr(9103),
        "--data-dir".into(),
        a.data_dir.join("storage").display().to_string(),
    ];
    storage.extend(a.storage_args.iter().cloned());
    let storage_url = format!("http://{storage_grpc}");
    let targets = format!(
        "storage={},ingest={},query={},telemetry={}",
        addr(9103),
        addr(9102),
        addr(9101),
        addr(9100)
    );
    let mut svcs = vec![
        Svc::new("storage", storage),
        Svc::new(
            "ingest",
            vec![
                "--grpc-addr".into(),
                addr(50052),
                "--metrics-addr".into(),
                addr(9102),
                "--storage-addr".into(),
                storage_url.clone(),
            ],
        ),
        Svc::new(
            "query",
            vec![
                "--grpc-addr".into(),
                addr(50051),
                "--metrics-addr".into(),
                addr(9101),
                "--storage-addr".into(),
                storage_url,
            ],
        ),
        Svc::new(
            "telemetry",
            vec![
                "--grpc-addr".into(),
                addr(50054),
                "--metrics-addr".into(),
                addr(9100),
                "--scrape-targets".into(),
                targets,
            ],
        ),
    ];
    for s in &mut svcs {
        s.args.extend(telemetry_args.iter().cloned());
        s.spawn(&exe)?;
    }
    println!("AkiDB is starting (data in {}):", a.data_dir.display());
    println!(
        "  query     gRPC {}   metrics http://{}/metrics",
        addr(50051),
        addr(9101)
    );
    println!(
        "  ingest    gRPC {}   metrics http://{}/metrics",
        addr(50052),
        addr(9102)
    );
    println!(
        "  storage   gRPC {}   metrics http://{}/metrics",
        addr(50053),
        addr(9103)
    );
    println!(
        "  telemetry gRPC {}   metrics http://{}/metrics  federate http://{}/federate",
        addr(50054),
        addr(9100),
        addr(9100)
    );
    println!("Press Ctrl-C to stop.");

    let shutdown = akidb_instrumentation::lifecycle::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                for s in &mut svcs {
                    s.reap_and_restart(&exe).await?;
                }
            }
        }
    }
    // Stop the front doors first so they drain while storage still answers.
    let mut code = 0;
    for group in [&["query", "ingest", "telemetry"][..], &["storage"][..]] {
        for s in svcs.iter_mut().filter(|s| group.contains(&s.name)) {
            s.signal(libc::SIGTERM);
        }
        for s in svcs.iter_mut().filter(|s| group.contains(&s.name)) {
            if let Some(mut c) = s.child.take() {
                match tokio::time::timeout(Duration::from_secs(20), c.wait()).await {
                    Ok(Ok(st)) if st.success() => println!("{} stopped cleanly", s.name),
                    Ok(Ok(st)) => {
                        println!("{} exited with {st}", s.name);
                        code = 1;
                    }
                    _ => {
                        println!("{} did not stop within 20 s; killing it", s.name);
                        let _ = c.kill().await;
                        code = 1;
                    }
                }
            }
        }
    }
    if code != 0 {
        anyhow::bail!("not every service stopped cleanly");
    }
    Ok(())
}

impl Svc {
    fn new(name: &'static str, args: Vec<String>) -> Self {
        Self {
            name,
            args,
            child: None,
            restarts: 0,
            started: Instant::now(),
        }
    }

    fn spawn(&mut self, exe: &std::path::Path) -> anyhow::Result<()> {
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg(self.name)
            .args(&self.args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // Own process group: a terminal's Ctrl-C reaches only `akidb up`, which stops the
        // children in order.
        cmd.process_group(0);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", self.name))?,
        );
        self.started = Instant::now();
        Ok(())
    }

    fn signal(&self, sig: i32) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    async fn reap_and_restart(&mut self, exe: &std::path::Path) -> anyhow::Result<()> {
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
            self.spawn(exe)?;
        }
        Ok(())
    }
}
