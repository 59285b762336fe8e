"""Durable workflows inside your Python application, journaled as events."""

import importlib.metadata
import logging

from squidmesh_es.domain import DispatchOrder
from squidmesh_es.read_model import (
    DynamicWorkPreview,
    Explanation,
    RunGraph,
    RunSnapshot,
    RunSummary,
    redact,
)
from squidmesh_es.runtime import Clock, Signal, SquidMesh, SystemClock, Worker
from squidmesh_es.workflow import (
    ActionRegistry,
    Defer,
    EditorSpec,
    Error,
    LoopLocal,
    Ok,
    Retry,
    Step,
    StepContext,
    Workflow,
    WorkflowSpec,
    validate_spec,
)

__version__ = importlib.metadata.version("squidmesh-es")

__all__ = [
    "ActionRegistry",
    "Clock",
    "Defer",
    "DispatchOrder",
    "DynamicWorkPreview",
    "EditorSpec",
    "Error",
    "Explanation",
    "LoopLocal",
    "Ok",
    "Retry",
    "RunGraph",
    "RunSnapshot",
    "RunSummary",
    "Signal",
    "SquidMesh",
    "Step",
    "StepContext",
    "SystemClock",
    "Worker",
    "Workflow",
    "WorkflowSpec",
    "__version__",
    "redact",
    "validate_spec",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
