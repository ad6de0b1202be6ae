from google.api import annotations_pb2 as _annotations_pb2
from akidb.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Fusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_UNSPECIFIED: _ClassVar[Fusion]
    RRF: _ClassVar[Fusion]
    DBSF: _ClassVar[Fusion]
FUSION_UNSPECIFIED: Fusion
RRF: Fusion
DBSF: Fusion

class SearchRequest(_message.Message):
    __slots__ = ("collection", "vector", "k", "filter", "ef", "with_payload", "with_vector", "exact", "oversampling", "sparse", "vector_name")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLING_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    filter: _common_pb2.Filter
    ef: int
    with_payload: bool
    with_vector: bool
    exact: bool
    oversampling: float
    sparse: _common_pb2.SparseQuery
    vector_name: str
    def __init__(self, collection: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., ef: _Optional[int] = ..., with_payload: bool = ..., with_vector: bool = ..., exact: bool = ..., oversampling: _Optional[float] = ..., sparse: _Optional[_Union[_common_pb2.SparseQuery, _Mapping]] = ..., vector_name: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "stats", "partial", "missing_shards", "shards", "stale")
    HITS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.ScoredPoint]
    stats: _common_pb2.SearchStats
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    shards: _containers.RepeatedCompositeFieldContainer[ShardRead]
    stale: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.ScoredPoint, _Mapping]]] = ..., stats: _Optional[_Union[_common_pb2.SearchStats, _Mapping]] = ..., partial: bool = ..., missing_shards: _Optional[_Iterable[int]] = ..., shards: _Optional[_Iterable[_Union[ShardRead, _Mapping]]] = ..., stale: bool = ...) -> None: ...

class ShardRead(_message.Message):
    __slots__ = ("shard", "node", "epoch", "version", "log_sequence")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOG_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    shard: int
    node: str
    epoch: int
    version: int
    log_sequence: int
    def __init__(self, shard: _Optional[int] = ..., node: _Optional[str] = ..., epoch: _Optional[int] = ..., version: _Optional[int] = ..., log_sequence: _Optional[int] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("searches",)
    SEARCHES_FIELD_NUMBER: _ClassVar[int]
    searches: _containers.RepeatedCompositeFieldContainer[SearchRequest]
    def __init__(self, searches: _Optional[_Iterable[_Union[SearchRequest, _Mapping]]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_payload", "with_vector")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[_common_pb2.PointId]
    with_payload: bool
    with_vector: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[_common_pb2.PointId, _Mapping]]] = ..., with_payload: bool = ..., with_vector: bool = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.RetrievedPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[_common_pb2.RetrievedPoint, _Mapping]]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _common_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "limit", "cursor", "with_payload", "with_vector")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _common_pb2.Filter
    limit: int
    cursor: str
    with_payload: bool
    with_vector: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., with_payload: bool = ..., with_vector: bool = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("points", "next_cursor")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.RetrievedPoint]
    next_cursor: str
    def __init__(self, points: _Optional[_Iterable[_Union[_common_pb2.RetrievedPoint, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("collection", "branches", "fusion", "weights", "k", "with_payload", "with_vector", "rrf_k")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    collection: str
    branches: _containers.RepeatedCompositeFieldContainer[SearchRequest]
    fusion: Fusion
    weights: _containers.RepeatedScalarFieldContainer[float]
    k: int
    with_payload: bool
    with_vector: bool
    rrf_k: int
    def __init__(self, collection: _Optional[str] = ..., branches: _Optional[_Iterable[_Union[SearchRequest, _Mapping]]] = ..., fusion: _Optional[_Union[Fusion, str]] = ..., weights: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., with_payload: bool = ..., with_vector: bool = ..., rrf_k: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("hits", "branches", "partial", "missing_shards", "stale")
    HITS_FIELD_NUMBER: _ClassVar[int]
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.ScoredPoint]
    branches: _containers.RepeatedCompositeFieldContainer[BranchStats]
    partial: bool
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    stale: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.ScoredPoint, _Mapping]]] = ..., branches: _Optional[_Iterable[_Union[BranchStats, _Mapping]]] = ..., partial: bool = ..., missing_shards: _Optional[_Iterable[int]] = ..., stale: bool = ...) -> None: ...

class BranchStats(_message.Message):
    __slots__ = ("stats", "returned")
    STATS_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    stats: _common_pb2.SearchStats
    returned: int
    def __init__(self, stats: _Optional[_Union[_common_pb2.SearchStats, _Mapping]] = ..., returned: _Optional[int] = ...) -> None: ...
