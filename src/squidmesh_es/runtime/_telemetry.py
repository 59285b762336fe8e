"""Traces and metrics through OpenTelemetry, when it is installed; otherwise nothing at all.

The runtime calls a few functions of this module at the places where work happens (a start,
a claim, a step, a settle, a control). With the ``otel`` extra missing, each of them returns
at once: the import is tried once, here, and nothing else in the package imports
``opentelemetry``.

A run stores the W3C trace context of the code that started it (``RunStarted``'s
``trace_context``). Each step's span is a *child* of that context, so the whole run is one
trace whichever process executes its steps, however much later: a run is one logical
operation that the start caused, and a parent keeps it one tree in every trace viewer,
where links would scatter it over one trace per step (docs/observability.md).

Providers are OpenTelemetry's global ones unless `configure_telemetry` names others (tests,
or a host that keeps separate providers for this library).
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from squidmesh_es.domain import JSONDict
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.redaction import redact_text

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    AVAILABLE = True
except ImportError:  # the ``otel`` extra is not installed: every function here is a no-op
    AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from squidmesh_es.domain import Attempt, DispatchQueue
    from squidmesh_es.runtime._execution import Claim

__all__ = [
    "AVAILABLE",
    "SECONDS_BUCKETS",
    "capture_context",
    "claimed",
    "configure_telemetry",
    "conflict_retried",
    "control_span",
    "prometheus_metrics",
    "queue_seen",
    "queues_left",
    "record_outcome",
    "start_span",
    "step_span",
]

logger = logging.getLogger("squidmesh_es.worker")

SCOPE: Final = "squidmesh_es"
"""The instrumentation scope of every span and metric."""

_VERSION: Final = importlib.metadata.version("squidmesh-es")

_propagator = TraceContextTextMapPropagator() if AVAILABLE else None
"""Stored contexts are always W3C ``traceparent``/``tracestate``, whatever the host's
global propagator is, so a history written under one setup reads under another."""

SECONDS_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
"""Histogram bounds of the durations, in seconds: from a fast step to an hour's backlog
(OpenTelemetry's default bounds are made for milliseconds)."""


@dataclass
class _Providers:
    tracer: TracerProvider | None = None
    meter: MeterProvider | None = None
    instruments: _Instruments | None = None
    tracer_of_scope: Tracer | None = None


_providers = _Providers()
_lock = threading.Lock()


def configure_telemetry(
    *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Send this library's spans and metrics to these providers (``None``: the global ones).

    Without a call, OpenTelemetry's global providers serve (what ``opentelemetry-instrument``
    or a host's ``set_tracer_provider`` installs). Does nothing without the ``otel`` extra.
    """
    with _lock:
        _providers.tracer = tracer_provider
        _providers.meter = meter_provider
        _providers.instruments = None
        _providers.tracer_of_scope = None


def prometheus_metrics() -> Callable[[], tuple[int, bytes, str]]:
    """Collect this library's metrics for Prometheus; returns the ``/metrics`` page renderer.

    The metrics go to a meter provider of their own, read by OpenTelemetry's Prometheus
    exporter into ``prometheus_client``'s default registry (with its process metrics).

    Raises:
        InvalidArgument: the ``otel`` extra (with its Prometheus exporter) is not installed.
    """
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    except ImportError:
        raise InvalidArgument(
            "metrics_port", "needs the otel extra: pip install 'squidmesh-es[otel]'"
        ) from None
    reader = PrometheusMetricReader()
    configure_telemetry(
        tracer_provider=_providers.tracer, meter_provider=SdkMeterProvider(metric_readers=[reader])
    )

    def page() -> tuple[int, bytes, str]:
        return 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST

    return page


def _tracer() -> Tracer:
    """This library's tracer, made once per provider.

    The global provider's tracer is a proxy that follows a provider set later.
    """
    tracer = _providers.tracer_of_scope
    if tracer is None:
        tracer = otel_trace.get_tracer(SCOPE, _VERSION, tracer_provider=_providers.tracer)
        _providers.tracer_of_scope = tracer
    return tracer


# -- trace context ------------------------------------------------------------------------


def capture_context() -> JSONDict | None:
    """The current span's W3C context, to store with a run; ``None`` outside a sampled trace."""
    if not AVAILABLE or not otel_trace.get_current_span().get_span_context().is_valid:
        return None
    assert _propagator is not None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return dict(carrier) or None


def _context_of(stored: object) -> Any:
    """The OpenTelemetry context a stored carrier describes (empty when absent or invalid)."""
    assert _propagator is not None
    if not isinstance(stored, dict):
        return otel_context.Context()
    carrier = {k: v for k, v in stored.items() if isinstance(v, str)}
    return _propagator.extract(carrier, context=otel_context.Context())


# -- spans --------------------------------------------------------------------------------


@contextmanager
def start_span(workflow: str, queue: str, run_id: object) -> Iterator[None]:
    """The span of a start, current while it commits: the run's steps become its children."""
    if not AVAILABLE:
        yield
        return
    attrs = {"squidmesh.workflow": workflow, **_queue_attrs(queue)}
    with _tracer().start_as_current_span(
        f"start {workflow}",
        kind=otel_trace.SpanKind.PRODUCER,
        attributes={**attrs, "squidmesh.run_id": str(run_id)},
    ):
        yield


class StepSpan:
    """The span of one step's execution; `outcome` names what the step returned."""

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def outcome(self, status: str) -> None:
        """Record the step's own verdict (``ok``, ``retry``, ``error``, ``defer``)."""
        if self._span is not None:
            self._span.set_attribute("squidmesh.outcome", status)


@contextmanager
def step_span(trace_context: object, claim: Claim, workflow: str) -> Iterator[StepSpan]:
    """Run a step inside a span that is a child of its run's stored trace context.

    The span is current while the step runs, so spans the step's own code opens (an HTTP
    client's) nest under it. Counts the step as started and records its duration.
    """
    if not AVAILABLE:
        yield StepSpan(None)
        return
    attempt = claim.attempt
    attrs = _attempt_attrs(attempt, claim.queue, workflow)
    instruments = _instruments()
    instruments.started.add(1, _metric_attrs(attrs))
    began = time.monotonic()
    with _tracer().start_as_current_span(
        f"step {attempt.step}",
        context=_context_of(trace_context),
        kind=otel_trace.SpanKind.CONSUMER,
        attributes={**attrs, "squidmesh.owner": claim.owner_id},
    ) as span:
        try:
            yield StepSpan(span)
        finally:
            instruments.duration.record(time.monotonic() - began, _metric_attrs(attrs))


@contextmanager
def control_span(
    signal: str,
    run_id: object,
    run_trace: Callable[[], object] | None = None,
    *,
    owner_id: str | None = None,
) -> Iterator[None]:
    """The span of a control (cancel, approve, replay...) in the caller's own trace.

    It links to the run's trace (``run_trace`` reads the stored context, only when spans
    are recorded): the control belongs to whoever sent it, and the link leads to the run.
    """
    if not AVAILABLE:
        yield
        return
    links = []
    if run_trace is not None and _recording():
        linked = otel_trace.get_current_span(_context_of(run_trace())).get_span_context()
        if linked.is_valid:
            links.append(otel_trace.Link(linked))
    attrs: dict[str, str] = {"squidmesh.signal": signal}
    if run_id is not None:
        attrs["squidmesh.run_id"] = str(run_id)
    if owner_id is not None:
        attrs["squidmesh.owner"] = owner_id
    with _tracer().start_as_current_span(signal, links=links, attributes=attrs) as span:
        try:
            yield
        except Exception as exc:
            span.set_attribute("squidmesh.outcome", getattr(exc, "code", type(exc).__name__))
            raise
        span.set_attribute("squidmesh.outcome", "ok")


def _recording() -> bool:
    """Whether spans go anywhere: a provider was configured, or a global one installed."""
    provider = _providers.tracer or otel_trace.get_tracer_provider()
    return not isinstance(provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider)


def claimed(claims: Iterable[Claim], *, began_ns: int, owner_id: str) -> None:
    """After a commit that claimed ``claims``: claim spans, latency and lease expiries.

    A claim of an attempt that already counts lease expiries took it over from a claim
    whose lease ran out without an outcome: a worker died or hung. That is logged as a
    warning here, whether or not OpenTelemetry is installed. One span per queue partition
    the commit claimed from.
    """
    claims = list(claims)
    for claim in claims:
        attempt = claim.attempt
        if attempt.lease_expiries:
            logger.warning(
                redact_text(
                    f"lease expired: step {attempt.step} of run {attempt.run_id} attempt "
                    f"{attempt.attempt_number} taken over by {owner_id} "
                    f"({attempt.lease_expiries} expired lease(s))"
                ),
                extra={
                    "run_id": attempt.run_id,
                    "step": attempt.step,
                    "attempt": attempt.attempt_number,
                    "owner": owner_id,
                    "queue": claim.queue,
                    "lease_expiries": attempt.lease_expiries,
                },
            )
    if not AVAILABLE or not claims:
        return
    instruments = _instruments()
    per_queue: dict[str, int] = {}
    for claim in claims:
        per_queue[claim.queue] = per_queue.get(claim.queue, 0) + 1
        workflow = _workflow_of(claim.attempt)
        attrs = _metric_attrs(_attempt_attrs(claim.attempt, claim.queue, workflow))
        latency = (claim.claimed_at - claim.attempt.visible_at).total_seconds()
        instruments.claim_latency.record(max(0.0, latency), attrs)
        if claim.attempt.lease_expiries:
            instruments.lease_expiries.add(1, attrs)
    for queue, count in per_queue.items():
        where = _queue_attrs(queue)
        span = _tracer().start_span(
            f"claim {where['squidmesh.queue']}",
            start_time=began_ns,
            attributes={**where, "squidmesh.owner": owner_id, "squidmesh.claimed": count},
        )
        span.end()


def record_outcome(
    *,
    trace_context: object,
    attempt: Attempt,
    queue: str,
    workflow: str | None,
    outcome: str,
    began_ns: int,
) -> None:
    """After a commit settled an attempt: its settle span in the run's trace, and its count.

    ``outcome`` is one of completed, deferred, retrying, failed, abandoned,
    definition_mismatch (the step log's words).
    """
    if not AVAILABLE:
        return
    attrs = _attempt_attrs(attempt, queue, workflow)
    counter = _instruments().outcomes.get(outcome)
    if counter is not None:
        counter.add(1, _metric_attrs(attrs))
    span = _tracer().start_span(
        f"settle {attempt.step}",
        context=_context_of(trace_context),
        start_time=began_ns,
        attributes={**attrs, "squidmesh.outcome": outcome},
    )
    span.end()


def conflict_retried(operation: str) -> None:
    """A fenced write lost a race and decides again (``operation``: claim, settle, start...)."""
    if AVAILABLE:
        _instruments().conflicts.add(1, {"squidmesh.operation": operation})


# -- queue gauges -------------------------------------------------------------------------

_queues: dict[str, tuple[str, int, datetime | None]] = {}
"""The last state a running worker of this process saw of each queue: the worker, the live
attempts, and when the earliest waiting one became (or becomes) visible. Read by the
observable gauges; the latest look of any worker wins."""


def queue_seen(queue: DispatchQueue, owner_id: str) -> None:
    """Remember ``queue``'s depth and earliest visible time for the gauges: O(1)-ish reads."""
    if AVAILABLE:
        _instruments()  # the gauges exist once a worker looks at a queue
        _queues[queue.queue] = (owner_id, len(queue.attempts), queue.next_visible_at())


def queues_left(owner_id: str) -> None:
    """A worker stopped: the queues it was the last to look at are no longer reported."""
    for name, (owner, _, _) in list(_queues.items()):
        if owner == owner_id:
            _queues.pop(name, None)


def _observe_depth(options: CallbackOptions) -> Iterable[Observation]:
    for name, (_, depth, _) in list(_queues.items()):
        yield otel_metrics.Observation(depth, _queue_attrs(name))


def _observe_age(options: CallbackOptions) -> Iterable[Observation]:
    now = datetime.now(UTC)
    for name, (_, _, visible_at) in list(_queues.items()):
        age = 0.0 if visible_at is None else max(0.0, (now - visible_at).total_seconds())
        yield otel_metrics.Observation(age, _queue_attrs(name))


# -- instruments --------------------------------------------------------------------------


class _Instruments:
    """Every metric instrument, created once per meter provider."""

    def __init__(self, provider: MeterProvider | None) -> None:
        meter = otel_metrics.get_meter(SCOPE, _VERSION, meter_provider=provider)
        self.started = meter.create_counter(
            "squidmesh.step.started", unit="{step}", description="Steps whose code began to run."
        )
        completed = meter.create_counter(
            "squidmesh.step.completed", unit="{step}", description="Steps that completed."
        )
        failed = meter.create_counter(
            "squidmesh.step.failed",
            unit="{step}",
            description="Steps that failed for good: no retry left, abandoned, or refused.",
        )
        retried = meter.create_counter(
            "squidmesh.step.retried",
            unit="{step}",
            description="Step failures committed with a retry scheduled.",
        )
        deferred = meter.create_counter(
            "squidmesh.step.deferred",
            unit="{step}",
            description="Steps that deferred themselves to a later attempt.",
        )
        self.outcomes = {
            "completed": completed,
            "deferred": deferred,
            "retrying": retried,
            "failed": failed,
            "abandoned": failed,
            "definition_mismatch": failed,
        }
        """The counter of each outcome word of the step log."""
        self.duration = meter.create_histogram(
            "squidmesh.step.duration",
            unit="s",
            description="Running time of step code.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.claim_latency = meter.create_histogram(
            "squidmesh.claim.latency",
            unit="s",
            description="From the moment an attempt became visible to its claim.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.lease_expiries = meter.create_counter(
            "squidmesh.lease.expiries",
            unit="{lease}",
            description="Claims taken over after their lease ran out without an outcome.",
        )
        self.conflicts = meter.create_counter(
            "squidmesh.conflicts.retried",
            unit="{conflict}",
            description="Fenced writes that lost a race and decided again.",
        )
        meter.create_observable_gauge(
            "squidmesh.queue.depth",
            callbacks=[_observe_depth],
            unit="{attempt}",
            description="Live attempts of a queue (waiting or running), as a worker last saw it.",
        )
        meter.create_observable_gauge(
            "squidmesh.queue.oldest_visible_age",
            callbacks=[_observe_age],
            unit="s",
            description="How long the earliest visible, unclaimed attempt has waited.",
        )


def _instruments() -> _Instruments:
    instruments = _providers.instruments
    if instruments is None:
        with _lock:
            if _providers.instruments is None:
                _providers.instruments = _Instruments(_providers.meter)
            instruments = _providers.instruments
    return instruments


def _attempt_attrs(attempt: Attempt, queue: str, workflow: str | None) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "squidmesh.run_id": attempt.run_id,
        "squidmesh.step": attempt.step,
        "squidmesh.attempt": attempt.attempt_number,
        **_queue_attrs(queue),
    }
    if workflow is not None:
        attrs["squidmesh.workflow"] = workflow
    return attrs


def _queue_attrs(name: str) -> dict[str, str | int]:
    """The queue and the partition of a dispatch queue's name (``queue`` or ``queue#k``)."""
    queue, _, number = name.partition("#")
    return {"squidmesh.queue": queue, "squidmesh.partition": int(number or 0)}


_PER_RUN: Final = ("squidmesh.run_id", "squidmesh.attempt", "squidmesh.partition")


def _metric_attrs(attrs: Mapping[str, str | int]) -> dict[str, str | int]:
    """Span attributes minus the per-run ones, which would give every run its own series.

    The partition goes too: a queue's counters should not multiply by its partitions.
    """
    return {k: v for k, v in attrs.items() if k not in _PER_RUN}


def _workflow_of(attempt: Attempt) -> str | None:
    workflow = (attempt.metadata or {}).get("workflow")
    return workflow if isinstance(workflow, str) else None
