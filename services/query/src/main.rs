use akidb_instrumentation::lifecycle;

fn main() -> anyhow::Result<()> {
    lifecycle::main("akidb-query", "AkiDB query service.", akidb_query::run)
}
