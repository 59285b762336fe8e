"""Redaction of sensitive metadata before it is written to the journal."""

from __future__ import annotations

from typing import Any

__all__ = ["REDACTED", "SENSITIVE_KEYS", "redact_metadata"]

REDACTED = "[REDACTED]"

SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "claim_token",
        "cookie",
        "credential",
        "credentials",
        "passwd",
        "password",
        "private_key",
        "refresh_token",
        "secret",
        "session",
        "set_cookie",
        "token",
    }
)
"""Keys (compared lowercased, with ``-`` read as ``_``) whose values are never stored."""


def _is_sensitive(key: object) -> bool:
    normalized = str(key).lower().replace("-", "_")
    return normalized in SENSITIVE_KEYS or normalized.endswith(("_token", "_secret", "_password"))


def redact_metadata(value: Any) -> Any:
    """Copy ``value`` with the values of sensitive keys replaced, recursing into maps and lists."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _is_sensitive(k) else redact_metadata(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_metadata(v) for v in value]
    return value
