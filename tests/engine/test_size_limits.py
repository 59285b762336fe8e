"""Size limits: values over `Limits` are refused where they enter, and nothing is written."""

from __future__ import annotations

import threading
import uuid

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import (
    InvalidArgument,
    PayloadTooLarge,
    PayloadValidationError,
    RunNotFound,
)
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Limits,
    Ok,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    json_size,
    manual,
    step,
    transition,
)

from conftest import OpenMesh
from engine_workflows import Sequential

SMALL = Limits(max_value_bytes=1000, max_request_bytes=1500)


class Bloated(Step):
    calls = 0

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        Bloated.calls += 1
        return Ok({"blob": "x" * 2000})


class ReturnsTooMuch(Workflow):
    triggers = [manual("go")]

    bloat = step(Bloated, retry=RetryPolicy(max_attempts=3))

    transitions = [transition(bloat, to=COMPLETE)]


@pytest.fixture
def small(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh(limits=SMALL)


def test_a_payload_over_the_limit_is_refused_and_nothing_is_written(small: SquidMesh) -> None:
    run_id = uuid.uuid4()

    with pytest.raises(PayloadTooLarge) as raised:
        small.start(Sequential, {"order_id": "x" * 1000}, run_id=run_id)

    assert raised.value.code == "payload_too_large"
    assert (raised.value.what, raised.value.limit) == ("payload", 1000)
    assert raised.value.size == json_size({"order_id": "x" * 1000, "amount": 10})
    with pytest.raises(RunNotFound):
        small.get_run(run_id)


def test_metadata_and_the_request_as_a_whole_have_limits(small: SquidMesh) -> None:
    with pytest.raises(PayloadTooLarge) as metadata:
        small.start(Sequential, {"order_id": "o"}, metadata={"note": "n" * 1000})
    with pytest.raises(PayloadTooLarge) as request:
        small.start(Sequential, {"order_id": "o" * 800}, metadata={"note": "n" * 800})

    assert metadata.value.what == "metadata"
    assert (request.value.what, request.value.limit) == ("request", 1500)


def test_a_value_at_the_limit_is_accepted(small: SquidMesh) -> None:
    base = json_size({"order_id": "", "amount": 10})

    started = small.start(Sequential, {"order_id": "x" * (1000 - base)})

    assert small.get_run(started.run_id).input["order_id"] == "x" * (1000 - base)


def test_a_control_signal_with_too_much_metadata_is_refused(small: SquidMesh) -> None:
    started = small.start(Sequential, {"order_id": "o"})

    with pytest.raises(PayloadTooLarge):
        small.cancel(started.run_id, metadata={"note": "n" * 2000})

    assert small.inspect_run(started.run_id).status == "running"


def test_a_dynamic_work_proposal_over_the_limit_is_refused(small: SquidMesh) -> None:
    started = small.start(Sequential, {"order_id": "o"})
    proposal = {"dynamic_key": "k", "nodes": [{"id": "n", "input": {"x": "x" * 2000}}]}

    with pytest.raises(PayloadTooLarge) as raised:
        small.record_dynamic_work(started.run_id, proposal)

    assert raised.value.what == "dynamic_work"
    assert small.inspect_run(started.run_id).dynamic_work == []


def test_a_step_output_over_the_limit_fails_the_attempt_for_good(small: SquidMesh) -> None:
    Bloated.calls = 0
    started = small.start(ReturnsTooMuch, {})

    small.drain(owner_id="test-worker")

    snap = small.inspect_run(started.run_id)
    assert snap.terminal_status == "failed"
    assert Bloated.calls == 1  # not retried: the same step would return the same output
    assert snap.error is not None
    assert "payload_too_large" in str(snap.error)


def test_a_lone_surrogate_is_a_typed_error_not_a_storage_crash(mesh: SquidMesh) -> None:
    run_id = uuid.uuid4()

    with pytest.raises(PayloadValidationError) as payload:
        mesh.start(Sequential, {"order_id": "bad \ud800"}, run_id=run_id)
    with pytest.raises(InvalidArgument) as metadata:
        mesh.start(Sequential, {"order_id": "o"}, metadata={"note": "\udfff"})

    assert payload.value.codes == {"invalid_unicode"}
    assert payload.value.issues[0].path == ("order_id",)
    assert (metadata.value.code, metadata.value.option) == ("invalid_option", "metadata")
    with pytest.raises(RunNotFound):
        mesh.get_run(run_id)


@pytest.mark.parametrize(("value", "request_"), [(0, 10), (10, 5), (True, 10), (10, 10.5)], ids=str)
def test_limits_are_positive_whole_numbers(value: object, request_: object) -> None:
    with pytest.raises(InvalidArgument):
        Limits(max_value_bytes=value, max_request_bytes=request_)  # type: ignore[arg-type]


@pytest.mark.postgres_only
def test_large_commits_do_not_hang_the_postgres_driver(open_mesh: OpenMesh, backend: str) -> None:
    """psycopg's pipeline left the tail of a large commit unsent (about one in four at 9 MB)."""
    big = open_mesh(limits=Limits(max_value_bytes=4_000_000, max_request_bytes=4_000_000))
    done: list[str] = []

    def start_several() -> None:
        for n in range(4):
            done.append(str(big.start(Sequential, {"order_id": str(n) * 3_000_000}).run_id))

    starter = threading.Thread(target=start_several, daemon=True)
    starter.start()
    starter.join(timeout=60)

    assert len(done) == 4, "a commit of about 9 MB hung in the driver"
