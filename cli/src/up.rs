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
    /// Added to every default port (50051-50054, 9100-9103, 8080), to run two stacks side by
    /// side.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Extra arguments for storage, e.g. `--storage-arg=--s3-endpoint=127.0.0.1:9000`.
    #[arg(long = "storage-arg", allow_hyphen_values = true)]
    pub storage_args: Vec<String>,
    /// API key file: every call then needs a key from it (`akidb keys create`). Created with
    /// one admin key, printed once, when absent. The services also get an internal key
    /// (`<data dir>/internal.key`), so that storage and the aggregator take only them.
    #[arg(long = "api-keys-file", env = "AKIDB_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Let the services listen beyond loopback (`--host`) without keys.
    #[arg(long = "insecure-no-auth", conflicts_with = "tls")]
    pub insecure_no_auth: bool,
    /// TLS on every port and every call between the services, with a local CA and
    /// certificates made in `<data dir>/tls` (kept across runs; `akidb tls init`); storage
    /// and the aggregator also ask their callers for a certificate (mTLS). Turns keys on
    /// (`<data dir>/keys.json` unless `--api-keys-file`). Prints the CA path and, for a new
    /// key file, the admin key.
    #[arg(long)]
    pub tls: bool,
    /// Run this many storage nodes (`storage-0` ...) as a cluster: a local etcd (Debian's
    /// etcd-server) holds their membership and the shard maps, query and ingest route each
    /// collection's calls to its shards (`akidb collection create --shards N`). 0: one
    /// storage node, no etcd.
    #[arg(long = "storage-nodes", default_value_t = 0)]
    pub storage_nodes: usize,
    /// With --storage-nodes: use this running etcd (`http://host:2379`) instead of starting one.
    #[arg(long = "etcd", requires = "storage_nodes")]
    pub etcd: Option<String>,
    /// With --storage-nodes: copies of each shard (1 to 5) of a collection created without
    /// `replication`: an owner and followers that take over when it is lost.
    #[arg(long = "replication", requires = "storage_nodes", default_value_t = 1)]
    pub replication: u32,
}

/// The arguments every service gets for keys, making the internal key (and the key file with
/// an admin key, printed once) when absent.
fn key_args(a: &UpArgs) -> anyhow::Result<Vec<String>> {
    let mut args = Vec::new();
    if a.insecure_no_auth {
        args.push("--insecure-no-auth".to_string());
    }
    let default_file = a.data_dir.join("keys.json");
    let file = match &a.api_keys_file {
        Some(f) => Some(f),
        None if a.tls => Some(&default_file),
        None => None,
    };
    let Some(file) = file else {
        let loopback = a
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || a.host == "localhost";
        if !loopback && !a.insecure_no_auth {
            anyhow::bail!(
                "refusing to start the stack on {} without API keys: anyone who reaches it could read, write and delete every collection. Start with --api-keys-file <file> (created with an admin key when absent), or keep --host 127.0.0.1, or pass --insecure-no-auth if the network itself is trusted",
                a.host
            );
        }
        return Ok(args);
    };
    if !file.exists() {
        let key = akidb_auth::keys::KeyFile::create_key(file, akidb_auth::Role::Admin, vec![])?;
        println!(
            "Created {} with an admin key (shown only now):",
            file.display()
        );
        println!("  {key}");
        println!(
            "  (more keys: akidb keys create --api-keys-file {} --role read|write|admin)",
            file.display()
        );
    }
    let internal = a.data_dir.join("internal.key");
    akidb_auth::keys::load_or_create_internal_key(&internal)?;
    args.extend([
        "--api-keys-file".to_string(),
        std::path::absolute(file)?.display().to_string(),
        "--internal-key-file".into(),
        std::path::absolute(&internal)?.display().to_string(),
    ]);
    Ok(args)
}

pub async fn up(a: UpArgs) -> anyhow::Result<()> {
    let how = Spawn {
        exe: std::env::current_exe().context("finding the akidb binary")?,
        log: None,
        own_group: true,
        logs_to_stderr: false,
    };
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let common_args = key_args(&a)?;
    let p = Ports::fixed(&a.host, a.port_offset);
    let tls = match a.tls {
        false => None,
        true => {
            let hosts = vec![a.host.clone()];
            let files = crate::tls::ensure(&a.data_dir.join("tls"), &hosts)?;
            println!(
                "TLS on: clients check the services with the CA {}",
                std::path::absolute(&files.ca)?.display()
            );
            println!(
                "  (akidb --ca-cert <CA> --api-key <key> ..., or AKIDB_CA_CERT and AKIDB_API_KEY; storage and telemetry also need --client-cert {} --client-key {})",
                std::path::absolute(&files.client_cert)?.display(),
                std::path::absolute(&files.client_key)?.display()
            );
            Some(files)
        }
    };
    let (scheme, web) = match tls {
        None => ("", "http"),
        Some(_) => ("https://", "https"),
    };
    let cluster = match a.storage_nodes {
        0 => None,
        n if n > stack::MAX_STORAGE_NODES => anyhow::bail!(
            "--storage-nodes {n}: at most {} on one machine",
            stack::MAX_STORAGE_NODES
        ),
        n => Some(stack::Cluster {
            nodes: n,
            replication: a.replication,
            etcd: match &a.etcd {
                Some(url) => stack::EtcdPlan::Url(url.clone()),
                None => stack::EtcdPlan::Start(stack::etcd_binary()?),
            },
        }),
    };
    let mut svcs = stack::start(
        &Plan {
            data_dir: a.data_dir.clone(),
            ports: p.clone(),
            storage_args: a.storage_args.clone(),
            query_args: Vec::new(),
            telemetry: true,
            common_args,
            tls,
            cluster,
        },
        &how,
    )?;
    println!("AkiDB is starting (data in {}):", a.data_dir.display());
    let mut shown = vec![("query".to_string(), p.query), ("ingest".into(), p.ingest)];
    match a.storage_nodes {
        0 => shown.push(("storage".into(), p.storage)),
        n => shown.extend((0..n).map(|i| (format!("storage-{i}"), p.storage_node(i)))),
    }
    for (name, sp) in shown {
        println!(
            "  {name:<9} gRPC {scheme}{}   metrics {web}://{}/metrics",
            p.addr(sp.grpc),
            p.addr(sp.metrics)
        );
    }
    println!(
        "  REST      {web}://{}/v1/collections   (OpenAPI: {web}://{}/openapi.json)",
        p.addr(p.rest),
        p.addr(p.rest)
    );
    println!(
        "  telemetry gRPC {scheme}{}   metrics {web}://{}/metrics  federate {web}://{}/federate",
        p.addr(p.telemetry.grpc),
        p.addr(p.telemetry.metrics),
        p.addr(p.telemetry.metrics)
    );
    if a.storage_nodes > 0 {
        let etcd = a
            .etcd
            .clone()
            .unwrap_or_else(|| format!("http://{}", p.addr(p.etcd.0)));
        println!(
            "  etcd      {etcd}   (akidb cluster status --etcd {etcd}; data in {})",
            a.data_dir.join("etcd").display()
        );
    }
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
    // Stop the front doors first so they drain while storage still answers, then storage
    // (whose nodes leave etcd), then etcd.
    let mut code = 0;
    for group in [
        &["query", "ingest", "telemetry"][..],
        &["storage"][..],
        &[][..],
    ] {
        let member = |s: &stack::Svc| match s.service() {
            Some(service) => group.contains(&service),
            None => group.is_empty(),
        };
        for s in svcs.iter_mut().filter(|s| member(s)) {
            s.signal(libc::SIGTERM);
        }
        for s in svcs.iter_mut().filter(|s| member(s)) {
            if let Some(mut c) = s.child.take() {
                match tokio::time::timeout(Duration::from_secs(20), c.wait()).await {
                    // etcd ends by the signal it was sent.
                    Ok(Ok(st))
                        if st.success()
                            || (s.service().is_none()
                                && std::os::unix::process::ExitStatusExt::signal(&st)
                                    == Some(libc::SIGTERM)) =>
                    {
                        println!("{} stopped cleanly", s.name)
                    }
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
