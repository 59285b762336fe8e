"""OpenTelemetry spans and metrics, read back through the SDK's in-memory exporter and reader.

A run started inside a span is one trace: its start span, then a step span per step (a
child of the start, whichever mesh or process runs it) and a settle span per outcome.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.errors import Conflict
from squidmesh_es.runtime import SystemClock, configure_telemetry
from squidmesh_es.runtime._execution import claim_attempts

from conftest import OpenMesh
from otel_workflows import AsyncChild, Mixed, Sleepy, Traced, TracedAsync

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self) -> dict[str, list[Any]]:
        """Every data point of every metric, by metric name."""
        data = self.metrics.get_metrics_data()
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def total(self, name: str, **attrs: object) -> float:
        points = self.points().get(name, [])
        return sum(
            p.value
            for p in points
            if all(p.attributes.get(f"squidmesh.{k}") == v for k, v in attrs.items())
        )


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    configure_telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(exporter, reader, tracer_provider)
    configure_telemetry()
    meter_provider.shutdown()


def run_to_end(mesh: SquidMesh, run_id: Any, *, owner_id: str = "w-otel") -> None:
    with mesh.worker(owner_id=owner_id, concurrency=2):
        deadline = time.monotonic() + 30
        while not mesh.get_run(run_id).is_terminal:
            assert time.monotonic() < deadline, "the run did not finish in time"
            time.sleep(0.02)


def by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def test_a_runs_steps_join_the_trace_of_the_code_that_started_it(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh(clock=SystemClock())
    tracer = telemetry.tracer_provider.get_tracer("host")
    with tracer.start_as_current_span("POST /orders") as request:
        run_id = mesh.start(Traced).run_id
    run_to_end(mesh, run_id)

    spans = telemetry.finished()
    trace_id = request.get_span_context().trace_id
    [start] = by_name(spans, "start Traced")
    steps = by_name(spans, "step ")
    settles = by_name(spans, "settle ")
    assert start.parent is not None and start.parent.span_id == request.get_span_context().span_id
    assert sorted(s.name for s in steps) == ["step first", "step second"]
    assert sorted(s.name for s in settles) == ["settle first", "settle second"]
    for span in steps + settles:
        assert span.context is not None and span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == start.context.span_id
        assert span.attributes is not None
        assert span.attributes["squidmesh.run_id"] == str(run_id)
        assert span.attributes["squidmesh.workflow"] == "Traced"
        assert span.attributes["squidmesh.attempt"] == 1
        assert span.attributes["squidmesh.queue"] == "default"
    assert {s.attributes["squidmesh.outcome"] for s in steps if s.attributes} == {"ok"}
    assert {s.attributes["squidmesh.outcome"] for s in settles if s.attributes} == {"completed"}
    assert by_name(spans, "claim default"), "the worker's claims are traced too"
    stored = mesh.get_run(run_id).trace_context
    assert stored is not None and f"{trace_id:032x}" in stored["traceparent"]


def test_an_async_steps_span_is_in_the_run_trace_and_current_while_it_runs(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(TracedAsync).run_id
    run_to_end(mesh, run_id)

    spans = telemetry.finished()
    [start] = by_name(spans, "start TracedAsync")
    [async_step] = by_name(spans, "step first")
    assert async_step.parent is not None and async_step.parent.span_id == start.context.span_id
    assert async_step.context is not None
    assert AsyncChild.current_spans[-1] == async_step.context.span_id
    assert async_step.attributes is not None
    assert async_step.attributes["squidmesh.outcome"] == "ok"
    assert len(by_name(spans, "step ")) == 2  # one span per step, async or not


def test_a_run_started_outside_any_trace_stores_no_context(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(Traced).run_id  # the start span is a root: the run joins its trace
    mesh.drain()

    [start] = by_name(telemetry.finished(), "start Traced")
    steps = by_name(telemetry.finished(), "step ")
    assert start.parent is None
    assert {s.context.trace_id for s in steps if s.context} == {start.context.trace_id}
    assert mesh.get_run(run_id).trace_context is not None


def test_without_a_tracer_the_run_stores_no_context(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()  # the global provider is OpenTelemetry's no-op one
    run_id = mesh.start(Traced).run_id

    assert mesh.get_run(run_id).trace_context is None


@pytest.mark.shared_journal
def test_a_step_run_by_another_mesh_joins_the_starters_trace(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    starter = open_mesh(clock=SystemClock())
    executor = open_mesh(clock=SystemClock(), workflows=[Traced])
    assert starter is not executor
    tracer = telemetry.tracer_provider.get_tracer("host")
    with tracer.start_as_current_span("request") as request:
        run_id = starter.start(Traced).run_id
    run_to_end(executor, run_id)

    steps = by_name(telemetry.finished(), "step ")
    assert len(steps) == 2
    assert {s.context.trace_id for s in steps if s.context} == {request.get_span_context().trace_id}


WORKER_SCRIPT = """
import json, sys, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_workflows import Traced
from squidmesh_es import SquidMesh
from squidmesh_es.runtime import configure_telemetry

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
configure_telemetry(tracer_provider=provider)
with SquidMesh.open(sys.argv[1], workflows=[Traced]) as mesh:
    with mesh.worker(owner_id="other-process"):
        deadline = time.monotonic() + 30
        while not mesh.get_run(sys.argv[2]).is_terminal and time.monotonic() < deadline:
            time.sleep(0.02)
for span in exporter.get_finished_spans():
    parent = span.parent.span_id if span.parent else None
    print(json.dumps([span.name, span.context.trace_id, parent]))
"""


@pytest.mark.shared_journal
def test_a_step_run_by_another_process_joins_the_starters_trace(
    database_url: str, telemetry: Telemetry
) -> None:
    with SquidMesh.open(database_url, workflows=[Traced]) as mesh:
        tracer = telemetry.tracer_provider.get_tracer("host")
        with tracer.start_as_current_span("request") as request:
            run_id = mesh.start(Traced).run_id
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)])}
        done = subprocess.run(
            [sys.executable, "-c", WORKER_SCRIPT, database_url, str(run_id)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        assert mesh.get_run(run_id).terminal_status == "completed"

    [start] = by_name(telemetry.finished(), "start Traced")
    spans = [json.loads(line) for line in done.stdout.splitlines()]
    steps = [s for s in spans if s[0].startswith("step ")]
    assert sorted(s[0] for s in steps) == ["step first", "step second"]
    for _, trace_id, parent in steps:
        assert trace_id == request.get_span_context().trace_id
        assert parent == start.context.span_id


def test_step_metrics_count_every_outcome(open_mesh: OpenMesh, telemetry: Telemetry) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(Mixed).run_id
    run_to_end(mesh, run_id)
    assert mesh.get_run(run_id).terminal_status == "failed"

    # shaky runs twice (a retry), wait twice (a deferral), refuse once (a failure)
    assert telemetry.total("squidmesh.step.started", workflow="Mixed") == 5
    assert telemetry.total("squidmesh.step.retried", step="shaky") == 1
    assert telemetry.total("squidmesh.step.completed", step="shaky") == 1
    assert telemetry.total("squidmesh.step.deferred", step="wait") == 1
    assert telemetry.total("squidmesh.step.completed", step="wait") == 1
    assert telemetry.total("squidmesh.step.failed", step="refuse") == 1
    points = telemetry.points()
    durations = points["squidmesh.step.duration"]
    assert sum(p.count for p in durations) == 5
    assert sum(p.count for p in points["squidmesh.claim.latency"]) == 5
    assert all(p.min >= 0 for p in points["squidmesh.claim.latency"])
    # a stopped worker no longer reports the queue it served
    assert points.get("squidmesh.queue.depth", []) == []
    for metric in points.values():  # no series per run
        assert all("squidmesh.run_id" not in p.attributes for p in metric)


def test_queue_gauges_show_the_work_waiting(
    open_mesh: OpenMesh, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOW_STEP_SECONDS", "1")
    mesh = open_mesh(clock=SystemClock())
    for _ in range(3):
        mesh.start(Sleepy)
    time.sleep(0.2)
    with mesh.worker(owner_id="w-gauge", concurrency=1):
        time.sleep(0.4)  # one step runs, two wait: the queue as the worker's commit left it
        points = telemetry.points()

    [depth] = points["squidmesh.queue.depth"]
    [age] = points["squidmesh.queue.oldest_visible_age"]
    assert depth.attributes == {"squidmesh.queue": "default", "squidmesh.partition": 0}
    assert depth.value == 3
    assert 0.2 <= age.value < 30


def test_partitions_are_an_attribute_of_spans_and_gauges_not_of_counters(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh(clock=SystemClock(), queue_partitions=4)
    run_ids = [mesh.start(Traced).run_id for _ in range(8)]
    partitions = {str(r): mesh.get_run(r).partition for r in run_ids}
    assert len(set(partitions.values())) > 1
    with mesh.worker(owner_id="w-parts", concurrency=2):
        deadline = time.monotonic() + 30
        while not all(mesh.get_run(r).is_terminal for r in run_ids):
            assert time.monotonic() < deadline, "the runs did not finish in time"
            time.sleep(0.02)
        gauges = telemetry.points()["squidmesh.queue.depth"]

    for span in by_name(telemetry.finished(), "step ") + by_name(telemetry.finished(), "start "):
        assert span.attributes is not None and span.attributes["squidmesh.queue"] == "default"
        run_id = str(span.attributes["squidmesh.run_id"])
        assert span.attributes["squidmesh.partition"] == partitions[run_id]
    assert {p.attributes["squidmesh.queue"] for p in gauges} == {"default"}
    # every partition the worker settled on is reported, on its own
    assert set(partitions.values()) <= {p.attributes["squidmesh.partition"] for p in gauges}
    completed = telemetry.points()["squidmesh.step.completed"]
    assert {tuple(sorted(p.attributes)) for p in completed} == {
        ("squidmesh.queue", "squidmesh.step", "squidmesh.workflow")
    }
    assert sum(p.value for p in completed) == 16


def test_an_expired_lease_taken_over_is_counted_and_logged(
    open_mesh: OpenMesh, telemetry: Telemetry, caplog: pytest.LogCaptureFixture, clock: Any
) -> None:
    mesh = open_mesh()
    run_id = mesh.start(Traced).run_id
    claim_attempts(
        mesh, "default", owner_id="dies", limit=1, lease_for=timedelta(seconds=1), now=mesh.now()
    )
    clock.advance(timedelta(seconds=5))

    with caplog.at_level(logging.WARNING, logger="squidmesh_es.worker"):
        [taken] = claim_attempts(
            mesh,
            "default",
            owner_id="rescuer",
            limit=1,
            lease_for=timedelta(seconds=30),
            now=mesh.now(),
        )

    assert taken.attempt.run_id == str(run_id) and taken.attempt.lease_expiries == 1
    assert telemetry.total("squidmesh.lease.expiries", step="first") == 1
    [record] = [r for r in caplog.records if "lease expired" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.run_id == str(run_id) and record.owner == "rescuer"  # type: ignore[attr-defined]


def test_a_lost_race_is_counted_as_a_conflict_retried(
    open_mesh: OpenMesh, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = open_mesh()
    mesh.start(Traced)
    save = mesh.save
    lost: list[bool] = []

    def save_losing_once(*objs: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(True)
            raise Conflict("another claimer won", queue="default")
        return save(*objs, **kwargs)

    monkeypatch.setattr(mesh, "save", save_losing_once)
    assert mesh.execute_next(owner_id="w") is not None

    assert telemetry.total("squidmesh.conflicts.retried", operation="claim") == 1


def test_a_control_is_a_span_in_the_callers_trace_linked_to_the_run(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh()
    tracer = telemetry.tracer_provider.get_tracer("host")
    with tracer.start_as_current_span("start request"):
        run_id = mesh.start(Traced).run_id
    with tracer.start_as_current_span("operator request") as operator:
        mesh.cancel(run_id, actor="ana")
    with pytest.raises(Exception) as refused:
        mesh.cancel(run_id)

    [start] = by_name(telemetry.finished(), "start Traced")
    cancels = by_name(telemetry.finished(), "cancel_run")
    assert [c.attributes["squidmesh.outcome"] for c in cancels if c.attributes] == [
        "ok",
        getattr(refused.value, "code", None),
    ]
    cancel = cancels[0]
    assert cancel.context is not None
    assert cancel.context.trace_id == operator.get_span_context().trace_id
    assert cancel.attributes is not None and cancel.attributes["squidmesh.run_id"] == str(run_id)
    assert [link.context.span_id for link in cancel.links] == [start.context.span_id]


def test_recovery_and_releasing_a_worker_are_traced(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh()
    mesh.start(Traced)
    mesh.recover()
    claim_attempts(
        mesh, "default", owner_id="gone", limit=1, lease_for=timedelta(seconds=30), now=mesh.now()
    )
    mesh.release_worker("gone", queues=["default"])

    [recover] = by_name(telemetry.finished(), "recover")
    [release] = by_name(telemetry.finished(), "release_worker")
    assert recover.attributes is not None and recover.attributes["squidmesh.outcome"] == "ok"
    assert release.attributes is not None and release.attributes["squidmesh.owner"] == "gone"


def test_a_snapshot_taken_before_trace_context_existed_still_loads(
    open_mesh: OpenMesh, telemetry: Telemetry
) -> None:
    mesh = open_mesh()
    with telemetry.tracer_provider.get_tracer("host").start_as_current_span("request"):
        run = mesh.get_run(mesh.start(Traced).run_id)
    assert run.trace_context is not None
    snapshot = WorkflowRun.Snapshot.take(run)
    old_state = {k: v for k, v in snapshot.state.items() if k != "trace_context"}
    old = WorkflowRun.Snapshot(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        timestamp=snapshot.timestamp,
        topic=snapshot.topic,
        state=old_state,
    )

    restored = old.mutate(None)

    assert isinstance(restored, WorkflowRun) and restored.trace_context is None
    assert restored.workflow == "Traced"


def test_a_history_written_before_trace_context_loads_and_runs_traced(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    fixtures = HERE.parent / "fixtures"
    sys.path.insert(0, str(HERE.parent / "engine"))
    try:
        from deploy_history_workflows import CHARGING, Release1
    finally:
        sys.path.remove(str(HERE.parent / "engine"))
    journal = tmp_path / "history.sqlite"
    shutil.copyfile(fixtures / "deploy_history_0_1.sqlite", journal)

    with SquidMesh.open(f"sqlite:///{journal}", workflows=[Release1]) as mesh:
        assert mesh.get_run(CHARGING).trace_context is None
        mesh.drain(owner_id="after-upgrade")
        assert mesh.get_run(CHARGING).terminal_status == "completed"

    # no stored context: its step's span opens a trace of its own
    [charge] = by_name(telemetry.finished(), "step charge")
    assert charge.parent is None
    assert charge.attributes is not None and charge.attributes["squidmesh.run_id"] == str(CHARGING)
