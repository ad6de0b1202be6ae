//! Storage service configuration (flags and environment variables).

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct StorageConfig {
    /// gRPC listen address.
    #[arg(
        long = "grpc-addr",
        env = "AKIDB_STORAGE_GRPC_ADDR",
        default_value = "127.0.0.1:50053"
    )]
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address.
    #[arg(
        long = "metrics-addr",
        env = "AKIDB_STORAGE_METRICS_ADDR",
        default_value = "127.0.0.1:9103"
    )]
    pub metrics_addr: SocketAddr,
    /// Data directory (WAL, segments, snapshots, local object store).
    #[arg(
        long = "data-dir",
        env = "AKIDB_DATA_DIR",
        default_value = "./akidb-data/storage"
    )]
    pub data_dir: PathBuf,
}
