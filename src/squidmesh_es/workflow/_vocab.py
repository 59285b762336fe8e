"""The words a workflow spec is written in; each member's value is the word in the spec."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final, Literal

COMPLETE: Final = "complete"
"""Transition target that finishes the run. Reserved: no step may be named ``complete``."""

Complete = Literal["complete"]
"""The type of `COMPLETE`, for signatures that accept a step or completion."""

NAME_PATTERN: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
"""Step, trigger and payload field names: they appear in edge ids such as ``a:ok:b``."""


class TriggerType(StrEnum):
    """How a trigger starts runs."""

    MANUAL = "manual"
    """By the host calling ``start``."""
    CRON = "cron"
    """By the host's scheduler delivering a cron activation."""


class CronIdempotency(StrEnum):
    """What a duplicate delivery of the same scheduled activation does."""

    RETURN_EXISTING_RUN = "return_existing_run"
    """Return the run the first delivery started."""
    SKIP_DUPLICATE = "skip_duplicate"
    """Report the duplicate as skipped."""


class PayloadType(StrEnum):
    """Types a payload field may have; each is a JSON type."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    """Any JSON number; integers are accepted."""
    BOOLEAN = "boolean"
    MAP = "map"
    """A JSON object."""
    LIST = "list"
    """A JSON array."""


class DefaultFactory(StrEnum):
    """Payload defaults computed when a run is created, rather than fixed in the definition."""

    TODAY_ISO8601 = "today_iso8601"
    """The run's creation date as ``YYYY-MM-DD``."""


class StepKind(StrEnum):
    """What executes a step: host code or a built-in of the runtime."""

    CUSTOM = "custom"
    """A `Step` subclass, named by implementation reference or action key."""
    WAIT = "wait"
    """A durable delay: the successor becomes visible after the duration."""
    LOG = "log"
    """Writes one log record and continues."""
    PAUSE = "pause"
    """Stops the run until an operator resumes it."""
    APPROVAL = "approval"
    """Stops the run until an operator approves (``ok`` route) or rejects (``error`` route)."""


MANUAL_STEP_KINDS: Final = frozenset({StepKind.PAUSE, StepKind.APPROVAL})
"""Kinds that wait for an operator; transition workflows only."""


class LogLevel(StrEnum):
    """Levels of the built-in log step."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class BackoffType(StrEnum):
    """How the delay before a retry grows."""

    FIXED = "fixed"
    """The same delay before every retry."""
    EXPONENTIAL = "exponential"
    """``min(min * 2^(n-1), max)`` after failed attempt ``n``."""


class Outcome(StrEnum):
    """How a step ended, as far as routing is concerned."""

    OK = "ok"
    ERROR = "error"
    """Taken only after retries are exhausted (or on an explicit `Error`, or a rejection)."""


class Recovery(StrEnum):
    """What an error route does about the failed step's effects; recorded when it is taken."""

    COMPENSATION = "compensation"
    """A forward action that reconciles partial work, such as issuing a credit."""
    UNDO = "undo"
    """Reverses work the application still controls, such as releasing a reservation."""


class ConditionOperator(StrEnum):
    """Comparisons a route condition can make against the run state."""

    EQUALS = "equals"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"


class Escalation(StrEnum):
    """Who a missed deadline is for; the host delivers the escalation."""

    DIAGNOSTIC = "diagnostic"
    OPERATOR_ACTION = "operator_action"
    WORKFLOW_STEP = "workflow_step"
    HOST_CALLBACK = "host_callback"


class WorkflowMode(StrEnum):
    """How a workflow's steps follow each other."""

    TRANSITION = "transition"
    """Each step names its successor per outcome; exactly one root."""
    DEPENDENCY = "dependency"
    """Steps wait for the steps in their ``after`` list; any number of roots."""


class EdgeType(StrEnum):
    """Kinds of declared graph edges."""

    TRANSITION = "transition"
    """A route from a step's outcome to its successor."""
    DEPENDENCY = "dependency"
    """From a dependency to the step that waits for it."""
