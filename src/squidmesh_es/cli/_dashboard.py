"""``squidmesh dashboard``: serve the operator's web dashboard over a journal.

Read-only unless ``--enable-controls``; the controls' token is read from the environment
(``SQUIDMESH_DASHBOARD_TOKEN``), never from a flag, which would show it in the process list.
"""

from __future__ import annotations

import os
from datetime import timedelta

import click

from squidmesh_es.cli._logging import configure_logging
from squidmesh_es.cli._options import (
    database_url_option,
    import_option,
    load_workflows,
    open_journal,
    scope_option,
)

__all__ = ["TOKEN_ENV", "dashboard_command"]

TOKEN_ENV = "SQUIDMESH_DASHBOARD_TOKEN"
"""Environment variable holding the token the controls ask for."""


@click.command("dashboard")
@database_url_option()
@import_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help="Queue the queues page shows besides the default one; repeat for several.",
)
@click.option(
    "--enable-controls",
    is_flag=True,
    help=f"Offer approve, reject, resume, cancel and replay to callers who give the token "
    f"in {TOKEN_ENV}.",
)
@click.option(
    "--refresh-seconds",
    default=10,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Auto-refresh period of the pages.",
)
@scope_option
def dashboard_command(
    database_url: str,
    modules: tuple[str, ...],
    host: str,
    port: int,
    queues: tuple[str, ...],
    enable_controls: bool,
    refresh_seconds: int,
    scope: str,
) -> None:
    """Serve the web dashboard: runs, one run's graph and timeline, queues, schedules.

    Needs the dashboard extra: pip install 'squidmesh-es[dashboard]'.
    """
    try:
        import uvicorn

        from squidmesh_es.web import create_app
    except ImportError as exc:
        raise click.UsageError(
            f"the dashboard needs its extra: pip install 'squidmesh-es[dashboard]' ({exc})"
        ) from exc
    token = os.environ.get(TOKEN_ENV) or None
    if enable_controls and token is None:
        raise click.UsageError(f"--enable-controls needs a token in {TOKEN_ENV}")
    configure_logging()
    workflows = load_workflows(modules)
    with open_journal(database_url, workflows=workflows, create=False) as mesh:
        app = create_app(
            mesh,
            queues=queues,
            scope=scope,
            controls_token=token if enable_controls else None,
            refresh=timedelta(seconds=refresh_seconds),
        )
        mode = "controls enabled" if enable_controls else "read-only"
        click.echo(f"dashboard on http://{host}:{port}/ ({mode}, scope {scope})", err=True)
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            app.state.dashboard.close()
