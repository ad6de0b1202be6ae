//! What a call to the object store can fail with, classified where the error is born.

use std::fmt;
use std::time::Duration;

/// The object store operations, as the `operation` label of `akidb_s3_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Put,
    Get,
    Head,
    List,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Put,
        Operation::Get,
        Operation::Head,
        Operation::List,
        Operation::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::Head => "head",
            Operation::List => "list",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of an [`ObjectStoreError`], for matching without fields and as a log/metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Transient,
    NotFound,
    Permanent,
    BreakerOpen,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Permanent => "permanent",
            ErrorKind::BreakerOpen => "breaker_open",
        }
    }
}

/// A failed object store call.
///
/// Classification is done where the error is born, from structured facts only: the HTTP
/// status code, the `reqwest` error class (connect, timeout, body), the S3 error *code*
/// field, or the `std::io::ErrorKind`. `detail` is for people and is never inspected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectStoreError {
    /// The store did not answer, or answered "try again later": a timeout, a refused or reset
    /// connection, HTTP 408, 429 or 5xx, a full or failing local disk. Retrying may succeed;
    /// [`super::breaker::ResilientStore`] retries these and counts them as breaker failures.
    #[error("object store {op} of `{key}` failed (transient; retrying may succeed): {detail}")]
    Transient {
        op: Operation,
        key: String,
        detail: String,
    },
    /// The object does not exist (HTTP 404 on get/head, `ENOENT` in the local directory).
    /// The store answered, so this is not a breaker failure.
    #[error("object `{key}` not found in the object store")]
    NotFound { key: String },
    /// The request cannot succeed as sent: an invalid key, access denied, a missing bucket,
    /// any other 4xx, an unparseable answer. Not retried and not a breaker failure (the store
    /// is up; the request or the configuration is wrong).
    #[error("object store {op} of `{key}` failed: {detail}")]
    Permanent {
        op: Operation,
        key: String,
        detail: String,
    },
    /// The circuit breaker is open: the call failed fast without reaching the store.
    #[error(transparent)]
    BreakerOpen(#[from] BreakerOpen),
}

impl ObjectStoreError {
    pub fn transient(op: Operation, key: impl Into<String>, detail: impl fmt::Display) -> Self {
        ObjectStoreError::Transient {
            op,
            key: key.into(),
            detail: detail.to_string(),
        }
    }

    pub fn permanent(op: Operation, key: impl Into<String>, detail: impl fmt::Display) -> Self {
        ObjectStoreError::Permanent {
            op,
            key: key.into(),
            detail: detail.to_string(),
        }
    }

    pub fn not_found(key: impl Into<String>) -> Self {
        ObjectStoreError::NotFound { key: key.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ObjectStoreError::Transient { .. } => ErrorKind::Transient,
            ObjectStoreError::NotFound { .. } => ErrorKind::NotFound,
            ObjectStoreError::Permanent { .. } => ErrorKind::Permanent,
            ObjectStoreError::BreakerOpen(_) => ErrorKind::BreakerOpen,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Classify a local I/O error (local directory store, reading a file to upload) by kind.
    pub fn from_io(op: Operation, key: &str, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => ObjectStoreError::not_found(key),
            K::PermissionDenied
            | K::InvalidInput
            | K::InvalidData
            | K::ReadOnlyFilesystem
            | K::IsADirectory
            | K::NotADirectory
            | K::DirectoryNotEmpty
            | K::InvalidFilename
            | K::FileTooLarge
            | K::Unsupported
            | K::AlreadyExists => ObjectStoreError::permanent(op, key, e),
            // Full disk, quota, EIO, interrupted, timed out, ...: may clear up.
            _ => ObjectStoreError::transient(op, key, e),
        }
    }
}

/// The circuit breaker's state, as the `state` label of `akidb_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call failed fast because the breaker is open (or half-open with all probes busy).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "object store circuit breaker is {state}: calls fail fast for about {} ms more after repeated failures (inspect with `akidb admin breaker get`)",
    retry_in.as_millis()
)]
pub struct BreakerOpen {
    pub state: BreakerState,
    /// Time until probes are let through again (zero while half-open probes are running).
    pub retry_in: Duration,
}

pub type Result<T, E = ObjectStoreError> = std::result::Result<T, E>;
