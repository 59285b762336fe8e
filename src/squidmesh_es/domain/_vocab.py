"""The journal's vocabularies: statuses, manual kinds and anomaly reasons, in the spec's words."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AnomalyReason",
    "AttemptStatus",
    "ManualAction",
    "ManualKind",
    "RunStatus",
    "TerminalStatus",
]


class RunStatus(StrEnum):
    """Where a run stands according to its own journal; a terminal status always wins."""

    NEW = "new"
    STARTED = "started"
    RUNNING = "running"
    IDLE = "idle"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TerminalStatus(StrEnum):
    """The three ways a run ends. Terminal is absorbing."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptStatus(StrEnum):
    """Lifecycle of one dispatch attempt in a queue."""

    AVAILABLE = "available"
    RETRY_SCHEDULED = "retry_scheduled"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"


class ManualKind(StrEnum):
    """Kinds of manual boundary a run can pause at."""

    PAUSE = "pause"
    APPROVAL = "approval"


class ManualAction(StrEnum):
    """How a manual boundary was resolved, and which kind each resolution needs."""

    RESUMED = "resumed"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def kind(self) -> ManualKind:
        """The boundary kind this action resolves: resume a pause, approve or reject an approval."""
        return ManualKind.PAUSE if self is ManualAction.RESUMED else ManualKind.APPROVAL


class AnomalyReason(StrEnum):
    """Why a stored event could not be applied as written (the spec's anomaly atoms)."""

    MALFORMED_ENTRY = "malformed_entry"
    TERMINAL_RUN = "terminal_run"
    UNKNOWN_RUNNABLE_INTENT = "unknown_runnable_intent"
    CONFLICTING_RUNNABLE_INTENT = "conflicting_runnable_intent"
    TERMINAL_ATTEMPT = "terminal_attempt"
    ATTEMPT_NOT_VISIBLE = "attempt_not_visible"
    ACTIVE_CLAIM = "active_claim"
    STALE_CLAIM = "stale_claim"
    EXPIRED_CLAIM = "expired_claim"
    CONFLICTING_COMPLETION = "conflicting_completion"
    RESULT_NOT_COMPLETED = "result_not_completed"
    CONFLICTING_CHILD_RUN = "conflicting_child_run"
    ACTIVE_MANUAL_STEP = "active_manual_step"
    STALE_MANUAL_RESOLUTION = "stale_manual_resolution"
    CONFLICTING_DYNAMIC_WORK = "conflicting_dynamic_work"
