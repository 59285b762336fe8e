"""One structured log record per settled step outcome, so an operator can follow the work.

A record says what happened to one attempt once its outcome is committed: INFO when the
step completed or deferred, WARNING when a retry was scheduled, ERROR when it failed for
good (or was abandoned, or met a definition it does not match). The fields (``extra=``)
are ids, names, numbers and the outcome only, never inputs, outputs or errors, and the
message carries the same ids; a host's handlers redact as usual (`RedactingFilter`).
With OpenTelemetry installed, the same outcome is counted and gets a settle span in its
run's trace (`record_outcome`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Final

from squidmesh_es.domain import WorkflowRun, runnable_key
from squidmesh_es.redaction import redact_text
from squidmesh_es.runtime._execution import Finished, Settled
from squidmesh_es.runtime._telemetry import record_outcome
from squidmesh_es.workflow import OutcomeStatus

__all__ = ["StepResult", "report_step_outcomes"]

logger = logging.getLogger("squidmesh_es.worker.steps")


class StepResult(StrEnum):
    """What became of one attempt, as the ``outcome`` field of its record."""

    COMPLETED = "completed"
    DEFERRED = "deferred"
    RETRYING = "retrying"
    FAILED = "failed"
    ABANDONED = "abandoned"
    DEFINITION_MISMATCH = "definition_mismatch"


_LEVELS: Final = {
    StepResult.COMPLETED: logging.INFO,
    StepResult.DEFERRED: logging.INFO,
    StepResult.RETRYING: logging.WARNING,
    StepResult.FAILED: logging.ERROR,
    StepResult.ABANDONED: logging.ERROR,
    StepResult.DEFINITION_MISMATCH: logging.ERROR,
}


def report_step_outcomes(
    settled: Settled,
    finished: Sequence[Finished],
    *,
    durations: Mapping[str, float],
    owner_id: str,
    queue: str,
    began_ns: int,
) -> None:
    """Log (and trace, and count) each committed outcome; refused ones were logged already.

    ``durations`` holds each attempt's running time in seconds, by runnable key;
    ``began_ns`` is when the settling commit began (`time.time_ns`), for its span.
    """
    if not settled.committed:
        return
    for item in finished:
        attempt = item.claim.attempt
        if attempt.runnable_key in settled.refused:
            continue
        run = settled.runs.get(attempt.run_id)
        result = _result(item, run)
        duration_ms = round(durations.get(attempt.runnable_key, 0.0) * 1000, 1)
        fields = {
            "run_id": attempt.run_id,
            "workflow": run.workflow if run is not None else None,
            "step": attempt.step,
            "attempt": attempt.attempt_number,
            "outcome": result.value,
            "duration_ms": duration_ms,
            "owner": owner_id,
            "queue": queue,
        }
        level = _LEVELS[result]
        if logger.isEnabledFor(level):  # the message is redacted only when it goes somewhere
            logger.log(
                level,
                redact_text(
                    f"step {attempt.step} of run {attempt.run_id} ({fields['workflow']}) "
                    f"attempt {attempt.attempt_number} {result.value}, ran {duration_ms} ms"
                ),
                extra=fields,
            )
        record_outcome(
            trace_context=run.trace_context if run is not None else None,
            attempt=attempt,
            queue=queue,
            workflow=run.workflow if run is not None else None,
            outcome=result.value,
            began_ns=began_ns,
        )


def _result(item: Finished, run: WorkflowRun | None) -> StepResult:
    if item.mismatch is not None:
        return StepResult.DEFINITION_MISMATCH
    if item.abandoned:
        return StepResult.ABANDONED
    assert item.outcome is not None  # the worker settles only attempts with an outcome
    status = item.outcome.status
    if status is OutcomeStatus.OK:
        return StepResult.COMPLETED
    if status is OutcomeStatus.DEFER:
        return StepResult.DEFERRED
    attempt = item.claim.attempt
    again = runnable_key(attempt.run_id, attempt.step, attempt.attempt_number + 1)
    # a retry is planned on the run in the same commit (the queue schedules it itself)
    return StepResult.RETRYING if run is not None and again in run.planned else StepResult.FAILED
