"""What the dashboard tests share: the app under a test client, and reading its pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient

from squidmesh_es import SquidMesh
from squidmesh_es.web import create_app

from web_workflows import WebBackorder, WebDigest, WebRefund, WebRestock

WORKFLOWS = [WebRefund, WebRestock, WebDigest, WebBackorder]
BASE_URL = "http://127.0.0.1"


@contextmanager
def served(mesh: SquidMesh, **options: Any) -> Iterator[TestClient]:
    """A test client of ``create_app(mesh, **options)``; the dashboard is closed afterwards."""
    app = create_app(mesh, **options)
    try:
        with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
            yield client
    finally:
        app.state.dashboard.close()


def run_ids(html: str) -> list[str]:
    """Run ids of the runs table, top to bottom."""
    return re.findall(r'data-run-id="([^"]+)"', html)


def csrf_of(client: TestClient, run_id: str) -> tuple[str, str]:
    """The CSRF token and form key the run page put in its control forms."""
    page = client.get(f"/runs/{run_id}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    key = re.search(r'name="request_id" value="([^"]+)"', page)
    assert csrf is not None and key is not None, "the run page shows no control form"
    return csrf.group(1), key.group(1)


def head(mesh: SquidMesh) -> int:
    """The journal's last notification id: unchanged means nothing was written."""
    return mesh.recorder.max_notification_id() or 0
