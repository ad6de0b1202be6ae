"""The sync client against the in-memory fake server."""
from __future__ import annotations

import time
import uuid

import grpc
import numpy as np
import pytest

import akidb
from akidb import (
    AkiDB,
    CreateAlias,
    DeleteAlias,
    Dense,
    Field,
    NamedVectorParams,
    Point,
    Sparse,
    SparseVector,
    has_id,
)
from fake_server import FakeServer


def fill(db: AkiDB, n: int = 100, dim: int = 4, name: str = "c") -> np.ndarray:
    db.create_collection(name, dim, "l2")
    vecs = np.random.default_rng(0).random((n, dim), dtype=np.float32)
    r = db.upsert(name, ids=np.arange(n), vectors=vecs, payloads=[{"i": i, "parity": ["even", "odd"][i % 2]} for i in range(n)], batch_size=30)
    assert r.upserted == n and r.sequence > 0
    return vecs


def test_addresses() -> None:
    assert AkiDB("h").ingest_address == "h:50052"
    assert AkiDB("h:7000").ingest_address == "h:7001"
    assert AkiDB("h", 7000, ingest_port=9).ingest_address == "h:9"
    assert AkiDB("[::1]:5").query_address == "[::1]:5" and AkiDB("::1").query_address == "[::1]:50051"
    assert AkiDB("h", ingest_address="i:1").ingest_address == "i:1"


def test_collections(server: FakeServer, db: AkiDB) -> None:
    info = db.create_collection(
        "c", 3, "cosine", m=8, payload_indexes={"tag": "keyword"}, sparse_vectors=["kw"],
        vectors={"img": NamedVectorParams(2, akidb.Metric.L2)},
    )  # fmt: skip
    req = server.fake.calls_of("CreateCollection")[0]
    assert req.m == 8 and req.payload_indexes["tag"] == 1 and list(req.sparse_vectors) == ["kw"] and req.vectors["img"].dimension == 2
    assert info.name == "c" and info.metric is akidb.Metric.COSINE and info.m == 8
    assert db.get_collection("c").dimension == 3 and db.collection_exists("c") and not db.collection_exists("d")
    with pytest.raises(akidb.AlreadyExistsError, match="already exists"):
        db.create_collection("c", 3, "cosine")
    assert [c.name for c in db.list_collections()] == ["c"]
    assert db.create_alias("live", "c") == [akidb.Alias("live", "c")]
    db.create_collection("c2", 3, "dot")
    assert db.update_aliases([DeleteAlias("live"), CreateAlias("live", "c2")]) == [akidb.Alias("live", "c2")]
    assert db.list_aliases() == [akidb.Alias("live", "c2")]
    assert db.delete_alias("live") == []
    db.delete_collection("c")
    with pytest.raises(akidb.NotFoundError):
        db.delete_collection("c")


def test_search_and_reads(server: FakeServer, db: AkiDB) -> None:
    vecs = fill(db)
    assert len(server.fake.calls_of("Upsert")) == 4
    hits = db.search("c", vecs[5], k=3)
    assert hits.ids[0] == 5 and hits[0].score == 0.0 and hits[0].payload is None and len(hits) == 3
    assert hits.stats.lower_is_closer
    hits = db.search("c", vecs[5].tolist(), k=3, with_payload=True, with_vector=True, filter={"parity": "even"})
    assert all(h.id % 2 == 0 for h in hits) and hits[0].payload == {"i": hits[0].id, "parity": "even"}
    assert hits[0].vector is not None and np.allclose(hits[0].vector, vecs[hits[0].id])
    batch = db.search_batch("c", vecs[:3], k=1)
    assert [b.ids for b in batch] == [[0], [1], [2]]
    batch = db.search_batch("c", [vecs[7], Dense(vecs[8], k=2, filter=has_id(9, 8))], k=1)
    assert [b.ids for b in batch] == [[7], [8, 9]]
    got = db.get("c", [3, 1000, 2], with_vector=True)
    assert [p.id for p in got] == [3, 2] and got[0].payload == {"i": 3, "parity": "odd"}
    assert got[0].vector is not None and got[0].vector.dtype == np.float32 and np.allclose(got[0].vector, vecs[3])
    assert db.get("c", 4, with_payload=False)[0] == akidb.Record(4)
    assert db.count("c") == 100 and db.count("c", {"parity": "odd"}) == 50
    assert db.count("c", Field("i").range(gte=10, lt=20) & ~Field("parity").eq("odd")) == 5
    seen = [p.id for p in db.scroll("c", page_size=7)]
    assert seen == list(range(100)) and len(server.fake.calls_of("Scroll")) == 15
    assert [p.id for p in db.scroll("c", {"parity": "odd"}, page_size=1000)] == list(range(1, 100, 2))
    page = db.scroll_page("c", limit=60)
    assert len(page.points) == 60 and page.next_cursor
    page = db.scroll_page("c", limit=60, cursor=page.next_cursor)
    assert len(page.points) == 40 and page.next_cursor is None


def test_hybrid_query(server: FakeServer, db: AkiDB) -> None:
    db.create_collection("h", 2, "dot", sparse_vectors=["kw"])
    db.upsert("h", points=[
        Point(i, [i, 1.0], {"i": i}, sparse={"kw": SparseVector([i % 5, 10], [1.0, 0.5])}) for i in range(20)
    ])  # fmt: skip
    s = db.search("h", Sparse("kw", {3: 1.0}), k=5)
    assert sorted(s.ids) == [3, 8, 13, 18]
    q = db.query("h", [Dense([1.0, 0.0], k=5), Sparse("kw", ([3], [1.0]), k=5)], k=3, with_payload=True)
    assert len(q) == 3 and q[0].payload is not None and [b.returned for b in q.branches] == [5, 4]
    req = server.fake.calls_of("Query")[0]
    assert req.fusion == 1 and [b.k for b in req.branches] == [5, 5] and not req.branches[0].collection


def test_writes(server: FakeServer, db: AkiDB) -> None:
    fill(db)
    assert db.set_payload("c", {"seen": True}, ids=[1, 2]).updated == 2
    assert db.get("c", [1])[0].payload == {"i": 1, "parity": "odd", "seen": True}
    assert db.overwrite_payload("c", {"only": 1}, filter={"i": 3}).updated == 1
    assert db.get("c", [3])[0].payload == {"only": 1}
    assert db.delete_payload_keys("c", ["parity"], filter={"parity": "even"}).updated == 50
    assert db.count("c", {"parity": "odd"}) == 49
    assert db.clear_payload("c", ids=[5]).updated == 1 and db.get("c", [5])[0].payload == {}
    with pytest.raises(ValueError):
        db.set_payload("c", {"x": 1})
    assert db.update_vectors("c", ids=[7], vectors=np.full((1, 4), 9.0)).updated == 1
    assert db.search("c", [9, 9, 9, 9], k=1).ids == [7]
    with pytest.raises(akidb.NotFoundError, match="no point 12345"):
        db.update_vectors("c", ids=[12345], vectors=[[1, 2, 3, 4]])
    assert db.delete("c", [0, 1]).deleted == 2
    assert db.delete("c", filter={"i": {"gte": 90}}).deleted == 10
    assert db.count("c") == 88
    assert db.flush("c", wait_indexed=True).point_count == 88
    assert server.fake.calls_of("Flush")[0].wait_indexed
    u = uuid.UUID(int=5)
    db.upsert("c", ids=[u, str(uuid.UUID(int=6))], vectors=[[0, 0, 0, 0], [1, 1, 1, 1]])
    assert [p.id for p in db.get("c", [u])] == [str(u)]
    with pytest.raises(akidb.InvalidArgumentError, match="dimension 3"):
        db.upsert("c", ids=[1], vectors=[[1, 2, 3]])
    with pytest.raises(ValueError):
        db.upsert("c", ids=[1, 2], vectors=[[1, 2, 3, 4]])


def test_progress_bar(db: AkiDB, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    db.create_collection("c", 2, "l2")
    db.upsert("c", ids=range(50), vectors=np.zeros((50, 2)), batch_size=20, progress=True)
    assert "50/50" in capsys.readouterr().err


def test_admin(server: FakeServer, db: AkiDB) -> None:
    db.create_collection("c", 2, "l2", pin=True)
    with pytest.raises(akidb.FailedPreconditionError, match="pinned"):
        db.demote("c")
    assert db.pin("c", False).pinned is False
    assert db.demote("c").name == "c"
    assert server.fake.calls_of("Demote")[0].target == 2


def test_api_key() -> None:
    s = FakeServer(api_key="sekrit")
    try:
        with AkiDB(s.address, ingest_address=s.address, api_key="sekrit") as db:
            db.create_collection("c", 2, "l2")
            assert s.fake.calls[-1][2]["authorization"] == "Bearer sekrit"
        with AkiDB(s.address, ingest_address=s.address) as db:
            with pytest.raises(akidb.UnauthenticatedError):
                db.list_collections()
        with AkiDB(s.address, ingest_address=s.address, api_key="wrong") as db:
            with pytest.raises(akidb.UnauthenticatedError):
                db.upsert("c", ids=[1], vectors=[[1, 2]])
    finally:
        s.stop()


def test_reads_retry_on_unavailable(server: FakeServer, db: AkiDB) -> None:
    db.create_collection("c", 2, "l2")
    server.fake.fail["Count"] = [(grpc.StatusCode.UNAVAILABLE, "storage restarting")] * 3
    assert db.count("c") == 0
    assert len(server.fake.calls_of("Count")) == 4
    server.fake.fail["Search"] = [(grpc.StatusCode.UNAVAILABLE, "x")] * 3
    with AkiDB(server.address, ingest_address=server.address, max_retries=1, initial_backoff=0.01) as once:
        with pytest.raises(akidb.UnavailableError):
            once.search("c", [1, 2])
    assert len(server.fake.calls_of("Search")) == 2
    # Other codes are not retried.
    server.fake.fail["Count"] = [(grpc.StatusCode.INTERNAL, "boom")] * 2
    with pytest.raises(akidb.InternalError):
        db.count("c")
    assert len(server.fake.calls_of("Count")) == 5


def test_writes_never_retried(server: FakeServer, db: AkiDB) -> None:
    db.create_collection("c", 2, "l2")
    server.fake.fail["Upsert"] = [(grpc.StatusCode.UNAVAILABLE, "busy")]
    with pytest.raises(akidb.UnavailableError, match="busy"):
        db.upsert("c", ids=[1], vectors=[[1, 2]])
    assert len(server.fake.calls_of("Upsert")) == 1 and db.count("c") == 0


def test_retries_stop_at_the_deadline(server: FakeServer, db: AkiDB) -> None:
    db.create_collection("c", 2, "l2")
    server.fake.fail["Count"] = [(grpc.StatusCode.UNAVAILABLE, "down")] * 1000
    t0 = time.monotonic()
    with pytest.raises(akidb.UnavailableError):
        db.count("c", timeout=0.5)
    assert 0.3 < time.monotonic() - t0 < 1.5
    assert len(server.fake.calls_of("Count")) > 3


def test_deadline(server: FakeServer, db: AkiDB) -> None:
    db.create_collection("c", 2, "l2")
    server.fake.stall["Search"] = 0.5
    with pytest.raises(akidb.DeadlineExceededError):
        db.search("c", [1, 2], timeout=0.1)


def test_unreachable_server() -> None:
    with AkiDB("127.0.0.1:1", timeout=0.5, initial_backoff=0.05) as db:
        t0 = time.monotonic()
        with pytest.raises((akidb.UnavailableError, akidb.DeadlineExceededError)):
            db.count("c")
        assert time.monotonic() - t0 < 2
        with pytest.raises(akidb.UnavailableError):
            db.upsert("c", ids=[1], vectors=[[1.0]])
