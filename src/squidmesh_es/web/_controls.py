"""The run page's controls: approve, reject, resume, cancel and replay, each a form POST.

A control is one call of the public API, like its ``squidmesh`` command, with the form's
actor and comment on the receipt. The form carries a key made when the page was drawn, sent
as the command's idempotency key: pressing twice, or resending the form, writes nothing new.
A refusal writes nothing and is shown on the run page with its code and details.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from squidmesh_es.errors import InvalidArgument, SquidMeshError
from squidmesh_es.web._pages import dashboard_of, render, show_run
from squidmesh_es.web._security import Refused

if TYPE_CHECKING:
    from squidmesh_es.web._dashboard import Dashboard

__all__ = ["CONTROLS", "control_page"]

CONTROLS = ("approve", "reject", "resume", "cancel", "replay")
"""The controls a run page may offer."""

_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


async def control_page(request: Request) -> Response:
    """Check access, run the control, and show the run (a replay shows its new run)."""
    dashboard = dashboard_of(request)
    run_id = str(request.path_params["run_id"])
    control = str(request.path_params["control"])
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        dashboard.access.check(request, form.get("token"), form.get("csrf"))
        if control not in CONTROLS:
            raise Refused(404, "unknown_control", f"no control named {control!r}")
    except Refused as refused:
        return render(
            request,
            "error.html",
            {"page": "runs", "code": refused.code, "message": str(refused), "run_id": run_id},
            status_code=refused.status,
        )
    shown = {k: form.get(k, "") for k in ("actor", "comment")}
    try:
        # The journal's calls block: they run in the thread pool, as the pages do.
        target = await run_in_threadpool(_run, dashboard, control, run_id, form)
    except SquidMeshError as refusal:
        status = 400 if isinstance(refusal, InvalidArgument) else 409
        return await run_in_threadpool(
            show_run, request, run_id, refusal=refusal, form=shown, status_code=status
        )
    url = request.url_for("run", run_id=target).include_query_params(done=control)
    return RedirectResponse(str(url), status_code=303)


def _run(dashboard: Dashboard, control: str, run_id: str, form: dict[str, str]) -> str:
    """Call the control; returns the run to show next.

    Raises:
        InvalidArgument: no actor, or a malformed form key.
        SquidMeshError: the runtime's refusal, unchanged.
    """
    actor = form.get("actor", "").strip()
    if not actor:
        raise InvalidArgument("actor", "say who decides")
    comment = form.get("comment", "").strip() or None
    request_id = form.get("request_id", "")
    if not _REQUEST_ID.match(request_id):
        raise InvalidArgument("request_id", "the form is not one this dashboard drew; reload")
    key = f"dashboard:{control}:{request_id}"
    with dashboard.journal() as mesh:
        if control == "cancel":
            mesh.cancel(run_id, actor=actor, reason=comment, idempotency_key=key)
            return run_id
        if control == "replay":
            replayed = mesh.replay(
                run_id,
                allow_irreversible=form.get("allow_irreversible") == "yes",
                actor=actor,
                comment=comment,
                idempotency_key=key,
            )
            return str(replayed.run_id)
        decide = {"approve": mesh.approve, "reject": mesh.reject, "resume": mesh.resume}[control]
        decide(run_id, actor=actor, comment=comment, idempotency_key=key)
        return run_id
