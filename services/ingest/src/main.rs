use akidb_instrumentation::lifecycle;

fn main() -> anyhow::Result<()> {
    lifecycle::main("akidb-ingest", "AkiDB ingest service.", akidb_ingest::run)
}
