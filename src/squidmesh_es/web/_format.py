"""Template filters: times in UTC to the second, ages, and JSON shown as written."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["FILTERS", "age", "when"]


def when(moment: datetime | str | None) -> str:
    """``2026-03-01 12:00:05Z``: one zone (UTC) everywhere, so times compare at a glance."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        try:
            return when(datetime.fromisoformat(moment))
        except ValueError:
            return moment
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def age(span: timedelta | None) -> str:
    """``3h 02m``, ``45s``: the largest two units of a duration."""
    if span is None:
        return "-"
    seconds = int(span.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def pretty(value: Any) -> str:
    """JSON indented for reading; values are already redacted to the dashboard's scope."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


FILTERS: dict[str, Callable[..., str]] = {"when": when, "age": age, "pretty": pretty}
"""Filters every dashboard template may use."""
