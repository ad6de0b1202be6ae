"""The asyncio client against the in-memory fake server."""
from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

import akidb
from akidb import AsyncAkiDB
from fake_server import FakeServer


def test_async_client(server: FakeServer) -> None:
    async def main() -> None:
        async with AsyncAkiDB(server.address, ingest_address=server.address, initial_backoff=0.01) as db:
            await db.create_collection("c", 4, "l2")
            vecs = np.random.default_rng(1).random((200, 4), dtype=np.float32)
            r = await db.upsert("c", ids=range(200), vectors=vecs, payloads=[{"i": i} for i in range(200)], batch_size=25, concurrency=4)
            assert r.upserted == 200 and len(server.fake.calls_of("Upsert")) == 8
            results = await asyncio.gather(*(db.search("c", vecs[i], k=3) for i in range(32)))
            assert [res.ids[0] for res in results] == list(range(32))
            assert await db.count("c", {"i": {"lt": 50}}) == 50
            ids = [p.id async for p in db.scroll("c", page_size=64)]
            assert ids == list(range(200))
            got = await db.get("c", [3], with_vector=True)
            assert got[0].vector is not None and np.allclose(got[0].vector, vecs[3])
            b = await db.search_batch("c", vecs[:2], k=1)
            assert [x.ids for x in b] == [[0], [1]]
            assert (await db.set_payload("c", {"x": 1}, filter={"i": 5})).updated == 1
            assert (await db.delete("c", filter={"i": {"gte": 100}})).deleted == 100
            server.fake.fail["Count"] = [(grpc.StatusCode.UNAVAILABLE, "x")] * 2
            assert await db.count("c") == 100
            with pytest.raises(akidb.NotFoundError):
                await db.get_collection("nope")
            assert not await db.collection_exists("nope")
            server.fake.fail["Upsert"] = [(grpc.StatusCode.UNAVAILABLE, "x")]
            with pytest.raises(akidb.UnavailableError):
                await db.upsert("c", ids=range(100), vectors=np.zeros((100, 4)), batch_size=10, concurrency=3)
            server.fake.stall["Search"] = 0.5
            with pytest.raises(akidb.DeadlineExceededError):
                await db.search("c", vecs[0], timeout=0.1)

    asyncio.run(main())
