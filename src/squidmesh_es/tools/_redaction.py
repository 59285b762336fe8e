"""Redaction of credentials in what a tool returns or raises: headers and URLs."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
"""What a sensitive value is replaced with (the same text the journal's redaction uses)."""

_SENSITIVE_NAMES = frozenset({"key", "sig"})
# Parts of names that carry credentials in the wild: Authorization, Cookie, X-Api-Key,
# X-Auth-Token, X-Amz-Security-Token, X-Session-Id, X-Hub-Signature, client_secret=, ...
_SENSITIVE_PARTS = (
    "api-key",
    "apikey",
    "auth",
    "cookie",
    "credential",
    "passwd",
    "password",
    "secret",
    "session",
    "signature",
    "token",
)


def is_sensitive(name: str) -> bool:
    """Whether a header or query parameter named `name` may carry a credential.

    Names compare lowercased with ``_`` read as ``-``; a broad match is on purpose, since a
    header redacted needlessly costs a little debugging and one leaked costs a credential.
    """
    normalized = name.strip().lower().replace("_", "-")
    return normalized in _SENSITIVE_NAMES or any(part in normalized for part in _SENSITIVE_PARTS)


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict with lowercased names, sensitive values replaced by `REDACTED`.

    Repeated headers are joined with ``", "`` as HTTP allows, so none is silently dropped.
    """
    redacted: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = REDACTED if is_sensitive(key) else value
        redacted[key] = f"{redacted[key]}, {shown}" if key in redacted else shown
    return redacted


def redact_url(url: str) -> str:
    """`url` without user info and with sensitive query values replaced by `REDACTED`.

    A URL that does not parse is replaced whole: what it hides cannot be known.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [
            (name, REDACTED if is_sensitive(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="[]",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_origin_and_path(url: str) -> str:
    """`url` cut to scheme, host and path: short and free of query values, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
