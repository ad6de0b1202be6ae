//! The storage error and its one mapping to `tonic::Status`.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The caller sent something invalid; nothing was changed.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("collection `{0}` not found; list collections with `akidb collection list`")]
    CollectionNotFound(String),
    /// Something other than a collection (a DLQ entry, a snapshot) does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("collection `{0}` already exists; delete it first or choose another name")]
    CollectionExists(String),
    /// A size limit or backpressure; the caller may retry later or send less.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (disk, object store) is unavailable for now; retrying may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The operation is not possible in the current state (e.g. still recovering).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Data on disk is damaged.
    #[error("data loss: {0}")]
    DataLoss(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Status {
        let code = match &e {
            StorageError::InvalidArgument(_) => Code::InvalidArgument,
            StorageError::CollectionNotFound(_) => Code::NotFound,
            StorageError::NotFound(_) => Code::NotFound,
            StorageError::CollectionExists(_) => Code::AlreadyExists,
            StorageError::ResourceExhausted(_) => Code::ResourceExhausted,
            StorageError::Unavailable(_) => Code::Unavailable,
            StorageError::FailedPrecondition(_) => Code::FailedPrecondition,
            StorageError::DataLoss(_) => Code::DataLoss,
            StorageError::Io(_) => Code::Internal,
            StorageError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
