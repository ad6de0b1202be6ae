from google.api import annotations_pb2 as _annotations_pb2
from akidb.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "points")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "sequence")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    sequence: int
    def __init__(self, upserted: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[_common_pb2.PointId]
    filter: _common_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[_common_pb2.PointId, _Mapping]]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "sequence")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    sequence: int
    def __init__(self, deleted: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class UpdatePayloadRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter", "set", "overwrite", "delete_keys", "clear")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEYS_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[_common_pb2.PointId]
    filter: _common_pb2.Filter
    set: _struct_pb2.Struct
    overwrite: _struct_pb2.Struct
    delete_keys: PayloadKeys
    clear: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[_common_pb2.PointId, _Mapping]]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., set: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., overwrite: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., delete_keys: _Optional[_Union[PayloadKeys, _Mapping]] = ..., clear: bool = ...) -> None: ...

class PayloadKeys(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdatePayloadResponse(_message.Message):
    __slots__ = ("updated", "sequence")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    updated: int
    sequence: int
    def __init__(self, updated: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class UpdateVectorsRequest(_message.Message):
    __slots__ = ("collection", "points")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[PointVectors]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[PointVectors, _Mapping]]] = ...) -> None: ...

class PointVectors(_message.Message):
    __slots__ = ("id", "vector", "vectors", "sparse")
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.DenseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.DenseVector, _Mapping]] = ...) -> None: ...
    class SparseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.SparseVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.SparseVector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    id: _common_pb2.PointId
    vector: _containers.RepeatedScalarFieldContainer[float]
    vectors: _containers.MessageMap[str, _common_pb2.DenseVector]
    sparse: _containers.MessageMap[str, _common_pb2.SparseVector]
    def __init__(self, id: _Optional[_Union[_common_pb2.PointId, _Mapping]] = ..., vector: _Optional[_Iterable[float]] = ..., vectors: _Optional[_Mapping[str, _common_pb2.DenseVector]] = ..., sparse: _Optional[_Mapping[str, _common_pb2.SparseVector]] = ...) -> None: ...

class UpdateVectorsResponse(_message.Message):
    __slots__ = ("updated", "sequence")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    updated: int
    sequence: int
    def __init__(self, updated: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ("collection", "wait_indexed")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    WAIT_INDEXED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    wait_indexed: bool
    def __init__(self, collection: _Optional[str] = ..., wait_indexed: bool = ...) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("sealed_points", "indexed_point_count", "point_count")
    SEALED_POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    sealed_points: int
    indexed_point_count: int
    point_count: int
    def __init__(self, sealed_points: _Optional[int] = ..., indexed_point_count: _Optional[int] = ..., point_count: _Optional[int] = ...) -> None: ...
