use akidb_instrumentation::lifecycle;

fn main() -> anyhow::Result<()> {
    lifecycle::main(
        "akidb-telemetry",
        "AkiDB telemetry aggregator: scrapes every service, serves /federate, evaluates the SLOs.",
        akidb_telemetry::run,
    )
}
