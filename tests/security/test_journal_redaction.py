"""No value under a sensitive key, and no secret in a step's error, reaches a stored row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_rows import raw_states
from security_workflows import LEAKS, Leaky

from squidmesh_es import SquidMesh
from squidmesh_es.redaction import REDACTED
from squidmesh_es.testing import ManualClock


def run_to_approval(mesh: SquidMesh, clock: ManualClock, run_id: str) -> None:
    """Run the failing steps, the raising one twice (its retry comes a second later)."""
    mesh.drain(owner_id="w")
    clock.advance(timedelta(seconds=2))
    mesh.drain(owner_id="w")


SENSITIVE_PARTS = [
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "token",
    "secret",
    "password",
    "passwd",
    "private_key",
    "privatekey",
    "credential",
    "cookie",
    "set-cookie",
    "session",
    "jwt",
    "bearer",
    "signature",
]

secrets_ = st.from_regex(r"zq[a-z0-9]{12}", fullmatch=True)
"""Secret values: long and odd enough never to occur in a row by chance."""
plain_words = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(
    lambda w: not any(p in w for p in ("auth", "token", "secret", "sess", "key", "sig", "pass"))
)


@st.composite
def sensitive_keys(draw: st.DrawFn) -> str:
    """A sensitive part in any case, with a prefix and suffix and any separator."""
    part = draw(st.sampled_from(SENSITIVE_PARTS))
    sep = draw(st.sampled_from(["_", "-", ".", ""]))
    prefix = draw(st.sampled_from(["", "x", "stripe", "client", "upstream"]))
    suffix = draw(st.sampled_from(["", "id", "value", "2"]))
    key = sep.join(w for w in (prefix, part.replace("_", sep), suffix) if w)
    return draw(st.sampled_from([key, key.upper(), key.title()]))


def secret_value(found: list[str]) -> st.SearchStrategy[Any]:
    def remember(value: str) -> str:
        found.append(value)
        return value

    leaf = secrets_.map(remember)
    return st.one_of(
        leaf, st.lists(leaf, max_size=2), st.dictionaries(plain_words, leaf, max_size=2)
    )


@st.composite
def metadata_with_secrets(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """Nested metadata with secrets under sensitive keys, and the secrets it holds."""
    found: list[str] = []
    inner = draw(st.dictionaries(sensitive_keys(), secret_value(found), min_size=1, max_size=3))
    outer = draw(st.dictionaries(sensitive_keys(), secret_value(found), max_size=2))
    plain = draw(st.dictionaries(plain_words, plain_words, max_size=2))
    return {**plain, **outer, "nested": [{"inner": inner}]}, found


@st.composite
def leaking_texts(draw: st.DrawFn) -> tuple[str, str]:
    """An error text holding a secret as a ``key=value`` pair or a bearer credential."""
    secret = draw(secrets_)
    key = draw(sensitive_keys())
    form = draw(st.sampled_from(["{k}={s}", "{k}: {s}", '"{k}": "{s}"', "Bearer {s}"]))
    return f"upstream said {form.format(k=key, s=secret)} at step", secret


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=metadata_with_secrets(),
    approval=metadata_with_secrets(),
    raised=leaking_texts(),
    returned=leaking_texts(),
)
def test_no_value_under_a_sensitive_key_survives_in_any_stored_row(
    mesh: SquidMesh,
    clock: ManualClock,
    start: tuple[dict[str, Any], list[str]],
    approval: tuple[dict[str, Any], list[str]],
    raised: tuple[str, str],
    returned: tuple[str, str],
) -> None:
    LEAKS["raised"], LEAKS["error"] = raised[0], returned[0]
    run_id = mesh.start(Leaky, {}, metadata=start[0]).run_id
    run_to_approval(mesh, clock, run_id)
    mesh.approve(run_id, metadata=approval[0], comment="ok")
    mesh.drain(owner_id="w")

    assert mesh.inspect_run(run_id).terminal_status == "completed"
    rows = b"\n".join(raw_states(mesh))
    for secret in [*start[1], *approval[1], raised[1], returned[1]]:
        assert secret.encode() not in rows


def test_a_step_error_keeps_its_type_and_code_readable(mesh: SquidMesh, clock: ManualClock) -> None:
    LEAKS["raised"] = "token=zqsecretraised1 refused"
    LEAKS["error"] = "password: zqsecretreturned"
    run_id = mesh.start(Leaky, {}).run_id
    run_to_approval(mesh, clock, run_id)

    snap = mesh.inspect_run(run_id, include_history=True)
    shown = [
        snap.model_dump_json(),
        mesh.explain_run(run_id).model_dump_json(),
        str(mesh.inspect_run_graph(run_id, include_history=True).to_map()),
    ]
    assert not any("zqsecret" in text for text in shown)
    errors = [r.error for r in snap.applied_runnables if r.error]
    assert [(e["code"], e["reason"].get("type")) for e in errors] == [
        ("step_raised", "RuntimeError"),
        ("retries_exhausted", "RuntimeError"),
        ("step_error", None),
    ]
    assert errors[0]["message"] == f"token={REDACTED} refused"
    assert errors[2]["reason"] == {
        "message": f"password: {REDACTED}",
        "details": {"api_key": REDACTED},
    }


@pytest.fixture(autouse=True)
def _no_leaks_left() -> Any:
    yield
    LEAKS.update(raised="", error="")
