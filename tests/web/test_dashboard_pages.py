"""The dashboard's pages over HTTP, on every backend: what each shows, filters and pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from squidmesh_es import SquidMesh
from squidmesh_es.runtime._execution import claim_attempts
from squidmesh_es.testing import ManualClock
from squidmesh_es.web import create_app

from conftest import T0, OpenMesh
from dashboard_helpers import BASE_URL, WORKFLOWS, run_ids, served
from web_workflows import WebBackorder, WebRefund, WebRestock


@pytest.fixture
def mesh(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh(workflows=WORKFLOWS)


@pytest.fixture
def client(mesh: SquidMesh) -> Iterator[TestClient]:
    with served(mesh) as client:
        yield client


def start_refunds(mesh: SquidMesh, clock: ManualClock, count: int) -> list[str]:
    """``count`` refunds a second apart, paused at approval; newest last."""
    ids = []
    for n in range(count):
        ids.append(mesh.start(WebRefund, {"order_id": f"A-{n}"}).run_id)
        clock.advance(timedelta(seconds=1))
    mesh.drain()
    return ids


# runs


def test_runs_page_lists_newest_first_with_status_and_links(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    refunds = start_refunds(mesh, clock, 2)
    restock = mesh.start(WebRestock, {"order_id": "B-1"}, queue="returns").run_id

    page = client.get("/")

    assert page.status_code == 200
    assert run_ids(page.text) == [restock, *reversed(refunds)]
    assert f'href="{BASE_URL}/runs/{refunds[0]}"' in page.text
    assert 'data-status="paused"' in page.text and 'data-status="running"' in page.text
    assert "read-only" in page.text


def test_runs_page_filters_by_status_workflow_queue_trigger_index_and_key(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    refunds = start_refunds(mesh, clock, 2)
    restock = mesh.start(WebRestock, {"order_id": "B-1"}, queue="returns").run_id
    keyed = mesh.start(WebRefund, {"order_id": "K-1"}, idempotency_key="order K-1").run_id

    def listed(**params: str) -> list[str]:
        page = client.get("/", params=params)
        assert page.status_code == 200, page.text
        return run_ids(page.text)

    assert listed(status="paused") == list(reversed(refunds))
    assert listed(workflow=WebRestock.name) == [restock]
    assert listed(queue="returns") == [restock]
    assert listed(trigger="restock") == [restock]
    assert listed(index="order_id=A-1") == [refunds[1]]
    assert listed(index="order_id=A-1, order_id=A-0") == [refunds[0]]  # the last one counts
    assert listed(idempotency_key="order K-1") == [keyed]
    assert listed(status="completed") == []


def test_runs_page_filters_by_start_time(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    refunds = start_refunds(mesh, clock, 4)  # started at T0, +1s, +2s, +3s

    def between(since: str = "", until: str = "") -> list[str]:
        return run_ids(client.get("/", params={"since": since, "until": until}).text)

    at = [(T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S") for n in range(5)]
    assert between(since=at[2]) == [refunds[3], refunds[2]]
    assert between(until=at[2]) == [refunds[1], refunds[0]]  # the end is excluded
    assert between(since=at[1], until=at[3]) == [refunds[2], refunds[1]]
    assert between(since=at[1] + "+00:00") == [refunds[3], refunds[2], refunds[1]]


def test_runs_page_pages_by_cursor_and_links_back_to_the_first(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    refunds = list(reversed(start_refunds(mesh, clock, 5)))

    first = client.get("/", params={"limit": "2", "status": "paused"})
    assert run_ids(first.text) == refunds[:2]
    assert 'id="first-page"' not in first.text
    second = client.get(_link(first.text, "next-page"))
    assert run_ids(second.text) == refunds[2:4]
    assert 'id="first-page"' in second.text
    third = client.get(_link(second.text, "next-page"))
    assert run_ids(third.text) == refunds[4:]
    assert 'id="next-page"' not in third.text
    back = client.get(_link(third.text, "first-page"))
    assert run_ids(back.text) == refunds[:2]


def test_a_page_bounded_by_the_start_of_the_range_has_no_next_link(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    refunds = list(reversed(start_refunds(mesh, clock, 4)))
    since = (T0 + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")

    page = client.get("/", params={"limit": "3", "since": since})

    assert run_ids(page.text) == refunds[:2]
    assert 'id="next-page"' not in page.text


@pytest.mark.parametrize(
    ("params", "option"),
    [
        ({"status": "sleeping"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"index": "order_id"}, "index"),
        ({"after": "not-a-cursor"}, "after"),
    ],
)
def test_bad_filters_are_refused_with_their_code_and_nothing_listed(
    mesh: SquidMesh, client: TestClient, clock: ManualClock, params: dict[str, str], option: str
) -> None:
    start_refunds(mesh, clock, 1)

    page = client.get("/", params=params)

    assert page.status_code == 400
    assert '<strong class="code">invalid_option</strong>' in page.text
    assert f"invalid {option}" in page.text
    assert run_ids(page.text) == []


# one run


def test_run_page_shows_status_explanation_graph_and_timeline(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    [run_id] = start_refunds(mesh, clock, 1)

    page = client.get(f"/runs/{run_id}")

    assert page.status_code == 200
    text = page.text
    assert 'id="run-status">paused<' in text
    explanation = mesh.explain_run(run_id)
    assert explanation.summary in text
    assert '<code class="next-action">resolve_manual_step</code>' in text
    # The graph: every step a node coloured by status, the approval marked as current.
    assert '<svg class="run-graph"' in text
    assert _node(text, "check") == "completed"
    assert _node(text, "review") == "paused"
    assert _node(text, "pay") == "waiting"
    assert 'class="node status-paused current" data-node="review"' in text
    assert "edge-selected" in text and "edge-pending" in text
    # The timeline: the attempt's claim (its owner is claim data, for auditors), its outcome.
    assert "<td>claimed</td><td>check #1</td><td>owner hidden</td>" in text
    assert "<td>ok</td><td>check #1</td>" in text
    assert "<td>applied: ok</td><td>check #1</td>" in text


def test_run_page_redacts_input_context_and_results_to_the_operator_scope(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    [run_id] = start_refunds(mesh, clock, 1)

    text = client.get(f"/runs/{run_id}").text

    assert "scope: operator" in text
    for secret in ("tok-secret-1", "4111-1111", "A-0"):
        assert secret not in text
    assert text.count("Hidden from the operator scope.") == 2  # input and context
    assert "Receipts are hidden from the operator scope." in text


def test_an_auditor_dashboard_shows_values_but_never_secrets_in_receipts(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    [run_id] = start_refunds(mesh, clock, 1)
    mesh.approve(run_id, actor="ana", comment="ok", metadata={"api_token": "tok-2", "t": "T-9"})

    with served(mesh, scope="auditor") as client:
        text = client.get(f"/runs/{run_id}").text

    assert "scope: auditor" in text
    assert "A-0" in text  # the input, shown whole to an auditor
    assert "T-9" in text and "tok-2" not in text  # receipt metadata is redacted when written
    assert re.search(r"<td>approve_run</td><td>ana</td><td>ok</td>", text)
    lease_until = (T0 + timedelta(seconds=301)).strftime("%Y-%m-%d %H:%M:%SZ")  # drained at +1s
    assert f"<td>claimed</td><td>check #1</td><td>by drain, lease until {lease_until}" in text


def test_run_page_links_lineage_to_the_replayed_source(
    mesh: SquidMesh, client: TestClient, clock: ManualClock
) -> None:
    [run_id] = start_refunds(mesh, clock, 1)
    mesh.reject(run_id, actor="ana")
    mesh.drain()
    replay = mesh.replay(run_id, actor="ana").run_id

    text = client.get(f"/runs/{replay}").text

    assert f'class="replay-source-link" href="{BASE_URL}/runs/{run_id}"' in text


@pytest.mark.parametrize("run_id", ["3f0e6b5e-0000-4000-8000-000000000000", "not-a-run"])
def test_an_unknown_run_is_a_404_with_the_code(client: TestClient, run_id: str) -> None:
    page = client.get(f"/runs/{run_id}")

    assert page.status_code == 404
    assert re.search(r'<strong class="code">(not_found|invalid_run_id)</strong>', page.text)


# queues and schedules


def test_queues_page_counts_visible_scheduled_claimed_and_expired_attempts(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    for n in range(4):
        mesh.start(WebRefund, {"order_id": f"A-{n}"})
    clock.advance(timedelta(seconds=5))
    claim_attempts(
        mesh, "default", owner_id="w-long", limit=1, lease_for=timedelta(minutes=5), now=clock.now()
    )
    claim_attempts(
        mesh,
        "default",
        owner_id="w-short",
        limit=1,
        lease_for=timedelta(seconds=10),
        now=clock.now(),
    )
    mesh.start(WebBackorder, {"order_id": "C-1"}, queue="stock")
    mesh.drain(queue="stock")  # the step defers itself by an hour
    clock.advance(timedelta(seconds=30))

    with served(mesh, queues=["stock"]) as client:
        text = client.get("/queues").text

    assert _cells(text, "default") == {
        "depth": "4",
        "visible": "2",
        "scheduled": "0",
        "in-flight": "1",
        "expired": "1",
        "unapplied": "0",
    }
    assert _cells(text, "stock") == {
        "depth": "1",
        "visible": "0",
        "scheduled": "1",
        "in-flight": "0",
        "expired": "0",
        "unapplied": "0",
    }
    assert re.search(r'class="oldest">35s waiting<', text)


def test_schedules_page_lists_cron_triggers_with_their_next_fire_times(
    mesh: SquidMesh, client: TestClient
) -> None:
    text = client.get("/schedules").text

    row = text[text.index('data-trigger="WebDigest.nightly"') :]
    assert "<code>0 21 * * *</code>" in row and "Europe/Berlin" in row
    # 21:00 in Berlin is 20:00 UTC in March, before the clocks change on the 29th.
    assert "<div>2026-03-01 20:00:00Z</div><div>2026-03-02 20:00:00Z</div>" in row


# hosting


def test_the_app_mounts_under_a_prefix_in_a_host_app(mesh: SquidMesh, clock: ManualClock) -> None:
    [run_id] = start_refunds(mesh, clock, 1)
    app = create_app(mesh)
    host = Starlette(routes=[Mount("/ops", app=app)])
    try:
        with TestClient(host, base_url=BASE_URL) as client:
            runs = client.get("/ops/")
            assert f'href="{BASE_URL}/ops/runs/{run_id}"' in runs.text
            assert f'href="{BASE_URL}/ops/static/dashboard.css"' in runs.text
            assert client.get("/ops/static/dashboard.js").status_code == 200
            assert client.get(f"/ops/runs/{run_id}").status_code == 200
    finally:
        app.state.dashboard.close()


def _link(html: str, element_id: str) -> str:
    found = re.search(rf'<a href="([^"]+)" id="{element_id}">', html)
    assert found is not None, f"no #{element_id} link"
    return found.group(1).replace("&amp;", "&").removeprefix(BASE_URL)


def _node(html: str, step: str) -> str:
    found = re.search(rf'data-node="{step}" data-status="([a-z]+)"', html)
    assert found is not None, f"no node {step}"
    return found.group(1)


def _cells(html: str, queue: str) -> dict[str, str]:
    row = html[html.index(f'data-queue="{queue}"') :]
    row = row[: row.index("</tr>")]
    return dict(
        (name, value) for name, value in re.findall(r'class="n ([a-z-]+)[^"]*">(\d+)<', row)
    )


def test_without_the_workflows_code_the_graph_has_nodes_but_no_edges(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with SquidMesh.open(url, workflows=WORKFLOWS) as writer:
        run_id = writer.start(WebRefund, {"order_id": "A-1"}).run_id
        writer.drain()

    with SquidMesh.open(url) as reader, served(reader) as client:
        page = client.get(f"/runs/{run_id}")

    assert page.status_code == 200
    assert _node(page.text, "check") == "completed"
    assert 'class="edge' not in page.text
