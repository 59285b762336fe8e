"""docs/journal.md stays in step with the journal's events, and its examples keep running."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot

from squidmesh_es.domain import DispatchQueue, WorkerRegistry, WorkflowRun

DOC = Path(__file__).parents[3] / "docs" / "journal.md"
BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}
AGGREGATES: tuple[type[Aggregate], ...] = (WorkflowRun, DispatchQueue, WorkerRegistry)


def event_classes(aggregate: type[Aggregate]) -> dict[str, type]:
    """Event classes nested in ``aggregate``, by name: skips its Event base, aliases, Snapshot."""
    base = aggregate.Event
    found: dict[str, type] = {}
    for name, value in vars(aggregate).items():
        if not isinstance(value, type) or value is base or name != value.__name__:
            continue  # not a class, the base, or an alias such as ``Created``
        if issubclass(value, LibrarySnapshot):
            continue
        if issubclass(value, base) or issubclass(value, Aggregate.Created):
            found[name] = value
    return found


EVENTS = [
    (aggregate.__name__, name, cls)
    for aggregate in AGGREGATES
    for name, cls in event_classes(aggregate).items()
]


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under ``heading`` up to the next heading of level 2 or 3."""
    text = doc_text()
    match = re.search(rf"^{re.escape(heading)}[ \t]*$", text, flags=re.MULTILINE)
    assert match is not None, f"docs/journal.md has no heading {heading!r}"
    rest = text[match.end() :]
    following = re.search(r"^#{2,3} ", rest, flags=re.MULTILINE)
    return rest[: following.start()] if following else rest


def declared_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in BASE_FIELDS]  # type: ignore[arg-type]


def test_every_aggregate_has_its_created_event_and_more() -> None:
    names = {(aggregate, name) for aggregate, name, _ in EVENTS}

    assert ("WorkflowRun", "RunStarted") in names and ("DispatchQueue", "Opened") in names
    assert ("WorkflowRun", "RunEnded") in names and ("DispatchQueue", "RunClosed") in names


@pytest.mark.parametrize(
    ("aggregate", "name", "cls"), EVENTS, ids=[f"{a}.{n}" for a, n, _ in EVENTS]
)
def test_event_is_documented_with_topic_and_fields(aggregate: str, name: str, cls: type) -> None:
    topic = vars(cls).get("TOPIC")
    assert isinstance(topic, str), f"{aggregate}.{name} declares no TOPIC of its own"

    body = section(f"### {aggregate}.{name}")

    assert f"`{topic}`" in body, f"section of {aggregate}.{name} does not give its TOPIC"
    missing = [field for field in declared_fields(cls) if f"`{field}`" not in body]
    assert missing == [], f"section of {aggregate}.{name} does not mention fields {missing}"


def test_every_event_heading_names_an_existing_event() -> None:
    documented = re.findall(
        r"^### (WorkflowRun|DispatchQueue|WorkerRegistry)\.(\w+)[ \t]*$",
        doc_text(),
        flags=re.MULTILINE,
    )

    assert sorted(documented) == sorted((a, n) for a, n, _ in EVENTS)


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", doc_text(), flags=re.MULTILINE | re.DOTALL)


def test_doc_has_a_python_example() -> None:
    assert python_blocks()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_example_runs(index: int) -> None:
    code = compile(python_blocks()[index], f"{DOC}[python block {index}]", "exec")

    exec(code, {"__name__": f"journal_doc_example_{index}"})
