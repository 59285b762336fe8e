"""Payload contracts: a pydantic model described as spec fields, and payload validation.

A class-declared workflow validates payloads with its own model, so every pydantic constraint
applies; its spec carries the model as `PayloadField`s, from which a runtime-authored spec
builds an equivalent model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PydanticUserError,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, to_jsonable_python

from squidmesh_es.errors import Issue, PayloadValidationError
from squidmesh_es.workflow._elements import PayloadField
from squidmesh_es.workflow._json import JSONObject, JSONValue, is_json_value
from squidmesh_es.workflow._vocab import DefaultFactory, PayloadType


def today_iso8601() -> str:
    """Today's date (UTC) as ``YYYY-MM-DD``: a payload default computed at run creation.

    Declare it as ``posted_on: str = Field(default_factory=today_iso8601)``. When the
    runtime validates a payload it passes the run's creation time, so the date comes from the
    runtime's clock; this function's own reading of the wall clock is only the fallback.
    """
    return datetime.now(UTC).date().isoformat()


class NoPayload(BaseModel):
    """The contract of a workflow that declares none: an empty object."""

    model_config = ConfigDict(extra="forbid")


_JSON_SCHEMA_TYPES: Final = {
    frozenset({"string"}): PayloadType.STRING,
    frozenset({"integer"}): PayloadType.INTEGER,
    frozenset({"number"}): PayloadType.FLOAT,
    frozenset({"integer", "number"}): PayloadType.FLOAT,
    frozenset({"boolean"}): PayloadType.BOOLEAN,
    frozenset({"object"}): PayloadType.MAP,
    frozenset({"array"}): PayloadType.LIST,
}

_ANNOTATIONS: Final[dict[PayloadType, Any]] = {
    PayloadType.STRING: StrictStr,
    PayloadType.INTEGER: StrictInt,
    PayloadType.FLOAT: StrictFloat,
    PayloadType.BOOLEAN: StrictBool,
    PayloadType.MAP: dict[str, JsonValue],
    PayloadType.LIST: list[JsonValue],
}

_LITERAL_FACTORIES: Final[dict[object, JSONValue]] = {list: [], dict: {}}


def fields_from_model(model: type[BaseModel]) -> tuple[tuple[PayloadField, ...], list[Issue]]:
    """The spec fields describing `model`, and the issues that keep it from being a contract.

    Each field needs one JSON type (``X | None`` makes it nullable) and, when optional, a
    JSON default or `today_iso8601`: a default must be data, so a spec can carry it.
    """
    issues: list[Issue] = []
    try:
        schema = model.model_json_schema(mode="validation")
    except PydanticUserError as exc:
        message = f"payload model {model.__qualname__} has no JSON schema: {exc}"
        return (), [Issue(("payload",), "invalid_payload_contract", message)]
    properties = schema.get("properties", {})
    definitions = schema.get("$defs", {})
    fields = []
    for index, (name, info) in enumerate(model.model_fields.items()):
        key = info.alias or name
        types = _json_types(properties.get(key, {}), definitions)
        nullable = "null" in types
        payload_type = _JSON_SCHEMA_TYPES.get(frozenset(types - {"null"}))
        if payload_type is None:
            issues.append(
                Issue(
                    ("payload", index, "type"),
                    "invalid_payload_field_type",
                    f"payload field {key!r} needs one JSON type (str, int, float, bool, a "
                    "mapping or a sequence), optionally with None",
                )
            )
            continue
        field, issue = _field(index, key, payload_type, nullable, info)
        fields.append(field)
        if issue is not None:
            issues.append(issue)
    return tuple(fields), issues


def _field(
    index: int, key: str, payload_type: PayloadType, nullable: bool, info: FieldInfo
) -> tuple[PayloadField, Issue | None]:
    if info.is_required():
        return PayloadField(key, payload_type, required=True, nullable=nullable), None
    factory = info.default_factory
    if factory is today_iso8601:
        return PayloadField(
            key, payload_type, False, nullable, default_factory=DefaultFactory.TODAY_ISO8601
        ), None
    if factory is not None:
        if factory in _LITERAL_FACTORIES:
            return PayloadField(
                key, payload_type, False, nullable, _LITERAL_FACTORIES[factory]
            ), None
        issue = Issue(
            ("payload", index, "default_factory"),
            "invalid_payload_default",
            f"payload field {key!r}: a default must be a literal value or today_iso8601",
        )
        return PayloadField(key, payload_type, False, nullable), issue
    try:
        default = to_jsonable_python(info.default)
    except PydanticSerializationError:
        issue = Issue(
            ("payload", index, "default"),
            "invalid_payload_default",
            f"payload field {key!r}: the default is not JSON data",
        )
        return PayloadField(key, payload_type, False, nullable), issue
    return PayloadField(key, payload_type, False, nullable, default), None


def _json_types(
    schema: Mapping[str, Any], definitions: Mapping[str, Any], depth: int = 0
) -> set[str]:
    if depth > 8:
        return {"any"}
    if "$ref" in schema:
        target = definitions.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return _json_types(target, definitions, depth + 1)
    if "type" in schema:
        declared = schema["type"]
        return set(declared) if isinstance(declared, list) else {declared}
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return set().union(*(_json_types(s, definitions, depth + 1) for s in schema[key]))
    if len(schema.get("allOf", ())) == 1:
        return _json_types(schema["allOf"][0], definitions, depth + 1)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return {_value_type(value) for value in values}
    return {"any"}


def _value_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "any"


@dataclass(frozen=True)
class PayloadContract:
    """Validates payloads for one workflow and turns them into JSON-safe run input."""

    workflow: str
    model: type[BaseModel]
    today_fields: tuple[str, ...]
    """Absent fields that take the run's creation date."""
    forbid_unknown: bool
    """Whether to refuse keys the model does not declare, which pydantic ignores by default."""

    @classmethod
    def from_model(cls, workflow: str, model: type[BaseModel]) -> PayloadContract:
        """The contract of a class-declared workflow's pydantic model.

        Unknown keys are refused unless the model chose its own ``extra`` policy.
        """
        today = tuple(
            info.alias or name
            for name, info in model.model_fields.items()
            if info.default_factory is today_iso8601
        )
        return cls(workflow, model, today, forbid_unknown=model.model_config.get("extra") is None)

    @classmethod
    def from_fields(cls, workflow: str, fields: Sequence[PayloadField]) -> PayloadContract:
        """The contract described by spec fields, for specs without a model class."""
        definitions: dict[str, Any] = {}
        for index, field in enumerate(fields):
            annotation = _ANNOTATIONS[field.type]
            if field.nullable:
                annotation = annotation | None
            if field.required:
                info = Field(alias=field.name)
            elif field.default_factory is DefaultFactory.TODAY_ISO8601:
                info = Field(alias=field.name, default_factory=today_iso8601)
            else:
                info = Field(alias=field.name, default=field.default)
            definitions[f"field_{index}"] = (annotation, info)
        model = create_model(
            f"{workflow}Payload", __config__=ConfigDict(extra="forbid"), **definitions
        )
        today = tuple(f.name for f in fields if f.default_factory is DefaultFactory.TODAY_ISO8601)
        return cls(workflow, model, today, forbid_unknown=False)

    def validate(self, payload: object, *, now: datetime | None = None) -> JSONObject:
        """The run input for `payload`: validated, defaults applied, JSON-safe.

        Raises:
            PayloadValidationError: one issue per problem, with pydantic's location as the
                path, its error type as the code and its message.
        """
        if not isinstance(payload, Mapping):
            issue = Issue((), "dict_type", "the payload must be a JSON object")
            raise PayloadValidationError(self._failure, [issue])
        data = dict(payload)
        if now is not None:
            for name in self.today_fields:
                data.setdefault(name, now.date().isoformat())
        issues = self._unknown_key_issues(data)
        try:
            result = self.model.model_validate(data).model_dump(mode="json", by_alias=True)
        except ValidationError as exc:
            issues.extend(
                Issue(tuple(error["loc"]), error["type"], error["msg"]) for error in exc.errors()
            )
        else:
            issues.extend(
                Issue((key,), "json_value", "the value does not survive JSON")
                for key, value in result.items()
                if not is_json_value(value)
            )
        if issues:
            raise PayloadValidationError(self._failure, issues)
        return result

    @property
    def _failure(self) -> str:
        return f"payload for workflow {self.workflow!r} is invalid"

    def _unknown_key_issues(self, data: Mapping[Any, object]) -> list[Issue]:
        if not self.forbid_unknown:
            return []
        known = self._known_keys
        return [
            Issue((str(key),), "extra_forbidden", "Extra inputs are not permitted")
            for key in data
            if key not in known
        ]

    @cached_property
    def _known_keys(self) -> frozenset[str]:
        """The model's field names and aliases (a model's fields are fixed once defined)."""
        fields = self.model.model_fields
        return frozenset({info.alias or name for name, info in fields.items()} | set(fields))
