"""Running one step: call it (awaiting it if async) and normalize whatever happens."""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Awaitable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar, cast

from squidmesh_es.errors import InvalidArgument, PayloadTooLarge
from squidmesh_es.redaction import redact_json, redact_text
from squidmesh_es.workflow._json import JSONObject, JSONValue, is_json_value
from squidmesh_es.workflow._limits import Limits
from squidmesh_es.workflow._retry import to_ms
from squidmesh_es.workflow._steps import Defer, Error, Ok, Retry, Step, StepContext
from squidmesh_es.workflow._vocab import Outcome

_T = TypeVar("_T")

_MESSAGE_LIMIT = 1000


class OutcomeStatus(StrEnum):
    """How one attempt of a step ended."""

    OK = "ok"
    ERROR = "error"
    """Failed for good: retries are skipped."""
    RETRY = "retry"
    """Failed, may succeed later: the retry policy decides (raised exceptions land here)."""
    DEFER = "defer"
    """Not ready yet: run the step again after `delay`, without spending retry budget."""


@dataclass(frozen=True)
class StepOutcome:
    """One attempt's result, normalized: what the engine records and routes on."""

    status: OutcomeStatus
    output: JSONObject = field(default_factory=dict)
    """The step's output when `status` is ok, else empty."""
    reason: JSONValue = None
    """Why it failed or deferred. For a raised exception (`raised`): its type and message.
    Secrets in it are redacted by the redaction policy before anything stores it."""
    delay: timedelta | None = None
    """Requested delay: the defer delay, or a retry's override of the backoff."""
    raised: bool = False
    """Whether the step raised (or returned something that is not a step result)."""

    @property
    def outcome(self) -> Outcome | None:
        """The outcome to route on; `None` for a deferral, which routes nowhere.

        Failures route as ``error``, once the retry policy has no attempt left.
        """
        if self.status is OutcomeStatus.OK:
            return Outcome.OK
        if self.status is OutcomeStatus.DEFER:
            return None
        return Outcome.ERROR

    def to_dict(self) -> JSONObject:
        """The outcome as JSON-safe data, delays in milliseconds."""
        return {
            "status": self.status.value,
            "output": self.output,
            "reason": self.reason,
            "delay_ms": None if self.delay is None else to_ms(self.delay),
            "raised": self.raised,
        }


StepCoroutine = Coroutine[object, object, StepOutcome]
"""An async step's attempt under way: awaited, it gives the normalized outcome."""


def run_step(
    step: Step | type[Step],
    input: JSONObject,
    ctx: StepContext,
    *,
    limits: Limits | None = None,
) -> StepOutcome:
    """Run `step` once on `input` and return its normalized outcome; never raises for it.

    The step gets its own copy of `input`, so nothing it does to it reaches the run state.

    An exception (or an invalid return value) becomes a retryable failure whose reason holds
    the exception's type name and message: no traceback, no locals. Every reason (a raised
    message, an ``Error``, ``Retry`` or ``Defer`` reason) is sanitized by the redaction
    policy here, so no secret a step put in it reaches the journal. An ``async`` step is
    awaited on a fresh event loop; when the caller is itself inside a running loop, on a
    helper thread, so the caller's loop is never re-entered. (The runtime's worker awaits
    it on its own long-lived loop instead: see `start_step`.)

    An output or reason over ``limits`` (default `Limits()`), or holding text that is not
    valid Unicode, fails the attempt for good (``error``, no retry): running the step again
    would most likely return it again, and the journal must not store it.
    """
    started = start_step(step, input, ctx, limits=limits)
    return started if isinstance(started, StepOutcome) else _await(started)


def start_step(
    step: Step | type[Step],
    input: JSONObject,
    ctx: StepContext,
    *,
    limits: Limits | None = None,
) -> StepOutcome | StepCoroutine:
    """Call `step` once: a plain step's outcome, or the coroutine that finishes an async one.

    The rules are `run_step`'s. The coroutine never raises for the step: awaited on any
    event loop, it gives the normalized outcome. Only a cancellation goes through it, so
    that whoever owns the loop can stop a step whose result nobody will record.
    """
    bounds = limits or Limits()
    try:
        instance = step() if isinstance(step, type) else step
        result: object = instance.run(copy.deepcopy(input), ctx)
    except Exception as exc:
        return _within(_raised(type(exc).__name__, str(exc)), bounds)
    if inspect.isawaitable(result):
        return _finish(result, bounds)
    return _within(_normalize(result), bounds)


async def _finish(awaitable: Awaitable[object], limits: Limits) -> StepOutcome:
    try:
        result = await awaitable
    except Exception as exc:
        return _within(_raised(type(exc).__name__, str(exc)), limits)
    return _within(_normalize(result), limits)


def _within(outcome: StepOutcome, limits: Limits) -> StepOutcome:
    """``outcome``, or a final failure when what it would store is unstorable."""
    what, value = ("output", outcome.output) if outcome.output else ("reason", outcome.reason)
    try:
        limits.measure(value, what=what)
    except (PayloadTooLarge, InvalidArgument) as exc:
        reason = cast(JSONObject, {"type": type(exc).__name__, **exc.to_dict()})
        return StepOutcome(OutcomeStatus.ERROR, reason=reason)
    return outcome


def _await(coroutine: Coroutine[object, object, _T]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="squidmesh-step") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _normalize(result: object) -> StepOutcome:
    if isinstance(result, Ok):
        output = result.output
        if isinstance(output, Mapping) and is_json_value(dict(output)):
            return StepOutcome(OutcomeStatus.OK, output=dict(output))
        return _invalid("Ok output must be a mapping of string keys to JSON values")
    if isinstance(result, Error | Retry | Defer):
        reason = _json_reason(result.reason)
        if reason is None and result.reason is not None:
            return _invalid(f"{type(result).__name__} reason must be JSON data or an exception")
        if isinstance(result, Error):
            return StepOutcome(OutcomeStatus.ERROR, reason=reason)
        if not _valid_delay(result.delay, required=isinstance(result, Defer)):
            return _invalid(f"{type(result).__name__} delay must be a non-negative timedelta")
        status = OutcomeStatus.RETRY if isinstance(result, Retry) else OutcomeStatus.DEFER
        return StepOutcome(status, reason=reason, delay=result.delay)
    return _invalid(f"a step must return Ok, Error, Retry or Defer, not {type(result).__name__}")


def _json_reason(reason: object) -> JSONValue:
    """A reason as JSON data: exceptions become their safe record; `None` if impossible."""
    if isinstance(reason, BaseException):
        return {"type": type(reason).__name__, "message": _message(str(reason))}
    return redact_json(cast(JSONValue, reason)) if is_json_value(reason) else None


def _valid_delay(delay: object, *, required: bool) -> bool:
    if delay is None:
        return not required
    return isinstance(delay, timedelta) and delay >= timedelta(0)


def _raised(type_name: str, message: str) -> StepOutcome:
    reason: JSONObject = {"type": type_name, "message": _message(message)}
    return StepOutcome(OutcomeStatus.RETRY, reason=reason, raised=True)


def _message(text: str) -> str:
    # Redact before the final cut, which could leave half a secret no pattern recognises; the
    # first cut only bounds the work, far past anything kept.
    return redact_text(text[: _MESSAGE_LIMIT * 8])[:_MESSAGE_LIMIT]


def _invalid(message: str) -> StepOutcome:
    return _raised("InvalidStepResult", message)
