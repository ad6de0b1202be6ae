use clap::Parser;

/// AkiDB storage service.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: akidb_storage::StorageConfig,
    #[command(flatten)]
    telemetry: akidb_instrumentation::TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    akidb_storage::main_with(a.config, a.telemetry).await
}
