"""Probes for a worker under a supervisor: HTTP health and readiness, a health file, metrics.

- ``/healthz`` answers 200 while the worker's loop comes round (`WorkerHealth.alive`), 503
  once it is stuck or stopped: a liveness probe restarts such a process.
- ``/readyz`` answers 200 while, in addition, its last access to the journal succeeded
  (`WorkerHealth.ready`): the database is reachable.
- ``/metrics`` serves the OpenTelemetry metrics in Prometheus' text format, through the
  OpenTelemetry Prometheus exporter (the ``otel`` extra).
- A health file is touched about every second while the worker is alive, for an ``exec``
  probe that checks its age; it is removed when the probes close.

Each server runs on its own daemon thread; `Probes.close` stops them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

from squidmesh_es.runtime._worker import Worker, WorkerHealth

__all__ = ["HEALTH_FILE_INTERVAL", "Probes", "serve_probes"]

logger = logging.getLogger("squidmesh_es.worker.probes")

HEALTH_FILE_INTERVAL: Final = 1.0
"""Seconds between touches of the health file while the worker is alive."""

Route = Callable[[], tuple[int, bytes, str]]
"""An answer: status, body, content type."""


class Probes:
    """The running probe servers and health-file thread of one worker."""

    def __init__(self) -> None:
        self.servers: dict[str, ThreadingHTTPServer] = {}
        """The servers by role (``health``, ``metrics``); one may serve both."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._health_file: Path | None = None

    def port(self, role: str) -> int:
        """The port the ``health`` or ``metrics`` server listens on (useful with port 0)."""
        return int(self.servers[role].server_address[1])

    def close(self) -> None:
        """Stop serving and remove the health file."""
        self._stop.set()
        for server in {id(s): s for s in self.servers.values()}.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        if self._health_file is not None:
            self._health_file.unlink(missing_ok=True)

    def _serve(self, host: str, port: int, routes: dict[str, Route]) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, port), _handler(routes))
        server.daemon_threads = True
        thread = threading.Thread(
            target=server.serve_forever, name=f"squidmesh-probes-{port}", daemon=True
        )
        thread.start()
        self._threads.append(thread)
        return server

    def _touch(self, worker: Worker, path: Path) -> None:
        self._health_file = path
        while True:
            if worker.health().alive:
                try:
                    path.touch()
                except OSError as exc:
                    logger.warning("health file %s not touched: %s", path, exc)
            if self._stop.wait(HEALTH_FILE_INTERVAL):
                return


def serve_probes(
    worker: Worker,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - probes are meant to be reached by the supervisor
    health_port: int | None = None,
    metrics_port: int | None = None,
    metrics: Route | None = None,
    health_file: Path | None = None,
) -> Probes:
    """Start the probes asked for; with the same port for health and metrics, one server.

    ``metrics`` renders the ``/metrics`` page (`prometheus_metrics`); it is required with
    ``metrics_port``.
    """
    probes = Probes()
    by_port: dict[int, dict[str, Route]] = {}
    if health_port is not None:
        by_port.setdefault(health_port, {}).update(
            {"/healthz": _probe(worker, "alive"), "/readyz": _probe(worker, "ready")}
        )
    if metrics_port is not None:
        assert metrics is not None, "metrics_port needs the metrics page"
        by_port.setdefault(metrics_port, {})["/metrics"] = metrics
    try:
        for port, routes in by_port.items():
            server = probes._serve(host, port, routes)
            if port == health_port:
                probes.servers["health"] = server
            if port == metrics_port:
                probes.servers["metrics"] = server
        if health_file is not None:
            thread = threading.Thread(
                target=probes._touch,
                args=(worker, health_file),
                name="squidmesh-health-file",
                daemon=True,
            )
            thread.start()
            probes._threads.append(thread)
    except BaseException:
        probes.close()
        raise
    return probes


def _probe(worker: Worker, field: str) -> Route:
    def answer() -> tuple[int, bytes, str]:
        health: WorkerHealth = worker.health()
        ok = health.alive if field == "alive" else health.ready
        body = {
            "status": "ok" if ok else "unavailable",
            "alive": health.alive,
            "ready": health.ready,
            "since_tick": round(health.since_tick, 3),
            "owner": worker.owner_id,
        }
        return (200 if ok else 503), json.dumps(body).encode(), "application/json"

    return answer


def _handler(routes: dict[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                status, body, content_type = 404, b"not found\n", "text/plain"
            else:
                try:
                    status, body, content_type = route()
                except Exception:  # noqa: BLE001 - a probe answers, whatever went wrong
                    logger.exception("probe %s failed", self.path)
                    status, body, content_type = 500, b"probe failed\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("probe request: " + format, *args)

    return Handler
