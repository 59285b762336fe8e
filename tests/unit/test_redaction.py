"""The one redaction policy: every sensitive key and every secret shape, in a table."""

from __future__ import annotations

import logging
import time

import pytest

from squidmesh_es.redaction import (
    DEFAULT_POLICY,
    REDACTED,
    RedactingFilter,
    is_sensitive_key,
    redact_json,
    redact_text,
)

SENSITIVE_KEYS = [
    "api_key",
    "apikey",
    "API-Key",
    "x-api-key",
    "stripe_api_key",
    "auth",
    "Authorization",
    "proxy-authorization",
    "x-auth-token",
    "oauth_state",
    "token",
    "access_token",
    "refreshToken",
    "secret",
    "client_secret",
    "password",
    "db.password",
    "passwd",
    "pwd",
    "private_key",
    "privateKey",
    "credential",
    "aws_credentials",
    "cookie",
    "Set-Cookie",
    "session",
    "sessionid",
    "X-Session-Id",
    "jwt",
    "id_jwt",
    "bearer",
    "bearer_value",
    "signature",
    "X-Hub-Signature-256",
    "aws_access_key_id",
    "passphrase",
    "key",
    "sig",
    "otp",
    "pin",
]

PLAIN_KEYS = [
    "order_id",
    "ticket",
    "note",
    "author",
    "amount",
    "keyboard",
    "monkey",
    "step",
    "status",
    "runnable_key",
    "idempotency_key_hint",
    "design",
    "spinning",
]


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_a_sensitive_key_is_recognised_in_any_case_and_separator(key: str) -> None:
    assert is_sensitive_key(key)
    assert is_sensitive_key(key.upper())
    assert is_sensitive_key(key.replace("_", "-"))


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_an_ordinary_key_is_kept(key: str) -> None:
    assert not is_sensitive_key(key)


SHAPES = [
    ("Authorization: Bearer abc.def-ghi_123", "Authorization: Bearer [REDACTED]"),
    ("sent with bearer abcdefgh123 to upstream", "sent with bearer [REDACTED] to upstream"),
    ("Basic dXNlcjpwYXNz", "Basic [REDACTED]"),
    ("token=super-secret-token-9 rejected", "token=[REDACTED] rejected"),
    ("api_key: sk_live_abcdefghij1234 failed", "api_key: [REDACTED] failed"),
    ('{"password": "hunter2", "user": "ana"}', '{"password": "[REDACTED]", "user": "ana"}'),
    ("password='hunter 2' user=ana", "password='[REDACTED]' user=ana"),
    ("a=1&client_secret=s3cr3t&b=2", "a=1&client_secret=[REDACTED]&b=2"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I ok",
        "jwt [REDACTED] ok",
    ),
    ("charge with sk_live_51Habcdefghijkl", "charge with [REDACTED]"),
    ("charge with rk_test_51Habcdefghijkl", "charge with [REDACTED]"),
    ("openai sk-proj-abcdefghijklmnop1234", "openai [REDACTED]"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED]"),
    ("gh github_pat_11ABCDEFG0123456789_abcdefghij", "gh [REDACTED]"),
    ("gl glpat-abcdefghij0123456789", "gl [REDACTED]"),
    ("slack xoxb-123456789012-abcdefghij", "slack [REDACTED]"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "aws [REDACTED] here"),
    ("google AIzaSyA-abcdefghijklmnopqrstuvwxyz01234 x", "google [REDACTED] x"),
    (
        "key -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- end",
        "key [REDACTED] end",
    ),
    ("postgresql://app:pa55w0rd@db:5432/prod", "postgresql://app:[REDACTED]@db:5432/prod"),
    ("nothing to hide: order o-1 failed", "nothing to hide: order o-1 failed"),
    ("connection refused at 12:30 by host=db", "connection refused at 12:30 by host=db"),
    ("RuntimeError: token=abc123", "RuntimeError: token=[REDACTED]"),
    ("auth=", "auth="),
]


@pytest.mark.parametrize(("text", "expected"), SHAPES)
def test_secret_shapes_in_text_are_replaced(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redacting_twice_changes_nothing_more() -> None:
    once = redact_text("token=abc password: 'x y' Bearer abcdefghi")

    assert redact_text(once) == once


def test_values_under_sensitive_keys_are_replaced_at_any_depth() -> None:
    value = {
        "note": "ok",
        "X-Api-Key": "k1",
        "nested": [{"session": {"id": "s1"}}, {"list": ["Bearer abcdefgh1", 3]}],
        "credentials": ["a", "b"],
        "token": None,
    }

    assert redact_json(value) == {
        "note": "ok",
        "X-Api-Key": REDACTED,
        "nested": [{"session": REDACTED}, {"list": [f"Bearer {REDACTED}", 3]}],
        "credentials": REDACTED,
        "token": None,
    }


def test_a_host_adds_keys_and_patterns_and_allows_a_key() -> None:
    policy = DEFAULT_POLICY.extend(
        key_parts=["tenant-secretish"],
        exact_keys=["ssn"],
        patterns=[r"\bACME-[0-9]{6}\b"],
        allow=["max_tokens"],
    )

    assert policy.redact_json(
        {"SSN": "1", "tenant_secretish_id": "2", "max_tokens": 30, "ref": "ACME-123456 x"}
    ) == {"SSN": REDACTED, "tenant_secretish_id": REDACTED, "max_tokens": 30, "ref": "[REDACTED] x"}
    assert DEFAULT_POLICY.redact_json({"max_tokens": 30}) == {"max_tokens": REDACTED}


def test_the_logging_filter_redacts_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test_redaction")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="test_redaction"):
            logger.info("connecting to %s", "postgresql://u:hunter2@db/x")
            try:
                raise RuntimeError("token=abc123")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.filters.clear()

    assert "hunter2" not in caplog.text and "abc123" not in caplog.text
    assert "postgresql://u:[REDACTED]@db/x" in caplog.text


@pytest.mark.parametrize("text", ["x=" * 100_000, "a:" * 100_000, "token=" * 50_000])
def test_a_long_string_of_separators_is_redacted_in_linear_time(text: str) -> None:
    # Quadratic matching took about 12 s here; linear takes well under one.
    started = time.perf_counter()
    redact_text(text)

    assert time.perf_counter() - started < 5


def test_answers_are_the_same_the_second_time_a_policy_sees_a_key_or_text() -> None:
    # The policy remembers what it answered for short keys and unchanged texts.
    policy = DEFAULT_POLICY.extend(patterns=[r"\bACME-[0-9]{6}\b"])
    for _ in range(2):
        assert policy.is_sensitive("X-Api-Key") and not policy.is_sensitive("author")
        assert policy.redact_text("token=abc") == f"token={REDACTED}"
        assert policy.redact_text("ACME-123456") == REDACTED
        assert policy.redact_text("ThreeSteps") == "ThreeSteps"
    # Each policy has its own memory: the default one still sees no shape in the ACME id.
    assert DEFAULT_POLICY.redact_text("ACME-123456") == "ACME-123456"
    assert policy.redact_text("ACME-123456") == REDACTED


def test_a_policy_remembers_a_bounded_number_of_answers() -> None:
    policy = DEFAULT_POLICY.extend()
    for n in range(10_000):
        policy.is_sensitive(f"field_{n}")
        policy.redact_text(f"value {n}")

    assert len(policy.__dict__["_sensitive_keys"]) <= 4096
    assert len(policy.__dict__["_clean_texts"]) <= 4096
    assert policy.is_sensitive("session_9999") and policy.redact_text("pwd=1") == f"pwd={REDACTED}"
