"""An in-memory stand-in for an AkiDB stack, for the unit tests: one gRPC server that serves
CollectionService, QueryService, IngestService and a little of AdminService, with brute-force
search and the common filter kinds. It also records requests and metadata, and can be told
to fail calls with a status code or to stall them.

Not AkiDB's behaviour in every detail: only what the client's tests need.
"""
from __future__ import annotations

import math
import threading
import time
from concurrent import futures
from typing import Any, Dict, List, Optional, Tuple

import grpc
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from akidb.v1 import (
    collection_pb2,
    collection_pb2_grpc,
    common_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    storage_pb2,
)


def _key(pid: common_pb2.PointId) -> Any:
    return pid.uuid if pid.WhichOneof("kind") == "uuid" else pid.num


def _pid(key: Any) -> common_pb2.PointId:
    return common_pb2.PointId(uuid=key) if isinstance(key, str) else common_pb2.PointId(num=key)


def _get(payload: Dict[str, Any], key: str) -> Any:
    cur: Any = payload
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _in_range(x: Any, r: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return (
        (not r.HasField("gt") or x > r.gt)
        and (not r.HasField("gte") or x >= r.gte)
        and (not r.HasField("lt") or x < r.lt)
        and (not r.HasField("lte") or x <= r.lte)
    )


def _field_matches(fc: common_pb2.FieldCondition, payload: Dict[str, Any]) -> bool:
    value = _get(payload, fc.key)
    values = value if isinstance(value, list) else [value]
    kind = fc.WhichOneof("match")
    for v in values:
        if kind == "keyword" and v == fc.keyword and isinstance(v, str):
            return True
        if kind == "integer" and not isinstance(v, bool) and isinstance(v, (int, float)) and v == fc.integer:
            return True
        if kind == "boolean" and v is fc.boolean:
            return True
        if kind == "any_of" and ((isinstance(v, str) and v in fc.any_of.keywords) or (isinstance(v, (int, float)) and not isinstance(v, bool) and v in fc.any_of.integers)):
            return True
        if kind == "range" and _in_range(v, fc.range):
            return True
        if kind == "text" and isinstance(v, str) and set(fc.text.lower().split()) <= set(v.lower().split()):
            return True
    return False


def matches(f: common_pb2.Filter, key: Any, payload: Dict[str, Any]) -> bool:
    def cond(c: common_pb2.Condition) -> bool:
        kind = c.WhichOneof("condition")
        if kind == "field":
            return _field_matches(c.field, payload)
        if kind == "has_id":
            return key in {_key(i) for i in c.has_id.ids}
        if kind == "filter":
            return matches(c.filter, key, payload)
        if kind == "is_empty":
            v = _get(payload, c.is_empty.key)
            return v is None or v == []
        if kind == "is_null":
            return c.is_null.key in payload and _get(payload, c.is_null.key) is None
        raise ValueError(f"the fake server does not do {kind}")

    if not all(cond(c) for c in f.must):
        return False
    if f.should and not any(cond(c) for c in f.should):
        return False
    if f.HasField("min_should") and sum(cond(c) for c in f.min_should.conditions) < f.min_should.min_count:
        return False
    return not any(cond(c) for c in f.must_not)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code, self.message = code, message


class _Collection:
    def __init__(self, req: collection_pb2.CreateCollectionRequest) -> None:
        self.req = req
        self.points: Dict[Any, common_pb2.Point] = {}
        self.version = 0
        self.pinned = req.pin

    def info(self) -> common_pb2.CollectionInfo:
        r = self.req
        info = common_pb2.CollectionInfo(
            name=r.name, dimension=r.dimension, metric=r.metric, point_count=len(self.points), tier=common_pb2.HOT,
            pinned=self.pinned, version=self.version, indexed_point_count=len(self.points), segment_count=1,
            datatype=r.datatype or common_pb2.FLOAT32, quantization=r.quantization or common_pb2.QUANTIZATION_NONE,
            on_disk=r.on_disk, shards=1, replication=1, sparse_vectors=list(r.sparse_vectors),
        )  # fmt: skip
        if r.HasField("m"):
            info.hnsw.m = r.m
        for k, v in r.payload_indexes.items():
            info.payload_indexes[k] = v
        for k, v in r.vectors.items():
            info.vectors[k].CopyFrom(v)
        return info


class FakeAkiDB:
    """The shared state and the servicers."""

    def __init__(self, api_key: Optional[str] = None) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.collections: Dict[str, _Collection] = {}
        self.aliases: Dict[str, str] = {}
        self.sequence = 0
        #: method name -> status codes to fail the next calls with (popped one a call)
        self.fail: Dict[str, List[Tuple[grpc.StatusCode, str]]] = {}
        #: method name -> seconds to stall each call
        self.stall: Dict[str, float] = {}
        self.calls: List[Tuple[str, Any, Dict[str, str]]] = []

    # --- plumbing

    def _enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        md = {k: v for k, v in context.invocation_metadata()}
        with self.lock:
            self.calls.append((method, request, md))
            queue = self.fail.get(method)
            failure = queue.pop(0) if queue else None
        if self.api_key is not None and md.get("authorization") != f"Bearer {self.api_key}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown API key")
        if failure is not None:
            context.abort(failure[0], failure[1])
        if method in self.stall:
            time.sleep(self.stall[method])

    def calls_of(self, method: str) -> List[Any]:
        return [req for m, req, _ in self.calls if m == method]

    def _coll(self, name: str) -> _Collection:
        name = self.aliases.get(name, name)
        c = self.collections.get(name)
        if c is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"collection `{name}` not found")
        return c

    def _seq(self) -> int:
        self.sequence += 1
        return self.sequence

    def handler(self, method: str, fn: Any) -> Any:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            self._enter(method, request, context)
            try:
                with self.lock:
                    return fn(request)
            except _Abort as e:
                context.abort(e.code, e.message)

        return call

    # --- collections

    def CreateCollection(self, r: collection_pb2.CreateCollectionRequest) -> Any:
        if r.name in self.collections or r.name in self.aliases:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"collection `{r.name}` already exists")
        if not 1 <= r.dimension <= 65536:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "dimension must be 1..=65536")
        if r.metric == common_pb2.METRIC_UNSPECIFIED:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "metric is unset")
        c = self.collections[r.name] = _Collection(r)
        return collection_pb2.CreateCollectionResponse(collection=c.info())

    def GetCollection(self, r: Any) -> Any:
        return collection_pb2.GetCollectionResponse(collection=self._coll(r.name).info())

    def ListCollections(self, r: Any) -> Any:
        return collection_pb2.ListCollectionsResponse(
            collections=[c.info() for c in self.collections.values()],
            aliases=[collection_pb2.Alias(alias=a, collection=c) for a, c in sorted(self.aliases.items())],
        )

    def DeleteCollection(self, r: Any) -> Any:
        if r.name not in self.collections:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"collection `{r.name}` not found")
        del self.collections[r.name]
        self.aliases = {a: c for a, c in self.aliases.items() if c != r.name}
        return collection_pb2.DeleteCollectionResponse()

    def UpdateAliases(self, r: collection_pb2.UpdateAliasesRequest) -> Any:
        aliases = dict(self.aliases)
        for a in r.actions:
            if a.WhichOneof("action") == "create":
                if a.create.alias in aliases:
                    raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"alias `{a.create.alias}` exists")
                if a.create.collection not in self.collections:
                    raise _Abort(grpc.StatusCode.NOT_FOUND, f"collection `{a.create.collection}` not found")
                aliases[a.create.alias] = a.create.collection
            else:
                if a.delete not in aliases:
                    raise _Abort(grpc.StatusCode.NOT_FOUND, f"alias `{a.delete}` not found")
                del aliases[a.delete]
        self.aliases = aliases
        return collection_pb2.UpdateAliasesResponse(
            aliases=[collection_pb2.Alias(alias=a, collection=c) for a, c in sorted(aliases.items())]
        )

    # --- writes

    def Upsert(self, r: ingest_pb2.UpsertRequest) -> Any:
        c = self._coll(r.collection)
        for p in r.points:
            if len(p.vector) != c.req.dimension:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"vector of point {_key(p.id)} has dimension {len(p.vector)}, expected {c.req.dimension}")
        for p in r.points:
            c.points[_key(p.id)] = p
        c.version += 1
        return ingest_pb2.UpsertResponse(upserted=len(r.points), sequence=self._seq())

    def _targets(self, c: _Collection, ids: Any, f: Optional[common_pb2.Filter]) -> List[Any]:
        keys = {_key(i) for i in ids}
        out = [k for k in c.points if k in keys]
        if f is not None:
            out += [k for k, p in c.points.items() if k not in keys and matches(f, k, MessageToDict(p.payload))]
        return out

    def Delete(self, r: ingest_pb2.DeleteRequest) -> Any:
        c = self._coll(r.collection)
        keys = self._targets(c, r.ids, r.filter if r.HasField("filter") else None)
        for k in keys:
            del c.points[k]
        return ingest_pb2.DeleteResponse(deleted=len(keys), sequence=self._seq())

    def UpdatePayload(self, r: ingest_pb2.UpdatePayloadRequest) -> Any:
        c = self._coll(r.collection)
        if not r.ids and not r.HasField("filter"):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "update_payload needs ids or a filter")
        change = r.WhichOneof("change")
        if change is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "update_payload needs a change")
        keys = self._targets(c, r.ids, r.filter if r.HasField("filter") else None)
        for k in keys:
            p = c.points[k]
            if change == "set":
                for key, v in r.set.fields.items():
                    p.payload.fields[key].CopyFrom(v)
            elif change == "overwrite":
                p.payload.Clear()
                p.payload.MergeFrom(r.overwrite)
            elif change == "delete_keys":
                for key in r.delete_keys.keys:
                    parts = key.split(".")
                    s: Any = p.payload
                    for part in parts[:-1]:
                        s = s.fields[part].struct_value if part in s.fields else None
                        if s is None:
                            break
                    if s is not None and parts[-1] in s.fields:
                        del s.fields[parts[-1]]
            else:
                p.ClearField("payload")
        return ingest_pb2.UpdatePayloadResponse(updated=len(keys), sequence=self._seq())

    def UpdateVectors(self, r: ingest_pb2.UpdateVectorsRequest) -> Any:
        c = self._coll(r.collection)
        for pv in r.points:
            if _key(pv.id) not in c.points:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"collection `{r.collection}` has no point {_key(pv.id)}")
        for pv in r.points:
            p = c.points[_key(pv.id)]
            if pv.vector:
                p.vector[:] = pv.vector
            for k, v in pv.vectors.items():
                p.vectors[k].CopyFrom(v)
            for k, v in pv.sparse.items():
                p.sparse[k].CopyFrom(v)
        return ingest_pb2.UpdateVectorsResponse(updated=len(r.points), sequence=self._seq())

    def Flush(self, r: ingest_pb2.FlushRequest) -> Any:
        c = self._coll(r.collection)
        return ingest_pb2.FlushResponse(sealed_points=len(c.points), indexed_point_count=len(c.points), point_count=len(c.points))

    # --- reads

    def _score(self, metric: int, q: List[float], v: List[float]) -> float:
        if metric == common_pb2.L2:
            return math.sqrt(sum((a - b) ** 2 for a, b in zip(q, v)))
        dot = sum(a * b for a, b in zip(q, v))
        if metric == common_pb2.COSINE:
            nq = math.sqrt(sum(a * a for a in q)) or 1.0
            nv = math.sqrt(sum(b * b for b in v)) or 1.0
            return dot / (nq * nv)
        return dot

    def _search(self, collection: str, r: query_pb2.SearchRequest, with_payload: bool, with_vector: bool) -> query_pb2.SearchResponse:
        c = self._coll(r.collection or collection)
        if not 1 <= r.k <= 10000:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"k must be 1..=10000, not {r.k}")
        metric = c.req.metric
        if r.HasField("sparse"):
            q = dict(zip(r.sparse.vector.indices, r.sparse.vector.values))
            scored = []
            for k, p in c.points.items():
                sv = p.sparse.get(r.sparse.name) if r.sparse.name in p.sparse else None
                if sv is None:
                    continue
                s = sum(q.get(i, 0.0) * w for i, w in zip(sv.indices, sv.values))
                if any(i in q for i in sv.indices):
                    scored.append((s, k))
            lower = False
        else:
            dim = c.req.vectors[r.vector_name].dimension if r.vector_name else c.req.dimension
            if len(r.vector) != dim:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"query vector has dimension {len(r.vector)}, the collection's is {dim}")
            scored = []
            for k, p in c.points.items():
                v = list(p.vectors[r.vector_name].values) if r.vector_name else list(p.vector)
                if r.vector_name and r.vector_name not in p.vectors:
                    continue
                scored.append((self._score(metric, list(r.vector), v), k))
            lower = metric == common_pb2.L2
        if r.HasField("filter"):
            scored = [(s, k) for s, k in scored if matches(r.filter, k, MessageToDict(c.points[k].payload))]
        scored.sort(key=lambda x: (x[0] if lower else -x[0], str(x[1])))
        resp = query_pb2.SearchResponse(stats=common_pb2.SearchStats(tier=common_pb2.HOT, points_exact=len(c.points), lower_is_closer=lower))
        for s, k in scored[: r.k]:
            h = resp.hits.add(id=_pid(k), score=s)
            p = c.points[k]
            if with_payload and p.HasField("payload"):
                h.payload.CopyFrom(p.payload)
            if with_vector:
                h.vector[:] = p.vector
                for name, v in p.sparse.items():
                    h.sparse[name].CopyFrom(v)
                for name, v in p.vectors.items():
                    h.vectors[name].CopyFrom(v)
        return resp

    def Search(self, r: query_pb2.SearchRequest) -> Any:
        return self._search(r.collection, r, r.with_payload, r.with_vector)

    def SearchBatch(self, r: query_pb2.SearchBatchRequest) -> Any:
        if not r.searches:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "search batch is empty; send at least one search")
        if len(r.searches) > 100:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"search batch has {len(r.searches)} searches, over the limit of 100; split it")
        return query_pb2.SearchBatchResponse(results=[self._search(s.collection, s, s.with_payload, s.with_vector) for s in r.searches])

    def Query(self, r: query_pb2.QueryRequest) -> Any:
        fused: Dict[Any, float] = {}
        resp = query_pb2.QueryResponse()
        weights = list(r.weights) or [1.0] * len(r.branches)
        rrf_k = r.rrf_k if r.HasField("rrf_k") else 60
        for b, w in zip(r.branches, weights):
            res = self._search(r.collection, b, False, False)
            resp.branches.add(stats=res.stats, returned=len(res.hits))
            for rank, h in enumerate(res.hits, start=1):
                fused[_key(h.id)] = fused.get(_key(h.id), 0.0) + w / (rrf_k + rank)
        c = self._coll(r.collection)
        for k, s in sorted(fused.items(), key=lambda x: (-x[1], str(x[0])))[: r.k]:
            h = resp.hits.add(id=_pid(k), score=s)
            if r.with_payload:
                h.payload.CopyFrom(c.points[k].payload)
        return resp

    def _retrieved(self, p: common_pb2.Point, with_payload: bool, with_vector: bool) -> common_pb2.RetrievedPoint:
        out = common_pb2.RetrievedPoint(id=p.id)
        if with_payload and p.HasField("payload"):
            out.payload.CopyFrom(p.payload)
        if with_vector:
            out.vector[:] = p.vector
            for name, v in p.sparse.items():
                out.sparse[name].CopyFrom(v)
            for name, v in p.vectors.items():
                out.vectors[name].CopyFrom(v)
        return out

    def Get(self, r: query_pb2.GetRequest) -> Any:
        c = self._coll(r.collection)
        return query_pb2.GetResponse(
            points=[self._retrieved(c.points[_key(i)], r.with_payload, r.with_vector) for i in r.ids if _key(i) in c.points]
        )

    def Count(self, r: query_pb2.CountRequest) -> Any:
        c = self._coll(r.collection)
        if not r.HasField("filter"):
            return query_pb2.CountResponse(count=len(c.points))
        return query_pb2.CountResponse(count=sum(matches(r.filter, k, MessageToDict(p.payload)) for k, p in c.points.items()))

    def Scroll(self, r: query_pb2.ScrollRequest) -> Any:
        c = self._coll(r.collection)
        limit = r.limit or 100
        keys = sorted(c.points, key=lambda k: (isinstance(k, str), k))
        if r.HasField("filter"):
            keys = [k for k in keys if matches(r.filter, k, MessageToDict(c.points[k].payload))]
        start = int(r.cursor) if r.cursor else 0
        page = keys[start : start + limit]
        nxt = str(start + limit) if start + limit < len(keys) else ""
        return query_pb2.ScrollResponse(points=[self._retrieved(c.points[k], r.with_payload, r.with_vector) for k in page], next_cursor=nxt)

    # --- admin (a little)

    def _tier(self, c: _Collection) -> storage_pb2.CollectionTierStatus:
        return storage_pb2.CollectionTierStatus(name=c.req.name, tier=common_pb2.HOT, pinned=c.pinned)

    def Pin(self, r: storage_pb2.PinRequest) -> Any:
        c = self._coll(r.collection)
        c.pinned = r.pinned
        return storage_pb2.PinResponse(status=self._tier(c))

    def Demote(self, r: storage_pb2.TierMoveRequest) -> Any:
        c = self._coll(r.collection)
        if c.pinned:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, f"collection `{c.req.name}` is pinned")
        return storage_pb2.TierMoveResponse(status=self._tier(c))


def _servicer(fake: FakeAkiDB, base: type, names: List[str]) -> Any:
    def method(name: str) -> Any:
        call = fake.handler(name, getattr(fake, name))
        return lambda self, req, ctx: call(req, ctx)

    return type("S", (base,), {n: method(n) for n in names})()


class FakeServer:
    """A running fake on 127.0.0.1; `address` serves every service (query and ingest alike)."""

    def __init__(self, api_key: Optional[str] = None) -> None:
        self.fake = FakeAkiDB(api_key)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        f = self.fake
        collection_pb2_grpc.add_CollectionServiceServicer_to_server(
            _servicer(f, collection_pb2_grpc.CollectionServiceServicer, ["CreateCollection", "GetCollection", "ListCollections", "DeleteCollection", "UpdateAliases"]), self.server)
        query_pb2_grpc.add_QueryServiceServicer_to_server(
            _servicer(f, query_pb2_grpc.QueryServiceServicer, ["Search", "SearchBatch", "Get", "Count", "Scroll", "Query"]), self.server)
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(
            _servicer(f, ingest_pb2_grpc.IngestServiceServicer, ["Upsert", "Delete", "UpdatePayload", "UpdateVectors", "Flush"]), self.server)
        admin = {
            "Pin": grpc.unary_unary_rpc_method_handler(f.handler("Pin", f.Pin), storage_pb2.PinRequest.FromString, storage_pb2.PinResponse.SerializeToString),
            "Demote": grpc.unary_unary_rpc_method_handler(f.handler("Demote", f.Demote), storage_pb2.TierMoveRequest.FromString, storage_pb2.TierMoveResponse.SerializeToString),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("akidb.v1.AdminService", admin),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(None)


def struct(d: Dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s
