use clap::Parser;

/// AkiDB telemetry aggregator: scrapes every service, serves /federate, evaluates the SLOs.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: akidb_telemetry::TelemetryConfig,
    #[command(flatten)]
    telemetry: akidb_instrumentation::TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    akidb_telemetry::main_with(a.config, a.telemetry).await
}
