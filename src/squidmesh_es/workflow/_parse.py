"""Reading a spec from JSON data: shapes and types, checked by pydantic at the edge.

pydantic's errors never leave this module: each becomes an `Issue` whose code is one of the
spec codes, chosen by where the error is (a bad ``retry.max_attempts`` is
``invalid_step_retry_max_attempts`` whatever pydantic called it).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from squidmesh_es.errors import Issue, WorkflowValidationError
from squidmesh_es.workflow._conditions import Condition
from squidmesh_es.workflow._elements import (
    Compensation,
    Deadline,
    PayloadField,
    StepSpec,
    TransitionSpec,
    TriggerSpec,
)
from squidmesh_es.workflow._json import JSONValue, is_json_value
from squidmesh_es.workflow._mapping import InputBinding
from squidmesh_es.workflow._retry import (
    DEFAULT_MAX_LEASE_EXPIRIES,
    Backoff,
    RetryPolicy,
    from_ms,
)
from squidmesh_es.workflow._vocab import (
    BackoffType,
    ConditionOperator,
    CronIdempotency,
    DefaultFactory,
    Escalation,
    LogLevel,
    Outcome,
    PayloadType,
    Recovery,
    StepKind,
    TriggerType,
)


def _json_value(value: object) -> object:
    if not is_json_value(value):
        raise PydanticCustomError("json_value", "must be a JSON value")
    return value


JsonData = Annotated[object, AfterValidator(_json_value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Trigger(_Model):
    name: StrictStr
    type: TriggerType
    expression: StrictStr | None = None
    timezone: StrictStr | None = None
    idempotency: CronIdempotency | None = None


class _PayloadField(_Model):
    name: StrictStr
    type: PayloadType
    required: StrictBool = True
    nullable: StrictBool = False
    default: JsonData = None
    default_factory: DefaultFactory | None = None


class _Backoff(_Model):
    type: BackoffType
    delay_ms: StrictInt | None = None
    min_ms: StrictInt | None = None
    max_ms: StrictInt | None = None

    @model_validator(mode="after")
    def _shape(self) -> _Backoff:
        if self.type is BackoffType.FIXED:
            ok = self.delay_ms is not None and self.min_ms is None and self.max_ms is None
            expected = "a fixed backoff has delay_ms only"
        else:
            ok = self.delay_ms is None and self.min_ms is not None and self.max_ms is not None
            expected = "an exponential backoff has min_ms and max_ms"
        if not ok:
            raise PydanticCustomError("invalid_step_retry_backoff", expected)
        return self


class _Retry(_Model):
    max_attempts: StrictInt
    backoff: _Backoff | None = None
    max_lease_expiries: StrictInt = DEFAULT_MAX_LEASE_EXPIRIES


class _Binding(_Model):
    key: StrictStr
    path: list[StrictStr]


class _Deadline(_Model):
    within_ms: StrictInt
    due_soon_ms: StrictInt | None = None
    escalation: Escalation | None = None


class _Compensation(_Model):
    ref: StrictStr | None = None
    action: StrictStr | None = None


class _Step(_Model):
    name: StrictStr
    kind: StepKind
    ref: StrictStr | None = None
    action: StrictStr | None = None
    input: list[_Binding] | None = None
    output: StrictStr | None = None
    after: list[StrictStr] | None = None
    retry: _Retry | None = None
    compensate: _Compensation | None = None
    irreversible: StrictBool = False
    compensatable: StrictBool | None = None
    deadline: _Deadline | None = None
    duration_ms: StrictInt | None = None
    message: StrictStr | None = None
    level: LogLevel | None = None


_OPERATORS = frozenset(operator.value for operator in ConditionOperator)


class _Transition(_Model):
    from_step: StrictStr = Field(alias="from")
    on: Outcome
    to: StrictStr
    condition: dict[str, JsonData] | None = None
    recovery: Recovery | None = None

    @field_validator("condition")
    @classmethod
    def _condition_shape(cls, value: dict[str, object] | None) -> dict[str, object] | None:
        if value is None:
            return None
        operators = [key for key in value if key in _OPERATORS]
        path = value.get("path")
        if (
            len(operators) != 1
            or set(value) != {"path", operators[0]}
            or not isinstance(path, list)
            or not all(isinstance(key, str) for key in path)
        ):
            raise PydanticCustomError(
                "invalid_transition_condition",
                "a condition is {'path': [keys], <operator>: value} with one operator of "
                "equals, greater_than, less_than",
            )
        return value


class _Spec(_Model):
    workflow: StrictStr
    version: StrictStr | None = None
    triggers: list[_Trigger]
    payload: list[_PayloadField] = []
    steps: list[_Step]
    transitions: list[_Transition] = []
    entry_steps: list[StrictStr] | None = None
    initial_step: StrictStr | None = None
    entry_step: StrictStr | None = None


class ParsedSpec(NamedTuple):
    """The parts of a spec read from data, and the entry fields the data declared."""

    workflow: str
    version: str | None
    triggers: tuple[TriggerSpec, ...]
    payload: tuple[PayloadField, ...]
    steps: tuple[StepSpec, ...]
    transitions: tuple[TransitionSpec, ...]
    declared_entry: dict[str, JSONValue]


def parse_spec(data: object) -> ParsedSpec:
    """The spec parts in `data`, the `to_dict` form of a `WorkflowSpec`.

    Raises:
        WorkflowValidationError: `data` has the wrong shape; one issue per problem.
    """
    try:
        model = _Spec.model_validate(data)
    except ValidationError as exc:
        issues = [_issue(error["loc"], error["type"], error["msg"], data) for error in exc.errors()]
        raise WorkflowValidationError("workflow spec is malformed", issues) from exc
    declared: dict[str, JSONValue] = {}
    for key in ("initial_step", "entry_step"):
        if key in model.model_fields_set:
            declared[key] = getattr(model, key)
    if model.entry_steps is not None:
        declared["entry_steps"] = list(model.entry_steps)
    return ParsedSpec(
        workflow=model.workflow,
        version=model.version,
        triggers=tuple(TriggerSpec(**t.model_dump()) for t in model.triggers),
        payload=tuple(PayloadField(**f.model_dump()) for f in model.payload),
        steps=tuple(_step(s) for s in model.steps),
        transitions=tuple(_transition(t) for t in model.transitions),
        declared_entry=declared,
    )


def _step(model: _Step) -> StepSpec:
    return StepSpec(
        name=model.name,
        kind=model.kind,
        ref=model.ref,
        action=model.action,
        input=None
        if model.input is None
        else tuple(InputBinding(b.key, tuple(b.path)) for b in model.input),
        output=model.output,
        after=None if model.after is None else tuple(model.after),
        retry=None if model.retry is None else _retry(model.retry),
        compensate=None
        if model.compensate is None
        else Compensation(model.compensate.ref, model.compensate.action),
        irreversible=model.irreversible,
        compensatable=not model.irreversible
        if model.compensatable is None
        else model.compensatable,
        deadline=None
        if model.deadline is None
        else Deadline(
            from_ms(model.deadline.within_ms),
            None if model.deadline.due_soon_ms is None else from_ms(model.deadline.due_soon_ms),
            model.deadline.escalation,
        ),
        duration=None if model.duration_ms is None else from_ms(model.duration_ms),
        message=model.message,
        level=LogLevel.INFO if model.kind is StepKind.LOG and model.level is None else model.level,
    )


def _retry(model: _Retry) -> RetryPolicy:
    backoff = model.backoff
    expiries = model.max_lease_expiries
    if backoff is None:
        return RetryPolicy(model.max_attempts, max_lease_expiries=expiries)
    if backoff.delay_ms is not None:
        fixed = Backoff.fixed(from_ms(backoff.delay_ms))
        return RetryPolicy(model.max_attempts, fixed, max_lease_expiries=expiries)
    assert backoff.min_ms is not None and backoff.max_ms is not None
    return RetryPolicy(
        model.max_attempts,
        Backoff.exponential(min=from_ms(backoff.min_ms), max=from_ms(backoff.max_ms)),
        max_lease_expiries=expiries,
    )


def _transition(model: _Transition) -> TransitionSpec:
    condition = None
    if model.condition is not None:
        (operator,) = (ConditionOperator(key) for key in model.condition if key != "path")
        path = model.condition["path"]
        assert isinstance(path, list)
        condition = Condition(tuple(path), operator, _json(model.condition[operator.value]))
    return TransitionSpec(model.from_step, model.on, model.to, condition, model.recovery)


def _json(value: object) -> JSONValue:
    return cast(JSONValue, value)  # checked by JsonData while parsing


_COLLECTION_ITEM_CODES = {
    "triggers": "invalid_trigger",
    "payload": "invalid_payload_field",
    "steps": "invalid_step",
    "transitions": "invalid_transition",
    "entry_steps": "invalid_entry_steps",
}

_TOP_LEVEL_CODES = {
    "workflow": "invalid_workflow",
    "version": "invalid_definition_version",
    "triggers": "invalid_collection",
    "payload": "invalid_collection",
    "steps": "invalid_collection",
    "transitions": "invalid_collection",
    "entry_steps": "invalid_entry_steps",
    "initial_step": "invalid_initial_step",
    "entry_step": "invalid_entry_step",
}

_FIELD_CODES = {
    "triggers": (
        "invalid_trigger_config",
        {
            "name": "invalid_trigger_name",
            "type": "invalid_trigger_type",
            "expression": "invalid_cron_expression",
            "timezone": "invalid_cron_timezone",
            "idempotency": "invalid_cron_idempotency",
        },
    ),
    "payload": (
        "invalid_payload_field_opts",
        {
            "name": "invalid_payload_field_name",
            "type": "invalid_payload_field_type",
            "default": "invalid_payload_default",
            "default_factory": "invalid_payload_default",
        },
    ),
    "steps": (
        "invalid_step_opts",
        {
            "name": "invalid_step_name",
            "kind": "invalid_step_module",
            "ref": "invalid_step_module",
            "action": "invalid_action_key",
            "input": "invalid_step_input_mapping",
            "output": "invalid_step_output_mapping",
            "after": "invalid_step_dependencies",
            "retry": "invalid_step_retry_opts",
            "compensate": "invalid_step_compensate_callback",
            "irreversible": "invalid_step_recovery_marker",
            "compensatable": "invalid_step_recovery_marker",
            "deadline": "invalid_step_deadline",
            "duration_ms": "invalid_wait_duration",
            "message": "invalid_log_message",
            "level": "invalid_log_level",
        },
    ),
    "transitions": (
        "invalid_transition",
        {
            "on": "invalid_transition_outcome",
            "condition": "invalid_transition_condition",
            "recovery": "invalid_transition_recovery",
        },
    ),
}

_RETRY_CODES = {
    "max_attempts": "invalid_step_retry_max_attempts",
    "max_lease_expiries": "invalid_step_retry_max_lease_expiries",
    "backoff": "invalid_step_retry_backoff",
}

_SPEC_CODES = frozenset(
    {"invalid_step_retry_backoff", "invalid_transition_condition"}
    | {code for _, codes in _FIELD_CODES.values() for code in codes.values()}
)


_MISSING_CODES: dict[tuple[str | int, ...], str] = {
    ("triggers",): "missing_triggers",
    ("steps",): "missing_steps",
}


def _code(loc: tuple[str | int, ...], pydantic_type: str) -> str:
    if pydantic_type in _SPEC_CODES:
        return pydantic_type
    if pydantic_type == "missing" and loc in _MISSING_CODES:
        return _MISSING_CODES[loc]
    if not loc or loc[0] not in _TOP_LEVEL_CODES:
        return "invalid_spec"
    if len(loc) == 1:
        return _TOP_LEVEL_CODES[str(loc[0])]
    collection = str(loc[0])
    if len(loc) == 2 or collection not in _FIELD_CODES:
        return _COLLECTION_ITEM_CODES[collection]
    fallback, codes = _FIELD_CODES[collection]
    if collection == "steps" and loc[2] == "retry" and len(loc) > 3:
        return _RETRY_CODES.get(str(loc[3]), codes["retry"])
    return codes.get(str(loc[2]), fallback)


def _issue(loc: tuple[str | int, ...], pydantic_type: str, message: str, data: object) -> Issue:
    where = _owner_name(loc, data)
    text = message if pydantic_type in _SPEC_CODES else f"{'.'.join(map(str, loc))}: {message}"
    return Issue(tuple(loc), _code(loc, pydantic_type), f"{where}{text}")


def _owner_name(loc: tuple[str | int, ...], data: object) -> str:
    """``"step 'check': "`` for an error inside a named step or trigger, for people."""
    if len(loc) < 2 or loc[0] not in ("steps", "triggers", "payload") or not isinstance(data, dict):
        return ""
    items = data.get(loc[0])
    index = loc[1]
    if not isinstance(items, list) or not isinstance(index, int) or index >= len(items):
        return ""
    item = items[index]
    name = item.get("name") if isinstance(item, dict) else None
    noun = {"steps": "step", "triggers": "trigger", "payload": "payload field"}[str(loc[0])]
    return f"{noun} {name!r}: " if isinstance(name, str) else ""
