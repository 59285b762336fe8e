"""`validate_spec`: every workflow rule, each broken rule an issue with a path and a code.

All issues are collected, not just the first, so an author or an editor sees everything at
once. Paths point into the `to_dict` form: ``("steps", 2, "retry", "max_attempts")``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from squidmesh_es.errors import Issue, WorkflowValidationError
from squidmesh_es.workflow._elements import PayloadField, StepSpec
from squidmesh_es.workflow._graph_rules import graph_issues
from squidmesh_es.workflow._json import is_json_value, is_number
from squidmesh_es.workflow._registry import ACTION_KEY_PATTERN, ActionRegistry, action_issues
from squidmesh_es.workflow._spec import WorkflowSpec
from squidmesh_es.workflow._vocab import (
    COMPLETE,
    NAME_PATTERN,
    BackoffType,
    PayloadType,
    StepKind,
    TriggerType,
)

Path = tuple[str | int, ...]

_REF_PATTERN: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.<>]*$")
_DECLARED_REF_PATTERN: Final = re.compile(r"^[A-Za-z_][\w.\-]{0,199}$")
"""A ``step(..., ref=...)`` identity: no colon, so it never reads as a module path."""
_CRON_ALIASES: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "@reboot"}
)
_TIMEZONE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
_LABEL_LIMIT: Final = 200

_CUSTOM: Final = frozenset({StepKind.CUSTOM})
_ANY_KIND: Final = frozenset(StepKind)
_OPTION_KINDS: Final[dict[str, tuple[str, frozenset[StepKind]]]] = {
    # StepSpec attribute: (key in the spec form, kinds it applies to)
    "input": ("input", _ANY_KIND),
    "output": ("output", frozenset({StepKind.CUSTOM, StepKind.APPROVAL})),
    "after": ("after", _ANY_KIND),
    "retry": ("retry", _CUSTOM),
    "compensate": ("compensate", _CUSTOM),
    "deadline": ("deadline", frozenset({StepKind.CUSTOM, StepKind.PAUSE, StepKind.APPROVAL})),
    "duration": ("duration_ms", frozenset({StepKind.WAIT})),
    "message": ("message", frozenset({StepKind.LOG})),
    "level": ("level", frozenset({StepKind.LOG})),
}


def validate_spec(
    spec: WorkflowSpec | Mapping[str, object],
    *,
    action_registry: ActionRegistry | None = None,
    runtime_authored: bool = False,
) -> None:
    """Check `spec` against every workflow rule; return quietly when it holds.

    A mapping is read with `WorkflowSpec.from_dict` first. With an `action_registry`, every
    action key (of steps and compensations) must be one the registry allows: a registry
    narrows which actions may run, and class-declared steps (a ``ref``, no action) pass. Set
    ``runtime_authored`` for a spec that will run from data (``start_spec``, editor maps):
    nothing is imported from data, so there every custom step must name an action.

    Raises:
        WorkflowValidationError: with one issue (path, code, message) per broken rule.
    """
    if not isinstance(spec, WorkflowSpec):
        spec = WorkflowSpec.from_dict(spec)
    issues = spec_issues(spec, action_registry=action_registry, runtime_authored=runtime_authored)
    if issues:
        raise WorkflowValidationError(f"workflow {spec.workflow!r} is invalid", issues)


def spec_issues(
    spec: WorkflowSpec,
    *,
    action_registry: ActionRegistry | None = None,
    runtime_authored: bool = False,
) -> list[Issue]:
    """Every rule `spec` breaks, in a stable order; empty when it is valid."""
    checks = _Checks(spec)
    checks.workflow()
    checks.triggers()
    checks.payload()
    checks.steps()
    checks.issues.extend(graph_issues(spec))
    if action_registry is not None:
        checks.issues.extend(action_issues(spec, action_registry, class_refs=not runtime_authored))
    return checks.issues


class _Checks:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.issues: list[Issue] = []
        self.names = set(spec.step_names)

    def add(self, path: Path, code: str, message: str) -> None:
        self.issues.append(Issue(path, code, message))

    def workflow(self) -> None:
        name, version = self.spec.workflow, self.spec.version
        if not _label(name):
            self.add(("workflow",), "invalid_workflow", "the workflow name must be a short label")
        if version is not None and not _label(version):
            self.add(
                ("version",), "invalid_definition_version", "the version must be a short label"
            )

    def triggers(self) -> None:
        if not self.spec.triggers:
            self.add(("triggers",), "missing_triggers", "declare at least one trigger")
        seen: set[str] = set()
        for index, trigger in enumerate(self.spec.triggers):
            at: Path = ("triggers", index)
            if not NAME_PATTERN.match(trigger.name):
                self.add(
                    (*at, "name"), "invalid_trigger_name", f"bad trigger name {trigger.name!r}"
                )
            elif trigger.name in seen:
                self.add((*at, "name"), "duplicate_trigger_name", f"trigger {trigger.name!r} twice")
            seen.add(trigger.name)
            if trigger.type is TriggerType.MANUAL:
                for key in ("expression", "timezone", "idempotency"):
                    if getattr(trigger, key) is not None:
                        self.add(
                            (*at, key), "invalid_trigger_config", f"manual triggers have no {key}"
                        )
                continue
            if trigger.expression is None or not _cron(trigger.expression):
                self.add(
                    (*at, "expression"),
                    "invalid_cron_expression",
                    f"trigger {trigger.name!r} needs five valid cron fields or an alias such as "
                    f"@daily, got {trigger.expression!r}",
                )
            if trigger.timezone is None or not _timezone(trigger.timezone):
                self.add(
                    (*at, "timezone"),
                    "invalid_cron_timezone",
                    f"trigger {trigger.name!r} needs a known IANA timezone such as Etc/UTC, "
                    f"got {trigger.timezone!r}",
                )

    def payload(self) -> None:
        seen: set[str] = set()
        for index, field in enumerate(self.spec.payload):
            at: Path = ("payload", index)
            if not NAME_PATTERN.match(field.name):
                self.add(
                    (*at, "name"), "invalid_payload_field_name", f"bad field name {field.name!r}"
                )
            elif field.name in seen:
                self.add(
                    (*at, "name"),
                    "conflicting_payload_field",
                    f"payload field {field.name!r} twice",
                )
            seen.add(field.name)
            self._payload_default(at, field)

    def _payload_default(self, at: Path, field: PayloadField) -> None:
        if field.required:
            if field.default is not None or field.default_factory is not None:
                self.add(
                    at, "invalid_payload_field_opts", f"required field {field.name!r} has a default"
                )
            return
        if field.default_factory is not None:
            if field.type is not PayloadType.STRING:
                self.add(
                    (*at, "default_factory"),
                    "invalid_payload_default",
                    f"field {field.name!r}: {field.default_factory.value} needs a string field",
                )
            return
        if not _fits(field.default, field.type, field.nullable):
            self.add(
                (*at, "default"),
                "invalid_payload_default",
                f"field {field.name!r}: the default is not a valid {field.type.value}"
                + (" (and the field is not nullable)" if field.default is None else ""),
            )

    def steps(self) -> None:
        if not self.spec.steps:
            self.add(("steps",), "missing_steps", "declare at least one step")
        seen: set[str] = set()
        refs: set[str] = set()
        for index, step in enumerate(self.spec.steps):
            at: Path = ("steps", index)
            if step.ref is not None and ":" not in step.ref:
                if step.ref in refs:
                    self.add((*at, "ref"), "duplicate_step_ref", f"ref {step.ref!r} twice")
                refs.add(step.ref)
            if not NAME_PATTERN.match(step.name) or step.name == COMPLETE:
                self.add(
                    (*at, "name"),
                    "invalid_step_name",
                    f"bad step name {step.name!r} (letters, digits, _ and -; not {COMPLETE!r})",
                )
            elif step.name in seen:
                self.add((*at, "name"), "duplicate_step_name", f"step {step.name!r} twice")
            seen.add(step.name)
            self._implementation(at, step)
            self._options(at, step)
            self._mappings(at, step)
            self._retry(at, step)
            self._recovery(at, step)
            self._built_in(at, step)

    def _implementation(self, at: Path, step: StepSpec) -> None:
        if step.kind is not StepKind.CUSTOM:
            for key in ("ref", "action"):
                if getattr(step, key) is not None:
                    self.add(
                        (*at, key),
                        "invalid_step_module",
                        f"built-in step {step.name!r} has no {key}",
                    )
            return
        if step.ref is None and step.action is None:
            self.add(
                (*at, "action"),
                "missing_action_key",
                f"step {step.name!r} needs an implementation (a Step class or an action key)",
            )
        elif step.ref is not None and step.action is not None:
            self.add(
                (*at, "ref"), "invalid_step_module", f"step {step.name!r} has both ref and action"
            )
        elif step.ref is not None and not (
            _REF_PATTERN.match(step.ref) or _DECLARED_REF_PATTERN.match(step.ref)
        ):
            self.add((*at, "ref"), "invalid_step_module", f"step {step.name!r}: bad reference")
        elif step.action is not None and not ACTION_KEY_PATTERN.match(step.action):
            self.add((*at, "action"), "invalid_action_key", f"step {step.name!r}: bad action key")

    def _options(self, at: Path, step: StepSpec) -> None:
        for attribute, (key, kinds) in _OPTION_KINDS.items():
            if getattr(step, attribute) is not None and step.kind not in kinds:
                self.add((*at, key), "invalid_step_opts", f"{step.kind.value} steps take no {key}")
        if step.kind is not StepKind.CUSTOM and (step.irreversible or not step.compensatable):
            key = "irreversible" if step.irreversible else "compensatable"
            self.add((*at, key), "invalid_step_opts", f"{step.kind.value} steps take no {key}")
        if step.deadline is not None:
            within, due_soon = step.deadline.within, step.deadline.due_soon
            if within.total_seconds() <= 0 or (
                due_soon is not None and not 0 < due_soon.total_seconds() < within.total_seconds()
            ):
                self.add(
                    (*at, "deadline"),
                    "invalid_step_deadline",
                    f"step {step.name!r}: within must be positive, due_soon between 0 and within",
                )

    def _mappings(self, at: Path, step: StepSpec) -> None:
        if step.input is not None:
            keys = [binding.key for binding in step.input]
            if not step.input or len(set(keys)) != len(keys):
                self.add(
                    (*at, "input"),
                    "invalid_step_input_mapping",
                    f"step {step.name!r}: input needs at least one entry and unique keys",
                )
            for position, binding in enumerate(step.input):
                if not binding.key or not binding.path or not all(binding.path):
                    self.add(
                        (*at, "input", position),
                        "invalid_step_input_mapping",
                        f"step {step.name!r}: input keys and path segments must not be empty",
                    )
        if step.output is not None and not step.output:
            self.add(
                (*at, "output"),
                "invalid_step_output_mapping",
                f"step {step.name!r}: empty output key",
            )

    def _retry(self, at: Path, step: StepSpec) -> None:
        if step.retry is None:
            return
        if step.retry.max_attempts < 1:
            self.add(
                (*at, "retry", "max_attempts"),
                "invalid_step_retry_max_attempts",
                f"step {step.name!r}: max_attempts counts every attempt and must be at least 1",
            )
        if step.retry.max_lease_expiries < 1:
            self.add(
                (*at, "retry", "max_lease_expiries"),
                "invalid_step_retry_max_lease_expiries",
                f"step {step.name!r}: max_lease_expiries must be at least 1",
            )
        backoff = step.retry.backoff
        if backoff is not None and (
            backoff.min.total_seconds() <= 0
            or backoff.max < backoff.min
            or (backoff.type is BackoffType.FIXED and backoff.max != backoff.min)
        ):
            self.add(
                (*at, "retry", "backoff"),
                "invalid_step_retry_backoff",
                f"step {step.name!r}: backoff delays must be positive, with max >= min",
            )

    def _recovery(self, at: Path, step: StepSpec) -> None:
        if step.irreversible and step.compensatable:
            self.add(
                at,
                "conflicting_step_recovery_markers",
                f"step {step.name!r} cannot be both irreversible and compensatable",
            )
        compensate = step.compensate
        if compensate is None:
            return
        if (compensate.ref is None) == (compensate.action is None):
            self.add(
                (*at, "compensate"),
                "invalid_step_compensate_callback",
                f"step {step.name!r}: a compensation names either a Step class or an action key",
            )
        elif compensate.ref is not None and not _REF_PATTERN.match(compensate.ref):
            self.add((*at, "compensate"), "invalid_step_compensate_callback", "bad reference")
        elif compensate.action is not None and not ACTION_KEY_PATTERN.match(compensate.action):
            self.add((*at, "compensate", "action"), "invalid_action_key", "bad action key")
        if step.irreversible or not step.compensatable:
            self.add(
                (*at, "compensate"),
                "conflicting_step_compensation",
                f"step {step.name!r} is not compensatable, so it cannot declare a compensation",
            )

    def _built_in(self, at: Path, step: StepSpec) -> None:
        if step.kind is StepKind.WAIT and (
            step.duration is None or step.duration.total_seconds() <= 0
        ):
            self.add(
                (*at, "duration_ms"),
                "invalid_wait_duration",
                f"step {step.name!r}: wait needs a positive duration",
            )
        if step.kind is StepKind.LOG and not (step.message and step.message.strip()):
            self.add(
                (*at, "message"), "invalid_log_message", f"step {step.name!r}: log needs a message"
            )


def _label(value: str) -> bool:
    return 0 < len(value) <= _LABEL_LIMIT and value.strip() == value and value.isprintable()


def _cron(expression: str) -> bool:
    """Checked with croniter, as the scheduler reads it, so a bad field fails at definition."""
    if expression in _CRON_ALIASES:
        return True
    return len(expression.split()) == 5 and bool(croniter.is_valid(expression))


def _timezone(name: str) -> bool:
    """Known to zoneinfo, as the scheduler resolves it; the pattern keeps paths out."""
    if not _TIMEZONE.match(name):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _fits(value: object, payload_type: PayloadType, nullable: bool) -> bool:
    if value is None:
        return nullable
    if not is_json_value(value):
        return False
    checks = {
        PayloadType.STRING: isinstance(value, str),
        PayloadType.INTEGER: isinstance(value, int) and not isinstance(value, bool),
        PayloadType.FLOAT: is_number(value),
        PayloadType.BOOLEAN: isinstance(value, bool),
        PayloadType.MAP: isinstance(value, dict),
        PayloadType.LIST: isinstance(value, list),
    }
    return checks[payload_type]
