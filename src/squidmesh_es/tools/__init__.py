"""Tools: calls from steps to external systems, one attempt each, results and errors normalized.

This package does I/O, so the pure layers (`workflow`, `domain`, `read_model`) never import
it; it builds only on `squidmesh_es.errors` and `squidmesh_es.workflow` types. Adapters never
retry: a step returns ``Retry(error.to_reason(), delay=error.retry_after)`` for a retryable
`ToolError` and the workflow's retry policy decides (see ``docs/tools.md``).
"""

from squidmesh_es.tools._adapter import Adapter, ToolResult, invoke
from squidmesh_es.tools._errors import (
    ToolAdapterContractError,
    ToolConnectionError,
    ToolError,
    ToolHTTPStatusError,
    ToolInvalidRequest,
    ToolInvalidResponse,
    ToolTimeout,
)
from squidmesh_es.tools._http import (
    RETRYABLE_STATUSES,
    HTTPAdapter,
    HTTPRequest,
    parse_retry_after,
)
from squidmesh_es.tools._redaction import REDACTED, redact_headers, redact_url

__all__ = [
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
