"""Retry policy: how many attempts a step gets and how long to wait before each retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.workflow._json import JSONObject
from squidmesh_es.workflow._vocab import BackoffType

_MS: Final = timedelta(milliseconds=1)


def to_ms(duration: timedelta) -> int:
    """`duration` in whole milliseconds, the unit durations are stored in (rounded down)."""
    return duration // _MS


def from_ms(milliseconds: int) -> timedelta:
    """The `timedelta` for a stored millisecond count."""
    return timedelta(milliseconds=milliseconds)


def require_timedelta(value: object, what: str) -> None:
    """Refuse a duration given as anything but a `timedelta`, where it is written.

    A bare number would leave its unit to guesswork (the original used milliseconds in some
    places and seconds in others).

    Raises:
        TypeError: `value` is not a `timedelta`.
    """
    if not isinstance(value, timedelta):
        raise TypeError(f"{what} must be a datetime.timedelta, got {type(value).__name__}")


@dataclass(frozen=True)
class Backoff:
    """The delay before each retry. Build one with `Backoff.fixed` or `Backoff.exponential`."""

    type: BackoffType
    min: timedelta
    """Delay after the first failed attempt."""
    max: timedelta
    """Upper bound of any delay; equal to `min` for a fixed backoff."""

    def __post_init__(self) -> None:
        if not isinstance(self.type, BackoffType):
            raise TypeError(f"backoff type must be a BackoffType, got {self.type!r}")
        require_timedelta(self.min, "backoff min")
        require_timedelta(self.max, "backoff max")

    @classmethod
    def fixed(cls, delay: timedelta) -> Backoff:
        """The same `delay` before every retry."""
        return cls(BackoffType.FIXED, delay, delay)

    @classmethod
    def exponential(cls, *, min: timedelta, max: timedelta) -> Backoff:
        """Double the delay after each failed attempt, starting at `min`, capped at `max`."""
        return cls(BackoffType.EXPONENTIAL, min, max)

    def delay_for(self, failed_attempt: int) -> timedelta:
        """The delay after failed attempt number `failed_attempt` (the first attempt is 1).

        Exponential: ``min(min * 2^(n-1), max)``. Computed in integers, so a large attempt
        number gives `max` rather than an overflow.

        Raises:
            InvalidArgument: `failed_attempt` is below 1.
        """
        if failed_attempt < 1:
            raise InvalidArgument("failed_attempt", "attempt numbers start at 1")
        if self.type is BackoffType.FIXED:
            return self.min
        minimum, maximum = to_ms(self.min), to_ms(self.max)
        return from_ms(min(minimum << (failed_attempt - 1), maximum))

    def to_dict(self) -> JSONObject:
        """The spec form: ``{"type": "fixed", "delay_ms": n}`` or exponential min/max."""
        if self.type is BackoffType.FIXED:
            return {"type": self.type.value, "delay_ms": to_ms(self.min)}
        return {"type": self.type.value, "min_ms": to_ms(self.min), "max_ms": to_ms(self.max)}


DEFAULT_MAX_LEASE_EXPIRIES: Final = 3
"""Leases of one attempt that may run out before the attempt is abandoned."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a step gets, the backoff between them, and when to give one up.

    `max_attempts` counts every attempt, the first included: ``RetryPolicy(max_attempts=2)``
    allows exactly one retry. Without a backoff, a retry is visible at once.

    `max_lease_expiries` guards against a poison step, one that kills or hangs its worker:
    each time a claim of the attempt ends by its lease running out, with no outcome, another
    worker takes it over; once it ran out this many times, the attempt is failed with
    ``attempt_abandoned`` (no retry: running it again would kill the next worker too) and the
    step's error route, if any, is taken.
    """

    max_attempts: int
    backoff: Backoff | None = None
    max_lease_expiries: int = DEFAULT_MAX_LEASE_EXPIRIES
    """Default 3; a step that declares no policy has the default too."""

    def __post_init__(self) -> None:
        for name in ("max_attempts", "max_lease_expiries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff, got {type(self.backoff).__name__}")

    def allows_retry_after(self, failed_attempt: int) -> bool:
        """Whether failed attempt number `failed_attempt` leaves an attempt to retry with."""
        return failed_attempt < self.max_attempts

    def delay_for(self, failed_attempt: int) -> timedelta:
        """The delay before retrying failed attempt `failed_attempt`; zero without a backoff.

        Raises:
            InvalidArgument: `failed_attempt` is below 1.
        """
        if self.backoff is None:
            if failed_attempt < 1:
                raise InvalidArgument("failed_attempt", "attempt numbers start at 1")
            return timedelta(0)
        return self.backoff.delay_for(failed_attempt)

    def abandons_after(self, lease_expiries: int) -> bool:
        """Whether an attempt whose leases ran out `lease_expiries` times is given up."""
        return lease_expiries >= self.max_lease_expiries

    def to_dict(self) -> JSONObject:
        """The spec form: ``{"max_attempts": n}`` plus ``"backoff"`` when there is one.

        ``max_lease_expiries`` is written only when it is not the default, so definitions
        written before it existed keep their fingerprints.
        """
        data: JSONObject = {"max_attempts": self.max_attempts}
        if self.backoff is not None:
            data["backoff"] = self.backoff.to_dict()
        if self.max_lease_expiries != DEFAULT_MAX_LEASE_EXPIRIES:
            data["max_lease_expiries"] = self.max_lease_expiries
        return data


NO_RETRY: Final = RetryPolicy(max_attempts=1)
"""The policy of a step that declares none: one attempt, no retry."""
