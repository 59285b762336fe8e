"""The run page's controls over HTTP: off by default, token or host check, CSRF, refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from squidmesh_es import SquidMesh
from squidmesh_es.domain import TerminalStatus

from conftest import OpenMesh
from dashboard_helpers import BASE_URL, WORKFLOWS, csrf_of, head, served
from web_workflows import WebRefund, WebRestock

TOKEN = "s3cret-operator-token"


@pytest.fixture
def mesh(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh(workflows=WORKFLOWS)


@pytest.fixture
def client(mesh: SquidMesh) -> Iterator[TestClient]:
    with served(mesh, controls_token=TOKEN) as client:
        yield client


def waiting_refund(mesh: SquidMesh, order_id: str = "A-1") -> str:
    run_id = mesh.start(WebRefund, {"order_id": order_id}).run_id
    mesh.drain()
    return run_id


def press(
    client: TestClient, run_id: str, control: str, **fields: str
) -> tuple[int, str, str | None]:
    """POST the run page's ``control`` form as a person would; status, body, redirect."""
    csrf, key = csrf_of(client, run_id)
    form = {"csrf": csrf, "request_id": key, "actor": "ana@example.com", "token": TOKEN}
    form.update(fields)
    response = client.post(f"/runs/{run_id}/{control}", data=form)
    return response.status_code, response.text, response.headers.get("location")


# read-only by default


def test_a_dashboard_without_token_or_check_is_read_only(mesh: SquidMesh) -> None:
    run_id = waiting_refund(mesh)
    with served(mesh) as client:
        page = client.get(f"/runs/{run_id}").text
        before = head(mesh)
        client.cookies.set("squidmesh_csrf", "x")
        refused = client.post(
            f"/runs/{run_id}/approve",
            data={"actor": "ana", "csrf": "x", "request_id": "0" * 32, "token": "guess"},
        )

    assert 'id="controls"' not in page and "read-only" in page
    assert refused.status_code == 403
    assert '<strong class="code">controls_disabled</strong>' in refused.text
    assert head(mesh) == before
    assert mesh.inspect_run(run_id).status == "paused"


# approve, reject, resume, cancel


def test_approve_from_the_run_page_then_a_worker_completes_the_run(
    mesh: SquidMesh, client: TestClient
) -> None:
    run_id = waiting_refund(mesh)
    page = client.get(f"/runs/{run_id}").text
    assert 'id="control-approve"' in page and 'id="control-reject"' in page
    assert 'id="control-cancel"' in page and 'id="control-resume"' not in page
    assert 'name="token"' in page

    status, _, location = press(client, run_id, "approve", comment="receipt checked")

    assert status == 303
    assert location == f"{BASE_URL}/runs/{run_id}?done=approve"
    receipt = mesh.inspect_run(run_id, include_history=True).command_history[-1]
    assert (receipt.signal_type, receipt.actor, receipt.comment) == (
        "approve_run",
        "ana@example.com",
        "receipt checked",
    )
    assert 'id="done">approve: done.' in client.get(location.removeprefix(BASE_URL)).text
    mesh.drain()
    assert 'id="run-status">completed<' in client.get(f"/runs/{run_id}").text


def test_reject_takes_the_error_route(mesh: SquidMesh, client: TestClient) -> None:
    run_id = waiting_refund(mesh)

    status, _, _ = press(client, run_id, "reject", comment="no receipt")
    mesh.drain()

    snapshot = mesh.inspect_run(run_id, include_history=True)
    assert status == 303
    assert snapshot.status == "completed"
    assert [a.step for a in snapshot.applied_runnables][-1] == "declined"


def test_resume_continues_a_paused_run(mesh: SquidMesh, client: TestClient) -> None:
    run_id = mesh.start(WebRestock, {"order_id": "B-2"}).run_id
    mesh.drain()
    page = client.get(f"/runs/{run_id}").text
    assert 'id="control-resume"' in page and 'id="control-approve"' not in page

    status, _, _ = press(client, run_id, "resume")

    assert status == 303
    assert mesh.inspect_run(run_id).status == "completed"


def test_cancel_records_the_reason(mesh: SquidMesh, client: TestClient) -> None:
    run_id = waiting_refund(mesh)

    status, _, _ = press(client, run_id, "cancel", comment="customer withdrew")

    snapshot = mesh.inspect_run(run_id, include_history=True)
    assert status == 303
    assert snapshot.terminal_status == TerminalStatus.CANCELLED
    assert snapshot.command_history[-1].actor == "ana@example.com"
    page = client.get(f"/runs/{run_id}").text
    assert 'id="control-replay"' in page and 'id="control-cancel"' not in page


def test_pressing_the_same_form_twice_writes_once(mesh: SquidMesh, client: TestClient) -> None:
    run_id = waiting_refund(mesh)
    csrf, key = csrf_of(client, run_id)
    form = {"csrf": csrf, "request_id": key, "actor": "ana", "token": TOKEN}

    first = client.post(f"/runs/{run_id}/cancel", data=form)
    after_first = head(mesh)
    second = client.post(f"/runs/{run_id}/cancel", data=form)

    assert (first.status_code, second.status_code) == (303, 303)
    assert head(mesh) == after_first


# refusals


def test_unsafe_replay_is_refused_with_its_code_and_blocking_steps(
    mesh: SquidMesh, client: TestClient
) -> None:
    run_id = waiting_refund(mesh)
    mesh.approve(run_id, actor="ana")
    mesh.drain()  # pay, irreversible, completed
    before = head(mesh)

    status, text, _ = press(client, run_id, "replay", comment="again")

    assert status == 409
    assert 'Refused: <strong class="code">unsafe_replay</strong>' in text
    assert '<code class="blocking-step">pay</code>' in text
    assert 'value="again"' in text  # the form keeps what was typed
    assert head(mesh) == before


def test_replay_allowed_past_irreversible_steps_shows_the_new_run(
    mesh: SquidMesh, client: TestClient
) -> None:
    run_id = waiting_refund(mesh)
    mesh.approve(run_id, actor="ana")
    mesh.drain()

    status, _, location = press(client, run_id, "replay", allow_irreversible="yes")

    assert status == 303 and location is not None
    new_run = re.search(r"/runs/([0-9a-f-]+)\?done=replay", location)
    assert new_run is not None and new_run.group(1) != run_id
    assert mesh.inspect_run(new_run.group(1)).replayed_from_run_id == run_id
    source_page = client.get(f"/runs/{run_id}").text
    link = re.search(r'class="replay-link" href="[^"]*/runs/([0-9a-f-]+)"', source_page)
    assert link is not None and link.group(1) == new_run.group(1)


def test_a_control_the_run_cannot_take_is_refused_by_the_runtime(
    mesh: SquidMesh, client: TestClient
) -> None:
    run_id = mesh.start(WebRestock, {"order_id": "B-2"}).run_id
    mesh.drain()  # paused at a pause, not an approval
    before = head(mesh)

    status, text, _ = press(client, run_id, "approve")

    assert status == 409
    assert 'Refused: <strong class="code">manual_step_mismatch</strong>' in text
    assert head(mesh) == before


def test_a_control_needs_an_actor(mesh: SquidMesh, client: TestClient) -> None:
    run_id = waiting_refund(mesh)
    before = head(mesh)

    status, text, _ = press(client, run_id, "approve", actor="  ")

    assert status == 400
    assert "invalid actor" in text and head(mesh) == before


# access


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"token": "wrong"}, 401, "unauthorized"),
        ({"token": ""}, 401, "unauthorized"),
        ({"csrf": "forged"}, 403, "csrf_failed"),
        ({"csrf": ""}, 403, "csrf_failed"),
    ],
)
def test_a_wrong_token_or_csrf_token_writes_nothing(
    mesh: SquidMesh, client: TestClient, change: dict[str, str], status: int, code: str
) -> None:
    run_id = waiting_refund(mesh)
    before = head(mesh)

    got, text, _ = press(client, run_id, "approve", **change)

    assert got == status
    assert f'<strong class="code">{code}</strong>' in text
    assert TOKEN not in text
    assert head(mesh) == before


def test_a_post_from_another_site_is_refused(mesh: SquidMesh, client: TestClient) -> None:
    run_id = waiting_refund(mesh)
    csrf, key = csrf_of(client, run_id)

    response = client.post(
        f"/runs/{run_id}/approve",
        data={"csrf": csrf, "request_id": key, "actor": "ana", "token": TOKEN},
        headers={"Origin": "https://evil.example"},
    )

    assert response.status_code == 403 and "csrf_failed" in response.text
    assert mesh.inspect_run(run_id).status == "paused"


def test_a_script_may_send_the_token_as_a_bearer_header(
    mesh: SquidMesh, client: TestClient
) -> None:
    run_id = waiting_refund(mesh)
    csrf, key = csrf_of(client, run_id)

    response = client.post(
        f"/runs/{run_id}/approve",
        data={"csrf": csrf, "request_id": key, "actor": "bot"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    assert response.status_code == 303


def test_an_unknown_control_is_a_404(mesh: SquidMesh, client: TestClient) -> None:
    run_id = waiting_refund(mesh)

    status, text, _ = press(client, run_id, "delete")

    assert status == 404 and "unknown_control" in text


@pytest.mark.parametrize("allowed", [True, False])
def test_the_hosts_own_check_replaces_the_token(mesh: SquidMesh, allowed: bool) -> None:
    run_id = waiting_refund(mesh)
    seen: list[str] = []

    def authorize(request: Request) -> bool:
        seen.append(request.headers.get("x-user", ""))
        return allowed

    with served(mesh, authorize=authorize) as client:
        page = client.get(f"/runs/{run_id}").text
        csrf, key = csrf_of(client, run_id)
        response = client.post(
            f"/runs/{run_id}/approve",
            data={"csrf": csrf, "request_id": key, "actor": "ana"},
            headers={"X-User": "ana"},
        )

    assert 'id="controls"' in page and 'name="token"' not in page
    assert seen == ["ana"]
    assert response.status_code == (303 if allowed else 401)
    assert mesh.inspect_run(run_id).status == ("running" if allowed else "paused")
