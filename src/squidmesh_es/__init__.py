"""Durable workflows inside your Python application, journaled as events."""

import importlib.metadata
import logging

from squidmesh_es.runtime import Clock, SquidMesh, SystemClock

__version__ = importlib.metadata.version("squidmesh-es")

__all__ = ["Clock", "SquidMesh", "SystemClock", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
