"""Random valid specs: JSON round trip, and a fingerprint that tracks behaviour exactly."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from squidmesh_es.workflow import WorkflowSpec, canonical_json, validate_spec

SpecData = dict[str, Any]
WORKFLOW_SRC = Path(__file__).resolve().parents[3] / "src" / "squidmesh_es" / "workflow"

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda n: n != "complete")
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)
paths = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3)


@st.composite
def retries(draw: st.DrawFn) -> dict[str, Any]:
    retry: dict[str, Any] = {"max_attempts": draw(st.integers(2, 8))}
    kind = draw(st.sampled_from(["none", "fixed", "exponential"]))
    if kind == "fixed":
        retry["backoff"] = {"type": "fixed", "delay_ms": draw(st.integers(1, 60_000))}
    elif kind == "exponential":
        low = draw(st.integers(1, 10_000))
        retry["backoff"] = {
            "type": "exponential",
            "min_ms": low,
            "max_ms": low * draw(st.integers(1, 64)),
        }
    return retry


@st.composite
def custom_steps(draw: st.DrawFn, name: str) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "kind": "custom"}
    if draw(st.booleans()):
        step["ref"] = f"app.steps:{name.title().replace('_', '')}"
    else:
        step["action"] = f"app.{name}"
    if draw(st.booleans()):
        keys = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        step["input"] = [{"key": key, "path": draw(paths)} for key in keys]
    if draw(st.booleans()):
        step["output"] = draw(names)
    if draw(st.booleans()):
        step["retry"] = draw(retries())
    marker = draw(st.sampled_from(["none", "irreversible", "not_compensatable", "compensate"]))
    if marker == "irreversible":
        step["irreversible"] = True
    elif marker == "not_compensatable":
        step["compensatable"] = False
    elif marker == "compensate":
        step["compensate"] = {"ref": "app.steps:Undo"}
    if draw(st.booleans()):
        within = draw(st.integers(2, 10**7))
        step["deadline"] = {"within_ms": within, "due_soon_ms": draw(st.integers(1, within - 1))}
    return step


@st.composite
def steps_of_kind(draw: st.DrawFn, name: str, kinds: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(kinds))
    if kind == "custom":
        return draw(custom_steps(name))
    if kind == "wait":
        return {"name": name, "kind": "wait", "duration_ms": draw(st.integers(1, 10**8))}
    if kind == "log":
        level = draw(st.sampled_from(["debug", "info", "warning", "error"]))
        return {
            "name": name,
            "kind": "log",
            "message": draw(st.text(min_size=1, max_size=10).filter(str.strip)),
            "level": level,
        }
    step = {"name": name, "kind": kind}
    if kind == "approval" and draw(st.booleans()):
        step["output"] = draw(names)
    return step


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(["equals", "greater_than", "less_than"]))
    value = draw(json_values if operator == "equals" else numbers)
    return {"path": draw(paths), operator: value}


@st.composite
def triggers_and_payload(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    triggers = []
    for name in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            triggers.append({"name": name, "type": "manual"})
        else:
            idempotency = draw(st.sampled_from([None, "return_existing_run", "skip_duplicate"]))
            trigger = {
                "name": name,
                "type": "cron",
                "expression": "0 9 * * 1-5",
                "timezone": "Etc/UTC",
            }
            triggers.append(
                trigger if idempotency is None else {**trigger, "idempotency": idempotency}
            )
    defaults = {
        "string": st.text(max_size=5),
        "integer": st.integers(),
        "float": numbers,
        "boolean": st.booleans(),
        "map": st.dictionaries(st.text(max_size=3), json_scalars, max_size=2),
        "list": st.lists(json_scalars, max_size=2),
    }
    payload = []
    for name in draw(st.lists(names, max_size=4, unique=True)):
        kind = draw(st.sampled_from(sorted(defaults)))
        field: dict[str, Any] = {
            "name": name,
            "type": kind,
            "required": draw(st.booleans()),
            "nullable": draw(st.booleans()),
        }
        if not field["required"]:
            field["default"] = draw(defaults[kind])
        payload.append(field)
    return triggers, payload


@st.composite
def transition_specs(draw: st.DrawFn) -> SpecData:
    step_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    steps = [
        draw(steps_of_kind(n, ["custom", "custom", "wait", "log", "pause", "approval"]))
        for n in step_names
    ]
    transitions = []
    for index, step in enumerate(steps):
        later = [*step_names[index + 1 :], "complete"]
        manual = step["kind"] in ("pause", "approval")
        routes = [{"from": step["name"], "on": "ok", "to": later[0]}]
        if not manual:
            for _ in range(draw(st.integers(0, 2))):
                routes.append(
                    {
                        "from": step["name"],
                        "on": draw(st.sampled_from(["ok", "error"])),
                        "to": draw(st.sampled_from(later)),
                        "condition": draw(conditions()),
                    }
                )
        if step["kind"] == "approval" or draw(st.booleans()):
            error = {"from": step["name"], "on": "error", "to": draw(st.sampled_from(later))}
            recovery = draw(st.sampled_from([None, "compensation", "undo"]))
            routes.append(error if recovery is None else {**error, "recovery": recovery})
        unique = [route for i, route in enumerate(routes) if route not in routes[:i]]
        transitions.extend(draw(st.permutations(unique)))
    triggers, payload = draw(triggers_and_payload())
    version = draw(
        st.none()
        | st.text(min_size=1, max_size=12).filter(lambda v: v.strip() == v and v.isprintable())
    )
    return {
        "workflow": draw(names),
        "version": version,
        "triggers": triggers,
        "payload": payload,
        "steps": steps,
        "transitions": transitions,
    }


@st.composite
def dependency_specs(draw: st.DrawFn) -> SpecData:
    step_names = draw(st.lists(names, min_size=2, max_size=6, unique=True))
    steps = [draw(steps_of_kind(n, ["custom", "custom", "wait", "log"])) for n in step_names]
    for index in range(1, len(steps)):
        if index == len(steps) - 1 or draw(st.booleans()):
            steps[index]["after"] = draw(
                st.lists(st.sampled_from(step_names[:index]), min_size=1, unique=True)
            )
    triggers, payload = draw(triggers_and_payload())
    return {"workflow": draw(names), "triggers": triggers, "payload": payload, "steps": steps}


# Drawing these specs is slow on a loaded machine, so the tests below turn off the too_slow
# health check and the deadline: that slowness says nothing about the code under test.
valid_specs = transition_specs() | dependency_specs()


def _shuffled(value: Any, rng: random.Random) -> Any:
    """`value` with every object's keys in a random order (lists keep theirs)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(valid_specs)
def test_generated_specs_are_valid(data: SpecData) -> None:
    validate_spec(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(valid_specs)
def test_to_dict_from_dict_round_trip(data: SpecData) -> None:
    spec = WorkflowSpec.from_dict(data)

    again = WorkflowSpec.from_dict(json.loads(json.dumps(spec.to_dict())))

    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert again.fingerprint == spec.fingerprint


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(valid_specs, st.randoms(use_true_random=False))
def test_fingerprint_ignores_key_order(data: SpecData, rng: random.Random) -> None:
    spec = WorkflowSpec.from_dict(data)

    shuffled = WorkflowSpec.from_dict(_shuffled(spec.to_dict(), rng))

    assert shuffled.fingerprint == spec.fingerprint
    assert canonical_json(_shuffled(spec.to_dict(), rng)) == canonical_json(spec.to_dict())


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    valid_specs,
    st.text(min_size=1, max_size=12).filter(lambda v: v.strip() == v and v.isprintable()),
)
def test_version_label_alone_does_not_change_the_fingerprint(data: SpecData, version: str) -> None:
    relabelled = {**data, "version": version}

    assert (
        WorkflowSpec.from_dict(relabelled).fingerprint == WorkflowSpec.from_dict(data).fingerprint
    )


def _mutate_retry(data: SpecData, pick: st.DrawFn) -> bool:
    custom = [s for s in data["steps"] if s["kind"] == "custom"]
    if not custom:
        return False
    step = pick(st.sampled_from(custom))
    attempts = step.get("retry", {"max_attempts": 1})["max_attempts"]
    step["retry"] = {**step.get("retry", {}), "max_attempts": attempts + 1}
    return True


def _mutate_route_target(data: SpecData, pick: st.DrawFn) -> bool:
    transitions = data.get("transitions", [])
    if not transitions:
        return False
    route = pick(st.sampled_from(transitions))
    others = [n for n in [s["name"] for s in data["steps"]] + ["complete"] if n != route["to"]]
    route["to"] = pick(st.sampled_from(others))
    return True


def _mutate_condition_value(data: SpecData, pick: st.DrawFn) -> bool:
    conditional = [t for t in data.get("transitions", []) if "condition" in t]
    if not conditional:
        return False
    condition = pick(st.sampled_from(conditional))["condition"]
    operator = next(key for key in condition if key != "path")
    value = condition[operator]
    condition[operator] = [value] if operator == "equals" else value + 1.5
    return True


def _mutate_mapping(data: SpecData, pick: st.DrawFn) -> bool:
    custom = [s for s in data["steps"] if s["kind"] == "custom"]
    if not custom:
        return False
    step = pick(st.sampled_from(custom))
    if pick(st.booleans()):
        step["output"] = step.get("output", "out") + "_renamed"
    else:
        step["input"] = [*step.get("input", []), {"key": "added_key_zz", "path": ["somewhere"]}]
    return True


def _mutate_marker(data: SpecData, pick: st.DrawFn) -> bool:
    custom = [s for s in data["steps"] if s["kind"] == "custom"]
    if not custom:
        return False
    step = pick(st.sampled_from(custom))
    if step.get("irreversible"):
        del step["irreversible"]
    else:
        step.pop("compensate", None)
        step["irreversible"] = True
    return True


def _mutate_implementation(data: SpecData, pick: st.DrawFn) -> bool:
    custom = [s for s in data["steps"] if s["kind"] == "custom"]
    if not custom:
        return False
    step = pick(st.sampled_from(custom))
    key = "ref" if "ref" in step else "action"
    step[key] += "Other"
    return True


MUTATIONS = [
    _mutate_retry,
    _mutate_route_target,
    _mutate_condition_value,
    _mutate_mapping,
    _mutate_marker,
    _mutate_implementation,
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(valid_specs, st.sampled_from(MUTATIONS), st.data())
def test_behavioural_change_changes_the_fingerprint(
    data: SpecData, mutation: Any, draw: st.DataObject
) -> None:
    mutated = copy.deepcopy(data)
    assume(mutation(mutated, draw.draw))

    assert WorkflowSpec.from_dict(mutated).fingerprint != WorkflowSpec.from_dict(data).fingerprint


FINGERPRINT_SCRIPT = """
import json, sys
from squidmesh_es.workflow import WorkflowSpec
print(WorkflowSpec.from_dict(json.load(sys.stdin)).fingerprint)
"""


@settings(max_examples=6, deadline=None)
@given(valid_specs, st.sampled_from(["0", "1234", "987654"]), st.randoms(use_true_random=False))
def test_fingerprint_is_the_same_in_another_process(
    data: SpecData, hash_seed: str, rng: random.Random
) -> None:
    spec = WorkflowSpec.from_dict(data)
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}

    result = subprocess.run(
        [sys.executable, "-c", FINGERPRINT_SCRIPT],
        input=json.dumps(_shuffled(spec.to_dict(), rng)),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )

    assert result.stdout.strip() == spec.fingerprint


CANONICAL_SCRIPT = """
import hashlib, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("canonical", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.sha256_hex(json.load(sys.stdin)))
"""


def _interpreter(version: str) -> Path | None:
    """A Python `version` interpreter installed under pyenv, if any."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(versions.glob(f"{version}.*/bin/python"))
    return found[-1] if found else None


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_fingerprint_hashing_is_the_same_under_other_python_versions(version: str) -> None:
    interpreter = _interpreter(version)
    if interpreter is None:
        pytest.skip(f"no Python {version} interpreter here")
    spec = WorkflowSpec.from_dict(_fixed_spec())
    document = spec.canonical_form()

    result = subprocess.run(
        [str(interpreter), "-I", "-c", CANONICAL_SCRIPT, str(WORKFLOW_SRC / "_json.py")],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert result.stdout.strip() == spec.fingerprint


def _fixed_spec() -> SpecData:
    """A spec using every option, floats and non-ASCII text, for cross-process checks."""
    return {
        "workflow": "everything",
        "version": "v1",
        "triggers": [{"name": "go", "type": "manual"}],
        "steps": [
            {
                "name": "load",
                "kind": "custom",
                "ref": "app.steps:Load",
                "input": [{"key": "id", "path": ["account", "id"]}],
                "output": "account",
                "retry": {
                    "max_attempts": 5,
                    "backoff": {"type": "exponential", "min_ms": 1000, "max_ms": 30000},
                },
                "compensate": {"ref": "app.steps:Undo"},
                "deadline": {"within_ms": 60000, "due_soon_ms": 5000, "escalation": "diagnostic"},
            },
            {"name": "settle", "kind": "wait", "duration_ms": 5000},
            {"name": "note", "kind": "log", "message": "café ✓ 0.1", "level": "warning"},
            {"name": "review", "kind": "approval", "output": "approval"},
            {"name": "charge", "kind": "custom", "action": "billing.charge", "irreversible": True},
        ],
        "transitions": [
            {
                "from": "load",
                "on": "ok",
                "to": "settle",
                "condition": {"path": ["score"], "greater_than": 0.1},
            },
            {"from": "load", "on": "ok", "to": "note"},
            {"from": "settle", "on": "ok", "to": "note"},
            {
                "from": "note",
                "on": "ok",
                "to": "review",
                "condition": {"path": ["x"], "equals": {"b": [1, 2.5, None, "é"], "a": True}},
            },
            {"from": "note", "on": "ok", "to": "review"},
            {"from": "review", "on": "ok", "to": "charge"},
            {"from": "review", "on": "error", "to": "complete", "recovery": "undo"},
            {"from": "charge", "on": "ok", "to": "complete"},
        ],
    }


def test_fixed_spec_is_valid() -> None:
    validate_spec(_fixed_spec())
