"""The worker: runs attempts in threads while one coordinator does every journal write.

The coordinator batches: each commit settles every attempt that finished since the last one
and claims as many new attempts as there are free threads. With one step per thread in
flight, that is one commit per step instead of two, and fewer still under load, while every
claim and completion keeps its own fence.

Stopping is graceful: no new claims, the steps in hand finish and are settled, then the
threads end. `shutdown` bounds that by a grace period and releases the claims of steps still
running after it, so other workers take them over at once instead of after their leases.

Async steps (``async def run``) run on the worker's own event loop (`StepLoop`), one per
worker on a thread of its own: a pool thread prepares the attempt, hands the coroutine to
the loop and is free again, so ``concurrency`` async steps wait on I/O at once on far fewer
threads, and a client kept per loop (`LoopLocal`) serves every attempt. An async step whose
claim the journal no longer honours (taken over, released, its run ended) is cancelled at
the next heartbeat: its outcome would be refused. The loop closes when the worker stops.

A queue may be split into partitions (`SquidMesh.queue_partitions_of`): the worker claims
from all of them, first from the partitions its rank among the live workers gives it (the
``k`` with ``k % live == rank``, taking turns), then from the others, so that worker
processes mostly claim and settle on different aggregates instead of conflicting on one.
It reads its rank again every `LAYOUT_REFRESH`; the partition counts on every commit, from
what the runtime last read (at most a second old).

Leases are short (`DEFAULT_LEASE`) and the coordinator keeps them alive: every heartbeat
interval it extends the leases of all the claims in hand, one commit per queue, so a step may
run for hours while a crashed worker's steps come back within one lease. The worker records
its presence in the journal's `WorkerRegistry` when it starts, about every
`PRESENCE_INTERVAL` while it runs, and when it stops.
"""

from __future__ import annotations

import functools
import logging
import os
import queue as queue_module
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence, Set
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from squidmesh_es.domain import PRESENCE_INTERVAL, DispatchOrder
from squidmesh_es.errors import InvalidArgument, SquidMeshError
from squidmesh_es.runtime._execution import (
    DEFAULT_LEASE,
    Claim,
    Finished,
    automatic_heartbeat,
    check_heartbeat,
    check_lease,
    extend_leases,
    prepare_claimed,
    return_claims,
    settle_partitions,
    start_claimed,
)
from squidmesh_es.runtime._presence import load_registry, record_presence, worker_rank
from squidmesh_es.runtime._step_log import report_step_outcomes
from squidmesh_es.runtime._step_loop import Running, StepLoop
from squidmesh_es.runtime._telemetry import claimed, queue_seen, queues_left
from squidmesh_es.workflow import StepOutcome

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["DEFAULT_BATCH_WINDOW", "LIVENESS_WINDOW", "Worker", "WorkerHealth", "WorkerStats"]

logger = logging.getLogger("squidmesh_es.worker")

LAYOUT_REFRESH = 5.0
"""Seconds between two readings of the live workers (for this worker's rank)."""


DEFAULT_BATCH_WINDOW = timedelta(milliseconds=2)
"""How long a finished outcome waits for the steps still running, to share their commit.

A commit on SQLite or Postgres costs a few milliseconds whatever it holds; 2 ms took a busy
worker from 0.25 to 0.14 commits per step on SQLite for at most 2 ms more latency
(docs/performance.md)."""

PREFETCH_BELOW = timedelta(milliseconds=50)
"""When each of the last `PREFETCH_AFTER` steps ran shorter than this, steps are claimed
ahead, up to the worker's concurrency: one long step among them turns it off."""

PREFETCH_AFTER = 32

CLAIM_AHEAD_WAIT = timedelta(seconds=1)
"""A claim taken ahead that no thread has started after this long is given back.

Claims are taken ahead because steps were short; when one turns out long and holds the
threads, the claims behind it go back to the queue (`ClaimsReturned`) for a free worker
instead of waiting for it. When the worker stops, they go back at once."""

MAX_BATCH_WINDOW = timedelta(seconds=1)
"""Longest batch window: stopping a worker may wait this long for its last commit."""


LIVENESS_WINDOW = timedelta(seconds=60)
"""A coordinator whose loop has not come round for this long is stuck (`WorkerHealth`).

An idle loop comes round at least every second; a busy one after each commit."""


@dataclass(frozen=True)
class WorkerHealth:
    """What a liveness and a readiness probe ask of a worker."""

    alive: bool
    """The coordinator runs and its loop came round within `LIVENESS_WINDOW`."""
    ready: bool
    """Alive, and its last access to the journal succeeded (the database is reachable)."""
    since_tick: float
    """Seconds since the loop last came round."""


@dataclass
class WorkerStats:
    """Counters of one worker, for logs and benchmarks."""

    executed: int = 0
    refused: int = 0
    commits: int = 0


class Worker:
    """Pulls visible attempts from ``queues`` and runs up to ``concurrency`` at once.

    Plain steps run on a pool of up to ``concurrency`` threads, async steps on the worker's
    own event loop.
    """

    def __init__(
        self,
        mesh: SquidMesh,
        *,
        queues: Sequence[str],
        concurrency: int = 1,
        owner_id: str | None = None,
        lease_for: timedelta = DEFAULT_LEASE,
        heartbeat_interval: timedelta | None = None,
        idle_backoff: tuple[timedelta, timedelta] = (
            timedelta(milliseconds=20),
            timedelta(seconds=1),
        ),
        batch_window: timedelta = DEFAULT_BATCH_WINDOW,
    ) -> None:
        """Configure the worker; nothing runs until `start`.

        Without ``heartbeat_interval`` the worker beats every third of ``lease_for``
        (`automatic_heartbeat`). When a step finishes while others still run, the worker
        waits up to ``batch_window`` for them so that one commit settles them all
        (``timedelta(0)``: commit each outcome at once).

        Raises:
            InvalidArgument: no queue, concurrency below 1, a bad lease or heartbeat, or
                a batch window outside 0 to `MAX_BATCH_WINDOW`.
        """
        if not queues:
            raise InvalidArgument("queues", "give at least one queue")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgument("concurrency", "must be a positive integer")
        check_lease(lease_for)
        check_heartbeat(heartbeat_interval, lease_for)
        low, high = idle_backoff
        if low <= timedelta(0) or high < low:
            raise InvalidArgument("idle_backoff", "needs 0 < minimum <= maximum")
        if not isinstance(batch_window, timedelta) or not (
            timedelta(0) <= batch_window <= MAX_BATCH_WINDOW
        ):
            raise InvalidArgument("batch_window", "must be a duration from 0 to 1 s")
        self.mesh = mesh
        self.queues = list(queues)
        self.concurrency = concurrency
        self.owner_id = owner_id or _default_owner()
        self.lease_for = lease_for
        self.heartbeat_interval = heartbeat_interval or automatic_heartbeat(lease_for)
        """How often the leases of the claims in hand are extended (``None``: never)."""
        self.idle_backoff = (low.total_seconds(), high.total_seconds())
        self.batch_window = batch_window.total_seconds()
        self.stats = WorkerStats()
        self._done: queue_module.SimpleQueue[tuple[str, Finished]] = queue_module.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._loop = StepLoop(f"squidmesh-steps-{self.owner_id}")
        """The worker's event loop for async steps; started by the first one."""
        self._async: dict[str, Running[StepOutcome]] = {}
        """Async steps under way on the loop, by runnable key: cancelled if their claim is lost."""
        self._in_flight = 0
        self._next_queue = 0
        self._partitions: dict[str, list[str]] = {q: [q] for q in self.queues}
        """Each queue's partitions, partition 0 first, as last read."""
        self._next_layout = 0.0
        self._rank = (0, 1)
        """This worker's place among the live workers, and how many are live."""
        self._turn = 0
        """Counts commits, so the worker takes turns among its own partitions."""
        self._held: dict[str, Claim] = {}
        """Claims in hand (running, or finished but not yet settled), by runnable key."""
        self._running_since: dict[str, float] = {}
        """When each attempt in hand began to run (a claim taken ahead waits first)."""
        self._durations: dict[str, float] = {}
        """Running time of each attempt in hand that finished, for its outcome record."""
        self._recent_steps: deque[float] = deque(maxlen=PREFETCH_AFTER)
        """How long the last steps ran: when all were short, steps are claimed ahead."""
        self._waiting: dict[str, tuple[Claim, Future[Finished | Running[StepOutcome]], float]] = {}
        """Claims submitted to the pool, and since when, until a thread is seen to have
        taken them (`_return_waiting`)."""
        self._next_beat = 0.0
        self._next_presence = 0.0
        self._ticked = time.monotonic()
        self._journal_ok = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Worker:
        """Start the coordinator and the step threads; returns at once."""
        if self._thread is not None:
            raise InvalidArgument("worker", "already started")
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="squidmesh-step")
        self._thread = threading.Thread(
            target=self._coordinate, name=f"squidmesh-worker-{self.owner_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Claim nothing more, let the steps in hand finish and settle, then end."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        """Run until `stop` is called from another thread (or a signal handler)."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def shutdown(self, grace: timedelta) -> bool:
        """Stop as `stop` does, waiting at most ``grace``; whether every step in hand settled.

        Steps still running after the grace have their claims released at once (the
        journal treats their leases as expired), so other workers take them over now
        instead of when the leases run out. Their outcomes, should they still come, are
        refused; delivery is at least once.
        """
        self.stop(timeout=max(0.0, grace.total_seconds()))
        if not self.running:
            return True
        held = len(self._held)
        logger.warning(
            "worker %s: %d step(s) still running after the %.1f s grace; releasing their claims",
            self.owner_id,
            held,
            grace.total_seconds(),
        )
        try:
            self.mesh.release_worker(self.owner_id, queues=self.queues, actor="shutdown")
        except Exception:  # noqa: BLE001 - the leases then expire on their own
            logger.warning("worker %s could not release its claims", self.owner_id, exc_info=True)
        return False

    @property
    def running(self) -> bool:
        """Whether the coordinator is still working."""
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> WorkerHealth:
        """Liveness and readiness, for probes (`squidmesh worker --health-port`)."""
        since = time.monotonic() - self._ticked
        alive = self.running and since < LIVENESS_WINDOW.total_seconds()
        return WorkerHealth(alive=alive, ready=alive and self._journal_ok, since_tick=since)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the coordinator ------------------------------------------------------------------

    def _coordinate(self) -> None:
        assert self._pool is not None
        backoff = self.idle_backoff[0]
        pending: list[tuple[str, Finished]] = []
        self._presence("started")
        try:
            while True:
                self._ticked = time.monotonic()
                done = self._drain_done()
                self._in_flight -= len(done)  # their threads are free, settled or not
                pending.extend(done)
                if pending and not self._stopping.is_set():
                    self._gather(pending)
                stopping = self._stopping.is_set()
                self._return_waiting(0.0 if stopping else CLAIM_AHEAD_WAIT.total_seconds())
                want = 0 if stopping else self._slots() - self._in_flight
                try:
                    claims = self._commit(pending, want)
                    for _, item in pending:
                        self._held.pop(item.claim.key, None)
                        self._durations.pop(item.claim.key, None)
                    pending = []
                    self._journal_ok = True
                except Exception:  # noqa: BLE001 - keep working; leases protect the work
                    logger.exception("worker %s could not commit; retrying", self.owner_id)
                    self._journal_ok = False
                    claims = []
                for claim in claims:
                    self._submit(claim)
                self._keep_alive()
                if self._stopping.is_set() and self._in_flight == 0 and not pending:
                    if self._done.empty():
                        return
                    continue
                if claims:
                    backoff = self.idle_backoff[0]
                    continue
                self._wake.wait(min(backoff, self._until_next_beat()))
                self._wake.clear()
                backoff = min(backoff * 2, self.idle_backoff[1])
        finally:
            self._pool.shutdown(wait=True)
            queues_left(self.owner_id)
            self._loop.close()
            self._presence("stopped")

    # -- leases and presence --------------------------------------------------------------

    def _until_next_beat(self) -> float:
        due = [self._next_presence]
        if self._held and self.heartbeat_interval is not None:
            due.append(self._next_beat)
        return max(0.0, min(due) - time.monotonic())

    def _keep_alive(self) -> None:
        """Extend the leases in hand when a heartbeat is due; record presence when due."""
        now = time.monotonic()
        interval = self.heartbeat_interval
        if interval is not None and self._held and now >= self._next_beat:
            self._next_beat = now + interval.total_seconds()
            self._beat()
        if now >= self._next_presence:
            self._presence("seen")

    def _beat(self) -> None:
        by_queue: dict[str, list[Claim]] = {}
        for claim in self._held.values():
            by_queue.setdefault(claim.queue, []).append(claim)
        for queue_name, claims in by_queue.items():
            try:
                refused = extend_leases(self.mesh, queue_name, claims, self.lease_for)
            except Exception:  # noqa: BLE001 - the next beat tries again; leases still run
                logger.warning(
                    "worker %s could not extend its leases on %s",
                    self.owner_id,
                    queue_name,
                    exc_info=True,
                )
                continue
            for key, error in refused.items():
                # Released, taken over, finished or its run ended: its outcome will be
                # refused too, so stop beating for it.
                logger.warning(
                    "heartbeat stopped: claim of %s is no longer current (%s)", key, error.code
                )
                self._held.pop(key, None)
                running = self._async.get(key)
                if running is not None:
                    running.cancel()

    def _refresh_layout(self) -> None:
        """Take the queues' partitions as the runtime knows them; the worker's rank when due.

        The runtime reads partition counts at most once a second, and at once when it grew
        them itself, so runs started into new partitions are seen without waiting for the
        rank, which reads the worker registry, to be due.
        """
        for name in self.queues:
            self._partitions[name] = self.mesh.queue_partitions_of(name)
        if time.monotonic() < self._next_layout:
            return
        self._next_layout = time.monotonic() + LAYOUT_REFRESH
        now = self.mesh.now()
        self._rank = worker_rank(load_registry(self.mesh, now=now), self.owner_id, now=now)

    def _presence(self, change: str) -> None:
        self._next_presence = time.monotonic() + PRESENCE_INTERVAL.total_seconds()
        try:
            record_presence(
                self.mesh,
                self.owner_id,
                change,
                queues=self.queues,
                host=socket.gethostname(),
                pid=os.getpid(),
                lease_for=self.lease_for,
            )
        except SquidMeshError as exc:
            logger.warning("worker %s presence not recorded: %s", self.owner_id, exc.code)
        except Exception:  # noqa: BLE001 - presence is advisory; the work goes on
            logger.warning("worker %s presence not recorded", self.owner_id, exc_info=True)

    def _gather(self, pending: list[tuple[str, Finished]]) -> None:
        """Wait up to ``batch_window`` for the steps still running, to settle them too.

        A commit costs about the same for one outcome or ten, so outcomes a moment apart
        share it: fewer commits per step, for at most ``batch_window`` more latency.
        """
        deadline = time.monotonic() + self.batch_window
        while self._in_flight > 0 and len(pending) < self._slots():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                pending.append(self._done.get(timeout=left))
            except queue_module.Empty:
                return
            self._in_flight -= 1

    def _drain_done(self) -> list[tuple[str, Finished]]:
        done = []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue_module.Empty:
                return done

    def _commit(self, finished: list[tuple[str, Finished]], want: int) -> list[Claim]:
        """Settle what finished and claim up to ``want`` more, all in one commit."""
        by_partition: dict[str, list[Finished]] = {}
        for partition, item in finished:
            # a step that never ran has no outcome: its lease expires and it is redelivered
            if item.outcome is not None or item.mismatch is not None:
                by_partition.setdefault(partition, []).append(item)
        if not by_partition and want <= 0:
            return []
        self._refresh_layout()
        order = self.queues[self._next_queue :] + self.queues[: self._next_queue]
        self._next_queue = (self._next_queue + 1) % len(self.queues)
        self._turn += 1
        # The partitions settled now hold the next steps of runs under way: among its own,
        # the worker takes them first, or each run would wait for it to come round.
        under_way = (
            set(by_partition)
            if self.mesh.dispatch_order is DispatchOrder.RUNS_UNDER_WAY_FIRST
            else set()
        )
        visiting = [
            p
            for q in order
            for p in _visiting_order(self._partitions[q], *self._rank, self._turn, under_way)
        ]
        began_ns = time.time_ns()
        parts, claims = settle_partitions(
            self.mesh,
            by_partition,
            claim_order=visiting,
            now=self.mesh.now(),
            claim_more=want,
            owner_id=self.owner_id,
            lease_for=self.lease_for,
        )
        for partition, items in by_partition.items():
            settled = parts[partition]
            self.stats.executed += len(items) - len(settled.refused)
            self.stats.refused += len(settled.refused)
            for key, error in settled.refused.items():
                logger.warning("outcome of %s refused: %s", key, error.code)
            report_step_outcomes(
                settled,
                items,
                durations=self._durations,
                owner_id=self.owner_id,
                queue=partition,
                began_ns=began_ns,
            )
        self.stats.commits += int(any(p.committed for p in parts.values()))
        for settled in parts.values():
            if settled.queue is not None:
                queue_seen(settled.queue, self.owner_id)
        claimed(claims, began_ns=began_ns, owner_id=self.owner_id)
        return claims

    def _slots(self) -> int:
        """Claims this worker may hold: twice its concurrency while its steps are short.

        Its threads then run the claims taken ahead while the coordinator commits, instead
        of waiting for the commit to hand them work. One long step turns it off, and the
        claims it keeps waiting are given back (`_return_waiting`): another worker may be
        free to run them now.
        """
        below = PREFETCH_BELOW.total_seconds()
        recent = self._recent_steps
        if len(recent) < PREFETCH_AFTER or max(recent) >= below:
            return self.concurrency
        now = time.monotonic()
        if any(now - since >= below for since in list(self._running_since.values())):
            return self.concurrency  # a step running now has turned long
        return self.concurrency * 2

    def _submit(self, claim: Claim) -> None:
        assert self._pool is not None
        self._in_flight += 1
        if not self._held:
            self._next_beat = time.monotonic() + (
                self.heartbeat_interval.total_seconds() if self.heartbeat_interval else 0.0
            )
        self._held[claim.key] = claim
        # The coordinator beats for every claim in hand (`_keep_alive`): no thread per step.
        submitted = time.monotonic()
        future = self._pool.submit(self._run, claim)
        self._waiting[claim.key] = (claim, future, submitted)
        future.add_done_callback(functools.partial(self._started, claim, submitted))

    def _return_waiting(self, older_than: float) -> None:
        """Give back the claims no thread has started for ``older_than`` seconds.

        A claim whose future is cancelled before a thread takes it never runs here, so
        another worker may take it at once: by queue, one `ClaimsReturned` commit each. If
        that commit fails, the lease lapses and the attempt is delivered again as after a
        crash.
        """
        if not self._waiting:
            return
        now = time.monotonic()
        by_queue: dict[str, list[str]] = {}
        for key, (claim, future, since) in list(self._waiting.items()):
            if now - since < older_than and not (future.running() or future.done()):
                continue
            del self._waiting[key]  # given back below, or a thread has taken it
            if future.cancel():
                self._held.pop(key, None)
                self._in_flight -= 1
                by_queue.setdefault(claim.queue, []).append(key)
        for queue_name, keys in by_queue.items():
            try:
                returned = return_claims(self.mesh, queue_name, self.owner_id, keys)
            except Exception:  # noqa: BLE001 - the leases lapse and the work comes back
                logger.warning(
                    "worker %s could not return claims on %s", self.owner_id, queue_name,
                    exc_info=True,
                )  # fmt: skip
                continue
            logger.info(
                "worker %s returned %d claim(s) it could not start on %s",
                self.owner_id,
                len(returned),
                queue_name,
            )

    def _run(self, claim: Claim) -> Finished | Running[StepOutcome]:
        """On a pool thread: run a plain step, or hand an async one to the worker's loop."""
        if claim.key not in self._held:
            # Its heartbeat was refused (taken over, released, its run ended) while it
            # waited for a thread: it is no longer this worker's to run.
            return Finished(claim, outcome=None)
        self._running_since[claim.key] = time.monotonic()  # a claim taken ahead waited
        ready = prepare_claimed(self.mesh, claim)
        if isinstance(ready, Finished):
            return ready
        started = start_claimed(self.mesh, ready)
        if isinstance(started, StepOutcome):
            return Finished(claim, outcome=started)
        running = self._loop.submit(started)
        self._async[claim.key] = running
        return running

    def _started(
        self, claim: Claim, began: float, future: Future[Finished | Running[StepOutcome]]
    ) -> None:
        if future.cancelled():
            return  # given back before a thread took it (`_return_waiting`)
        try:
            result = future.result()
        except Exception:  # noqa: BLE001 - the lease expires and the attempt is redelivered
            logger.exception("attempt %s could not run; its lease will expire", claim.key)
            self._finished(claim, began, Finished(claim, outcome=None))
            return
        if isinstance(result, Finished):
            self._finished(claim, began, result)
        else:
            result.future.add_done_callback(
                functools.partial(self._awaited, claim, began),
            )

    def _awaited(self, claim: Claim, began: float, future: Future[StepOutcome]) -> None:
        self._async.pop(claim.key, None)
        try:
            finished = Finished(claim, outcome=future.result())
        except CancelledError:
            # Its claim was lost (see `_beat`): the journal would refuse any outcome.
            logger.warning("async step of %s cancelled: its claim was lost", claim.key)
            finished = Finished(claim, outcome=None)
        except Exception:  # noqa: BLE001 - the lease expires and the attempt is redelivered
            logger.exception("attempt %s could not run; its lease will expire", claim.key)
            finished = Finished(claim, outcome=None)
        self._finished(claim, began, finished)

    def _finished(self, claim: Claim, began: float, finished: Finished) -> None:
        """Hand an attempt's result to the coordinator, timed for its outcome record."""
        seconds = time.monotonic() - self._running_since.pop(claim.key, began)
        self._durations[claim.key] = seconds
        self._recent_steps.append(seconds)
        self._done.put((claim.queue, finished))
        self._wake.set()


def _visiting_order(
    partitions: list[str],
    rank: int,
    live: int,
    turn: int,
    under_way: Set[str] = frozenset(),
) -> list[str]:
    """The order in which worker ``rank`` of ``live`` visits ``partitions`` on ``turn``.

    Its own partitions (``k % live == rank``; with more workers than partitions, a shared
    one) come first, starting at a different one each turn so that none of them waits for
    another to empty, and those in ``under_way`` before the rest; the others follow,
    nearest first, for when its own have no work. Another worker's partition keeps its
    place even when this worker just settled there, so workers stay on their own.
    """
    count = len(partitions)
    own = [k for k in range(count) if k % live == rank] or [rank % count]
    first = own[turn % len(own)]
    own = own[own.index(first) :] + own[: own.index(first)]
    own.sort(key=lambda k: partitions[k] not in under_way)  # stable: turns kept within each
    others = [(first + step) % count for step in range(count)]
    return [partitions[k] for k in own + [k for k in others if k not in own]]


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
