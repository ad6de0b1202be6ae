//! The storage error, and its one mapping to `tonic::Status`.
//!
//! Each variant is one thing that can go wrong, with its facts as fields (as Qdrant's
//! `WrongVector { expected_dim, received_dim }`); its message, written once in its `Display`,
//! says what to do about it. `From<StorageError> for Status` maps every variant to its gRPC
//! code in one exhaustive match without a catch-all arm, so a new variant does not compile
//! until it has a code. The layers below keep errors of their own ([`ObjectStoreError`],
//! [`DlqError`], [`UploadError`]), wrapped here unchanged.
//!
//! Tests match on variants, never on message text.

use crate::objstore::dlq::DlqError;
use crate::objstore::error::ObjectStoreError;
use crate::objstore::upload::UploadError;
use akidb_proto::limits::{NameProblem, OutOfRange};
use std::path::PathBuf;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    // ---- The request is invalid (INVALID_ARGUMENT); nothing was changed.
    #[error(transparent)]
    InvalidName(#[from] NameProblem),
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error(
        "{what}: vector has {received} components but collection `{collection}` has dimension {expected}"
    )]
    WrongDimension {
        /// The vector's role: `query`, `point 7`.
        what: String,
        collection: String,
        expected: u32,
        received: usize,
    },
    #[error(
        "{what}: named vector `{name}` has {received} components but collection `{collection}` declares it with dimension {expected}"
    )]
    WrongNamedDimension {
        what: String,
        name: String,
        collection: String,
        expected: u32,
        received: usize,
    },
    #[error("{what}: component {index} is {value}; vectors must be finite")]
    NotFinite {
        what: String,
        index: usize,
        value: f32,
    },
    #[error(
        "point {point}: component {index} is {value}, outside the float16 range of collection `{collection}` (±{max}); scale the vectors or declare them with datatype FLOAT32",
        max = crate::distance::F16_MAX
    )]
    OutsideFloat16 {
        point: String,
        index: usize,
        value: f32,
        collection: String,
    },
    #[error("{0}")]
    EmptyRequest(EmptyRequest),
    #[error(transparent)]
    InvalidFilter(#[from] FilterProblem),
    #[error(transparent)]
    InvalidField(#[from] FieldProblem),
    #[error("snapshot archive refused: {0}; nothing was restored")]
    InvalidArchive(String),

    // ---- Something named does not exist (NOT_FOUND) or already does (ALREADY_EXISTS).
    #[error("collection `{0}` not found; list collections with `akidb collection list`")]
    CollectionNotFound(String),
    #[error(
        "collection `{collection}` has no point {id}; UpdateVectors changes existing points (Upsert creates them)"
    )]
    PointNotFound { collection: String, id: String },
    #[error(
        "collection `{collection}` has no snapshot `{}`; list them with `akidb admin snapshot list {collection}`",
        id.escape_default()
    )]
    SnapshotNotFound { collection: String, id: String },
    #[error(
        "collection `{0}` has no snapshot yet; take one with `akidb admin snapshot create {0}` (or download with --new)"
    )]
    NoSnapshotYet(String),
    #[error("the object store has no object `{}`", .0.escape_default())]
    ObjectNotFound(String),
    #[error("collection `{0}` already exists; delete it first or choose another name")]
    CollectionExists(String),
    #[error(
        "`{name}` is an alias of collection `{collection}`; delete the alias first or choose another name"
    )]
    NameIsAlias { name: String, collection: String },

    // ---- Not possible in the current state (UNAVAILABLE while recovering; else
    //      FAILED_PRECONDITION).
    #[error("storage is recovering its WAL; retry in a moment")]
    Recovering,
    #[error(
        "collection `{0}` is pinned to the hot tier; unpin it first (`akidb admin tier unpin {0}`)"
    )]
    Pinned(String),
    #[error("no object store is configured; the cold tier is not available")]
    NoObjectStore,
    #[error("collection `{0}` has no local snapshot to move to the cold tier")]
    NoLocalSnapshot(String),
    #[error(
        "the archive's files need {needed} bytes and the data directory has {available} to spare; free space first"
    )]
    ArchiveTooLarge { needed: u64, available: u64 },

    // ---- A dependency failed (mapped by its own kind).
    #[error("object store: {0}")]
    ObjectStore(#[from] ObjectStoreError),
    /// Boxed, as the dead-letter queue error: they are large and rare.
    #[error(transparent)]
    Upload(Box<UploadError>),
    #[error(transparent)]
    Dlq(Box<DlqError>),
    #[error("object store has not confirmed `{key}`")]
    NotConfirmed { key: String },
    #[error(transparent)]
    Wal(#[from] WalFailure),

    // ---- Data on disk, or fetched from the object store, is damaged (DATA_LOSS).
    #[error("data loss: {what} {} is unreadable: {reason}", path.display())]
    Unreadable {
        /// `snapshot file`, `snapshot manifest`, `collection spec`, `tier record`.
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("data loss: snapshot file {} does not match its manifest checksum", path.display())]
    ChecksumMismatch { path: PathBuf },
    #[error(
        "data loss: downloaded snapshot file {} does not match its checksum ({size} bytes, expected {expected_size})",
        path.display()
    )]
    DownloadMismatch {
        path: PathBuf,
        size: u64,
        expected_size: u64,
    },
    #[error("data loss: {what} {} is damaged: {problem}", path.display())]
    Damaged {
        /// `snapshot segment`, `snapshot graph`, `HNSW graph`.
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error(
        "data loss: WAL file {} is corrupt at byte offset {offset}: {problem}. Restore from a snapshot, or start with --wal-recovery skip-corrupt to skip damaged records (their writes are lost)",
        path.display()
    )]
    WalCorrupt {
        path: PathBuf,
        offset: usize,
        problem: String,
    },
    #[error("data loss: collection `{0}` is cold but has no record of its object-store copy")]
    ColdCopyMissing(String),

    // ---- Everything else (INTERNAL).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    WorkerFailed(String),
}

/// A request that carries nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyRequest {
    Upsert,
    SearchBatch,
    /// A delete with neither ids nor a filter.
    Delete,
    /// A payload update with neither ids nor a filter.
    UpdatePayload,
    /// A payload update that changes nothing.
    PayloadChange,
    /// A vector update of no point.
    UpdateVectors,
}

impl std::fmt::Display for EmptyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EmptyRequest::Upsert => "upsert batch is empty; send at least one point",
            EmptyRequest::SearchBatch => "search batch is empty",
            EmptyRequest::UpdateVectors => {
                "update_vectors needs at least one point with the vectors to replace"
            }
            EmptyRequest::Delete => {
                "delete needs ids or a non-empty filter; to drop everything delete the collection"
            }
            EmptyRequest::UpdatePayload => {
                "update_payload needs ids or a non-empty filter naming the points to change"
            }
            EmptyRequest::PayloadChange => {
                "update_payload needs a change: `set` (at least one key), `overwrite`, `delete_keys` (at least one non-empty key) or `clear` = true"
            }
        })
    }
}

/// Why a filter is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterProblem {
    #[error("filter is nested deeper than {max} levels; flatten it")]
    TooDeep { max: usize },
    #[error("filter has more than {max} conditions; split the request or use any_of")]
    TooManyConditions { max: usize },
    #[error("filter field key `{key}` is empty or has an empty path segment")]
    EmptyKey { key: String },
    #[error("range condition on `{key}` has no bound; set gt, gte, lt or lte")]
    RangeWithoutBound { key: String },
    #[error("range condition on `{key}` has a NaN or infinite bound")]
    RangeNotFinite { key: String },
    #[error("filter condition is empty; set field, has_id or filter")]
    EmptyCondition,
    #[error("condition on `{key}` has no match; set keyword, integer, boolean, any_of or range")]
    NoMatch { key: String },
    #[error("any_of on `{key}` must list either keywords or integers (exactly one kind)")]
    AnyOfMixed { key: String },
    #[error(
        "datetime bound `{}` on `{key}` is neither an RFC 3339 date-time (2004-12-31T18:30:00Z) nor a date (2004-12-31)",
        value.escape_default()
    )]
    BadDatetime { key: String, value: String },
    #[error("geo condition on `{key}` needs `{what}`")]
    GeoMissing { key: String, what: &'static str },
    #[error(
        "geo point on `{key}` has latitude {lat} and longitude {lon}; latitudes are -90 to 90, longitudes -180 to 180"
    )]
    GeoOutOfRange { key: String, lat: f64, lon: f64 },
    #[error("geo radius on `{key}` is {radius} m; give a positive, finite number of meters")]
    GeoRadius { key: String, radius: f64 },
    #[error("geo box on `{key}`: top_left's latitude is below bottom_right's")]
    GeoBoxUpsideDown { key: String },
    #[error("text match on `{key}` has no word (letters or digits) to look for")]
    NoWords { key: String },
    #[error("min_should needs min_count from 1 to its {conditions} conditions, got {min_count}")]
    MinShould { min_count: usize, conditions: usize },
}

/// A field of a request that is missing or malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldProblem {
    #[error("point id is missing; set `num` or `uuid`")]
    MissingPointId,
    #[error("point id `{}` is not a UUID: {reason}", id.escape_default())]
    NotUuid { id: String, reason: String },
    #[error("metric must be COSINE, L2 or DOT, got {0}")]
    Metric(i32),
    #[error("datatype must be FLOAT32 or FLOAT16 (or unset for FLOAT32), got {0}")]
    Datatype(i32),
    #[error("quantization must be QUANTIZATION_NONE, INT8 or BINARY (or unset for none), got {0}")]
    Quantization(i32),
    #[error("{}", akidb_proto::limits::BINARY_NEEDS_ANGLE)]
    BinaryNeedsAngle,
    #[error(transparent)]
    Oversampling(#[from] akidb_proto::limits::BadOversampling),
    #[error("target tier must be HOT, WARM or COLD, got {0}")]
    Tier(i32),
    #[error("set the target tier (HOT, WARM or COLD)")]
    TierUnset,
    #[error("promote targets HOT or WARM; use demote to move to COLD")]
    PromoteToCold,
    #[error("demote targets WARM or COLD")]
    DemoteToHot,
    #[error("payload number {0} is not finite")]
    PayloadNotFinite(f64),
    #[error("scroll cursor `{}` is not one this server issued", .0.escape_default())]
    Cursor(String),
    #[error("object key: {0}")]
    ObjectKey(String),
    #[error(
        "payload index on `{key}`: kind must be KEYWORD, INTEGER, FLOAT, BOOL, DATETIME, GEO or TEXT, got {kind}"
    )]
    IndexKind { key: String, kind: i32 },
    #[error(
        "payload index key `{}` is empty or has an empty path segment",
        .0.escape_default()
    )]
    IndexKey(String),
    #[error("at most {max} payload indexes may be declared, got {got}")]
    TooManyIndexes { max: usize, got: usize },
    #[error("{what}: sparse vector `{name}`: {problem}")]
    Sparse {
        what: String,
        name: String,
        problem: akidb_proto::limits::SparseProblem,
    },
    #[error(transparent)]
    VectorName(#[from] akidb_proto::limits::BadVectorName),
    #[error(
        "{what}: collection `{collection}` has no sparse vector `{name}` (it declares: {declared})"
    )]
    UnknownSparse {
        what: String,
        collection: String,
        name: String,
        /// The names it declares, comma-separated, or `none`.
        declared: String,
    },
    #[error("at most {max} sparse vectors may be declared, got {got}")]
    TooManySparse { max: usize, got: usize },
    #[error(
        "{what}: collection `{collection}` has no named vector `{name}` (it declares: {declared})"
    )]
    UnknownVector {
        what: String,
        collection: String,
        name: String,
        /// The names it declares, comma-separated, or `none`.
        declared: String,
    },
    #[error("at most {max} named vectors may be declared, got {got}")]
    TooManyNamed { max: usize, got: usize },
    #[error(
        "`{0}` is declared both as a sparse and as a named dense vector; give each its own name"
    )]
    NameTwice(String),
    #[error("query: set either `vector_name` or `sparse`, not both")]
    NamedAndSparse,
    #[error("point {0}: gives no vector to replace")]
    NoVectorGiven(String),
    #[error("query: set either `vector` or `sparse`, not both")]
    DenseAndSparse,
    #[error("query: sparse vector has no entries; it would match no point")]
    EmptySparseQuery,
    #[error("set either snapshot_id or create, not both")]
    SnapshotIdWithCreate,
    #[error("sha256 must be 64 hexadecimal digits (or empty), got `{}`", .0.escape_default())]
    Sha256(String),
    #[error("the first message of RestoreSnapshot must be `start`, naming the new collection")]
    RestoreStart,
    #[error(
        "RestoreSnapshot takes the archive from `start.object_key` or from `data` messages, not both"
    )]
    RestoreSource,
    #[error("name a DLQ entry id, or set all to purge every entry")]
    DlqPurgeTarget,
    #[error(
        "a collection of {0} shards needs several storage nodes: start query and ingest with --etcd (akidb up --storage-nodes N), or create it with shards 1"
    )]
    ShardsNeedCluster(u32),
    #[error(
        "{0} copies of each shard need several storage nodes: start query and ingest with --etcd (akidb up --storage-nodes N), or create it with replication 1"
    )]
    ReplicationNeedsCluster(u32),
}

/// The WAL cannot take writes now.
#[derive(Debug, thiserror::Error)]
pub enum WalFailure {
    #[error("WAL write failed: {0}")]
    Write(std::io::Error),
    #[error("WAL fsync failed: {0}")]
    Fsync(std::io::Error),
    /// An earlier write or fsync failed: the WAL's state on disk is unknown until a restart.
    #[error("the WAL stopped accepting writes after an I/O error ({0}); restart storage")]
    Poisoned(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        use crate::objstore::error::ErrorKind;
        match self {
            StorageError::InvalidName(_)
            | StorageError::OutOfRange(_)
            | StorageError::WrongDimension { .. }
            | StorageError::WrongNamedDimension { .. }
            | StorageError::NotFinite { .. }
            | StorageError::OutsideFloat16 { .. }
            | StorageError::EmptyRequest(_)
            | StorageError::InvalidFilter(_)
            | StorageError::InvalidField(_)
            | StorageError::InvalidArchive(_) => Code::InvalidArgument,
            StorageError::CollectionNotFound(_)
            | StorageError::PointNotFound { .. }
            | StorageError::SnapshotNotFound { .. }
            | StorageError::ObjectNotFound(_) => Code::NotFound,
            StorageError::ArchiveTooLarge { .. } => Code::ResourceExhausted,
            StorageError::CollectionExists(_) | StorageError::NameIsAlias { .. } => {
                Code::AlreadyExists
            }
            StorageError::Recovering => Code::Unavailable,
            StorageError::Pinned(_)
            | StorageError::NoObjectStore
            | StorageError::NoLocalSnapshot(_)
            | StorageError::NoSnapshotYet(_) => Code::FailedPrecondition,
            StorageError::ObjectStore(e) => match e.kind() {
                ErrorKind::Transient | ErrorKind::BreakerOpen => Code::Unavailable,
                // The store answered that an object we recorded is gone.
                ErrorKind::NotFound => Code::DataLoss,
                ErrorKind::Permanent => Code::Internal,
            },
            StorageError::Upload(e) => match e.dlq {
                DlqError::Full { .. } => Code::ResourceExhausted,
                _ => Code::Unavailable,
            },
            StorageError::Dlq(e) => match e.as_ref() {
                DlqError::Full { .. } => Code::ResourceExhausted,
                DlqError::NoSuchEntry(_) => Code::NotFound,
                DlqError::Source { .. } => Code::FailedPrecondition,
                DlqError::Io(_) => Code::Internal,
            },
            StorageError::NotConfirmed { .. } | StorageError::Wal(_) => Code::Unavailable,
            StorageError::Unreadable { .. }
            | StorageError::ChecksumMismatch { .. }
            | StorageError::DownloadMismatch { .. }
            | StorageError::Damaged { .. }
            | StorageError::WalCorrupt { .. }
            | StorageError::ColdCopyMissing(_) => Code::DataLoss,
            StorageError::Io(_) | StorageError::WorkerFailed(_) => Code::Internal,
        }
    }
}

impl From<UploadError> for StorageError {
    fn from(e: UploadError) -> Self {
        StorageError::Upload(Box::new(e))
    }
}

impl From<DlqError> for StorageError {
    fn from(e: DlqError) -> Self {
        StorageError::Dlq(Box::new(e))
    }
}

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code_and_an_actionable_message() {
        let dim = StorageError::WrongDimension {
            what: "query".into(),
            collection: "c".into(),
            expected: 4,
            received: 3,
        };
        assert_eq!(dim.code(), Code::InvalidArgument);
        assert_eq!(
            dim.to_string(),
            "query: vector has 3 components but collection `c` has dimension 4"
        );
        let s = Status::from(StorageError::CollectionNotFound("c".into()));
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().contains("akidb collection list"));
        assert_eq!(StorageError::Recovering.code(), Code::Unavailable);
        let op = crate::objstore::error::Operation::Get;
        assert_eq!(
            StorageError::from(ObjectStoreError::not_found("k")).code(),
            Code::DataLoss
        );
        assert_eq!(
            StorageError::from(ObjectStoreError::transient(op, "k", "timeout")).code(),
            Code::Unavailable
        );
        assert_eq!(
            StorageError::from(ObjectStoreError::permanent(op, "k", "denied")).code(),
            Code::Internal
        );
        assert_eq!(
            StorageError::from(DlqError::NoSuchEntry("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            StorageError::from(WalFailure::Poisoned("fsync failed".into())).code(),
            Code::Unavailable
        );
    }
}
