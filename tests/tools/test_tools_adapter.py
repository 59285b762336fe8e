"""The tool boundary without a network: httpx.MockTransport, fake adapters, pure helpers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import squidmesh_es.tools as tools
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.tools import (
    REDACTED,
    RETRYABLE_STATUSES,
    HTTPAdapter,
    HTTPRequest,
    ToolAdapterContractError,
    ToolError,
    ToolHTTPStatusError,
    ToolInvalidRequest,
    ToolInvalidResponse,
    ToolResult,
    ToolTimeout,
    invoke,
    parse_retry_after,
    redact_headers,
    redact_url,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://api.example.test/v1/checks"


def adapter_for(
    handler: Callable[[httpx.Request], httpx.Response], *, now: datetime = T0
) -> HTTPAdapter:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return HTTPAdapter(client, now=lambda: now)


def status_error(response: httpx.Response, *, now: datetime = T0) -> ToolHTTPStatusError:
    with pytest.raises(ToolHTTPStatusError) as raised:
        invoke(adapter_for(lambda _: response, now=now), HTTPRequest("GET", URL))
    return raised.value


def test_exports_are_pinned() -> None:
    assert tools.__all__ == [
        "REDACTED",
        "RETRYABLE_STATUSES",
        "Adapter",
        "HTTPAdapter",
        "HTTPRequest",
        "ToolAdapterContractError",
        "ToolConnectionError",
        "ToolError",
        "ToolHTTPStatusError",
        "ToolInvalidRequest",
        "ToolInvalidResponse",
        "ToolResult",
        "ToolTimeout",
        "invoke",
        "parse_retry_after",
        "redact_headers",
        "redact_url",
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_client_errors_and_501_are_not_retryable(status: int) -> None:
    assert status_error(httpx.Response(status)).retryable is False


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUSES))
def test_transient_statuses_are_retryable(status: int) -> None:
    assert status_error(httpx.Response(status)).retryable is True


def test_retry_after_date_counts_from_the_servers_date_header() -> None:
    server_now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # our clock (T0) is 3 hours ahead
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=30), usegmt=True),
    }

    assert status_error(httpx.Response(503, headers=headers)).retry_after == timedelta(seconds=30)


def test_retry_after_date_without_date_header_counts_from_our_clock() -> None:
    headers = {"Retry-After": format_datetime(T0 + timedelta(minutes=2), usegmt=True)}

    assert status_error(httpx.Response(429, headers=headers)).retry_after == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        (" 0 ", timedelta(0)),
        (format_datetime(T0 - timedelta(hours=1), usegmt=True), timedelta(0)),
        ("soon", None),
        ("-5", None),
        ("9" * 30, None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, now=T0) == expected


def test_invalid_json_under_a_json_content_type_is_an_invalid_response() -> None:
    adapter = adapter_for(
        lambda _: httpx.Response(200, text="<html>", headers={"Content-Type": "application/json"})
    )

    with pytest.raises(ToolInvalidResponse) as raised:
        invoke(adapter, HTTPRequest("GET", URL))

    assert (raised.value.code, raised.value.retryable) == ("invalid_response", False)


def test_expect_json_decodes_a_body_whatever_its_content_type() -> None:
    adapter = adapter_for(lambda _: httpx.Response(200, text='{"ok": true}'))

    assert invoke(adapter, HTTPRequest("GET", URL, expect_json=True)).json == {"ok": True}


def test_expect_json_refuses_an_empty_body() -> None:
    adapter = adapter_for(lambda _: httpx.Response(204))

    with pytest.raises(ToolInvalidResponse):
        invoke(adapter, HTTPRequest("GET", URL, expect_json=True))


def test_problem_json_is_decoded_as_json() -> None:
    adapter = adapter_for(
        lambda _: httpx.Response(
            200, text='{"title": "x"}', headers={"Content-Type": "application/problem+json"}
        )
    )

    assert invoke(adapter, HTTPRequest("GET", URL)).json == {"title": "x"}


def test_query_in_the_url_is_kept_when_no_params_are_given() -> None:
    adapter = adapter_for(lambda request: httpx.Response(200, text=str(request.url)))

    assert invoke(adapter, HTTPRequest("GET", f"{URL}?page=3")).body == f"{URL}?page=3"


def test_redirect_loop_is_an_invalid_response() -> None:
    adapter = adapter_for(lambda _: httpx.Response(302, headers={"Location": URL}))

    with pytest.raises(ToolInvalidResponse):
        invoke(adapter, HTTPRequest("GET", URL))


def test_timeout_from_the_transport_becomes_tool_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ToolTimeout) as raised:
        invoke(adapter_for(handler), HTTPRequest("GET", URL))

    assert raised.value.details == {"method": "GET", "url": URL}


@pytest.mark.parametrize(
    "request_",
    [
        HTTPRequest("POST", URL, json={"a": 1}, body="a=1"),
        HTTPRequest("GET", URL, timeout=timedelta(0)),
        HTTPRequest("GET", "http://h.test:abc/"),
        HTTPRequest("GET", "https://xn--/"),
        HTTPRequest("GET", "h.test/no-scheme"),
        HTTPRequest("GET", "ftp://files.example.test/x"),
    ],
    ids=["json-and-body", "zero-timeout", "bad-port", "bad-idna", "no-scheme", "ftp-scheme"],
)
def test_requests_that_cannot_be_sent_are_invalid_requests(request_: HTTPRequest) -> None:
    with HTTPAdapter() as adapter, pytest.raises(ToolInvalidRequest) as raised:
        invoke(adapter, request_)

    assert (raised.value.code, raised.value.retryable) == ("invalid_request", False)


def test_tool_error_reason_is_json_and_a_squidmesh_error() -> None:
    headers = {"Retry-After": "3", "Set-Cookie": "sid=1"}
    error = status_error(httpx.Response(503, headers=headers, text="busy"))

    reason = error.to_reason()

    assert isinstance(error, SquidMeshError)
    assert json.loads(json.dumps(reason)) == reason
    assert reason["code"] == "http_status"
    assert (reason["adapter"], reason["retryable"], reason["retry_after_ms"]) == (
        "http",
        True,
        3000,
    )
    assert reason["details"]["status"] == 503
    assert reason["details"]["headers"]["set-cookie"] == REDACTED
    assert error.to_dict() == reason


def test_result_to_dict_is_json() -> None:
    result = ToolResult(adapter="fake", status=None, json={"a": 1}, duration=timedelta(seconds=1.5))

    assert json.loads(json.dumps(result.to_dict()))["duration_ms"] == 1500


def test_redact_headers_lowercases_and_joins_repeats() -> None:
    headers = [
        ("X-Auth-Token", "t"),
        ("Accept", "a"),
        ("accept", "b"),
        ("Proxy-Authorization", "p"),
    ]

    assert redact_headers(headers) == {
        "x-auth-token": REDACTED,
        "accept": "a, b",
        "proxy-authorization": REDACTED,
    }


def test_redact_url_drops_user_info_and_sensitive_query_values() -> None:
    url = "https://user:pw@h.test/p?key=k&client_secret=s&page=2"

    assert redact_url(url) == f"https://h.test/p?key={REDACTED}&client_secret={REDACTED}&page=2"


def test_an_adapter_client_passed_in_stays_open() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200)))

    with HTTPAdapter(client):
        pass

    assert client.is_closed is False


class FakeAdapter:
    """An adapter over nothing, to exercise `invoke`'s contract."""

    name = "fake"

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def invoke(self, request: str) -> ToolResult:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_invoke_returns_an_adapters_result() -> None:
    result = ToolResult(adapter="fake", json={"echo": "hi"})

    assert invoke(FakeAdapter(result), "hi") is result


def test_invoke_refuses_a_result_of_the_wrong_type() -> None:
    with pytest.raises(ToolAdapterContractError) as raised:
        invoke(FakeAdapter({"status": 200}), "hi")

    assert (raised.value.code, raised.value.adapter, raised.value.retryable) == (
        "adapter_contract",
        "fake",
        False,
    )


def test_invoke_passes_tool_errors_through() -> None:
    error = ToolError("quota", adapter="fake", retryable=False, details={"quota": "daily"})

    with pytest.raises(ToolError) as raised:
        invoke(FakeAdapter(error), "hi")

    assert raised.value is error


def test_invoke_lets_adapter_bugs_propagate() -> None:
    with pytest.raises(KeyError):
        invoke(FakeAdapter(KeyError("bug")), "hi")


def test_redact_url_hides_a_url_that_does_not_parse() -> None:
    assert redact_url("http://[token") == REDACTED
