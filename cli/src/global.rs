//! What every command shares: the global options (service addresses, `--json`, the
//! deadline of a call), the connection a command makes, and its output (JSON or a table).

use akidb_client::Link;
use comfy_table::Table;
use std::time::Duration;

/// Options every command takes (after or before its name).
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Query service (reads, collections).
    #[arg(
        long,
        global = true,
        env = "AKIDB_QUERY_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub query_addr: String,
    /// Ingest service (writes).
    #[arg(
        long,
        global = true,
        env = "AKIDB_INGEST_ADDR",
        default_value = "127.0.0.1:50052"
    )]
    pub ingest_addr: String,
    /// Storage service (its health; admin commands go through the query service).
    #[arg(
        long,
        global = true,
        env = "AKIDB_STORAGE_ADDR",
        default_value = "127.0.0.1:50053"
    )]
    pub storage_addr: String,
    /// Telemetry service (its health; `akidb slo` goes through the query service).
    #[arg(
        long,
        global = true,
        env = "AKIDB_TELEMETRY_ADDR",
        default_value = "127.0.0.1:50054"
    )]
    pub telemetry_addr: String,
    /// CA certificate (PEM) that signed the services' certificates: addresses without a
    /// scheme are then `https://`, and each service's certificate and name are checked
    /// (`akidb up --tls` prints it).
    #[arg(long, global = true, env = "AKIDB_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM) shown to services that ask for one (mTLS: storage and the
    /// aggregator under `akidb up --tls`), with `--client-key`.
    #[arg(
        long,
        global = true,
        env = "AKIDB_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of `--client-cert`.
    #[arg(
        long,
        global = true,
        env = "AKIDB_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
    /// API key sent with every call (`authorization: Bearer <key>`), when the stack has keys.
    #[arg(long, global = true, env = "AKIDB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of one call, in seconds.
    #[arg(long, global = true, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Make every connection of this process use `--ca-cert` and `--client-cert` (once, before
/// the first).
pub fn init_tls(g: &Global) -> anyhow::Result<()> {
    let identity = match (&g.client_cert, &g.client_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    let tls = akidb_instrumentation::tls::ClientTls::from_files(g.ca_cert.as_deref(), identity)?;
    akidb_instrumentation::tls::set_client(tls);
    Ok(())
}

/// A connection to `addr` whose calls have the `--timeout` deadline and carry `--api-key`.
pub fn link(g: &Global, addr: &str) -> anyhow::Result<Link> {
    Ok(Link::with_key(
        addr,
        Duration::from_secs_f64(g.timeout),
        g.api_key.as_deref(),
    )?)
}

/// Print `value` as JSON, or `table` for people.
/// A table with the CLI's look, `header` on top.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(header.iter().copied());
    t
}

pub fn emit(g: &Global, value: serde_json::Value, table: impl FnOnce() -> Table) {
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("{}", table());
    }
}
