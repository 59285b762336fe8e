"""The built-in cron scheduler: turns cron ticks of registered workflows into cron starts.

Each tick of a trigger stands for the window ``[tick, next tick)``, computed with croniter
in the trigger's timezone. The scheduler delivers a tick through `start_cron` with that
window as its intended window, so the tick's identity, and so its run id, is the same in
every scheduler process: a scheduler run twice, restarted, or run on several hosts at once
starts one run per tick, with no leader election and no scheduler state in the journal.

Catch-up after downtime is bounded: a scheduler looks back at most ``catch_up`` for ticks
it has not evaluated, and delivers at most ``max_ticks`` (the newest) per trigger in one
pass; older missed ticks are dropped with a warning. Re-evaluating a tick another process
already delivered is a duplicate, which starts nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from squidmesh_es.errors import Conflict, InvalidArgument, SquidMeshError
from squidmesh_es.runtime._clock import Clock, ensure_aware
from squidmesh_es.runtime._cron import CronDecision, CronStart, start_cron
from squidmesh_es.workflow import TriggerSpec, TriggerType, Workflow

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["Activation", "Scheduler", "SchedulerPass", "cron_ticks"]

logger = logging.getLogger("squidmesh_es.scheduler")

_ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
UNSCHEDULED: Final = frozenset({"@reboot"})
"""Expressions with no ticks: the host delivers them itself (``start_cron`` at boot)."""

MAX_TICKS_SCANNED: Final = 100_000
"""Safety bound on ticks computed for one trigger in one pass."""


@dataclass(frozen=True)
class Activation:
    """One due tick of one cron trigger: the window ``[start_at, end_at)`` it stands for."""

    workflow: type[Workflow]
    trigger: str
    start_at: datetime
    end_at: datetime

    @property
    def window(self) -> dict[str, datetime]:
        """The intended window passed to `start_cron`."""
        return {"start_at": self.start_at, "end_at": self.end_at}


@dataclass
class SchedulerPass:
    """What one `Scheduler.run_once` did."""

    delivered: list[CronStart] = field(default_factory=list)
    """One result per delivered tick: started, or a duplicate of an earlier delivery."""
    failed: list[tuple[Activation, Exception]] = field(default_factory=list)
    """Ticks whose delivery raised; a transient failure is tried again next pass."""
    dropped: int = 0
    """Missed ticks left out by the ``max_ticks`` bound."""

    @property
    def started(self) -> list[CronStart]:
        """Deliveries that started a new run."""
        return [d for d in self.delivered if d.decision is CronDecision.STARTED]


def cron_ticks(
    expression: str, timezone: str, *, after: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Ticks in ``(after, until]`` with the next tick after each, as UTC datetimes.

    Read in ``timezone``, so ``0 9 * * *`` is 09:00 local time on both sides of a DST
    change. A fixed-time tick (no ``*`` in the minute or hour field) in an hour that a
    clock change skips fires once at the first valid time after it; one in an hour that
    repeats fires once, at its first occurrence (Vixie cron's rules). Interval ticks
    (``*/15 * * * *``, ``@hourly``) follow elapsed time through both changes.

    Raises:
        InvalidArgument: the expression or timezone is not usable (``@reboot`` has no ticks).
    """
    zone = _zone(timezone)
    expr = _ALIASES.get(expression.strip(), expression.strip())
    if expression in UNSCHEDULED or not croniter.is_valid(expr):
        raise InvalidArgument("cron expression", f"{expression!r} has no computable ticks")
    ticks = _effective(expr, zone, ensure_aware(after, name="after"))
    found: list[datetime] = []
    limit = ensure_aware(until, name="until")
    for tick in ticks:
        if tick > limit:
            return list(zip(found, [*found[1:], tick][: len(found)], strict=True))
        found.append(tick)
        if len(found) > MAX_TICKS_SCANNED:
            raise InvalidArgument("cron expression", "too many ticks in one pass")
    raise AssertionError("cron ticks never end")  # pragma: no cover


def _effective(expr: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """UTC ticks after ``after``, the repeated wall time of a fixed-time tick left out."""
    fields = expr.split()
    fixed = "*" not in fields[0] and "*" not in fields[1]
    it = croniter(expr, after.astimezone(zone))
    while True:
        tick = cast(datetime, it.get_next(datetime)).astimezone(UTC)
        local = tick.astimezone(zone)
        first = local.replace(tzinfo=None).replace(tzinfo=zone, fold=0).astimezone(UTC)
        if fixed and first != tick:
            continue  # second occurrence of an ambiguous wall time
        yield tick


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument("timezone", f"{name!r} is not a known IANA timezone") from None


class Scheduler:
    """Delivers due ticks of cron triggers as idempotent cron starts.

    Runs in a host process (``squidmesh scheduler``) or inside one (`start`/`stop`), and
    under test by calling `run_once` with an explicit time. Any number of schedulers may
    run against one journal: each tick starts one run.
    """

    def __init__(
        self,
        mesh: SquidMesh,
        *,
        workflows: Iterable[type[Workflow]] | None = None,
        clock: Clock | None = None,
        interval: timedelta = timedelta(seconds=1),
        catch_up: timedelta = timedelta(hours=1),
        max_ticks: int = 1,
    ) -> None:
        """Configure the scheduler; nothing runs until `run_once`, `start` or `run_forever`.

        Args:
            mesh: the runtime runs are started on.
            workflows: workflows whose cron triggers to evaluate (registered on ``mesh``);
                default: every workflow registered on ``mesh`` at each pass.
            clock: where time comes from; default: the runtime's clock.
            interval: time between passes of the loop. Ticks are minutes apart at best,
                and a pass with nothing due does no I/O, so a short interval is cheap.
            catch_up: how far back a scheduler looks for ticks it has not evaluated (on
                start, or after a stall). Ticks older than that are never delivered.
            max_ticks: most ticks one trigger delivers in one pass; the newest are kept,
                so a per-minute trigger back from an hour's downtime starts one run, not 60.

        Raises:
            InvalidArgument: a bound is not positive.
        """
        if interval <= timedelta(0) or catch_up <= timedelta(0):
            raise InvalidArgument("scheduler", "interval and catch_up must be positive")
        if not isinstance(max_ticks, int) or max_ticks < 1:
            raise InvalidArgument("max_ticks", "must be a positive integer")
        self.mesh = mesh
        self.clock = clock
        self.interval = interval
        self.catch_up = catch_up
        self.max_ticks = max_ticks
        self._workflows = None if workflows is None else list(workflows)
        if self._workflows is not None:
            mesh.register(*self._workflows)
        self._cursor: dict[tuple[str, str], datetime] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass -------------------------------------------------------------------------

    def triggers(self) -> list[tuple[type[Workflow], TriggerSpec]]:
        """The cron triggers this scheduler evaluates, by workflow and trigger name."""
        if self._workflows is not None:
            workflows = self._workflows
        else:
            found = (self.mesh.workflows.get(n) for n in self.mesh.workflows.names())
            workflows = [w for w in found if w is not None]
        return [
            (w, t)
            for w in sorted(workflows, key=lambda w: w.name)
            for t in w.to_spec().triggers
            if t.type is TriggerType.CRON
        ]

    def due(self, now: datetime) -> tuple[list[Activation], int]:
        """Ticks not yet evaluated up to ``now``, and how many older ones ``max_ticks`` drops.

        Pure: moves no cursor and writes nothing.
        """
        at = ensure_aware(now)
        due: list[Activation] = []
        dropped = 0
        for workflow, trigger in self.triggers():
            expression = trigger.expression or ""
            if expression in UNSCHEDULED:
                self._warn_once(workflow, trigger, "@reboot is delivered by the host")
                continue
            after = self._after(workflow, trigger, at)
            try:
                ticks = cron_ticks(expression, trigger.timezone or "Etc/UTC", after=after, until=at)
            except InvalidArgument as exc:
                self._warn_once(workflow, trigger, exc.reason)
                continue
            dropped += max(0, len(ticks) - self.max_ticks)
            due += [Activation(workflow, trigger.name, s, e) for s, e in ticks[-self.max_ticks :]]
        return due, dropped

    def run_once(self, now: datetime | None = None) -> SchedulerPass:
        """Deliver every due tick once; returns what happened.

        A tick whose delivery failed for a transient reason (storage, a conflict) is tried
        again next pass while it is inside ``catch_up``; one refused for good (a payload
        without defaults, say) is logged and passed over.
        """
        at = ensure_aware(now if now is not None else (self.clock or self.mesh.clock).now())
        with self._lock:
            due, dropped = self.due(at)
            result = SchedulerPass(dropped=dropped)
            if dropped:
                logger.warning("cron catch-up dropped %d missed tick(s)", dropped)
            retry: dict[tuple[str, str], datetime] = {}
            for activation in due:
                key = (activation.workflow.name, activation.trigger)
                if key in retry:
                    continue  # keep ticks in order: an earlier one of this trigger failed
                try:
                    delivered = start_cron(
                        self.mesh,
                        activation.workflow,
                        activation.trigger,
                        intended_window=activation.window,
                        unique=True,
                        now=at,
                    )
                except Exception as exc:  # one trigger must not stop the others
                    result.failed.append((activation, exc))
                    self._log_failure(activation, exc)
                    if _transient(exc):
                        retry[key] = activation.start_at - timedelta(microseconds=1)
                    continue
                result.delivered.append(delivered)
                self._log_delivery(activation, delivered)
            for workflow, trigger in self.triggers():
                key = (workflow.name, trigger.name)
                self._cursor[key] = retry.get(key, at)
            return result

    def _after(self, workflow: type[Workflow], trigger: TriggerSpec, now: datetime) -> datetime:
        horizon = now - self.catch_up
        cursor = self._cursor.get((workflow.name, trigger.name), horizon)
        return max(cursor, horizon)

    def _warn_once(self, workflow: type[Workflow], trigger: TriggerSpec, reason: str) -> None:
        key = (workflow.name, trigger.name)
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(
                "cron trigger not scheduled workflow=%s trigger=%s: %s",
                workflow.name,
                trigger.name,
                reason,
                extra={"workflow": workflow.name, "trigger": trigger.name},
            )

    def _log_delivery(self, activation: Activation, delivered: CronStart) -> None:
        level = logging.INFO if delivered.decision is CronDecision.STARTED else logging.DEBUG
        logger.log(
            level,
            "cron %s run_id=%s workflow=%s trigger=%s window_start=%s",
            delivered.decision.value,
            delivered.run_id,
            activation.workflow.name,
            activation.trigger,
            activation.start_at.isoformat(),
            extra={"run_id": delivered.run_id, "workflow": activation.workflow.name},
        )

    def _log_failure(self, activation: Activation, exc: Exception) -> None:
        code = exc.code if isinstance(exc, SquidMeshError) else type(exc).__name__
        logger.error(
            "cron delivery failed workflow=%s trigger=%s window_start=%s code=%s",
            activation.workflow.name,
            activation.trigger,
            activation.start_at.isoformat(),
            code,
            exc_info=not isinstance(exc, SquidMeshError),
            extra={"workflow": activation.workflow.name, "trigger": activation.trigger},
        )

    # -- the loop -------------------------------------------------------------------------

    def start(self) -> Scheduler:
        """Run passes every ``interval`` in a background thread; returns at once.

        Raises:
            InvalidArgument: already started.
        """
        if self._thread is not None:
            raise InvalidArgument("scheduler", "already started")
        self._thread = threading.Thread(target=self._loop, name="squidmesh-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Start no further pass; the pass in progress finishes its current delivery."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        """Run passes until `stop` is called from another thread or a signal handler."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    @property
    def running(self) -> bool:
        """Whether the loop is still running."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        logger.info("scheduler started triggers=%d", len(self.triggers()))
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # the loop outlives a bad pass
                logger.exception("scheduler pass failed")
            self._stopping.wait(self.interval.total_seconds())
        logger.info("scheduler stopped")


def _transient(exc: Exception) -> bool:
    """Whether the same delivery may succeed later: not a refusal of the request itself."""
    return isinstance(exc, Conflict) or not isinstance(exc, SquidMeshError)
