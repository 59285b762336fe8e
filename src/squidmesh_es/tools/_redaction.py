"""Redaction of credentials in what a tool returns or raises: headers and URLs.

Which names are sensitive is the one policy of `squidmesh_es.redaction`; this module only
knows where headers and URLs keep their names and values.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from squidmesh_es.redaction import REDACTED, is_sensitive_key, redact_text

__all__ = ["REDACTED", "redact_headers", "redact_url", "url_origin_and_path"]


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict with lowercased names, sensitive values replaced by `REDACTED`.

    Other values are scanned for secret shapes (a token in a ``Location`` URL, say).

    Repeated headers are joined with ``", "`` as HTTP allows, so none is silently dropped.
    """
    redacted: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = REDACTED if is_sensitive_key(key) else redact_text(value)
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
            (name, REDACTED if is_sensitive_key(name) else value)
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
