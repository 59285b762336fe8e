"""The tool boundary: the `Adapter` contract, its normalized `ToolResult`, and `invoke`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypeVar

from squidmesh_es.tools._errors import ToolAdapterContractError, ToolError
from squidmesh_es.workflow import JSONObject, JSONValue

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", contravariant=True)


@dataclass(frozen=True)
class ToolResult:
    """What a successful external call gave back, normalized and free of credentials.

    Every field is JSON-shaped except `duration`; `to_dict` gives the whole result as JSON
    data, ready to become (part of) a step's output.
    """

    adapter: str
    """Name of the adapter that made the call, e.g. ``"http"``."""
    status: int | None = None
    """Protocol status (the HTTP status code); `None` for adapters without one."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers, names lowercased, sensitive values redacted. Empty by default."""
    body: str = ""
    """The response body as text. Empty by default."""
    json: JSONValue = None
    """The body decoded as JSON when it is JSON, else `None`."""
    duration: timedelta = timedelta(0)
    """How long the call took, measured on a monotonic clock."""
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)
    """What was called (for HTTP: ``method`` and the redacted ``url``). Empty by default."""

    def to_dict(self) -> JSONObject:
        """The result as JSON data; the duration as integer ``duration_ms``."""
        return {
            "adapter": self.adapter,
            "status": self.status,
            "headers": dict(self.headers),
            "body": self.body,
            "json": self.json,
            "duration_ms": self.duration // timedelta(milliseconds=1),
            "metadata": dict(self.metadata),
        }


class Adapter(Protocol[RequestT]):
    """A way to call one kind of external system, e.g. `HTTPAdapter`.

    An adapter makes exactly one call per `invoke`: it never retries, because retries
    belong to the workflow's retry policy, where each attempt is journaled and visible.
    It reports failures as `ToolError` subclasses with an honest `retryable` flag, and
    keeps credentials out of everything it returns or raises.
    """

    @property
    def name(self) -> str:
        """Short stable name, recorded in results and errors (``"http"``)."""
        ...

    def invoke(self, request: RequestT) -> ToolResult:
        """Make the call `request` describes, once.

        Raises:
            ToolError: the call failed; its subclass and ``code`` say how.
        """
        ...


def invoke(adapter: Adapter[RequestT], request: RequestT) -> ToolResult:
    """Call `adapter` once with `request` and return its normalized result.

    The one entry point steps use, so every adapter call is checked and logged the same way.
    The original's ``context`` argument is not here: a step passes what the call needs
    (say, ``ctx.idempotency_key`` as a header) inside the request itself.

    An exception other than `ToolError` is a bug in the adapter; it propagates unchanged and
    the step runner records it as a raised exception.

    Raises:
        ToolError: the call failed (see the subclasses for each ``code``).
        ToolAdapterContractError: the adapter returned something other than a `ToolResult`.
    """
    try:
        result: object = adapter.invoke(request)
    except ToolError as error:
        logger.debug(
            "tool call failed adapter=%s code=%s retryable=%s",
            adapter.name,
            error.code,
            error.retryable,
            extra={"adapter": adapter.name, "code": error.code},
        )
        raise
    if not isinstance(result, ToolResult):
        raise ToolAdapterContractError(
            f"adapter {adapter.name!r} returned {type(result).__name__}, not ToolResult",
            adapter=adapter.name,
        )
    logger.debug(
        "tool call succeeded adapter=%s status=%s duration_ms=%d",
        adapter.name,
        result.status,
        result.duration // timedelta(milliseconds=1),
        extra={"adapter": adapter.name},
    )
    return result
