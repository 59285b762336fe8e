"""Identities in the journal: aggregate ids, runnable keys and claim-token hashes."""

from __future__ import annotations

import hashlib
import re
from uuid import UUID, uuid5

from squidmesh_es.errors import InvalidArgument, InvalidRunId

__all__ = [
    "JOURNAL_NAMESPACE",
    "MAX_PARTITIONS",
    "check_partitions",
    "check_queue_name",
    "hash_claim_token",
    "partition_of",
    "partition_queue",
    "parse_run_id",
    "queue_id",
    "runnable_key",
]

JOURNAL_NAMESPACE = UUID("5b7c2a8e-53f4-4c52-9d0e-6a1f3f0a9c11")
"""Namespace of every deterministic id squidmesh-es derives. Never change it."""

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_queue_name(name: str) -> str:
    """Return ``name`` if it is a valid queue name (the spec's thread-part charset).

    Raises:
        InvalidArgument: the name is empty, too long or has other characters.
    """
    if not isinstance(name, str) or len(name) > 200 or not _QUEUE_NAME.match(name):
        raise InvalidArgument("queue", "must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    return name


MAX_PARTITIONS = 256
"""Most dispatch partitions one queue may have."""


def check_partitions(partitions: int) -> int:
    """Return ``partitions`` if it is a usable partition count for a queue.

    Raises:
        InvalidArgument: not an integer from 1 to `MAX_PARTITIONS`.
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise InvalidArgument("queue_partitions", "must be an integer")
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidArgument("queue_partitions", f"must be from 1 to {MAX_PARTITIONS}")
    return partitions


def partition_queue(queue: str, partition: int) -> str:
    """The name of partition ``partition`` of ``queue``: ``queue`` itself, then ``queue#k``.

    Partition 0 keeps the queue's own name (and aggregate), so a queue that never had more
    partitions is the queue it always was. ``#`` cannot occur in a queue name, so a
    partition's name never collides with a queue's.
    """
    return queue if partition == 0 else f"{queue}#{partition}"


def partition_of(run_id: UUID, partitions: int) -> int:
    """The partition a run's work goes to: fixed by its id, spread evenly."""
    return run_id.int % partitions


_KEPT_QUEUE_IDS = 1024
_QUEUE_IDS: dict[str, UUID] = {}
"""Ids of the valid queue names seen: every load of a queue asks for one (a SHA-1)."""


def queue_id(name: str) -> UUID:
    """Aggregate id of the ``DispatchQueue`` of a queue or partition name, in every process.

    Raises:
        InvalidArgument: the name is neither a queue name nor ``queue#k`` with ``k >= 1``.
    """
    known = _QUEUE_IDS.get(name) if type(name) is str else None
    if known is not None:
        return known
    base, hash_sign, number = name.partition("#") if isinstance(name, str) else ("", "", "")
    check_queue_name(base)
    if hash_sign and not _partition_number(number):
        raise InvalidArgument(
            "queue", f"a partition is named <queue>#<k> with 1 <= k < {MAX_PARTITIONS}"
        )
    derived = uuid5(JOURNAL_NAMESPACE, f"squidmesh:dispatch:{name}")
    if type(name) is str:
        if len(_QUEUE_IDS) >= _KEPT_QUEUE_IDS:
            _QUEUE_IDS.clear()
        _QUEUE_IDS[name] = derived
    return derived


def _partition_number(text: str) -> bool:
    """Whether ``text`` is a partition number as `partition_queue` writes it."""
    return text.isascii() and text.isdigit() and text[0] != "0" and int(text) < MAX_PARTITIONS


def runnable_key(run_id: UUID | str, step: str, attempt_number: int) -> str:
    """The spec's runnable key, ``<run_id>:<step>:<attempt_number>``."""
    return f"{run_id}:{step}:{attempt_number}"


def hash_claim_token(token: str) -> str:
    """Lowercase hex SHA-256 of a claim token: the only form of a token the journal keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_run_id(run_id: UUID | str) -> UUID:
    """Return ``run_id`` as a UUID.

    Raises:
        InvalidRunId: it is not a UUID.
    """
    if isinstance(run_id, UUID):
        return run_id
    try:
        return UUID(str(run_id))
    except (ValueError, AttributeError, TypeError):
        raise InvalidRunId() from None
