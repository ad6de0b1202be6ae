"""AkiDB's Python client.

    >>> from akidb import AkiDB                      # doctest: +SKIP
    >>> db = AkiDB("localhost")                      # doctest: +SKIP
    >>> db.search("docs", [0.1, 0.2, 0.3], k=5)      # doctest: +SKIP

:class:`AkiDB` is the synchronous client, :class:`AsyncAkiDB` (``akidb.aio``) the asyncio
one; :mod:`akidb.filters` builds filters, :mod:`akidb.errors` has one exception per gRPC
status code, :mod:`akidb.models` the values calls return. The generated protobuf modules are
``akidb.v1.*_pb2``.
"""
from akidb._client import AkiDB
from akidb._convert import SparseVector
from akidb.aio import AsyncAkiDB
from akidb.errors import (
    AbortedError,
    AkiDBError,
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from akidb.filters import Condition, DatetimeRange, Field, Filter, Range, has_id
from akidb.models import (
    Alias,
    BranchStats,
    CollectionInfo,
    CreateAlias,
    Datatype,
    DeleteAlias,
    DeleteResult,
    Dense,
    FlushResult,
    Fusion,
    Metric,
    NamedVectorParams,
    PayloadIndex,
    Point,
    Quantization,
    QueryResult,
    Record,
    ScoredPoint,
    ScrollPage,
    SearchResult,
    SearchStats,
    SnapshotInfo,
    Sparse,
    Tier,
    TierStatus,
    UpdateResult,
    UpsertResult,
)

__version__ = "0.1.0"

__all__ = [
    "AkiDB",
    "AsyncAkiDB",
    # errors
    "AkiDBError",
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    # filters
    "Condition",
    "DatetimeRange",
    "Field",
    "Filter",
    "Range",
    "has_id",
    # models
    "Alias",
    "BranchStats",
    "CollectionInfo",
    "CreateAlias",
    "Datatype",
    "DeleteAlias",
    "DeleteResult",
    "Dense",
    "FlushResult",
    "Fusion",
    "Metric",
    "NamedVectorParams",
    "PayloadIndex",
    "Point",
    "Quantization",
    "QueryResult",
    "Record",
    "ScoredPoint",
    "ScrollPage",
    "SearchResult",
    "SearchStats",
    "SnapshotInfo",
    "Sparse",
    "SparseVector",
    "Tier",
    "TierStatus",
    "UpdateResult",
    "UpsertResult",
    "__version__",
]
