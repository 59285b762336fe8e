"""One projection kept by the library's ``ProjectionRunner`` (Postgres), in the shared view.

``ProjectionRunner`` subscribes to the journal through the database (LISTEN/NOTIFY), so it
serves a separate process that wakes on each commit instead of polling. It only works where
the recorder can ``subscribe()``: Postgres (SQLite cannot; a memory journal lives in another
process's memory). It applies one event per transaction, so catching up a long backlog is
faster with ``squidmesh projections run``; both move the same position, so they take over
from each other.

Two things adapt the runner to the shared view. It builds the projection from the view
alone, while our projections read the journal's aggregates: the projection class given to
it is bound to a journal reader. And it asks the view for the position of the journal
(``max_tracking_id("SquidMesh")``), while the view keeps one position per projection: the
view class given to it answers that question with the projection's own position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.projection import ProjectionRunner

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections._open_view import view_class
from squidmesh_es.projections._projection import RunProjection
from squidmesh_es.projections._sql_view import PostgresProjectionView
from squidmesh_es.projections._view import ProjectionView
from squidmesh_es.runtime import SquidMesh

__all__ = ["RunProjectionRunner"]


class RunProjectionRunner(ProjectionRunner[SquidMesh, ProjectionView]):
    """The library's ``ProjectionRunner`` keeping ``projection_class`` beside the journal.

    ``env`` is ``journal_env(url)`` of a Postgres journal. Use it as the library's runner:
    a context manager, ``run_forever(timeout)`` (re-raises a projection's error), ``wait``,
    ``stop``; ``.app`` is the runtime, ``.view`` the shared view. On exit it also closes the
    view and the journal reader, which the library's runner leaves open.

    Raises:
        InvalidArgument: ``env`` is not a Postgres journal's.
    """

    def __init__(
        self,
        projection_class: type[RunProjection],
        *,
        env: Mapping[str, str],
        journal_class: type[SquidMesh] = SquidMesh,
    ) -> None:
        if view_class(env) is not PostgresProjectionView:
            raise InvalidArgument(
                "env", "ProjectionRunner needs a Postgres journal (SQLite has no subscribe)"
            )
        self.journal = journal_class(env=env)
        try:
            super().__init__(
                application_class=journal_class,
                projection_class=_bound(projection_class, self.journal),
                view_class=_tracking_as(
                    PostgresProjectionView, journal_class.name, projection_class.name
                ),
                env=dict(env),
            )
        except BaseException:
            self.journal.close()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self.view.close()
            self.journal.close()


def _bound(projection_class: type[RunProjection], journal: SquidMesh) -> type[RunProjection]:
    """``projection_class`` built from a view alone, reading ``journal``."""

    def __init__(self: RunProjection, view: ProjectionView) -> None:
        projection_class.__init__(self, view, journal)

    bound: type[RunProjection] = type(
        projection_class.__name__,
        (projection_class,),
        {"name": projection_class.name, "__init__": __init__},
    )
    return bound


def _tracking_as(
    cls: type[PostgresProjectionView], journal: str, projection: str
) -> type[ProjectionView]:
    """``cls`` whose position of ``journal`` is ``projection``'s position.

    Only the journal's name is mapped: the library reads other names itself (its
    ``__migration__`` marker, when it creates the table).
    """

    def max_tracking_id(self: PostgresProjectionView, application_name: str) -> int | None:
        name = projection if application_name == journal else application_name
        position = cls.max_tracking_id(self, name)
        return None if position is None else int(position)

    bound: type[ProjectionView] = type(
        f"{cls.__name__}Tracking_{projection}", (cls,), {"max_tracking_id": max_tracking_id}
    )
    return bound
