"""The workflows a runtime can run: a name-to-class map, so a worker can find a run's code."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.workflow import Workflow

__all__ = ["WorkflowRegistry"]


class WorkflowRegistry:
    """Workflow classes by name; a run names its workflow and a worker looks it up here.

    A worker only claims attempts of workflows it has registered, so workers with different
    code can share a queue without running each other's steps.
    """

    def __init__(self, workflows: Iterable[type[Workflow]] = ()) -> None:
        self._by_name: dict[str, type[Workflow]] = {}
        self._lock = threading.Lock()
        for workflow in workflows:
            self.register(workflow)

    def register(self, workflow: type[Workflow]) -> type[Workflow]:
        """Add ``workflow``; registering the same class again does nothing.

        Raises:
            InvalidArgument: not a concrete workflow class, or another class has its name.
        """
        if not (isinstance(workflow, type) and issubclass(workflow, Workflow)):
            raise InvalidArgument("workflow", "is not a Workflow subclass")
        try:
            workflow.to_spec()
        except TypeError:
            raise InvalidArgument("workflow", f"{workflow.__qualname__} is abstract") from None
        with self._lock:
            known = self._by_name.get(workflow.name)
            if known is not None and known is not workflow:
                if _same_definition(known, workflow):
                    return known
                raise InvalidArgument(
                    "workflow", f"another class is already registered as {workflow.name!r}"
                )
            self._by_name[workflow.name] = workflow
        return workflow

    def get(self, name: str) -> type[Workflow] | None:
        """The workflow registered as ``name``, if any."""
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        """Registered workflow names, sorted."""
        return sorted(self._by_name)


def _same_definition(a: type[Workflow], b: type[Workflow]) -> bool:
    """A module imported twice (``__main__`` and by name) defines equal classes twice."""
    return a.to_spec().to_dict() == b.to_spec().to_dict()
