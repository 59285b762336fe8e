"""Who may press a control: off by default, then a bearer token or the host's own check.

Every control is a form POST that must carry the CSRF token set in a ``SameSite=Strict``
cookie by the page that showed the form (the double-submit pattern), and, when the request
says where it comes from, an ``Origin`` of this very host. The operator's token may come
in the form (people) or as ``Authorization: Bearer`` (scripts); it is compared in constant
time and never echoed back.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ["CSRF_COOKIE", "Authorize", "ControlAccess", "Refused", "csrf_token"]

CSRF_COOKIE = "squidmesh_csrf"
"""Cookie holding the CSRF token; the control forms repeat it in a hidden field."""

Authorize = Callable[[Request], bool]
"""The host's own check: ``True`` when the request's user may operate runs."""


class Refused(Exception):
    """A control request the dashboard will not run: HTTP ``status`` with a stable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ControlAccess:
    """How controls are allowed: not at all (the default), by token, or by the host's check."""

    token: str | None = None
    authorize: Authorize | None = None

    @property
    def enabled(self) -> bool:
        """Whether the run page offers controls at all."""
        return self.token is not None or self.authorize is not None

    @property
    def asks_for_token(self) -> bool:
        """Whether the control forms need the operator's token."""
        return self.token is not None and self.authorize is None

    def check(self, request: Request, form_token: str | None, form_csrf: str | None) -> None:
        """Let the request through, or raise `Refused`.

        Raises:
            Refused: controls are off (403 ``controls_disabled``), the CSRF token or origin
                is wrong (403 ``csrf_failed``), or the caller is not allowed (401
                ``unauthorized``).
        """
        if not self.enabled:
            raise Refused(403, "controls_disabled", "this dashboard is read-only")
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not form_csrf or not hmac.compare_digest(cookie, form_csrf):
            raise Refused(403, "csrf_failed", "the form's CSRF token does not match; reload")
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise Refused(403, "csrf_failed", "the request comes from another site")
        if self.authorize is not None:
            if not self.authorize(request):
                raise Refused(401, "unauthorized", "the host's check refused this request")
            return
        assert self.token is not None
        given = form_token or _bearer(request)
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise Refused(401, "unauthorized", "the operator token is missing or wrong")


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token and whether it is new (then the response must set it)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing:
        return existing, False
    return secrets.token_urlsafe(32), True
