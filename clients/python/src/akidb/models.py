"""The values the client takes and returns: enums, dataclasses and result sequences.

Vectors come back as float32 numpy arrays, payloads as dicts, ids as ``int`` (numeric ids)
or ``str`` (UUIDs).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
    overload,
)

import numpy as np
import numpy.typing as npt

from akidb._convert import (
    JSON,
    PointIdLike,
    SparseLike,
    SparseVector,
    VectorLike,
    from_point_id,
    from_sparse,
    from_struct,
    to_array,
)
from akidb.filters import FilterLike
from akidb.v1 import common_pb2, query_pb2, storage_pb2

__all__ = [
    "Metric",
    "Datatype",
    "Quantization",
    "Tier",
    "Fusion",
    "PayloadIndex",
    "SparseVector",
    "Point",
    "ScoredPoint",
    "Record",
    "SearchStats",
    "BranchStats",
    "SearchResult",
    "QueryResult",
    "ScrollPage",
    "NamedVectorParams",
    "CollectionInfo",
    "Alias",
    "CreateAlias",
    "DeleteAlias",
    "UpsertResult",
    "DeleteResult",
    "UpdateResult",
    "FlushResult",
    "SnapshotInfo",
    "TierStatus",
    "Dense",
    "Sparse",
]

# ---------------------------------------------------------------------------------------------
# Enums (numbered as in the proto files; tests/test_models.py checks they agree)


class Metric(enum.IntEnum):
    """Distance function of a collection."""

    UNSPECIFIED = 0
    #: Cosine similarity; higher is closer.
    COSINE = 1
    #: Euclidean distance; lower is closer.
    L2 = 2
    #: Dot product; higher is closer.
    DOT = 3


class Datatype(enum.IntEnum):
    """How a collection keeps its vectors."""

    UNSPECIFIED = 0
    FLOAT32 = 1
    #: Half precision: half the memory, each component rounded on write.
    FLOAT16 = 2


class Quantization(enum.IntEnum):
    """What a collection's graphs walk (codes are rescored with the vectors)."""

    UNSPECIFIED = 0
    NONE = 1
    INT8 = 2
    #: For high-dimensional COSINE or DOT collections.
    BINARY = 3


class Tier(enum.IntEnum):
    """Where a collection lives."""

    UNSPECIFIED = 0
    HOT = 1
    WARM = 2
    COLD = 3


class Fusion(enum.IntEnum):
    """How a hybrid query fuses its branches."""

    UNSPECIFIED = 0
    #: Reciprocal rank fusion.
    RRF = 1
    #: Distribution-based score fusion.
    DBSF = 2


class PayloadIndex(enum.IntEnum):
    """The kind of a declared payload index."""

    UNSPECIFIED = 0
    KEYWORD = 1
    INTEGER = 2
    FLOAT = 3
    BOOL = 4
    DATETIME = 5
    GEO = 6
    TEXT = 7


E = TypeVar("E", bound=enum.IntEnum)


def to_enum(cls: Type[E], value: Union[E, int, str]) -> E:
    """An enum member from a member, its number, or its name (any case)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls[value.upper()]
        except KeyError:
            names = ", ".join(m.name for m in cls if m.value)
            raise ValueError(f"unknown {cls.__name__} {value!r}; one of {names}") from None
    return cls(int(value))


def pb_enum(value: enum.IntEnum) -> Any:
    """The proto value of an enum member (the generated stubs type enum fields by their own
    enum types; the numbers are the same)."""
    return int(value)


def from_enum(cls: Type[E], value: int) -> E:
    """An enum member from a proto number (UNSPECIFIED for a number this client does not know)."""
    try:
        return cls(value)
    except ValueError:
        return cls(0)


# ---------------------------------------------------------------------------------------------
# Points


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    return bool(a == b)


class _ArrayEq:
    """Dataclass equality that compares numpy arrays by value."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_values_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class Point(_ArrayEq):
    """A point to upsert: an id, its dense vector, and optionally a payload, sparse vectors and
    named dense vectors (each by a name the collection declared)."""

    id: PointIdLike
    vector: Optional[VectorLike] = None
    payload: Optional[Mapping[str, JSON]] = None
    sparse: Optional[Mapping[str, SparseLike]] = None
    vectors: Optional[Mapping[str, VectorLike]] = None


@dataclass(eq=False)
class ScoredPoint(_ArrayEq):
    """A search hit. `payload`, `vector`, `sparse` and `vectors` are None unless asked for
    (``with_payload`` / ``with_vector``)."""

    id: Union[int, str]
    #: Cosine similarity, dot product or L2 distance; a hybrid query's fused score.
    score: float
    payload: Optional[Dict[str, JSON]] = None
    vector: Optional[npt.NDArray[np.float32]] = None
    sparse: Optional[Dict[str, SparseVector]] = None
    vectors: Optional[Dict[str, npt.NDArray[np.float32]]] = None


@dataclass(eq=False)
class Record(_ArrayEq):
    """A point as get and scroll return it. `payload` is None unless asked for, and so are
    `vector`, `sparse` and `vectors` (``with_vector``)."""

    id: Union[int, str]
    payload: Optional[Dict[str, JSON]] = None
    vector: Optional[npt.NDArray[np.float32]] = None
    sparse: Optional[Dict[str, SparseVector]] = None
    vectors: Optional[Dict[str, npt.NDArray[np.float32]]] = None


def scored_point(h: common_pb2.ScoredPoint, with_payload: bool, with_vector: bool) -> ScoredPoint:
    p = ScoredPoint(from_point_id(h.id), h.score)
    if with_payload:
        p.payload = from_struct(h.payload)
    if with_vector:
        p.vector = to_array(h.vector)
        p.sparse = {k: from_sparse(v) for k, v in h.sparse.items()}
        p.vectors = {k: to_array(v.values) for k, v in h.vectors.items()}
    return p


def record(r: common_pb2.RetrievedPoint, with_payload: bool, with_vector: bool) -> Record:
    p = Record(from_point_id(r.id))
    if with_payload:
        p.payload = from_struct(r.payload)
    if with_vector:
        p.vector = to_array(r.vector)
        p.sparse = {k: from_sparse(v) for k, v in r.sparse.items()}
        p.vectors = {k: to_array(v.values) for k, v in r.vectors.items()}
    return p


# ---------------------------------------------------------------------------------------------
# Search results


@dataclass
class SearchStats:
    """How a search was served (see ``SearchStats`` in common.proto)."""

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

    @classmethod
    def from_proto(cls, s: common_pb2.SearchStats) -> SearchStats:
        """From the proto message."""
        return cls(
            tier=from_enum(Tier, s.tier),
            loaded=s.loaded,
            points_exact=s.points_exact,
            points_graph=s.points_graph,
            cache_hit=s.cache_hit,
            segments_searched=s.segments_searched,
            collection_version=s.collection_version,
            collection_epoch=s.collection_epoch,
            ef=s.ef,
            rescored=s.rescored,
            log_sequence=s.log_sequence,
            sparse_scored=s.sparse_scored,
            sparse_postings=s.sparse_postings,
            lower_is_closer=s.lower_is_closer,
        )


@dataclass
class BranchStats:
    """One branch of a hybrid query: how it was served, and how many results it returned."""

    stats: SearchStats
    returned: int


class _Hits(Sequence[ScoredPoint]):
    """Hits of a response, converted to :class:`ScoredPoint` on first access."""

    __slots__ = ("raw", "_with_payload", "_with_vector", "_points")

    raw: Any

    def __init__(self, raw: Any, with_payload: bool, with_vector: bool) -> None:
        self.raw = raw
        self._with_payload = with_payload
        self._with_vector = with_vector
        self._points: Optional[List[ScoredPoint]] = None

    def _all(self) -> List[ScoredPoint]:
        pts = self._points
        if pts is None:
            wp, wv = self._with_payload, self._with_vector
            if wp or wv:
                pts = [scored_point(h, wp, wv) for h in self.raw.hits]
            else:
                pts = [ScoredPoint(from_point_id(h.id), h.score) for h in self.raw.hits]
            self._points = pts
        return pts

    @overload
    def __getitem__(self, i: int) -> ScoredPoint: ...

    @overload
    def __getitem__(self, i: slice) -> List[ScoredPoint]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[ScoredPoint, List[ScoredPoint]]:
        return self._all()[i]

    def __len__(self) -> int:
        return len(self.raw.hits)

    def __iter__(self) -> Iterator[ScoredPoint]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (_Hits, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._all()!r})"

    @property
    def ids(self) -> List[Union[int, str]]:
        """The hits' ids, best first (without converting the rest of each hit)."""
        if self._points is not None:
            return [p.id for p in self._points]
        return [from_point_id(h.id) for h in self.raw.hits]

    @property
    def scores(self) -> List[float]:
        """The hits' scores, best first."""
        return [h.score for h in self.raw.hits]

    @property
    def partial(self) -> bool:
        """True when a shard of a cluster's collection did not answer in time."""
        return bool(self.raw.partial)

    @property
    def missing_shards(self) -> List[int]:
        """The shards missing from a partial result."""
        return list(self.raw.missing_shards)

    @property
    def stale(self) -> bool:
        """True when the cluster's shard map the search was routed by may be out of date."""
        return bool(self.raw.stale)


class SearchResult(_Hits):
    """The hits of a search, best first: a sequence of :class:`ScoredPoint`.

    Also: ``ids``, ``scores``, ``stats``, ``partial``, ``missing_shards``, ``stale``, and
    ``raw`` (the ``SearchResponse`` message).
    """

    __slots__ = ()
    raw: query_pb2.SearchResponse

    @property
    def stats(self) -> SearchStats:
        """How the search was served."""
        return SearchStats.from_proto(self.raw.stats)


class QueryResult(_Hits):
    """The hits of a hybrid query, best first by fused score: a sequence of
    :class:`ScoredPoint`. Also ``branches`` (each branch's stats) and what
    :class:`SearchResult` has besides ``stats``."""

    __slots__ = ()
    raw: query_pb2.QueryResponse

    @property
    def branches(self) -> List[BranchStats]:
        """One per branch, in order."""
        return [BranchStats(SearchStats.from_proto(b.stats), b.returned) for b in self.raw.branches]


@dataclass(eq=False)
class ScrollPage(_ArrayEq):
    """One page of a scroll: its points and the cursor of the next page (None after the last)."""

    points: List[Record]
    next_cursor: Optional[str]


# ---------------------------------------------------------------------------------------------
# Query specs


@dataclass
class Dense:
    """A dense search, as a branch of a hybrid query or an entry of a search batch.
    Unset `k` and `filter` are the call's."""

    vector: VectorLike
    k: Optional[int] = None
    filter: Optional[FilterLike] = None
    ef: Optional[int] = None
    exact: bool = False
    oversampling: Optional[float] = None
    #: Search this named dense vector instead of the unnamed one.
    vector_name: Optional[str] = None


@dataclass
class Sparse:
    """A search by the collection's sparse vector `name` (exact, by dot product). Unset `k`
    and `filter` are the call's."""

    name: str
    vector: SparseLike
    k: Optional[int] = None
    filter: Optional[FilterLike] = None


# ---------------------------------------------------------------------------------------------
# Collections and aliases


@dataclass
class NamedVectorParams:
    """A named dense vector's kind: its dimension and metric, its graph parameters (None: the
    collection's), how its vectors are kept and what its graphs walk."""

    dimension: int
    metric: Union[Metric, str]
    m: Optional[int] = None
    ef_construction: Optional[int] = None
    datatype: Union[Datatype, str] = Datatype.FLOAT32
    quantization: Union[Quantization, str] = Quantization.NONE

    def to_proto(self) -> common_pb2.NamedVectorParams:
        """The proto message."""
        p = common_pb2.NamedVectorParams(
            dimension=self.dimension,
            metric=pb_enum(to_enum(Metric, self.metric)),
            datatype=pb_enum(to_enum(Datatype, self.datatype)),
            quantization=pb_enum(to_enum(Quantization, self.quantization)),
        )
        if self.m is not None:
            p.hnsw.m = self.m
        if self.ef_construction is not None:
            p.hnsw.ef_construction = self.ef_construction
        return p

    @classmethod
    def from_proto(cls, p: common_pb2.NamedVectorParams) -> NamedVectorParams:
        """From the proto message."""
        return cls(
            dimension=p.dimension,
            metric=from_enum(Metric, p.metric),
            m=p.hnsw.m if p.hnsw.HasField("m") else None,
            ef_construction=p.hnsw.ef_construction if p.hnsw.HasField("ef_construction") else None,
            datatype=from_enum(Datatype, p.datatype),
            quantization=from_enum(Quantization, p.quantization),
        )


@dataclass
class CollectionInfo:
    """A collection as the server describes it."""

    name: str
    dimension: int
    metric: Metric
    point_count: int
    indexed_point_count: int
    segment_count: int
    tier: Tier
    pinned: bool
    #: Bumped by every acknowledged write.
    version: int
    #: HNSW links per node and build candidate list size (None: the server's defaults).
    m: Optional[int]
    ef_construction: Optional[int]
    datatype: Datatype
    quantization: Quantization
    on_disk: bool
    shards: int
    replication: int
    payload_indexes: Dict[str, PayloadIndex] = field(default_factory=dict)
    sparse_vectors: List[str] = field(default_factory=list)
    vectors: Dict[str, NamedVectorParams] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, c: common_pb2.CollectionInfo) -> CollectionInfo:
        """From the proto message."""
        return cls(
            name=c.name,
            dimension=c.dimension,
            metric=from_enum(Metric, c.metric),
            point_count=c.point_count,
            indexed_point_count=c.indexed_point_count,
            segment_count=c.segment_count,
            tier=from_enum(Tier, c.tier),
            pinned=c.pinned,
            version=c.version,
            m=c.hnsw.m if c.hnsw.HasField("m") else None,
            ef_construction=c.hnsw.ef_construction if c.hnsw.HasField("ef_construction") else None,
            datatype=from_enum(Datatype, c.datatype),
            quantization=from_enum(Quantization, c.quantization),
            on_disk=c.on_disk,
            shards=c.shards,
            replication=c.replication,
            payload_indexes={k: from_enum(PayloadIndex, v) for k, v in c.payload_indexes.items()},
            sparse_vectors=list(c.sparse_vectors),
            vectors={k: NamedVectorParams.from_proto(v) for k, v in c.vectors.items()},
        )


@dataclass(frozen=True)
class Alias:
    """An alias: a name that stands for a collection in every read and write."""

    alias: str
    collection: str


@dataclass(frozen=True)
class CreateAlias:
    """An alias action: create `alias` for `collection`."""

    alias: str
    collection: str


@dataclass(frozen=True)
class DeleteAlias:
    """An alias action: delete `alias`."""

    alias: str


# ---------------------------------------------------------------------------------------------
# Write results


@dataclass
class UpsertResult:
    """Points upserted, and the WAL sequence number of the last write."""

    upserted: int
    sequence: int


@dataclass
class DeleteResult:
    """Points deleted, and the WAL sequence number of the write."""

    deleted: int
    sequence: int


@dataclass
class UpdateResult:
    """Points changed by a payload or vector update, and the WAL sequence number of the write."""

    updated: int
    sequence: int


@dataclass
class FlushResult:
    """Points sealed by a flush; points searched through a graph and all points after it."""

    sealed_points: int
    indexed_point_count: int
    point_count: int


# ---------------------------------------------------------------------------------------------
# Admin


@dataclass
class SnapshotInfo:
    """A snapshot of a collection."""

    collection: str
    id: str
    sequence: int
    created_unix_ms: int
    size_bytes: int
    point_count: int
    #: Whether object storage has confirmed a complete copy.
    uploaded: bool

    @classmethod
    def from_proto(cls, s: storage_pb2.SnapshotInfo) -> SnapshotInfo:
        """From the proto message."""
        return cls(s.collection, s.id, s.sequence, s.created_unix_ms, s.size_bytes, s.point_count, s.uploaded)


@dataclass
class TierStatus:
    """Where a collection lives and what it takes there."""

    name: str
    tier: Tier
    pinned: bool
    bytes_in_memory: int
    bytes_on_disk: int
    bytes_in_object_store: int
    last_access_unix_ms: int
    #: The tier it is moving to (UNSPECIFIED when not moving).
    moving_to: Tier

    @classmethod
    def from_proto(cls, s: storage_pb2.CollectionTierStatus) -> TierStatus:
        """From the proto message."""
        return cls(
            s.name,
            from_enum(Tier, s.tier),
            s.pinned,
            s.bytes_in_memory,
            s.bytes_on_disk,
            s.bytes_in_object_store,
            s.last_access_unix_ms,
            from_enum(Tier, s.moving_to),
        )
