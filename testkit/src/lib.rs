//! Test helpers shared by the tests and benchmarks of every AkiDB crate. A dev-dependency
//! only: nothing here ships.
//!
//! - [`require`]: what a test does when something it needs is not there (a data set, the
//!   moto binary, a tool): under `CI=true` it fails, saying what is missing and how to get
//!   it; elsewhere it skips with a loud banner on stderr.
//! - [`ports`]: free loopback ports.
//! - [`moto`]: a real S3 server (`moto_server`) per test, paused and resumed with signals,
//!   and boto3 as an independent client to check what is in a bucket.
//! - [`etcd`]: a real etcd server (Debian's `etcd-server`) per test, paused and resumed
//!   with signals.
//! - [`proxy`]: a TCP proxy that passes, refuses or delays connections (S3 outages and
//!   slowness).
//! - [`datasets`]: where the shared benchmark data sets are (`AKIDB_DATASETS`) and their
//!   vectors.
//! - [`server`]: a server run as a child process (moto, etcd): waited for over HTTP, paused
//!   and resumed with signals, killed on drop.
//! - [`promtool`]: `promtool check metrics` on scraped metrics.
//!
//! Crate-specific helpers (starting `akidb-storage`, a stack of `akidb serve` processes)
//! stay in that crate's `tests/common/`.

pub mod datasets;
pub mod etcd;
pub mod moto;
pub mod ports;
pub mod promtool;
pub mod proxy;
pub mod require;
pub mod server;
