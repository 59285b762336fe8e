"""The one redaction policy: which keys and value shapes are secrets, and what replaces them.

Every place that redacts uses it: command metadata and payloads, dynamic work and attempt
metadata, step errors and reasons, tool results and errors, the ``external`` and
``operator`` read-model scopes, projection error messages, and the CLI's error lines and
log records (docs/operations.md, "Security", lists what is not redacted). Like ``errors``,
it imports nothing from the package, so every layer may use it.

Keys match case-insensitively, with ``-``, ``_``, ``.`` and spaces ignored, by substring: a
key containing ``token`` anywhere (``X-Auth-Token``, ``refresh_token``, ``tokenValue``) is
sensitive. The match is broad on purpose: a value hidden needlessly costs a little
debugging, a value leaked costs a credential and stays in every backup of the journal.
Strings anywhere are also scanned for well-known secret shapes (``Bearer ...``, ``key=value``
pairs whose key is sensitive, JWTs, common API-key prefixes, private key blocks, passwords
in URLs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

__all__ = [
    "DEFAULT_POLICY",
    "ERASED",
    "EXACT_KEYS",
    "KEY_PARTS",
    "REDACTED",
    "SECRET_PATTERNS",
    "RedactingFilter",
    "RedactionPolicy",
    "erased",
    "is_sensitive_key",
    "redact_json",
    "redact_text",
]

REDACTED = "[REDACTED]"
"""What every redacted value is replaced with, everywhere."""

ERASED = "[ERASED]"
"""What a value of a forgotten run reads as (``SquidMesh.forget_run``), everywhere."""

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]
"""The same alias as ``squidmesh_es.workflow.JSONValue``, restated: this module imports
nothing from the package."""

J = TypeVar("J", bound=JSONValue)

KEY_PARTS = frozenset(
    {
        "apikey",
        "accesskey",
        "auth",
        "bearer",
        "cookie",
        "credential",
        "jwt",
        "passphrase",
        "passwd",
        "password",
        "privatekey",
        "secret",
        "session",
        "signature",
        "token",
    }
)
"""Normalised parts (lowercase, no ``-``, ``_``, ``.`` or space) that make a key sensitive
wherever they occur in it: ``auth`` covers ``authorization`` and ``oauth``, ``cookie``
covers ``set-cookie``, ``apikey`` covers ``x-api-key`` and ``stripe_api_key``."""

EXACT_KEYS = frozenset({"key", "sig", "pwd", "pass", "otp", "pin"})
"""Normalised keys sensitive only as a whole: as parts they would match too many words."""

SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # PEM private keys, whole.
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
    ),
    # JSON Web Tokens: base64url header and claims, both starting with '{"'.
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    # Provider key prefixes: Stripe, OpenAI/Anthropic, GitHub, GitLab, Slack, AWS, Google.
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{16,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
)
"""Value shapes replaced wherever they occur in a string, whatever key holds it."""

# "Bearer xyz", "Basic xyz": the scheme stays readable, the credential goes.
_SCHEME = re.compile(r"\b([Bb]earer|BEARER|Basic|Digest)(\s+)([A-Za-z0-9._~+/=:-]{6,})")
# "scheme://user:password@host": the password goes, the user and host stay.
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*+://[^\s:/@]*+:)([^\s@/]++)(@)")
# "key=value", "key: value", '"key": "value"': the value goes when the key is sensitive. Keys
# start where no key character precedes them, and values are read only after a sensitive
# key, so a long string costs linear time.
_KEY = re.compile(r"""(?<![A-Za-z0-9_.-])(["']?)([A-Za-z][A-Za-z0-9_.-]*+)\1\s*+[=:]\s*+""")
_VALUE = re.compile(r"""\[REDACTED\]|"[^"]*+"|'[^']*+'|[^\s,;&'"}\])]++""")
_SCHEMES = ("bearer", "basic", "digest")


_IGNORED_IN_KEYS = re.compile(r"[-_.\s]")

_CACHE_LIMIT = 4096
"""Most answers a policy remembers of each kind; past it, it forgets them all and starts over."""
_CACHED_LENGTH = 64
"""Longest key or text whose answer a policy remembers: names, not messages with ids in them."""
_PLAIN = frozenset({int, float, bool})
"""Leaf types `RedactionPolicy.redact_json` keeps as they are."""


def _normalise(key: object) -> str:
    return _IGNORED_IN_KEYS.sub("", str(key).lower())


@dataclass(frozen=True)
class RedactionPolicy:
    """Which keys and value shapes are secrets. ``DEFAULT_POLICY`` is the built-in one.

    A host widens it with ``extend`` (more key parts, exact keys, patterns) and narrows it by
    allow-listing whole keys that look sensitive but are not (``author``, ``max_tokens``).
    """

    key_parts: frozenset[str] = KEY_PARTS
    """Normalised substrings that make a key sensitive."""
    exact_keys: frozenset[str] = EXACT_KEYS
    """Normalised keys sensitive only as a whole."""
    patterns: tuple[re.Pattern[str], ...] = SECRET_PATTERNS
    """Value shapes replaced inside any string."""
    allowed_keys: frozenset[str] = field(default_factory=lambda: frozenset({"author"}))
    """Normalised keys never treated as sensitive. ``author`` by default (it contains
    ``auth``)."""

    def __post_init__(self) -> None:
        # Both answers depend only on the (frozen) policy and their argument, and the same
        # few keys and names (workflow, step, trigger) come back on every start and step.
        # Only texts that come out unchanged are remembered: never a secret.
        object.__setattr__(self, "_sensitive_keys", {})
        object.__setattr__(self, "_clean_texts", set())

    def extend(
        self,
        *,
        key_parts: Iterable[str] = (),
        exact_keys: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        allow: Iterable[str] = (),
    ) -> RedactionPolicy:
        """A copy of this policy with more sensitive keys and patterns, or allow-listed keys.

        Keys are normalised the way they are matched, so ``"X-Tenant-Key"`` and
        ``"x_tenant_key"`` name the same key.
        """
        return replace(
            self,
            key_parts=self.key_parts | {_normalise(k) for k in key_parts},
            exact_keys=self.exact_keys | {_normalise(k) for k in exact_keys},
            patterns=self.patterns + tuple(re.compile(p) for p in patterns),
            allowed_keys=self.allowed_keys | {_normalise(k) for k in allow},
        )

    def is_sensitive(self, key: object) -> bool:
        """Whether a value stored under ``key`` (a map key, header or parameter name) is secret."""
        if type(key) is not str or len(key) > _CACHED_LENGTH:
            return self._is_sensitive(key)
        known: dict[str, bool] = self.__dict__["_sensitive_keys"]
        answer = known.get(key)
        if answer is None:
            answer = self._is_sensitive(key)
            if len(known) >= _CACHE_LIMIT:
                known.clear()
            known[key] = answer
        return answer

    def _is_sensitive(self, key: object) -> bool:
        normalised = _normalise(key)
        if normalised in self.allowed_keys:
            return False
        return normalised in self.exact_keys or any(p in normalised for p in self.key_parts)

    def redact_text(self, text: str) -> str:
        """``text`` with every secret shape and every sensitive ``key=value`` value replaced."""
        if type(text) is not str or len(text) > _CACHED_LENGTH:
            return self._redact_text(text)
        clean: set[str] = self.__dict__["_clean_texts"]
        if text in clean:
            return text
        redacted = self._redact_text(text)
        if redacted == text:
            if len(clean) >= _CACHE_LIMIT:
                clean.clear()
            clean.add(text)
        return redacted

    def _redact_text(self, text: str) -> str:
        for pattern in self.patterns:
            text = pattern.sub(REDACTED, text)
        text = _SCHEME.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
        text = _USERINFO.sub(lambda m: f"{m[1]}{REDACTED}{m[3]}", text)
        return self._redact_pairs(text)

    def _redact_pairs(self, text: str) -> str:
        pieces: list[str] = []
        done = 0
        for key in _KEY.finditer(text):
            if key.start() < done or not self.is_sensitive(key[2]):
                continue
            value = _VALUE.match(text, key.end())
            if value is None or value[0] == REDACTED or value[0].lower() in _SCHEMES:
                continue
            quote = value[0][0] if value[0][0] in ("'", '"') else ""
            pieces += [text[done : value.start()], f"{quote}{REDACTED}{quote}"]
            done = value.end()
        return "".join(pieces) + text[done:]

    def redact_json(self, value: J) -> J:
        """A copy of ``value`` with secrets replaced, through nested maps and lists.

        A value under a sensitive key becomes ``REDACTED`` whole (a nested map or list too);
        ``None`` stays ``None``, since there is nothing to hide. Other strings are scanned
        with ``redact_text``. The result has the shape of ``value``: a map stays a map, a
        list a list; only leaves change, and they become strings.
        """
        return self._redact(value)  # type: ignore[return-value]

    def _redact(self, value: object) -> object:
        if type(value) is str:
            return self.redact_text(value)
        if value is None or type(value) in _PLAIN:
            return value  # neither a map, a list nor a string: no ABC check needed
        if isinstance(value, dict) or isinstance(value, Mapping):  # dict: no ABC call
            return {
                str(k): (REDACTED if v is not None else None)
                if self.is_sensitive(k)
                else self._redact(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):  # a tuple: faster than a union
            return [self._redact(v) for v in value]
        if isinstance(value, str):
            return self.redact_text(value)
        return value


DEFAULT_POLICY = RedactionPolicy()
"""The built-in policy, used wherever no host policy is given."""


def is_sensitive_key(key: object) -> bool:
    """``DEFAULT_POLICY.is_sensitive(key)``."""
    return DEFAULT_POLICY.is_sensitive(key)


def redact_text(text: str) -> str:
    """``DEFAULT_POLICY.redact_text(text)``."""
    return DEFAULT_POLICY.redact_text(text)


def redact_json(value: J) -> J:
    """``DEFAULT_POLICY.redact_json(value)``."""
    return DEFAULT_POLICY.redact_json(value)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message before any handler formats it.

    The library's own log lines carry ids only; this guards what a host or a third-party
    library logs through the same handlers (a driver echoing a connection string, say).
    """

    def __init__(self, policy: RedactionPolicy = DEFAULT_POLICY) -> None:
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message with its redacted text; never drops a record."""
        record.msg = self.policy.redact_text(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = self.policy.redact_text(
                logging.Formatter().formatException(record.exc_info)
            )
        return True


def erased(value: object) -> object:
    """``value`` as a forgotten run shows it: each entry of a mapping, or the whole, `ERASED`.

    A mapping keeps its top-level keys, so an erased payload still says which fields it had.
    """
    if isinstance(value, Mapping):
        return dict.fromkeys(value, ERASED)
    return ERASED
