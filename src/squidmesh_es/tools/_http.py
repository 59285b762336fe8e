"""`HTTPAdapter`: one HTTP call through httpx, normalized into `ToolResult` or `ToolError`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self, cast

import httpx

from squidmesh_es.tools._adapter import ToolResult
from squidmesh_es.tools._errors import (
    ToolConnectionError,
    ToolHTTPStatusError,
    ToolInvalidRequest,
    ToolInvalidResponse,
    ToolTimeout,
)
from squidmesh_es.tools._redaction import redact_headers, redact_url, url_origin_and_path
from squidmesh_es.workflow import JSONObject, JSONValue

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth another attempt later: the transient set of Req, the original's client."""

_BODY_EXCERPT = 1000
_ADAPTER = "http"


@dataclass(frozen=True)
class HTTPRequest:
    """One HTTP call to make: method, URL and what to send.

    `headers` are sent as given and never returned or raised: results and errors carry only
    response headers, redacted. Give `json` or `body`, not both.
    """

    method: str
    """HTTP method, any case: ``"GET"``, ``"post"``."""
    url: str
    """Absolute ``http`` or ``https`` URL."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers. Empty by default."""
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    """Query parameters. When given they replace any query in `url` (httpx's rule); empty
    by default, which keeps it."""
    json: JSONValue = None
    """A JSON body; `None` (the default) sends none."""
    body: str | bytes | None = None
    """A raw body; `None` (the default) sends none."""
    timeout: timedelta | None = None
    """Bound on each phase of the call (connect, write, read, pool wait); `None` takes the
    adapter's. A total deadline is the step's business: its lease bounds the attempt."""
    expect_json: bool = False
    """Require a JSON body whatever the ``Content-Type``; off by default, where a body is
    decoded when its ``Content-Type`` says JSON."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HTTPAdapter:
    """HTTP calls on an httpx client, one request per `invoke` and never a retry.

    A status of 400 or more, a timeout and a transport failure all raise a `ToolError`
    whose `retryable` flag follows `RETRYABLE_STATUSES`; redirects are followed. Use it as a
    context manager, or call `close`, to release the connections of the client it made.

    Args:
        client: An httpx client to send with (base URL, auth, certificates, a test transport).
            It must not retry; the adapter leaves it open. `None` (the default) makes a
            client with retries off, closed by `close`.
        timeout: Default per-phase timeout of requests that set none; 10 seconds by default.
        now: Wall clock used to read a ``Retry-After`` date when the response has no ``Date``
            header; UTC now by default.
    """

    name = _ADAPTER

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        timeout: timedelta = timedelta(seconds=10),
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._owns_client = client is None
        # retries=0 is httpx's default; it is spelled out because it is the contract.
        self._client = client or httpx.Client(transport=httpx.HTTPTransport(retries=0))
        self._timeout = timeout
        self._now = now

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client this adapter made; a client passed in stays open for its owner."""
        if self._owns_client:
            self._client.close()

    def invoke(self, request: HTTPRequest) -> ToolResult:
        """Send `request` once and return the response as a `ToolResult`.

        Raises:
            ToolInvalidRequest: the request cannot be sent (bad URL or scheme, both `json`
                and `body`, a timeout that is not positive).
            ToolTimeout: a phase of the call outlasted the timeout.
            ToolConnectionError: no connection, or it broke before a full response.
            ToolHTTPStatusError: the status is 400 or more.
            ToolInvalidResponse: a JSON body that does not decode, a redirect loop, or a
                body that does not decompress.
        """
        method = request.method.upper()
        where = f"{method} {url_origin_and_path(request.url)}"
        built = self._build(request, method, where)
        call: JSONObject = {"method": method, "url": redact_url(str(built.url))}
        started = time.perf_counter()
        try:
            response = self._client.send(built, follow_redirects=True)
        except httpx.TimeoutException as exc:
            raise ToolTimeout(f"{where} timed out", adapter=_ADAPTER, details=call) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise ToolInvalidRequest(
                f"{where} cannot be sent: {type(exc).__name__}", adapter=_ADAPTER, details=call
            ) from exc
        except httpx.TransportError as exc:
            raise ToolConnectionError(
                f"{where} failed: {type(exc).__name__}", adapter=_ADAPTER, details=call
            ) from exc
        except (httpx.TooManyRedirects, httpx.DecodingError) as exc:
            raise ToolInvalidResponse(
                f"{where} gave an unusable response: {type(exc).__name__}",
                adapter=_ADAPTER,
                details=call,
            ) from exc
        duration = timedelta(seconds=time.perf_counter() - started)
        call = {"method": method, "url": redact_url(str(response.url))}
        headers = redact_headers(response.headers.multi_items())
        if response.status_code >= 400:
            raise ToolHTTPStatusError(
                f"{where} answered {response.status_code} {response.reason_phrase}",
                adapter=_ADAPTER,
                status=response.status_code,
                retryable=response.status_code in RETRYABLE_STATUSES,
                retry_after=self._retry_after(response),
                details={
                    **call,
                    "headers": cast(JSONValue, headers),
                    "body": response.text[:_BODY_EXCERPT],
                    "duration_ms": duration // timedelta(milliseconds=1),
                },
            )
        return ToolResult(
            adapter=_ADAPTER,
            status=response.status_code,
            headers=headers,
            body=response.text,
            json=_decode_json(response, where=where, call=call, expected=request.expect_json),
            duration=duration,
            metadata=call,
        )

    def _build(self, request: HTTPRequest, method: str, where: str) -> httpx.Request:
        timeout = self._timeout if request.timeout is None else request.timeout
        problem = None
        if request.json is not None and request.body is not None:
            problem = "give json or body, not both"
        elif timeout <= timedelta(0):
            problem = "timeout must be positive"
        if problem is None:
            try:
                return self._client.build_request(
                    method,
                    request.url,
                    headers=dict(request.headers),
                    # An empty mapping would drop the query already in the URL.
                    params=dict(request.params) or None,
                    json=request.json,
                    content=request.body,
                    timeout=timeout.total_seconds(),
                )
            # A malformed international host name raises idna's ValueError, not InvalidURL.
            except (httpx.InvalidURL, ValueError):
                problem = "invalid URL"
        raise ToolInvalidRequest(f"{where} cannot be sent: {problem}", adapter=_ADAPTER)

    def _retry_after(self, response: httpx.Response) -> timedelta | None:
        # A Retry-After date counts from the server's own Date, immune to our clock's skew.
        sent_at = _http_date(response.headers.get("date")) or self._now()
        return parse_retry_after(response.headers.get("retry-after"), now=sent_at)


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """How long a ``Retry-After`` header asks to wait: delay-seconds or an HTTP date.

    A date in the past gives zero; an absent or unreadable header gives `None`, so the
    retry policy's own backoff applies. `now` must be timezone-aware.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        try:
            return timedelta(seconds=int(value))
        except OverflowError:
            return None
    retry_at = _http_date(value)
    return None if retry_at is None else max(retry_at - now, timedelta(0))


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # HTTP dates are GMT; a "-0000" zone parses as naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _decode_json(
    response: httpx.Response, *, where: str, call: JSONObject, expected: bool
) -> JSONValue:
    """The body as JSON when the request expects it or its ``Content-Type`` says so."""
    if not expected and not (_says_json(response) and response.content):
        return None
    try:
        return cast(JSONValue, json.loads(response.text))
    except ValueError as exc:
        raise ToolInvalidResponse(
            f"{where} answered a body that is not JSON",
            adapter=_ADAPTER,
            details={
                **call,
                "status": response.status_code,
                "body": response.text[:_BODY_EXCERPT],
            },
        ) from exc


def _says_json(response: httpx.Response) -> bool:
    media_type = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")
