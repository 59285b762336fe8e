"""Retry policy: attempts left, and the delay before each retry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.workflow import NO_RETRY, Backoff, RetryPolicy

SECOND = timedelta(seconds=1)
EXPONENTIAL = RetryPolicy(5, Backoff.exponential(min=SECOND, max=30 * SECOND))


@pytest.mark.parametrize(
    ("failed_attempt", "delay"),
    [(1, SECOND), (2, 2 * SECOND), (3, 4 * SECOND), (5, 16 * SECOND), (6, 30 * SECOND)],
)
def test_exponential_delay_doubles_from_min_until_max(
    failed_attempt: int, delay: timedelta
) -> None:
    assert EXPONENTIAL.delay_for(failed_attempt) == delay


def test_exponential_delay_of_a_huge_attempt_number_is_max() -> None:
    assert EXPONENTIAL.delay_for(10_000) == 30 * SECOND


def test_fixed_delay_is_the_same_every_time() -> None:
    policy = RetryPolicy(3, Backoff.fixed(timedelta(milliseconds=250)))

    assert {policy.delay_for(n) for n in (1, 2, 7)} == {timedelta(milliseconds=250)}


def test_no_backoff_retries_at_once() -> None:
    assert RetryPolicy(3).delay_for(2) == timedelta(0)


@pytest.mark.parametrize("policy", [EXPONENTIAL, RetryPolicy(3)])
def test_attempt_numbers_start_at_one(policy: RetryPolicy) -> None:
    with pytest.raises(InvalidArgument):
        policy.delay_for(0)


def test_max_attempts_counts_the_first_attempt() -> None:
    policy = RetryPolicy(max_attempts=2)

    assert [policy.allows_retry_after(n) for n in (1, 2)] == [True, False]


def test_a_step_without_a_policy_gets_one_attempt() -> None:
    assert NO_RETRY.allows_retry_after(1) is False


def test_spec_form_is_in_milliseconds() -> None:
    assert EXPONENTIAL.to_dict() == {
        "max_attempts": 5,
        "backoff": {"type": "exponential", "min_ms": 1000, "max_ms": 30000},
    }
    assert Backoff.fixed(SECOND).to_dict() == {"type": "fixed", "delay_ms": 1000}


def test_an_attempt_is_abandoned_once_its_leases_ran_out_max_lease_expiries_times() -> None:
    policy = RetryPolicy(2, max_lease_expiries=2)

    assert [policy.abandons_after(n) for n in (0, 1, 2, 3)] == [False, False, True, True]
    assert [NO_RETRY.abandons_after(n) for n in (2, 3)] == [False, True]  # default 3


def test_the_default_lease_expiry_limit_stays_out_of_the_spec_form() -> None:
    assert RetryPolicy(3).to_dict() == {"max_attempts": 3}  # fingerprints stay as they were
    assert RetryPolicy(3, max_lease_expiries=5).to_dict() == {
        "max_attempts": 3,
        "max_lease_expiries": 5,
    }


def test_max_lease_expiries_must_be_an_int() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3, max_lease_expiries=True)
