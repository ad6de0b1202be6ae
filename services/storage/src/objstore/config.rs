//! Object store flags and environment variables.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A credential. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value. Call only where it is handed to the client that signs requests.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("***")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Default S3 request timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default multipart part size: objects larger than this are uploaded in parts of this size.
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
/// S3's smallest allowed part (except the last one).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest allowed part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Where objects go: S3 when `--s3-endpoint` is set, else a local directory.
///
/// Credentials are best passed through the environment (`AKIDB_S3_ACCESS_KEY`,
/// `AKIDB_S3_SECRET_KEY`): flags are visible in the process list. `--help` never prints
/// their values, and `Debug` redacts them.
#[derive(Clone, clap::Args)]
pub struct ObjectStoreConfig {
    /// S3 endpoint: `http://host:port` or `https://host[:port]` (a bare host means https).
    /// Unset: objects go to the local directory (`--object-dir`).
    #[arg(long = "s3-endpoint", env = "AKIDB_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Bucket; created at start-up if it does not exist.
    #[arg(long = "s3-bucket", env = "AKIDB_S3_BUCKET", default_value = "akidb")]
    pub bucket: String,
    /// Region used to sign requests and to create the bucket.
    #[arg(
        long = "s3-region",
        env = "AKIDB_S3_REGION",
        default_value = "us-west-2"
    )]
    pub region: String,
    /// Access key id.
    #[arg(
        long = "s3-access-key",
        env = "AKIDB_S3_ACCESS_KEY",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub access_key: Secret,
    /// Secret access key.
    #[arg(
        long = "s3-secret-key",
        env = "AKIDB_S3_SECRET_KEY",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub secret_key: Secret,
    /// Path-style URLs (`http://host/bucket/key`, what MinIO and moto expect); `false` for
    /// virtual-hosted style (`http://bucket.host/key`).
    #[arg(
        long = "s3-path-style",
        env = "AKIDB_S3_PATH_STYLE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub path_style: bool,
    /// Timeout of one S3 request, including reading the answer (ms). An unresponsive server
    /// fails the call after this long.
    #[arg(long = "s3-timeout-ms", env = "AKIDB_S3_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// Timeout for opening a TCP connection to S3 (ms); capped at `--s3-timeout-ms`.
    #[arg(
        long = "s3-connect-timeout-ms",
        env = "AKIDB_S3_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub connect_timeout_ms: u64,
    /// Multipart part size in bytes (5 MiB to 5 GiB): larger objects are uploaded in parts of
    /// this size, each part its own request with its own timeout.
    #[arg(long = "s3-part-size", env = "AKIDB_S3_PART_SIZE", default_value_t = DEFAULT_PART_SIZE)]
    pub part_size: u64,
    /// Local object directory when no S3 endpoint is set. Default: `<data-dir>/objects`.
    #[arg(long = "object-dir", env = "AKIDB_OBJECT_DIR")]
    pub local_dir: Option<PathBuf>,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig {
            endpoint: None,
            bucket: "akidb".into(),
            region: "us-west-2".into(),
            access_key: Secret::default(),
            secret_key: Secret::default(),
            path_style: true,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            connect_timeout_ms: 5_000,
            part_size: DEFAULT_PART_SIZE,
            local_dir: None,
        }
    }
}

impl fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .field("path_style", &self.path_style)
            .field("timeout_ms", &self.timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("part_size", &self.part_size)
            .field("local_dir", &self.local_dir)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: ObjectStoreConfig,
    }

    #[test]
    fn defaults_and_flags() {
        let c = Cli::parse_from(["x"]).store;
        assert_eq!(c.endpoint, None);
        assert_eq!(c.bucket, "akidb");
        assert_eq!(c.region, "us-west-2");
        assert!(c.path_style);
        assert_eq!(c.part_size, DEFAULT_PART_SIZE);
        let c = Cli::parse_from([
            "x",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-path-style",
            "false",
            "--s3-secret-key",
            "hunter2",
        ])
        .store;
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!c.path_style);
        assert_eq!(c.secret_key.expose(), "hunter2");
    }

    #[test]
    fn debug_redacts_credentials() {
        let c = ObjectStoreConfig {
            access_key: Secret::new("AKIAEXAMPLEKEY"),
            secret_key: Secret::new("hunter2-very-secret"),
            ..Default::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains("AKIAEXAMPLEKEY"), "{s}");
        assert!(s.contains("***"));
    }
}
