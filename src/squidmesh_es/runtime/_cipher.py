"""Encryption at rest: the library's AES-GCM cipher and zlib compressor, and the key check.

Every stored event and snapshot is compressed, then encrypted, by the library's own mapper
(``eventsourcing.cryptography:AESCipher``); we only build its settings and refuse, at open,
a key that cannot read the journal, so a wrong key never decodes into garbage later.
"""

from __future__ import annotations

import binascii
import importlib.util
from base64 import b64decode
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.errors import CipherKeyMismatch, InvalidArgument

if TYPE_CHECKING:
    from eventsourcing.persistence import Mapper, Recorder

__all__ = ["check_cipher_key", "cipher_env", "create_cipher_key"]

CIPHER_TOPIC = "eventsourcing.cryptography:AESCipher"
COMPRESSOR_TOPIC = "eventsourcing.compressor:ZlibCompressor"
_KEY_SIZES = (16, 24, 32)


def create_cipher_key() -> str:
    """A new random 256-bit key, base64-encoded: the form ``cipher_key`` takes.

    Raises:
        InvalidArgument: the ``cryptography`` package is not installed.
    """
    _require_cryptography()
    from eventsourcing.cryptography import AESCipher

    return AESCipher.create_key(32)


def cipher_env(cipher_key: str | None) -> dict[str, str]:
    """The library settings that encrypt and compress every event and snapshot.

    Empty without a key. The key is checked here, so a malformed one fails at open; the
    message never repeats it.

    Raises:
        InvalidArgument: the key is not 16, 24 or 32 bytes in base64, or the
            ``cryptography`` package is missing.
    """
    if cipher_key is None:
        return {}
    try:
        size = len(b64decode(cipher_key.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        size = 0
    if size not in _KEY_SIZES:
        raise InvalidArgument(
            "cipher_key", "must be 16, 24 or 32 random bytes, base64-encoded (create_cipher_key)"
        )
    _require_cryptography()
    return {
        "CIPHER_TOPIC": CIPHER_TOPIC,
        "CIPHER_KEY": cipher_key,
        "COMPRESSOR_TOPIC": COMPRESSOR_TOPIC,
    }


def check_cipher_key(recorder: Recorder, mapper: Mapper[UUID], *, key_given: bool) -> None:
    """Decode the journal's first stored event with ``mapper``'s cipher and compressor.

    One event suffices: every event of a journal is written with the same settings. An
    empty journal passes; its first event will be written with the key given.

    Raises:
        CipherKeyMismatch: the event cannot be decrypted (wrong key, or a journal written
            in clear opened with a key) or, without a key, is not readable as clear JSON.
    """
    first = recorder.select_notifications(start=None, limit=1)  # type: ignore[attr-defined]
    if not first:
        return
    state: bytes = first[0].state
    try:
        if mapper.cipher is not None:
            state = mapper.cipher.decrypt(state)
        if mapper.compressor is not None:
            state = mapper.compressor.decompress(state)
        mapper.transcoder.decode(state)
    except Exception:  # noqa: BLE001 - any failure here means the key does not fit
        raise CipherKeyMismatch(key_given=key_given) from None


def _require_cryptography() -> None:
    if importlib.util.find_spec("cryptography") is None:
        raise InvalidArgument(
            "cipher_key", "encryption needs the cryptography package: squidmesh-es[crypto]"
        )
