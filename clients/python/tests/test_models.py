"""The client's enums are numbered as in the proto files, and the models convert."""
from __future__ import annotations

import enum

import numpy as np
import pytest

from akidb import models
from akidb.v1 import common_pb2, query_pb2


@pytest.mark.parametrize(
    "ours, theirs, prefix",
    [
        (models.Metric, common_pb2.Metric, ""),
        (models.Datatype, common_pb2.VectorDatatype, ""),
        (models.Quantization, common_pb2.Quantization, "QUANTIZATION_"),
        (models.Tier, common_pb2.Tier, ""),
        (models.Fusion, query_pb2.Fusion, ""),
        (models.PayloadIndex, common_pb2.PayloadIndexKind, "PAYLOAD_INDEX_"),
    ],
)
def test_enums_match_proto(ours: type[enum.IntEnum], theirs: object, prefix: str) -> None:
    proto = {name: number for name, number in theirs.items()}  # type: ignore[attr-defined]
    for m in ours:
        candidates = [prefix + m.name, m.name, f"{ours.__name__.upper()}_{m.name}"]
        if m.name == "UNSPECIFIED":
            candidates = [n for n in proto if n.endswith("UNSPECIFIED")]
        assert any(proto.get(n) == m.value for n in candidates), (m, proto)
    assert len(ours) == len(proto)


def test_to_enum() -> None:
    assert models.to_enum(models.Metric, "l2") is models.Metric.L2
    assert models.to_enum(models.Metric, 3) is models.Metric.DOT
    with pytest.raises(ValueError, match="one of COSINE, L2, DOT"):
        models.to_enum(models.Metric, "manhattan")
    assert models.from_enum(models.Tier, 99) is models.Tier.UNSPECIFIED


def test_lazy_search_result() -> None:
    resp = query_pb2.SearchResponse(stats=common_pb2.SearchStats(ef=64, lower_is_closer=True), partial=True, missing_shards=[2])
    for i in range(3):
        h = resp.hits.add(id=common_pb2.PointId(num=i), score=i / 2)
        h.payload.update({"i": i})
        h.vector[:] = [i, i]
    r = models.SearchResult(resp, True, True)
    assert len(r) == 3 and r._points is None
    assert r.ids == [0, 1, 2] and r.scores == [0.0, 0.5, 1.0] and r._points is None
    assert r[1].payload == {"i": 1} and r[1].vector is not None and r[1].vector.tolist() == [1.0, 1.0]
    assert r[1].vector.dtype == np.float32 and r[-1].id == 2 and [p.id for p in r[:2]] == [0, 1]
    assert r.stats.ef == 64 and r.stats.lower_is_closer and r.partial and r.missing_shards == [2]
    bare = models.SearchResult(resp, False, False)
    assert bare[0] == models.ScoredPoint(0, 0.0) and bare[0].payload is None and bare[0].vector is None
    assert bare == [models.ScoredPoint(0, 0.0), models.ScoredPoint(1, 0.5), models.ScoredPoint(2, 1.0)]


def test_array_equality() -> None:
    a = models.Record(1, {"x": 1}, np.array([1.0, 2.0], dtype=np.float32))
    assert a == models.Record(1, {"x": 1}, np.array([1.0, 2.0], dtype=np.float32))
    assert a != models.Record(1, {"x": 1}, np.array([1.0, 3.0], dtype=np.float32))
    assert a != models.Record(1, {"x": 1}, None)


def test_collection_info() -> None:
    c = common_pb2.CollectionInfo(name="c", dimension=3, metric=common_pb2.L2, tier=common_pb2.WARM, datatype=common_pb2.FLOAT16)
    c.hnsw.m = 8
    c.payload_indexes["tag"] = common_pb2.PAYLOAD_INDEX_KEYWORD
    c.vectors["img"].dimension = 4
    c.vectors["img"].metric = common_pb2.COSINE
    info = models.CollectionInfo.from_proto(c)
    assert info.metric is models.Metric.L2 and info.tier is models.Tier.WARM and info.m == 8 and info.ef_construction is None
    assert info.payload_indexes == {"tag": models.PayloadIndex.KEYWORD}
    assert info.vectors["img"].dimension == 4 and info.vectors["img"].metric is models.Metric.COSINE
    p = models.NamedVectorParams(4, "dot", m=4, quantization="int8").to_proto()
    assert p.metric == common_pb2.DOT and p.hnsw.m == 4 and p.quantization == common_pb2.INT8
