"""Workflows the engine tests run; importable by name so worker subprocesses can load them."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    Backoff,
    Defer,
    Error,
    JSONObject,
    LogLevel,
    Ok,
    Outcome,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    approval,
    equals,
    greater_than,
    log,
    manual,
    pause,
    step,
    transition,
    wait,
)

CALLS: list[tuple[str, str]] = []
"""(step class, runnable key) of every step run in this process, for exactly-once checks."""


def called(step: Step, ctx: StepContext) -> None:
    CALLS.append((type(step).__name__, ctx.runnable_key))
    log_path = os.environ.get("SQUIDMESH_TEST_CALL_LOG")
    if log_path:
        with open(log_path, "a", encoding="utf-8") as out:
            out.write(f"{ctx.runnable_key} {ctx.claim_id} {os.getpid()}\n")


class Order(BaseModel):
    order_id: str
    amount: int = 10


class Reserve(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"reservation": f"r-{input['order_id']}"})


class Charge(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"charged": input["amount"]})


class Ship(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"shipped": True, "saw": sorted(input)})


class Sequential(Workflow):
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    charge = step(Charge, input=["amount"], output="payment")
    ship = step(Ship, input={"reservation": "reservation", "charged": "payment.charged"})

    transitions = [
        transition(reserve, to=charge),
        transition(charge, to=ship),
        transition(ship, to=COMPLETE),
    ]


class Review(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"reviewed": True})


class Express(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"lane": "express"})


class Standard(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"lane": "standard"})


class Routed(Workflow):
    """Conditional routes with an unconditional fallback."""

    payload = Order
    triggers = [manual("route")]

    review = step(Review)
    express = step(Express)
    standard = step(Standard)

    transitions = [
        transition(review, to=express, when=greater_than("amount", 100)),
        transition(review, to=standard),
        transition(express, to=COMPLETE),
        transition(standard, to=COMPLETE),
    ]


class OnlyConditional(Workflow):
    """Conditional routes and no fallback: an unmatched ok outcome fails the run."""

    payload = Order
    triggers = [manual("route")]

    review = step(Review)
    express = step(Express)

    transitions = [
        transition(review, to=express, when=equals("order_id", "vip")),
        transition(express, to=COMPLETE),
    ]


class Fetch(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"fetched": input["order_id"]})


class Left(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"left": 1})


class Right(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"right": 2})


class BrokenRight(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        called(self, ctx)
        return Error({"code": "right_broken"})


class Join(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"joined": input["left"] + input["right"]})


class FanOut(Workflow):
    payload = Order
    triggers = [manual("fan")]

    fetch = step(Fetch)
    left = step(Left, after=[fetch])
    right = step(Right, after=[fetch])
    join = step(Join, after=[left, right])


class FanOutBroken(Workflow):
    payload = Order
    triggers = [manual("fan")]

    fetch = step(Fetch)
    left = step(Left, after=[fetch])
    right = step(BrokenRight, after=[fetch])
    join = step(Join, after=[left, right])


class Flaky(Step):
    """Asks for a retry until its attempt number reaches ``succeed_on`` in the payload."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        called(self, ctx)
        if ctx.attempt < int(input["succeed_on"]):
            return Retry({"code": "not_yet", "attempt": ctx.attempt})
        return Ok({"flaky_ok_on": ctx.attempt})


class Raises(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        raise RuntimeError("boom")


class Refuses(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        called(self, ctx)
        return Error({"code": "declined"})


class Credit(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"credited": True})


class FlakyRequest(BaseModel):
    succeed_on: int


RETRY = RetryPolicy(
    max_attempts=3,
    backoff=Backoff.exponential(min=timedelta(seconds=10), max=timedelta(seconds=15)),
)


class Retrying(Workflow):
    payload = FlakyRequest
    triggers = [manual("go")]

    flaky = step(Flaky, retry=RETRY)
    credit = step(Credit)

    transitions = [
        transition(flaky, to=COMPLETE),
        transition(flaky, on=Outcome.ERROR, to=credit),
        transition(credit, to=COMPLETE),
    ]


class RaisingNoRoute(Workflow):
    triggers = [manual("go")]

    explode = step(Raises, retry=RetryPolicy(max_attempts=2))

    transitions = [transition(explode, to=COMPLETE)]


class ErrorRouted(Workflow):
    triggers = [manual("go")]

    refuse = step(Refuses, retry=RETRY)
    credit = step(Credit)

    transitions = [
        transition(refuse, to=COMPLETE),
        transition(refuse, on=Outcome.ERROR, to=credit),
        transition(credit, to=COMPLETE),
    ]


class ErrorUnrouted(Workflow):
    triggers = [manual("go")]

    refuse = step(Refuses, retry=RETRY)

    transitions = [transition(refuse, to=COMPLETE)]


class Waiting(Workflow):
    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    cool_off = wait(timedelta(minutes=5))
    note = log("cooled off", level=LogLevel.WARNING)
    charge = step(Charge)

    transitions = [
        transition(reserve, to=cool_off),
        transition(cool_off, to=note),
        transition(note, to=charge),
        transition(charge, to=COMPLETE),
    ]


class FanOutEndingInALog(Workflow):
    """Dependency mode whose last step is a log, due five minutes after the reservation."""

    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    cool_off = wait(timedelta(minutes=5), after=[reserve])
    note = log("cooled off", after=[cool_off])


class Slow(Step):
    """Sleeps for ``seconds`` of real time: for heartbeats and processes, where time is the
    subject."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        time.sleep(float(os.environ.get("SQUIDMESH_TEST_SLOW_SECONDS", input["seconds"])))
        return Ok({"slept": input["seconds"]})


class SlowRequest(BaseModel):
    seconds: float


class SlowOne(Workflow):
    payload = SlowRequest
    triggers = [manual("go")]

    slow = step(Slow)
    after_slow = step(Credit)

    transitions = [transition(slow, to=after_slow), transition(after_slow, to=COMPLETE)]


class Quick(Workflow):
    """Three trivial steps, for worker and stress tests."""

    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    charge = step(Charge)
    ship = step(Ship)

    transitions = [
        transition(reserve, to=charge),
        transition(charge, to=ship),
        transition(ship, to=COMPLETE),
    ]


class Refund(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"refunded": True, "decision_seen": input.get("review", {}).get("decision")})


class Approved(Workflow):
    """An approval gate: approve continues to the refund, reject routes to a notice."""

    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    review = approval(output="review")
    refund = step(Refund)
    notify_rejection = log("refund rejected")

    transitions = [
        transition(reserve, to=review),
        transition(review, to=refund),
        transition(review, on=Outcome.ERROR, to=notify_rejection),
        transition(refund, to=COMPLETE),
        transition(notify_rejection, to=COMPLETE),
    ]


class Paused(Workflow):
    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    hold = pause()
    charge = step(Charge)

    transitions = [
        transition(reserve, to=hold),
        transition(hold, to=charge),
        transition(charge, to=COMPLETE),
    ]


class Pending(Step):
    """Defers twice (the payment is still pending), then settles."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Defer:
        called(self, ctx)
        if ctx.runnable_key.count(":deferred:") == 0 or ctx.runnable_key.endswith(":1"):
            return Defer({"status": "pending"}, timedelta(minutes=1))
        return Ok({"settled_on_attempt": ctx.attempt})


class Deferring(Workflow):
    triggers = [manual("go")]

    settle = step(Pending, retry=RetryPolicy(max_attempts=1))
    transitions = [transition(settle, to=COMPLETE)]


class Notify(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({"notified": True})


class Notifying(Workflow):
    """Completes a reversible step, then an irreversible notification."""

    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    notify = step(Notify, irreversible=True)

    transitions = [transition(reserve, to=notify), transition(notify, to=COMPLETE)]


class Spawn(Step):
    """Starts a child run; a retry of this step finds the same child."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        child = ctx.start_child_run(Sequential, {"order_id": "child"}, child_key="ship-1")
        again = ctx.start_child_run(Sequential, {"order_id": "child"}, child_key="ship-1")
        assert again.run_id == child.run_id
        return Ok({"child_run_id": str(child.run_id)})


class Parent(Workflow):
    triggers = [manual("go")]

    spawn = step(Spawn)
    transitions = [transition(spawn, to=COMPLETE)]
