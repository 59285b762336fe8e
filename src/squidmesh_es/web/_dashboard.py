"""The dashboard's state and its ASGI app: one journal, its projections, its templates.

`create_app` returns a Starlette app that serves the pages and (when enabled) the controls.
A host mounts it in its own ASGI app (``Mount("/ops", app=create_app(mesh))``); every
link is built with ``url_for`` so it works under any prefix. Requests run in Starlette's
thread pool and take one lock around the journal: the runtime is not shared across threads
by the rest of the package, so the dashboard does not start doing so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from squidmesh_es.projections import Projections
from squidmesh_es.read_model import VisibilityScope
from squidmesh_es.runtime import SquidMesh
from squidmesh_es.web._controls import control_page
from squidmesh_es.web._format import FILTERS
from squidmesh_es.web._pages import queues_page, run_page, runs_page, schedules_page
from squidmesh_es.web._security import Authorize, ControlAccess

__all__ = ["Dashboard", "create_app"]


class Dashboard:
    """What every page reads from: the runtime, its projections, and the display choices."""

    def __init__(
        self,
        mesh: SquidMesh,
        *,
        queues: Iterable[str] = (),
        scope: VisibilityScope | str = VisibilityScope.OPERATOR,
        access: ControlAccess | None = None,
        refresh: timedelta = timedelta(seconds=10),
    ) -> None:
        self.mesh = mesh
        self.queues = sorted({mesh.default_queue, *queues})
        self.scope = VisibilityScope(scope)
        self.access = access or ControlAccess()
        self.refresh = refresh
        self._lock = threading.RLock()
        self._projections: Projections | None = None
        environment = Environment(
            loader=PackageLoader("squidmesh_es.web", "templates"),
            autoescape=select_autoescape(default=True),
        )
        environment.filters.update(FILTERS)
        self.templates = Jinja2Templates(env=environment)

    @contextmanager
    def journal(self) -> Iterator[SquidMesh]:
        """The runtime, held by this request alone."""
        with self._lock:
            yield self.mesh

    @contextmanager
    def catalog(self) -> Iterator[Projections]:
        """The projections, caught up with the journal first (other processes write to it)."""
        with self._lock:
            if self._projections is None:
                self._projections = Projections(self.mesh)
            self._projections.catch_up("run_catalog")
            self._projections.catch_up("run_index")
            yield self._projections

    def close(self) -> None:
        """Close the projections' view; the runtime belongs to the caller and stays open."""
        with self._lock:
            if self._projections is not None:
                self._projections.close()
                self._projections = None


def create_app(
    mesh: SquidMesh,
    *,
    queues: Iterable[str] = (),
    scope: VisibilityScope | str = VisibilityScope.OPERATOR,
    controls_token: str | None = None,
    authorize: Authorize | None = None,
    refresh: timedelta = timedelta(seconds=10),
) -> Starlette:
    """The dashboard of ``mesh`` as an ASGI app; ``app.state.dashboard`` is its `Dashboard`.

    Args:
        mesh: the runtime whose journal is shown; register the workflows (``workflows=``)
            so graphs get their edges and approvals can plan the next step.
        queues: queues the queues page shows besides the runtime's default one.
        scope: what pages reveal, by the project's one redaction policy (``operator`` by
            default: no inputs, outputs, errors or context values; ``auditor`` shows all).
        controls_token: enables approve, reject, resume, cancel and replay for callers
            who give this token. Without it (and without ``authorize``) the app is
            read-only.
        authorize: the host's own check instead of a token: controls are enabled and
            allowed when it returns ``True`` for the request.
        refresh: how often the pages reload themselves when auto-refresh is on.

    Call ``app.state.dashboard.close()`` when done; the caller closes ``mesh``.
    """
    dashboard = Dashboard(
        mesh,
        queues=queues,
        scope=scope,
        access=ControlAccess(token=controls_token, authorize=authorize),
        refresh=refresh,
    )
    app = Starlette(
        routes=[
            Route("/", runs_page, name="runs"),
            Route("/runs/{run_id}", run_page, name="run"),
            Route("/runs/{run_id}/{control}", control_page, methods=["POST"], name="control"),
            Route("/queues", queues_page, name="queues"),
            Route("/schedules", schedules_page, name="schedules"),
            Mount(
                "/static",
                app=StaticFiles(packages=[("squidmesh_es.web", "static")]),
                name="static",
            ),
        ]
    )
    app.state.dashboard = dashboard
    return app
