"""The definitions runs execute under: one aggregate per workflow name and fingerprint.

A class-declared run stores only its definition's fingerprint; the normalized spec itself is
stored once, here, the first time a run starts under it. Any later deploy can read it, so a
run follows the graph it started with whatever code is deployed since.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from squidmesh_es.domain._journal import JSONDict
from squidmesh_es.domain._keys import JOURNAL_NAMESPACE

__all__ = ["WorkflowDefinition", "definition_id"]


def definition_id(workflow: str, fingerprint: str) -> UUID:
    """Aggregate id of the definition of ``workflow`` with ``fingerprint``: the same everywhere.

    Content-addressed, so processes that store the same definition at once write the same
    aggregate and one of them finds it already there.
    """
    return uuid5(JOURNAL_NAMESPACE, f"squidmesh:definition:{workflow}:{fingerprint}")


@final
class WorkflowDefinition(Aggregate):
    """A workflow's normalized spec as it was when runs started under its fingerprint.

    Written once and never changed: it has no other event.
    """

    TOPIC = "squidmesh.WorkflowDefinition"

    if TYPE_CHECKING:
        workflow: str
        fingerprint: str
        spec: JSONDict
        recorded_at: datetime

    class Event(Aggregate.Event):
        """Base of the definition's events."""

    class DefinitionRecorded(Event, Aggregate.Created):
        """The spec (``WorkflowSpec.to_dict()``) a run first started under."""

        TOPIC = "squidmesh.WorkflowDefinition.DefinitionRecorded"
        workflow: str
        fingerprint: str
        spec: JSONDict

        def apply(self, definition: WorkflowDefinition) -> None:
            definition.workflow = self.workflow
            definition.fingerprint = self.fingerprint
            definition.spec = self.spec
            definition.recorded_at = self.timestamp

    Created = DefinitionRecorded

    class Snapshot(LibrarySnapshot):
        """Never taken (one event); named so that no module path is ever stored."""

        TOPIC = "squidmesh.WorkflowDefinition.Snapshot"

    @classmethod
    def record(
        cls, *, workflow: str, fingerprint: str, spec: JSONDict, now: datetime
    ) -> WorkflowDefinition:
        """A new definition aggregate holding ``spec``; its id is `definition_id`."""
        return cls._create(
            cls.DefinitionRecorded,
            id=definition_id(workflow, fingerprint),
            workflow=workflow,
            fingerprint=fingerprint,
            spec=spec,
            timestamp=now,
        )


register_topic(WorkflowDefinition.Snapshot.TOPIC, WorkflowDefinition.Snapshot)
