"""Every error squidmesh-es raises on purpose, each with a stable ``code``.

Programs read ``code`` and the typed fields; messages are for people. No message or field
ever carries a claim token, a payload value or a metadata value.

Hierarchy::

    SquidMeshError
    ├── IssuesError                      (carries ``issues``: path + code + message)
    │   ├── WorkflowValidationError      invalid_workflow_spec
    │   └── PayloadValidationError       invalid_payload
    ├── RunNotFound                      not_found
    ├── InvalidRunId                     invalid_run_id
    ├── Conflict                         conflict
    │   └── RunIdTaken                   run_id_taken
    ├── StaleClaim                       stale_claim
    │   └── ExpiredClaim                 expired_claim
    ├── AttemptNotClaimable              attempt_not_claimable
    ├── UnknownAttempt                   unknown_runnable_intent
    ├── ConflictingIntent                conflicting_runnable_intent
    ├── ConflictingCompletion            conflicting_completion
    ├── ResultNotCompleted               result_not_completed
    ├── RunTerminal                      terminal_run
    ├── ManualStepMismatch               manual_step_mismatch
    ├── ActiveManualStep                 active_manual_step
    ├── ConflictingChildRun              conflicting_child_run
    ├── UnsafeReplay                     unsafe_replay
    ├── InvalidReplaySource              invalid_replay_source
    ├── MissingScheduleIdempotencyKey    missing_schedule_idempotency_key
    ├── ActionNotAllowed                 action_not_allowed
    ├── InvalidDynamicWork               invalid_dynamic_work
    ├── DefinitionMismatch               incompatible_workflow_definition
    ├── UnsafeMigration                  unsafe_migration
    ├── PayloadTooLarge                  payload_too_large
    ├── StorageUnavailable               storage_unavailable
    ├── InvalidArgument                  invalid_option
    │   ├── InvalidDatabaseUrl           invalid_database_url
    │   ├── InvalidSignal                invalid_signal      (carries ``issues``)
    │   ├── WorkflowNotRegistered        invalid_workflow
    │   └── InvalidScheduleIdentity      invalid_schedule_identity
    │       ├── InvalidScheduleSignalId        invalid_schedule_signal_id
    │       └── InvalidScheduleIntendedWindow  invalid_schedule_intended_window
    ├── CorruptedEvent                   invalid_journal_entry
    ├── CipherKeyMismatch                cipher_key_mismatch
    ├── JournalNotFound                  journal_not_found
    ├── InvalidTrigger                   invalid_trigger
    ├── UnknownStep                      unknown_step
    ├── MissingInputPath                 missing_input_path
    └── ChildRunsUnavailable             child_runs_unavailable
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "ActionNotAllowed",
    "ActiveManualStep",
    "AttemptNotClaimable",
    "ChildRunsUnavailable",
    "CipherKeyMismatch",
    "Conflict",
    "ConflictingChildRun",
    "ConflictingCompletion",
    "ConflictingIntent",
    "CorruptedEvent",
    "StorageUnavailable",
    "DefinitionMismatch",
    "ExpiredClaim",
    "InvalidArgument",
    "InvalidDatabaseUrl",
    "InvalidDynamicWork",
    "InvalidReplaySource",
    "InvalidRunId",
    "InvalidScheduleIdentity",
    "InvalidScheduleIntendedWindow",
    "InvalidScheduleSignalId",
    "InvalidSignal",
    "InvalidTrigger",
    "Issue",
    "IssuesError",
    "JournalNotFound",
    "ManualStepMismatch",
    "MissingInputPath",
    "MissingScheduleIdempotencyKey",
    "PayloadTooLarge",
    "PayloadValidationError",
    "ResultNotCompleted",
    "RunIdTaken",
    "RunNotErasable",
    "RunNotFound",
    "RunNotTerminal",
    "RunTerminal",
    "SquidMeshError",
    "StaleClaim",
    "UnknownAttempt",
    "UnknownStep",
    "UnsafeReplay",
    "WorkflowNotRegistered",
    "WorkflowValidationError",
]


class SquidMeshError(Exception):
    """Base of every error squidmesh-es raises on purpose."""

    code: ClassVar[str] = "squidmesh_error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        """The error as JSON-safe data: ``code``, ``message`` and ``details``."""
        return {"code": self.code, "message": self.message, "details": _json_safe(self.details)}


@dataclass(frozen=True)
class Issue:
    """One problem found while validating input: where, what kind, and why."""

    path: tuple[str | int, ...]
    """Location of the problem, e.g. ``("steps", 2, "retry", "max_attempts")``."""
    code: str
    """Stable snake_case code, e.g. ``"unknown_transition_target"``."""
    message: str
    """Human-readable explanation."""

    def to_dict(self) -> dict[str, object]:
        """The issue as JSON-safe data."""
        return {"path": list(self.path), "code": self.code, "message": self.message}


class IssuesError(SquidMeshError):
    """Input was rejected for one or more structured reasons; nothing was written."""

    def __init__(self, message: str, issues: Sequence[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in i.path) or '<root>'}: {i.code}" for i in self.issues
        )
        super().__init__(
            f"{message}: {summary}" if summary else message,
            issues=[i.to_dict() for i in self.issues],
        )

    @property
    def codes(self) -> set[str]:
        """The set of issue codes, handy in tests and logs."""
        return {i.code for i in self.issues}


class WorkflowValidationError(IssuesError):
    """A workflow definition or spec breaks a validation rule."""

    code = "invalid_workflow_spec"


class PayloadValidationError(IssuesError):
    """A run payload does not satisfy the workflow's payload contract."""

    code = "invalid_payload"


class RunNotFound(SquidMeshError):
    """No run journal exists for the run id."""

    code = "not_found"

    def __init__(self, run_id: object) -> None:
        super().__init__(f"run {run_id} not found", run_id=str(run_id))
        self.run_id = str(run_id)


class InvalidRunId(SquidMeshError):
    """The run id is not a UUID.

    The rejected value is kept out of the message and ``details``: a mistyped argument may
    be a token, a secret or a path, and errors end up in logs.
    """

    code = "invalid_run_id"

    def __init__(self) -> None:
        super().__init__("run id is not a UUID")


class Conflict(SquidMeshError):
    """The journal moved on since it was read (a stale fence). Reload and retry.

    Its subclass `RunIdTaken` is the one conflict a retry cannot fix.
    """

    code = "conflict"

    def __init__(self, message: str = "stale journal version", **details: object) -> None:
        super().__init__(message, **details)


class RunIdTaken(Conflict):
    """The run id (given, or derived from an idempotency key) belongs to a different request.

    Retrying the same request meets the same run, so do not retry: use another key or id.
    """

    code = "run_id_taken"

    def __init__(self, run_id: object, reason: str) -> None:
        super().__init__(f"run id {run_id} is taken: {reason}", run_id=str(run_id))
        self.run_id = str(run_id)


class StaleClaim(SquidMeshError):
    """The claim is not the current one for the attempt. Nothing was written."""

    code = "stale_claim"

    def __init__(self, *, runnable_key: str, reason: str = "stale_claim") -> None:
        super().__init__(
            f"attempt {runnable_key!r} is not held by this claim ({reason})",
            runnable_key=runnable_key,
            reason=reason,
        )
        self.runnable_key = runnable_key
        self.reason = reason


class ExpiredClaim(StaleClaim):
    """The claim was current but its lease has ended. Nothing was written."""

    code = "expired_claim"

    def __init__(self, *, runnable_key: str) -> None:
        super().__init__(runnable_key=runnable_key, reason="expired_claim")


class AttemptNotClaimable(SquidMeshError):
    """The attempt cannot be claimed now: not yet visible, leased, or finished."""

    code = "attempt_not_claimable"

    def __init__(self, *, runnable_key: str, reason: str) -> None:
        super().__init__(
            f"attempt {runnable_key!r} cannot be claimed ({reason})",
            runnable_key=runnable_key,
            reason=reason,
        )
        self.runnable_key = runnable_key
        self.reason = reason


class UnknownAttempt(SquidMeshError):
    """No attempt with this runnable key is known to the queue or run."""

    code = "unknown_runnable_intent"

    def __init__(self, *, runnable_key: str) -> None:
        super().__init__(f"unknown runnable {runnable_key!r}", runnable_key=runnable_key)
        self.runnable_key = runnable_key


class ConflictingIntent(SquidMeshError):
    """The runnable key is already scheduled or planned with different contents."""

    code = "conflicting_runnable_intent"

    def __init__(self, *, runnable_key: str) -> None:
        super().__init__(
            f"runnable {runnable_key!r} already exists with a different intent",
            runnable_key=runnable_key,
        )
        self.runnable_key = runnable_key


class ConflictingCompletion(SquidMeshError):
    """The attempt already completed with a different result."""

    code = "conflicting_completion"

    def __init__(self, *, runnable_key: str) -> None:
        super().__init__(
            f"attempt {runnable_key!r} already completed with a different result",
            runnable_key=runnable_key,
        )
        self.runnable_key = runnable_key


class ResultNotCompleted(SquidMeshError):
    """A result was applied to the run before its attempt completed or failed."""

    code = "result_not_completed"

    def __init__(self, *, runnable_key: str) -> None:
        super().__init__(f"attempt {runnable_key!r} has no result yet", runnable_key=runnable_key)
        self.runnable_key = runnable_key


class RunTerminal(SquidMeshError):
    """The run already reached a terminal status; the command is refused."""

    code = "terminal_run"

    def __init__(self, run_id: object, status: str | None = None) -> None:
        super().__init__(
            f"run {run_id} is terminal ({status or 'unknown status'})",
            run_id=str(run_id),
            status=status,
        )
        self.run_id = str(run_id)
        self.status = status


class RunNotErasable(SquidMeshError):
    """The run's data is stored in clear (its workflow is not ``erasable``): nothing to forget."""

    code = "run_not_erasable"

    def __init__(self, run_id: object) -> None:
        super().__init__(
            f"run {run_id} was not started as erasable: its data cannot be forgotten",
            run_id=str(run_id),
        )
        self.run_id = str(run_id)


class RunNotTerminal(SquidMeshError):
    """The command needs a run that has ended."""

    code = "run_not_terminal"

    def __init__(self, run_id: object, status: str | None = None) -> None:
        super().__init__(
            f"run {run_id} has not ended ({status})", run_id=str(run_id), status=status
        )
        self.run_id = str(run_id)
        self.status = status


class ManualStepMismatch(SquidMeshError):
    """The run is not paused at a manual boundary of the requested kind."""

    code = "manual_step_mismatch"

    def __init__(self, run_id: object, *, expected: str, actual: str | None) -> None:
        article = "an" if expected[:1] in "aeiou" else "a"
        super().__init__(
            f"run {run_id} is not paused at {article} {expected} boundary "
            f"(found {actual or 'none'})",
            run_id=str(run_id),
            expected=expected,
            actual=actual,
        )
        self.expected = expected
        self.actual = actual


class ActiveManualStep(SquidMeshError):
    """The run is already paused at a different manual boundary."""

    code = "active_manual_step"

    def __init__(self, run_id: object, *, step: str) -> None:
        super().__init__(
            f"run {run_id} is already paused at step {step!r}", run_id=str(run_id), step=step
        )
        self.step = step


class ConflictingChildRun(SquidMeshError):
    """A child run id is already linked with a different workflow, trigger or key."""

    code = "conflicting_child_run"

    def __init__(self, *, child_run_id: str) -> None:
        super().__init__(
            f"child run {child_run_id} is already linked differently", child_run_id=child_run_id
        )
        self.child_run_id = child_run_id


class UnsafeReplay(SquidMeshError):
    """Replay would repeat irreversible or non-compensatable steps."""

    code = "unsafe_replay"

    def __init__(self, run_id: object, blocking_steps: Sequence[str]) -> None:
        super().__init__(
            f"replay of run {run_id} is blocked by steps {', '.join(blocking_steps)}",
            run_id=str(run_id),
            blocking_steps=list(blocking_steps),
        )
        self.blocking_steps = list(blocking_steps)


class InvalidReplaySource(SquidMeshError):
    """The run cannot be the source of a replay (for example a runtime-authored spec)."""

    code = "invalid_replay_source"

    def __init__(self, run_id: object, reason: str) -> None:
        super().__init__(
            f"run {run_id} cannot be replayed ({reason})", run_id=str(run_id), reason=reason
        )
        self.reason = reason


class MissingScheduleIdempotencyKey(SquidMeshError):
    """An idempotent cron trigger was started without a signal id or intended window."""

    code = "missing_schedule_idempotency_key"

    def __init__(self, trigger: str) -> None:
        super().__init__(f"trigger {trigger!r} needs a schedule identity", trigger=trigger)
        self.trigger = trigger


class ActionNotAllowed(SquidMeshError):
    """An action key is missing, unknown, disabled or incompatible in the registry."""

    code = "action_not_allowed"

    def __init__(self, action_key: str, reason: str) -> None:
        super().__init__(
            f"action {action_key!r} is not allowed ({reason})",
            action_key=action_key,
            reason=reason,
        )
        self.action_key = action_key
        self.reason = reason


class InvalidDynamicWork(SquidMeshError):
    """A dynamic-work proposal breaks a rule; ``reason`` is the stable sub-code.

    Reasons: ``invalid_dynamic_key``, ``invalid_dynamic_origin``,
    ``dynamic_origin_not_applied``, ``invalid_dynamic_node``, ``duplicate_dynamic_node``,
    ``invalid_dynamic_edge``, ``conflicting_dynamic_work``, ``missing_action_registry``,
    ``run_compensating`` (scheduling during a rollback), and the registry's refusals
    (``unknown_action_key``, ``disabled_action_key``, ...).
    """

    code = "invalid_dynamic_work"

    def __init__(self, reason: str, message: str, **details: object) -> None:
        super().__init__(f"dynamic work refused ({reason}): {message}", reason=reason, **details)
        self.reason = reason


class DefinitionMismatch(SquidMeshError):
    """The run was started under a different workflow definition than the one loaded."""

    code = "incompatible_workflow_definition"

    def __init__(
        self,
        run_id: object,
        *,
        persisted_fingerprint: str | None,
        current_fingerprint: str | None,
        persisted_version: str | None = None,
        current_version: str | None = None,
    ) -> None:
        super().__init__(
            f"run {run_id} was started under definition {persisted_fingerprint}, "
            f"loaded definition is {current_fingerprint}",
            run_id=str(run_id),
            persisted_definition_fingerprint=persisted_fingerprint,
            current_definition_fingerprint=current_fingerprint,
            persisted_definition_version=persisted_version,
            current_definition_version=current_version,
        )


class UnsafeMigration(SquidMeshError):
    """Moving the run onto the definition would strand it or contradict its history.

    ``conflicts`` name each conflicting step and why (``{"step", "reason"}``). Nothing was
    written.
    """

    code = "unsafe_migration"

    def __init__(self, run_id: object, conflicts: Sequence[Mapping[str, str]]) -> None:
        steps = ", ".join(sorted({c["step"] for c in conflicts}))
        super().__init__(
            f"run {run_id} cannot move onto the new definition: steps {steps} conflict",
            run_id=str(run_id),
            conflicts=[dict(c) for c in conflicts],
        )
        self.conflicts = [dict(c) for c in conflicts]


class InvalidArgument(SquidMeshError):
    """An option or argument has an invalid value."""

    code = "invalid_option"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid {name}: {reason}", option=name, reason=reason)
        self.option = name
        self.reason = reason


class InvalidDatabaseUrl(InvalidArgument):
    """The database URL cannot name a usable journal; nothing was created.

    A bad port, a SQLite path that is a directory or not a SQLite file, an unsafe schema name.
    """

    code = "invalid_database_url"

    def __init__(self, reason: str) -> None:
        super().__init__("database_url", reason)


class PayloadTooLarge(SquidMeshError):
    """A value is larger, serialised as JSON, than the journal accepts; nothing was written.

    ``what`` names the value (``payload``, ``metadata``, ``output``, ``reason``,
    ``dynamic_work``, ``request``); ``size`` and ``limit`` are in bytes of UTF-8 JSON.
    """

    code = "payload_too_large"

    def __init__(self, *, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} is {size} bytes as JSON, over the limit of {limit}",
            what=what,
            size=size,
            limit=limit,
        )
        self.what = what
        self.size = size
        self.limit = limit


class InvalidSignal(InvalidArgument):
    """A signal's fields have the wrong shape; ``issues`` names each (path + code + message).

    Raised when a signal is built or read from JSON, before it reaches a run. A subclass of
    ``InvalidArgument`` (``option`` is ``"signal"``) so callers that catch that keep working.
    Issues name fields and say what is wrong, never the value given.
    """

    code = "invalid_signal"

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in i.path) or '<root>'}: {i.code}" for i in self.issues
        )
        super().__init__("signal", summary or "malformed")
        self.details["issues"] = [i.to_dict() for i in self.issues]

    @property
    def codes(self) -> set[str]:
        """The set of issue codes, handy in tests and logs."""
        return {i.code for i in self.issues}


class WorkflowNotRegistered(InvalidArgument):
    """No workflow of this name is registered in this process; nothing was written.

    A signal read from JSON names its workflow, and the runtime applying it looks the name
    up among the workflows it was opened with (or ``register``-ed). The code is the spec's
    reason for a workflow name that does not load.
    """

    code = "invalid_workflow"

    def __init__(self, workflow: str) -> None:
        super().__init__("workflow", f"{workflow!r} is not registered in this process")
        self.details["workflow"] = workflow
        self.workflow = workflow


class InvalidScheduleIdentity(InvalidArgument):
    """A cron delivery's identity (its key, signal id or window) is unusable; nothing was written.

    A subclass of ``InvalidArgument`` so callers that catch that keep working; catch this
    one to handle every bad schedule identity, or a subclass for one input.
    """

    code = "invalid_schedule_identity"

    def __init__(self, name: str = "schedule_identity", reason: str = "invalid") -> None:
        super().__init__(name, reason)


class InvalidScheduleSignalId(InvalidScheduleIdentity):
    """The scheduler's signal id is not a short printable string; nothing was written."""

    code = "invalid_schedule_signal_id"

    def __init__(self, reason: str) -> None:
        super().__init__("signal_id", reason)


class InvalidScheduleIntendedWindow(InvalidScheduleIdentity):
    """The intended window is malformed, or does not end after it starts; nothing was written."""

    code = "invalid_schedule_intended_window"

    def __init__(self, reason: str) -> None:
        super().__init__("intended_window", reason)


class CorruptedEvent(SquidMeshError):
    """A stored event cannot be decoded; names where it is, never what it holds."""

    code = "invalid_journal_entry"

    def __init__(
        self, *, aggregate: str, originator_id: object, version: int, topic: str, reason: str
    ) -> None:
        super().__init__(
            f"stored event {topic!r} of {aggregate} {originator_id} at version {version} "
            f"cannot be decoded: {reason}",
            aggregate=aggregate,
            originator_id=str(originator_id),
            version=version,
            topic=topic,
            reason=reason,
        )
        self.aggregate = aggregate
        self.originator_id = str(originator_id)
        self.version = version
        self.topic = topic


class CipherKeyMismatch(SquidMeshError):
    """The journal cannot be read with the cipher key given (or with none). Nothing was read.

    ``key_given`` says which side is missing: without a key, the journal holds encrypted
    events; with one, the key is wrong or the journal was written in clear. Those two look
    the same from outside, and both are refused rather than read as garbage.
    """

    code = "cipher_key_mismatch"

    def __init__(self, *, key_given: bool) -> None:
        message = (
            "the journal cannot be decrypted with the cipher key given (a wrong key, or a "
            "journal written without encryption)"
            if key_given
            else "the journal is encrypted: open it with its cipher key (SQUIDMESH_CIPHER_KEY)"
        )
        super().__init__(message, key_given=key_given)
        self.key_given = key_given


class JournalNotFound(SquidMeshError):
    """A read-only open found no journal where the URL points; nothing was created.

    ``location`` is the file path or ``schema`` in ``database``, never a password.
    """

    code = "journal_not_found"

    def __init__(self, *, location: str) -> None:
        super().__init__(f"no journal at {location}", location=location)
        self.location = location


class StorageUnavailable(SquidMeshError):
    """The database could not be reached or refused the connection.

    ``reason`` is the driver's message with secrets redacted (a password in a URL, say).
    """

    code = "storage_unavailable"

    def __init__(self, *, backend: str, reason: str) -> None:
        super().__init__(f"{backend} journal unavailable: {reason}", backend=backend, reason=reason)
        self.backend = backend
        self.reason = reason


class InvalidTrigger(SquidMeshError):
    """The trigger is not declared by the workflow, or none was named and there is no default.

    A workflow with exactly one trigger uses it by default; with several, callers must name one.
    """

    code = "invalid_trigger"

    def __init__(self, *, workflow: str, trigger: str | None, reason: str) -> None:
        described = repr(trigger) if trigger is not None else "(default)"
        super().__init__(
            f"workflow {workflow!r} has no usable trigger {described} ({reason})",
            workflow=workflow,
            trigger=trigger,
            reason=reason,
        )
        self.workflow = workflow
        self.trigger = trigger
        self.reason = reason


class UnknownStep(SquidMeshError):
    """The workflow definition declares no step with this name."""

    code = "unknown_step"

    def __init__(self, *, workflow: str, step: str) -> None:
        super().__init__(
            f"workflow {workflow!r} has no step {step!r}", workflow=workflow, step=step
        )
        self.workflow = workflow
        self.step = step


class MissingInputPath(SquidMeshError):
    """A step's input mapping names a path that the run state does not hold.

    Raised before the step runs, so the step never sees partial input.
    """

    code = "missing_input_path"

    def __init__(
        self, *, step: str, key: str, path: Sequence[str], missing_at: Sequence[str]
    ) -> None:
        super().__init__(
            f"step {step!r} input {key!r} reads {'.'.join(path)}, "
            f"but {'.'.join(missing_at)} is missing",
            step=step,
            key=key,
            path=list(path),
            missing_at=list(missing_at),
        )
        self.step = step
        self.key = key
        self.path = tuple(path)
        self.missing_at = tuple(missing_at)


class ChildRunsUnavailable(SquidMeshError):
    """The step context is not attached to a runtime, so it cannot start child runs."""

    code = "child_runs_unavailable"

    def __init__(self, *, step: str) -> None:
        super().__init__(
            f"step {step!r} has a context without a runtime; child runs start only under SquidMesh",
            step=step,
        )
        self.step = step


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
