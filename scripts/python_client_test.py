#!/usr/bin/env python3
"""A new user's Python grpcio client, generated from proto/ with grpcio-tools, against a
running AkiDB stack: create a collection, upsert siftsmall in batches, check recall@10 against
the ground truth, and Get, Count, UpdatePayload, aliases, snapshot download and restore, sparse
search and the hybrid Query, named vectors and UpdateVectors, Delete and a filtered search as
documented.

Usage: python_client_test.py QUERY_ADDR INGEST_ADDR DATASETS_DIR [CA_PEM API_KEY]

With CA_PEM and API_KEY (what `akidb up --tls` prints), the client connects over TLS, checks
the services' certificate against the CA, and sends `authorization: Bearer API_KEY`.
"""
import hashlib
import os
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from akidb_py import generate_stubs, read_xvecs  # noqa: E402


def main():
    query_addr, ingest_addr, datasets = sys.argv[1:4]
    secure = len(sys.argv) >= 6
    generate_stubs()
    from akidb.v1 import common_pb2, collection_pb2, collection_pb2_grpc, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc

    def channel(addr, options):
        if not secure:
            return grpc.insecure_channel(addr, options=options)
        ca_pem, key = sys.argv[4], sys.argv[5]
        with open(ca_pem, "rb") as f:
            tls = grpc.ssl_channel_credentials(root_certificates=f.read())
        creds = grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(key))
        return grpc.secure_channel(addr, creds, options=options)

    qch = channel(query_addr, [("grpc.max_receive_message_length", 64 << 20)])
    ich = channel(ingest_addr, [("grpc.max_send_message_length", 64 << 20)])
    if secure:
        # Without the key: UNAUTHENTICATED, over the same TLS.
        with open(sys.argv[4], "rb") as f:
            bare = grpc.secure_channel(query_addr, grpc.ssl_channel_credentials(root_certificates=f.read()))
        try:
            collection_pb2_grpc.CollectionServiceStub(bare).ListCollections(collection_pb2.ListCollectionsRequest())
            raise AssertionError("a call without a key was answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
        # Plaintext to the TLS port fails.
        try:
            collection_pb2_grpc.CollectionServiceStub(grpc.insecure_channel(query_addr)).ListCollections(
                collection_pb2.ListCollectionsRequest(), timeout=5)
            raise AssertionError("a plaintext call to the TLS port was answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    colls = collection_pb2_grpc.CollectionServiceStub(qch)
    query = query_pb2_grpc.QueryServiceStub(qch)
    ingest = ingest_pb2_grpc.IngestServiceStub(ich)

    base = read_xvecs(os.path.join(datasets, "siftsmall", "siftsmall_base.fvecs"), "f")
    queries = read_xvecs(os.path.join(datasets, "siftsmall", "siftsmall_query.fvecs"), "f")
    gt = read_xvecs(os.path.join(datasets, "siftsmall", "siftsmall_groundtruth.ivecs"), "i")

    name = "siftsmall_py"
    try:
        colls.DeleteCollection(collection_pb2.DeleteCollectionRequest(name=name))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
    info = colls.CreateCollection(collection_pb2.CreateCollectionRequest(name=name, dimension=128, metric=common_pb2.L2)).collection
    assert info.dimension == 128 and info.metric == common_pb2.L2

    for start in range(0, len(base), 1000):
        pts = []
        for i in range(start, min(start + 1000, len(base))):
            p = common_pb2.Point(id=common_pb2.PointId(num=i), vector=base[i])
            p.payload.update({"parity": "even" if i % 2 == 0 else "odd", "bucket": i % 10,
                              "day": f"2020-01-{i % 28 + 1:02d}", "words": f"row {i} of sift small",
                              "at": {"lat": (i % 180) - 89.5, "lon": (i % 360) - 179.5}, "tags": ["t"] * (i % 3)})
            pts.append(p)
        r = ingest.Upsert(ingest_pb2.UpsertRequest(collection=name, points=pts))
        assert r.upserted == len(pts)

    assert query.Count(query_pb2.CountRequest(collection=name)).count == 10_000

    hits = 0
    for qi, q in enumerate(queries):
        r = query.Search(query_pb2.SearchRequest(collection=name, vector=q, k=10))
        got = [h.id.num for h in r.hits]
        assert len(got) == 10
        scores = [h.score for h in r.hits]
        assert scores == sorted(scores), "L2 results come nearest first"
        hits += len(set(got) & set(gt[qi][:10]))
    recall = hits / (10 * len(queries))
    print(f"python grpcio client{' (TLS, API key)' if secure else ''}: siftsmall recall@10 = {recall:.4f}")
    assert recall >= 0.99, recall

    # Get: ids in order, payload and vector on request
    g = query.Get(query_pb2.GetRequest(collection=name, ids=[common_pb2.PointId(num=5), common_pb2.PointId(num=10**9), common_pb2.PointId(num=6)], with_payload=True, with_vector=True))
    assert [p.id.num for p in g.points] == [5, 6], g
    assert list(g.points[0].vector) == base[5]
    assert g.points[0].payload["parity"] == "odd" and g.points[1].payload["bucket"] == 6

    # Filtered search: only even points, still k results
    f = common_pb2.Filter(must=[common_pb2.Condition(field=common_pb2.FieldCondition(key="parity", keyword="even"))])
    r = query.Search(query_pb2.SearchRequest(collection=name, vector=queries[0], k=10, filter=f, with_payload=True))
    assert len(r.hits) == 10 and all(h.id.num % 2 == 0 for h in r.hits), r
    exact_even = [i for i in gt[0] if i % 2 == 0][:5]
    assert exact_even[0] in [h.id.num for h in r.hits]
    # Count with a filter, range filter
    assert query.Count(query_pb2.CountRequest(collection=name, filter=f)).count == 5000
    rf = common_pb2.Filter(must=[common_pb2.Condition(field=common_pb2.FieldCondition(key="bucket", range=common_pb2.Range(gte=2, lt=4)))])
    assert query.Count(query_pb2.CountRequest(collection=name, filter=rf)).count == 2000

    # Payload updates: merge by ids, delete keys by filter; vectors stay; bad input refused
    u = ingest.UpdatePayload(ingest_pb2.UpdatePayloadRequest(collection=name, ids=[common_pb2.PointId(num=5), common_pb2.PointId(num=6)], set={"label": "seen"}))
    assert u.updated == 2, u
    b3 = common_pb2.Filter(must=[common_pb2.Condition(field=common_pb2.FieldCondition(key="bucket", integer=3))])
    u = ingest.UpdatePayload(ingest_pb2.UpdatePayloadRequest(collection=name, filter=b3, delete_keys=ingest_pb2.PayloadKeys(keys=["parity"])))
    assert u.updated == 1000, u
    g = query.Get(query_pb2.GetRequest(collection=name, ids=[common_pb2.PointId(num=5), common_pb2.PointId(num=13)], with_payload=True, with_vector=True))
    kept = ("parity", "bucket", "label")
    assert {k: v for k, v in g.points[0].payload.items() if k in kept} == {"parity": "odd", "bucket": 5, "label": "seen"}, g.points[0].payload
    assert {k: v for k, v in g.points[1].payload.items() if k in kept} == {"bucket": 3}, g.points[1].payload
    assert list(g.points[0].vector) == base[5]
    odd = common_pb2.Filter(must=[common_pb2.Condition(field=common_pb2.FieldCondition(key="parity", keyword="odd"))])
    assert query.Count(query_pb2.CountRequest(collection=name, filter=odd)).count == 4000
    for bad in (ingest_pb2.UpdatePayloadRequest(collection=name, clear=True),
                ingest_pb2.UpdatePayloadRequest(collection=name, ids=[common_pb2.PointId(num=5)])):
        try:
            ingest.UpdatePayload(bad)
            raise AssertionError(f"accepted: {bad}")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "update_payload needs" in e.details(), e
    u = ingest.UpdatePayload(ingest_pb2.UpdatePayloadRequest(collection=name, filter=b3, set={"parity": "odd"}))
    assert u.updated == 1000 and query.Count(query_pb2.CountRequest(collection=name, filter=odd)).count == 5000

    # The other filter kinds: dates, text, geo, emptiness, value counts, min_should; bad ones refused
    def count(**cond):
        return query.Count(query_pb2.CountRequest(collection=name, filter=common_pb2.Filter(**cond))).count
    def field(key, **m):
        return common_pb2.Condition(field=common_pb2.FieldCondition(key=key, **m))
    assert count(must=[field("day", datetime_range=common_pb2.DatetimeRange(gte="2020-01-01", lt="2020-01-08T00:00:00Z"))]) == \
        sum(1 for i in range(10_000) if i % 28 < 7)
    assert count(must=[field("words", text="SIFT 42")]) == 1
    assert count(must=[field("words", phrase="sift small")]) == 10_000
    assert count(must=[field("words", phrase="small sift")]) == 0
    assert count(must=[field("at", geo_bounding_box=common_pb2.GeoBoundingBox(
        top_left=common_pb2.GeoPoint(lat=0, lon=0), bottom_right=common_pb2.GeoPoint(lat=-10, lon=10)))]) == \
        sum(1 for i in range(10_000) if -10 <= (i % 180) - 89.5 <= 0 and 0 <= (i % 360) - 179.5 <= 10)
    assert count(must=[common_pb2.Condition(is_empty=common_pb2.FieldKey(key="tags"))]) == sum(1 for i in range(10_000) if i % 3 == 0)
    assert count(must=[common_pb2.Condition(values_count=common_pb2.ValuesCount(key="tags", count=common_pb2.Range(gte=2)))]) == \
        sum(1 for i in range(10_000) if i % 3 == 2)
    assert count(min_should=common_pb2.MinShould(min_count=2, conditions=[
        field("parity", keyword="odd"), field("bucket", integer=3), field("bucket", integer=4)])) == 1000
    for bad, words in [(field("at", geo_radius=common_pb2.GeoRadius(center=common_pb2.GeoPoint(lat=91, lon=0), radius_m=5)), "latitude 91"),
                       (field("day", datetime_range=common_pb2.DatetimeRange(gt="next tuesday")), "RFC 3339")]:
        try:
            count(must=[bad])
            raise AssertionError(f"accepted: {bad}")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and words in e.details(), e

    # Aliases: reads through an alias; a swap in one call; a cycle refused
    colls.UpdateAliases(collection_pb2.UpdateAliasesRequest(actions=[collection_pb2.AliasAction(create=collection_pb2.Alias(alias=name + "_live", collection=name))]))
    assert query.Count(query_pb2.CountRequest(collection=name + "_live")).count == 10_000
    listed = colls.ListCollections(collection_pb2.ListCollectionsRequest())
    assert [(a.alias, a.collection) for a in listed.aliases if a.alias == name + "_live"] == [(name + "_live", name)], listed.aliases
    try:
        colls.UpdateAliases(collection_pb2.UpdateAliasesRequest(actions=[collection_pb2.AliasAction(create=collection_pb2.Alias(alias=name + "_x", collection=name + "_live"))]))
        raise AssertionError("an alias of an alias accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "not another alias" in e.details(), e
    colls.UpdateAliases(collection_pb2.UpdateAliasesRequest(actions=[collection_pb2.AliasAction(delete=name + "_live")]))

    # Snapshots: a new one downloaded as an archive (checked against the SHA-256 sent last),
    # restored under another name with the same answers; a damaged archive refused
    from akidb.v1 import storage_pb2, storage_pb2_grpc
    admin = storage_pb2_grpc.AdminServiceStub(qch)
    chunks = list(admin.DownloadSnapshot(storage_pb2.DownloadSnapshotRequest(collection=name, create=True)))
    info, end = chunks[0].info, chunks[-1].end
    archive = b"".join(c.data for c in chunks[1:-1])
    assert info.point_count == 10_000 and len(archive) == end.size_bytes, (info, end)
    assert hashlib.sha256(archive).hexdigest() == end.sha256

    def upload(new_name, data, sha=""):
        yield storage_pb2.RestoreSnapshotRequest(start=storage_pb2.RestoreSnapshotStart(collection=new_name, sha256=sha))
        for k in range(0, len(data), 1 << 20):
            yield storage_pb2.RestoreSnapshotRequest(data=data[k:k + (1 << 20)])

    copy = name + "_restored"
    r = admin.RestoreSnapshot(upload(copy, archive, end.sha256))
    assert r.snapshot.point_count == 10_000 and r.archive.sha256 == end.sha256, r
    assert query.Count(query_pb2.CountRequest(collection=copy, filter=odd)).count == 5000
    for v in queries[:20]:
        a = query.Search(query_pb2.SearchRequest(collection=name, vector=v, k=10, with_payload=True))
        b = query.Search(query_pb2.SearchRequest(collection=copy, vector=v, k=10, with_payload=True))
        assert [(h.id.num, h.score, h.payload) for h in a.hits] == [(h.id.num, h.score, h.payload) for h in b.hits]
    damaged = bytearray(archive)
    damaged[len(damaged) // 2] ^= 0x55
    for new_name, data, code in [(name + "_bad", bytes(damaged), grpc.StatusCode.INVALID_ARGUMENT),
                                 (copy, archive, grpc.StatusCode.ALREADY_EXISTS)]:
        try:
            admin.RestoreSnapshot(upload(new_name, data))
            raise AssertionError(f"restore into {new_name} accepted")
        except grpc.RpcError as e:
            assert e.code() == code, e
    names = [c.name for c in colls.ListCollections(collection_pb2.ListCollectionsRequest()).collections]
    assert name + "_bad" not in names, names
    colls.DeleteCollection(collection_pb2.DeleteCollectionRequest(name=copy))

    # Sparse vectors and the hybrid Query, against this script's own dot products and RRF
    hy = name + "_hybrid"
    colls.CreateCollection(collection_pb2.CreateCollectionRequest(name=hy, dimension=4, metric=common_pb2.DOT, sparse_vectors=["kw"]))
    pts, sparse_of = [], {}
    for i in range(300):
        idx = sorted({(i * 7 + j * 13) % 50 for j in range(1 + i % 5)})
        vals = [((i + j) % 9 + 1) / 4.0 for j in range(len(idx))]
        sparse_of[i] = dict(zip(idx, vals))
        p = common_pb2.Point(id=common_pb2.PointId(num=i), vector=[(i % 7) / 7.0, (i % 11) / 11.0, (i % 3) / 3.0, 1.0])
        p.sparse["kw"].indices.extend(idx)
        p.sparse["kw"].values.extend(vals)
        pts.append(p)
    ingest.Upsert(ingest_pb2.UpsertRequest(collection=hy, points=pts))

    def sparse_query(idx, vals, k):
        return query_pb2.SearchRequest(collection=hy, k=k, sparse=common_pb2.SparseQuery(
            name="kw", vector=common_pb2.SparseVector(indices=idx, values=vals)))

    for qi in range(20):
        qidx = sorted({(qi * 3 + j * 17) % 50 for j in range(3)})
        qvals = [1.0 + j for j in range(len(qidx))]
        r = query.Search(sparse_query(qidx, qvals, 10))
        want = sorted(((sum(w * sparse_of[i].get(t, 0.0) for t, w in zip(qidx, qvals)), i)
                       for i in range(300) if set(qidx) & set(sparse_of[i])), key=lambda x: (-x[0], x[1]))[:10]
        assert [round(h.score, 4) for h in r.hits] == [round(w[0], 4) for w in want], (r.hits, want)
    dense_q = [0.5, 0.2, 0.9, 0.1]
    branches = [query_pb2.SearchRequest(vector=dense_q, k=20, exact=True), sparse_query([3, 20, 41], [1.0, 2.0, 0.5], 20)]
    for b in branches:
        b.collection = ""
    fused = query.Query(query_pb2.QueryRequest(collection=hy, branches=branches, k=10, fusion=query_pb2.RRF))
    runs = [query.Search(query_pb2.SearchRequest(collection=hy, vector=dense_q, k=20, exact=True)),
            query.Search(sparse_query([3, 20, 41], [1.0, 2.0, 0.5], 20))]
    rrf = {}
    for run in runs:
        for rank, h in enumerate(run.hits, start=1):
            rrf[h.id.num] = rrf.get(h.id.num, 0.0) + 1.0 / (60 + rank)
    want = sorted(rrf.items(), key=lambda x: (-x[1], x[0]))[:10]
    assert [h.id.num for h in fused.hits] == [w[0] for w in want], (fused.hits, want)
    assert [b.returned for b in fused.branches] == [len(runs[0].hits), len(runs[1].hits)]
    before = query.Count(query_pb2.CountRequest(collection=hy)).count
    for bad_name, idx, vals, needle in [("nope", [1], [1.0], "no sparse vector `nope`"),
                                        ("kw", [4, 2], [1.0, 1.0], "strictly ascending"),
                                        ("kw", [2, 2], [1.0, 1.0], "index 2 twice"),
                                        ("kw", [1], [float("nan")], "must be finite")]:
        p = common_pb2.Point(id=common_pb2.PointId(num=1000), vector=[1, 1, 1, 1])
        p.sparse[bad_name].indices.extend(idx)
        p.sparse[bad_name].values.extend(vals)
        try:
            ingest.Upsert(ingest_pb2.UpsertRequest(collection=hy, points=[p]))
            raise AssertionError(f"accepted: {p}")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in e.details(), e
    assert query.Count(query_pb2.CountRequest(collection=hy)).count == before
    colls.DeleteCollection(collection_pb2.DeleteCollectionRequest(name=hy))

    # Named dense vectors (searched against this script's own distances) and UpdateVectors
    nv = name + "_named"
    req = collection_pb2.CreateCollectionRequest(name=nv, dimension=2, metric=common_pb2.L2)
    req.vectors["pos"].dimension = 3
    req.vectors["pos"].metric = common_pb2.L2
    colls.CreateCollection(req)
    pos_of, pts = {}, []
    for i in range(200):
        p = common_pb2.Point(id=common_pb2.PointId(num=i), vector=[i, 0])
        if i % 4 != 0:
            pos_of[i] = [(i * 7) % 31 / 3.0, (i * 11) % 17 / 5.0, i % 5]
            p.vectors["pos"].values.extend(pos_of[i])
        pts.append(p)
    ingest.Upsert(ingest_pb2.UpsertRequest(collection=nv, points=pts))

    def l2(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5

    for qi in range(20):
        qv = [qi % 10, qi % 3, qi % 4]
        r = query.Search(query_pb2.SearchRequest(collection=nv, vector=qv, k=10, vector_name="pos"))
        want = sorted((l2(qv, v), i) for i, v in pos_of.items())[:10]
        assert [round(h.score, 3) for h in r.hits] == [round(w[0], 3) for w in want], (r.hits, want)
        assert all(h.id.num % 4 != 0 for h in r.hits)
    upd = ingest_pb2.PointVectors(id=common_pb2.PointId(num=4))
    upd.vectors["pos"].values.extend([100.0, 100.0, 100.0])
    assert ingest.UpdateVectors(ingest_pb2.UpdateVectorsRequest(collection=nv, points=[upd])).updated == 1
    r = query.Search(query_pb2.SearchRequest(collection=nv, vector=[100, 100, 100], k=1, vector_name="pos"))
    assert r.hits[0].id.num == 4 and r.hits[0].score == 0.0, r.hits
    got = query.Get(query_pb2.GetRequest(collection=nv, ids=[common_pb2.PointId(num=4)], with_vector=True)).points[0]
    assert list(got.vector) == [4.0, 0.0] and list(got.vectors["pos"].values) == [100.0, 100.0, 100.0]
    for call, needle, code in [
            (lambda: query.Search(query_pb2.SearchRequest(collection=nv, vector=[1, 1, 1], k=3, vector_name="nope")),
             "no named vector `nope`", grpc.StatusCode.INVALID_ARGUMENT),
            (lambda: ingest.UpdateVectors(ingest_pb2.UpdateVectorsRequest(collection=nv, points=[
                ingest_pb2.PointVectors(id=common_pb2.PointId(num=5), vector=[1.0, 2.0]),
                ingest_pb2.PointVectors(id=common_pb2.PointId(num=999), vector=[1.0, 2.0])])),
             "has no point 999", grpc.StatusCode.NOT_FOUND)]:
        try:
            call()
            raise AssertionError(f"accepted: {needle}")
        except grpc.RpcError as e:
            assert e.code() == code and needle in e.details(), e
    got = query.Get(query_pb2.GetRequest(collection=nv, ids=[common_pb2.PointId(num=5)], with_vector=True)).points[0]
    assert list(got.vector) == [5.0, 0.0], "a refused update changed nothing"
    colls.DeleteCollection(collection_pb2.DeleteCollectionRequest(name=nv))

    # Delete by ids and by filter
    d = ingest.Delete(ingest_pb2.DeleteRequest(collection=name, ids=[common_pb2.PointId(num=0), common_pb2.PointId(num=1)]))
    assert d.deleted == 2
    bf = common_pb2.Filter(must=[common_pb2.Condition(field=common_pb2.FieldCondition(key="bucket", integer=9))])
    d = ingest.Delete(ingest_pb2.DeleteRequest(collection=name, filter=bf))
    assert d.deleted == 1000, d
    assert query.Count(query_pb2.CountRequest(collection=name)).count == 10_000 - 2 - 1000
    r = query.Search(query_pb2.SearchRequest(collection=name, vector=base[0], k=1))
    assert r.hits[0].id.num != 0, "a deleted point is never returned"

    # Scroll pages through everything exactly once
    seen, cursor = 0, ""
    while True:
        s = query.Scroll(query_pb2.ScrollRequest(collection=name, limit=2500, cursor=cursor))
        seen += len(s.points)
        cursor = s.next_cursor
        if not cursor:
            break
    assert seen == 10_000 - 1002, seen

    # Errors: a status a person can act on
    try:
        query.Search(query_pb2.SearchRequest(collection=name, vector=[0.0] * 3, k=10))
        raise AssertionError("wrong dimension accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "dimension" in e.details(), e

    colls.DeleteCollection(collection_pb2.DeleteCollectionRequest(name=name))
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
