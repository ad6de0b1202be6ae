//! `akidb`: run the stack, run one service, and talk to a running stack.

mod admin;
mod bench;
mod client;
mod cluster;
mod filter;
mod global;
mod jsonl;
mod keys;
mod payload;
mod stack;
mod tls;
mod up;

use akidb_instrumentation::lifecycle;
use clap::{Parser, Subcommand};
use global::Global;

#[derive(Parser)]
#[command(
    name = "akidb",
    version,
    about = "AkiDB: a vector database with observability you can trust"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Cmd {
    /// Start storage, ingest, query and telemetry on this machine (Ctrl-C stops them).
    Up(up::UpArgs),
    /// Run one service in this process.
    Serve {
        #[command(subcommand)]
        service: Service,
    },
    /// grpc.health.v1 status of every service.
    Health,
    /// Create, list, inspect and delete collections.
    Collection {
        #[command(subcommand)]
        cmd: client::CollectionCmd,
    },
    /// Upsert points from an .fvecs or JSON-lines file.
    Upsert(client::UpsertArgs),
    /// Seal a collection's unindexed points and build their graph now (e.g. after a bulk load).
    Flush(client::FlushArgs),
    /// Aliases: names that stand for a collection, swapped atomically.
    Alias {
        #[command(subcommand)]
        cmd: client::AliasCmd,
    },
    /// Change points' payloads (by ids and/or a filter) without resending their vectors.
    Payload {
        #[command(subcommand)]
        cmd: client::PayloadCmd,
    },
    /// Search a collection.
    Search(client::SearchArgs),
    /// Hybrid search: dense and sparse searches of a collection fused into one ranking.
    Query(client::QueryArgs),
    /// SLO status from the telemetry service.
    Slo,
    /// Load a data set and measure ingest, indexing, search latency, QPS and recall.
    Bench(bench::BenchArgs),
    /// API keys: create (printed once), list, revoke.
    Keys(keys::KeysArgs),
    /// TLS: make a local CA and the services' certificates.
    Tls {
        #[command(subcommand)]
        cmd: TlsCmd,
    },
    /// A cluster of storage nodes, as etcd has it.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Operator actions on storage: tiers, snapshots, compaction, DLQ, breaker, WAL.
    Admin {
        #[command(subcommand)]
        cmd: admin::AdminCmd,
    },
}

#[derive(Subcommand)]
pub enum TlsCmd {
    /// Make a CA and the certificates of the services and of an operator in a directory
    /// (existing files are kept): what `akidb up --tls` does in `<data dir>/tls`.
    Init(tls::TlsInitArgs),
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Service {
    Storage {
        #[command(flatten)]
        config: akidb_storage::StorageConfig,
        #[command(flatten)]
        telemetry: akidb_instrumentation::TelemetryArgs,
    },
    Ingest {
        #[command(flatten)]
        config: akidb_ingest::IngestConfig,
        #[command(flatten)]
        telemetry: akidb_instrumentation::TelemetryArgs,
    },
    Query {
        #[command(flatten)]
        config: akidb_query::QueryConfig,
        #[command(flatten)]
        telemetry: akidb_instrumentation::TelemetryArgs,
    },
    Telemetry {
        #[command(flatten)]
        config: akidb_telemetry::TelemetryConfig,
        #[command(flatten)]
        telemetry: akidb_instrumentation::TelemetryArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(s) if s.code() == tonic::Code::Unavailable => {
                    eprintln!(
                        "error: Unavailable: {}\n(is the stack running? start it with `akidb up`)",
                        s.message()
                    )
                }
                Some(s) => eprintln!("error: {:?}: {}", s.code(), s.message()),
                None => eprintln!("error: {e:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    {
        // A service sets up its own TLS (`akidb serve`); every other command calls with
        // `--ca-cert` and `--client-cert`.
        if !matches!(cli.cmd, Cmd::Serve { .. }) {
            global::init_tls(&cli.global)?;
        }
        match cli.cmd {
            Cmd::Up(a) => up::up(a).await,
            Cmd::Serve { service } => match service {
                Service::Storage { config, telemetry } => {
                    lifecycle::serve(config, telemetry, akidb_storage::run).await
                }
                Service::Ingest { config, telemetry } => {
                    lifecycle::serve(config, telemetry, akidb_ingest::run).await
                }
                Service::Query { config, telemetry } => {
                    lifecycle::serve(config, telemetry, akidb_query::run).await
                }
                Service::Telemetry { config, telemetry } => {
                    lifecycle::serve(config, telemetry, akidb_telemetry::run).await
                }
            },
            Cmd::Health => client::health(&cli.global).await,
            Cmd::Collection { cmd } => client::collection(&cli.global, cmd).await,
            Cmd::Upsert(a) => client::upsert(&cli.global, a).await,
            Cmd::Flush(a) => client::flush(&cli.global, a).await,
            Cmd::Payload { cmd } => client::payload(&cli.global, cmd).await,
            Cmd::Alias { cmd } => client::alias(&cli.global, cmd).await,
            Cmd::Search(a) => client::search(&cli.global, a).await,
            Cmd::Query(a) => client::query(&cli.global, a).await,
            Cmd::Slo => client::slo(&cli.global).await,
            Cmd::Bench(a) => bench::bench(&cli.global, a).await,
            Cmd::Admin { cmd } => admin::run(&cli.global, cmd).await,
            Cmd::Cluster { cmd } => cluster::run(&cli.global, cmd).await,
            Cmd::Keys(a) => keys::run(&cli.global, a),
            Cmd::Tls {
                cmd: TlsCmd::Init(a),
            } => tls::init(&a),
        }
    }
}
