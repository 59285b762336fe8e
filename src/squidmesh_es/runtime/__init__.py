"""The runtime: the ``SquidMesh`` application, its clock and its storage settings."""

from squidmesh_es.runtime._app import SquidMesh
from squidmesh_es.runtime._clock import Clock, SystemClock
from squidmesh_es.runtime._mapper import JournalMapper
from squidmesh_es.runtime._settings import (
    DEFAULT_DATABASE_URL,
    StorageSettings,
    parse_database_url,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Clock",
    "JournalMapper",
    "SquidMesh",
    "StorageSettings",
    "SystemClock",
    "parse_database_url",
]
