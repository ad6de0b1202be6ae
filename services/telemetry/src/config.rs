//! Telemetry aggregator configuration (flags and environment variables).

use crate::aggregator::duration::parse_duration;
use crate::aggregator::slo::SloConfig;
use crate::aggregator::{Target, parse_targets};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The four services of `akidb up`, on their default metrics ports.
pub const DEFAULT_SCRAPE_TARGETS: &str =
    "storage=127.0.0.1:9103,ingest=127.0.0.1:9102,query=127.0.0.1:9101,telemetry=127.0.0.1:9100";

/// Where `--slo-file` points by default (relative to the working directory).
pub const DEFAULT_SLO_FILE: &str = "observability/slo.yaml";

/// The repository's observability/slo.yaml, built in: used when the default file is not
/// there (e.g. `akidb up` run outside the repository).
pub const BUILTIN_SLO_YAML: &str = include_str!("../../../observability/slo.yaml");

/// Scrape targets: `service=host:port,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTargets(pub Vec<Target>);

impl std::str::FromStr for ScrapeTargets {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_targets(s).map(ScrapeTargets)
    }
}

akidb_instrumentation::listen_args!(TelemetryConfig, Telemetry, "TELEMETRY", 50054, 9100);

#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    #[command(flatten)]
    pub listen: Listen,
    /// Targets to scrape, `service=host:port` separated by commas (`/metrics` is scraped;
    /// `service=http://host:port/path` scrapes another path). A service may be listed more
    /// than once.
    #[arg(
        long = "scrape-targets",
        env = "AKIDB_SCRAPE_TARGETS",
        default_value = DEFAULT_SCRAPE_TARGETS
    )]
    pub scrape_targets: ScrapeTargets,
    /// etcd endpoints of a cluster (`http://host:port`, comma-separated): every storage node
    /// registered there is scraped too (service `storage`, instance its metrics address),
    /// from when it registers until it leaves.
    #[arg(long = "etcd", env = "AKIDB_ETCD")]
    pub etcd: Option<String>,
    /// Time between scrapes (e.g. 5s, 500ms, 1m).
    #[arg(long = "scrape-interval", env = "AKIDB_SCRAPE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub scrape_interval: Duration,
    /// Time allowed for one scrape; a slower target counts as down. At most the interval.
    #[arg(long = "scrape-timeout", env = "AKIDB_SCRAPE_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub scrape_timeout: Duration,
    /// SLO definitions. When the default path does not exist, the built-in copy of the
    /// repository's observability/slo.yaml is used; any other missing path is an error.
    #[arg(long = "slo-file", env = "AKIDB_SLO_FILE", default_value = DEFAULT_SLO_FILE)]
    pub slo_file: PathBuf,
    /// Keys: the aggregator takes only internal callers when an internal key is set, and
    /// scrapes with the metrics token when one is set.
    #[command(flatten)]
    pub auth: akidb_auth::AuthArgs,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            listen: Listen {
                grpc_addr: ([127, 0, 0, 1], 50054).into(),
                metrics_addr: ([127, 0, 0, 1], 9100).into(),
                max_message_bytes: akidb_instrumentation::transport::DEFAULT_MAX_MESSAGE_BYTES,
                tls: Default::default(),
            },
            etcd: None,
            scrape_targets: DEFAULT_SCRAPE_TARGETS
                .parse()
                .expect("valid default targets"),
            scrape_interval: Duration::from_secs(5),
            scrape_timeout: Duration::from_secs(3),
            slo_file: PathBuf::from(DEFAULT_SLO_FILE),
            auth: Default::default(),
        }
    }
}

impl TelemetryConfig {
    /// The SLOs of `slo_file` (or the built-in copy, see the flag) and where they came from.
    pub fn load_slos(&self) -> anyhow::Result<(SloConfig, String)> {
        load_slos(&self.slo_file)
    }

    /// The scrape timeout, never longer than the interval.
    pub fn effective_timeout(&self) -> Duration {
        self.scrape_timeout.min(self.scrape_interval)
    }
}

fn load_slos(path: &Path) -> anyhow::Result<(SloConfig, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let c = SloConfig::from_yaml(&text)
                .with_context(|| format!("invalid SLO file {}", path.display()))?;
            Ok((c, path.display().to_string()))
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(DEFAULT_SLO_FILE) =>
        {
            let c = SloConfig::from_yaml(BUILTIN_SLO_YAML).context("invalid built-in SLO file")?;
            Ok((c, "built-in observability/slo.yaml".into()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read SLO file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        c: TelemetryConfig,
    }

    #[test]
    fn defaults_match_default_impl() {
        let parsed = Cli::try_parse_from(["x"]).unwrap().c;
        let d = TelemetryConfig::default();
        assert_eq!(parsed.listen.grpc_addr, d.listen.grpc_addr);
        assert_eq!(parsed.listen.metrics_addr, d.listen.metrics_addr);
        assert_eq!(parsed.scrape_targets, d.scrape_targets);
        assert_eq!(parsed.scrape_targets.0.len(), 4);
        assert_eq!(parsed.scrape_interval, d.scrape_interval);
        assert_eq!(parsed.scrape_timeout, d.scrape_timeout);
        assert_eq!(parsed.slo_file, d.slo_file);
    }

    #[test]
    fn flags() {
        let c = Cli::try_parse_from([
            "x",
            "--scrape-targets",
            "query=127.0.0.1:1",
            "--scrape-interval",
            "1s",
            "--scrape-timeout",
            "10s",
        ])
        .unwrap()
        .c;
        assert_eq!(c.scrape_targets.0[0].service, "query");
        assert_eq!(c.effective_timeout(), Duration::from_secs(1));
        assert!(Cli::try_parse_from(["x", "--scrape-targets", "nope"]).is_err());
        assert!(Cli::try_parse_from(["x", "--scrape-interval", "5"]).is_err());
    }

    #[test]
    fn slo_file_fallback() {
        let dir = tempfile::tempdir().unwrap();
        // The default path: the file when the working directory has it, else the built-in copy.
        let (c, src) = load_slos(Path::new(DEFAULT_SLO_FILE)).unwrap();
        assert!(!c.slos.is_empty());
        if !Path::new(DEFAULT_SLO_FILE).exists() {
            assert_eq!(src, "built-in observability/slo.yaml");
        }
        // Another missing path is an error.
        assert!(load_slos(&dir.path().join("missing.yaml")).is_err());
        // A given file is read.
        let f = dir.path().join("slo.yaml");
        std::fs::write(&f, "slos: []\n").unwrap();
        let (c, src) = load_slos(&f).unwrap();
        assert!(c.slos.is_empty());
        assert_eq!(src, f.display().to_string());
        // The built-in copy parses.
        assert!(
            !SloConfig::from_yaml(BUILTIN_SLO_YAML)
                .unwrap()
                .slos
                .is_empty()
        );
    }
}
