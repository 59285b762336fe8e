"""The dashboard in a real browser: filter runs, open a paused one, see its graph, approve it.

Also takes the screenshots docs/dashboard.md shows (``SQUIDMESH_WRITE_SCREENSHOTS=1``
writes them to docs/images/).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from squidmesh_es import SquidMesh
from squidmesh_es.web import create_app

from browser import chromium, full_page, navigate, screenshot_dir, serving
from dashboard_helpers import WORKFLOWS
from web_workflows import WebBackorder, WebDigest, WebRefund, WebRestock

TOKEN = "browser-test-token"


@pytest.fixture
def mesh(tmp_path: Path) -> SquidMesh:
    """A SQLite journal with runs in several states, on the system clock."""
    mesh = SquidMesh.open(f"sqlite:///{tmp_path / 'journal.db'}", workflows=WORKFLOWS)
    for n in range(3):
        mesh.start(WebRefund, {"order_id": f"A-{n}", "amount": 10 * (n + 1)})
    mesh.start(WebRestock, {"order_id": "B-1"})
    mesh.drain()
    done = mesh.start(WebRefund, {"order_id": "A-9"}).run_id
    mesh.drain()
    mesh.reject(done, actor="ana@example.com", comment="duplicate request")
    mesh.drain()
    mesh.start(WebBackorder, {"order_id": "C-1"}, queue="stock")
    mesh.drain(queue="stock")
    mesh.start(WebDigest, {"channel": "ops"})
    return mesh


def test_filter_open_a_paused_run_see_its_graph_approve_it_and_see_it_complete(
    mesh: SquidMesh, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    app = create_app(mesh, queues=["stock"], controls_token=TOKEN)
    try:
        with serving(app) as url, chromium(tmp_path) as browser:
            browser.get(url + "/")
            assert browser.title.startswith("Runs")
            assert len(browser.find_elements(By.CSS_SELECTOR, "tr.run-row")) == 7
            full_page(browser, shots / "dashboard-runs.png")

            # Filter: paused refunds only.
            Select(browser.find_element(By.NAME, "status")).select_by_value("paused")
            browser.find_element(By.NAME, "workflow").send_keys(WebRefund.name)
            navigate(browser, browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]"))
            rows = browser.find_elements(By.CSS_SELECTOR, "tr.run-row")
            assert [r.get_attribute("data-status") for r in rows] == ["paused"] * 3
            assert "status=paused" in browser.current_url

            # Open the oldest paused refund and look at its graph.
            navigate(browser, rows[-1].find_element(By.CSS_SELECTOR, "a.run-link"))
            assert browser.find_element(By.ID, "run-status").text == "paused"
            current = browser.find_element(By.CSS_SELECTOR, "svg.run-graph g.node.current")
            assert current.get_attribute("data-node") == "review"
            assert current.find_element(By.TAG_NAME, "rect").is_displayed()
            statuses = {
                n.get_attribute("data-node"): n.get_attribute("data-status")
                for n in browser.find_elements(By.CSS_SELECTOR, "svg.run-graph g.node")
            }
            assert statuses["check"] == "completed" and statuses["pay"] == "waiting"
            full_page(browser, shots / "dashboard-run-paused.png")

            # Approve it, as ana, with the operator token.
            form = browser.find_element(By.ID, "control-approve")
            form.find_element(By.NAME, "actor").send_keys("ana@example.com")
            form.find_element(By.NAME, "comment").send_keys("receipt checked")
            form.find_element(By.NAME, "token").send_keys(TOKEN)
            navigate(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
            assert browser.find_element(By.ID, "done").text == "approve: done."
            assert browser.find_element(By.ID, "run-status").text == "running"

            # A worker runs the payment; the page then shows the run completed.
            with app.state.dashboard.journal() as journal:
                journal.drain()
            browser.refresh()
            assert browser.find_element(By.ID, "run-status").text == "completed"
            node = browser.find_element(By.CSS_SELECTOR, 'svg.run-graph g[data-node="pay"]')
            assert node.get_attribute("data-status") == "completed"
            full_page(browser, shots / "dashboard-run-completed.png")

            # The unsafe replay is refused with its code and blocking step.
            form = browser.find_element(By.ID, "control-replay")
            form.find_element(By.NAME, "actor").send_keys("ana@example.com")
            form.find_element(By.NAME, "token").send_keys(TOKEN)
            navigate(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
            refusal = browser.find_element(By.ID, "refusal")
            assert "unsafe_replay" in refusal.text and "pay" in refusal.text
            full_page(browser, shots / "dashboard-run-refused.png")

            with app.state.dashboard.journal() as journal:
                journal.start(WebRefund, {"order_id": "A-10"})
                journal.start(WebRefund, {"order_id": "A-11"})
            navigate(browser, browser.find_element(By.LINK_TEXT, "Queues"))
            row = browser.find_element(By.CSS_SELECTOR, 'tr.queue-row[data-queue="default"]')
            assert row.find_element(By.CSS_SELECTOR, "td.visible").text == "2"
            row = browser.find_element(By.CSS_SELECTOR, 'tr.queue-row[data-queue="stock"]')
            assert row.find_element(By.CSS_SELECTOR, "td.scheduled").text == "1"
            full_page(browser, shots / "dashboard-queues.png")

            navigate(browser, browser.find_element(By.LINK_TEXT, "Schedules"))
            row = browser.find_element(By.CSS_SELECTOR, "tr.schedule-row")
            assert row.get_attribute("data-trigger") == "WebDigest.nightly"
            assert len(row.find_elements(By.CSS_SELECTOR, "td.next div")) == 3
            full_page(browser, shots / "dashboard-schedules.png")
    finally:
        app.state.dashboard.close()
        mesh.close()


def test_auto_refresh_reloads_the_page_once_switched_on(mesh: SquidMesh, tmp_path: Path) -> None:
    app = create_app(mesh, refresh=timedelta(seconds=1))
    try:
        with serving(app) as url, chromium(tmp_path) as browser:
            browser.get(url + "/queues")
            browser.execute_script("document.body.dataset.marker = 'before'")
            browser.find_element(By.ID, "auto-refresh").click()
            browser.find_element(By.TAG_NAME, "h1").click()  # leave the checkbox
            deadline = time.monotonic() + 10
            reloaded = "return document.readyState === 'complete' && !document.body.dataset.marker"
            while not browser.execute_script(reloaded):
                assert time.monotonic() < deadline, "the page never reloaded"
                time.sleep(0.1)
            assert browser.find_element(By.ID, "auto-refresh").is_selected()  # remembered
    finally:
        app.state.dashboard.close()
        mesh.close()
