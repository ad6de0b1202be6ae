from __future__ import annotations

import uuid

import numpy as np
import pytest

from akidb import _convert as c
from akidb import _core
from akidb.models import Dense, Sparse
from akidb.v1 import common_pb2, query_pb2


def test_point_ids() -> None:
    assert c.point_id(7) == common_pb2.PointId(num=7)
    assert c.point_id(np.uint64(2**64 - 1)).num == 2**64 - 1
    u = uuid.uuid4()
    assert c.point_id(u) == common_pb2.PointId(uuid=str(u))
    assert c.point_id(str(u)).uuid == str(u)
    assert [p.num for p in c.point_ids(np.arange(3))] == [0, 1, 2]
    assert [p.num for p in c.point_ids(5)] == [5]
    assert c.from_point_id(common_pb2.PointId(num=0)) == 0
    assert c.from_point_id(common_pb2.PointId(uuid="x")) == "x"
    for bad, exc in [(-1, ValueError), (2**64, ValueError), (True, TypeError), (1.5, TypeError)]:
        with pytest.raises(exc):
            c.point_id(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("v", [[1.0, 2.5, -3.0], (1, 2, 3), np.array([1.0, 2.5, -3.0], dtype=np.float64), np.arange(3, dtype=np.float32)])
def test_vectors_go_over_as_packed_float32(v: object) -> None:
    req = query_pb2.SearchRequest(collection="c", k=3)
    c.set_vector(req, c.vector_bytes(v))  # type: ignore[arg-type]
    assert list(req.vector) == [float(x) for x in np.asarray(v, dtype=np.float32)]
    # Same bytes on the wire as filling the field element by element.
    ref = query_pb2.SearchRequest(collection="c", k=3, vector=[float(x) for x in np.asarray(v, dtype=np.float32)])
    assert query_pb2.SearchRequest.FromString(req.SerializeToString()) == ref


def test_vector_errors() -> None:
    with pytest.raises(ValueError):
        c.vector_bytes(np.zeros((2, 2)))
    with pytest.raises(TypeError):
        c.vector_bytes("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.vector_bytes([1.0, "x"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        c.vector_bytes([1e40])


def test_rows_bytes() -> None:
    m = np.arange(12, dtype=np.float64).reshape(4, 3)[::2]  # not contiguous
    rows = c.rows_bytes(m)
    assert [np.frombuffer(r, dtype="<f4").tolist() for r in rows] == [[0, 1, 2], [6, 7, 8]]
    assert c.rows_bytes([[1, 2], np.array([3.0, 4.0])]) == [c.vector_bytes([1, 2]), c.vector_bytes([3.0, 4.0])]
    with pytest.raises(ValueError):
        c.rows_bytes(np.zeros(3))


def test_payload_round_trip() -> None:
    payload = {
        "s": "x", "i": 3, "f": 2.5, "b": True, "none": None, "big": 2**53,
        "nested": {"a": [1, "two", {"three": 3.5}], "e": {}},
        "np": np.int64(4), "npf": np.float32(0.5), "npb": np.bool_(False), "arr": np.array([1, 2]),
        "tuple": (1, 2),
    }
    s = c.to_struct(payload)
    back = c.from_struct(s)
    assert back == {
        "s": "x", "i": 3, "f": 2.5, "b": True, "none": None, "big": 2**53,
        "nested": {"a": [1, "two", {"three": 3.5}], "e": {}},
        "np": 4, "npf": 0.5, "npb": False, "arr": [1, 2], "tuple": [1, 2],
    }
    assert isinstance(back["i"], int) and isinstance(back["f"], float) and isinstance(back["b"], bool)
    with pytest.raises(TypeError):
        c.to_struct({"x": object()})
    with pytest.raises(TypeError):
        c.to_struct({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        c.to_struct({"x": float("nan")})


def test_sparse() -> None:
    sv = c.sparse_vector({5: 0.5, 1: 2.0})
    assert sv.indices.tolist() == [1, 5] and sv.values.tolist() == [2.0, 0.5]
    assert c.sparse_vector(([1, 5], [2.0, 0.5])) == sv
    m = common_pb2.SparseVector()
    c.fill_sparse(m, sv)
    assert list(m.indices) == [1, 5] and list(m.values) == [2.0, 0.5]
    assert c.from_sparse(m) == sv
    assert sv.to_dict() == {1: 2.0, 5: 0.5}
    with pytest.raises(ValueError):
        c.SparseVector([1, 2], [1.0])


def test_search_requests() -> None:
    r = _core.search_request("c", np.ones(3), 5, {"a": "x"}, 64, True, False, False, None, None)
    assert r.collection == "c" and r.k == 5 and r.ef == 64 and r.with_payload and list(r.vector) == [1, 1, 1]
    assert r.filter.must[0].field.keyword == "x"
    assert not r.HasField("oversampling")
    r = _core.search_request("c", Sparse("kw", {3: 1.0}, k=7), 5)
    assert r.sparse.name == "kw" and list(r.sparse.vector.indices) == [3] and r.k == 7 and not r.vector
    r = _core.search_request("c", Dense([1, 2], filter={"a": 1}, vector_name="img", exact=True), 5)
    assert r.vector_name == "img" and r.exact and r.k == 5 and r.filter.must[0].field.integer == 1
    b = _core.search_batch_request("c", np.eye(3), 2, None, None, False, False, False, 2.0, None)
    assert [list(s.vector) for s in b.searches] == np.eye(3).tolist() and all(s.oversampling == 2.0 for s in b.searches)
    q = _core.query_request("c", [Dense([1, 2]), Sparse("kw", ([1], [1.0]), k=3)], 10, "dbsf", [1, 0.5], 30, None, True, False)
    assert q.fusion == query_pb2.DBSF and q.rrf_k == 30 and list(q.weights) == [1.0, 0.5]
    assert [b.k for b in q.branches] == [10, 3] and all(b.collection == "" for b in q.branches)


def test_upsert_batches() -> None:
    n, gen = _core.points_from_columns(list(range(25)), np.zeros((25, 4)), [{"i": i} for i in range(25)], None, None)
    batches = list(_core.batches(gen, 10, 1 << 20))
    assert n == 25 and [len(b) for b in batches] == [10, 10, 5]
    assert batches[2][4].id.num == 24 and batches[2][4].payload["i"] == 24
    _, gen = _core.points_from_columns(list(range(25)), np.zeros((25, 100)), None, None, None)
    small = list(_core.batches(gen, 1000, 4 * 100 * 3 + 50))
    assert [len(b) for b in small] == [3] * 8 + [1]
    with pytest.raises(ValueError):
        _core.points_from_columns([1, 2], np.zeros((3, 2)), None, None, None)
    with pytest.raises(ValueError):
        _core.points_from_columns([1, 2], None, [{}], None, None)
