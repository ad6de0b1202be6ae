"""The synchronous client."""
from __future__ import annotations

import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import numpy.typing as npt

from akidb import _core
from akidb._convert import JSON, PointIdLike, SparseLike, VectorLike, VectorsLike
from akidb._core import Req, Resp, Rpc, TlsLike
from akidb.errors import NotFoundError, call_error
from akidb.filters import FilterLike
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
    QueryResult,
    Record,
    ScrollPage,
    SearchResult,
    SnapshotInfo,
    Sparse,
    Tier,
    TierStatus,
    UpdateResult,
    UpsertResult,
)
from akidb.v1 import collection_pb2, ingest_pb2, storage_pb2

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
IdsLike = Union[Sequence[PointIdLike], "npt.NDArray[Any]"]


class AkiDB:
    """A synchronous AkiDB client.

    ``AkiDB("localhost")`` talks to the query service on port 50051 and the ingest service
    (writes) on the next port, 50052. `host` may carry the port (``"db:51251"``); the ingest
    port (`ingest_port`) or whole address (`ingest_address`) can be given apart.

    Args:
        host: The query service's host, or "host:port".
        port: The query service's port, when `host` has none.
        ingest_port: The ingest service's port (default: the query port + 1).
        ingest_address: The ingest service's "host:port" (overrides `ingest_port`).
        api_key: Sent as ``authorization: Bearer <key>`` with every call.
        tls: False (plaintext), True (TLS with the system's roots), or the CA certificate that
            signed the server's: a PEM file path or its bytes (what ``akidb up --tls`` prints).
        tls_server_name: The name to check the server's certificate against, when it differs
            from `host`.
        timeout: Default deadline of each call, in seconds (None: none). Every method also
            takes ``timeout=``.
        max_retries: Reads (search, get, count, scroll, query, collection info) are retried
            on UNAVAILABLE with exponential backoff until their deadline; this caps the number
            of retries too (None: only the deadline; 10 when there is no deadline). Writes are
            never retried.
        options: Extra gRPC channel options, e.g. ``[("grpc.keepalive_time_ms", 10000)]``.

    Use as a context manager, or call :meth:`close`. Errors are raised as the
    :class:`akidb.AkiDBError` subclass of their status code.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = _core.DEFAULT_PORT,
        *,
        ingest_port: Optional[int] = None,
        ingest_address: Optional[str] = None,
        api_key: Optional[str] = None,
        tls: TlsLike = False,
        tls_server_name: Optional[str] = None,
        timeout: Optional[float] = _core.DEFAULT_TIMEOUT,
        max_retries: Optional[int] = None,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        s = _core.Settings(
            host, port, ingest_port, ingest_address, api_key, tls, tls_server_name,
            timeout, max_retries, initial_backoff, max_backoff, options,
        )  # fmt: skip
        self._settings = s
        self._metadata = s.metadata
        self._timeout = s.timeout
        if s.credentials is None:
            self._query_channel = grpc.insecure_channel(s.query_address, options=s.options)
            self._ingest_channel = grpc.insecure_channel(s.ingest_address, options=s.options)
        else:
            self._query_channel = grpc.secure_channel(s.query_address, s.credentials, options=s.options)
            self._ingest_channel = grpc.secure_channel(s.ingest_address, s.credentials, options=s.options)
        self._fns: Dict[str, Any] = _core.callables(self._query_channel, self._ingest_channel)

    @property
    def query_address(self) -> str:
        """The query service's address."""
        return self._settings.query_address

    @property
    def ingest_address(self) -> str:
        """The ingest service's address."""
        return self._settings.ingest_address

    def close(self) -> None:
        """Close both channels."""
        self._query_channel.close()
        self._ingest_channel.close()

    def __enter__(self) -> AkiDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AkiDB(query={self.query_address!r}, ingest={self.ingest_address!r})"

    # -----------------------------------------------------------------------------------------
    # Sending

    def _call(self, rpc: Rpc[Req, Resp], req: Req, timeout: Optional[float]) -> Resp:
        fn = self._fns[rpc.path]
        t = self._timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            return fn(req, timeout=t, metadata=self._metadata)  # type: ignore[no-any-return]
        except grpc.RpcError as e:
            if not rpc.idempotent or e.code() != _UNAVAILABLE:
                raise call_error(e, t, start) from None
            err = e
        s = self._settings
        attempt = 0
        while True:
            if not s.retry_allowed(attempt):
                raise call_error(err, t, start) from None
            delay = s.backoff(attempt)
            remaining = None if t is None else t - (time.monotonic() - start)
            if remaining is not None and remaining <= delay:
                raise call_error(err, t, start) from None
            time.sleep(delay)
            attempt += 1
            left = None if t is None else t - (time.monotonic() - start)
            try:
                return fn(req, timeout=left, metadata=self._metadata)  # type: ignore[no-any-return]
            except grpc.RpcError as e:
                if e.code() != _UNAVAILABLE:
                    raise call_error(e, t, start) from None
                err = e

    # -----------------------------------------------------------------------------------------
    # Collections

    def create_collection(
        self,
        name: str,
        dimension: int,
        metric: Union[Metric, str],
        *,
        m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        pin: bool = False,
        datatype: Union[Datatype, str, None] = None,
        quantization: Union[Quantization, str, None] = None,
        on_disk: bool = False,
        shards: int = 0,
        replication: int = 0,
        payload_indexes: Optional[Mapping[str, Union[PayloadIndex, str]]] = None,
        sparse_vectors: Optional[Sequence[str]] = None,
        vectors: Optional[Mapping[str, NamedVectorParams]] = None,
        timeout: Optional[float] = None,
    ) -> CollectionInfo:
        """Create a collection of `dimension`-dimensional vectors compared by `metric`
        (``"cosine"``, ``"l2"``, ``"dot"`` or a :class:`Metric`).

        Optional: HNSW `m` and `ef_construction`; `pin` (keep it hot); `datatype` (FLOAT32,
        FLOAT16); `quantization` (NONE, INT8, BINARY); `on_disk` (map sealed vectors from
        disk); `shards` and `replication` (clusters); `payload_indexes` (dotted key -> kind);
        `sparse_vectors` (names); `vectors` (named dense vectors). Raises
        :class:`AlreadyExistsError` when the name is taken.
        """
        req = _core.create_collection_request(
            name, dimension, metric, m, ef_construction, pin, datatype, quantization, on_disk,
            shards, replication, payload_indexes, sparse_vectors, vectors,
        )  # fmt: skip
        return _core.collection_info(self._call(_core.CREATE_COLLECTION, req, timeout).collection)

    def get_collection(self, name: str, *, timeout: Optional[float] = None) -> CollectionInfo:
        """A collection's description (`name` may be an alias). Raises :class:`NotFoundError`."""
        r = self._call(_core.GET_COLLECTION, collection_pb2.GetCollectionRequest(name=name), timeout)
        return _core.collection_info(r.collection)

    def collection_exists(self, name: str, *, timeout: Optional[float] = None) -> bool:
        """Whether a collection (or alias) of this name exists."""
        try:
            self.get_collection(name, timeout=timeout)
            return True
        except NotFoundError:
            return False

    def list_collections(self, *, timeout: Optional[float] = None) -> List[CollectionInfo]:
        """Every collection the API key may see."""
        r = self._call(_core.LIST_COLLECTIONS, collection_pb2.ListCollectionsRequest(), timeout)
        return [_core.collection_info(c) for c in r.collections]

    def delete_collection(self, name: str, *, timeout: Optional[float] = None) -> None:
        """Delete a collection and its aliases. Raises :class:`NotFoundError`."""
        self._call(_core.DELETE_COLLECTION, collection_pb2.DeleteCollectionRequest(name=name), timeout)

    def list_aliases(self, *, timeout: Optional[float] = None) -> List[Alias]:
        """Every alias."""
        r = self._call(_core.LIST_COLLECTIONS, collection_pb2.ListCollectionsRequest(), timeout)
        return _core.aliases(r.aliases)

    def update_aliases(
        self, actions: Sequence[Union[CreateAlias, DeleteAlias]], *, timeout: Optional[float] = None
    ) -> List[Alias]:
        """Apply alias actions together, in order, or none of them: ``[DeleteAlias("live"),
        CreateAlias("live", "v2")]`` swaps what "live" names atomically. Returns every alias."""
        r = self._call(_core.UPDATE_ALIASES, _core.update_aliases_request(actions), timeout)
        return _core.aliases(r.aliases)

    def create_alias(self, alias: str, collection: str, *, timeout: Optional[float] = None) -> List[Alias]:
        """Create `alias` for `collection`. Returns every alias."""
        return self.update_aliases([CreateAlias(alias, collection)], timeout=timeout)

    def delete_alias(self, alias: str, *, timeout: Optional[float] = None) -> List[Alias]:
        """Delete `alias`. Returns every alias left."""
        return self.update_aliases([DeleteAlias(alias)], timeout=timeout)

    # -----------------------------------------------------------------------------------------
    # Writes

    def upsert(
        self,
        collection: str,
        ids: Optional[IdsLike] = None,
        vectors: Optional[VectorsLike] = None,
        payloads: Optional[Sequence[Optional[Mapping[str, JSON]]]] = None,
        *,
        points: Optional[Iterable[Point]] = None,
        sparse: Optional[Mapping[str, Sequence[Optional[SparseLike]]]] = None,
        named_vectors: Optional[Mapping[str, Union[Sequence[Optional[VectorLike]], "npt.NDArray[Any]"]]] = None,
        batch_size: int = _core.DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = _core.DEFAULT_BATCH_BYTES,
        progress: bool = False,
        timeout: Optional[float] = None,
    ) -> UpsertResult:
        """Insert or replace points, sent in batches.

        Give columns — `ids` (ints or UUIDs), `vectors` (a 2-d array or a list of vectors),
        optionally `payloads` (dicts), `sparse` (name -> one sparse vector or None per point)
        and `named_vectors` (name -> a 2-d array or list, None for a point without) — or
        `points`, an iterable of :class:`Point`.

        Batches hold at most `batch_size` points and about `max_batch_bytes` bytes; each is
        all-or-nothing, and batches before a failed one stay written. `progress=True` shows a
        tqdm bar (the ``akidb[progress]`` extra). Writes are not retried; `timeout` applies
        to each batch.
        """
        if points is not None:
            if ids is not None or vectors is not None or payloads is not None:
                raise ValueError("give either points or ids/vectors/payloads columns, not both")
            total, gen = _core.points_from_models(points)
        elif ids is not None:
            n, gen = _core.points_from_columns(ids, vectors, payloads, sparse, named_vectors)
            total = n
        else:
            raise ValueError("upsert needs ids (with vectors) or points")
        bar = _core.Progress(progress, total, f"upsert {collection}")
        upserted, sequence = 0, 0
        try:
            for batch in _core.batches(gen, batch_size, max_batch_bytes):
                r = self._call(_core.UPSERT, ingest_pb2.UpsertRequest(collection=collection, points=batch), timeout)
                upserted += r.upserted
                sequence = r.sequence
                bar.update(len(batch))
        finally:
            bar.close()
        return UpsertResult(upserted, sequence)

    def delete(
        self,
        collection: str,
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> DeleteResult:
        """Delete points by ids and/or by filter."""
        return _core.delete_result(self._call(_core.DELETE, _core.delete_request(collection, ids, filter), timeout))

    def set_payload(
        self,
        collection: str,
        payload: Mapping[str, JSON],
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Merge `payload` into the payloads of the points named by ids and/or filter: its
        top-level keys replace the same keys, the others stay."""
        req = _core.update_payload_request(collection, ids, filter, set=payload)
        return _core.update_result(self._call(_core.UPDATE_PAYLOAD, req, timeout))

    def overwrite_payload(
        self,
        collection: str,
        payload: Mapping[str, JSON],
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Replace the whole payload of the points named by ids and/or filter."""
        req = _core.update_payload_request(collection, ids, filter, overwrite=payload)
        return _core.update_result(self._call(_core.UPDATE_PAYLOAD, req, timeout))

    def delete_payload_keys(
        self,
        collection: str,
        keys: Sequence[str],
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Remove these keys (dots reach into nested objects) from the payloads of the points
        named by ids and/or filter."""
        req = _core.update_payload_request(collection, ids, filter, delete_keys=keys)
        return _core.update_result(self._call(_core.UPDATE_PAYLOAD, req, timeout))

    def clear_payload(
        self,
        collection: str,
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Remove the whole payload of the points named by ids and/or filter."""
        req = _core.update_payload_request(collection, ids, filter, clear=True)
        return _core.update_result(self._call(_core.UPDATE_PAYLOAD, req, timeout))

    def update_vectors(
        self,
        collection: str,
        ids: IdsLike,
        vectors: Optional[VectorsLike] = None,
        *,
        named_vectors: Optional[Mapping[str, Union[Sequence[Optional[VectorLike]], "npt.NDArray[Any]"]]] = None,
        sparse: Optional[Mapping[str, Sequence[Optional[SparseLike]]]] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Replace vectors of existing points, keeping their payloads and the vectors not
        given. All or nothing: :class:`NotFoundError` when a point does not exist."""
        req = _core.update_vectors_request(collection, ids, vectors, named_vectors, sparse)
        return _core.update_result(self._call(_core.UPDATE_VECTORS, req, timeout))

    def flush(self, collection: str, *, wait_indexed: bool = False, timeout: Optional[float] = None) -> FlushResult:
        """Seal the collection's appendable segment so its graph gets built now; with
        `wait_indexed`, return once every sealed segment has its graph."""
        req = ingest_pb2.FlushRequest(collection=collection, wait_indexed=wait_indexed)
        return _core.flush_result(self._call(_core.FLUSH, req, timeout))

    # -----------------------------------------------------------------------------------------
    # Reads

    def search(
        self,
        collection: str,
        vector: Union[VectorLike, Dense, Sparse],
        k: int = 10,
        *,
        filter: Optional[FilterLike] = None,
        ef: Optional[int] = None,
        with_payload: bool = False,
        with_vector: bool = False,
        exact: bool = False,
        oversampling: Optional[float] = None,
        vector_name: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> SearchResult:
        """The `k` nearest points to `vector` (a 1-d array or list; or a :class:`Sparse` for a
        sparse search, or a :class:`Dense` spec), best first.

        `filter` restricts the candidates; `ef` sets the graph search's candidate list
        (default: the server's calibrated one); `exact` searches every point; `oversampling`
        applies to quantized collections; `vector_name` searches a named dense vector.
        Payloads and vectors come back only when asked for.
        """
        req = _core.search_request(collection, vector, k, filter, ef, with_payload, with_vector, exact, oversampling, vector_name)
        return SearchResult(self._call(_core.SEARCH, req, timeout), with_payload, with_vector)

    def search_batch(
        self,
        collection: str,
        vectors: Union[VectorsLike, Sequence[Union[VectorLike, Dense, Sparse]]],
        k: int = 10,
        *,
        filter: Optional[FilterLike] = None,
        ef: Optional[int] = None,
        with_payload: bool = False,
        with_vector: bool = False,
        exact: bool = False,
        oversampling: Optional[float] = None,
        vector_name: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> List[SearchResult]:
        """Several searches in one call: one per row of a 2-d array, or per entry of a list of
        vectors and :class:`Dense` / :class:`Sparse` specs (which bring their own k and filter
        when set). Returns one result per search, in order."""
        req = _core.search_batch_request(collection, vectors, k, filter, ef, with_payload, with_vector, exact, oversampling, vector_name)
        r = self._call(_core.SEARCH_BATCH, req, timeout)
        return [SearchResult(x, with_payload, with_vector) for x in r.results]

    def query(
        self,
        collection: str,
        branches: Sequence[Union[Dense, Sparse]],
        k: int = 10,
        *,
        fusion: Union[Fusion, str] = Fusion.RRF,
        weights: Optional[Sequence[float]] = None,
        rrf_k: Optional[int] = None,
        filter: Optional[FilterLike] = None,
        with_payload: bool = False,
        with_vector: bool = False,
        timeout: Optional[float] = None,
    ) -> QueryResult:
        """A hybrid search: 1 to 8 branches (:class:`Dense` and/or :class:`Sparse`) fused into
        one ranking by RRF (default) or DBSF, with optional per-branch `weights`. A branch
        without its own k contributes `k` results; without its own filter, uses `filter`."""
        req = _core.query_request(collection, branches, k, fusion, weights, rrf_k, filter, with_payload, with_vector)
        return QueryResult(self._call(_core.QUERY, req, timeout), with_payload, with_vector)

    def get(
        self,
        collection: str,
        ids: Union[PointIdLike, IdsLike],
        *,
        with_payload: bool = True,
        with_vector: bool = False,
        timeout: Optional[float] = None,
    ) -> List[Record]:
        """The points of these ids that exist, in the order asked."""
        r = self._call(_core.GET, _core.get_request(collection, ids, with_payload, with_vector), timeout)
        return _core.records(r.points, with_payload, with_vector)

    def count(self, collection: str, filter: Optional[FilterLike] = None, *, timeout: Optional[float] = None) -> int:
        """How many points (matching `filter`) the collection holds."""
        return int(self._call(_core.COUNT, _core.count_request(collection, filter), timeout).count)

    def scroll_page(
        self,
        collection: str,
        filter: Optional[FilterLike] = None,
        *,
        limit: int = 100,
        cursor: Optional[str] = None,
        with_payload: bool = True,
        with_vector: bool = False,
        timeout: Optional[float] = None,
    ) -> ScrollPage:
        """One page of up to `limit` points; pass its `next_cursor` for the next one."""
        req = _core.scroll_request(collection, filter, limit, cursor, with_payload, with_vector)
        return _core.scroll_page(self._call(_core.SCROLL, req, timeout), with_payload, with_vector)

    def scroll(
        self,
        collection: str,
        filter: Optional[FilterLike] = None,
        *,
        page_size: int = 100,
        with_payload: bool = True,
        with_vector: bool = False,
        timeout: Optional[float] = None,
    ) -> Iterator[Record]:
        """Every point (matching `filter`), page by page: an iterator that follows the
        server's cursors. `timeout` applies to each page."""
        cursor: Optional[str] = None
        while True:
            page = self.scroll_page(
                collection, filter, limit=page_size, cursor=cursor, with_payload=with_payload,
                with_vector=with_vector, timeout=timeout,
            )  # fmt: skip
            yield from page.points
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -----------------------------------------------------------------------------------------
    # Admin (operator calls; with keys on they need an admin key)

    def tier_status(self, collection: Optional[str] = None, *, timeout: Optional[float] = None) -> List[TierStatus]:
        """Where each collection (or just `collection`) lives and its sizes."""
        r = self._call(_core.TIER_STATUS, storage_pb2.TierStatusRequest(collection=collection or ""), timeout)
        return [_core.tier_status(s) for s in r.collections]

    def promote(self, collection: str, tier: Union[Tier, str] = Tier.HOT, *, timeout: Optional[float] = None) -> TierStatus:
        """Move a collection to a hotter tier."""
        r = self._call(_core.PROMOTE, _core.tier_move_request(collection, tier), timeout)
        return _core.tier_status(r.status)

    def demote(self, collection: str, tier: Union[Tier, str] = Tier.WARM, *, timeout: Optional[float] = None) -> TierStatus:
        """Move a collection to a colder tier (COLD needs an object store). A pinned
        collection raises :class:`FailedPreconditionError`."""
        r = self._call(_core.DEMOTE, _core.tier_move_request(collection, tier), timeout)
        return _core.tier_status(r.status)

    def pin(self, collection: str, pinned: bool = True, *, timeout: Optional[float] = None) -> TierStatus:
        """Pin (keep hot) or unpin a collection."""
        r = self._call(_core.PIN, storage_pb2.PinRequest(collection=collection, pinned=pinned), timeout)
        return _core.tier_status(r.status)

    def snapshot(self, collection: str, *, timeout: Optional[float] = None) -> SnapshotInfo:
        """Take a snapshot of a collection now."""
        r = self._call(_core.SNAPSHOT, storage_pb2.SnapshotRequest(collection=collection), timeout)
        return _core.snapshot_info(r.snapshot)

    def list_snapshots(self, collection: str, *, timeout: Optional[float] = None) -> List[SnapshotInfo]:
        """A collection's snapshots."""
        r = self._call(_core.LIST_SNAPSHOTS, storage_pb2.ListSnapshotsRequest(collection=collection), timeout)
        return [_core.snapshot_info(s) for s in r.snapshots]
