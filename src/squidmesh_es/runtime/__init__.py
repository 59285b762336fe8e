"""The runtime: the ``SquidMesh`` application, its clock and its storage settings."""

from squidmesh_es.runtime._app import SquidMesh
from squidmesh_es.runtime._cipher import create_cipher_key
from squidmesh_es.runtime._clock import Clock, SystemClock
from squidmesh_es.runtime._cron import CronDecision, CronStart
from squidmesh_es.runtime._definitions import DefinitionChange
from squidmesh_es.runtime._deploys import DeployProblem, Migration, runs_in_flight
from squidmesh_es.runtime._execution import DEFAULT_LEASE, MIN_HEARTBEAT_INTERVAL, Claim, Finished
from squidmesh_es.runtime._mapper import JournalMapper
from squidmesh_es.runtime._notifier import DispatchNotifier, ScheduledAttempt
from squidmesh_es.runtime._presence import ReleaseReport, WorkerInfo
from squidmesh_es.runtime._recovery import RecoveryReport
from squidmesh_es.runtime._registry import WorkflowRegistry
from squidmesh_es.runtime._scheduler import Scheduler, SchedulerPass, cron_ticks
from squidmesh_es.runtime._settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_PARTITION_LIMIT,
    StorageSettings,
    journal_env,
    parse_database_url,
    partition_limit_from_env,
    partitions_from_env,
)
from squidmesh_es.runtime._signals import Signal, SignalType
from squidmesh_es.runtime._telemetry import configure_telemetry
from squidmesh_es.runtime._transaction import Transaction
from squidmesh_es.runtime._worker import (
    DEFAULT_BATCH_WINDOW,
    LIVENESS_WINDOW,
    Worker,
    WorkerHealth,
    WorkerStats,
)

__all__ = [
    "DEFAULT_BATCH_WINDOW",
    "DEFAULT_PARTITION_LIMIT",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_LEASE",
    "LIVENESS_WINDOW",
    "MIN_HEARTBEAT_INTERVAL",
    "Claim",
    "Clock",
    "CronDecision",
    "CronStart",
    "DefinitionChange",
    "DeployProblem",
    "DispatchNotifier",
    "Finished",
    "JournalMapper",
    "Migration",
    "RecoveryReport",
    "ReleaseReport",
    "ScheduledAttempt",
    "Scheduler",
    "SchedulerPass",
    "Signal",
    "SignalType",
    "SquidMesh",
    "StorageSettings",
    "SystemClock",
    "Transaction",
    "Worker",
    "WorkerHealth",
    "WorkerInfo",
    "WorkerStats",
    "WorkflowRegistry",
    "create_cipher_key",
    "configure_telemetry",
    "cron_ticks",
    "journal_env",
    "parse_database_url",
    "partition_limit_from_env",
    "partitions_from_env",
    "runs_in_flight",
]
