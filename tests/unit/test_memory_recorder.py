"""The memory journal's seeking reads answer exactly as the library's POPO recorder does."""

from __future__ import annotations

from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from hypothesis import given, settings
from hypothesis import strategies as st

from squidmesh_es.runtime._memory import Factory

versions = st.lists(st.integers(1, 60), unique=True, max_size=40)
bounds = st.one_of(st.none(), st.integers(0, 61))


@settings(max_examples=300, deadline=None)
@given(versions, bounds, bounds, st.booleans(), st.one_of(st.none(), st.integers(1, 10)))
def test_seeking_reads_match_the_library(
    written: list[int], gt: int | None, lte: int | None, desc: bool, limit: int | None
) -> None:
    ours = Factory.construct({"PERSISTENCE_MODULE": "squidmesh_es.runtime._memory"})
    recorder = ours.application_recorder()
    library = POPOApplicationRecorder()
    aggregate, other = uuid4(), uuid4()
    for version in sorted(written):  # as aggregates write: ascending, maybe with gaps
        for originator in (aggregate, other):
            event = StoredEvent(originator, version, "t", f"{version}".encode())
            recorder.insert_events([event])
            library.insert_events([event])

    def read(r: POPOApplicationRecorder) -> list[int]:
        events = r.select_events(aggregate, gt=gt, lte=lte, desc=desc, limit=limit)
        return [e.originator_version for e in events]

    assert read(recorder) == read(library)  # type: ignore[arg-type]
