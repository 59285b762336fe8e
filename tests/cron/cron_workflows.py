"""Workflows the cron tests schedule; importable by name so a scheduler subprocess loads them."""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    CronIdempotency,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    cron,
    manual,
    step,
    transition,
)


class Digest(BaseModel):
    channel: str = "ops"


class EchoSchedule(Step):
    """Puts what the step saw of its schedule into its output."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"seen_schedule": ctx.schedule, "channel": input["channel"]})


class DailyDigest(Workflow):
    name = "cron_tests.daily_digest"
    payload = Digest
    triggers = [
        cron(
            "nightly",
            "0 21 * * *",
            timezone="Europe/Berlin",
            idempotency=CronIdempotency.RETURN_EXISTING_RUN,
        ),
        cron("quarterly_hour", "*/15 * * * *", idempotency=CronIdempotency.SKIP_DUPLICATE),
        cron("hourly", "@hourly"),
        manual("now"),
    ]

    echo = step(EchoSchedule)

    transitions = [transition(echo, to=COMPLETE)]


class NeedsRegion(BaseModel):
    region: str


class Noop(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({})


class RegionalReport(Workflow):
    """A cron workflow whose payload has a required field: cron runs cannot fill it."""

    name = "cron_tests.regional_report"
    payload = NeedsRegion
    triggers = [cron("daily", "0 6 * * *", idempotency=CronIdempotency.SKIP_DUPLICATE)]

    noop = step(Noop)

    transitions = [transition(noop, to=COMPLETE)]


class MinuteTick(Workflow):
    """Every minute, for the scheduler subprocess test."""

    name = "cron_tests.minute_tick"
    payload = Digest
    triggers = [cron("every_minute", "* * * * *", idempotency=CronIdempotency.SKIP_DUPLICATE)]

    echo = step(EchoSchedule)

    transitions = [transition(echo, to=COMPLETE)]
