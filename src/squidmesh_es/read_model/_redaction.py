"""`redact`: a read model cut down to what a reader in a visibility scope may see.

Scopes follow guide 4.6 and api catalog 2.12. ``auditor`` sees everything. ``external`` sees
identity, status, the current node state and the manual task's shape; payloads, context,
command history, claim data, attempts and nested evidence are emptied. ``operator`` sees
what ``external`` sees plus attempt counts, next visibility time, the anomaly count and the
recovery policy. The same keys are emptied in every read model, the dynamic-work preview
included: a dynamic node's input and metadata, a rollback's ``failure`` (it carries the
failed step's error) and a callback's input (the undone step's input and output).

Redaction derives a new model of the same class, so the caller's types still hold: a removed
object becomes ``{}``, a removed list ``[]``, a removed text ``"[REDACTED]"`` and any other
removed value ``None`` (or ``0`` for a count). The source model is never changed. The
snapshot's ``reason`` is a required field and stays in every scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model._json import ReadModel
from squidmesh_es.read_model._vocab import VisibilityScope
from squidmesh_es.redaction import REDACTED, is_sensitive_key

__all__ = ["HIDDEN_KEYS", "OPERATOR_EVIDENCE_KEYS", "OPERATOR_KEYS", "redact"]

M = TypeVar("M", bound=ReadModel)

HIDDEN_KEYS = frozenset(
    {
        "input",
        "output",
        "result",
        "error",
        "failure",
        "payload",
        "payload_digest",
        "metadata",
        "context",
        "child_key",
        "comment",
        "command_history",
        "latest_command",
        "duplicate_commands",
        "attempts",
        "visible_attempts",
        "scheduled_attempts",
        "claimed_attempts",
        "expired_claims",
        "pending_results",
        "anomalies",
        "idempotency_key",
        "claim_id",
        "owner_id",
        "token",
        "secret",
    }
)
"""Keys emptied, at any depth, for everyone but auditors; so are ``lease_*`` keys, keys
ending in ``_lease_until`` and every key the redaction policy calls sensitive."""

OPERATOR_KEYS = frozenset({"next_visible_at", "anomaly_count", "attempt_counts"})
"""Keys operators keep and external readers lose."""

OPERATOR_EVIDENCE_KEYS = frozenset(
    {
        "snapshot_reason",
        "attempt_counts",
        "next_visible_at",
        "anomaly_count",
        "terminal_status",
        "recovery_policy",
    }
)
"""The only explanation evidence operators see; external readers see none. The recovery
policy is step names only: recovery availability stays visible to operators (guide 4.6)."""

Policy = VisibilityScope | str | Callable[[ReadModel], VisibilityScope | str]
"""A scope, its name, or a function choosing the scope for a given read model."""


def redact(model: M, scope_or_policy: Policy) -> M:
    """A copy of ``model`` holding only what ``scope_or_policy`` lets its reader see.

    Raises:
        InvalidArgument: the scope (or the policy's answer) is not a visibility scope.
    """
    chosen = scope_or_policy(model) if callable(scope_or_policy) else scope_or_policy
    try:
        scope = VisibilityScope(chosen)
    except ValueError:
        raise InvalidArgument(
            "visibility_scope", f"must be one of {[s.value for s in VisibilityScope]}"
        ) from None
    if scope is VisibilityScope.AUDITOR:
        return model.model_copy(deep=True)
    return type(model).model_validate(_scrub(model.model_dump(), scope))


def _hidden(key: str, scope: VisibilityScope) -> bool:
    if key in HIDDEN_KEYS or key.startswith("lease_"):
        return True
    if key.endswith("_lease_until") or is_sensitive_key(key):
        return True
    return scope is VisibilityScope.EXTERNAL and key in OPERATOR_KEYS


def _emptied(value: object, key: str) -> object:
    if isinstance(value, dict):
        return {}
    if isinstance(value, list | tuple):
        return []
    if isinstance(value, str):
        return REDACTED
    if key.endswith("_count") and isinstance(value, int):
        return 0
    return None


def _scrub(value: object, scope: VisibilityScope) -> object:
    if isinstance(value, list | tuple):
        return [_scrub(item, scope) for item in value]
    if not isinstance(value, dict):
        return value
    scrubbed: dict[str, object] = {}
    for key, item in value.items():
        if _hidden(key, scope):
            scrubbed[key] = _emptied(item, key)
        elif key == "evidence" and isinstance(item, dict):
            kept = {k: v for k, v in item.items() if k in OPERATOR_EVIDENCE_KEYS}
            scrubbed[key] = _scrub(kept, scope) if scope is VisibilityScope.OPERATOR else {}
        elif key == "details" and scope is VisibilityScope.EXTERNAL:
            scrubbed[key] = {}
        else:
            scrubbed[key] = _scrub(item, scope)
    return scrubbed
