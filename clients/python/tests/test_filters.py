from __future__ import annotations

import datetime as dt

import pytest

from akidb.filters import DatetimeRange, Field, Filter, Range, has_id, to_filter
from akidb.v1 import common_pb2 as pb


def fc(key: str, **m: object) -> pb.Condition:
    return pb.Condition(field=pb.FieldCondition(key=key, **m))  # type: ignore[arg-type]


def test_dict_shorthand() -> None:
    f = to_filter({"parity": "even", "bucket": 3, "ok": True, "tags": ["a", "b"], "ns": [1, 2], "note": None})
    assert list(f.must) == [
        fc("parity", keyword="even"),
        fc("bucket", integer=3),
        fc("ok", boolean=True),
        fc("tags", any_of=pb.AnyOf(keywords=["a", "b"])),
        fc("ns", any_of=pb.AnyOf(integers=[1, 2])),
        pb.Condition(is_null=pb.FieldKey(key="note")),
    ]


def test_dict_operators() -> None:
    f = to_filter({"bucket": {"gte": 2, "lt": 4}, "day": {"gte": "2020-01-01", "lt": dt.date(2020, 2, 1)}})
    assert f.must[0] == fc("bucket", range=pb.Range(gte=2, lt=4))
    assert f.must[1] == fc("day", datetime_range=pb.DatetimeRange(gte="2020-01-01", lt="2020-02-01"))
    f = to_filter({"w": {"text": "a b"}, "p": {"phrase": "a b"}, "t": {"any": ["x"]}, "n": {"ne": 3}, "e": {"eq": "y"}})
    assert f.must[0] == fc("w", text="a b") and f.must[1] == fc("p", phrase="a b")
    assert f.must[2] == fc("t", any_of=pb.AnyOf(keywords=["x"]))
    assert f.must[3] == pb.Condition(filter=pb.Filter(must_not=[fc("n", integer=3)]))
    assert f.must[4] == fc("e", keyword="y")
    f = to_filter({"at": {"geo_radius": {"lat": 1, "lon": 2, "radius_m": 5}}})
    assert f.must[0].field.geo_radius == pb.GeoRadius(center=pb.GeoPoint(lat=1, lon=2), radius_m=5)
    f = to_filter({"at": {"geo_bounding_box": {"top_left": {"lat": 1, "lon": 0}, "bottom_right": {"lat": 0, "lon": 1}}}})
    assert f.must[0].field.geo_bounding_box.top_left.lat == 1
    f = to_filter({"tags": {"values_count": {"gte": 2}, "is_empty": False}})
    assert f.must[0] == pb.Condition(values_count=pb.ValuesCount(key="tags", count=pb.Range(gte=2)))
    assert f.must[1] == pb.Condition(filter=pb.Filter(must_not=[pb.Condition(is_empty=pb.FieldKey(key="tags"))]))
    assert to_filter({"x": Range(gt=1)}).must[0] == fc("x", range=pb.Range(gt=1))
    assert to_filter({"x": DatetimeRange(lte="2020-01-01")}).must[0] == fc("x", datetime_range=pb.DatetimeRange(lte="2020-01-01"))
    with pytest.raises(ValueError):
        to_filter({"x": {"bogus": 1}})


def test_dict_clauses() -> None:
    f = to_filter({
        "must": [{"a": "x"}],
        "should": [{"b": 1, "c": 2}, Field("d").eq(True)],
        "must_not": [has_id(1, "00000000-0000-0000-0000-000000000001")],
        "min_should": {"conditions": [{"e": 1}, {"e": 2}], "min_count": 1},
    })
    assert f.must[0] == fc("a", keyword="x")
    assert f.should[0] == pb.Condition(filter=pb.Filter(must=[fc("b", integer=1), fc("c", integer=2)]))
    assert f.should[1] == fc("d", boolean=True)
    assert [i.WhichOneof("kind") for i in f.must_not[0].has_id.ids] == ["num", "uuid"]
    assert f.min_should.min_count == 1 and len(f.min_should.conditions) == 2
    with pytest.raises(ValueError):
        to_filter({"must": [], "color": "red"})


def test_builders() -> None:
    a, b = Field("a").eq("x"), Field("b").range(gte=1)
    assert to_filter(a & b).must[0] == pb.Condition(filter=pb.Filter(must=[a.proto, b.proto]))
    assert to_filter(a | b).must[0] == pb.Condition(filter=pb.Filter(should=[a.proto, b.proto]))
    assert to_filter(~a).must[0] == pb.Condition(filter=pb.Filter(must_not=[a.proto]))
    f = Filter(must=[a], must_not=[{"c": 1}], min_should=[a, b], min_count=2)
    assert to_filter(f).min_should.min_count == 2 and to_filter(f).must_not[0] == fc("c", integer=1)
    assert Field("t").datetime_range(gte=dt.datetime(2020, 1, 1)).proto.field.datetime_range.gte == "2020-01-01T00:00:00+00:00"
    assert Field("g").geo_bounding_box((1, 0), (0, 1)).proto.field.geo_bounding_box.bottom_right.lon == 1
    assert Field("x").any_of([1, "a"]).proto.field.any_of == pb.AnyOf(keywords=["a"], integers=[1])
    assert Field("x").eq(2.0).proto == fc("x", integer=2)
    raw = pb.Filter(must=[a.proto])
    assert to_filter(raw) is raw and to_filter(a.proto) == raw
    with pytest.raises(TypeError):
        to_filter(42)  # type: ignore[arg-type]
    assert "keyword" in repr(a)
