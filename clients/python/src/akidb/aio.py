"""The asyncio client (on ``grpc.aio``): the same methods as :class:`akidb.AkiDB`, awaited.

Create it inside the running event loop::

    async with AsyncAkiDB("localhost") as db:
        hits = await db.search("docs", vector, k=10)
        async for point in db.scroll("docs"):
            ...
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import grpc
import grpc.aio
import numpy.typing as npt

from akidb import _core
from akidb._client import IdsLike
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

__all__ = ["AsyncAkiDB"]

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class AsyncAkiDB:
    """An asyncio AkiDB client: the arguments and methods of :class:`akidb.AkiDB`, each a
    coroutine (``scroll`` an async iterator). Many calls may run at once on one client.

    Use as ``async with AsyncAkiDB(...) as db`` or ``await db.close()``.
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
            self._query_channel = grpc.aio.insecure_channel(s.query_address, options=s.options)
            self._ingest_channel = grpc.aio.insecure_channel(s.ingest_address, options=s.options)
        else:
            self._query_channel = grpc.aio.secure_channel(s.query_address, s.credentials, options=s.options)
            self._ingest_channel = grpc.aio.secure_channel(s.ingest_address, s.credentials, options=s.options)
        self._fns: Dict[str, Any] = _core.callables(self._query_channel, self._ingest_channel)

    @property
    def query_address(self) -> str:
        """The query service's address."""
        return self._settings.query_address

    @property
    def ingest_address(self) -> str:
        """The ingest service's address."""
        return self._settings.ingest_address

    async def close(self) -> None:
        """Close both channels."""
        await self._query_channel.close(None)
        await self._ingest_channel.close(None)

    async def __aenter__(self) -> AsyncAkiDB:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncAkiDB(query={self.query_address!r}, ingest={self.ingest_address!r})"

    # -----------------------------------------------------------------------------------------
    # Sending

    async def _call(self, rpc: Rpc[Req, Resp], req: Req, timeout: Optional[float]) -> Resp:
        fn = self._fns[rpc.path]
        t = self._timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            return await fn(req, timeout=t, metadata=self._metadata)  # type: ignore[no-any-return]
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
            await asyncio.sleep(delay)
            attempt += 1
            left = None if t is None else t - (time.monotonic() - start)
            try:
                return await fn(req, timeout=left, metadata=self._metadata)  # type: ignore[no-any-return]
            except grpc.RpcError as e:
                if e.code() != _UNAVAILABLE:
                    raise call_error(e, t, start) from None
                err = e

    # -----------------------------------------------------------------------------------------
    # Collections

    async def create_collection(
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
        """Create a collection (see :meth:`akidb.AkiDB.create_collection`)."""
        req = _core.create_collection_request(
            name, dimension, metric, m, ef_construction, pin, datatype, quantization, on_disk,
            shards, replication, payload_indexes, sparse_vectors, vectors,
        )  # fmt: skip
        return _core.collection_info((await self._call(_core.CREATE_COLLECTION, req, timeout)).collection)

    async def get_collection(self, name: str, *, timeout: Optional[float] = None) -> CollectionInfo:
        """A collection's description (`name` may be an alias)."""
        r = await self._call(_core.GET_COLLECTION, collection_pb2.GetCollectionRequest(name=name), timeout)
        return _core.collection_info(r.collection)

    async def collection_exists(self, name: str, *, timeout: Optional[float] = None) -> bool:
        """Whether a collection (or alias) of this name exists."""
        try:
            await self.get_collection(name, timeout=timeout)
            return True
        except NotFoundError:
            return False

    async def list_collections(self, *, timeout: Optional[float] = None) -> List[CollectionInfo]:
        """Every collection the API key may see."""
        r = await self._call(_core.LIST_COLLECTIONS, collection_pb2.ListCollectionsRequest(), timeout)
        return [_core.collection_info(c) for c in r.collections]

    async def delete_collection(self, name: str, *, timeout: Optional[float] = None) -> None:
        """Delete a collection and its aliases."""
        await self._call(_core.DELETE_COLLECTION, collection_pb2.DeleteCollectionRequest(name=name), timeout)

    async def list_aliases(self, *, timeout: Optional[float] = None) -> List[Alias]:
        """Every alias."""
        r = await self._call(_core.LIST_COLLECTIONS, collection_pb2.ListCollectionsRequest(), timeout)
        return _core.aliases(r.aliases)

    async def update_aliases(
        self, actions: Sequence[Union[CreateAlias, DeleteAlias]], *, timeout: Optional[float] = None
    ) -> List[Alias]:
        """Apply alias actions atomically, in order (see :meth:`akidb.AkiDB.update_aliases`)."""
        r = await self._call(_core.UPDATE_ALIASES, _core.update_aliases_request(actions), timeout)
        return _core.aliases(r.aliases)

    async def create_alias(self, alias: str, collection: str, *, timeout: Optional[float] = None) -> List[Alias]:
        """Create `alias` for `collection`. Returns every alias."""
        return await self.update_aliases([CreateAlias(alias, collection)], timeout=timeout)

    async def delete_alias(self, alias: str, *, timeout: Optional[float] = None) -> List[Alias]:
        """Delete `alias`. Returns every alias left."""
        return await self.update_aliases([DeleteAlias(alias)], timeout=timeout)

    # -----------------------------------------------------------------------------------------
    # Writes

    async def upsert(
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
        concurrency: int = 1,
        progress: bool = False,
        timeout: Optional[float] = None,
    ) -> UpsertResult:
        """Insert or replace points in batches (see :meth:`akidb.AkiDB.upsert`); up to
        `concurrency` batches are in flight at once. On an error the batches in flight are
        cancelled and the error is raised; batches already acknowledged stay written."""
        if concurrency < 1:
            raise ValueError("concurrency is at least 1")
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
        pending: Set[asyncio.Task[Tuple[int, Any]]] = set()

        async def send(batch: List[Any]) -> Tuple[int, Any]:
            req = ingest_pb2.UpsertRequest(collection=collection, points=batch)
            return len(batch), await self._call(_core.UPSERT, req, timeout)

        def settle(done: Set[asyncio.Task[Tuple[int, Any]]]) -> None:
            nonlocal upserted, sequence
            for task in done:
                n_sent, r = task.result()
                upserted += r.upserted
                sequence = max(sequence, r.sequence)
                bar.update(n_sent)

        try:
            for batch in _core.batches(gen, batch_size, max_batch_bytes):
                if len(pending) >= concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    settle(done)
                pending.add(asyncio.ensure_future(send(batch)))
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                settle(done)
        finally:
            for task in pending:
                task.cancel()
            bar.close()
        return UpsertResult(upserted, sequence)

    async def delete(
        self,
        collection: str,
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> DeleteResult:
        """Delete points by ids and/or by filter."""
        return _core.delete_result(await self._call(_core.DELETE, _core.delete_request(collection, ids, filter), timeout))

    async def set_payload(
        self,
        collection: str,
        payload: Mapping[str, JSON],
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Merge `payload` into the payloads of the points named by ids and/or filter."""
        req = _core.update_payload_request(collection, ids, filter, set=payload)
        r = await self._call(_core.UPDATE_PAYLOAD, req, timeout)
        return _core.update_result(r)

    async def overwrite_payload(
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
        r = await self._call(_core.UPDATE_PAYLOAD, req, timeout)
        return _core.update_result(r)

    async def delete_payload_keys(
        self,
        collection: str,
        keys: Sequence[str],
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Remove these keys from the payloads of the points named by ids and/or filter."""
        req = _core.update_payload_request(collection, ids, filter, delete_keys=keys)
        r = await self._call(_core.UPDATE_PAYLOAD, req, timeout)
        return _core.update_result(r)

    async def clear_payload(
        self,
        collection: str,
        ids: Optional[IdsLike] = None,
        *,
        filter: Optional[FilterLike] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Remove the whole payload of the points named by ids and/or filter."""
        req = _core.update_payload_request(collection, ids, filter, clear=True)
        r = await self._call(_core.UPDATE_PAYLOAD, req, timeout)
        return _core.update_result(r)

    async def update_vectors(
        self,
        collection: str,
        ids: IdsLike,
        vectors: Optional[VectorsLike] = None,
        *,
        named_vectors: Optional[Mapping[str, Union[Sequence[Optional[VectorLike]], "npt.NDArray[Any]"]]] = None,
        sparse: Optional[Mapping[str, Sequence[Optional[SparseLike]]]] = None,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Replace vectors of existing points (see :meth:`akidb.AkiDB.update_vectors`)."""
        req = _core.update_vectors_request(collection, ids, vectors, named_vectors, sparse)
        r = await self._call(_core.UPDATE_VECTORS, req, timeout)
        return _core.update_result(r)

    async def flush(self, collection: str, *, wait_indexed: bool = False, timeout: Optional[float] = None) -> FlushResult:
        """Seal the appendable segment; with `wait_indexed`, wait for every graph."""
        req = ingest_pb2.FlushRequest(collection=collection, wait_indexed=wait_indexed)
        return _core.flush_result(await self._call(_core.FLUSH, req, timeout))

    # -----------------------------------------------------------------------------------------
    # Reads

    async def search(
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
        """The `k` nearest points to `vector`, best first (see :meth:`akidb.AkiDB.search`)."""
        req = _core.search_request(collection, vector, k, filter, ef, with_payload, with_vector, exact, oversampling, vector_name)
        return SearchResult(await self._call(_core.SEARCH, req, timeout), with_payload, with_vector)

    async def search_batch(
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
        """Several searches in one call (see :meth:`akidb.AkiDB.search_batch`)."""
        req = _core.search_batch_request(collection, vectors, k, filter, ef, with_payload, with_vector, exact, oversampling, vector_name)
        r = await self._call(_core.SEARCH_BATCH, req, timeout)
        return [SearchResult(x, with_payload, with_vector) for x in r.results]

    async def query(
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
        """A hybrid search fusing several branches (see :meth:`akidb.AkiDB.query`)."""
        req = _core.query_request(collection, branches, k, fusion, weights, rrf_k, filter, with_payload, with_vector)
        return QueryResult(await self._call(_core.QUERY, req, timeout), with_payload, with_vector)

    async def get(
        self,
        collection: str,
        ids: Union[PointIdLike, IdsLike],
        *,
        with_payload: bool = True,
        with_vector: bool = False,
        timeout: Optional[float] = None,
    ) -> List[Record]:
        """The points of these ids that exist, in the order asked."""
        r = await self._call(_core.GET, _core.get_request(collection, ids, with_payload, with_vector), timeout)
        return _core.records(r.points, with_payload, with_vector)

    async def count(self, collection: str, filter: Optional[FilterLike] = None, *, timeout: Optional[float] = None) -> int:
        """How many points (matching `filter`) the collection holds."""
        return int((await self._call(_core.COUNT, _core.count_request(collection, filter), timeout)).count)

    async def scroll_page(
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
        return _core.scroll_page(await self._call(_core.SCROLL, req, timeout), with_payload, with_vector)

    async def scroll(
        self,
        collection: str,
        filter: Optional[FilterLike] = None,
        *,
        page_size: int = 100,
        with_payload: bool = True,
        with_vector: bool = False,
        timeout: Optional[float] = None,
    ) -> AsyncIterator[Record]:
        """Every point (matching `filter`): an async iterator that follows the cursors."""
        cursor: Optional[str] = None
        while True:
            page = await self.scroll_page(
                collection, filter, limit=page_size, cursor=cursor, with_payload=with_payload,
                with_vector=with_vector, timeout=timeout,
            )  # fmt: skip
            for p in page.points:
                yield p
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -----------------------------------------------------------------------------------------
    # Admin

    async def tier_status(self, collection: Optional[str] = None, *, timeout: Optional[float] = None) -> List[TierStatus]:
        """Where each collection (or just `collection`) lives and its sizes."""
        r = await self._call(_core.TIER_STATUS, storage_pb2.TierStatusRequest(collection=collection or ""), timeout)
        return [_core.tier_status(s) for s in r.collections]

    async def promote(self, collection: str, tier: Union[Tier, str] = Tier.HOT, *, timeout: Optional[float] = None) -> TierStatus:
        """Move a collection to a hotter tier."""
        return _core.tier_status((await self._call(_core.PROMOTE, _core.tier_move_request(collection, tier), timeout)).status)

    async def demote(self, collection: str, tier: Union[Tier, str] = Tier.WARM, *, timeout: Optional[float] = None) -> TierStatus:
        """Move a collection to a colder tier (a pinned one: :class:`FailedPreconditionError`)."""
        return _core.tier_status((await self._call(_core.DEMOTE, _core.tier_move_request(collection, tier), timeout)).status)

    async def pin(self, collection: str, pinned: bool = True, *, timeout: Optional[float] = None) -> TierStatus:
        """Pin (keep hot) or unpin a collection."""
        r = await self._call(_core.PIN, storage_pb2.PinRequest(collection=collection, pinned=pinned), timeout)
        return _core.tier_status(r.status)

    async def snapshot(self, collection: str, *, timeout: Optional[float] = None) -> SnapshotInfo:
        """Take a snapshot of a collection now."""
        r = await self._call(_core.SNAPSHOT, storage_pb2.SnapshotRequest(collection=collection), timeout)
        return _core.snapshot_info(r.snapshot)

    async def list_snapshots(self, collection: str, *, timeout: Optional[float] = None) -> List[SnapshotInfo]:
        """A collection's snapshots."""
        r = await self._call(_core.LIST_SNAPSHOTS, storage_pb2.ListSnapshotsRequest(collection=collection), timeout)
        return [_core.snapshot_info(s) for s in r.snapshots]
