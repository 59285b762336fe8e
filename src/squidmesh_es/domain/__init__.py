"""The journal: ``WorkflowRun``, ``DispatchQueue``, ``WorkerRegistry`` and ``WorkflowDefinition``.

Pure domain code: no I/O, no clock. Time comes in as ``now``; ids and claim tokens are made by
the caller. The aggregates' versions are the journal fences.
"""

from squidmesh_es.domain._definition import WorkflowDefinition, definition_id
from squidmesh_es.domain._journal import MAX_KEPT_ANOMALIES, JSONDict
from squidmesh_es.domain._keys import (
    JOURNAL_NAMESPACE,
    MAX_PARTITIONS,
    check_partitions,
    check_queue_name,
    hash_claim_token,
    parse_run_id,
    partition_of,
    partition_queue,
    queue_id,
    runnable_key,
)
from squidmesh_es.domain._queue import Attempt, DispatchOrder, DispatchQueue
from squidmesh_es.domain._run import Runnable, WorkflowRun, is_side_work
from squidmesh_es.domain._vocab import (
    AnomalyReason,
    AttemptStatus,
    ManualAction,
    ManualKind,
    RunStatus,
    TerminalStatus,
)
from squidmesh_es.domain._workers import PRESENCE_INTERVAL, REGISTRY_ID, WorkerRegistry

__all__ = [
    "JOURNAL_NAMESPACE",
    "MAX_KEPT_ANOMALIES",
    "MAX_PARTITIONS",
    "PRESENCE_INTERVAL",
    "REGISTRY_ID",
    "AnomalyReason",
    "Attempt",
    "AttemptStatus",
    "DispatchOrder",
    "DispatchQueue",
    "JSONDict",
    "ManualAction",
    "ManualKind",
    "RunStatus",
    "Runnable",
    "TerminalStatus",
    "WorkerRegistry",
    "WorkflowDefinition",
    "WorkflowRun",
    "check_partitions",
    "check_queue_name",
    "definition_id",
    "hash_claim_token",
    "is_side_work",
    "parse_run_id",
    "partition_of",
    "partition_queue",
    "queue_id",
    "runnable_key",
]
