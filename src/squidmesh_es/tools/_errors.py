"""Tool failures, normalized: a stable ``code``, a ``retryable`` verdict and safe details.

Hierarchy::

    SquidMeshError
    └── ToolError                    tool_error
        ├── ToolTimeout              timeout            retryable
        ├── ToolConnectionError      connection_error   retryable
        ├── ToolHTTPStatusError      http_status        retryable for 408, 429, 500, 502-504
        ├── ToolInvalidResponse      invalid_response
        ├── ToolInvalidRequest       invalid_request
        └── ToolAdapterContractError adapter_contract
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import cast

from squidmesh_es.errors import SquidMeshError
from squidmesh_es.workflow import JSONObject, JSONValue


class ToolError(SquidMeshError):
    """An external call through a tool adapter failed; nothing was retried.

    `retryable` says whether the same call may succeed later. Adapters never retry: the
    step turns a retryable error into ``Retry(error.to_reason(), delay=error.retry_after)`` and
    the workflow's retry policy decides, so attempts stay visible in the run's history.
    Details hold no credential: adapters redact them before raising.
    """

    code = "tool_error"

    def __init__(
        self,
        message: str,
        *,
        adapter: str,
        retryable: bool,
        retry_after: timedelta | None = None,
        details: Mapping[str, JSONValue] | None = None,
    ) -> None:
        super().__init__(message, **(details or {}))
        self.adapter = adapter
        """Name of the adapter that failed, e.g. ``"http"``."""
        self.retryable = retryable
        """Whether a later attempt of the same call may succeed."""
        self.retry_after = retry_after
        """How long the other side asked us to wait (``Retry-After``), else `None`."""

    def to_dict(self) -> dict[str, object]:
        """The error as JSON-safe data; the same as `to_reason`, typed as the base's."""
        return {**self.to_reason()}

    def to_reason(self) -> JSONObject:
        """The error as JSON data, typed to be a step's `Retry` or `Error` reason.

        Keys: ``code``, ``message``, ``adapter``, ``retryable``, ``retry_after_ms`` (an
        integer or null) and ``details``.
        """
        data = cast(JSONObject, super().to_dict())
        data["adapter"] = self.adapter
        data["retryable"] = self.retryable
        data["retry_after_ms"] = (
            None if self.retry_after is None else self.retry_after // timedelta(milliseconds=1)
        )
        return data


class ToolTimeout(ToolError):
    """The call did not finish within its timeout. Retryable: the other side may be slow now.

    The request may have reached the other side: send an idempotency key with calls that
    change state, so the retry does not repeat the effect.
    """

    code = "timeout"

    def __init__(
        self, message: str, *, adapter: str, details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(message, adapter=adapter, retryable=True, details=details)


class ToolConnectionError(ToolError):
    """The connection could not be made or broke before a response. Retryable."""

    code = "connection_error"

    def __init__(
        self, message: str, *, adapter: str, details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(message, adapter=adapter, retryable=True, details=details)


class ToolHTTPStatusError(ToolError):
    """The server answered with a status of 400 or more.

    Retryable for 408, 429, 500, 502, 503 and 504 (the transient statuses of the original's
    HTTP client); any other status means the same request will fail again.
    """

    code = "http_status"

    def __init__(
        self,
        message: str,
        *,
        adapter: str,
        status: int,
        retryable: bool,
        retry_after: timedelta | None = None,
        details: Mapping[str, JSONValue] | None = None,
    ) -> None:
        super().__init__(
            message,
            adapter=adapter,
            retryable=retryable,
            retry_after=retry_after,
            details={"status": status, **(details or {})},
        )
        self.status = status
        """The HTTP status code."""


class ToolInvalidResponse(ToolError):
    """The other side answered, but not in a shape we can use (bad JSON, redirect loop).

    Not retryable: the same call would most likely get the same answer.
    """

    code = "invalid_response"

    def __init__(
        self, message: str, *, adapter: str, details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(message, adapter=adapter, retryable=False, details=details)


class ToolInvalidRequest(ToolError):
    """The request cannot be sent as given (bad URL, scheme or options). Not retryable."""

    code = "invalid_request"

    def __init__(
        self, message: str, *, adapter: str, details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(message, adapter=adapter, retryable=False, details=details)


class ToolAdapterContractError(ToolError):
    """The adapter broke the contract: it returned something other than a `ToolResult`.

    Not retryable: it is a bug in the adapter, not a condition of the other side.
    """

    code = "adapter_contract"

    def __init__(
        self, message: str, *, adapter: str, details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(message, adapter=adapter, retryable=False, details=details)
