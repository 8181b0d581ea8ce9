"""Encryption of secrets at rest (provider API keys): AES-256-GCM from ``cryptography``.

A sealed value is ``v1.<base64url(nonce || ciphertext+tag)>``. The associated data binds it to
its owner (``"<org_id>/<provider_id>"``): a ciphertext copied onto another row does not open.

The key comes from ``EVERLOOP_SECRET_KEY`` or, failing that, from ``<data-dir>/secret.key``,
generated on first use with mode 0600. It is loaded lazily so a PostgreSQL deployment without a
data dir needs ``EVERLOOP_SECRET_KEY`` only once it has a secret to store.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from everloop.config import Settings
from everloop.errors import EverloopError, InvalidInput

_VERSION = "v1."
_NONCE_BYTES = 12
KEY_FILE = "secret.key"


class SecretBox:
    """Seals and opens short secrets with one AES-256-GCM key."""

    def __init__(self, key_source: Callable[[], bytes]) -> None:
        self._key_source = key_source
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_key(cls, key: bytes) -> SecretBox:
        if len(key) != 32:
            raise ValueError("an AES-256 key is 32 bytes")
        return cls(lambda: key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(lambda: load_key(settings))

    def seal(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, plaintext.encode(), aad.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, aad: str) -> str:
        if not token.startswith(_VERSION):
            raise EverloopError("a stored secret has an unknown format", code="secret_unreadable")
        try:
            raw = base64.urlsafe_b64decode(token[len(_VERSION) :])
            plain = self._cipher().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad.encode())
        except (binascii.Error, InvalidTag, ValueError) as exc:
            # A different key (EVERLOOP_SECRET_KEY changed, secret.key lost) or a moved value.
            raise EverloopError(
                "a stored secret cannot be decrypted with the current secret key",
                code="secret_unreadable",
            ) from exc
        return plain.decode()

    def _cipher(self) -> AESGCM:
        with self._lock:
            if self._aead is None:
                self._aead = AESGCM(self._key_source())
            return self._aead


def load_key(settings: Settings) -> bytes:
    """The key from settings, else from the data dir's key file (created when missing)."""
    if settings.secret_key is not None:
        return base64.b64decode(settings.secret_key.get_secret_value())
    data_dir = settings.data_dir
    if settings.is_postgres and not data_dir.is_dir():
        raise InvalidInput(
            "storing a secret needs EVERLOOP_SECRET_KEY (base64 of 32 bytes) when the database "
            "is PostgreSQL and there is no data dir",
            code="secret_key_missing",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    return _read_or_create(data_dir / KEY_FILE)


def _read_or_create(path: Path) -> bytes:
    if not path.exists():
        # Write a private temp file, then link it into place: the link fails if another process
        # won the race, and nobody ever reads a half-written key.
        key = AESGCM.generate_key(bit_length=256)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(key).decode("ascii") + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = base64.b64decode(path.read_text().strip())
    if len(key) != 32:
        raise EverloopError(f"{path} does not hold a 32-byte key", code="secret_key_invalid")
    return key
