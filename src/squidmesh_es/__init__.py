"""Durable workflows inside your Python application, journaled as events."""

import importlib.metadata
import logging

from squidmesh_es.runtime import Clock, SquidMesh, SystemClock
from squidmesh_es.workflow import (
    ActionRegistry,
    Defer,
    EditorSpec,
    Error,
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
    "EditorSpec",
    "Error",
    "Ok",
    "Retry",
    "SquidMesh",
    "Step",
    "StepContext",
    "SystemClock",
    "Workflow",
    "WorkflowSpec",
    "__version__",
    "validate_spec",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
