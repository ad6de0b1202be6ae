"""Conversions between Python values and the akidb.v1 protobuf messages.

Shared by the sync and asyncio clients. Vectors are written into messages as packed float32
bytes (``MergeFromString``), which is an order of magnitude faster than filling a repeated
float field element by element.
"""
from __future__ import annotations

import math
import struct
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from akidb.v1 import common_pb2

#: A point id: an unsigned 64-bit integer, or a UUID (a ``uuid.UUID`` or its string form).
PointIdLike = Union[int, str, uuid.UUID, "np.integer[Any]"]
#: A dense vector: a 1-d numpy array or a sequence of numbers.
VectorLike = Union[Sequence[float], "npt.NDArray[Any]"]
#: Several dense vectors: a 2-d numpy array (one row each) or a sequence of vectors.
VectorsLike = Union[Sequence[VectorLike], "npt.NDArray[Any]"]
#: A JSON-like value of a payload.
JSON = Any

_U64_MAX = (1 << 64) - 1
_F32 = np.dtype("<f4")


# ---------------------------------------------------------------------------------------------
# Point ids


def point_id(value: PointIdLike) -> common_pb2.PointId:
    """A PointId message from an int (0..2**64-1), a UUID string or a ``uuid.UUID``."""
    if isinstance(value, str):
        return common_pb2.PointId(uuid=value)
    if isinstance(value, uuid.UUID):
        return common_pb2.PointId(uuid=str(value))
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"a point id is an int or a UUID, not {type(value).__name__}: {value!r}")
    n = int(value)
    if not 0 <= n <= _U64_MAX:
        raise ValueError(f"an integer point id is within 0..2**64-1, not {n}")
    return common_pb2.PointId(num=n)


def point_ids(values: Union[PointIdLike, Sequence[PointIdLike], "npt.NDArray[Any]"]) -> List[common_pb2.PointId]:
    """PointId messages from one id or a sequence (or 1-d integer array) of ids."""
    if isinstance(values, (int, str, uuid.UUID, np.integer)):
        return [point_id(values)]
    items: Sequence[Any] = values.tolist() if isinstance(values, np.ndarray) else values
    return [point_id(v) for v in items]


def from_point_id(pid: common_pb2.PointId) -> Union[int, str]:
    """The Python id of a PointId: its int, or its UUID string."""
    u = pid.uuid
    return u if u else pid.num


# ---------------------------------------------------------------------------------------------
# Dense vectors: packed float32 bytes


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def vector_bytes(vector: VectorLike) -> bytes:
    """The little-endian float32 bytes of one dense vector."""
    if isinstance(vector, np.ndarray):
        if vector.ndim != 1:
            raise ValueError(f"a vector is 1-dimensional, not of shape {vector.shape}")
        return vector.astype(_F32, copy=False).tobytes()
    if isinstance(vector, (str, bytes, Mapping)):
        raise TypeError(f"a vector is a sequence of numbers, not {type(vector).__name__}")
    try:
        return struct.pack(f"<{len(vector)}f", *vector)
    except struct.error as e:
        raise TypeError(f"a vector is a sequence of numbers: {e}") from None
    except OverflowError:
        raise ValueError("a vector component is beyond the float32 range") from None


def packed_field(field_number: int, data: bytes) -> bytes:
    """The wire bytes of a packed repeated fixed-width field (float) holding `data`."""
    return _varint((field_number << 3) | 2) + _varint(len(data)) + data


# Wire tags of the repeated float fields the client fills (all length-delimited, packed).
_TAG_VECTOR_2 = _varint((2 << 3) | 2)  # SearchRequest.vector, Point.vector, PointVectors.vector
_TAG_VALUES_1 = _varint((1 << 3) | 2)  # DenseVector.values


def set_vector(msg: Message, data: bytes) -> None:
    """Append packed float32 `data` to field 2 of `msg` (the `vector` of SearchRequest, Point
    and PointVectors)."""
    if data:
        msg.MergeFromString(_TAG_VECTOR_2 + _varint(len(data)) + data)


def set_dense(msg: common_pb2.DenseVector, data: bytes) -> None:
    """Append packed float32 `data` to a DenseVector's values."""
    if data:
        msg.MergeFromString(_TAG_VALUES_1 + _varint(len(data)) + data)


def rows_bytes(vectors: VectorsLike) -> List[bytes]:
    """The float32 bytes of each vector of a 2-d array or a sequence of vectors."""
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            raise ValueError(f"vectors are a 2-dimensional array (one row a vector), not of shape {vectors.shape}")
        a = np.ascontiguousarray(vectors, dtype=_F32)
        raw = a.tobytes()
        step = a.shape[1] * 4
        return [raw[i : i + step] for i in range(0, len(raw), step)] if step else [b""] * a.shape[0]
    return [vector_bytes(v) for v in vectors]


def to_array(values: Any) -> npt.NDArray[np.float32]:
    """A float32 numpy array of a repeated float field."""
    return np.array(values, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Sparse vectors


class SparseVector:
    """A sparse vector: `indices` (strictly ascending uint32) with the weight at the same
    position in `values`.

    Built from two sequences or arrays, or with :meth:`from_dict` from ``{index: weight}``.
    """

    __slots__ = ("indices", "values")

    def __init__(self, indices: Union[Sequence[int], "npt.NDArray[Any]"], values: Union[Sequence[float], "npt.NDArray[Any]"]) -> None:
        self.indices: npt.NDArray[np.uint32] = np.asarray(indices, dtype=np.uint32).reshape(-1)
        self.values: npt.NDArray[np.float32] = np.asarray(values, dtype=np.float32).reshape(-1)
        if self.indices.shape != self.values.shape:
            raise ValueError(f"a sparse vector has as many values as indices ({len(self.indices)} indices, {len(self.values)} values)")

    @classmethod
    def from_dict(cls, weights: Mapping[int, float]) -> "SparseVector":
        """A sparse vector from ``{index: weight}`` (sorted by index)."""
        items = sorted(weights.items())
        return cls([i for i, _ in items], [w for _, w in items])

    def to_dict(self) -> Dict[int, float]:
        """``{index: weight}``."""
        return dict(zip(self.indices.tolist(), self.values.tolist()))

    def __len__(self) -> int:
        return len(self.indices)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SparseVector(indices={self.indices.tolist()!r}, values={self.values.tolist()!r})"


#: A sparse vector: a :class:`SparseVector`, ``(indices, values)``, or ``{index: weight}``.
SparseLike = Union[SparseVector, Tuple[Any, Any], Mapping[int, float]]


def sparse_vector(value: SparseLike) -> SparseVector:
    """A :class:`SparseVector` from any :data:`SparseLike`."""
    if isinstance(value, SparseVector):
        return value
    if isinstance(value, Mapping):
        return SparseVector.from_dict(value)
    if isinstance(value, tuple) and len(value) == 2:
        return SparseVector(value[0], value[1])
    raise TypeError(f"a sparse vector is a SparseVector, (indices, values) or {{index: weight}}, not {type(value).__name__}")


def fill_sparse(msg: common_pb2.SparseVector, value: SparseLike) -> None:
    """Fill a SparseVector message (indices field 1, values field 2, both packed)."""
    sv = sparse_vector(value)
    if len(sv):
        msg.indices.extend(sv.indices.tolist())  # uint32 packs as varints: leave it to protobuf
        msg.MergeFromString(packed_field(2, sv.values.astype(_F32, copy=False).tobytes()))


def from_sparse(msg: common_pb2.SparseVector) -> SparseVector:
    return SparseVector(np.array(msg.indices, dtype=np.uint32), np.array(msg.values, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# Payloads: dict <-> google.protobuf.Struct


def fill_value(v: struct_pb2.Value, x: JSON) -> None:
    """Set a Value message from a JSON-like Python value (numpy scalars and arrays included)."""
    if x is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(x, str):
        v.string_value = x
    elif isinstance(x, (bool, np.bool_)):
        v.bool_value = bool(x)
    elif isinstance(x, (int, float, np.integer, np.floating)):
        f = float(x)
        if not math.isfinite(f):
            raise ValueError(f"a payload number is finite, not {x!r}")
        v.number_value = f
    elif isinstance(x, Mapping):
        fill_struct(v.struct_value, x)
    elif isinstance(x, np.ndarray):
        fill_list(v.list_value, x.tolist())
    elif isinstance(x, (list, tuple)):
        fill_list(v.list_value, x)
    else:
        raise TypeError(f"a payload value is JSON-like (None, str, bool, number, dict, list), not {type(x).__name__}: {x!r}")


def fill_list(lv: struct_pb2.ListValue, items: Sequence[JSON]) -> None:
    lv.SetInParent()
    values = lv.values
    for item in items:
        fill_value(values.add(), item)


def fill_struct(s: struct_pb2.Struct, payload: Mapping[str, JSON]) -> None:
    """Fill a Struct message from a dict with string keys."""
    s.SetInParent()
    fields = s.fields
    for key, x in payload.items():
        if not isinstance(key, str):
            raise TypeError(f"payload keys are strings, not {type(key).__name__}: {key!r}")
        fill_value(fields[key], x)


def to_struct(payload: Mapping[str, JSON]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    fill_struct(s, payload)
    return s


def from_value(v: struct_pb2.Value) -> JSON:
    """The Python value of a Value message. Whole numbers within +-2**53 come back as ints
    (a Struct keeps every number as a double)."""
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        f = v.number_value
        if f.is_integer() and -9007199254740992.0 <= f <= 9007199254740992.0:
            return int(f)
        return f
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return from_struct(v.struct_value)
    if kind == "list_value":
        return [from_value(x) for x in v.list_value.values]
    return None


def from_struct(s: struct_pb2.Struct) -> Dict[str, JSON]:
    """The dict of a Struct message."""
    return {k: from_value(v) for k, v in s.fields.items()}


def optional_int(msg: Message, field: str) -> Optional[int]:
    """The value of a proto3 `optional` integer field, None when unset."""
    return int(getattr(msg, field)) if msg.HasField(field) else None
