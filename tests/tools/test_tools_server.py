"""HTTPAdapter against a real HTTP server on localhost: one request per call, normalized."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from squidmesh_es.tools import (
    REDACTED,
    HTTPAdapter,
    HTTPRequest,
    ToolConnectionError,
    ToolHTTPStatusError,
    ToolTimeout,
    invoke,
)

SECRETS = ("s3cr3t-bearer", "cookie-value", "key-value", "query-token", "pass-word")


class Server:
    """A local server whose handler answers by path and remembers what it was sent."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.seen_headers: dict[str, dict[str, str]] = {}
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                server.hits[url.path] += 1
                server.seen_headers[url.path] = {k.lower(): v for k, v in self.headers.items()}
                length = int(self.headers.get("content-length", "0"))
                sent = self.rfile.read(length) if length else b""
                if url.path == "/text":
                    self._send(200, b"hello", "text/plain; charset=utf-8")
                elif url.path == "/json":
                    self._send(200, json.dumps({"state": "captured", "amount": 12}).encode())
                elif url.path == "/echo":
                    echoed = {"method": self.command, "json": json.loads(sent), "query": query}
                    self._send(201, json.dumps(echoed).encode())
                elif url.path == "/secrets":
                    self._send(
                        200,
                        b"{}",
                        extra={
                            "Set-Cookie": "session=cookie-value",
                            "X-Api-Key": "key-value",
                            "X-Request-Id": "req-1",
                        },
                    )
                elif url.path.startswith("/status/"):
                    extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                    extra["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                    body = json.dumps({"error": "nope"}).encode()
                    self._send(int(url.path.rsplit("/", 1)[1]), body, extra=extra)
                elif url.path == "/slow":
                    server.release.wait(timeout=5)
                    self._send(200, b"{}")
                elif url.path == "/redirect":
                    self._send(302, b"", extra={"Location": "/json"})

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str = "application/json",
                extra: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield running
    running.release.set()
    running.httpd.shutdown()
    running.httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def http() -> Iterator[HTTPAdapter]:
    with HTTPAdapter(timeout=timedelta(seconds=5)) as adapter:
        yield adapter


def test_success_returns_status_headers_body_and_duration(
    server: Server, http: HTTPAdapter
) -> None:
    result = invoke(http, HTTPRequest("get", server.url("/text")))

    assert (result.adapter, result.status, result.body, result.json) == ("http", 200, "hello", None)
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert timedelta(0) < result.duration < timedelta(seconds=5)
    assert result.metadata == {"method": "GET", "url": server.url("/text")}


def test_json_response_is_decoded(server: Server, http: HTTPAdapter) -> None:
    result = invoke(http, HTTPRequest("GET", server.url("/json")))

    assert result.json == {"state": "captured", "amount": 12}


def test_json_body_and_params_are_sent(server: Server, http: HTTPAdapter) -> None:
    request = HTTPRequest("POST", server.url("/echo"), json={"a": [1, 2]}, params={"page": 2})

    result = invoke(http, request)

    assert result.status == 201
    assert result.json == {"method": "POST", "json": {"a": [1, 2]}, "query": {"page": "2"}}


def test_redirect_is_followed(server: Server, http: HTTPAdapter) -> None:
    result = invoke(http, HTTPRequest("GET", server.url("/redirect")))

    assert (result.status, result.metadata["url"]) == (200, server.url("/json"))


def test_404_is_not_retryable_and_sent_once(server: Server, http: HTTPAdapter) -> None:
    with pytest.raises(ToolHTTPStatusError) as raised:
        invoke(http, HTTPRequest("GET", server.url("/status/404")))

    error = raised.value
    assert (error.code, error.status, error.retryable, error.retry_after) == (
        "http_status",
        404,
        False,
        None,
    )
    assert error.details["body"] == '{"error": "nope"}'
    assert server.hits["/status/404"] == 1


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_retryable_with_retry_after_seconds_and_sent_once(
    status: int, server: Server, http: HTTPAdapter
) -> None:
    with pytest.raises(ToolHTTPStatusError) as raised:
        invoke(http, HTTPRequest("GET", server.url(f"/status/{status}?retry_after=7")))

    assert raised.value.retryable is True
    assert raised.value.retry_after == timedelta(seconds=7)
    assert raised.value.to_reason()["retry_after_ms"] == 7000
    assert server.hits[f"/status/{status}"] == 1


def test_slow_server_raises_retryable_timeout_after_one_request(
    server: Server, http: HTTPAdapter
) -> None:
    request = HTTPRequest("GET", server.url("/slow"), timeout=timedelta(milliseconds=200))

    with pytest.raises(ToolTimeout) as raised:
        invoke(http, request)

    assert (raised.value.code, raised.value.retryable) == ("timeout", True)
    assert server.hits["/slow"] == 1


def test_refused_connection_raises_retryable_connection_error(http: HTTPAdapter) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.

    with pytest.raises(ToolConnectionError) as raised:
        invoke(http, HTTPRequest("GET", f"http://127.0.0.1:{port}/x"))

    assert (raised.value.code, raised.value.retryable) == ("connection_error", True)


def test_credentials_reach_the_server_but_not_the_result(server: Server, http: HTTPAdapter) -> None:
    request = HTTPRequest(
        "GET",
        server.url("/secrets?token=query-token"),
        headers={"Authorization": "Bearer s3cr3t-bearer"},
    )

    result = invoke(http, request)

    assert server.seen_headers["/secrets"]["authorization"] == "Bearer s3cr3t-bearer"
    assert result.headers["set-cookie"] == REDACTED
    assert result.headers["x-api-key"] == REDACTED
    assert result.headers["x-request-id"] == "req-1"
    assert result.metadata["url"] == server.url(f"/secrets?token={REDACTED}")
    shown = json.dumps(result.to_dict())
    assert not [secret for secret in SECRETS if secret in shown]


def test_credentials_are_redacted_from_raised_errors(server: Server, http: HTTPAdapter) -> None:
    request = HTTPRequest(
        "GET",
        server.url("/status/401?api_key=query-token"),
        headers={"Authorization": "Bearer s3cr3t-bearer", "Cookie": "sid=cookie-value"},
    )

    with pytest.raises(ToolHTTPStatusError) as raised:
        invoke(http, request)

    error = raised.value
    assert error.details["headers"]["www-authenticate"] == REDACTED
    shown = f"{error} {error!r} {json.dumps(error.to_reason())}"
    assert not [secret for secret in SECRETS if secret in shown]
    assert "api_key=" in json.dumps(error.to_reason())
