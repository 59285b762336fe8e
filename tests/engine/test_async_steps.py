"""Async steps on the worker's own event loop: overlap, clients kept, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

import pytest

from squidmesh_es import LoopLocal, SquidMesh
from squidmesh_es.runtime import SystemClock
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)

from conftest import OpenMesh

N = 8
"""Async steps that must run at once, on a worker of this concurrency."""


class FakeClient:
    """Counts how often it is made and closed, like an ``httpx.AsyncClient`` would be."""

    def __init__(self) -> None:
        RECORD.clients_made += 1

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        RECORD.clients_closed += 1


@dataclass
class Record:
    """What the steps of one test saw, shared with the test thread."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    arrived: int = 0
    all_arrived: asyncio.Event | None = None
    clients_made: int = 0
    clients_closed: int = 0
    clients_seen: list[int] = field(default_factory=list)
    clients: LoopLocal[FakeClient] = field(default_factory=lambda: LoopLocal(FakeClient))
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


RECORD = Record()


@pytest.fixture(autouse=True)
def _fresh_record() -> None:
    global RECORD
    RECORD = Record()


class Rendezvous(Step):
    """Waits until all N steps run at once (or times out), then sleeps 0.2 s."""

    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        began = time.monotonic()
        RECORD.threads.add(threading.current_thread().name)
        if RECORD.all_arrived is None:
            RECORD.all_arrived = asyncio.Event()
        RECORD.arrived += 1
        if RECORD.arrived == N:
            RECORD.all_arrived.set()
        async with asyncio.timeout(20):  # a deadlock fails the step, not the test run
            await RECORD.all_arrived.wait()
        await asyncio.sleep(0.2)
        with RECORD.lock:
            RECORD.spans.append((began, time.monotonic()))
        return Ok({"napped": True})


class UsesClient(Step):
    """Asks for the loop's client; the first attempt retries, the second succeeds."""

    async def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        client = await RECORD.clients.get()
        RECORD.clients_seen.append(id(client))
        if ctx.attempt == 1:
            return Retry({"code": "try_again"})
        return Ok({"attempts": ctx.attempt})


class TooSlow(Step):
    """Bounds its own call with ``asyncio.timeout``, as an async step should."""

    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
        return Ok()


class Hangs(Step):
    """Waits for a long time, recording its cancellation."""

    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RECORD.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            RECORD.cancelled.set()
            raise
        return Ok()


class Leaks(Step):
    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        await asyncio.sleep(0)
        raise ValueError("gateway refused key sk_live_abcdefghijklmnop")


class Concurrent(Workflow):
    triggers = [manual("go")]
    nap = step(Rendezvous)
    transitions = [transition(nap, to=COMPLETE)]


class ReusesClient(Workflow):
    triggers = [manual("go")]
    call = step(UsesClient, retry=RetryPolicy(max_attempts=2))
    transitions = [transition(call, to=COMPLETE)]


class TimesOut(Workflow):
    triggers = [manual("go")]
    slow = step(TooSlow)
    transitions = [transition(slow, to=COMPLETE)]


class HangsForever(Workflow):
    triggers = [manual("go")]
    hang = step(Hangs)
    transitions = [transition(hang, to=COMPLETE)]


class LeaksASecret(Workflow):
    triggers = [manual("go")]
    leak = step(Leaks)
    transitions = [transition(leak, to=COMPLETE)]


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def terminal(mesh: SquidMesh, run_ids: list[str]) -> bool:
    return all(mesh.get_run(r).is_terminal for r in run_ids)


@pytest.fixture
def live(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh(clock=SystemClock())


def test_async_steps_of_one_worker_run_at_once_on_one_loop_thread(live: SquidMesh) -> None:
    run_ids = [str(live.start(Concurrent).run_id) for _ in range(N)]

    with live.worker(concurrency=N, owner_id="async") as worker:
        wait_until(lambda: terminal(live, run_ids))

    assert {live.get_run(r).terminal_status for r in run_ids} == {"completed"}
    assert len(RECORD.spans) == N
    assert max(began for began, _ in RECORD.spans) < min(ended for _, ended in RECORD.spans)
    assert RECORD.threads == {"squidmesh-steps-async"}  # the worker's loop, not pool threads
    assert worker.stats.executed == N


def test_a_loop_local_client_is_kept_across_attempts_and_closed_with_the_worker(
    live: SquidMesh,
) -> None:
    run_id = str(live.start(ReusesClient).run_id)

    with live.worker(concurrency=2, owner_id="reuse"):
        wait_until(lambda: terminal(live, [run_id]))
        assert RECORD.clients_closed == 0

    assert live.get_run(run_id).terminal_status == "completed"
    assert len(RECORD.clients_seen) == 2 and len(set(RECORD.clients_seen)) == 1
    assert (RECORD.clients_made, RECORD.clients_closed) == (1, 1)


def test_drain_keeps_one_loop_across_attempts_until_the_runtime_closes(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh()
    run_id = mesh.start(ReusesClient).run_id

    assert mesh.drain() == 2
    assert mesh.get_run(run_id).terminal_status == "completed"
    assert len(set(RECORD.clients_seen)) == 1 and RECORD.clients_made == 1
    assert RECORD.clients_closed == 0

    mesh.close()

    assert RECORD.clients_closed == 1


def test_a_step_that_times_out_fails_with_a_timeout_and_the_loop_goes_on(
    live: SquidMesh,
) -> None:
    slow = str(live.start(TimesOut).run_id)
    fine = str(live.start(ReusesClient).run_id)

    with live.worker(concurrency=2, owner_id="timeouts"):
        wait_until(lambda: terminal(live, [slow, fine]))

    run = live.get_run(slow)
    assert run.terminal_status == "failed"
    assert run.error is not None
    assert run.error["reason"]["reason"] == {"type": "TimeoutError", "message": ""}
    assert live.get_run(fine).terminal_status == "completed"


def test_cancelling_a_run_cancels_its_async_step_at_the_next_heartbeat(
    live: SquidMesh,
) -> None:
    run_id = live.start(HangsForever).run_id
    worker = live.worker(
        concurrency=1,
        owner_id="cancels",
        lease_for=timedelta(seconds=0.6),
        heartbeat_interval=timedelta(seconds=0.1),
    ).start()
    try:
        assert RECORD.started.wait(10)
        live.cancel(run_id, actor="test")

        assert RECORD.cancelled.wait(10)
    finally:
        worker.stop(10)

    assert not worker.running
    assert live.get_run(run_id).terminal_status == "cancelled"


def test_an_async_exception_is_a_retryable_failure_with_its_secret_redacted(
    live: SquidMesh,
) -> None:
    run_id = str(live.start(LeaksASecret).run_id)

    with live.worker(concurrency=1, owner_id="leaks"):
        wait_until(lambda: terminal(live, [run_id]))

    run = live.get_run(run_id)
    assert run.error is not None
    reason = run.error["reason"]
    assert reason["code"] == "step_raised"
    assert reason["reason"]["type"] == "ValueError"
    assert "sk_live_abcdefghijklmnop" not in str(run.error)
    assert reason["reason"]["message"].startswith("gateway refused key ")
