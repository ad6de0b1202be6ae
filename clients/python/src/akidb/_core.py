"""What the sync and asyncio clients share: the method table, connection settings, request
builders and response converters. The clients themselves only send and retry."""
from __future__ import annotations

import importlib
import os
import random
from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message

from akidb._convert import (
    JSON,
    PointIdLike,
    SparseLike,
    VectorLike,
    VectorsLike,
    fill_sparse,
    fill_struct,
    from_point_id,
    point_id,
    point_ids,
    rows_bytes,
    set_dense,
    set_vector,
    to_struct,
    vector_bytes,
)
from akidb.filters import FilterLike, to_filter
from akidb.models import (
    Alias,
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
    Record,
    ScrollPage,
    SnapshotInfo,
    Sparse,
    Tier,
    TierStatus,
    UpdateResult,
    pb_enum,
    record,
    to_enum,
)
from akidb.v1 import collection_pb2, common_pb2, ingest_pb2, query_pb2, storage_pb2

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

DEFAULT_PORT = 50051
DEFAULT_TIMEOUT = 30.0
#: The server's default gRPC message limit.
MAX_MESSAGE_BYTES = 64 << 20
#: Upsert batches stay under this many encoded bytes (the server's default limit is 32 MiB).
DEFAULT_BATCH_BYTES = 8 << 20
DEFAULT_BATCH_SIZE = 1000


# ---------------------------------------------------------------------------------------------
# Method table


@dataclass(frozen=True)
class Rpc(Generic[Req, Resp]):
    """One unary method: its path, message classes, which service port serves it, and whether
    it may be retried (reads only)."""

    path: str
    request: Type[Req]
    response: Type[Resp]
    ingest: bool = False
    idempotent: bool = False


def _q(name: str, req: Type[Req], resp: Type[Resp], idempotent: bool = True) -> Rpc[Req, Resp]:
    return Rpc(f"/akidb.v1.QueryService/{name}", req, resp, False, idempotent)


def _c(name: str, req: Type[Req], resp: Type[Resp], idempotent: bool) -> Rpc[Req, Resp]:
    return Rpc(f"/akidb.v1.CollectionService/{name}", req, resp, False, idempotent)


def _i(name: str, req: Type[Req], resp: Type[Resp]) -> Rpc[Req, Resp]:
    return Rpc(f"/akidb.v1.IngestService/{name}", req, resp, True, False)


def _a(name: str, req: Type[Req], resp: Type[Resp], idempotent: bool) -> Rpc[Req, Resp]:
    return Rpc(f"/akidb.v1.AdminService/{name}", req, resp, False, idempotent)


SEARCH = _q("Search", query_pb2.SearchRequest, query_pb2.SearchResponse)
SEARCH_BATCH = _q("SearchBatch", query_pb2.SearchBatchRequest, query_pb2.SearchBatchResponse)
GET = _q("Get", query_pb2.GetRequest, query_pb2.GetResponse)
COUNT = _q("Count", query_pb2.CountRequest, query_pb2.CountResponse)
SCROLL = _q("Scroll", query_pb2.ScrollRequest, query_pb2.ScrollResponse)
QUERY = _q("Query", query_pb2.QueryRequest, query_pb2.QueryResponse)
CREATE_COLLECTION = _c("CreateCollection", collection_pb2.CreateCollectionRequest, collection_pb2.CreateCollectionResponse, False)
GET_COLLECTION = _c("GetCollection", collection_pb2.GetCollectionRequest, collection_pb2.GetCollectionResponse, True)
LIST_COLLECTIONS = _c("ListCollections", collection_pb2.ListCollectionsRequest, collection_pb2.ListCollectionsResponse, True)
DELETE_COLLECTION = _c("DeleteCollection", collection_pb2.DeleteCollectionRequest, collection_pb2.DeleteCollectionResponse, False)
UPDATE_ALIASES = _c("UpdateAliases", collection_pb2.UpdateAliasesRequest, collection_pb2.UpdateAliasesResponse, False)
UPSERT = _i("Upsert", ingest_pb2.UpsertRequest, ingest_pb2.UpsertResponse)
DELETE = _i("Delete", ingest_pb2.DeleteRequest, ingest_pb2.DeleteResponse)
UPDATE_PAYLOAD = _i("UpdatePayload", ingest_pb2.UpdatePayloadRequest, ingest_pb2.UpdatePayloadResponse)
UPDATE_VECTORS = _i("UpdateVectors", ingest_pb2.UpdateVectorsRequest, ingest_pb2.UpdateVectorsResponse)
FLUSH = _i("Flush", ingest_pb2.FlushRequest, ingest_pb2.FlushResponse)
TIER_STATUS = _a("TierStatus", storage_pb2.TierStatusRequest, storage_pb2.TierStatusResponse, True)
PROMOTE = _a("Promote", storage_pb2.TierMoveRequest, storage_pb2.TierMoveResponse, False)
DEMOTE = _a("Demote", storage_pb2.TierMoveRequest, storage_pb2.TierMoveResponse, False)
PIN = _a("Pin", storage_pb2.PinRequest, storage_pb2.PinResponse, False)
SNAPSHOT = _a("Snapshot", storage_pb2.SnapshotRequest, storage_pb2.SnapshotResponse, False)
LIST_SNAPSHOTS = _a("ListSnapshots", storage_pb2.ListSnapshotsRequest, storage_pb2.ListSnapshotsResponse, True)

RPCS: Tuple[Rpc[Any, Any], ...] = (
    SEARCH, SEARCH_BATCH, GET, COUNT, SCROLL, QUERY,
    CREATE_COLLECTION, GET_COLLECTION, LIST_COLLECTIONS, DELETE_COLLECTION, UPDATE_ALIASES,
    UPSERT, DELETE, UPDATE_PAYLOAD, UPDATE_VECTORS, FLUSH,
    TIER_STATUS, PROMOTE, DEMOTE, PIN, SNAPSHOT, LIST_SNAPSHOTS,
)  # fmt: skip


def callables(query_channel: Any, ingest_channel: Any) -> Dict[str, Any]:
    """A multi-callable per method path, on the channel of the service that serves it (a
    ``grpc.Channel`` or a ``grpc.aio.Channel``: both have the same ``unary_unary``)."""
    out: Dict[str, Any] = {}
    for rpc in RPCS:
        ch = ingest_channel if rpc.ingest else query_channel
        kwargs: Dict[str, Any] = {
            "request_serializer": rpc.request.SerializeToString,
            "response_deserializer": rpc.response.FromString,
        }
        try:  # grpcio >= 1.62 registers the method once per channel, as generated stubs do
            out[rpc.path] = ch.unary_unary(rpc.path, _registered_method=True, **kwargs)
        except TypeError:
            out[rpc.path] = ch.unary_unary(rpc.path, **kwargs)
    return out


# ---------------------------------------------------------------------------------------------
# Connection settings


def _split_host(host: str, port: int) -> Tuple[str, int]:
    """(host, port) of "host", "host:port", "[v6]" or "[v6]:port"."""
    if host.startswith("["):
        end = host.index("]")
        rest = host[end + 1 :]
        return host[: end + 1], int(rest[1:]) if rest.startswith(":") else port
    if host.count(":") == 1:
        h, p = host.split(":")
        return h, int(p)
    if ":" in host:  # a bare IPv6 literal
        return f"[{host}]", port
    return host, port


TlsLike = Union[bool, str, bytes, "os.PathLike[str]", None]


class Settings:
    """Addresses, credentials, metadata and defaults of a client (sync or asyncio)."""

    def __init__(
        self,
        host: str,
        port: int,
        ingest_port: Optional[int],
        ingest_address: Optional[str],
        api_key: Optional[str],
        tls: TlsLike,
        tls_server_name: Optional[str],
        timeout: Optional[float],
        max_retries: Optional[int],
        initial_backoff: float,
        max_backoff: float,
        options: Optional[Sequence[Tuple[str, Any]]],
    ) -> None:
        h, p = _split_host(host, port)
        self.query_address = f"{h}:{p}"
        if ingest_address is None:
            ingest_address = f"{h}:{ingest_port if ingest_port is not None else p + 1}"
        self.ingest_address = ingest_address
        self.metadata: Optional[Tuple[Tuple[str, str], ...]] = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self.credentials: Optional[grpc.ChannelCredentials] = None
        if tls is True:
            self.credentials = grpc.ssl_channel_credentials()
        elif isinstance(tls, bytes):
            self.credentials = grpc.ssl_channel_credentials(root_certificates=tls)
        elif isinstance(tls, (str, os.PathLike)):
            with open(tls, "rb") as f:
                self.credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        elif tls not in (False, None):
            raise TypeError("tls is a bool, a CA certificate file path, or the CA's PEM bytes")
        opts: Dict[str, Any] = {
            "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
            "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        }
        if tls_server_name:
            opts["grpc.ssl_target_name_override"] = tls_server_name
        opts.update(dict(options or ()))
        self.options: List[Tuple[str, Any]] = list(opts.items())
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout is positive (seconds) or None")
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff

    def retry_allowed(self, attempt: int) -> bool:
        """Whether retry number `attempt` (0-based) may go ahead, deadline aside."""
        if self.max_retries is not None:
            return attempt < self.max_retries
        # Without a deadline, retries would never end: cap them.
        return self.timeout is not None or attempt < 10

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt`: exponential, capped, jittered."""
        return min(self.max_backoff, self.initial_backoff * (2.0**attempt)) * random.uniform(0.5, 1.0)


# ---------------------------------------------------------------------------------------------
# Reads


def _apply_search_options(
    req: query_pb2.SearchRequest,
    filter: Optional[FilterLike],
    ef: Optional[int],
    exact: bool,
    oversampling: Optional[float],
    vector_name: Optional[str],
) -> None:
    if filter is not None:
        req.filter.CopyFrom(to_filter(filter))
    if ef is not None:
        req.ef = ef
    if exact:
        req.exact = True
    if oversampling is not None:
        req.oversampling = oversampling
    if vector_name:
        req.vector_name = vector_name


def search_request(
    collection: str,
    vector: Union[VectorLike, Dense, Sparse],
    k: int,
    filter: Optional[FilterLike] = None,
    ef: Optional[int] = None,
    with_payload: bool = False,
    with_vector: bool = False,
    exact: bool = False,
    oversampling: Optional[float] = None,
    vector_name: Optional[str] = None,
) -> query_pb2.SearchRequest:
    """A SearchRequest. A :class:`Dense` or :class:`Sparse` spec brings its own parameters; its
    unset `k` and `filter` are these."""
    if isinstance(vector, Sparse):
        req = query_pb2.SearchRequest(collection=collection, k=vector.k or k, with_payload=with_payload, with_vector=with_vector)
        req.sparse.name = vector.name
        fill_sparse(req.sparse.vector, vector.vector)
        f = vector.filter if vector.filter is not None else filter
        if f is not None:
            req.filter.CopyFrom(to_filter(f))
        return req
    if isinstance(vector, Dense):
        req = query_pb2.SearchRequest(collection=collection, k=vector.k or k, with_payload=with_payload, with_vector=with_vector)
        set_vector(req, vector_bytes(vector.vector))
        f = vector.filter if vector.filter is not None else filter
        _apply_search_options(req, f, vector.ef, vector.exact, vector.oversampling, vector.vector_name)
        return req
    req = query_pb2.SearchRequest(collection=collection, k=k, with_payload=with_payload, with_vector=with_vector)
    set_vector(req, vector_bytes(vector))
    if filter is not None or ef is not None or exact or oversampling is not None or vector_name:
        _apply_search_options(req, filter, ef, exact, oversampling, vector_name)
    return req


def search_batch_request(
    collection: str,
    vectors: Union[VectorsLike, Sequence[Union[VectorLike, Dense, Sparse]]],
    k: int,
    filter: Optional[FilterLike],
    ef: Optional[int],
    with_payload: bool,
    with_vector: bool,
    exact: bool,
    oversampling: Optional[float],
    vector_name: Optional[str],
) -> query_pb2.SearchBatchRequest:
    """A SearchBatchRequest: one search per row of a 2-d array, or per entry of a sequence of
    vectors and :class:`Dense` / :class:`Sparse` specs."""
    out = query_pb2.SearchBatchRequest()
    if isinstance(vectors, np.ndarray):
        for row in rows_bytes(vectors):
            req = query_pb2.SearchRequest(collection=collection, k=k, with_payload=with_payload, with_vector=with_vector)
            set_vector(req, row)
            _apply_search_options(req, filter, ef, exact, oversampling, vector_name)
            out.searches.append(req)
        return out
    for v in vectors:
        out.searches.append(search_request(collection, v, k, filter, ef, with_payload, with_vector, exact, oversampling, vector_name))
    return out


def query_request(
    collection: str,
    branches: Sequence[Union[Dense, Sparse]],
    k: int,
    fusion: Union[Fusion, str],
    weights: Optional[Sequence[float]],
    rrf_k: Optional[int],
    filter: Optional[FilterLike],
    with_payload: bool,
    with_vector: bool,
) -> query_pb2.QueryRequest:
    """A hybrid QueryRequest. Each branch's unset k is the query's `k`; unset filter, `filter`."""
    req = query_pb2.QueryRequest(collection=collection, k=k, fusion=pb_enum(to_enum(Fusion, fusion)), with_payload=with_payload, with_vector=with_vector)
    for b in branches:
        if not isinstance(b, (Dense, Sparse)):
            raise TypeError(f"a query branch is a Dense or Sparse spec, not {type(b).__name__}")
        req.branches.append(search_request("", b, k, filter))
    if weights is not None:
        req.weights.extend(float(w) for w in weights)
    if rrf_k is not None:
        req.rrf_k = rrf_k
    return req


def get_request(
    collection: str, ids: Union[PointIdLike, Sequence[PointIdLike], npt.NDArray[Any]], with_payload: bool, with_vector: bool
) -> query_pb2.GetRequest:
    return query_pb2.GetRequest(collection=collection, ids=point_ids(ids), with_payload=with_payload, with_vector=with_vector)


def count_request(collection: str, filter: Optional[FilterLike]) -> query_pb2.CountRequest:
    req = query_pb2.CountRequest(collection=collection)
    if filter is not None:
        req.filter.CopyFrom(to_filter(filter))
    return req


def scroll_request(
    collection: str,
    filter: Optional[FilterLike],
    limit: int,
    cursor: Optional[str],
    with_payload: bool,
    with_vector: bool,
) -> query_pb2.ScrollRequest:
    req = query_pb2.ScrollRequest(
        collection=collection, limit=limit, cursor=cursor or "", with_payload=with_payload, with_vector=with_vector
    )
    if filter is not None:
        req.filter.CopyFrom(to_filter(filter))
    return req


def records(points: Iterable[common_pb2.RetrievedPoint], with_payload: bool, with_vector: bool) -> List[Record]:
    if not with_payload and not with_vector:
        return [Record(from_point_id(p.id)) for p in points]
    return [record(p, with_payload, with_vector) for p in points]


def scroll_page(resp: query_pb2.ScrollResponse, with_payload: bool, with_vector: bool) -> ScrollPage:
    return ScrollPage(records(resp.points, with_payload, with_vector), resp.next_cursor or None)


# ---------------------------------------------------------------------------------------------
# Collections and aliases


def create_collection_request(
    name: str,
    dimension: int,
    metric: Union[Metric, str],
    m: Optional[int],
    ef_construction: Optional[int],
    pin: bool,
    datatype: Union[Datatype, str, None],
    quantization: Union[Quantization, str, None],
    on_disk: bool,
    shards: int,
    replication: int,
    payload_indexes: Optional[Mapping[str, Union[PayloadIndex, str]]],
    sparse_vectors: Optional[Sequence[str]],
    vectors: Optional[Mapping[str, NamedVectorParams]],
) -> collection_pb2.CreateCollectionRequest:
    req = collection_pb2.CreateCollectionRequest(
        name=name,
        dimension=dimension,
        metric=pb_enum(to_enum(Metric, metric)),
        pin=pin,
        on_disk=on_disk,
        shards=shards,
        replication=replication,
        sparse_vectors=list(sparse_vectors or ()),
    )
    if m is not None:
        req.m = m
    if ef_construction is not None:
        req.ef_construction = ef_construction
    if datatype is not None:
        req.datatype = pb_enum(to_enum(Datatype, datatype))
    if quantization is not None:
        req.quantization = pb_enum(to_enum(Quantization, quantization))
    for key, kind in (payload_indexes or {}).items():
        req.payload_indexes[key] = pb_enum(to_enum(PayloadIndex, kind))
    for vname, params in (vectors or {}).items():
        req.vectors[vname].CopyFrom(params.to_proto())
    return req


def collection_info(c: common_pb2.CollectionInfo) -> CollectionInfo:
    return CollectionInfo.from_proto(c)


def aliases(items: Iterable[collection_pb2.Alias]) -> List[Alias]:
    return [Alias(a.alias, a.collection) for a in items]


def update_aliases_request(actions: Sequence[Union[CreateAlias, DeleteAlias]]) -> collection_pb2.UpdateAliasesRequest:
    req = collection_pb2.UpdateAliasesRequest()
    for a in actions:
        if isinstance(a, CreateAlias):
            req.actions.add().create.CopyFrom(collection_pb2.Alias(alias=a.alias, collection=a.collection))
        elif isinstance(a, DeleteAlias):
            req.actions.add().delete = a.alias
        else:
            raise TypeError(f"an alias action is a CreateAlias or DeleteAlias, not {type(a).__name__}")
    return req


# ---------------------------------------------------------------------------------------------
# Writes


def _column(name: str, values: Optional[Sequence[Any]], n: int) -> Optional[Sequence[Any]]:
    if values is None:
        return None
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} ids")
    return values


def _named_columns(name: str, cols: Optional[Mapping[str, Any]], n: int) -> Dict[str, Sequence[Any]]:
    out: Dict[str, Sequence[Any]] = {}
    for key, col in (cols or {}).items():
        c = _column(f"{name}[{key!r}]", col, n)
        assert c is not None
        out[key] = c
    return out


def build_point(
    id: PointIdLike,
    vector: Optional[bytes],
    payload: Optional[Mapping[str, JSON]],
    sparse: Optional[Mapping[str, Optional[SparseLike]]],
    named: Optional[Mapping[str, Optional[VectorLike]]],
) -> common_pb2.Point:
    p = common_pb2.Point(id=point_id(id))
    if vector:
        set_vector(p, vector)
    if payload is not None:
        fill_struct(p.payload, payload)
    for sname, sv in (sparse or {}).items():
        if sv is not None:
            fill_sparse(p.sparse[sname], sv)
    for vname, v in (named or {}).items():
        if v is not None:
            set_dense(p.vectors[vname], vector_bytes(v))
    return p


def points_from_columns(
    ids: Union[Sequence[PointIdLike], npt.NDArray[Any]],
    vectors: Optional[VectorsLike],
    payloads: Optional[Sequence[Optional[Mapping[str, JSON]]]],
    sparse: Optional[Mapping[str, Sequence[Optional[SparseLike]]]],
    named_vectors: Optional[Mapping[str, Union[Sequence[Optional[VectorLike]], npt.NDArray[Any]]]],
) -> Tuple[int, Iterator[common_pb2.Point]]:
    """How many points the columns hold, and the Point messages, built one at a time."""
    id_list: Sequence[Any] = ids.tolist() if isinstance(ids, np.ndarray) else ids
    n = len(id_list)
    vecs = rows_bytes(vectors) if vectors is not None else None
    _column("vectors", vecs, n)
    _column("payloads", payloads, n)
    sp = _named_columns("sparse", sparse, n)
    nv = _named_columns("named_vectors", named_vectors, n)

    def gen() -> Iterator[common_pb2.Point]:
        for i in range(n):
            yield build_point(
                id_list[i],
                vecs[i] if vecs is not None else None,
                payloads[i] if payloads is not None else None,
                {k: c[i] for k, c in sp.items()} if sp else None,
                {k: c[i] for k, c in nv.items()} if nv else None,
            )

    return n, gen()


def points_from_models(points: Iterable[Point]) -> Tuple[Optional[int], Iterator[common_pb2.Point]]:
    pts = points
    total = len(pts) if isinstance(pts, Sequence) else None

    def gen() -> Iterator[common_pb2.Point]:
        for p in pts:
            yield build_point(
                p.id, vector_bytes(p.vector) if p.vector is not None else None, p.payload, p.sparse, p.vectors
            )

    return total, gen()


def batches(
    points: Iterator[common_pb2.Point], batch_size: int, max_batch_bytes: int
) -> Iterator[List[common_pb2.Point]]:
    """Lists of at most `batch_size` points and (roughly) `max_batch_bytes` encoded bytes."""
    if batch_size < 1:
        raise ValueError("batch_size is at least 1")
    batch: List[common_pb2.Point] = []
    size = 0
    for p in points:
        b = p.ByteSize() + 4
        if batch and (len(batch) >= batch_size or size + b > max_batch_bytes):
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += b
    if batch:
        yield batch


def delete_request(
    collection: str, ids: Optional[Union[Sequence[PointIdLike], npt.NDArray[Any]]], filter: Optional[FilterLike]
) -> ingest_pb2.DeleteRequest:
    if ids is None and filter is None:
        raise ValueError("delete needs ids, a filter, or both")
    req = ingest_pb2.DeleteRequest(collection=collection, ids=point_ids(ids) if ids is not None else ())
    if filter is not None:
        req.filter.CopyFrom(to_filter(filter))
    return req


def update_payload_request(
    collection: str,
    ids: Optional[Union[Sequence[PointIdLike], npt.NDArray[Any]]],
    filter: Optional[FilterLike],
    *,
    set: Optional[Mapping[str, JSON]] = None,
    overwrite: Optional[Mapping[str, JSON]] = None,
    delete_keys: Optional[Sequence[str]] = None,
    clear: bool = False,
) -> ingest_pb2.UpdatePayloadRequest:
    if ids is None and filter is None:
        raise ValueError("a payload update needs ids, a filter, or both")
    req = ingest_pb2.UpdatePayloadRequest(collection=collection, ids=point_ids(ids) if ids is not None else ())
    if filter is not None:
        req.filter.CopyFrom(to_filter(filter))
    if set is not None:
        req.set.CopyFrom(to_struct(set))
    elif overwrite is not None:
        req.overwrite.CopyFrom(to_struct(overwrite))
    elif delete_keys is not None:
        if isinstance(delete_keys, str):
            delete_keys = [delete_keys]
        req.delete_keys.keys.extend(delete_keys)
    elif clear:
        req.clear = True
    return req


def update_vectors_request(
    collection: str,
    ids: Union[Sequence[PointIdLike], npt.NDArray[Any]],
    vectors: Optional[VectorsLike],
    named_vectors: Optional[Mapping[str, Union[Sequence[Optional[VectorLike]], npt.NDArray[Any]]]],
    sparse: Optional[Mapping[str, Sequence[Optional[SparseLike]]]],
) -> ingest_pb2.UpdateVectorsRequest:
    id_list: Sequence[Any] = ids.tolist() if isinstance(ids, np.ndarray) else ids
    n = len(id_list)
    vecs = rows_bytes(vectors) if vectors is not None else None
    _column("vectors", vecs, n)
    sp = _named_columns("sparse", sparse, n)
    nv = _named_columns("named_vectors", named_vectors, n)
    req = ingest_pb2.UpdateVectorsRequest(collection=collection)
    for i in range(n):
        pv = req.points.add()
        pv.id.CopyFrom(point_id(id_list[i]))
        if vecs is not None:
            set_vector(pv, vecs[i])
        for key, col in nv.items():
            if col[i] is not None:
                set_dense(pv.vectors[key], vector_bytes(col[i]))
        for key, col in sp.items():
            if col[i] is not None:
                fill_sparse(pv.sparse[key], col[i])
    return req


def delete_result(r: ingest_pb2.DeleteResponse) -> DeleteResult:
    return DeleteResult(r.deleted, r.sequence)


def update_result(r: Union[ingest_pb2.UpdatePayloadResponse, ingest_pb2.UpdateVectorsResponse]) -> UpdateResult:
    return UpdateResult(r.updated, r.sequence)


def flush_result(r: ingest_pb2.FlushResponse) -> FlushResult:
    return FlushResult(r.sealed_points, r.indexed_point_count, r.point_count)


# ---------------------------------------------------------------------------------------------
# Admin


def tier_move_request(collection: str, tier: Union[Tier, str]) -> storage_pb2.TierMoveRequest:
    return storage_pb2.TierMoveRequest(collection=collection, target=pb_enum(to_enum(Tier, tier)))


def tier_status(s: storage_pb2.CollectionTierStatus) -> TierStatus:
    return TierStatus.from_proto(s)


def snapshot_info(s: storage_pb2.SnapshotInfo) -> SnapshotInfo:
    return SnapshotInfo.from_proto(s)


# ---------------------------------------------------------------------------------------------
# Progress


class Progress:
    """A tqdm progress bar when asked for (tqdm is the `progress` extra), else nothing."""

    def __init__(self, enabled: bool, total: Optional[int], desc: str) -> None:
        self._bar: Any = None
        if enabled:
            try:
                tqdm = importlib.import_module("tqdm.auto").tqdm
            except ImportError:
                raise ImportError("progress=True needs tqdm: pip install 'akidb[progress]'") from None
            self._bar = tqdm(total=total, desc=desc, unit="pt")

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

