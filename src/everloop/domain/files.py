"""A session's file system entries, and the rules for their paths.

Paths are stored normalized and absolute, relative to the workspace root: the agent's
``/workspace/notes/a.md`` is stored as ``/notes/a.md``; ``notes/a.md`` and ``/notes/a.md`` name
the same file. The root ``/`` is an implicit directory and has no row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from everloop.errors import MalformedInput

WORKSPACE_ROOT = "/workspace"
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file or directory of a workspace; ``content`` is ``None`` for directories and for
    listings that did not load it."""

    id: str
    workspace_id: str
    path: str
    is_directory: bool
    is_readonly: bool
    size_bytes: int
    content_hash: str | None
    created_at: str
    updated_at: str
    content: bytes | None = None
    # The session whose tool last wrote it (None: written through the API).
    updated_by_session_id: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def normalize_path(raw: str, *, field: str = "path") -> str:
    """``raw`` as a stored path, or ``MalformedInput`` for NUL, backslashes, control characters,
    ``..`` segments and over-long paths. ``/workspace`` and ``/workspace/x`` map to ``/`` and
    ``/x``; empty and ``.`` segments are dropped."""
    if "\x00" in raw:
        raise MalformedInput(
            "a path cannot contain a NUL character", code="invalid_path", field=field
        )
    if "\\" in raw:
        raise MalformedInput("a path cannot contain a backslash", code="invalid_path", field=field)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise MalformedInput(
            "a path cannot contain control characters", code="invalid_path", field=field
        )
    path = raw if raw.startswith("/") else "/" + raw
    if path == WORKSPACE_ROOT or path.startswith(WORKSPACE_ROOT + "/"):
        path = path[len(WORKSPACE_ROOT) :]
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise MalformedInput(
            f"path '{raw}' leaves /workspace ('..' is not allowed)",
            code="invalid_path",
            field=field,
        )
    if any(len(s) > MAX_NAME_CHARS for s in segments):
        raise MalformedInput(
            f"a path segment is over {MAX_NAME_CHARS} characters", code="invalid_path", field=field
        )
    if segments and segments[0] == "_":
        raise MalformedInput(
            "the top-level name '_' is reserved (API actions)", code="invalid_path", field=field
        )
    normalized = "/" + "/".join(segments)
    if len(normalized) > MAX_PATH_CHARS:
        raise MalformedInput(
            f"a path is over {MAX_PATH_CHARS} characters", code="invalid_path", field=field
        )
    return normalized


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def ancestors(path: str) -> list[str]:
    """The directories above ``path``, outermost first, without the root."""
    segments = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(segments[: i + 1]) for i in range(len(segments))]


def content_hash(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def is_binary(content: bytes) -> bool:
    """Binary when a NUL byte is in the first 8 KiB, or when it is not valid UTF-8."""
    if b"\x00" in content[:8192]:
        return True
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
