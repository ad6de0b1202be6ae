from google.api import annotations_pb2 as _annotations_pb2
from akidb.v1 import common_pb2 as _common_pb2
from akidb.v1 import collection_pb2 as _collection_pb2
from akidb.v1 import ingest_pb2 as _ingest_pb2
from akidb.v1 import query_pb2 as _query_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    CLOSED: _ClassVar[BreakerState]
    OPEN: _ClassVar[BreakerState]
    HALF_OPEN: _ClassVar[BreakerState]
BREAKER_STATE_UNSPECIFIED: BreakerState
CLOSED: BreakerState
OPEN: BreakerState
HALF_OPEN: BreakerState

class CollectionTierStatus(_message.Message):
    __slots__ = ("name", "tier", "pinned", "bytes_in_memory", "bytes_on_disk", "bytes_in_object_store", "last_access_unix_ms", "moving_to")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_MEMORY_FIELD_NUMBER: _ClassVar[int]
    BYTES_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_OBJECT_STORE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESS_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MOVING_TO_FIELD_NUMBER: _ClassVar[int]
    name: str
    tier: _common_pb2.Tier
    pinned: bool
    bytes_in_memory: int
    bytes_on_disk: int
    bytes_in_object_store: int
    last_access_unix_ms: int
    moving_to: _common_pb2.Tier
    def __init__(self, name: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., pinned: bool = ..., bytes_in_memory: _Optional[int] = ..., bytes_on_disk: _Optional[int] = ..., bytes_in_object_store: _Optional[int] = ..., last_access_unix_ms: _Optional[int] = ..., moving_to: _Optional[_Union[_common_pb2.Tier, str]] = ...) -> None: ...

class TierStatusRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class TierStatusResponse(_message.Message):
    __slots__ = ("collections", "hot_memory_budget_bytes", "hot_memory_used_bytes")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    HOT_MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    HOT_MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionTierStatus]
    hot_memory_budget_bytes: int
    hot_memory_used_bytes: int
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionTierStatus, _Mapping]]] = ..., hot_memory_budget_bytes: _Optional[int] = ..., hot_memory_used_bytes: _Optional[int] = ...) -> None: ...

class TierMoveRequest(_message.Message):
    __slots__ = ("collection", "target")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    collection: str
    target: _common_pb2.Tier
    def __init__(self, collection: _Optional[str] = ..., target: _Optional[_Union[_common_pb2.Tier, str]] = ...) -> None: ...

class TierMoveResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: CollectionTierStatus
    def __init__(self, status: _Optional[_Union[CollectionTierStatus, _Mapping]] = ...) -> None: ...

class PinRequest(_message.Message):
    __slots__ = ("collection", "pinned")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    pinned: bool
    def __init__(self, collection: _Optional[str] = ..., pinned: bool = ...) -> None: ...

class PinResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: CollectionTierStatus
    def __init__(self, status: _Optional[_Union[CollectionTierStatus, _Mapping]] = ...) -> None: ...

class SnapshotInfo(_message.Message):
    __slots__ = ("collection", "id", "sequence", "created_unix_ms", "size_bytes", "point_count", "uploaded")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    id: str
    sequence: int
    created_unix_ms: int
    size_bytes: int
    point_count: int
    uploaded: bool
    def __init__(self, collection: _Optional[str] = ..., id: _Optional[str] = ..., sequence: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., size_bytes: _Optional[int] = ..., point_count: _Optional[int] = ..., uploaded: bool = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: SnapshotInfo
    def __init__(self, snapshot: _Optional[_Union[SnapshotInfo, _Mapping]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[SnapshotInfo]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[SnapshotInfo, _Mapping]]] = ...) -> None: ...

class DownloadSnapshotRequest(_message.Message):
    __slots__ = ("collection", "snapshot_id", "create")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    snapshot_id: str
    create: bool
    def __init__(self, collection: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., create: bool = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("info", "data", "end")
    INFO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    info: SnapshotInfo
    data: bytes
    end: SnapshotArchiveEnd
    def __init__(self, info: _Optional[_Union[SnapshotInfo, _Mapping]] = ..., data: _Optional[bytes] = ..., end: _Optional[_Union[SnapshotArchiveEnd, _Mapping]] = ...) -> None: ...

class SnapshotArchiveEnd(_message.Message):
    __slots__ = ("size_bytes", "sha256")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    sha256: str
    def __init__(self, size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class RestoreSnapshotRequest(_message.Message):
    __slots__ = ("start", "data")
    START_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    start: RestoreSnapshotStart
    data: bytes
    def __init__(self, start: _Optional[_Union[RestoreSnapshotStart, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class RestoreSnapshotStart(_message.Message):
    __slots__ = ("collection", "sha256", "object_key")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    sha256: str
    object_key: str
    def __init__(self, collection: _Optional[str] = ..., sha256: _Optional[str] = ..., object_key: _Optional[str] = ...) -> None: ...

class RestoreSnapshotResponse(_message.Message):
    __slots__ = ("snapshot", "archive")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    snapshot: SnapshotInfo
    archive: SnapshotArchiveEnd
    def __init__(self, snapshot: _Optional[_Union[SnapshotInfo, _Mapping]] = ..., archive: _Optional[_Union[SnapshotArchiveEnd, _Mapping]] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("segments_before", "segments_after", "tombstones_removed")
    SEGMENTS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_AFTER_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    segments_before: int
    segments_after: int
    tombstones_removed: int
    def __init__(self, segments_before: _Optional[int] = ..., segments_after: _Optional[int] = ..., tombstones_removed: _Optional[int] = ...) -> None: ...

class DlqEntry(_message.Message):
    __slots__ = ("id", "collection", "object_key", "size_bytes", "attempts", "first_failed_unix_ms", "next_retry_unix_ms", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_FAILED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    collection: str
    object_key: str
    size_bytes: int
    attempts: int
    first_failed_unix_ms: int
    next_retry_unix_ms: int
    last_error: str
    def __init__(self, id: _Optional[str] = ..., collection: _Optional[str] = ..., object_key: _Optional[str] = ..., size_bytes: _Optional[int] = ..., attempts: _Optional[int] = ..., first_failed_unix_ms: _Optional[int] = ..., next_retry_unix_ms: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class DlqListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DlqListResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DlqEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[DlqEntry, _Mapping]]] = ...) -> None: ...

class DlqRetryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DlqRetryResponse(_message.Message):
    __slots__ = ("succeeded", "failed")
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    succeeded: int
    failed: int
    def __init__(self, succeeded: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class DlqPurgeRequest(_message.Message):
    __slots__ = ("id", "all")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    id: str
    all: bool
    def __init__(self, id: _Optional[str] = ..., all: bool = ...) -> None: ...

class DlqPurgeResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class BreakerGetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BreakerResetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BreakerStatus(_message.Message):
    __slots__ = ("state", "consecutive_failures", "failure_ratio", "open_until_unix_ms", "remote")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    OPEN_UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    state: BreakerState
    consecutive_failures: int
    failure_ratio: float
    open_until_unix_ms: int
    remote: bool
    def __init__(self, state: _Optional[_Union[BreakerState, str]] = ..., consecutive_failures: _Optional[int] = ..., failure_ratio: _Optional[float] = ..., open_until_unix_ms: _Optional[int] = ..., remote: bool = ...) -> None: ...

class WalStatusRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class WalStatusResponse(_message.Message):
    __slots__ = ("last_sequence", "snapshot_sequence", "segment_count", "size_bytes", "fsync_policy")
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FSYNC_POLICY_FIELD_NUMBER: _ClassVar[int]
    last_sequence: int
    snapshot_sequence: int
    segment_count: int
    size_bytes: int
    fsync_policy: str
    def __init__(self, last_sequence: _Optional[int] = ..., snapshot_sequence: _Optional[int] = ..., segment_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., fsync_policy: _Optional[str] = ...) -> None: ...

class ShardLogEntry(_message.Message):
    __slots__ = ("epoch", "write_id", "upsert", "delete", "fence", "set_payloads")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    WRITE_ID_FIELD_NUMBER: _ClassVar[int]
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    SET_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    write_id: str
    upsert: _ingest_pb2.UpsertRequest
    delete: _ingest_pb2.DeleteRequest
    fence: ShardLogFence
    set_payloads: PointPayloads
    def __init__(self, epoch: _Optional[int] = ..., write_id: _Optional[str] = ..., upsert: _Optional[_Union[_ingest_pb2.UpsertRequest, _Mapping]] = ..., delete: _Optional[_Union[_ingest_pb2.DeleteRequest, _Mapping]] = ..., fence: _Optional[_Union[ShardLogFence, _Mapping]] = ..., set_payloads: _Optional[_Union[PointPayloads, _Mapping]] = ...) -> None: ...

class PointPayloads(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[PointPayload]
    def __init__(self, points: _Optional[_Iterable[_Union[PointPayload, _Mapping]]] = ...) -> None: ...

class PointPayload(_message.Message):
    __slots__ = ("id", "payload")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: _common_pb2.PointId
    payload: _struct_pb2.Struct
    def __init__(self, id: _Optional[_Union[_common_pb2.PointId, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ShardLogFence(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...
