"""Running a step once: sync and async, every result, exceptions and invalid returns."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from squidmesh_es.workflow import (
    Defer,
    Error,
    Limits,
    Ok,
    Outcome,
    OutcomeStatus,
    Retry,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
    run_step,
)

CTX = StepContext(
    run_id=UUID("00000000-0000-4000-8000-000000000001"),
    workflow="billing",
    step="charge",
    attempt=1,
    runnable_key="charge:1",
    idempotency_key="run-1:charge:1",
)


def _returning(result: object) -> Step:
    class Returns(Step):
        def run(self, input: dict[str, Any], ctx: StepContext) -> StepResult:
            return result  # type: ignore[return-value]

    return Returns()


class Echo(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        return Ok({"seen": input, "attempt": ctx.attempt})


class AsyncEcho(Step):
    async def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        await asyncio.sleep(0)
        return Ok({"seen": input})


class Boom(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        secret = "s3cr3t"  # a local that must not leak into the record
        raise ValueError(f"gateway said no ({len(secret)})")


class AsyncBoom(Step):
    async def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        raise TimeoutError("too slow")


def test_sync_step_output_is_kept() -> None:
    outcome = run_step(Echo(), {"a": 1}, CTX)

    assert outcome == StepOutcome(OutcomeStatus.OK, output={"seen": {"a": 1}, "attempt": 1})
    assert outcome.outcome is Outcome.OK


def test_step_class_is_instantiated() -> None:
    assert run_step(Echo, {}, CTX).status is OutcomeStatus.OK


def test_async_step_is_awaited() -> None:
    assert run_step(AsyncEcho(), {"a": 1}, CTX).output == {"seen": {"a": 1}}


def test_async_step_runs_from_inside_a_running_event_loop() -> None:
    async def caller() -> StepOutcome:
        return run_step(AsyncEcho(), {"a": 2}, CTX)

    assert asyncio.run(caller()).output == {"seen": {"a": 2}}


def test_error_skips_retries() -> None:
    outcome = run_step(_returning(Error({"code": "declined"})), {}, CTX)

    assert (outcome.status, outcome.reason, outcome.outcome) == (
        OutcomeStatus.ERROR,
        {"code": "declined"},
        Outcome.ERROR,
    )


def test_retry_carries_its_delay_override() -> None:
    outcome = run_step(_returning(Retry("busy", delay=timedelta(seconds=3))), {}, CTX)

    assert (outcome.status, outcome.reason, outcome.delay, outcome.raised) == (
        OutcomeStatus.RETRY,
        "busy",
        timedelta(seconds=3),
        False,
    )


def test_defer_routes_nowhere() -> None:
    outcome = run_step(_returning(Defer({"pending": True}, timedelta(seconds=30))), {}, CTX)

    assert (outcome.status, outcome.delay, outcome.outcome) == (
        OutcomeStatus.DEFER,
        timedelta(seconds=30),
        None,
    )


def test_exception_is_a_retryable_failure_with_a_safe_record() -> None:
    outcome = run_step(Boom(), {}, CTX)

    assert outcome == StepOutcome(
        OutcomeStatus.RETRY,
        reason={"type": "ValueError", "message": "gateway said no (6)"},
        raised=True,
    )
    assert "s3cr3t" not in str(outcome.to_dict())


def test_async_exception_is_a_retryable_failure() -> None:
    outcome = run_step(AsyncBoom(), {}, CTX)

    assert outcome.reason == {"type": "TimeoutError", "message": "too slow"}


def test_long_exception_messages_are_cut() -> None:
    class Verbose(Step):
        def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
            raise RuntimeError("x" * 5000)

    reason = run_step(Verbose(), {}, CTX).reason

    assert isinstance(reason, dict) and len(str(reason["message"])) == 1000


def test_exception_given_as_an_error_reason_becomes_its_record() -> None:
    outcome = run_step(_returning(Error(KeyError("invoice"))), {}, CTX)

    assert outcome.reason == {"type": "KeyError", "message": "'invoice'"}


@pytest.mark.parametrize(
    "result",
    [
        None,
        {"ok": True},
        Ok({"when": object()}),
        Ok({1: "non-string key"}),  # type: ignore[dict-item]
        Ok({"nan": float("nan")}),
        Error(object()),
        Retry("busy", delay=timedelta(seconds=-1)),
        Defer("later", delay=None),  # type: ignore[arg-type]
    ],
)
def test_invalid_results_are_retryable_failures(result: object) -> None:
    outcome = run_step(_returning(result), {}, CTX)

    assert (outcome.status, outcome.raised) == (OutcomeStatus.RETRY, True)
    assert isinstance(outcome.reason, dict) and outcome.reason["type"] == "InvalidStepResult"


def test_outcome_data_is_json_safe_with_delays_in_milliseconds() -> None:
    outcome = run_step(_returning(Retry("busy", delay=timedelta(seconds=2))), {}, CTX)

    assert outcome.to_dict() == {
        "status": "retry",
        "output": {},
        "reason": "busy",
        "delay_ms": 2000,
        "raised": False,
    }


def test_context_has_no_claim_token() -> None:
    assert not any("token" in field.name for field in fields(StepContext))


def test_step_cannot_change_the_input_it_was_given() -> None:
    class Mutates(Step):
        def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
            input["account"]["tier"] = "hacked"
            return Ok()

    state = {"account": {"tier": "gold"}}

    run_step(Mutates(), state, CTX)

    assert state == {"account": {"tier": "gold"}}


LIMITS = Limits(max_value_bytes=100, max_request_bytes=100)


@pytest.mark.parametrize(
    ("result", "what"),
    [
        (Ok({"trace": "x" * 100}), "output"),
        (Retry({"trace": "x" * 100}), "reason"),
        (Error({"trace": "x" * 100}), "reason"),
    ],
    ids=["ok", "retry", "error"],
)
def test_a_result_over_the_limit_fails_for_good(result: StepResult, what: str) -> None:
    outcome = run_step(_returning(result), {}, CTX, limits=LIMITS)

    assert outcome.status is OutcomeStatus.ERROR
    assert isinstance(outcome.reason, dict)
    assert outcome.reason["code"] == "payload_too_large"
    assert outcome.reason["details"] == {"what": what, "size": 112, "limit": 100}
    assert outcome.output == {}


def test_a_result_at_the_limit_is_kept() -> None:
    outcome = run_step(_returning(Ok({"blob": "x" * 89})), {}, CTX, limits=LIMITS)

    assert outcome == StepOutcome(OutcomeStatus.OK, output={"blob": "x" * 89})


def test_an_output_that_is_not_valid_unicode_fails_for_good() -> None:
    outcome = run_step(_returning(Ok({"name": "\ud800"})), {}, CTX)

    assert outcome.status is OutcomeStatus.ERROR
    assert isinstance(outcome.reason, dict)
    assert (outcome.reason["type"], outcome.reason["code"]) == ("InvalidArgument", "invalid_option")
    assert "lone surrogate" in str(outcome.reason["message"])
