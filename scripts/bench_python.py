#!/usr/bin/env python3
"""One Python grpcio client, one request at a time, against AkiDB's query service: searches/s
and latency percentiles with requests built before the clock starts (the way Qdrant's figure
of 2,073/s on siftsmall was taken), plus recall@10 and the cost of a do-nothing call (health
check) on the same channel as the floor.

The collection must already hold the data set (e.g. loaded by `akidb bench --data ...`, whose
collection is named `bench`), or pass --load INGEST_ADDR to load it here in batches of 1000.

With --rest URL (query's REST port), the same searches also go over REST/JSON from this
client (one keep-alive HTTP/1.1 connection, bodies serialized before the clock starts),
alternated with gRPC in --rounds rounds: p50, p99 and searches/s of each, and REST's p50 over
gRPC's.

Usage: bench_python.py QUERY_ADDR DATASET_DIR [--collection bench] [--ef 16] [--seconds 5]
                       [--metric l2|cosine] [--load INGEST_ADDR] [--rest URL] [--rounds 3]
"""
import argparse
import glob
import http.client
import json
import os
import urllib.parse
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
    ap.add_argument("--rest", metavar="URL")
    ap.add_argument("--rounds", type=int, default=3)
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

    def measure(call, items):
        """Warm up, then one request at a time for --seconds: (searches/s, p50 ms, p99 ms)."""
        end = time.perf_counter() + a.warmup
        i = 0
        while time.perf_counter() < end:
            call(items[i % len(items)])
            i += 1
        lat = []
        start = time.perf_counter()
        end = start + a.seconds
        i = 0
        now = start
        while now < end:
            t0 = now
            call(items[i % len(items)])
            now = time.perf_counter()
            lat.append(now - t0)
            i += 1
        lat_ms = sorted(x * 1000 for x in lat)
        return len(lat) / (now - start), pct(lat_ms, 0.5), pct(lat_ms, 0.99)

    qps, p50, p99 = measure(query.Search, reqs)
    print(f"python grpcio client, 1 request at a time, {a.dataset} ef={a.ef} k={a.k}: "
          f"{qps:.0f} searches/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
          f"recall@{a.k} {recall:.4f}; health-check floor {floor_ms:.3f} ms/call")
    if not a.rest:
        return

    url = urllib.parse.urlsplit(a.rest)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    path = f"/v1/collections/{a.collection}/points/search"
    bodies = [json.dumps({"vector": q, "k": a.k, "ef": a.ef}).encode() for q in queries]
    headers = {"content-type": "application/json"}

    def rest_search(body):
        conn.request("POST", path, body, headers)
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, data
        return data

    # The same answers both ways.
    got = json.loads(rest_search(bodies[0]))
    assert [h["id"]["num"] for h in got["hits"]] == [h.id.num for h in query.Search(reqs[0]).hits]
    print("| round | via | searches/s | p50 ms | p99 ms |")
    print("|---:|---|---:|---:|---:|")
    ratios = []
    for rnd in range(1, a.rounds + 1):
        g = measure(query.Search, reqs)
        r = measure(rest_search, bodies)
        ratios.append(r[1] / g[1])
        for via, (q, m50, m99) in (("gRPC", g), ("REST", r)):
            print(f"| {rnd} | {via} | {q:,.0f} | {m50:.3f} | {m99:.3f} |")
    print("REST p50 / gRPC p50 per round: " + ", ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
