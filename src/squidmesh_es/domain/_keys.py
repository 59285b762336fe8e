"""Identities in the journal: aggregate ids, runnable keys and claim-token hashes."""

from __future__ import annotations

import hashlib
import re
from uuid import UUID, uuid5

from squidmesh_es.errors import InvalidArgument, InvalidRunId

__all__ = [
    "JOURNAL_NAMESPACE",
    "check_queue_name",
    "hash_claim_token",
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


def queue_id(name: str) -> UUID:
    """Aggregate id of the ``DispatchQueue`` of a queue name: the same in every process."""
    return uuid5(JOURNAL_NAMESPACE, f"squidmesh:dispatch:{check_queue_name(name)}")


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
