use akidb_instrumentation::lifecycle;

fn main() -> anyhow::Result<()> {
    lifecycle::main(
        "akidb-storage",
        "AkiDB storage service.",
        akidb_storage::run,
    )
}
