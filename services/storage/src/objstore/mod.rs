//! The object layer: everything between a collection's snapshot and the object store.
//!
//! - [`store`]: the [`ObjectStore`] trait (put, get, head, list, delete), like raft-engine's
//!   `FileSystem` under all of its I/O, and the rules for keys.
//! - [`error`]: [`ObjectStoreError`], classified from HTTP status codes and I/O error kinds
//!   where it is born, never from message text; [`BreakerOpen`] is one of its variants.
//! - [`local`]: [`LocalDirStore`], a directory on local disk, the embedded default.
//! - [`s3`]: [`S3Store`], S3 (or MinIO, moto, ...) through `minio-rsc`.
//! - [`config`]: the store's flags and environment.
//! - [`breaker`]: [`ResilientStore`], retries with backoff and a circuit breaker around any
//!   store (a pure state machine driving a gate, tested on paused time).
//! - [`dlq`]: the dead-letter queue: uploads that still fail wait on local disk, durable,
//!   and are retried in the background; never evicted.
//! - [`upload`]: [`Uploader`]: to the store, or to the DLQ when the store fails.
//! - [`layer`]: [`ObjectLayer`], the whole layer (store, breaker, DLQ and its retry worker,
//!   uploader) opened from one [`ObjectLayerConfig`].
//! - [`snapshots`]: snapshot copies in the store: keys, upload (manifest last), confirmation,
//!   pruning, download with checksums.
//!
//! A snapshot upload goes: `snapshots` → `upload` → `breaker` → a store (or → `dlq`).

pub mod breaker;
mod config;
pub mod dlq;
pub mod error;
#[cfg(test)]
pub(crate) mod fault;
pub mod layer;
mod local;
mod s3;
pub mod snapshots;
pub mod store;
pub mod upload;

pub use breaker::{Breaker, BreakerConfig, BreakerStatus, ResilientStore, RetryConfig};
pub use config::{ObjectStoreConfig, Secret};
pub use error::{BreakerOpen, BreakerState, ErrorKind, ObjectStoreError, Operation};
pub use layer::{ObjectLayer, ObjectLayerConfig, open};
pub use local::LocalDirStore;
pub use s3::{S3Settings, S3Store};
pub use snapshots::SnapshotStore;
pub use store::{ObjectMeta, ObjectStore};
pub use upload::{UploadOutcome, Uploader};
