//! `akidb up`: the whole stack on one machine, as four child processes of this binary.

use crate::stack::{self, Plan, Ports, Spawn};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

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

pub async fn up(a: UpArgs) -> anyhow::Result<()> {
    let how = Spawn {
        exe: std::env::current_exe().context("finding the akidb binary")?,
        log: None,
        own_group: true,
    };
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let p = Ports::fixed(&a.host, a.port_offset);
    let mut svcs = stack::start(
        &Plan {
            data_dir: a.data_dir.clone(),
            ports: p.clone(),
            storage_args: a.storage_args.clone(),
            query_args: Vec::new(),
            telemetry: true,
        },
        &how,
    )?;
    println!("AkiDB is starting (data in {}):", a.data_dir.display());
    for (name, sp) in [
        ("query", p.query),
        ("ingest", p.ingest),
        ("storage", p.storage),
    ] {
        println!(
            "  {name:<9} gRPC {}   metrics http://{}/metrics",
            p.addr(sp.grpc),
            p.addr(sp.metrics)
        );
    }
    println!(
        "  telemetry gRPC {}   metrics http://{}/metrics  federate http://{}/federate",
        p.addr(p.telemetry.grpc),
        p.addr(p.telemetry.metrics),
        p.addr(p.telemetry.metrics)
    );
    println!("Press Ctrl-C to stop.");

    let shutdown = akidb_instrumentation::lifecycle::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                for s in &mut svcs {
                    s.reap_and_restart(&how).await?;
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
