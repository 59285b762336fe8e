"""Crypto-shredding: an erasable run's personal fields are stored encrypted under its own key.

The mapper calls `Sealer.seal` on every event and snapshot it stores and `Sealer.open` on
every one it reads. Only the fields `PERSONAL_EVENT_FIELDS` names are touched, and only for
runs started from an ``erasable`` workflow: each such value is replaced by
``{"__sealed__": <base64 of nonce + AES-256-GCM ciphertext>}`` (plus ``"keys"``, the top-level
keys of a mapping), bound to the run id. Reading it back needs the run's data key
(`DataKeys`); once ``forget_run`` destroyed the key the value reads as erased
(`squidmesh_es.redaction.erased`), in every copy of the journal and every backup of it.

Runs that are not erasable cost one set lookup per stored event, and one scan of a few
fields per loaded event; no key is looked up for them.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from uuid import UUID

from eventsourcing.persistence import Transcoder

from squidmesh_es.domain import WorkflowRun
from squidmesh_es.domain._personal import PERSONAL_EVENT_FIELDS, map_paths
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.redaction import erased
from squidmesh_es.runtime._data_keys import DataKeys

__all__ = ["SEALED", "Sealer"]

SEALED: Final = "__sealed__"
"""The key that marks a sealed value in the stored form."""

_SEALED_BYTES: Final = SEALED.encode()
_CACHED_KEYS = 4096
_NONCE_BYTES = 12
_FORGOTTEN_TOPIC = WorkflowRun.RunDataForgotten.TOPIC
_STARTED_TOPIC = WorkflowRun.RunStarted.TOPIC
_SNAPSHOT_TOPIC = WorkflowRun.Snapshot.TOPIC


class _Saving(threading.local):
    """The erasable runs the current thread is saving (see `Sealer.sealing`)."""

    runs: frozenset[UUID] = frozenset()


class Sealer:
    """Seals and opens the personal fields of erasable runs, with their keys cached."""

    def __init__(self, keys: DataKeys, transcoder: Transcoder) -> None:
        self.keys = keys
        self.transcoder = transcoder
        self._cache: OrderedDict[UUID, bytes | None] = OrderedDict()
        self._lock = threading.Lock()
        self._local = _Saving()

    @contextmanager
    def sealing(self, run_ids: set[UUID]) -> Iterator[None]:
        """While the block runs, this thread's stored events of ``run_ids`` are sealed.

        ``SquidMesh.save`` wraps each save with the erasable runs among its aggregates.
        """
        previous = self._local.runs
        self._local.runs = previous | run_ids
        try:
            yield
        finally:
            self._local.runs = previous

    def prepare(self, run_id: UUID) -> None:
        """Make sure the run has a key before its first event is stored.

        Raises:
            InvalidArgument: the ``cryptography`` package is not installed.
        """
        _aesgcm()  # refuse before anything is written, not while encoding
        with self._lock:
            if self._cache.get(run_id) is not None:
                return
        self._remember(run_id, self.keys.create(run_id))

    def forget(self, run_id: UUID) -> None:
        """Drop the run's key from this process's cache (after it was destroyed)."""
        with self._lock:
            self._cache[run_id] = None

    def seal(self, event: Any) -> Any:
        """``event`` with its personal fields sealed, if its run is erasable; else itself."""
        topic = getattr(type(event), "TOPIC", "")
        paths = PERSONAL_EVENT_FIELDS.get(topic)
        if paths is None or not self._is_erasable(topic, event):
            return event
        run_id: UUID = event.originator_id
        # A forgotten run's late writes (a worker finishing) are sealed under a key nobody has.
        key = self._key(run_id) or os.urandom(32)
        state = map_paths(dict(vars(event)), paths, lambda value: self._encrypt(key, run_id, value))
        sealed = object.__new__(type(event))
        object.__setattr__(sealed, "__dict__", state)
        return sealed

    def open(self, topic: str, event: Any, stored: bytes | None = None) -> None:
        """Decrypt ``event``'s sealed fields in place; erased where the key is gone.

        ``stored``, the event's stored state when it is plain JSON, lets an event with
        nothing sealed (every event of a run that is not erasable) skip the field walk.
        """
        if topic == _FORGOTTEN_TOPIC:
            self.forget(event.originator_id)
            return
        paths = PERSONAL_EVENT_FIELDS.get(topic)
        if paths is None or (stored is not None and _SEALED_BYTES not in stored):
            return
        state = vars(event)
        run_id: UUID = event.originator_id
        opened = map_paths(state, paths, lambda value: self._decrypt(run_id, value))
        if opened is not state:
            state.update(opened)

    # -- internals ------------------------------------------------------------------------

    def _is_erasable(self, topic: str, event: Any) -> bool:
        if event.originator_id in self._local.runs:
            return True
        # Creation events and snapshots say so themselves (a host may store those directly).
        if topic == _SNAPSHOT_TOPIC:
            return bool(event.state.get("erasable"))
        return topic == _STARTED_TOPIC and bool(getattr(event, "erasable", False))

    def _key(self, run_id: UUID) -> bytes | None:
        with self._lock:
            if run_id in self._cache:
                self._cache.move_to_end(run_id)
                return self._cache[run_id]
        key = self.keys.get(run_id)
        self._remember(run_id, key)
        return key

    def _remember(self, run_id: UUID, key: bytes | None) -> None:
        with self._lock:
            self._cache[run_id] = key
            self._cache.move_to_end(run_id)
            while len(self._cache) > _CACHED_KEYS:
                self._cache.popitem(last=False)

    def _encrypt(self, key: bytes, run_id: UUID, value: Any) -> dict[str, Any]:
        nonce = os.urandom(_NONCE_BYTES)
        plain = self.transcoder.encode({"v": value})
        token = _aesgcm()(key).encrypt(nonce, plain, run_id.bytes)
        sealed: dict[str, Any] = {SEALED: base64.b64encode(nonce + token).decode("ascii")}
        if isinstance(value, dict):
            sealed["keys"] = list(value)
        return sealed

    def _decrypt(self, run_id: UUID, value: Any) -> Any:
        if not isinstance(value, dict) or SEALED not in value:
            return value
        shape = dict.fromkeys(value.get("keys") or ()) if "keys" in value else None
        key = self._key(run_id)
        if key is None:
            return erased(shape)
        raw = base64.b64decode(value[SEALED])
        try:
            plain = _aesgcm()(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], run_id.bytes)
        except Exception:  # noqa: BLE001 - sealed under a key that was destroyed meanwhile
            return erased(shape)
        return self.transcoder.decode(plain)["v"]


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - the crypto extra is part of dev
        raise InvalidArgument(
            "erasable", "erasable runs need the cryptography package: squidmesh-es[crypto]"
        ) from None
    return AESGCM
