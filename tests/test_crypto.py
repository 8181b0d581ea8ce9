"""SecretBox: AES-256-GCM sealing bound to its owner, and where its key comes from."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from everloop.config import Settings
from everloop.crypto import SecretBox, load_key
from everloop.errors import EverloopError, InvalidInput


def test_seal_and_open() -> None:
    box = SecretBox.from_key(os.urandom(32))
    token = box.seal("sk-123", "org/provider")
    assert "sk-123" not in token
    assert token != box.seal("sk-123", "org/provider")  # fresh nonce each time
    assert box.open(token, "org/provider") == "sk-123"


@pytest.mark.parametrize("aad", ["org/other", "other/provider", ""])
def test_another_owner_cannot_open(aad: str) -> None:
    box = SecretBox.from_key(os.urandom(32))
    with pytest.raises(EverloopError, match="cannot be decrypted"):
        box.open(box.seal("sk-123", "org/provider"), aad)


def test_another_key_cannot_open() -> None:
    token = SecretBox.from_key(os.urandom(32)).seal("sk", "a")
    with pytest.raises(EverloopError):
        SecretBox.from_key(os.urandom(32)).open(token, "a")


def test_key_file_is_created_once_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = load_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(settings) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]


def test_key_from_settings_wins(tmp_path: Path) -> None:
    key = os.urandom(32)
    settings = Settings(data_dir=tmp_path, secret_key=base64.b64encode(key).decode())
    assert load_key(settings) == key
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_secret_key_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="EVERLOOP_SECRET_KEY"):
        Settings(secret_key=value)


def test_postgres_without_data_dir_needs_the_setting(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "absent", database_url="postgresql+psycopg://u@127.0.0.1/db"
    )
    box = SecretBox.from_settings(settings)  # building it needs no key
    with pytest.raises(InvalidInput, match="EVERLOOP_SECRET_KEY"):
        box.seal("sk", "a")
