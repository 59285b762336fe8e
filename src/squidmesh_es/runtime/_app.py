"""The ``SquidMesh`` application: one ``eventsourcing`` application holding both aggregates.

Runs and queues live in one application so that ``save(run, queue)`` commits the facts of
one decision in one transaction on every backend.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any, Self
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    LRUCache,
    ProcessingEvent,
    Repository,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Mapper,
    OperationalError,
    PersistenceError,
    Recording,
    Transcoder,
    Transcoding,
)
from eventsourcing.utils import Environment, strtobool

from squidmesh_es.domain import (
    MAX_PARTITIONS,
    Attempt,
    DispatchOrder,
    DispatchQueue,
    WorkerRegistry,
    WorkflowRun,
    check_partitions,
    check_queue_name,
    parse_run_id,
    partition_of,
    partition_queue,
    queue_id,
)
from squidmesh_es.errors import (
    CipherKeyMismatch,
    Conflict,
    InvalidArgument,
    RunNotErasable,
    RunNotFound,
    RunTerminal,
    SquidMeshError,
    StorageUnavailable,
)
from squidmesh_es.read_model import (
    DynamicWorkPreview,
    Explanation,
    RunGraph,
    RunSnapshot,
    RunSummary,
    build_run_graph,
    build_run_snapshot,
    explain_run_snapshot,
)
from squidmesh_es.redaction import redact_text
from squidmesh_es.runtime._cache import RunsEvictedFirst
from squidmesh_es.runtime._cipher import check_cipher_key, cipher_env
from squidmesh_es.runtime._clock import Clock, SystemClock, ensure_aware
from squidmesh_es.runtime._cron import CronStart, IntendedWindow, start_cron
from squidmesh_es.runtime._data_keys import data_keys_for
from squidmesh_es.runtime._definitions import (
    DefinitionChange,
    DefinitionStore,
    RunDefinition,
    SpecCache,
    definition_of,
)
from squidmesh_es.runtime._deploys import (
    DeployProblem,
    Migration,
    check_deploy,
    migrate_run,
    missing_steps,
)
from squidmesh_es.runtime._dynamic_work import (
    preview_dynamic_work,
    record_dynamic_work,
    schedule_dynamic_work,
)
from squidmesh_es.runtime._execution import (
    CONFLICT_RETRIES,
    DEFAULT_LEASE,
    Finished,
    check_heartbeat,
    check_lease,
    check_owner,
    claim_attempts,
    run_claimed,
    settle,
)
from squidmesh_es.runtime._journal_listing import list_runs_from_journal
from squidmesh_es.runtime._lineage import start_child
from squidmesh_es.runtime._mapper import JournalMapper
from squidmesh_es.runtime._notifier import DispatchNotifier, ScheduledAttempt
from squidmesh_es.runtime._ports import ProjectionsPort
from squidmesh_es.runtime._presence import (
    ReleaseReport,
    WorkerInfo,
    list_workers,
    release_worker,
)
from squidmesh_es.runtime._recovery import RecoveryReport, recover
from squidmesh_es.runtime._registry import WorkflowRegistry
from squidmesh_es.runtime._sealing import Sealer
from squidmesh_es.runtime._settings import (
    DEFAULT_PARTITION_LIMIT,
    StorageSettings,
    check_partition_limit,
    create_location,
    database_url_from_env,
    parse_database_url,
    partition_limit_from_env,
    partitions_from_env,
    require_journal,
)
from squidmesh_es.runtime._signals import Signal, apply_signal
from squidmesh_es.runtime._snapshotter import Snapshotter
from squidmesh_es.runtime._starting import build_request, build_spec_request, start_run
from squidmesh_es.runtime._step_loop import StepLoop
from squidmesh_es.runtime._telemetry import control_span
from squidmesh_es.runtime._transaction import Transaction, transaction
from squidmesh_es.runtime._transcoder import JournalTranscoder
from squidmesh_es.runtime._worker import DEFAULT_BATCH_WINDOW, Worker
from squidmesh_es.workflow import (
    ActionRegistry,
    JSONValue,
    Limits,
    StepContext,
    Workflow,
    WorkflowSpec,
)

__all__ = ["SquidMesh"]

logger = logging.getLogger(__name__)


class SquidMesh(Application[UUID]):
    """Durable workflows journaled as events: the runtime's entry point.

    Open one with ``SquidMesh.open(url)`` or ``SquidMesh.from_env()`` and close it when done
    (it is a context manager). Several instances may live in one process.

    A host that keeps its own aggregates can subclass it: everything saved through one
    application commits in one transaction.
    """

    name = "SquidMesh"
    snapshotting_intervals = {WorkflowRun: 100, WorkerRegistry: 100}
    """Queues are snapshotted by `queue_snapshot_interval`, which grows with their state.

    The worker registry gains a presence fact per worker every 15 s: its snapshots keep a
    fresh process's ``squidmesh workers list`` from replaying days of them."""
    env = {"AGGREGATE_CACHE_MAXSIZE": "512"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Keep the journal's name in subclasses unless they set their own.

        The library names an application after its class, and the name picks the Postgres
        tables: a host's ``class Shop(SquidMesh)`` must share the journal that workers and
        projections opened as ``SquidMesh``.
        """
        explicit = "name" in cls.__dict__
        super().__init_subclass__(**kwargs)
        if not explicit:
            cls.name = SquidMesh.name

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock | None = None,
        limits: Limits | None = None,
        queue: str = "default",
        transcodings: Iterable[Transcoding] = (),
        storage: StorageSettings | None = None,
        workflows: Iterable[type[Workflow]] = (),
        notifier: DispatchNotifier | None = None,
        action_registry: ActionRegistry | None = None,
        dispatch_order: DispatchOrder = DispatchOrder.RUNS_UNDER_WAY_FIRST,
        on_definition_change: str = "follow",
        queue_partitions: int = 1,
        queue_partition_limit: int | None = DEFAULT_PARTITION_LIMIT,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.limits = limits or Limits()
        """How large a value commands may bring; see `Limits`."""
        self.default_queue = queue
        self.dispatch_order = DispatchOrder(dispatch_order)
        """Which visible attempt this runtime's claimers take first."""
        self.queue_partitions = check_partitions(queue_partitions)
        """How many partitions the runs this runtime starts are spread over, per queue, at
        least (a queue may have recorded more)."""
        self.queue_partition_limit = check_partition_limit(queue_partition_limit)
        """Live attempts past which a start doubles its queue's partitions (``None``: never)."""
        self._partition_counts: dict[str, tuple[int, float]] = {}
        """Per queue, the partition count its partition 0 is known to have recorded (it only
        grows), and when (``time.monotonic``) it was last read."""
        self.storage = storage
        self.workflows = WorkflowRegistry(workflows)
        self.action_registry = action_registry
        self._runtime_specs = SpecCache()
        self.on_definition_change = DefinitionChange.parse(on_definition_change)
        """``follow`` (runs keep their own graph) or ``fail`` (upstream's fencing)."""
        self.definitions = DefinitionStore(self)
        """The graphs class-declared runs started with, stored once per fingerprint."""
        self.notifier = notifier
        self.step_loop = StepLoop("squidmesh-steps")
        """Where `execute_next` and `drain` await async steps; a `Worker` has its own."""
        self._projections: ProjectionsPort | None = None
        self._projections_due = threading.Event()
        self._projections_thread: threading.Thread | None = None
        self._projections_busy = threading.Lock()
        """Held while the background thread catches the projections up; detach waits on it."""
        self._closing = False
        self._loading = threading.Lock()
        self.deciding = threading.RLock()
        """Held by in-process writers of queues from load to commit, so they take turns.

        Optimistic retries suit writers in different processes. In one process a busy
        worker commits to its queue every few milliseconds, and a batch start deciding
        for longer than that would lose every race to it; taking turns costs nothing a
        conflict would not, since the journal serialises the commits anyway.
        """
        self._extra_transcodings = tuple(transcodings)
        queue_id(queue)  # validates the name before anything is built
        super().__init__(env=env)
        self.data_keys = data_keys_for(self.recorder, self.mapper.cipher)
        """The data keys of erasable runs (see `forget_run`), beside the journal."""
        if strtobool(self.env.get("CREATE_TABLE") or "yes"):  # not with open(create=False)
            self.data_keys.create_table()
        self.sealer = Sealer(self.data_keys, self.mapper.transcoder)
        assert isinstance(self.mapper, JournalMapper)
        self.mapper.sealer = self.sealer
        self.queue_snapshots = Snapshotter(self._write_queue_snapshot)
        self._queue_snapshot_at: dict[UUID, int] = {}
        """Version of the last snapshot this process took of each queue."""
        """Writes queue snapshots off the command path; ``wait()`` blocks until written."""

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        queue: str = "default",
        clock: Clock | None = None,
        limits: Limits | None = None,
        transcodings: Iterable[Transcoding] = (),
        workflows: Iterable[type[Workflow]] = (),
        notifier: DispatchNotifier | None = None,
        action_registry: ActionRegistry | None = None,
        dispatch_order: DispatchOrder = DispatchOrder.RUNS_UNDER_WAY_FIRST,
        cipher_key: str | None = None,
        create: bool = True,
        on_definition_change: str = "follow",
        queue_partitions: int = 1,
        queue_partition_limit: int | None = DEFAULT_PARTITION_LIMIT,
    ) -> Self:
        """Open the journal at ``url`` (``memory://``, ``sqlite:///file.db``, ``postgresql://``).

        Tables are created when missing, and so is the Postgres ``schema`` named in the URL.
        ``workflows`` are the workflow classes this process may execute; ``start``
        registers the workflows it starts as well. ``action_registry`` is the allowlist of
        action keys this process may execute: the steps of ``start_spec`` runs, dynamic
        nodes and action-keyed compensations. ``dispatch_order`` says which visible
        attempt claimers take first: by default the next steps of runs under way go before
        the first steps of new runs, so a backlog does not hold back runs in flight.

        With ``cipher_key`` (see ``create_cipher_key``) every event and snapshot is
        compressed and encrypted with AES-GCM before it is stored; the journal is checked to
        be readable with that key (or, without one, to be in clear) before ``open`` returns.

        ``create=False`` opens an existing journal only: no file, directory, schema or table
        is created, and a missing journal is an error (read-only tools use it, so a typo in
        a path or schema name is reported instead of creating an empty journal).

        ``queue_partitions`` spreads the runs this process starts over that many
        ``DispatchQueue`` aggregates per queue (a run's partition is fixed by its id and
        recorded when it starts), so that worker processes claim and settle on different
        aggregates instead of racing for one. Workers poll every partition a queue has ever
        had, whatever their own setting.

        ``queue_partition_limit`` bounds a partition's size: a start that leaves its
        partition with more live attempts than that doubles the queue's partition count (up
        to 256), so that no partition's state, snapshot or cold load grows with the backlog.
        Runs started afterwards go to the newer half of the partitions while the older
        ones drain; ``None`` turns this off.

        ``on_definition_change`` says what happens to a run whose workflow was changed by a
        deploy since it started: ``"follow"`` (default) lets it follow the graph it started
        with, running today's step code; ``"fail"`` fails it with
        ``incompatible_workflow_definition``, as upstream Squid Mesh does.

        Raises:
            InvalidArgument: the URL is not one of the supported forms, the cipher key is
                malformed (or the ``cryptography`` package is missing), or
                ``on_definition_change`` is not ``follow`` or ``fail``, or
                ``queue_partitions`` is not from 1 to 256, or ``queue_partition_limit`` is
                neither ``None`` nor a positive whole number.
            CipherKeyMismatch: the journal cannot be read with the key given, or is
                encrypted and no key was given.
            InvalidDatabaseUrl: a part of the URL is unusable (port, path, schema name).
            JournalNotFound: ``create=False`` and there is no journal at ``url``.
            StorageUnavailable: the database cannot be reached.
        """
        settings = parse_database_url(url)
        DefinitionChange.parse(on_definition_change)  # refused before anything is created
        check_partitions(queue_partitions)
        check_partition_limit(queue_partition_limit)
        env = {**settings.env, **cipher_env(cipher_key)}
        if not create:
            require_journal(settings, events_table=f"{cls.name.lower()}_events")
            env["CREATE_TABLE"] = "n"
        else:
            create_location(settings)
            if settings.postgres_schema:
                _create_postgres_schema(settings)
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                mesh = cls(
                    env=env,
                    clock=clock,
                    limits=limits,
                    queue=queue,
                    transcodings=transcodings,
                    storage=settings,
                    workflows=workflows,
                    notifier=notifier,
                    action_registry=action_registry,
                    dispatch_order=dispatch_order,
                    on_definition_change=on_definition_change,
                    queue_partitions=queue_partitions,
                    queue_partition_limit=queue_partition_limit,
                )
            except Exception as exc:
                # Processes opening a new Postgres journal at the same instant race in
                # CREATE TABLE IF NOT EXISTS; the loser may open once the winner is done.
                if isinstance(exc, PersistenceError) and not _concurrent_ddl(exc):
                    reason = redact_text(str(exc))
                    raise StorageUnavailable(backend=settings.backend, reason=reason) from exc
                if attempt + 1 == _OPEN_ATTEMPTS or not _concurrent_ddl(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            try:
                check_cipher_key(mesh.recorder, mesh.mapper, key_given=cipher_key is not None)
            except CipherKeyMismatch:
                mesh.close()
                raise
            return mesh
        raise AssertionError("unreachable")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Clock | None = None,
        workflows: Iterable[type[Workflow]] = (),
        action_registry: ActionRegistry | None = None,
    ) -> Self:
        """Open the journal named by ``SQUIDMESH_DATABASE_URL`` (default: ``squidmesh.db``).

        ``SQUIDMESH_QUEUE`` sets the default queue; ``SQUIDMESH_QUEUE_PARTITIONS`` the
        partitions of the runs it starts and ``SQUIDMESH_QUEUE_PARTITION_LIMIT`` (a number,
        or ``none``) when they grow (see ``open``); ``SQUIDMESH_ON_DEFINITION_CHANGE``
        (``follow`` or ``fail``) what a changed workflow does to its runs in flight (see
        ``open``); ``SQUIDMESH_CIPHER_KEY``, when set,
        encrypts the journal at rest (see ``open``). Only ``SQUIDMESH_*`` keys are read.
        """
        environ = os.environ if environ is None else environ
        return cls.open(
            database_url_from_env(environ),
            queue=environ.get("SQUIDMESH_QUEUE", "default"),
            queue_partitions=partitions_from_env(environ),
            queue_partition_limit=partition_limit_from_env(environ),
            on_definition_change=environ.get("SQUIDMESH_ON_DEFINITION_CHANGE", "follow"),
            clock=clock,
            workflows=workflows,
            action_registry=action_registry,
            cipher_key=environ.get("SQUIDMESH_CIPHER_KEY") or None,
        )

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        """Build the library settings from the class defaults and ``env`` only.

        The library would merge the whole process environment; a host's unrelated
        variables must not reconfigure our storage.
        """
        merged = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            merged["IS_SNAPSHOTTING_ENABLED"] = "y"
        merged.update(env or {})
        return Environment(name, merged)

    def construct_repository(self) -> Repository[UUID]:
        """The library's repository, caching runs in its LRU and keeping queues apart.

        See `RunsEvictedFirst`: on a large backlog the runs a worker loads no longer push
        out the queue partitions it comes back to.
        """
        repository = super().construct_repository()
        if isinstance(repository.cache, LRUCache):
            repository.cache = RunsEvictedFirst(repository.cache.maxsize)
        return repository

    def construct_transcoder(self) -> Transcoder:
        """A `JournalTranscoder`: the library's JSON format, written faster by orjson.

        A ``TRANSCODER_TOPIC`` in the settings still picks that transcoder instead.
        """
        if self.factory.env.get(self.factory.TRANSCODER_TOPIC):
            return super().construct_transcoder()
        transcoder = JournalTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> Mapper[UUID]:
        """Use ``JournalMapper`` so an undecodable event becomes ``CorruptedEvent``."""
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=JournalMapper
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Register the library's transcodings plus any given to ``open``."""
        super().register_transcodings(transcoder)
        for transcoding in self._extra_transcodings:
            transcoder.register(transcoding)

    # -- the journal ----------------------------------------------------------------------

    def now(self, now: datetime | None = None) -> datetime:
        """``now`` if given (checked to be timezone-aware), else the clock's time."""
        return ensure_aware(now) if now is not None else ensure_aware(self.clock.now())

    def get_run(self, run_id: UUID | str, *, fresh: bool = True) -> WorkflowRun:
        """Load a run's aggregate (from its newest snapshot plus later events).

        ``fresh=False`` returns the copy this process last committed or loaded without
        asking the journal for newer events (it loads when there is none): for decisions
        whose commit the run's version fences, where a stale copy costs one `Conflict`.

        Raises:
            InvalidRunId: ``run_id`` is not a UUID.
            RunNotFound: no run has this id.
            CorruptedEvent: a stored event of the run cannot be decoded.
        """
        uid = parse_run_id(run_id)
        try:
            run: Any = self._load(uid, fresh=fresh)
        except AggregateNotFoundError:
            raise RunNotFound(uid) from None
        if not isinstance(run, WorkflowRun):
            raise RunNotFound(uid)
        return run

    def get_queue(
        self, name: str | None = None, *, now: datetime | None = None, fresh: bool = True
    ) -> DispatchQueue:
        """Load a queue's aggregate, or a new unsaved one when the queue has no journal yet.

        ``name`` may name a partition (``queue#k``, see `queue_partitions_of`); the queue's
        own name is its partition 0. ``fresh=False``: as for `get_run`; work another
        process added since is not seen until a fresh load.

        Raises:
            InvalidArgument: the queue name is invalid.
            CorruptedEvent: a stored event of the queue cannot be decoded.
        """
        name = self.default_queue if name is None else name
        qid = queue_id(name)
        try:
            queue: Any = self._load(qid, fresh=fresh)
        except AggregateNotFoundError:
            return DispatchQueue.open(name, now=self.now(now))
        if not isinstance(queue, DispatchQueue):
            raise InvalidArgument("queue", "does not name a dispatch queue")
        return queue

    def queue_partitions_of(self, name: str | None = None) -> list[str]:
        """The names of every partition of queue ``name`` that may hold work, 0 first.

        The count is read from the journal at most every `PARTITIONS_READ_EVERY` seconds:
        claim paths ask on every call, and a partition added by another process is seen
        within that time.

        Raises:
            InvalidArgument: the queue name is invalid.
        """
        name = check_queue_name(self.default_queue if name is None else name)
        count, read_at = self._partition_counts.get(name, (1, -PARTITIONS_READ_EVERY))
        if time.monotonic() - read_at >= PARTITIONS_READ_EVERY:
            count = max(count, self.get_queue(name).partitions)
            self._partition_counts[name] = (count, time.monotonic())
        return [partition_queue(name, k) for k in range(count)]

    def partition_for(self, queue: str, run_id: UUID) -> int:
        """The partition a new run of ``queue`` goes to, recording the count on first use.

        The count is recorded on the queue's partition 0 before any run goes to a higher
        partition, so a worker reading it never misses a partition that holds work.

        Raises:
            Conflict: partition 0 kept moving while the count was recorded.
        """
        if self.queue_partitions == 1 and self.queue_partition_limit is None:
            return 0
        if self._partition_counts.get(queue, (1, 0.0))[0] < self.queue_partitions:
            self._record_partitions(queue, self.queue_partitions)
        filling = self._filling(len(self.queue_partitions_of(queue)))
        return filling.start + partition_of(run_id, len(filling))

    def _filling(self, count: int) -> range:
        """The partitions new runs go to when the queue has ``count``.

        All of them up to the count this process was configured with; past it (the count
        grew, see `_grow_full_partitions`), the newest half only: the older ones, full,
        drain and take no more.
        """
        return range(count) if count <= self.queue_partitions else range(count // 2, count)

    def _record_partitions(self, queue: str, count: int) -> None:
        for _ in range(CONFLICT_RETRIES):
            head = self.get_queue(queue)
            if head.widen(count, now=self.now()):
                try:
                    self.save(head)
                except Conflict:
                    continue
            recorded = max(head.partitions, count)
            self._partition_counts[queue] = (recorded, time.monotonic())
            return
        raise Conflict("queue kept moving while recording its partitions", queue=queue)

    def _filled_by_starts(self, objs: Sequence[Any]) -> list[DispatchQueue]:
        """The queues in ``objs`` that starts are about to leave past the partition limit."""
        limit = self.queue_partition_limit
        if limit is None:
            return []
        return [
            o
            for o in objs
            if isinstance(o, DispatchQueue)
            and len(o) > limit
            and any(isinstance(e, DispatchQueue.RunQueued) for e in o.pending_events)
            and self._is_filling(o.queue)
        ]

    def _is_filling(self, partition: str) -> bool:
        """Whether new runs still go to ``partition`` (only those make the count grow).

        Reads the count this process last knew (`partition_for` refreshed it for the start
        being saved), never the journal: this runs before the commit.
        """
        base, _, number = partition.partition("#")
        count = self._partition_counts.get(base, (1, 0.0))[0]
        return int(number or 0) in self._filling(count)

    def _grow_full_partitions(self, filled: Sequence[DispatchQueue]) -> None:
        """Double the partitions of each queue starts just left past its limit, once a commit.

        Runs then go to the new half only (`_filling`), so every partition stays near the
        limit however large the backlog: its state, snapshot and cold load with it. The
        start has committed, so nothing here may raise: a failure (a conflict that outlasts
        the retries, the database going away) is logged, and the next start past the limit
        tries again.
        """
        for base in sorted({queue.queue.partition("#")[0] for queue in filled}):
            try:
                count = len(self.queue_partitions_of(base))
                if count < MAX_PARTITIONS:
                    self._record_partitions(base, min(count * 2, MAX_PARTITIONS))
            except SquidMeshError as exc:
                logger.warning("partitions of %s not widened: %s", base, exc.code)
            except Exception:  # noqa: BLE001 - the start committed; raising would misreport it
                logger.warning("partitions of %s not widened", base, exc_info=True)

    # -- workflows ------------------------------------------------------------------------

    def register(self, *workflows: type[Workflow]) -> None:
        """Let this runtime execute ``workflows`` (``start`` registers what it starts).

        Raises:
            InvalidArgument: not a workflow class, or another class has its name.
        """
        for workflow in workflows:
            self.workflows.register(workflow)

    def can_execute(self, attempt: Attempt) -> bool:
        """Whether this runtime has the code for ``attempt``: its workflow, step and action.

        A run started from a runtime spec carries its definition, so only the action key
        (if any) must be allowed by this process's action registry (known and enabled). A
        step that this deploy no longer provides is left for a worker that has it: the run
        waits, and `explain_run` says which step is missing.
        """
        metadata = attempt.metadata or {}
        name = metadata.get("workflow")
        workflow = self.workflows.get(name) if isinstance(name, str) else None
        runtime_spec = metadata.get("definition") == "runtime_spec"
        if not runtime_spec and workflow is None:
            return False
        action = metadata.get("action")
        if action is not None:
            # A disabled action is a kill switch: its work waits, unclaimed, until a worker
            # that allows it (or this one, re-enabled) takes it.
            return self.action_registry is not None and self.action_registry.refusal(action) is None
        # A step this code declares by name is taken without reading the run: a step whose
        # kind changed under the same name is the run's kind, and custom-turned-built-in
        # fails at that step (`unknown_step`). Other names read the run's own graph.
        if runtime_spec or (workflow is not None and workflow.has_step(attempt.step)):
            return True
        return self._has_code_for(attempt)

    def _has_code_for(self, attempt: Attempt) -> bool:
        """The rare path: a step this code does not declare by name, read from the run's graph."""
        try:
            run = self.get_run(attempt.run_id)
        except SquidMeshError:
            return False
        definition = self.definition(run)
        planned = run.planned.get(attempt.runnable_key)
        if definition is None or planned is None:
            return definition is not None  # an unknown attempt: settling refuses it
        return definition.has_code(planned)

    def definition(self, run: WorkflowRun) -> RunDefinition | None:
        """The definition ``run`` executes under; ``None`` when this process lacks its code."""
        return definition_of(
            run,
            self.workflows.get(run.workflow),
            self.action_registry,
            self.definitions,
            self._runtime_specs,
            self.on_definition_change,
        )

    def require_definition(self, run: WorkflowRun) -> RunDefinition:
        """The definition ``run`` executes under, for decisions that plan its next work.

        Raises:
            InvalidArgument: this process has not registered the run's workflow.
        """
        definition = self.definition(run)
        if definition is None:
            raise InvalidArgument("workflow", f"{run.workflow!r} is not registered")
        return definition

    # -- starting and executing -----------------------------------------------------------

    def start(
        self,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue] | None = None,
        *,
        trigger: str | None = None,
        run_id: UUID | str | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a run of ``workflow``; returns its snapshot, first attempts already visible.

        The payload is validated before anything is written. The run's start, the command
        receipt, its entry runnables and their attempts commit in one transaction. Starting
        again with the same ``run_id`` (or ``idempotency_key``) and the same request
        returns the existing run.

        Raises:
            PayloadValidationError: the payload breaks the workflow's contract.
            InvalidTrigger: unknown trigger, or none named while the workflow has several.
            InvalidRunId: ``run_id`` is not a UUID.
            RunIdTaken: the run id belongs to a different request.
        """
        at = self.now(now)
        request = build_request(
            self,
            workflow,
            payload or {},
            trigger=trigger,
            run_id=run_id,
            queue=queue,
            idempotency_key=idempotency_key,
            metadata=metadata,
            now=at,
        )
        started = start_run(self, request, now=at)
        return self._snapshot(started.run, at, queue=started.queue)

    def start_spec(
        self,
        spec: WorkflowSpec | Mapping[str, JSONValue],
        payload: Mapping[str, JSONValue] | None = None,
        *,
        trigger: str | None = None,
        action_registry: ActionRegistry | None = None,
        run_id: UUID | str | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a run of a runtime-authored spec (a `WorkflowSpec` or its dict form).

        The spec is validated and its action keys resolved through ``action_registry``
        (default: the one this runtime was opened with) before anything is written. The
        resolved spec is stored with the run: workers execute it, and inspection and the
        graph read it, whatever is deployed later. Workers need the actions in their own
        registry (``SquidMesh.open(url, action_registry=...)``). Such runs cannot be
        replayed (`InvalidReplaySource`).

        Raises:
            InvalidArgument: no action registry here or in the call.
            WorkflowValidationError: the spec is invalid, or the registry refuses an action.
            PayloadValidationError: the payload breaks the spec's contract.
            InvalidTrigger: unknown trigger, or none named while the spec has several.
            InvalidRunId: ``run_id`` is not a UUID.
            RunIdTaken: the run id belongs to a different request.
        """
        at = self.now(now)
        request = build_spec_request(
            self,
            spec,
            payload or {},
            trigger=trigger,
            action_registry=action_registry,
            run_id=run_id,
            queue=queue,
            idempotency_key=idempotency_key,
            metadata=metadata,
            now=at,
        )
        started = start_run(self, request, now=at)
        return self._snapshot(started.run, at, queue=started.queue)

    def start_cron(
        self,
        workflow: type[Workflow],
        trigger: str,
        *,
        signal_id: str | None = None,
        intended_window: IntendedWindow | None = None,
        payload: Mapping[str, JSONValue] | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        now: datetime | None = None,
    ) -> CronStart:
        """Deliver one activation of a cron trigger; a repeat of its key starts nothing.

        The result says whether the run started, an existing run was returned, or the
        duplicate was skipped; ``.snapshot`` is the run either way. The duplicate key is
        ``idempotency_key`` when given, else the schedule identity (``signal_id``, or one
        derived from a complete ``intended_window``). ``metadata`` goes on the receipt.

        Raises:
            MissingScheduleIdempotencyKey: an idempotent trigger got no key, no signal id
                and no complete window.
            InvalidScheduleIdentity: a malformed key, signal id (``InvalidScheduleSignalId``)
                or window (``InvalidScheduleIntendedWindow``); all are ``InvalidArgument``.
            InvalidTrigger, InvalidArgument, PayloadValidationError: refused, nothing written.
        """
        return start_cron(
            self,
            workflow,
            trigger,
            signal_id=signal_id,
            intended_window=intended_window,
            payload=payload,
            queue=queue,
            idempotency_key=idempotency_key,
            metadata=metadata,
            now=self.now(now),
        )

    def execute_next(
        self,
        *,
        owner_id: str,
        queue: str | None = None,
        lease_for: timedelta = timedelta(seconds=300),
        heartbeat_interval: timedelta | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot | None:
        """Claim the next visible (or expired) attempt, run its step, and commit the outcome.

        Returns the run's snapshot after the outcome was applied, or ``None`` when nothing
        is visible. ``now`` fixes the claim and completion time (tests); otherwise the
        clock is read before the claim and again after the step.

        Raises:
            InvalidArgument: a bad owner id, lease or heartbeat interval.
        """
        check_owner(owner_id)
        check_lease(lease_for)
        check_heartbeat(heartbeat_interval, lease_for)
        partitions = self.queue_partitions_of(queue)
        first = random.randrange(len(partitions))  # concurrent callers spread out
        for partition in partitions[first:] + partitions[:first]:
            claims = claim_attempts(
                self,
                partition,
                owner_id=owner_id,
                limit=1,
                lease_for=lease_for,
                now=self.now(now),
            )
            if claims:
                finished = run_claimed(
                    self, claims[0], heartbeat_interval=heartbeat_interval, lease_for=lease_for
                )
                return self.settle([finished], queue=partition, now=now)[0]
        return None

    def settle(
        self, finished: Sequence[Finished], *, queue: str, now: datetime | None = None
    ) -> list[RunSnapshot]:
        """Commit finished attempts of ``queue`` together; snapshots of their runs, in order.

        ``queue`` is the partition the attempts were claimed from (`Claim.queue`).

        Refused outcomes (stale or expired claims, runs that ended meanwhile) change
        nothing; their runs' current snapshots are returned.
        """
        at = self.now(now)
        settled, _ = settle(self, queue, finished, now=at)
        for key, error in settled.refused.items():
            logger.warning("outcome of %s refused: %s", key, error.code)
        snapshots = []
        for item in finished:
            run = settled.runs.get(item.claim.attempt.run_id)
            snapshots.append(
                self._snapshot(run, at, queue=settled.queue)
                if run is not None
                else self.inspect_run(item.claim.attempt.run_id, now=at)
            )
        return snapshots

    def drain(
        self,
        *,
        owner_id: str = "drain",
        queue: str | None = None,
        max_steps: int = 10_000,
        now: datetime | None = None,
    ) -> int:
        """Execute visible attempts until none is left; returns how many were executed.

        For tests and scripts. With ``now`` it drains what is visible at that instant.

        Raises:
            InvalidArgument: ``max_steps`` was reached (a workflow that never settles).
        """
        for executed in range(max_steps):
            if self.execute_next(owner_id=owner_id, queue=queue, now=now) is None:
                return executed
        raise InvalidArgument("max_steps", f"still work after {max_steps} steps")

    def worker(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 1,
        owner_id: str | None = None,
        lease_for: timedelta = DEFAULT_LEASE,
        heartbeat_interval: timedelta | None = None,
        idle_backoff: tuple[timedelta, timedelta] = (
            timedelta(milliseconds=20),
            timedelta(seconds=1),
        ),
        batch_window: timedelta = DEFAULT_BATCH_WINDOW,
    ) -> Worker:
        """A worker that runs this runtime's attempts in ``concurrency`` threads.

        Call ``start()`` and ``stop()``, or ``run_forever()``. See `Worker`. Leases are 30 s
        by default and extended every third of the lease while steps run; outcomes a moment
        apart share a commit (``batch_window``).
        """
        return Worker(
            self,
            queues=list(queues) if queues is not None else [self.default_queue],
            concurrency=concurrency,
            owner_id=owner_id,
            lease_for=lease_for,
            heartbeat_interval=heartbeat_interval,
            idle_backoff=idle_backoff,
            batch_window=batch_window,
        )

    def start_many(
        self,
        workflow: type[Workflow],
        payloads: Iterable[Mapping[str, JSONValue]],
        *,
        trigger: str | None = None,
        queue: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        now: datetime | None = None,
    ) -> list[UUID]:
        """Start one run of ``workflow`` per payload, all in one commit; their ids, in order.

        A backlog started this way costs one commit instead of one per run (on Postgres a
        commit costs about as much as a thousand events). Every payload is validated before
        anything is written: one bad payload refuses them all. For idempotency keys or a
        host's own aggregates in the same commit, use `transaction`.

        A concurrent commit to the queue (a worker settling) makes the batch decide again;
        nothing of a refused try was written.

        Raises:
            PayloadValidationError, InvalidTrigger, PayloadTooLarge: refused, nothing written.
            Conflict: the queue kept moving for every retry; nothing was written.
        """
        batch = list(payloads)
        for _ in range(CONFLICT_RETRIES):
            try:
                with self.deciding, self.transaction() as tx:
                    return [
                        tx.start(
                            workflow,
                            payload,
                            trigger=trigger,
                            queue=queue,
                            metadata=metadata,
                            now=now,
                        )
                        for payload in batch
                    ]
            except Conflict as exc:
                if type(exc) is not Conflict:  # RunIdTaken and the like: retrying cannot help
                    raise
        raise Conflict("queue kept moving while starting a batch", queue=queue or "default")

    def list_workers(
        self, *, include_gone: bool = False, now: datetime | None = None
    ) -> list[WorkerInfo]:
        """Worker processes of this journal, newest first: ``live`` or ``silent`` (likely dead).

        With ``include_gone``, also the last workers that stopped or were released.
        """
        return list_workers(self, now=self.now(now), include_gone=include_gone)

    def release_worker(
        self,
        owner_id: str,
        *,
        queues: Sequence[str] | None = None,
        actor: str | None = None,
        now: datetime | None = None,
    ) -> ReleaseReport:
        """Treat every claim of ``owner_id`` as expired now, so its steps are redelivered.

        For a worker known to be dead (its host is gone): its attempts need not wait for
        their leases. If it was alive after all, its outcomes are refused as expired and the
        steps run again elsewhere (delivery is at least once).

        Raises:
            InvalidArgument: an empty id, or an unknown worker and no ``queues``.
        """
        with control_span("release_worker", None, owner_id=owner_id):
            return release_worker(
                self,
                owner_id,
                queues=list(queues) if queues is not None else None,
                actor=actor,
                now=self.now(now),
            )

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Commit a host's aggregates and the runs it starts together, or nothing at all.

        ::

            with mesh.transaction() as tx:
                order = Order.place(...)
                tx.add(order)
                tx.start(Fulfilment, {"order_id": str(order.id)})

        Raises:
            Conflict: on exit, when any aggregate moved on; nothing was written.
        """
        return transaction(self)

    # -- controls -------------------------------------------------------------------------

    def apply_signal(self, signal: Signal) -> RunSnapshot:
        """Deliver a command envelope; every control goes through here.

        A signal read from JSON names its workflow: a start needs that workflow registered
        here (``open(..., workflows=...)`` or ``register``); one built from the class does not.

        Raises:
            InvalidArgument: the signal lacks what its type needs, or sets a field its type
                does not take.
            WorkflowNotRegistered: a start names a workflow not registered here; nothing
                was written.
            PayloadTooLarge: the signal's payload or metadata is over ``limits``.
            and the errors of the command it routes to.
        """
        return apply_signal(self, signal)

    def cancel(
        self,
        run_id: UUID | str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """End the run as cancelled; its queued attempts can no longer be claimed.

        ``metadata`` is kept on the receipt (sensitive keys redacted).

        Raises:
            RunNotFound, InvalidRunId: no such run.
            RunTerminal: the run already ended.
            InvalidSignal: metadata that is not JSON, a blank key or a naive ``now``.
        """
        return self.apply_signal(
            Signal.cancel_run(
                run_id,
                actor=actor,
                comment=reason,
                metadata=dict(metadata or {}),
                idempotency_key=idempotency_key,
                occurred_at=now,
            )
        )

    def forget_run(
        self,
        run_id: UUID | str,
        *,
        actor: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Erase an erasable run's personal data for good (crypto-shredding).

        A run still under way is cancelled first (reason ``run_data_forgotten``): it would
        otherwise go on running on erased data. Then its data key is destroyed, so the
        payload, step inputs and outputs, manual decisions and dynamic work it stored read
        as `squidmesh_es.redaction.ERASED` in every event and snapshot (and in backups of
        the key table taken from then on); and a ``RunDataForgotten`` fact is recorded, so
        projections rewrite their copies. The run's history still loads, inspects, explains
        and graphs. Calling it again is harmless.

        Raises:
            RunNotFound, InvalidRunId: no such run.
            RunNotErasable: the run's workflow is not ``erasable``: its data is in clear.
            Conflict: the run kept moving for every retry (the key is destroyed already;
                call again to record the fact).
        """
        run = self.get_run(run_id)
        if not run.erasable:
            raise RunNotErasable(run.run_id)
        if not run.is_terminal:
            try:
                self.cancel(run.run_id, actor=actor, reason="run_data_forgotten", now=now)
            except RunTerminal:
                pass  # it ended meanwhile
        self.data_keys.destroy(run.run_id, now=self.now(now))
        self.sealer.forget(run.run_id)
        for _ in range(CONFLICT_RETRIES):
            run = self.get_run(run.run_id)
            if not run.forget_data(actor=actor, now=self.now(now)):
                break
            try:
                self.save(run)
            except Conflict:
                continue
            break
        else:
            raise Conflict("run kept moving while forgetting its data", run_id=str(run.run_id))
        return self.inspect_run(run.run_id)

    def resume(
        self,
        run_id: UUID | str,
        *,
        actor: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Resume the pause step the run waits at.

        Raises:
            ManualStepMismatch: the run is not paused at a pause step.
            RunTerminal: the run ended.
            InvalidSignal: metadata that is not JSON, a blank key or a naive ``now``.
        """
        return self._decide_manual(
            Signal.resume_run, run_id, actor, comment, metadata, idempotency_key, now
        )

    def approve(
        self,
        run_id: UUID | str,
        *,
        actor: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Approve the approval step the run waits at; the run takes its ok route.

        Raises:
            ManualStepMismatch: the run is not paused at an approval step.
            RunTerminal: the run ended.
            InvalidSignal: metadata that is not JSON, a blank key or a naive ``now``.
        """
        return self._decide_manual(
            Signal.approve_run, run_id, actor, comment, metadata, idempotency_key, now
        )

    def reject(
        self,
        run_id: UUID | str,
        *,
        actor: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Reject the approval step the run waits at; the run takes its error route.

        Raises:
            ManualStepMismatch: the run is not paused at an approval step.
            RunTerminal: the run ended.
            InvalidSignal: metadata that is not JSON, a blank key or a naive ``now``.
        """
        return self._decide_manual(
            Signal.reject_run, run_id, actor, comment, metadata, idempotency_key, now
        )

    def _decide_manual(
        self,
        build: Callable[..., Signal],
        run_id: UUID | str,
        actor: str | None,
        comment: str | None,
        metadata: Mapping[str, JSONValue] | None,
        idempotency_key: str | None,
        now: datetime | None,
    ) -> RunSnapshot:
        signal = build(
            run_id,
            actor=actor,
            comment=comment,
            metadata=dict(metadata or {}),
            idempotency_key=idempotency_key,
            occurred_at=now,
        )
        return self.apply_signal(signal)

    def replay(
        self,
        run_id: UUID | str,
        *,
        allow_irreversible: bool = False,
        actor: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a fresh run from ``run_id``'s trigger and input; returns the new run.

        Delivered as ``Signal.replay_run``. The key defaults to ``replay_run:<run_id>``, so
        replaying the same source again returns the same new run; pass another key for a
        second replay. The receipt, with ``actor``, ``comment`` and ``metadata``, is the
        first entry of the new run's command history.

        Raises:
            UnsafeReplay: completed steps are irreversible or not compensatable (pass
                ``allow_irreversible=True`` to replay anyway).
            InvalidReplaySource: the source cannot be replayed here.
            DefinitionMismatch: the workflow changed since the source started.
            InvalidSignal: metadata that is not JSON, a blank key or a naive ``now``.
        """
        return self.apply_signal(
            Signal.replay_run(
                run_id,
                allow_irreversible=allow_irreversible,
                actor=actor,
                comment=comment,
                metadata=metadata,
                occurred_at=now,
                idempotency_key=idempotency_key,
            )
        )

    def start_child_run(
        self,
        ctx: StepContext,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue],
        *,
        child_key: str,
        trigger: str | None = None,
        queue: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> RunSnapshot:
        """Start ``workflow`` as a child of the step ``ctx`` runs (or find it if started).

        Usually called as ``ctx.start_child_run(...)`` from inside a step.

        Raises:
            RunTerminal: the parent run ended.
            StaleClaim: the parent step's result was already applied.
        """
        at = self.now()
        run = start_child(
            self,
            ctx,
            workflow,
            payload,
            child_key=child_key,
            trigger=trigger,
            queue=queue,
            metadata=metadata,
            now=at,
        )
        return self._snapshot(run, at)

    # -- dynamic work -----------------------------------------------------------------------

    def preview_dynamic_work(
        self,
        run_id: UUID | str,
        proposal: Mapping[str, object],
        *,
        action_registry: ActionRegistry | None = None,
        now: datetime | None = None,
    ) -> DynamicWorkPreview:
        """What ``proposal`` would add to the run's graph, checked as for recording; no write.

        ``proposal`` is ``{dynamic_key, origin: {runnable_key, step, attempt}, nodes: [{id,
        action?, input?, retry?: {max_attempts}, metadata?}], edges?, reason?, metadata?}``.
        With ``action_registry``, every node must name an allowed action.

        Raises:
            RunNotFound, InvalidRunId: no such run.
            RunTerminal: the run ended.
            InvalidDynamicWork: a rule is broken; ``reason`` says which.
            ActionNotAllowed: with ``action_registry``, a node names an action it refuses.
            DefinitionMismatch: the run's definition is not the one this process holds.
        """
        self.limits.measure(proposal, what="dynamic_work")
        return preview_dynamic_work(
            self, run_id, proposal, action_registry=action_registry, now=self.now(now)
        )

    def record_dynamic_work(
        self,
        run_id: UUID | str,
        proposal: Mapping[str, object],
        *,
        action_registry: ActionRegistry | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Record discovered work for inspection only: nothing runs, no decision changes.

        The same proposal again is a duplicate and writes nothing.

        Raises:
            RunNotFound, InvalidRunId, RunTerminal, InvalidDynamicWork, DefinitionMismatch:
                as for `preview_dynamic_work`; nothing is written.
        """
        self.limits.measure(proposal, what="dynamic_work")
        at = self.now(now)
        run = record_dynamic_work(self, run_id, proposal, action_registry=action_registry, now=at)
        return self._snapshot(run, at)

    def schedule_dynamic_work(
        self,
        run_id: UUID | str,
        proposal: Mapping[str, object],
        *,
        action_registry: ActionRegistry | None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Record the work and make each node a runnable that workers claim, in one commit.

        The origin runnable must already be applied, and every node must name an action
        ``action_registry`` allows; workers run it through their own registry. A node may ask
        for ``retry: {max_attempts: n}``. Edges are graph metadata, not ordering. The run
        completes only after its scheduled nodes; a node that fails for good fails the run.

        Raises:
            InvalidDynamicWork: a rule is broken (``missing_action_registry`` without one).
            ActionNotAllowed: a node names an action the registry refuses.
            RunNotFound, InvalidRunId, RunTerminal, DefinitionMismatch: nothing is written.
        """
        self.limits.measure(proposal, what="dynamic_work")
        at = self.now(now)
        run, queue = schedule_dynamic_work(
            self, run_id, proposal, action_registry=action_registry, now=at
        )
        return self._snapshot(run, at, queue=queue)

    def recover(
        self,
        *,
        queue: str | None = None,
        run_id: UUID | str | None = None,
        now: datetime | None = None,
    ) -> RecoveryReport:
        """Schedule planned-but-unscheduled work, then apply finished-but-unapplied results.

        Idempotent: a second pass finds nothing to repair.
        """
        with control_span("recover", run_id):
            return recover(self, queue=queue, run_id=run_id, now=self.now(now))

    # -- reading --------------------------------------------------------------------------

    def inspect_run(
        self, run_id: UUID | str, *, include_history: bool = False, now: datetime | None = None
    ) -> RunSnapshot:
        """The run as its journal says now: authoritative and read-your-writes.

        Raises:
            RunNotFound, InvalidRunId: no such run.
        """
        return self._snapshot(self.get_run(run_id), self.now(now), include_history=include_history)

    def explain_run(self, run_id: UUID | str, *, now: datetime | None = None) -> Explanation:
        """Why the run is where it is, what to do next, and the evidence, from its journal.

        A step of the run that this deploy no longer provides is named, with the run's and
        this deploy's definition fingerprints (only where this runtime registered the
        run's workflow: a process without it is no deploy of it).

        Raises:
            RunNotFound, InvalidRunId: no such run.
        """
        at = self.now(now)
        run = self.get_run(run_id)
        queue = self.get_queue(run.dispatch_queue)
        snapshot = self._snapshot(run, at, queue=queue)
        missing = missing_steps(self, run, queue)
        return explain_run_snapshot(snapshot, now=at, missing_steps=missing)

    def check_deploy(self) -> list[DeployProblem]:
        """Runs in flight of the workflows registered here that this code cannot serve.

        Open a runtime with the code about to be deployed and call it before the deploy
        goes live: each problem names the run and the steps of its own graph that the code
        lacks (or says the code would fail it). Reads every run start: not for hot paths.
        """
        return check_deploy(self)

    def migrate_run(
        self,
        run_id: UUID | str,
        *,
        to: type[Workflow] | None = None,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> Migration:
        """Move a run in flight onto ``to``'s definition (default: its registered class).

        Safe moves only: every step the run applied or waits on exists in the new
        definition with the same kind, every route it took still leads where it led, and
        no new step would wait forever. The move is a ``RunMigrated`` event with ``actor``
        and ``reason``; the run then follows the new graph. ``dry_run`` checks and writes
        nothing. A run already on that definition is left alone (``unchanged``).

        Raises:
            UnsafeMigration: ``conflicts`` names each conflicting step; nothing is written.
            RunTerminal: the run has ended.
            InvalidArgument: the run carries a runtime-authored spec, ``to`` is another
                workflow, or none is registered here.
            RunNotFound, InvalidRunId: no such run.
        """
        return migrate_run(
            self, run_id, to=to, actor=actor, reason=reason, dry_run=dry_run, now=self.now(now)
        )

    def inspect_run_graph(
        self, run_id: UUID | str, *, include_history: bool = False, now: datetime | None = None
    ) -> RunGraph:
        """The run's workflow graph with node and edge status; ``.to_map()`` for UIs.

        Without the workflow's code registered, nodes come without edges.

        Raises:
            RunNotFound, InvalidRunId: no such run.
        """
        run = self.get_run(run_id)
        snapshot = self._snapshot(run, self.now(now), include_history=include_history)
        definition = self.definition(run)
        spec = definition.spec if definition is not None else None
        return build_run_graph(snapshot, spec, include_history=include_history)

    def _snapshot(
        self,
        run: WorkflowRun,
        now: datetime,
        *,
        queue: DispatchQueue | None = None,
        include_history: bool = False,
    ) -> RunSnapshot:
        queue = queue if queue is not None else self.get_queue(run.dispatch_queue)
        definition = self.definition(run)
        snapshot = build_run_snapshot(
            run,
            queue.attempts_of(run.run_id),
            now=now,
            spec=definition.spec if definition is not None else None,
            include_history=include_history,
            queue_version=queue.version,
            queue_anomalies=queue.anomalies,
        )
        if definition is not None and definition.changed(run) is not None:
            # The run follows its own graph; the evidence says today's code declares another.
            snapshot = snapshot.model_copy(update={"definition_matches": False})
        return snapshot

    def list_runs(
        self,
        *,
        workflow: str | type[Workflow] | None = None,
        status: str | None = None,
        limit: int = 50,
        **filters: Any,
    ) -> list[RunSummary]:
        """Runs newest first: from the catalog projection when attached, else from the journal.

        With projections attached (``Projections.attach(mesh)``) they catch up first, so a
        run this process just started is listed, and no events are scanned. Filters besides
        ``workflow`` and ``status`` (``queue``, ``trigger``, ``parent_run_id``,
        ``idempotency_key``, ``schedule_key``, ``schedule_signal_id``, ``index``) and the
        ``after`` cursor are those of ``squidmesh_es.projections.list_runs``, described in
        ``docs/projections.md``. Without projections the journal answers ``workflow``,
        ``status``, ``queue``, ``trigger`` and ``parent_run_id``, reading every run start
        on each call (fine for small journals). Deadline statuses are evaluated at ``now``
        (default: the runtime's clock), not when the row was written.

        Raises:
            InvalidArgument: a bad filter value, or, without projections, a filter only the
                catalog answers.
        """
        filters["now"] = self.now(filters.get("now"))
        if self._projections is None:
            now = filters.pop("now")
            return list_runs_from_journal(
                self, workflow=workflow, status=status, limit=limit, now=now, filters=filters
            )
        self._projections.after_command()
        return list(
            self._projections.list_runs(workflow=workflow, status=status, limit=limit, **filters)
        )

    def attach_projections(self, projections: ProjectionsPort) -> None:
        """Keep ``projections`` up to date from a background thread after each commit.

        Commands never wait for them, and a failing projection never fails a command.
        """
        self._projections = projections
        if self._projections_thread is None:
            self._projections_thread = threading.Thread(
                target=self._follow_commits, name="squidmesh-projections", daemon=True
            )
            self._projections_thread.start()
        self._projections_due.set()

    def detach_projections(self, projections: ProjectionsPort) -> None:
        """Stop nudging ``projections``; returns once no catch-up of theirs is running.

        ``Projections.close()`` calls it before closing its views, so the background thread
        never reads a view that is being closed.
        """
        with self._projections_busy:
            if self._projections is projections:
                self._projections = None

    def _follow_commits(self) -> None:
        while not self._closing:
            self._projections_due.wait()
            self._projections_due.clear()
            with self._projections_busy:
                if self._projections is not None and not self._closing:
                    self._projections.after_command()

    def close(self) -> None:
        """Stop the projections thread, then close the journal's connections."""
        self._closing = True
        self._projections_due.set()
        if self._projections_thread is not None:
            self._projections_thread.join(timeout=10)
        self.queue_snapshots.close()
        self.step_loop.close()
        super().close()

    # -- live hints -----------------------------------------------------------------------

    def notify_scheduled(self, attempts: Sequence[ScheduledAttempt]) -> None:
        """Send wakeup hints for committed attempts and record the ones that went out.

        A failing notifier is logged and never undoes the scheduling it announces.
        """
        if self.notifier is None or not attempts:
            return
        sent: dict[str, list[str]] = {}
        for attempt in attempts:
            try:
                self.notifier.notify_attempt_scheduled(attempt)
            except Exception:  # noqa: BLE001 - a hint is best effort by contract
                logger.warning("wakeup hint for %s failed", attempt.runnable_key, exc_info=True)
                continue
            sent.setdefault(attempt.queue, []).append(attempt.runnable_key)
        for queue_name, keys in sent.items():
            self._record_wakeups(queue_name, keys)

    def _record_wakeups(self, queue_name: str, keys: list[str]) -> None:
        for _ in range(CONFLICT_RETRIES):
            queue = self.get_queue(queue_name)
            for key in keys:
                try:
                    queue.record_wakeup(key, now=self.now())
                except SquidMeshError:
                    continue  # already claimed and finished, or its run ended: nothing to mark
            if not queue.pending_events:
                return
            try:
                self.save(queue)
            except Conflict:
                continue
            return
        logger.warning("wakeups for %s not recorded: the queue kept moving", queue_name)

    def _load(self, aggregate_id: UUID, *, fresh: bool = True) -> Any:
        # The library fast-forwards a cached aggregate under its lock but copies it after
        # releasing it, so a load racing another thread's load could copy a half-updated
        # object. One lock around the whole load closes that window.
        with self._loading:
            cache = self.repository.cache
            if not fresh and cache is not None:
                try:
                    return deepcopy(cache.get(aggregate_id))
                except KeyError:
                    pass
            return self.repository.get(aggregate_id, projector_func=_replay)

    def _cache_committed(self, objs: Sequence[Any]) -> None:
        """Cache a copy of each run and queue just committed, as of its new version.

        The library caches only what it loads, and its next load of the same aggregate
        reads back and applies again the events this process has just written: a sixth of
        a step's CPU on memory. A copy cached here makes that read find nothing new. Loads
        still fast-forward, so writes of other processes are seen as before; a copy older
        than what is cached (another thread committed later) is not cached.
        """
        cache = self.repository.cache
        if cache is None:
            return
        for obj in objs:
            if not isinstance(obj, WorkflowRun | DispatchQueue):
                continue
            committed = deepcopy(obj)
            with self._loading:
                try:
                    cached = cache.get(obj.id)
                except KeyError:
                    cached = None
                if cached is None or cached.version < committed.version:
                    cache.put(obj.id, committed)

    def _take_snapshots(self, processing_event: Any) -> None:
        # Snapshots are disposable caches written after the events committed: a failure
        # to write one must not make a committed command look failed.
        try:
            super()._take_snapshots(processing_event)
            self._snapshot_queues(processing_event)
        except Exception:  # noqa: BLE001
            logger.warning("snapshot not written; loads replay more events", exc_info=True)

    def _snapshot_queues(self, processing_event: Any) -> None:
        """Snapshot each saved queue once enough events have passed since its last one.

        Enough is `queue_snapshot_interval` of its live state, so snapshot writing costs
        O(1) per event however large the backlog. A copy of the saved object (the state at
        its last event) is written as it is, with no replay, by a background thread.
        """
        if self.snapshots is None:
            return
        for aggregate_id, aggregate in processing_event.aggregates.items():
            if not isinstance(aggregate, DispatchQueue):
                continue
            since = aggregate.version - self._queue_snapshot_at.get(aggregate_id, 0)
            if since >= queue_snapshot_interval(len(aggregate)):
                self._queue_snapshot_at[aggregate_id] = aggregate.version
                self.queue_snapshots.submit(aggregate)

    def _write_queue_snapshot(self, queue: DispatchQueue) -> None:
        assert self.snapshots is not None
        self.snapshots.put([DispatchQueue.Snapshot.take(queue)])

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Commit every pending event of ``objs`` in one transaction.

        Raises:
            Conflict: one of the aggregates moved on since it was loaded; nothing was
                written. Discard the objects, reload and decide again.
            StorageUnavailable: the database could not be reached, or the events table
                stayed locked past ``lock_timeout`` on every retry; nothing was written.
        """
        definitions = self.definitions.to_save(objs)  # graphs of runs started here, once
        filled = self._filled_by_starts(objs)
        erasable = {o.id for o in objs if isinstance(o, WorkflowRun) and o.erasable}
        for run_id in erasable:
            self.sealer.prepare(run_id)  # its key exists before its first event is stored
        try:
            if erasable:
                with self.sealer.sealing(erasable):
                    recordings = self._record_all([*objs, *definitions], kwargs)
            else:
                recordings = self._record_all([*objs, *definitions], kwargs)
        except IntegrityError as exc:
            self.definitions.saved(definitions, committed=False)
            ids = [str(getattr(o, "id", getattr(o, "originator_id", "?"))) for o in objs if o]
            raise Conflict("journal moved on since it was read", aggregates=ids) from exc
        except OperationalError as exc:
            backend = self.storage.backend if self.storage is not None else "journal"
            raise StorageUnavailable(backend=backend, reason=redact_text(str(exc))) from exc
        self.definitions.saved(definitions, committed=True)
        self._cache_committed(objs)
        if filled:
            self._grow_full_partitions(filled)
        if self._projections is not None and recordings:
            self._projections_due.set()
        return recordings

    def _record_all(self, objs: list[Any], kwargs: dict[str, Any]) -> list[Recording[UUID]]:
        """The library's `Application.save`, minus two Protocol checks per object.

        ``isinstance`` against its runtime-checkable protocols costs about 0.1 ms a call,
        twice per aggregate saved: 5% of a step on memory. Our aggregates are checked by
        class; anything else (a host's event) goes the library's way.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the library still calls its deprecated hook
        return recordings


_OPEN_ATTEMPTS = 5


def _replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """Apply ``events`` in order: the library's projector minus its per-event Protocol check.

    ``isinstance`` against a runtime-checkable Protocol cost about 50 µs an event, a tenth
    of a step; our events are the library's own classes, so the check proves nothing.
    """
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


QUEUE_SNAPSHOT_INTERVAL = 200
"""Fewest events between two snapshots of a queue."""


PARTITIONS_READ_EVERY = 1.0
"""Seconds a process trusts the partition count it last read of a queue."""


def queue_snapshot_interval(live_attempts: int) -> int:
    """Events between snapshots of a queue: 200, or as many as it has live attempts.

    A snapshot costs O(live attempts), so taking one every max(200, live) events keeps
    that O(1) per event, and a cold load replays at most as many events as the snapshot
    holds attempts.
    """
    return max(QUEUE_SNAPSHOT_INTERVAL, live_attempts)


def _concurrent_ddl(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is Postgres refusing racing catalog updates."""
    seen: BaseException | None = exc
    while seen is not None:
        if "concurrently updated" in str(seen) or "pg_type_typname_nsp_index" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _create_postgres_schema(settings: StorageSettings) -> None:
    """Create the URL's schema (the server was probed by `create_location`).

    Raises:
        StorageUnavailable: the server refused (no such database, no right to create it).
    """
    import psycopg
    from psycopg import sql

    env = settings.env
    try:
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]) or None,
            autocommit=True,
        ) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(str(settings.postgres_schema))
                )
            )
    except psycopg.Error as exc:
        reason = redact_text(" ".join(str(exc).split()))
        raise StorageUnavailable(backend="postgres", reason=reason) from exc
