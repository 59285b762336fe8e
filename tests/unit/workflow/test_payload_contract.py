"""Payload contracts: pydantic models as spec fields, validation, defaults and triggers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from squidmesh_es.errors import InvalidTrigger, PayloadValidationError, WorkflowValidationError
from squidmesh_es.workflow import (
    DefaultFactory,
    Ok,
    PayloadField,
    PayloadType,
    Step,
    StepContext,
    Workflow,
    WorkflowSpec,
    cron,
    manual,
    step,
    today_iso8601,
)

NOW = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)


class Noop(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        return Ok()


class Tier(StrEnum):
    GOLD = "gold"
    SILVER = "silver"


class Address(BaseModel):
    city: str


class Digest(BaseModel):
    feed_url: str = "https://example.com/feed.xml"
    channel: str
    limit: int = 10
    ratio: float = 0.5
    dry_run: bool = False
    webhook_url: str | None = None
    tags: list[str] = Field(default_factory=list)
    options: dict[str, int] = {}
    tier: Tier = Tier.SILVER
    address: Address | None = None
    since: date = date(2026, 1, 1)
    posted_on: str = Field(default_factory=today_iso8601)


class DailyDigest(Workflow):
    payload = Digest
    triggers = [manual("manual_digest"), cron("daily_digest", "@daily")]
    fetch = step(Noop)


class OneTrigger(Workflow):
    payload = Digest
    triggers = [manual("go")]
    fetch = step(Noop)


def test_model_fields_become_spec_fields() -> None:
    fields = {f.name: f for f in DailyDigest.to_spec().payload}

    assert fields["channel"] == PayloadField("channel", PayloadType.STRING)
    assert fields["limit"] == PayloadField("limit", PayloadType.INTEGER, False, False, 10)
    assert fields["ratio"].type is PayloadType.FLOAT
    assert fields["dry_run"].type is PayloadType.BOOLEAN
    assert fields["webhook_url"] == PayloadField(
        "webhook_url", PayloadType.STRING, False, True, None
    )
    assert fields["tags"] == PayloadField("tags", PayloadType.LIST, False, False, [])
    assert (fields["options"].type, fields["options"].default) == (PayloadType.MAP, {})
    assert (fields["tier"].type, fields["tier"].default) == (PayloadType.STRING, "silver")
    assert (fields["address"].type, fields["address"].nullable) == (PayloadType.MAP, True)
    assert (fields["since"].type, fields["since"].default) == (PayloadType.STRING, "2026-01-01")
    assert fields["posted_on"].default_factory is DefaultFactory.TODAY_ISO8601


def test_defaults_are_applied_and_the_result_is_json_safe() -> None:
    result = DailyDigest.validate_payload({"channel": "#ops"}, "manual_digest", now=NOW)

    assert result == {
        "feed_url": "https://example.com/feed.xml",
        "channel": "#ops",
        "limit": 10,
        "ratio": 0.5,
        "dry_run": False,
        "webhook_url": None,
        "tags": [],
        "options": {},
        "tier": "silver",
        "address": None,
        "since": "2026-01-01",
        "posted_on": "2026-03-01",
    }


def test_given_values_win_over_defaults() -> None:
    result = OneTrigger.validate_payload(
        {"channel": "#ops", "posted_on": "2026-02-02", "address": {"city": "Lyon"}}, now=NOW
    )

    assert (result["posted_on"], result["address"]) == ("2026-02-02", {"city": "Lyon"})


def test_wrong_types_are_reported_per_field() -> None:
    with pytest.raises(PayloadValidationError) as caught:
        OneTrigger.validate_payload({"limit": "many", "tier": "bronze"})

    found = {(issue.path, issue.code) for issue in caught.value.issues}
    assert found == {
        (("channel",), "missing"),
        (("limit",), "int_parsing"),
        (("tier",), "enum"),
    }
    assert caught.value.code == "invalid_payload"


def test_keys_the_model_does_not_declare_are_refused() -> None:
    with pytest.raises(PayloadValidationError) as caught:
        OneTrigger.validate_payload({"channel": "#ops", "chanel": "#typo"})

    assert [(i.path, i.code) for i in caught.value.issues] == [(("chanel",), "extra_forbidden")]


def test_a_model_with_its_own_extra_policy_keeps_it() -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="ignore")
        channel: str

    class Lenient(Workflow):
        payload = Open
        triggers = [manual("go")]
        fetch = step(Noop)

    assert Lenient.validate_payload({"channel": "#ops", "extra": 1}) == {"channel": "#ops"}


def test_payload_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PayloadValidationError) as caught:
        OneTrigger.validate_payload(["#ops"])

    assert [(i.path, i.code) for i in caught.value.issues] == [((), "dict_type")]


def test_pydantic_validation_error_never_escapes() -> None:
    with pytest.raises(PayloadValidationError) as caught:
        OneTrigger.validate_payload({"limit": "many"})

    assert not isinstance(caught.value, ValueError)


def test_default_trigger_is_the_only_trigger() -> None:
    assert OneTrigger.resolve_trigger().name == "go"


def test_several_triggers_need_a_named_one() -> None:
    with pytest.raises(InvalidTrigger) as caught:
        DailyDigest.validate_payload({"channel": "#ops"})

    assert (caught.value.code, caught.value.trigger) == ("invalid_trigger", None)


def test_unknown_trigger_is_refused() -> None:
    with pytest.raises(InvalidTrigger) as caught:
        DailyDigest.validate_payload({"channel": "#ops"}, "hourly")

    assert caught.value.trigger == "hourly"


def test_spec_validates_payloads_like_the_model() -> None:
    spec = WorkflowSpec.from_dict(DailyDigest.to_spec().to_dict())
    payload = {"channel": "#ops", "address": {"city": "Lyon"}, "tier": "gold"}

    assert spec.validate_payload(payload, "daily_digest", now=NOW) == DailyDigest.validate_payload(
        payload, "daily_digest", now=NOW
    )


@pytest.mark.parametrize(
    ("payload", "path", "code"),
    [
        ({"channel": 5}, ("channel",), "string_type"),
        ({"channel": "#ops", "limit": True}, ("limit",), "int_type"),
        ({"channel": "#ops", "limit": "3"}, ("limit",), "int_type"),
        ({"channel": "#ops", "webhook": "x"}, ("webhook",), "extra_forbidden"),
        ({}, ("channel",), "missing"),
    ],
)
def test_spec_payload_validation_is_strict_json(
    payload: dict[str, Any], path: tuple[str, ...], code: str
) -> None:
    spec = WorkflowSpec.from_dict(OneTrigger.to_spec().to_dict())

    with pytest.raises(PayloadValidationError) as caught:
        spec.validate_payload(payload)

    assert (path, code) in {(i.path, i.code) for i in caught.value.issues}


def test_spec_float_field_accepts_integers() -> None:
    spec = WorkflowSpec.from_dict(OneTrigger.to_spec().to_dict())

    assert spec.validate_payload({"channel": "#ops", "ratio": 1})["ratio"] == 1


def test_payload_field_named_like_a_model_attribute_still_validates() -> None:
    data = OneTrigger.to_spec().to_dict()
    data["payload"] = [
        {"name": "model_config", "type": "string", "required": True, "nullable": False}
    ]

    assert WorkflowSpec.from_dict(data).validate_payload({"model_config": "x"}) == {
        "model_config": "x"
    }


def test_union_of_types_cannot_be_a_payload_field() -> None:
    class Ambiguous(BaseModel):
        value: int | str

    with pytest.raises(WorkflowValidationError) as caught:

        class Unclear(Workflow):
            payload = Ambiguous
            triggers = [manual("go")]
            fetch = step(Noop)

    assert [(i.path, i.code) for i in caught.value.issues] == [
        (("payload", 0, "type"), "invalid_payload_field_type")
    ]


def test_computed_defaults_other_than_today_are_refused() -> None:
    class Random(BaseModel):
        token: str = Field(default_factory=lambda: "abc")

    with pytest.raises(WorkflowValidationError) as caught:

        class Computed(Workflow):
            payload = Random
            triggers = [manual("go")]
            fetch = step(Noop)

    assert [(i.path, i.code) for i in caught.value.issues] == [
        (("payload", 0, "default_factory"), "invalid_payload_default")
    ]


def test_workflow_without_payload_accepts_only_an_empty_object() -> None:
    class Bare(Workflow):
        triggers = [manual("go")]
        fetch = step(Noop)

    assert Bare.validate_payload({}) == {}
    with pytest.raises(PayloadValidationError):
        Bare.validate_payload({"x": 1})
