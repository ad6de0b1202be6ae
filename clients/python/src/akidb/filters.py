"""Filters over payload fields and ids, from plain dicts or small builders.

A filter is given to search, count, scroll, delete and the payload updates as any of:

* a dict of field conditions, all of which must match::

      {"parity": "even"}                       # keyword (str), integer (int) or boolean (bool)
      {"tags": ["a", "b"]}                     # any of these keywords (or integers)
      {"bucket": {"gte": 2, "lt": 4}}          # numeric range (gt, gte, lt, lte)
      {"day": {"gte": "2020-01-01"}}           # string (or date/datetime) bounds: datetime range
      {"words": {"text": "sift small"}}        # every word; also {"phrase": ...}
      {"at": {"geo_radius": {"lat": 1, "lon": 2, "radius_m": 500}}}
      {"at": {"geo_bounding_box": {"top_left": {"lat": 1, "lon": 0}, "bottom_right": {"lat": 0, "lon": 1}}}}
      {"tags": {"values_count": {"gte": 2}}}   # number of values
      {"tags": {"is_empty": True}}, {"note": None}  # missing/empty; present and null
      {"parity": {"ne": "odd"}}                # not equal (also {"eq": ...}, {"any": [...]})

* a dict of clauses, each a list of conditions (builders, protos, or dicts as above)::

      {"must": [...], "should": [...], "must_not": [...],
       "min_should": {"conditions": [...], "min_count": 2}}

* builders: ``Field("parity").eq("even") & Field("bucket").range(gte=2)``, ``~cond``,
  ``cond | cond``, :func:`has_id`, :class:`Filter`;
* an ``akidb.v1.common_pb2.Filter`` or ``Condition`` message.

Keys may use dots for nested objects (``"a.b"``); on an array field a condition matches when
any element does. Payload fields named ``must``, ``should``, ``must_not`` or ``min_should``
need the builders.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from akidb._convert import PointIdLike, point_id
from akidb.v1 import common_pb2

__all__ = ["Condition", "Field", "Filter", "Range", "DatetimeRange", "has_id", "to_filter", "FilterLike", "ConditionLike"]

_CLAUSES = frozenset({"must", "should", "must_not", "min_should"})
_RANGE_OPS = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Range:
    """A numeric range; unset bounds are open. Usable as a dict filter value:
    ``{"price": Range(gte=1, lt=5)}``."""

    gt: Optional[float] = None
    gte: Optional[float] = None
    lt: Optional[float] = None
    lte: Optional[float] = None

    def to_proto(self) -> common_pb2.Range:
        """The proto message."""
        return common_pb2.Range(**{op: float(getattr(self, op)) for op in _RANGE_OPS if getattr(self, op) is not None})


DateLike = Union[str, _dt.date, _dt.datetime]


def _date_str(v: DateLike) -> str:
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, str):
        return v
    raise TypeError(f"a datetime bound is an RFC 3339 string, a date or a datetime, not {type(v).__name__}")


@dataclass(frozen=True)
class DatetimeRange:
    """A range of dates or times: RFC 3339 strings, ``YYYY-MM-DD`` dates (midnight UTC), or
    ``date``/``datetime`` objects (naive datetimes are taken as UTC)."""

    gt: Optional[DateLike] = None
    gte: Optional[DateLike] = None
    lt: Optional[DateLike] = None
    lte: Optional[DateLike] = None

    def to_proto(self) -> common_pb2.DatetimeRange:
        """The proto message."""
        return common_pb2.DatetimeRange(**{op: _date_str(getattr(self, op)) for op in _RANGE_OPS if getattr(self, op) is not None})


class Condition:
    """One condition of a filter. Combine with ``&`` (all), ``|`` (any) and ``~`` (not)."""

    __slots__ = ("proto",)

    def __init__(self, proto: common_pb2.Condition) -> None:
        self.proto = proto

    def __and__(self, other: ConditionLike) -> Condition:
        return Condition(common_pb2.Condition(filter=common_pb2.Filter(must=[self.proto, to_condition(other)])))

    def __or__(self, other: ConditionLike) -> Condition:
        return Condition(common_pb2.Condition(filter=common_pb2.Filter(should=[self.proto, to_condition(other)])))

    def __invert__(self) -> Condition:
        return Condition(common_pb2.Condition(filter=common_pb2.Filter(must_not=[self.proto])))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and self.proto == other.proto

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Condition({_one_line(self.proto)})"


def _one_line(m: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(m, as_one_line=True)


class Field:
    """Conditions on one payload field (dots reach into nested objects): ``Field("tag").eq("x")``."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("a field key is a non-empty string")
        self.key = key

    def _c(self, **match: Any) -> Condition:
        return Condition(common_pb2.Condition(field=common_pb2.FieldCondition(key=self.key, **match)))

    def eq(self, value: Union[str, int, bool]) -> Condition:
        """Equal to a keyword (str), an integer or a boolean."""
        if isinstance(value, bool):
            return self._c(boolean=value)
        if isinstance(value, str):
            return self._c(keyword=value)
        if isinstance(value, int) or hasattr(value, "__index__"):
            return self._c(integer=int(value))
        if isinstance(value, float):
            if value.is_integer():
                return self._c(integer=int(value))
            return self._c(range=common_pb2.Range(gte=value, lte=value))
        raise TypeError(f"eq() matches a str, int or bool, not {type(value).__name__}")

    def ne(self, value: Union[str, int, bool]) -> Condition:
        """Not equal (also true where the field is missing)."""
        return ~self.eq(value)

    def any_of(self, values: Iterable[Union[str, int]]) -> Condition:
        """Equal to any of these keywords or integers."""
        vals = list(values)
        kw = [v for v in vals if isinstance(v, str)]
        ints = [int(v) for v in vals if not isinstance(v, str)]
        if any(isinstance(v, bool) for v in vals):
            raise TypeError("any_of() takes keywords and integers, not booleans")
        return self._c(any_of=common_pb2.AnyOf(keywords=kw, integers=ints))

    def range(
        self,
        gt: Optional[float] = None,
        gte: Optional[float] = None,
        lt: Optional[float] = None,
        lte: Optional[float] = None,
    ) -> Condition:
        """A number within the bounds (unset ones are open)."""
        return self._c(range=Range(gt, gte, lt, lte).to_proto())

    def datetime_range(
        self,
        gt: Optional[DateLike] = None,
        gte: Optional[DateLike] = None,
        lt: Optional[DateLike] = None,
        lte: Optional[DateLike] = None,
    ) -> Condition:
        """A date or time within the bounds (RFC 3339 strings, dates or datetimes)."""
        return self._c(datetime_range=DatetimeRange(gt, gte, lt, lte).to_proto())

    def text(self, words: str) -> Condition:
        """A text field containing every word of `words` (case-insensitive)."""
        return self._c(text=words)

    def phrase(self, phrase: str) -> Condition:
        """A text field containing the words of `phrase` one after another."""
        return self._c(phrase=phrase)

    def geo_radius(self, lat: float, lon: float, radius_m: float) -> Condition:
        """A geo point ({"lat", "lon"}) within `radius_m` meters of (lat, lon)."""
        return self._c(geo_radius=common_pb2.GeoRadius(center=common_pb2.GeoPoint(lat=lat, lon=lon), radius_m=radius_m))

    def geo_bounding_box(self, top_left: Tuple[float, float], bottom_right: Tuple[float, float]) -> Condition:
        """A geo point within the box; corners are (lat, lon)."""
        return self._c(
            geo_bounding_box=common_pb2.GeoBoundingBox(
                top_left=common_pb2.GeoPoint(lat=top_left[0], lon=top_left[1]),
                bottom_right=common_pb2.GeoPoint(lat=bottom_right[0], lon=bottom_right[1]),
            )
        )

    def is_empty(self) -> Condition:
        """The field is missing, null, or an empty array."""
        return Condition(common_pb2.Condition(is_empty=common_pb2.FieldKey(key=self.key)))

    def is_null(self) -> Condition:
        """The field is present and null."""
        return Condition(common_pb2.Condition(is_null=common_pb2.FieldKey(key=self.key)))

    def values_count(
        self,
        gt: Optional[int] = None,
        gte: Optional[int] = None,
        lt: Optional[int] = None,
        lte: Optional[int] = None,
    ) -> Condition:
        """The field's number of values (an array's length, 1 for a scalar, 0 when missing)."""
        return Condition(
            common_pb2.Condition(values_count=common_pb2.ValuesCount(key=self.key, count=Range(gt, gte, lt, lte).to_proto()))
        )

    def __repr__(self) -> str:
        return f"Field({self.key!r})"


def has_id(*ids: PointIdLike) -> Condition:
    """The point's id is one of these: ``has_id(1, 2, 3)``."""
    if len(ids) == 1 and isinstance(ids[0], (list, tuple)):
        ids = tuple(ids[0])
    return Condition(common_pb2.Condition(has_id=common_pb2.HasIdCondition(ids=[point_id(i) for i in ids])))


class Filter:
    """A filter: every `must` condition matches, at least one `should` (when there are any),
    at least `min_count` of `min_should` (when given), and no `must_not`."""

    __slots__ = ("proto",)

    def __init__(
        self,
        must: Optional[Sequence[ConditionLike]] = None,
        should: Optional[Sequence[ConditionLike]] = None,
        must_not: Optional[Sequence[ConditionLike]] = None,
        min_should: Optional[Sequence[ConditionLike]] = None,
        min_count: int = 1,
    ) -> None:
        f = common_pb2.Filter(
            must=[to_condition(c) for c in must or ()],
            should=[to_condition(c) for c in should or ()],
            must_not=[to_condition(c) for c in must_not or ()],
        )
        if min_should:
            f.min_should.conditions.extend(to_condition(c) for c in min_should)
            f.min_should.min_count = min_count
        self.proto = f

    def __repr__(self) -> str:
        return f"Filter({_one_line(self.proto)})"


#: One condition: a builder, a Condition or Filter message, or a dict (all its keys must match).
ConditionLike = Union[Condition, Filter, common_pb2.Condition, common_pb2.Filter, Mapping[str, Any]]
#: A filter: see the module documentation.
FilterLike = Union[Filter, Condition, common_pb2.Filter, common_pb2.Condition, Mapping[str, Any]]


def _field_conditions(key: str, value: Any) -> List[common_pb2.Condition]:
    """The conditions of one `key: value` entry of a dict filter."""
    f = Field(key)
    if value is None:
        return [f.is_null().proto]
    if isinstance(value, Range):
        return [f._c(range=value.to_proto()).proto]
    if isinstance(value, DatetimeRange):
        return [f._c(datetime_range=value.to_proto()).proto]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [f.any_of(value).proto]
    if isinstance(value, Mapping):
        out: List[common_pb2.Condition] = []
        bounds = {op: value[op] for op in _RANGE_OPS if op in value}
        if bounds:
            if any(isinstance(b, (str, _dt.date)) for b in bounds.values()):
                out.append(f.datetime_range(**bounds).proto)
            else:
                out.append(f.range(**bounds).proto)
        for op, arg in value.items():
            if op in _RANGE_OPS:
                continue
            if op == "eq":
                out.append(f.eq(arg).proto)
            elif op == "ne":
                out.append(f.ne(arg).proto)
            elif op in ("any", "any_of"):
                out.append(f.any_of(arg).proto)
            elif op == "text":
                out.append(f.text(arg).proto)
            elif op == "phrase":
                out.append(f.phrase(arg).proto)
            elif op == "geo_radius":
                out.append(f.geo_radius(arg["lat"], arg["lon"], arg["radius_m"]).proto)
            elif op == "geo_bounding_box":
                tl, br = arg["top_left"], arg["bottom_right"]
                out.append(f.geo_bounding_box((tl["lat"], tl["lon"]), (br["lat"], br["lon"])).proto)
            elif op == "values_count":
                out.append(f.values_count(**arg).proto)
            elif op == "is_empty":
                c = f.is_empty()
                out.append((c if arg else ~c).proto)
            elif op == "is_null":
                c = f.is_null()
                out.append((c if arg else ~c).proto)
            else:
                raise ValueError(f"unknown filter operator {op!r} for field {key!r}")
        if not out:
            raise ValueError(f"an empty condition for field {key!r}")
        return out
    return [f.eq(value).proto]


def _dict_filter(d: Mapping[str, Any]) -> common_pb2.Filter:
    keys = set(d)
    if keys & _CLAUSES:
        if not keys <= _CLAUSES:
            raise ValueError(
                f"a filter dict has either clauses ({', '.join(sorted(_CLAUSES))}) or field conditions, "
                f"not both: {sorted(keys)}"
            )
        f = common_pb2.Filter(
            must=[to_condition(c) for c in d.get("must") or ()],
            should=[to_condition(c) for c in d.get("should") or ()],
            must_not=[to_condition(c) for c in d.get("must_not") or ()],
        )
        ms = d.get("min_should")
        if ms:
            f.min_should.conditions.extend(to_condition(c) for c in ms["conditions"])
            f.min_should.min_count = int(ms.get("min_count", 1))
        return f
    conds: List[common_pb2.Condition] = []
    for key, value in d.items():
        conds.extend(_field_conditions(key, value))
    return common_pb2.Filter(must=conds)


def to_condition(c: ConditionLike) -> common_pb2.Condition:
    """The Condition message of any :data:`ConditionLike`."""
    if isinstance(c, Condition):
        return c.proto
    if isinstance(c, common_pb2.Condition):
        return c
    if isinstance(c, Filter):
        return common_pb2.Condition(filter=c.proto)
    if isinstance(c, common_pb2.Filter):
        return common_pb2.Condition(filter=c)
    if isinstance(c, Mapping):
        f = _dict_filter(c)
        if len(f.must) == 1 and not (f.should or f.must_not or f.HasField("min_should")):
            return f.must[0]
        return common_pb2.Condition(filter=f)
    raise TypeError(f"a filter condition is a Condition, Filter, dict or proto, not {type(c).__name__}")


def to_filter(f: FilterLike) -> common_pb2.Filter:
    """The Filter message of any :data:`FilterLike`."""
    if isinstance(f, common_pb2.Filter):
        return f
    if isinstance(f, Filter):
        return f.proto
    if isinstance(f, Condition):
        return common_pb2.Filter(must=[f.proto])
    if isinstance(f, common_pb2.Condition):
        return common_pb2.Filter(must=[f])
    if isinstance(f, Mapping):
        return _dict_filter(f)
    raise TypeError(f"a filter is a dict, a Filter or Condition builder, or a proto, not {type(f).__name__}")
