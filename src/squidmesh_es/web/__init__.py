"""The operator's web dashboard: an ASGI app over the public read models and controls.

Needs the ``dashboard`` extra (``pip install 'squidmesh-es[dashboard]'``). Serve it with
``squidmesh dashboard`` or mount ``create_app(mesh)`` in a host's own ASGI app.
"""

from squidmesh_es.web._dashboard import Dashboard, create_app
from squidmesh_es.web._queues import QueueStats, queue_stats
from squidmesh_es.web._security import Authorize, ControlAccess

__all__ = ["Authorize", "ControlAccess", "Dashboard", "QueueStats", "create_app", "queue_stats"]
