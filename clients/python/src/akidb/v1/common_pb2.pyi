from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    COSINE: _ClassVar[Metric]
    L2: _ClassVar[Metric]
    DOT: _ClassVar[Metric]

class VectorDatatype(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_DATATYPE_UNSPECIFIED: _ClassVar[VectorDatatype]
    FLOAT32: _ClassVar[VectorDatatype]
    FLOAT16: _ClassVar[VectorDatatype]

class Quantization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUANTIZATION_UNSPECIFIED: _ClassVar[Quantization]
    QUANTIZATION_NONE: _ClassVar[Quantization]
    INT8: _ClassVar[Quantization]
    BINARY: _ClassVar[Quantization]

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    HOT: _ClassVar[Tier]
    WARM: _ClassVar[Tier]
    COLD: _ClassVar[Tier]

class PayloadIndexKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_INDEX_KIND_UNSPECIFIED: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_KEYWORD: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_INTEGER: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_FLOAT: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_BOOL: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_DATETIME: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_GEO: _ClassVar[PayloadIndexKind]
    PAYLOAD_INDEX_TEXT: _ClassVar[PayloadIndexKind]
METRIC_UNSPECIFIED: Metric
COSINE: Metric
L2: Metric
DOT: Metric
VECTOR_DATATYPE_UNSPECIFIED: VectorDatatype
FLOAT32: VectorDatatype
FLOAT16: VectorDatatype
QUANTIZATION_UNSPECIFIED: Quantization
QUANTIZATION_NONE: Quantization
INT8: Quantization
BINARY: Quantization
TIER_UNSPECIFIED: Tier
HOT: Tier
WARM: Tier
COLD: Tier
PAYLOAD_INDEX_KIND_UNSPECIFIED: PayloadIndexKind
PAYLOAD_INDEX_KEYWORD: PayloadIndexKind
PAYLOAD_INDEX_INTEGER: PayloadIndexKind
PAYLOAD_INDEX_FLOAT: PayloadIndexKind
PAYLOAD_INDEX_BOOL: PayloadIndexKind
PAYLOAD_INDEX_DATETIME: PayloadIndexKind
PAYLOAD_INDEX_GEO: PayloadIndexKind
PAYLOAD_INDEX_TEXT: PayloadIndexKind

class PointId(_message.Message):
    __slots__ = ("num", "uuid")
    NUM_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    num: int
    uuid: str
    def __init__(self, num: _Optional[int] = ..., uuid: _Optional[str] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("id", "vector", "payload", "sparse", "vectors")
    class SparseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SparseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SparseVector, _Mapping]] = ...) -> None: ...
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DenseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DenseVector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    id: PointId
    vector: _containers.RepeatedScalarFieldContainer[float]
    payload: _struct_pb2.Struct
    sparse: _containers.MessageMap[str, SparseVector]
    vectors: _containers.MessageMap[str, DenseVector]
    def __init__(self, id: _Optional[_Union[PointId, _Mapping]] = ..., vector: _Optional[_Iterable[float]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., sparse: _Optional[_Mapping[str, SparseVector]] = ..., vectors: _Optional[_Mapping[str, DenseVector]] = ...) -> None: ...

class DenseVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class NamedVectorParams(_message.Message):
    __slots__ = ("dimension", "metric", "hnsw", "datatype", "quantization")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    dimension: int
    metric: Metric
    hnsw: HnswConfig
    datatype: VectorDatatype
    quantization: Quantization
    def __init__(self, dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., hnsw: _Optional[_Union[HnswConfig, _Mapping]] = ..., datatype: _Optional[_Union[VectorDatatype, str]] = ..., quantization: _Optional[_Union[Quantization, str]] = ...) -> None: ...

class SparseVector(_message.Message):
    __slots__ = ("indices", "values")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, indices: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class SparseQuery(_message.Message):
    __slots__ = ("name", "vector")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    vector: SparseVector
    def __init__(self, name: _Optional[str] = ..., vector: _Optional[_Union[SparseVector, _Mapping]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "should", "must_not", "min_should")
    MUST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    MIN_SHOULD_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[Condition]
    should: _containers.RepeatedCompositeFieldContainer[Condition]
    must_not: _containers.RepeatedCompositeFieldContainer[Condition]
    min_should: MinShould
    def __init__(self, must: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., should: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., min_should: _Optional[_Union[MinShould, _Mapping]] = ...) -> None: ...

class MinShould(_message.Message):
    __slots__ = ("conditions", "min_count")
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    min_count: int
    def __init__(self, conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., min_count: _Optional[int] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("field", "has_id", "filter", "is_empty", "is_null", "values_count")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    HAS_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IS_EMPTY_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    VALUES_COUNT_FIELD_NUMBER: _ClassVar[int]
    field: FieldCondition
    has_id: HasIdCondition
    filter: Filter
    is_empty: FieldKey
    is_null: FieldKey
    values_count: ValuesCount
    def __init__(self, field: _Optional[_Union[FieldCondition, _Mapping]] = ..., has_id: _Optional[_Union[HasIdCondition, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., is_empty: _Optional[_Union[FieldKey, _Mapping]] = ..., is_null: _Optional[_Union[FieldKey, _Mapping]] = ..., values_count: _Optional[_Union[ValuesCount, _Mapping]] = ...) -> None: ...

class FieldKey(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class ValuesCount(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: Range
    def __init__(self, key: _Optional[str] = ..., count: _Optional[_Union[Range, _Mapping]] = ...) -> None: ...

class FieldCondition(_message.Message):
    __slots__ = ("key", "keyword", "integer", "boolean", "any_of", "range", "datetime_range", "geo_radius", "geo_bounding_box", "text", "phrase")
    KEY_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    GEO_RADIUS_FIELD_NUMBER: _ClassVar[int]
    GEO_BOUNDING_BOX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    key: str
    keyword: str
    integer: int
    boolean: bool
    any_of: AnyOf
    range: Range
    datetime_range: DatetimeRange
    geo_radius: GeoRadius
    geo_bounding_box: GeoBoundingBox
    text: str
    phrase: str
    def __init__(self, key: _Optional[str] = ..., keyword: _Optional[str] = ..., integer: _Optional[int] = ..., boolean: bool = ..., any_of: _Optional[_Union[AnyOf, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., datetime_range: _Optional[_Union[DatetimeRange, _Mapping]] = ..., geo_radius: _Optional[_Union[GeoRadius, _Mapping]] = ..., geo_bounding_box: _Optional[_Union[GeoBoundingBox, _Mapping]] = ..., text: _Optional[str] = ..., phrase: _Optional[str] = ...) -> None: ...

class DatetimeRange(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: str
    gte: str
    lt: str
    lte: str
    def __init__(self, gt: _Optional[str] = ..., gte: _Optional[str] = ..., lt: _Optional[str] = ..., lte: _Optional[str] = ...) -> None: ...

class GeoPoint(_message.Message):
    __slots__ = ("lat", "lon")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lon: float
    def __init__(self, lat: _Optional[float] = ..., lon: _Optional[float] = ...) -> None: ...

class GeoRadius(_message.Message):
    __slots__ = ("center", "radius_m")
    CENTER_FIELD_NUMBER: _ClassVar[int]
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    center: GeoPoint
    radius_m: float
    def __init__(self, center: _Optional[_Union[GeoPoint, _Mapping]] = ..., radius_m: _Optional[float] = ...) -> None: ...

class GeoBoundingBox(_message.Message):
    __slots__ = ("top_left", "bottom_right")
    TOP_LEFT_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_RIGHT_FIELD_NUMBER: _ClassVar[int]
    top_left: GeoPoint
    bottom_right: GeoPoint
    def __init__(self, top_left: _Optional[_Union[GeoPoint, _Mapping]] = ..., bottom_right: _Optional[_Union[GeoPoint, _Mapping]] = ...) -> None: ...

class AnyOf(_message.Message):
    __slots__ = ("keywords", "integers")
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    integers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, keywords: _Optional[_Iterable[str]] = ..., integers: _Optional[_Iterable[int]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: float
    gte: float
    lt: float
    lte: float
    def __init__(self, gt: _Optional[float] = ..., gte: _Optional[float] = ..., lt: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class HasIdCondition(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedCompositeFieldContainer[PointId]
    def __init__(self, ids: _Optional[_Iterable[_Union[PointId, _Mapping]]] = ...) -> None: ...

class ScoredPoint(_message.Message):
    __slots__ = ("id", "score", "payload", "vector", "sparse", "vectors")
    class SparseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SparseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SparseVector, _Mapping]] = ...) -> None: ...
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DenseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DenseVector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    id: PointId
    score: float
    payload: _struct_pb2.Struct
    vector: _containers.RepeatedScalarFieldContainer[float]
    sparse: _containers.MessageMap[str, SparseVector]
    vectors: _containers.MessageMap[str, DenseVector]
    def __init__(self, id: _Optional[_Union[PointId, _Mapping]] = ..., score: _Optional[float] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., vector: _Optional[_Iterable[float]] = ..., sparse: _Optional[_Mapping[str, SparseVector]] = ..., vectors: _Optional[_Mapping[str, DenseVector]] = ...) -> None: ...

class RetrievedPoint(_message.Message):
    __slots__ = ("id", "payload", "vector", "sparse", "vectors")
    class SparseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SparseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SparseVector, _Mapping]] = ...) -> None: ...
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DenseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DenseVector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    id: PointId
    payload: _struct_pb2.Struct
    vector: _containers.RepeatedScalarFieldContainer[float]
    sparse: _containers.MessageMap[str, SparseVector]
    vectors: _containers.MessageMap[str, DenseVector]
    def __init__(self, id: _Optional[_Union[PointId, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., vector: _Optional[_Iterable[float]] = ..., sparse: _Optional[_Mapping[str, SparseVector]] = ..., vectors: _Optional[_Mapping[str, DenseVector]] = ...) -> None: ...

class HnswConfig(_message.Message):
    __slots__ = ("m", "ef_construction")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dimension", "metric", "point_count", "tier", "hnsw", "pinned", "version", "indexed_point_count", "segment_count", "datatype", "quantization", "on_disk", "shards", "replication", "payload_indexes", "sparse_vectors", "vectors")
    class PayloadIndexesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PayloadIndexKind
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PayloadIndexKind, str]] = ...) -> None: ...
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: NamedVectorParams
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[NamedVectorParams, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INDEXED_POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    ON_DISK_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    SPARSE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: Metric
    point_count: int
    tier: Tier
    hnsw: HnswConfig
    pinned: bool
    version: int
    indexed_point_count: int
    segment_count: int
    datatype: VectorDatatype
    quantization: Quantization
    on_disk: bool
    shards: int
    replication: int
    payload_indexes: _containers.ScalarMap[str, PayloadIndexKind]
    sparse_vectors: _containers.RepeatedScalarFieldContainer[str]
    vectors: _containers.MessageMap[str, NamedVectorParams]
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., point_count: _Optional[int] = ..., tier: _Optional[_Union[Tier, str]] = ..., hnsw: _Optional[_Union[HnswConfig, _Mapping]] = ..., pinned: bool = ..., version: _Optional[int] = ..., indexed_point_count: _Optional[int] = ..., segment_count: _Optional[int] = ..., datatype: _Optional[_Union[VectorDatatype, str]] = ..., quantization: _Optional[_Union[Quantization, str]] = ..., on_disk: bool = ..., shards: _Optional[int] = ..., replication: _Optional[int] = ..., payload_indexes: _Optional[_Mapping[str, PayloadIndexKind]] = ..., sparse_vectors: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Mapping[str, NamedVectorParams]] = ...) -> None: ...

class SearchStats(_message.Message):
    __slots__ = ("tier", "loaded", "points_exact", "points_graph", "cache_hit", "segments_searched", "collection_version", "collection_epoch", "ef", "rescored", "log_sequence", "sparse_scored", "sparse_postings", "lower_is_closer")
    TIER_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    POINTS_EXACT_FIELD_NUMBER: _ClassVar[int]
    POINTS_GRAPH_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    RESCORED_FIELD_NUMBER: _ClassVar[int]
    LOG_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SPARSE_SCORED_FIELD_NUMBER: _ClassVar[int]
    SPARSE_POSTINGS_FIELD_NUMBER: _ClassVar[int]
    LOWER_IS_CLOSER_FIELD_NUMBER: _ClassVar[int]
    tier: Tier
    loaded: bool
    points_exact: int
    points_graph: int
    cache_hit: bool
    segments_searched: int
    collection_version: int
    collection_epoch: int
    ef: int
    rescored: int
    log_sequence: int
    sparse_scored: int
    sparse_postings: int
    lower_is_closer: bool
    def __init__(self, tier: _Optional[_Union[Tier, str]] = ..., loaded: bool = ..., points_exact: _Optional[int] = ..., points_graph: _Optional[int] = ..., cache_hit: bool = ..., segments_searched: _Optional[int] = ..., collection_version: _Optional[int] = ..., collection_epoch: _Optional[int] = ..., ef: _Optional[int] = ..., rescored: _Optional[int] = ..., log_sequence: _Optional[int] = ..., sparse_scored: _Optional[int] = ..., sparse_postings: _Optional[int] = ..., lower_is_closer: bool = ...) -> None: ...
