"""The workflow the fault suite runs: four steps, each leaving a side effect in a log file.

Importable by name (``squidmesh worker --import fault_workflows``) from this folder. Each
step appends its runnable key to ``SQUIDMESH_FAULT_LOG`` (one short ``O_APPEND`` write, so
lines of concurrent processes never mix) after sleeping ``SQUIDMESH_FAULT_STEP_SECONDS``,
so a SIGKILL often lands in the middle of a step.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)


class Order(BaseModel):
    n: int


class SideEffect(Step):
    """Sleep a little, then record that this attempt's side effect happened."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        time.sleep(float(os.environ.get("SQUIDMESH_FAULT_STEP_SECONDS", "0.01")))
        path = os.environ.get("SQUIDMESH_FAULT_LOG")
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{ctx.runnable_key} {ctx.step} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
        return Ok({ctx.step: True})


SURVIVES_CHAOS = RetryPolicy(max_attempts=1, max_lease_expiries=100)
"""The suite kills workers and restarts Postgres at random: a lost lease is not the step's
fault here, and the suite asserts every run completes. With the default (3), an attempt
unlucky enough to lose three leases would be abandoned as a poison step, as documented."""


class FourSteps(Workflow):
    payload = Order
    triggers = [manual("go")]

    reserve = step(SideEffect, retry=SURVIVES_CHAOS)
    charge = step(SideEffect, retry=SURVIVES_CHAOS)
    pack = step(SideEffect, retry=SURVIVES_CHAOS)
    ship = step(SideEffect, retry=SURVIVES_CHAOS)

    transitions = [
        transition(reserve, to=charge),
        transition(charge, to=pack),
        transition(pack, to=ship),
        transition(ship, to=COMPLETE),
    ]


STEPS = ("reserve", "charge", "pack", "ship")
