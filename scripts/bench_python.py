#!/usr/bin/env python3
"""One Python grpcio client, one request at a time, against AkiDB's query service: searches/s
and latency percentiles with requests built before the clock starts (the way Qdrant's figure
of 2,073/s on siftsmall was taken), plus recall@10 and the cost of a do-nothing call (health
check) on the same channel as the floor.

The collection must already hold the data set (e.g. loaded by `akidb bench --data ...`, whose
collection is named `bench`), or pass --load INGEST_ADDR to load it here in batches of 1000.

Usage: bench_python.py QUERY_ADDR DATASET_DIR [--collection bench] [--ef 16] [--seconds 5]
                       [--metric l2|cosine] [--load INGEST_ADDR]
"""
import argparse
import glob
import os
import sys
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from akidb_py import generate_stubs, read_xvecs  # noqa: E402


def one(pattern):
    hits = glob.glob(pattern)
    assert hits, f"nothing matches {pattern}"
    return hits[0]


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("query_addr")
    ap.add_argument("dataset")
    ap.add_argument("--collection", default="bench")
    ap.add_argument("--ef", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--metric", default="l2")
    ap.add_argument("--load", metavar="INGEST_ADDR")
    a = ap.parse_args()

    generate_stubs()
    from akidb.v1 import collection_pb2, collection_pb2_grpc, common_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc

    queries = read_xvecs(one(os.path.join(a.dataset, "*_query.fvecs")), "f")
    gt = read_xvecs(one(os.path.join(a.dataset, "*_groundtruth.ivecs")), "i")
    ch = grpc.insecure_channel(a.query_addr, options=[("grpc.max_receive_message_length", 64 << 20)])
    query = query_pb2_grpc.QueryServiceStub(ch)

    if a.load:
        base = read_xvecs(one(os.path.join(a.dataset, "*_base.fvecs")), "f")
        colls = collection_pb2_grpc.CollectionServiceStub(ch)
        try:
            colls.DeleteCollection(collection_pb2.DeleteCollectionRequest(name=a.collection))
        except grpc.RpcError:
            pass
        metric = common_pb2.Metric.Value("COSINE" if a.metric == "cosine" else "L2")
        colls.CreateCollection(collection_pb2.CreateCollectionRequest(name=a.collection, dimension=len(base[0]), metric=metric))
        ingest = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(a.load, options=[("grpc.max_send_message_length", 64 << 20)]))
        for s in range(0, len(base), 1000):
            pts = [common_pb2.Point(id=common_pb2.PointId(num=s + j), vector=v) for j, v in enumerate(base[s:s + 1000])]
            ingest.Upsert(ingest_pb2.UpsertRequest(collection=a.collection, points=pts))

    # Pre-built requests: serialization of the request is not what is measured.
    reqs = [query_pb2.SearchRequest(collection=a.collection, vector=q, k=a.k, ef=a.ef) for q in queries]

    # Floor: a do-nothing call on the same channel.
    # (an empty HealthCheckRequest is zero bytes; no generated stub needed)
    check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    for _ in range(200):
        check(b"")
    t = time.perf_counter()
    n = 2000
    for _ in range(n):
        check(b"")
    floor_ms = (time.perf_counter() - t) / n * 1000

    # Recall over every query once.
    found = 0
    for r, g in zip(reqs, gt):
        ids = [h.id.num for h in query.Search(r).hits]
        found += len(set(ids) & set(g[: a.k]))
    recall = found / (len(reqs) * a.k)

    search = query.Search
    end = time.perf_counter() + a.warmup
    i = 0
    while time.perf_counter() < end:
        search(reqs[i % len(reqs)])
        i += 1
    lat = []
    start = time.perf_counter()
    end = start + a.seconds
    i = 0
    now = start
    while now < end:
        t0 = now
        search(reqs[i % len(reqs)])
        now = time.perf_counter()
        lat.append(now - t0)
        i += 1
    elapsed = now - start
    lat_ms = sorted(x * 1000 for x in lat)
    print(f"python grpcio client, 1 request at a time, {a.dataset} ef={a.ef} k={a.k}: "
          f"{len(lat) / elapsed:.0f} searches/s, p50 {pct(lat_ms, 0.5):.3f} ms, p99 {pct(lat_ms, 0.99):.3f} ms, "
          f"recall@{a.k} {recall:.4f}; health-check floor {floor_ms:.3f} ms/call")


if __name__ == "__main__":
    main()
