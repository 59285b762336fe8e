"""How the long-running commands log: ``--log-level`` and ``--log-format text|json``.

Only the command line configures logging; the library only creates loggers, so a host that
embeds squidmesh-es keeps its own configuration. Every record is redacted before it is
formatted: the message by `RedactingFilter`, and in JSON the structured fields (``extra=``)
by the redaction policy too.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, TypeVar

import click

from squidmesh_es.redaction import RedactingFilter, redact_json

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "configure_logging", "logging_options"]

F = TypeVar("F", bound=Callable[..., object])

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"

_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
"""Attributes every record has; anything else on a record came from ``extra=``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so a log pipeline reads fields instead of parsing text.

    Keys: time, level, logger, message, the ``extra`` fields, and the exception (already
    redacted by `RedactingFilter`) when there is one.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object; values JSON cannot hold become text."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        entry.update(redact_json(json.loads(json.dumps(extra, default=str))))
        if record.exc_info and record.exc_text is None:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, separators=(",", ":"))


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes.

    A swapped stream (a test runner's, click's) is followed instead of a closed one.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Log ``level`` and up to stderr as text or JSON lines, every record redacted.

    As with `logging.basicConfig`, a root logger that already has handlers (a host, a test
    runner) keeps them and its level; they only get the redaction filter. Called again in
    one process, it replaces its own handler rather than adding a second.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStderr)]:
        root.removeHandler(handler)
    if not root.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(
            JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
        )
        root.addHandler(handler)
        root.setLevel(level.upper())
    for each in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in each.filters):
            each.addFilter(RedactingFilter())


def logging_options(command: F) -> F:
    """``--log-level`` and ``--log-format`` (also ``SQUIDMESH_LOG_LEVEL``/``_FORMAT``)."""
    command = click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        show_default=True,
        envvar="SQUIDMESH_LOG_FORMAT",
        help="text lines, or one JSON object per line (also SQUIDMESH_LOG_FORMAT).",
    )(command)
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default="INFO",
        show_default=True,
        envvar="SQUIDMESH_LOG_LEVEL",
        help="Lowest level logged (also SQUIDMESH_LOG_LEVEL).",
    )(command)
