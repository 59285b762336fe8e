"""The journal's transcoder writes what the library's `JSONTranscoder` reads back as the same.

Every comparison decodes with the library's own transcoder: what we write must stay readable
by earlier versions and by eventsourcing tooling, and give exactly the values the library's
encoder would have given (types included: a UUID stays a UUID, a tuple becomes a list).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, namedtuple
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoding,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from squidmesh_es import SquidMesh
from squidmesh_es.runtime._transcoder import JournalTranscoder
from squidmesh_es.testing import freezegun_transcodings


class Colour(Enum):
    RED = 1
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1


class Mode(StrEnum):
    FAST = "fast"


class Tag(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


Pair = namedtuple("Pair", "a b")


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class PointAsDict(Transcoding):
    type = Point
    name = "point"

    def encode(self, obj: Point) -> dict[str, int]:
        return {"x": obj.x, "y": obj.y}

    def decode(self, data: dict[str, int]) -> Point:
        return Point(**data)


@dataclasses.dataclass(frozen=True)
class Stamp:
    """Data holding what orjson writes its own way: a UUID and a datetime."""

    id: UUID
    at: datetime


class StampAsDict(Transcoding):
    type = Stamp
    name = "stamp"

    def encode(self, obj: Stamp) -> dict[str, Any]:
        return {"id": obj.id, "at": obj.at}

    def decode(self, data: dict[str, Any]) -> Stamp:
        return Stamp(**data)


class ColourAsName(Transcoding):
    type = Colour
    name = "colour"

    def encode(self, obj: Colour) -> str:
        return obj.name

    def decode(self, data: str) -> Colour:
        return Colour[data]


class ModeAsName(Transcoding):
    """Never used by `json`: it writes a str subclass as a str."""

    type = Mode
    name = "mode"

    def encode(self, obj: Mode) -> str:
        return obj.name

    def decode(self, data: str) -> Mode:
        return Mode[data]


class TagAsText(Transcoding):
    """Never used by `json` either: a str subclass is written as a str."""

    type = Tag
    name = "tag"

    def encode(self, obj: Tag) -> str:
        return str.__str__(obj)

    def decode(self, data: str) -> Tag:
        return Tag(data)


class PairAsDict(Transcoding):
    """Never used by `json`: a named tuple is written as a list."""

    type = Pair
    name = "pair"

    def encode(self, obj: Any) -> dict[str, Any]:
        return {"a": obj.a, "b": obj.b}

    def decode(self, data: dict[str, Any]) -> Any:
        return Pair(**data)


class DatetimeAsEpoch(Transcoding):
    """A host's own datetime format, replacing the library's."""

    type = datetime
    name = "datetime_epoch"

    def encode(self, obj: datetime) -> float:
        return obj.timestamp()

    def decode(self, data: float) -> datetime:
        return datetime.fromtimestamp(data, UTC)


BUILTIN = (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO())
HOST = (PointAsDict(), StampAsDict(), ColourAsName(), ModeAsName(), TagAsText(), PairAsDict())


def library(*transcodings: Transcoding) -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in transcodings:
        transcoder.register(transcoding)
    return transcoder


def journal(*transcodings: Transcoding) -> JournalTranscoder:
    transcoder = JournalTranscoder()
    for transcoding in transcodings:
        transcoder.register(transcoding)
    return transcoder


def outcome(write: JSONTranscoder, read: JSONTranscoder, value: object) -> object:
    """What ``read`` decodes from ``write``'s bytes, or the type of the error writing raised."""
    try:
        data = write.encode(value)
    except Exception as exc:  # noqa: BLE001 - the error type is what is compared
        return type(exc)
    return read.decode(data)


def same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (``1 == 1.0 == True`` is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | Decimal):
        return repr(a) == repr(b)  # NaN, -0.0
    if isinstance(a, datetime):
        assert isinstance(b, datetime)
        return a.isoformat() == b.isoformat() and a.utcoffset() == b.utcoffset()
    return a == b


def assert_reads_the_same(value: object, *transcodings: Transcoding) -> None:
    ours = outcome(journal(*transcodings), library(*transcodings), value)
    theirs = outcome(library(*transcodings), library(*transcodings), value)
    assert same(ours, theirs), (value, ours, theirs)


offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
datetimes = st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets))
odd_strings = st.text(st.characters(codec=None, exclude_categories=()))  # lone surrogates too
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(),
    odd_strings,
    datetimes,
    st.uuids(),
    st.decimals(),
    st.dates(),
    st.sampled_from([Colour.RED, Colour.BLUE, Level.LOW, Mode.FAST]),
    st.builds(Tag, st.text()),
    st.builds(Count, st.integers(-(2**63), 2**63)),
    st.builds(Ratio, st.floats()),
    st.builds(Point, st.integers(), st.integers()),
    st.builds(Stamp, st.uuids(), datetimes),
)
keys = st.one_of(
    st.text(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.builds(Tag, st.text()),
    st.just(Mode.FAST),
    st.just(Colour.RED),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children),
        st.lists(children).map(tuple),
        st.builds(Pair, children, children),
        st.dictionaries(st.text(), children),
        st.dictionaries(keys, children),
        st.dictionaries(st.text(), children).map(OrderedDict),
    ),
    max_leaves=25,
)
plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.text(), datetimes),
    lambda children: st.one_of(
        st.lists(children), st.dictionaries(st.text(), children, max_size=8)
    ),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(values)
def test_any_value_reads_back_as_the_library_writes_it(value: object) -> None:
    assert_reads_the_same(value, *BUILTIN)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_value_reads_back_the_same_with_host_transcodings(value: object) -> None:
    assert_reads_the_same(value, *BUILTIN, *HOST)


@settings(max_examples=200, deadline=None)
@given(values)
def test_a_host_datetime_format_replaces_the_librarys(value: object) -> None:
    assert_reads_the_same(value, *BUILTIN, DatetimeAsEpoch())


@settings(max_examples=300, deadline=None)
@given(plain_values)
def test_values_without_floats_are_written_byte_for_byte_as_the_library_does(
    value: object,
) -> None:
    """The journal's size and bytes do not change with the faster encoder."""
    assert journal(*BUILTIN).encode(value) == library(*BUILTIN).encode(value)


@pytest.mark.parametrize(
    "value",
    [
        {"id": UUID(int=7)},
        {"ids": [uuid4(), "x"]},
        {"colour": Colour.RED},
        {"mode": Mode.FAST, "level": Level.LOW},
        {"x": math.nan},
        {"x": [math.inf, -math.inf]},
        {"big": 2**64},
        {"small": -(2**63) - 1},
        {1: "a"},
        {Tag("k"): 1},
        {"tag": Tag("t"), "count": Count(3), "ratio": Ratio(0.5)},
        {"pair": Pair(1, [2])},
        {"tuple": (1, (2, 3))},
        {"point": Point(1, 2)},
        {"stamp": Stamp(UUID(int=1), datetime(2026, 1, 1, tzinfo=UTC))},
        {"day": date(2026, 1, 1)},
        {"at": datetime(2026, 1, 1, 12, tzinfo=UTC)},
        {"at": datetime(1, 1, 1, tzinfo=UTC), "naive": datetime(2026, 1, 1)},
        {"at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=5)))},
        {"s": "\ud800"},
        {"s": "\x00\x1f\x7f\u2028 \"'\\/ é 日本 🐙"},
        {"x": 1e16, "y": 1e-7, "z": -0.0, "d": Decimal("1.10")},
        "top-level string",
        [1, "list", None],
    ],
)
def test_values_orjson_writes_its_own_way_read_back_as_the_library_writes_them(
    value: object,
) -> None:
    assert_reads_the_same(value, *BUILTIN, *HOST)


def test_nesting_deeper_than_orjson_allows_is_written_by_the_library() -> None:
    value: list[Any] = [UUID(int=1)]
    for _ in range(300):
        value = [value]
    assert_reads_the_same(value, *BUILTIN)


def test_a_cyclic_value_raises_what_the_library_raises() -> None:
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(ValueError, match="Circular reference"):
        journal(*BUILTIN).encode(value)


def test_an_unregistered_type_raises_the_librarys_error() -> None:
    with pytest.raises(TypeError, match="register"):
        journal(*BUILTIN).encode({"day": date(2026, 1, 1)})


def test_a_host_transcoding_is_used_for_its_type() -> None:
    data = journal(*BUILTIN, PointAsDict()).encode({"p": Point(1, 2)})

    assert data == b'{"p":{"_type_":"point","_data_":{"x":1,"y":2}}}'
    assert library(*BUILTIN, PointAsDict()).decode(data) == {"p": Point(1, 2)}


def test_freezegun_datetimes_are_written_as_datetimes() -> None:
    from freezegun import freeze_time

    with freeze_time("2026-05-01T08:30:00Z"):
        now = datetime.now(UTC)
        transcodings = (*BUILTIN, *freezegun_transcodings())
        ours = journal(*transcodings).encode({"at": now})
        assert ours == library(*transcodings).encode({"at": now})
    assert library(*BUILTIN).decode(ours) == {"at": datetime(2026, 5, 1, 8, 30, tzinfo=UTC)}


def test_squidmesh_writes_its_journal_with_the_journal_transcoder() -> None:
    with SquidMesh.open("memory://") as mesh:
        assert isinstance(mesh.mapper.transcoder, JournalTranscoder)


def test_a_configured_transcoder_topic_is_still_honoured() -> None:
    topic = "eventsourcing.persistence:JSONTranscoder"
    env = {"PERSISTENCE_MODULE": "squidmesh_es.runtime._memory", "TRANSCODER_TOPIC": topic}
    with SquidMesh(env=env) as mesh:
        assert type(mesh.mapper.transcoder) is JSONTranscoder
