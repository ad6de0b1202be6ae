use clap::Parser;

/// AkiDB ingest service.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: akidb_ingest::IngestConfig,
    #[command(flatten)]
    telemetry: akidb_instrumentation::TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    akidb_ingest::main_with(a.config, a.telemetry).await
}
