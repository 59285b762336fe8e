"""The journal of one run: what was started, planned, applied, decided and how it ended.

The state is the spec's workflow projection: planned and applied runnables, context, manual
state, child links, command history, terminal status and anomalies. Command methods check
the run's rules and raise before writing; event application re-checks them so that
externally written histories load and report anomalies instead of crashing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, final
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from squidmesh_es.domain._journal import (
    ALREADY_RECORDED,
    AnomalyLog,
    JSONDict,
    ToleratedEvent,
    Verdict,
)
from squidmesh_es.domain._keys import check_queue_name, partition_queue
from squidmesh_es.domain._personal import PERSONAL_STATE_FIELDS, map_paths
from squidmesh_es.domain._vocab import (
    AnomalyReason,
    ManualAction,
    ManualKind,
    RunStatus,
    TerminalStatus,
)
from squidmesh_es.errors import (
    ActiveManualStep,
    ConflictingChildRun,
    ConflictingIntent,
    InvalidArgument,
    ManualStepMismatch,
    RunNotErasable,
    RunNotTerminal,
    RunTerminal,
    UnknownAttempt,
)
from squidmesh_es.redaction import erased
from squidmesh_es.redaction import redact_json as redact_metadata
from squidmesh_es.workflow import InputBinding, run_state, select_input

__all__ = ["Runnable", "WorkflowRun", "is_side_work"]


@dataclass(frozen=True, slots=True)
class Runnable:
    """One planned unit of work: a step of a run at an attempt number, visible from a time.

    The input is carried (``input``) or referred to (``input_from``), never both. A
    declared step refers to the run state it was planned on (`WorkflowRun.step_input`
    resolves it), so a large payload is stored once, in ``RunStarted``, and not again in
    every runnable and queue attempt; a dynamic node refers to its recorded proposal and a
    compensation callback to the step it undoes. Runnables planned before 0.3 carry theirs.
    """

    runnable_key: str
    step: str
    attempt_number: int
    input: JSONDict | None
    visible_at: datetime
    queue: str
    idempotency_key: str | None = None
    recovery: JSONDict | None = None
    deferred: JSONDict | None = None
    deadline: JSONDict | None = None
    action: str | None = None
    compensation: JSONDict | None = None
    """Set on a saga callback: the completed step it undoes and that step's runnable key."""
    dynamic: JSONDict | None = None
    """Set on a dynamic node: its dynamic key, origin and retry intent."""
    input_from: JSONDict | None = None
    """Instead of ``input``: ``{"applied": n}`` (the run state after the first ``n`` applied
    results) and, for a step that binds its input, ``"select"`` (the bindings); for a
    dynamic node, ``{"dynamic": key, "node": id}`` (the node's input in that record); for a
    compensation callback, ``{"undo": key, "output_key": ..., "failure": ...}`` (the undone
    runnable's input and output, and the failure that started the rollback)."""

    @classmethod
    def from_state(cls, state: JSONDict) -> Runnable:
        """The runnable a ``RunnablesPlanned`` entry describes (the inverse of `to_state`)."""
        return cls(
            runnable_key=str(state["runnable_key"]),
            step=str(state["step"]),
            attempt_number=int(state["attempt_number"]),
            input=state.get("input"),
            visible_at=state["visible_at"],
            queue=str(state["queue"]),
            idempotency_key=state.get("idempotency_key"),
            recovery=state.get("recovery"),
            deferred=state.get("deferred"),
            deadline=state.get("deadline"),
            action=state.get("action"),
            compensation=state.get("compensation"),
            dynamic=state.get("dynamic"),
            input_from=state.get("input_from"),
        )

    def to_state(self) -> JSONDict:
        """The runnable as stored in ``RunnablesPlanned`` (unset optional fields left out)."""
        state: JSONDict = {
            "runnable_key": self.runnable_key,
            "idempotency_key": self.idempotency_key or self.runnable_key,
            "step": self.step,
            "attempt_number": self.attempt_number,
            "visible_at": self.visible_at,
            "queue": self.queue,
        }
        if self.input_from is None:
            state["input"] = self.input
        for name, value in (
            ("input_from", self.input_from),
            ("recovery", self.recovery),
            ("deferred", self.deferred),
            ("deadline", self.deadline),
            ("action", self.action),
            ("compensation", self.compensation),
            ("dynamic", self.dynamic),
        ):
            if value is not None:
                state[name] = value
        return state


def is_side_work(planned: JSONDict) -> bool:
    """Whether a planned runnable lies outside the definition (a callback or a dynamic node).

    Such runnables carry their own code reference and retry rules.
    """
    return planned.get("compensation") is not None or planned.get("dynamic") is not None


@final
class WorkflowRun(AnomalyLog, Aggregate):
    """One run's journal; its id is the run id and its version is the run fence."""

    TOPIC = "squidmesh.WorkflowRun"

    if TYPE_CHECKING:  # state set by events; annotations here would become __init__ args
        workflow: str
        trigger: str | None
        queue: str
        input: JSONDict
        start_context: JSONDict
        definition_fingerprint: str | None
        definition_version: str | None
        replayed_from_run_id: str | None
        spec: JSONDict | None
        trace_context: JSONDict | None
        started_at: datetime
        status: str
        terminal_status: str | None
        error: JSONDict | None
        ended_at: datetime | None
        planned: dict[str, JSONDict]
        applied: dict[str, JSONDict]
        manual_state: JSONDict | None
        command_history: list[JSONDict]
        child_runs: list[JSONDict]
        dynamic_work: list[JSONDict]
        erasable: bool
        data_forgotten_at: datetime | None

    partition = 0
    """The partition of its queue the run's work goes to; fixed when it starts."""
    trace_context = None  # snapshots taken before the field existed lack it

    class Event(Aggregate.Event):
        """Base of the run's events."""

    class RunStarted(Event, Aggregate.Created):
        """The run began: workflow, trigger, resolved input and the definition it runs under."""

        TOPIC = "squidmesh.WorkflowRun.RunStarted"
        workflow: str
        trigger: str | None
        input: JSONDict
        queue: str
        context: JSONDict
        definition_fingerprint: str | None
        definition_version: str | None
        replayed_from_run_id: str | None
        spec: JSONDict | None
        partition: int = 0
        """The partition of ``queue`` the run's work goes to (absent before partitioning)."""
        erasable: bool = False
        """The run's personal data is sealed under its own data key (absent before 0.3)."""
        trace_context: JSONDict | None = None
        """W3C trace context of the code that started the run (``traceparent``...); absent
        in histories written before it existed and when the start was not traced."""

        def apply(self, run: WorkflowRun) -> None:
            run.workflow = self.workflow
            run.partition = self.partition
            run.trigger = self.trigger
            run.input = self.input
            run.queue = self.queue
            run.start_context = self.context
            run.definition_fingerprint = self.definition_fingerprint
            run.definition_version = self.definition_version
            run.replayed_from_run_id = self.replayed_from_run_id
            run.spec = self.spec
            run.trace_context = self.trace_context
            run.started_at = self.timestamp
            run.status = RunStatus.STARTED.value
            run.terminal_status = None
            run.error = None
            run.ended_at = None
            run.planned = {}
            run.applied = {}
            run.manual_state = None
            run.command_history = []
            run.child_runs = []
            run.dynamic_work = []
            run.erasable = bool(getattr(self, "erasable", False))
            run.data_forgotten_at = None
            run.anomalies = []
            run.anomaly_count = 0

    class CommandReceived(ToleratedEvent, Event):
        """A command reached the run (the spec's ``run_signal_received``): the audit receipt."""

        TOPIC = "squidmesh.WorkflowRun.CommandReceived"
        signal_type: str
        payload: JSONDict
        metadata: JSONDict
        idempotency_key: str | None
        actor: str | None
        comment: str | None

        def evolve(self, run: WorkflowRun) -> None:
            run.command_history.append(
                {
                    "signal_type": self.signal_type,
                    "payload": self.payload,
                    "metadata": self.metadata,
                    "idempotency_key": self.idempotency_key,
                    "actor": self.actor,
                    "comment": self.comment,
                    "occurred_at": self.timestamp,
                }
            )

    class RunnablesPlanned(ToleratedEvent, Event):
        """Runnables the run decided to execute next; the first plan of a key wins."""

        TOPIC = "squidmesh.WorkflowRun.RunnablesPlanned"
        runnables: list[JSONDict]

        def evolve(self, run: WorkflowRun) -> None:
            if run.is_terminal:
                run.note_anomaly(AnomalyReason.TERMINAL_RUN, self)
                return
            for runnable in self.runnables:
                key = runnable.get("runnable_key")
                if not isinstance(key, str):
                    run.note_anomaly(AnomalyReason.MALFORMED_ENTRY, self)
                    continue
                existing = run.planned.get(key)
                if existing is None:
                    run.planned[key] = runnable
                elif existing != runnable:
                    run.note_anomaly(
                        AnomalyReason.CONFLICTING_RUNNABLE_INTENT, self, runnable_key=key
                    )
            run.refresh_status()

    class RunnableApplied(ToleratedEvent, Event):
        """A durable attempt result was applied to the run, with the route it selected.

        ``claim`` holds the facts of the claim that produced the result, for the run's own
        audit trail: ``claim_id``, ``owner_id``, ``claimed_at``, ``lease_until``,
        ``finished_at`` and the worker's ``outcome``; ``None`` for results no worker
        claimed (manual decisions, inline built-ins) and in events written before it
        existed.
        """

        TOPIC = "squidmesh.WorkflowRun.RunnableApplied"
        REQUIRED = ("runnable_key", "outcome", "result", "error", "transition")
        runnable_key: str
        outcome: str
        result: JSONDict | None
        error: JSONDict | None
        transition: JSONDict | None
        claim: JSONDict | None = None

        def evolve(self, run: WorkflowRun) -> None:
            key = self.runnable_key
            if run.is_terminal:
                run.note_anomaly(AnomalyReason.TERMINAL_RUN, self, runnable_key=key)
            elif key not in run.planned:
                run.note_anomaly(AnomalyReason.UNKNOWN_RUNNABLE_INTENT, self, runnable_key=key)
            elif key not in run.applied:
                run.applied[key] = {
                    "runnable_key": key,
                    "step": run.planned[key]["step"],
                    "outcome": self.outcome,
                    "result": self.result,
                    "error": self.error,
                    "transition": self.transition,
                    "applied_at": self.timestamp,
                    "claim": self.claim,
                }
                run.refresh_status()

    class ManualStepPaused(ToleratedEvent, Event):
        """The run stopped at a pause or approval step until a person resolves it."""

        TOPIC = "squidmesh.WorkflowRun.ManualStepPaused"
        step: str
        kind: str
        metadata: JSONDict

        def evolve(self, run: WorkflowRun) -> None:
            anomaly = run.pause_rule(self.step, self.kind)
            if anomaly is ALREADY_RECORDED:
                return
            if anomaly is not None:
                run.note_anomaly(anomaly, self, step=self.step)
                return
            run.manual_state = {
                "step": self.step,
                "kind": self.kind,
                "paused_at": self.timestamp,
                "metadata": self.metadata,
            }
            run.refresh_status()

    class ManualStepResolved(ToleratedEvent, Event):
        """A person resumed, approved or rejected the current manual boundary."""

        TOPIC = "squidmesh.WorkflowRun.ManualStepResolved"
        step: str
        action: str
        result: JSONDict
        metadata: JSONDict

        def evolve(self, run: WorkflowRun) -> None:
            if run.is_terminal:
                run.note_anomaly(AnomalyReason.TERMINAL_RUN, self, step=self.step)
            elif not run.resolves_current_boundary(self.step, self.action):
                run.note_anomaly(AnomalyReason.STALE_MANUAL_RESOLUTION, self, step=self.step)
            else:
                run.manual_state = None
                run.refresh_status()

    class ChildRunStarted(ToleratedEvent, Event):
        """A step of this run started a child run; the link is kept for lineage."""

        TOPIC = "squidmesh.WorkflowRun.ChildRunStarted"
        child_run_id: str
        child_workflow: str
        child_trigger: str | None
        child_key: str
        origin: JSONDict
        metadata: JSONDict

        def evolve(self, run: WorkflowRun) -> None:
            record = self._record()
            anomaly = run.child_rule(record)
            if anomaly is ALREADY_RECORDED:
                return
            if anomaly is not None:
                run.note_anomaly(anomaly, self, child_run_id=self.child_run_id)
                return
            run.child_runs.append(record)

        def _record(self) -> JSONDict:
            return {
                "child_run_id": self.child_run_id,
                "child_workflow": self.child_workflow,
                "child_trigger": self.child_trigger,
                "child_key": self.child_key,
                "origin": self.origin,
                "metadata": self.metadata,
                "started_at": self.timestamp,
            }

    class DynamicWorkRecorded(ToleratedEvent, Event):
        """Work a step discovered at run time: recorded for inspection, or scheduled to run.

        ``status`` is ``recorded`` or ``scheduled``; events written before it existed read
        as ``recorded``.
        """

        TOPIC = "squidmesh.WorkflowRun.DynamicWorkRecorded"
        REQUIRED = ("dynamic_key", "origin", "nodes", "edges", "metadata", "reason")
        dynamic_key: str
        origin: JSONDict
        nodes: list[JSONDict]
        edges: list[JSONDict]
        metadata: JSONDict
        reason: str | None
        status: str = "recorded"

        def evolve(self, run: WorkflowRun) -> None:
            record = self._record()
            anomaly = run.dynamic_rule(record)
            if anomaly is ALREADY_RECORDED:
                return
            if anomaly is not None:
                run.note_anomaly(anomaly, self)
                return
            run.dynamic_work.append({**record, "recorded_at": self.timestamp})

        def _record(self) -> JSONDict:
            return {
                "dynamic_key": self.dynamic_key,
                "origin": self.origin,
                "nodes": self.nodes,
                "edges": self.edges,
                "metadata": self.metadata,
                "reason": self.reason,
                "status": self.status,
            }

    class RunEnded(ToleratedEvent, Event):
        """The run reached a terminal status (the spec's ``run_terminal``); it is absorbing."""

        TOPIC = "squidmesh.WorkflowRun.RunEnded"
        status: str
        error: JSONDict | None

        def evolve(self, run: WorkflowRun) -> None:
            if run.is_terminal:
                run.note_anomaly(AnomalyReason.TERMINAL_RUN, self)
                return
            run.terminal_status = self.status
            run.status = self.status
            run.error = self.error
            run.ended_at = self.timestamp
            run.manual_state = None

    class RunMigrated(ToleratedEvent, Event):
        """An operator moved the run onto another definition of its workflow.

        From here on the run follows the definition with ``to_fingerprint``; what it
        applied before stays as it was. ``actor`` and ``reason`` say who and why.
        """

        TOPIC = "squidmesh.WorkflowRun.RunMigrated"
        from_fingerprint: str | None
        to_fingerprint: str
        from_version: str | None
        to_version: str | None
        actor: str | None
        reason: str | None

        def evolve(self, run: WorkflowRun) -> None:
            if run.is_terminal:
                run.note_anomaly(AnomalyReason.TERMINAL_RUN, self)
                return
            run.definition_fingerprint = self.to_fingerprint
            run.definition_version = self.to_version

    class RunDataForgotten(Event):
        """The run's data key was destroyed: its personal data now reads as erased.

        Applying it erases the same fields from the state in memory (`PERSONAL_STATE_FIELDS`),
        so a copy loaded before the key was destroyed stops showing them too. It changes
        nothing else; a run is ended before it is forgotten, and the fact is written after
        the end, so it is applied to terminal runs without an anomaly.
        """

        TOPIC = "squidmesh.WorkflowRun.RunDataForgotten"
        actor: str | None

        def apply(self, run: WorkflowRun) -> None:
            erased_state = map_paths(dict(vars(run)), PERSONAL_STATE_FIELDS, erased)
            for name in {path.split(".")[0] for path in PERSONAL_STATE_FIELDS}:
                setattr(run, name, erased_state[name])
            run.data_forgotten_at = self.timestamp

    Created = RunStarted
    """The library looks for ``Created``; ours has the spec's name."""

    class Snapshot(LibrarySnapshot):
        """Checkpoint of the run's state; disposable."""

        TOPIC = "squidmesh.WorkflowRun.Snapshot"

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        run_id: UUID,
        workflow: str,
        trigger: str | None,
        input: JSONDict,
        queue: str,
        now: datetime,
        context: JSONDict | None = None,
        definition_fingerprint: str | None = None,
        definition_version: str | None = None,
        replayed_from_run_id: UUID | str | None = None,
        spec: JSONDict | None = None,
        partition: int = 0,
        erasable: bool = False,
        trace_context: JSONDict | None = None,
    ) -> WorkflowRun:
        """Begin the journal of a new run under ``run_id``; its work goes to ``partition``.

        ``erasable`` runs have their personal data sealed under a data key of their own when
        stored, so that `forget_data` can make it unreadable.
        """
        check_queue_name(queue)
        if not workflow:
            raise InvalidArgument("workflow", "must not be empty")
        return cls._create(
            cls.RunStarted,
            id=run_id,
            workflow=workflow,
            trigger=trigger,
            input=input,
            queue=queue,
            context=context or {},
            definition_fingerprint=definition_fingerprint,
            definition_version=definition_version,
            replayed_from_run_id=(
                str(replayed_from_run_id) if replayed_from_run_id is not None else None
            ),
            spec=spec,
            partition=partition,
            erasable=erasable,
            trace_context=trace_context,
            timestamp=now,
        )

    # -- derived state --------------------------------------------------------------------

    @property
    def dispatch_queue(self) -> str:
        """The name of the queue partition that holds the run's attempts."""
        return partition_queue(self.queue, self.partition)

    @property
    def run_id(self) -> UUID:
        """The run id (the aggregate id)."""
        run_id: UUID = self.id
        return run_id

    @property
    def is_terminal(self) -> bool:
        """Whether the run ended; terminal is absorbing."""
        return self.terminal_status is not None

    @property
    def context(self) -> JSONDict:
        """Applied results merged in application order, then the start context on top.

        Ok outcomes carry a step's output; of the error outcomes only a rejected approval
        carries one (the decision), the others an empty result.
        """
        merged: JSONDict = {}
        for applied in self.applied.values():
            if isinstance(applied["result"], dict):
                merged.update(applied["result"])
        merged.update(self.start_context)
        return merged

    def state_at(self, applied: int) -> JSONDict:
        """The run state as it was once the first ``applied`` results were applied.

        Results are applied in order and never removed, so this is the state every
        runnable planned at that point saw.
        """
        merged: JSONDict = {}
        for entry in islice(self.applied.values(), applied):
            if isinstance(entry["result"], dict):
                merged.update(entry["result"])
        merged.update(self.start_context)
        return run_state(self.input, merged)

    def step_input(self, planned: JSONDict) -> JSONDict:
        """The input of a planned runnable: carried, or resolved from its ``input_from``."""
        source = planned.get("input_from")
        if source is None:
            carried = planned.get("input")
            return carried if isinstance(carried, dict) else {}
        if "dynamic" in source:
            return self._node_input(str(source["dynamic"]), str(source["node"]))
        if "undo" in source:
            return self._callback_input(source)
        state = self.state_at(int(source["applied"]))
        select = source.get("select")
        if select is None:
            return state
        bindings = [InputBinding(str(b["key"]), tuple(b["path"])) for b in select]
        return select_input(str(planned["step"]), bindings, state)

    def _node_input(self, dynamic_key: str, node_id: str) -> JSONDict:
        for work in self.dynamic_work:
            if work["dynamic_key"] == dynamic_key:
                for node in work["nodes"]:
                    if node.get("id") == node_id and isinstance(node.get("input"), dict):
                        return dict(node["input"])
        return {}

    def _callback_input(self, source: JSONDict) -> JSONDict:
        """A compensation callback's input: the undone step's input and output, the failure."""
        key = str(source["undo"])
        applied = self.applied.get(key) or {}
        result = applied.get("result")
        result = result if isinstance(result, dict) else {}
        output_key = source.get("output_key")
        applied_at = applied.get("applied_at")
        return {
            "step": {
                "name": str(self.planned[key]["step"]),
                "runnable_key": key,
                "input": self.step_input(self.planned[key]),
                "output": result.get(output_key) if output_key is not None else result,
                "applied_at": (
                    applied_at.isoformat() if isinstance(applied_at, datetime) else applied_at
                ),
            },
            "failure": source.get("failure"),
        }

    def same_plan(self, existing: JSONDict, planned: JSONDict) -> bool:
        """Whether two plans of one key agree, their inputs compared as resolved."""
        if existing == planned:
            return True
        rest = ("input", "input_from")
        return {k: v for k, v in existing.items() if k not in rest} == {
            k: v for k, v in planned.items() if k not in rest
        } and self.step_input(existing) == self.step_input(planned)

    def pending_runnables(self) -> list[JSONDict]:
        """Planned runnables whose result is not applied yet, by runnable key."""
        return [self.planned[k] for k in sorted(self.planned) if k not in self.applied]

    def refresh_status(self) -> None:
        """Derive the status from the facts; a terminal status always wins."""
        if self.is_terminal:
            return
        if self.manual_state is not None:
            self.status = RunStatus.PAUSED.value
        elif not self.applied.keys() >= self.planned.keys():
            self.status = RunStatus.RUNNING.value
        elif self.planned:
            self.status = RunStatus.IDLE.value
        else:
            self.status = RunStatus.STARTED.value

    # -- rules ----------------------------------------------------------------------------

    def pause_rule(self, step: str, kind: str) -> Verdict:
        """One manual boundary at a time; the same pause again is a duplicate."""
        if self.is_terminal:
            return AnomalyReason.TERMINAL_RUN
        if self.manual_state is None:
            return None
        if self.manual_state["step"] == step and self.manual_state["kind"] == kind:
            return ALREADY_RECORDED
        return AnomalyReason.ACTIVE_MANUAL_STEP

    def resolves_current_boundary(self, step: str, action: str) -> bool:
        """Whether ``action`` on ``step`` resolves the boundary the run is paused at."""
        current = self.manual_state
        if current is None or current["step"] != step:
            return False
        try:
            return bool(ManualAction(action).kind.value == current["kind"])
        except ValueError:
            return False

    def child_rule(self, record: JSONDict) -> Verdict:
        """A child id links once; the identical link again is a duplicate."""
        if self.is_terminal:
            return AnomalyReason.TERMINAL_RUN
        for child in self.child_runs:
            if child["child_run_id"] == record["child_run_id"]:
                fields = ("child_workflow", "child_trigger", "child_key", "metadata")
                same = all(child[f] == record[f] for f in fields)
                return ALREADY_RECORDED if same else AnomalyReason.CONFLICTING_CHILD_RUN
        return None

    def dynamic_rule(self, record: JSONDict) -> Verdict:
        """A dynamic key is recorded once; the identical record again is a duplicate."""
        if self.is_terminal:
            return AnomalyReason.TERMINAL_RUN
        for work in self.dynamic_work:
            if work["dynamic_key"] == record["dynamic_key"]:
                same = {k: v for k, v in work.items() if k != "recorded_at"} == record
                return ALREADY_RECORDED if same else AnomalyReason.CONFLICTING_DYNAMIC_WORK
        return None

    # -- commands -------------------------------------------------------------------------

    def receive_command(
        self,
        signal_type: str,
        *,
        now: datetime,
        payload: JSONDict | None = None,
        metadata: JSONDict | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Record a command receipt; sensitive metadata keys are redacted before storing."""
        self.trigger_event(
            self.CommandReceived,
            signal_type=str(signal_type),
            payload=redact_metadata(payload or {}),
            metadata=redact_metadata(metadata or {}),
            idempotency_key=idempotency_key,
            actor=actor,
            comment=comment,
            timestamp=now,
        )

    def migrate(
        self,
        *,
        to_fingerprint: str,
        to_version: str | None,
        actor: str | None,
        reason: str | None,
        now: datetime,
    ) -> None:
        """Follow the definition with ``to_fingerprint`` from now on.

        The caller checked that the move is safe for what the run applied and waits on.

        Raises:
            RunTerminal: the run has ended.
        """
        if self.is_terminal:
            raise RunTerminal(self.id, self.terminal_status)
        self.trigger_event(
            self.RunMigrated,
            from_fingerprint=self.definition_fingerprint,
            to_fingerprint=to_fingerprint,
            from_version=self.definition_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            timestamp=now,
        )

    def find_command(self, signal_type: str, idempotency_key: str) -> JSONDict | None:
        """The receipt of an earlier command with the same type and idempotency key."""
        for command in self.command_history:
            if (
                command["signal_type"] == signal_type
                and command["idempotency_key"] == idempotency_key
            ):
                return command
        return None

    def plan(self, runnables: list[Runnable], *, now: datetime) -> list[Runnable]:
        """Plan runnables not planned yet; returns those written (an identical plan is skipped).

        Raises:
            RunTerminal: the run ended.
            ConflictingIntent: a key is already planned with different contents.
        """
        self._refuse_if_terminal()
        new: list[Runnable] = []
        for runnable in runnables:
            existing = self.planned.get(runnable.runnable_key)
            if existing is None:
                new.append(runnable)
            elif not self.same_plan(existing, runnable.to_state()):
                raise ConflictingIntent(runnable_key=runnable.runnable_key)
        if new:
            self.trigger_event(
                self.RunnablesPlanned, runnables=[r.to_state() for r in new], timestamp=now
            )
        return new

    def apply_result(
        self,
        runnable_key: str,
        *,
        outcome: str,
        now: datetime,
        result: JSONDict | None = None,
        error: JSONDict | None = None,
        transition: JSONDict | None = None,
        claim: JSONDict | None = None,
    ) -> bool:
        """Apply a durable attempt result; returns False when it was already applied.

        ``claim`` records who produced the result under which claim (see `RunnableApplied`),
        so the run's history keeps it after the queue forgets the attempt.

        Raises:
            RunTerminal: the run ended.
            UnknownAttempt: the runnable was never planned for this run.
        """
        if outcome not in ("ok", "error", "deferred"):
            raise InvalidArgument("outcome", "must be 'ok', 'error' or 'deferred'")
        self._refuse_if_terminal()
        if runnable_key not in self.planned:
            raise UnknownAttempt(runnable_key=runnable_key)
        if runnable_key in self.applied:
            return False
        self.trigger_event(
            self.RunnableApplied,
            runnable_key=runnable_key,
            outcome=outcome,
            result=result,
            error=error,
            transition=transition,
            claim=claim,
            timestamp=now,
        )
        return True

    def pause(
        self, step: str, *, kind: ManualKind, now: datetime, metadata: JSONDict | None = None
    ) -> bool:
        """Stop at a manual boundary; returns False when already paused there.

        Raises:
            RunTerminal: the run ended.
            ActiveManualStep: the run is paused at another boundary.
        """
        anomaly = self.pause_rule(step, kind.value)
        if anomaly is ALREADY_RECORDED:
            return False
        if anomaly is AnomalyReason.TERMINAL_RUN:
            raise RunTerminal(self.id, self.terminal_status)
        if anomaly is not None:
            raise ActiveManualStep(
                self.id, step=str(self.manual_state and self.manual_state["step"])
            )
        self.trigger_event(
            self.ManualStepPaused,
            step=step,
            kind=kind.value,
            metadata=redact_metadata(metadata or {}),
            timestamp=now,
        )
        return True

    def resolve_manual(
        self,
        action: ManualAction,
        *,
        now: datetime,
        result: JSONDict | None = None,
        metadata: JSONDict | None = None,
    ) -> str:
        """Resolve the current boundary with ``action``; returns the resolved step.

        Resume resolves a pause; approve and reject resolve an approval.

        Raises:
            RunTerminal: the run ended.
            ManualStepMismatch: no boundary, or one of the other kind.
        """
        self._refuse_if_terminal()
        current = self.manual_state
        if current is None or current["kind"] != action.kind.value:
            actual = None if current is None else str(current["kind"])
            raise ManualStepMismatch(self.id, expected=action.kind.value, actual=actual)
        self.trigger_event(
            self.ManualStepResolved,
            step=current["step"],
            action=action.value,
            result=result or {},
            metadata=redact_metadata(metadata or {}),
            timestamp=now,
        )
        return str(current["step"])

    def record_child_run(
        self,
        *,
        child_run_id: UUID | str,
        child_workflow: str,
        child_trigger: str | None,
        child_key: str,
        origin: JSONDict,
        now: datetime,
        metadata: JSONDict | None = None,
    ) -> bool:
        """Link a child run; returns False for an identical link already recorded.

        Raises:
            RunTerminal: the run ended.
            ConflictingChildRun: the child id is linked with other values.
        """
        record = {
            "child_run_id": str(child_run_id),
            "child_workflow": child_workflow,
            "child_trigger": child_trigger,
            "child_key": str(child_key),
            "origin": origin,
            "metadata": redact_metadata(metadata or {}),
        }
        anomaly = self.child_rule(record)
        if anomaly is ALREADY_RECORDED:
            return False
        if anomaly is AnomalyReason.TERMINAL_RUN:
            raise RunTerminal(self.id, self.terminal_status)
        if anomaly is not None:
            raise ConflictingChildRun(child_run_id=str(child_run_id))
        self.trigger_event(self.ChildRunStarted, timestamp=now, **record)
        return True

    def record_dynamic_work(
        self,
        *,
        dynamic_key: str,
        origin: JSONDict,
        nodes: list[JSONDict],
        edges: list[JSONDict],
        now: datetime,
        metadata: JSONDict | None = None,
        reason: str | None = None,
        status: str = "recorded",
    ) -> bool:
        """Record discovered work (``recorded`` or ``scheduled``); False for an identical record.

        Raises:
            RunTerminal: the run ended.
            ConflictingIntent: the dynamic key is recorded with other contents.
        """
        record = {
            "dynamic_key": dynamic_key,
            "origin": origin,
            "nodes": nodes,
            "edges": edges,
            "metadata": redact_metadata(metadata or {}),
            "reason": reason,
            "status": status,
        }
        if status not in ("recorded", "scheduled"):
            raise InvalidArgument("status", "must be 'recorded' or 'scheduled'")
        anomaly = self.dynamic_rule(record)
        if anomaly is ALREADY_RECORDED:
            return False
        if anomaly is AnomalyReason.TERMINAL_RUN:
            raise RunTerminal(self.id, self.terminal_status)
        if anomaly is not None:
            raise ConflictingIntent(runnable_key=dynamic_key)
        self.trigger_event(self.DynamicWorkRecorded, timestamp=now, **record)
        return True

    def forget_data(self, *, now: datetime, actor: str | None = None) -> bool:
        """Record that the run's data key was destroyed; False when already recorded.

        Raises:
            RunNotErasable: the run was not started as erasable: its data is stored in clear.
            RunNotTerminal: the run has not ended (end it first).
        """
        if not self.erasable:
            raise RunNotErasable(self.id)
        if not self.is_terminal:
            raise RunNotTerminal(self.id, self.status)
        if self.data_forgotten_at is not None:
            return False
        self.trigger_event(self.RunDataForgotten, actor=actor, timestamp=now)
        return True

    def end(self, status: TerminalStatus, *, now: datetime, error: JSONDict | None = None) -> None:
        """End the run with a terminal status; nothing may change it afterwards.

        Raises:
            RunTerminal: the run already ended.
        """
        self._refuse_if_terminal()
        self.trigger_event(self.RunEnded, status=status.value, error=error, timestamp=now)

    def _refuse_if_terminal(self) -> None:
        if self.is_terminal:
            raise RunTerminal(self.id, self.terminal_status)


register_topic(WorkflowRun.Snapshot.TOPIC, WorkflowRun.Snapshot)
