"""I/O-bound steps: a sync httpx step on worker threads against an async one on the worker's loop.

Each run has one step that calls a local HTTP stub answering after ``--latency`` (50 ms by
default). The stub runs in a child process (an asyncio server with keep-alive), so it does
not compete with the worker for the GIL. The same runs are executed twice on a fresh
journal per mode:

- ``threads``: ``def run`` with one ``httpx.Client`` per worker thread;
- ``async``: ``async def run`` with one ``httpx.AsyncClient`` per loop (`LoopLocal`);
- ``streams``: ``async def run`` with a small keep-alive pool of asyncio streams per loop,
  to show the worker's loop without httpx's own cost: ``httpx.AsyncClient`` spends far more
  CPU per request than ``httpx.Client`` as concurrency grows (encode/httpx#3215).

For each concurrency it prints steps/s (wall time from the worker's start to the last
outcome settled), CPU seconds of this process per 1,000 steps, the peak number of threads,
and the async/threads ratio of steps/s. Timings are noisy on a shared machine; the CPU
column is the steadier one.

    python benchmarks/bench_io_steps.py                      # memory, 1,000 runs
    python benchmarks/bench_io_steps.py --runs 2000 --concurrency 16,64,256 --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import httpx

from squidmesh_es import LoopLocal, Ok, SquidMesh, Step, StepContext, Workflow
from squidmesh_es.workflow import COMPLETE, JSONObject, manual, step, transition

# -- the stub -----------------------------------------------------------------------------


async def _serve(port: int, latency: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(latency)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def start_stub(latency: float) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stub = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stub.stdout is not None
    if stub.stdout.readline().strip() != "ready":
        raise SystemExit("the HTTP stub did not start")
    return stub, f"http://127.0.0.1:{port}/"


# -- the workload -------------------------------------------------------------------------

STUB_URL = ""
_sync_clients = threading.local()
_async_clients = LoopLocal(lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=None)))


class SyncCall(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        client = getattr(_sync_clients, "client", None)
        if client is None:
            client = _sync_clients.client = httpx.Client()
        return Ok({"status": client.get(STUB_URL).status_code})


class AsyncCall(Step):
    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        client = await _async_clients.get()
        return Ok({"status": (await client.get(STUB_URL)).status_code})


class StreamPool:
    """Keep-alive HTTP/1.1 connections to the stub, reused by every step on one loop."""

    def __init__(self) -> None:
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> StreamPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self.idle:
            writer.close()

    async def get(self, url: str) -> int:
        host, port = httpx.URL(url).host, httpx.URL(url).port
        reader, writer = self.idle.pop() if self.idle else await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: stub\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        self.idle.append((reader, writer))
        return int(head.split()[1])


_stream_pools = LoopLocal(StreamPool)


class StreamCall(Step):
    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        pool = await _stream_pools.get()
        return Ok({"status": await pool.get(STUB_URL)})


class SyncIO(Workflow):
    triggers = [manual("go")]
    call = step(SyncCall)
    transitions = [transition(call, to=COMPLETE)]


class AsyncIO(Workflow):
    triggers = [manual("go")]
    call = step(AsyncCall)
    transitions = [transition(call, to=COMPLETE)]


class StreamsIO(Workflow):
    triggers = [manual("go")]
    call = step(StreamCall)
    transitions = [transition(call, to=COMPLETE)]


@dataclass
class Figures:
    steps_per_s: float
    cpu_ms_per_step: float
    peak_threads: int


def measure(url: str, workflow: type[Workflow], runs: int, concurrency: int) -> Figures:
    with SquidMesh.open(url, workflows=[workflow]) as mesh:
        mesh.start_many(workflow, [{} for _ in range(runs)])
        cpu, began = time.process_time(), time.monotonic()
        peak = threading.active_count()
        worker = mesh.worker(concurrency=concurrency, owner_id=f"bench-{workflow.__name__}")
        with worker:
            while worker.stats.executed + worker.stats.refused < runs:
                peak = max(peak, threading.active_count())
                time.sleep(0.01)
            elapsed = time.monotonic() - began
        cpu = time.process_time() - cpu
        failed = mesh.list_runs(status="failed", limit=1)
        if worker.stats.refused or failed:
            raise SystemExit(f"{workflow.__name__}: refused or failed steps; not a fair run")
    return Figures(runs / elapsed, cpu / runs * 1000, peak)


MODES: tuple[tuple[str, type[Workflow]], ...] = (
    ("threads", SyncIO),
    ("async", AsyncIO),
    ("streams", StreamsIO),
)


def journal_url(backend: str, directory: str, name: str) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{os.path.join(directory, name)}.db"
    raise SystemExit(f"unknown backend {backend!r} (memory or sqlite)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument("--latency", type=float, default=0.05, help="stub latency, seconds")
    parser.add_argument("--backend", default="memory", help="memory or sqlite")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.latency))
        return
    global STUB_URL
    stub, STUB_URL = start_stub(args.latency)
    try:
        print(
            f"{args.runs} one-step runs, each one GET with {args.latency * 1000:.0f} ms of "
            f"latency, backend {args.backend}, {os.cpu_count()} cores"
        )
        print(
            f"{'concurrency':>11} {'mode':>8} {'steps/s':>8} {'CPU ms/step':>12} "
            f"{'threads':>8} {'x threads':>10}"
        )
        with tempfile.TemporaryDirectory() as directory:
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                figures = {}
                for mode, workflow in MODES:
                    url = journal_url(args.backend, directory, f"{mode}-{concurrency}")
                    figures[mode] = measure(url, workflow, args.runs, concurrency)
                for mode, f in figures.items():
                    ratio = (
                        f"{f.steps_per_s / figures['threads'].steps_per_s:.2f}x"
                        if mode != "threads"
                        else ""
                    )
                    print(
                        f"{concurrency:>11} {mode:>8} {f.steps_per_s:>8.0f} "
                        f"{f.cpu_ms_per_step:>12.2f} {f.peak_threads:>8} {ratio:>10}"
                    )
    finally:
        stub.terminate()
        stub.wait()


if __name__ == "__main__":
    main()
