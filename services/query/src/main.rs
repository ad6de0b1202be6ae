use clap::Parser;

/// AkiDB query service.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: akidb_query::QueryConfig,
    #[command(flatten)]
    telemetry: akidb_instrumentation::TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    akidb_query::main_with(a.config, a.telemetry).await
}
