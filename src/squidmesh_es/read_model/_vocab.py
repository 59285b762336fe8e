"""The read models' words: statuses, reasons, next actions and scopes, in the spec's terms."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DeadlineStatus",
    "EdgeStatus",
    "NextAction",
    "NodeStatus",
    "SnapshotReason",
    "SnapshotStatus",
    "VisibilityScope",
]


class SnapshotStatus(StrEnum):
    """Where a run stands for its readers (the spec's run lifecycle words)."""

    PENDING = "pending"
    """Started, with no work planned or in flight."""
    RUNNING = "running"
    """Work is planned, scheduled or claimed."""
    RETRYING = "retrying"
    """A failed attempt scheduled another try that is not visible yet."""
    PAUSED = "paused"
    """Waiting at a manual boundary (pause or approval)."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SnapshotReason(StrEnum):
    """Why the run stands where it does; the first matching rule wins (api catalog 5.1)."""

    TERMINAL = "terminal"
    MANUAL_INTERVENTION_REQUIRED = "manual_intervention_required"
    COMPLETED_RESULT_PENDING_APPLY = "completed_result_pending_apply"
    PLANNED_DISPATCH_PENDING_SCHEDULE = "planned_dispatch_pending_schedule"
    EXPIRED_CLAIM = "expired_claim"
    ATTEMPT_VISIBLE = "attempt_visible"
    ATTEMPT_CLAIMED = "attempt_claimed"
    DEFERRED_CONTINUATION = "deferred_continuation"
    """The next scheduled attempt is a deferred continuation of its step."""
    WAITING_FOR_RETRY = "waiting_for_retry"
    """The next scheduled attempt is a retry of a failed one (guide 4.3)."""
    ATTEMPT_SCHEDULED_FOR_LATER = "attempt_scheduled_for_later"
    IDLE = "idle"
    RUN_STARTED = "run_started"
    WAITING_FOR_DISPATCH = "waiting_for_dispatch"


class NextAction(StrEnum):
    """What an operator or the runtime can safely do next (api catalog 2.8)."""

    SCHEDULE_PENDING_DISPATCH = "schedule_pending_dispatch"
    APPLY_PENDING_RESULT = "apply_pending_result"
    RECOVER_EXPIRED_CLAIM = "recover_expired_claim"
    WAIT_FOR_WORKER_CLAIM = "wait_for_worker_claim"
    WAIT_UNTIL_ATTEMPT_VISIBLE = "wait_until_attempt_visible"
    WAIT_FOR_ATTEMPT_COMPLETION = "wait_for_attempt_completion"
    RESOLVE_MANUAL_STEP = "resolve_manual_step"
    INSPECT_TERMINAL_RUN = "inspect_terminal_run"
    WAIT_FOR_NEW_RUNNABLES = "wait_for_new_runnables"
    INSPECT_DISPATCH_STATE = "inspect_dispatch_state"
    DEPLOY_MISSING_STEP = "deploy_missing_step"
    """Run a worker whose code has the step again (restore it, or roll back the deploy)."""


class DeadlineStatus(StrEnum):
    """A step deadline evaluated at read time; deadlines never cancel anything."""

    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    ESCALATED = "escalated"
    """Overdue, and the deadline names who the escalation is for."""


class NodeStatus(StrEnum):
    """State of one step in the run graph (api catalog 5.3)."""

    WAITING = "waiting"
    PENDING = "pending"
    DEFERRED = "deferred"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    """The run ended, or took another route, without reaching this step."""
    RECORDED = "recorded"
    """A dynamic node that is recorded but not scheduled."""


class EdgeStatus(StrEnum):
    """State of one declared edge in the run graph (api catalog 5.3)."""

    SELECTED = "selected"
    SKIPPED = "skipped"
    PENDING = "pending"
    BLOCKED = "blocked"


class VisibilityScope(StrEnum):
    """How much of a read model a reader may see (guide 4.6)."""

    EXTERNAL = "external"
    OPERATOR = "operator"
    AUDITOR = "auditor"
