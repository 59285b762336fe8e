"""Cron starts: schedule identity, schedule metadata, and the duplicate decision.

A scheduler (ours in `_scheduler.py`, or a host's) delivers an activation of a cron trigger
with a ``signal_id`` and/or the ``intended_window`` it stands for. Deliveries are at least
once, so an idempotent trigger must recognise a repeat: the identity (the signal id, or one
derived from the complete window) fixes the run id, and a repeat finds the first run instead
of starting a second. The identity rules follow Squid Mesh's ``ScheduleIdentity``, so the
same window gives the same run id in every process and on every host.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict

from squidmesh_es.domain import JSONDict, WorkflowRun
from squidmesh_es.errors import (
    Conflict,
    InvalidScheduleIdentity,
    InvalidScheduleIntendedWindow,
    InvalidScheduleSignalId,
    InvalidTrigger,
    MissingScheduleIdempotencyKey,
    RunIdTaken,
)
from squidmesh_es.read_model import RunSnapshot
from squidmesh_es.runtime._clock import ensure_aware
from squidmesh_es.runtime._execution import CONFLICT_RETRIES, RACE_SIGNS, after_commit, run_moved
from squidmesh_es.runtime._starting import build_request, find_run, prepare_start, start_run
from squidmesh_es.workflow import CronIdempotency, JSONValue, TriggerType, Workflow

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "CronDecision",
    "CronStart",
    "IntendedWindow",
    "ScheduleIdentity",
    "derive_signal_id",
    "schedule_identity",
    "schedule_run_id",
    "start_cron",
]

IntendedWindow = Mapping[str, "str | datetime"]
"""``{"start_at": ..., "end_at": ...}`` as ISO-8601 strings or aware datetimes; extra keys
with string values are kept in the metadata but are not part of the identity."""

SIGNAL_ID_LIMIT: Final = 500
"""Longest accepted signal id or idempotency key: both are stored in the run's context and
in the run index."""

_KEY_RULE = f"must be a printable string of 1 to {SIGNAL_ID_LIMIT} characters, unpadded"


class CronDecision(StrEnum):
    """What a cron delivery did."""

    STARTED = "started"
    """A new run was started."""
    RETURNED_EXISTING = "returned_existing"
    """A duplicate of a ``return_existing_run`` trigger, or of a caller's key on a trigger
    without idempotency: the first run is returned."""
    SKIPPED = "skipped"
    """A duplicate of a ``skip_duplicate`` trigger (or of a scheduler tick): nothing started."""


class CronStart(BaseModel):
    """The result of one cron delivery: the run it concerns and what the delivery did.

    ``snapshot`` is the started run, or for a duplicate the run the first delivery started
    (a skip names it too, so an operator can follow it).
    """

    model_config = ConfigDict(frozen=True)

    decision: CronDecision
    snapshot: RunSnapshot
    signal_id: str | None
    """The delivery's signal id, given or derived from a complete window; else ``None``."""
    idempotency_key: str | None
    """The duplicate-start key; ``None`` when every delivery starts its own run."""

    @property
    def run_id(self) -> str:
        """Id of the run the delivery started or found."""
        return self.snapshot.run_id

    @property
    def duplicate(self) -> bool:
        """Whether the delivery repeated an earlier one (nothing new was started)."""
        return self.decision is not CronDecision.STARTED


class ScheduleIdentity(BaseModel):
    """A delivery's checked schedule identity: its signal id and its normalised window."""

    model_config = ConfigDict(frozen=True)

    signal_id: str | None
    """Given by the scheduler, else derived from a complete window, else ``None``."""
    intended_window: dict[str, str] | None
    """The window with ``start_at``/``end_at`` as UTC ISO-8601 (``...Z``), extras as given."""


def _parts_digest(*parts: str) -> bytes:
    """SHA-256 of length-prefixed parts, so ``("a|b", "c")`` and ``("a", "b|c")`` differ."""
    encoded = "|".join(f"{len(p.encode())}:{p}" for p in parts)
    return hashlib.sha256(encoded.encode()).digest()


def derive_signal_id(workflow: str, trigger: str, start_at: str, end_at: str) -> str:
    """The signal id of the window ``[start_at, end_at)`` of ``workflow``'s ``trigger``.

    ``"sha256:"`` plus the unpadded URL-safe base64 of the digest, as in Squid Mesh, so a
    host scheduler that only knows the window gets the same identity as ours.
    """
    digest = _parts_digest(workflow, trigger, start_at, end_at)
    return "sha256:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def schedule_run_id(workflow: str, trigger: str, signal_id: str) -> UUID:
    """The run id of a scheduled activation: 128 bits of SHA-256 with version 5 bits set.

    Deterministic across processes, so concurrent deliveries of one activation collide on
    the run's journal instead of starting two runs.

    Raises:
        InvalidScheduleIdentity: a part is empty, so the identity would name nothing.
    """
    if not (workflow and trigger and signal_id):
        raise InvalidScheduleIdentity()
    return UUID(bytes=_parts_digest(workflow, trigger, signal_id)[:16], version=5)


def schedule_identity(
    workflow: str,
    trigger: str,
    *,
    signal_id: str | None = None,
    intended_window: IntendedWindow | None = None,
) -> ScheduleIdentity:
    """Check a delivery's ``signal_id`` and ``intended_window``; derive the id if missing.

    Window bounds become UTC ISO-8601 strings, so the same instant written with another
    offset gives the same identity. A given signal id wins over the window; without one, a
    complete window (both bounds) derives it; an incomplete window derives nothing.

    Raises:
        InvalidScheduleSignalId: the signal id is not a short printable string.
        InvalidScheduleIntendedWindow: the window is not a mapping of strings or aware
            datetimes, or its end is not after its start.
    """
    if signal_id is not None and not _valid_key(signal_id):
        raise InvalidScheduleSignalId(_KEY_RULE)
    if intended_window is None:
        return ScheduleIdentity(signal_id=signal_id, intended_window=None)
    if not isinstance(intended_window, Mapping):
        raise InvalidScheduleIntendedWindow("must be a mapping with start_at and end_at")
    window: dict[str, str] = {}
    for key, value in intended_window.items():
        if not isinstance(key, str):
            raise InvalidScheduleIntendedWindow("keys must be strings")
        if key in ("start_at", "end_at"):
            window[key] = _instant(value, key)
        elif isinstance(value, str):
            window[key] = value
        else:
            raise InvalidScheduleIntendedWindow(f"{key} must be a string")
    if "start_at" in window and "end_at" in window:
        if _parse(window["end_at"]) <= _parse(window["start_at"]):
            raise InvalidScheduleIntendedWindow("end_at must be after start_at")
        if signal_id is None:
            signal_id = derive_signal_id(workflow, trigger, window["start_at"], window["end_at"])
    return ScheduleIdentity(signal_id=signal_id, intended_window=window)


def start_cron(
    mesh: SquidMesh,
    workflow: type[Workflow],
    trigger: str,
    *,
    signal_id: str | None = None,
    intended_window: IntendedWindow | None = None,
    payload: Mapping[str, JSONValue] | None = None,
    queue: str | None = None,
    unique: bool = False,
    idempotency_key: str | None = None,
    metadata: Mapping[str, JSONValue] | None = None,
    now: datetime,
) -> CronStart:
    """Deliver one activation of ``workflow``'s cron ``trigger``; returns what it did.

    The schedule metadata (workflow, trigger name, expression, timezone, ``received_at``,
    and when known the signal id, window, idempotency mode and key) is stored under the
    run's start context ``"schedule"``, never in its input: steps read it as
    ``ctx.schedule``. Cron runs get no caller input, so ``payload`` defaults to ``{}`` and
    the workflow's payload defaults fill it.

    With the trigger's ``idempotency`` set (or ``unique=True``, which the built-in
    scheduler passes so that its own ticks start once even on a trigger without it), the
    schedule key fixes the run id and a repeated delivery starts nothing: it returns the
    first run (``return_existing_run``) or reports a skip (``skip_duplicate``, and
    ``unique``). The key is the caller's ``idempotency_key`` when given, else the identity
    (the signal id, given or derived from a complete window): as for every signal, the same
    key is one command and another key a distinct one. A key given on a trigger without
    idempotency makes that delivery idempotent too (a repeat returns the first run). The
    duplicate decision rests on the key alone; a repeat with another payload still finds
    the first run. Without any key, every delivery starts a run.

    The receipt is a ``start_cron`` command on the run: the signal id in its payload,
    ``metadata`` as the caller's metadata, and as its idempotency key the schedule key, or
    on a trigger without idempotency the signal id (which then fixes no run id).
    Everything is checked before anything is written.

    Raises:
        InvalidTrigger: no such trigger, or it is not a cron trigger.
        MissingScheduleIdempotencyKey: the start needs a key and got no idempotency key, no
            signal id and no complete window.
        InvalidScheduleSignalId, InvalidScheduleIntendedWindow: a malformed signal id or
            window.
        InvalidScheduleIdentity: a malformed ``idempotency_key``.
        InvalidArgument: an unusable queue.
        PayloadValidationError: the payload (after defaults) breaks the workflow's contract.
        RunIdTaken: the derived run id belongs to another workflow or trigger.
        Conflict: the journal kept moving.
    """
    at = ensure_aware(now)
    spec = workflow.resolve_trigger(trigger)
    if spec.type is not TriggerType.CRON:
        raise InvalidTrigger(workflow=workflow.name, trigger=trigger, reason="not a cron trigger")
    identity = schedule_identity(
        workflow.name, spec.name, signal_id=signal_id, intended_window=intended_window
    )
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise InvalidScheduleIdentity("idempotency_key", _KEY_RULE)
    sid, window = identity.signal_id, identity.intended_window
    deduplicate = spec.idempotency is not None or unique
    key = idempotency_key if idempotency_key is not None else sid if deduplicate else None
    if deduplicate and key is None:
        raise MissingScheduleIdempotencyKey(spec.name)
    schedule: JSONDict = {
        "workflow": workflow.name,
        "trigger_name": spec.name,
        "cron_expression": spec.expression or "",
        "timezone": spec.timezone or "Etc/UTC",
        "received_at": _iso(at),
    }
    if sid is not None:
        schedule["signal_id"] = sid
    if window is not None:
        schedule["intended_window"] = dict(window)
    if spec.idempotency is not None:
        schedule["idempotency"] = spec.idempotency.value
    if key is not None:
        schedule["idempotency_key"] = key
    request = build_request(
        mesh,
        workflow,
        payload or {},
        trigger=spec.name,
        run_id=schedule_run_id(workflow.name, spec.name, key) if key is not None else uuid4(),
        queue=queue,
        idempotency_key=key if key is not None else sid,  # the receipt's key, as upstream
        metadata=metadata,
        context={"schedule": schedule},
        signal_type="start_cron",
        command_payload={"signal_id": sid} if sid is not None else None,
        now=at,
    )
    if key is None:
        run = start_run(mesh, request, now=at).run
        return _result(mesh, CronDecision.STARTED, run, sid, None, at)
    skip = spec.idempotency is CronIdempotency.SKIP_DUPLICATE or (
        spec.idempotency is None and unique
    )
    duplicate = CronDecision.SKIPPED if skip else CronDecision.RETURNED_EXISTING
    for _ in range(CONFLICT_RETRIES):
        existing = find_run(mesh, request.run_id)
        if existing is not None:
            if existing.workflow != workflow.name or existing.trigger != spec.name:
                raise RunIdTaken(request.run_id, "it belongs to another workflow or trigger")
            return _result(mesh, duplicate, existing, sid, key, at)
        try:
            prepared = prepare_start(mesh, request, now=at)
        except RACE_SIGNS:
            if run_moved(mesh, request.run_id, None):
                continue  # a twin delivery started it between our reads: look again
            raise
        if prepared.settled is None:  # started between our read and prepare_start's
            return _result(mesh, duplicate, prepared.run, sid, key, at)
        try:
            mesh.save(*prepared.aggregates)
        except Conflict:
            continue  # another delivery won the run id, or the queue moved: look again
        after_commit(mesh, prepared.settled)
        return _result(mesh, CronDecision.STARTED, prepared.run, sid, key, at)
    raise Conflict("journal kept moving while starting a cron run", run_id=str(request.run_id))


def _result(
    mesh: SquidMesh,
    decision: CronDecision,
    run: WorkflowRun,
    signal_id: str | None,
    key: str | None,
    now: datetime,
) -> CronStart:
    return CronStart(
        decision=decision,
        snapshot=mesh.inspect_run(run.run_id, now=now),
        signal_id=signal_id,
        idempotency_key=key,
    )


def _valid_key(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= SIGNAL_ID_LIMIT
        and value.strip() == value
        and value.isprintable()
    )


def _instant(value: object, key: str) -> str:
    """``value`` as a UTC ISO-8601 string ending in ``Z``."""
    if isinstance(value, str):
        try:
            moment = _parse(value)
        except ValueError:
            raise InvalidScheduleIntendedWindow(f"{key} is not ISO-8601") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise InvalidScheduleIntendedWindow(f"{key} must be an ISO-8601 string or datetime")
    if moment.tzinfo is None:
        raise InvalidScheduleIntendedWindow(f"{key} needs a timezone offset")
    return _iso(moment)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
