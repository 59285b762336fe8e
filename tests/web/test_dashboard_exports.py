"""The web package's public names are a contract, like every other package's."""

from __future__ import annotations

import squidmesh_es.web


def test_web_exports() -> None:
    assert set(squidmesh_es.web.__all__) == {
        "Authorize",
        "ControlAccess",
        "Dashboard",
        "QueueStats",
        "create_app",
        "queue_stats",
    }
    assert all(hasattr(squidmesh_es.web, name) for name in squidmesh_es.web.__all__)
