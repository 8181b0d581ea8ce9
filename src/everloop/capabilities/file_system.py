"""Capability ``file_system``: the session's workspace under ``/workspace``, in the database.

A session's files are its workspace's (``store.workspaces``): its own automatic one, or a
shared one several sessions use. Every tool is transactional (database only): it runs inside
the runner's step transaction, so a file write commits together with its ``tool.completed``
event, exactly once. A write records the writing session on the entry
(``updated_by_session_id``) and in its result (``session_id``), so in a shared workspace the
event log tells which session wrote what. ``edit_file`` is a compare-and-set on the file's
``content_hash``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError, object_schema
from everloop.capabilities.memory import resolve_memory_path
from everloop.capabilities.memory_mount import MountedMemory, mounted_name
from everloop.domain.files import StoredFile, normalize_path
from everloop.domain.messages import JsonObject, JsonValue
from everloop.errors import EverloopError
from everloop.store import workspaces as workspace_store
from everloop.store.memory_files import MemoryLimits
from everloop.store.workspace_files import (
    FileLimits,
    HashMismatch,
    Workspace,
    decode_content,
    encode_content,
)

DEFAULT_READ_LINES = 2000
MAX_READ_CHARS = 256 * 1024
MAX_LISTED = 1000

_PATH: JsonObject = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1100,
    "description": "Path under /workspace: '/workspace/notes.md', '/notes.md' and 'notes.md' "
    "name the same file.",
}


def _info(entry: StoredFile) -> JsonObject:
    return {
        "path": entry.path,
        "name": entry.name,
        "is_directory": entry.is_directory,
        "is_readonly": entry.is_readonly,
        "size_bytes": entry.size_bytes,
    }


@dataclass(frozen=True, slots=True)
class _FileTool:
    """Shared plumbing: a ``Workspace`` on the step's connection; our errors become tool
    errors the model reads."""

    limits: FileLimits = field(repr=False)
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL
    writes: ClassVar[bool] = False  # a write's result names the session that wrote

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError("the file system is only available inside a turn")
        try:
            workspace = await self._area(arguments, context)
            result = await self.run(workspace, arguments)
        except HashMismatch as exc:
            raise ToolError(f"{exc.message} (current content_hash: {exc.current_hash})") from None
        except EverloopError as exc:
            raise ToolError(exc.message) from None
        if self.writes and isinstance(result, dict):
            result["session_id"] = context.session_id
        return result

    async def _area(self, arguments: JsonObject, context: ToolContext) -> Workspace:
        """The session's workspace, or the memory a ``/memory/<name>/`` path names (the
        memories its ``memory`` capability uses, read-only where mounted so)."""
        assert context.connection is not None
        path = arguments.get("path")
        if isinstance(path, str) and mounted_name(path) is not None:
            limits = MemoryLimits(self.limits.file_max_bytes, self.limits.workspace_max_bytes)
            found = await resolve_memory_path(context.connection, context, path, limits)
            assert found is not None
            files, _inner = found
            name = mounted_name(path) or ""
            # The tools use only the part of Workspace MountedMemory answers (see its module).
            return cast(Workspace, MountedMemory(files, name, readonly=files.readonly))
        workspace_id = await workspace_store.of_session(context.connection, context.session_id)
        if workspace_id is None:
            raise ToolError("this session has no workspace")
        if self.writes and await workspace_store.is_archived(context.connection, workspace_id):
            raise ToolError(
                f"workspace {workspace_id} is archived: its files can be read, not changed "
                "(restoring it with PATCH /v1/workspaces/{id} status active allows writes)"
            )
        return Workspace(
            context.connection, workspace_id, self.limits, writer_session_id=context.session_id
        )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ReadFile(_FileTool):
    name: str = "read_file"
    description: str = (
        "Read a file. Text comes back as lines from `offset` (1-based line number, default 1), "
        f"at most `limit` lines (default {DEFAULT_READ_LINES}); binary files as base64. The "
        "result's content_hash is what edit_file's expected_hash compares against."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "path": _PATH,
                "offset": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100000},
            },
            ["path"],
        )
    )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        entry = await workspace.read(arguments["path"])
        assert entry.content is not None
        text, encoding = encode_content(entry.content)
        result: JsonObject = {
            "path": entry.path,
            "encoding": encoding,
            "size_bytes": entry.size_bytes,
            "content_hash": entry.content_hash,
        }
        if encoding == "base64":
            truncated = len(text) > MAX_READ_CHARS
            return {**result, "content": text[:MAX_READ_CHARS], "truncated": truncated}
        lines = text.splitlines(keepends=True)
        offset = int(arguments.get("offset", 1))
        limit = int(arguments.get("limit", DEFAULT_READ_LINES))
        chosen = "".join(lines[offset - 1 : offset - 1 + limit])
        truncated = len(chosen) > MAX_READ_CHARS or offset - 1 + limit < len(lines)
        return {
            **result,
            "content": chosen[:MAX_READ_CHARS],
            "offset": offset,
            "total_lines": len(lines),
            "truncated": truncated,
        }


@dataclass(frozen=True, slots=True)
class WriteFile(_FileTool):
    name: str = "write_file"
    writes: ClassVar[bool] = True
    description: str = (
        "Create or overwrite a file (parent directories are created). `encoding` is 'text' "
        "(default) or 'base64' for binary content. With `expected_hash` (from read_file) it "
        "overwrites only while the file is unchanged (the workspace may be shared)."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "path": _PATH,
                "content": {"type": "string"},
                "encoding": {"type": "string", "enum": ["text", "base64"]},
                "expected_hash": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            },
            ["path", "content"],
        )
    )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        content = decode_content(arguments["content"], arguments.get("encoding", "text"))
        entry, created = await workspace.write(
            arguments["path"], content, expected_hash=arguments.get("expected_hash")
        )
        return {
            "path": entry.path,
            "size_bytes": entry.size_bytes,
            "content_hash": entry.content_hash,
            "created": created,
        }


@dataclass(frozen=True, slots=True)
class EditFile(_FileTool):
    name: str = "edit_file"
    writes: ClassVar[bool] = True
    description: str = (
        "Edit a text file: replace `old_string` (which must occur exactly once) with "
        "`new_string`; or replace the whole file with `content`, only if its hash is still "
        "`expected_hash` (from read_file). `expected_hash` also guards a string replacement."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "path": _PATH,
                "old_string": {"type": "string", "minLength": 1},
                "new_string": {"type": "string"},
                "content": {"type": "string"},
                "expected_hash": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            },
            ["path"],
        )
    )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        content = arguments.get("content")
        entry = await workspace.edit(
            arguments["path"],
            old_string=arguments.get("old_string"),
            new_string=arguments.get("new_string"),
            content=None if content is None else content.encode("utf-8"),
            expected_hash=arguments.get("expected_hash"),
        )
        return {
            "path": entry.path,
            "size_bytes": entry.size_bytes,
            "content_hash": entry.content_hash,
        }


@dataclass(frozen=True, slots=True)
class ListDirectory(_FileTool):
    name: str = "list_directory"
    description: str = "List a directory (default the workspace root), optionally recursively."
    parameters: JsonObject = field(
        default_factory=lambda: object_schema({"path": _PATH, "recursive": {"type": "boolean"}}, [])
    )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        entries = await workspace.listing(
            arguments.get("path", "/"), recursive=bool(arguments.get("recursive", False))
        )
        return {
            "entries": [_info(e) for e in entries[:MAX_LISTED]],
            "truncated": len(entries) > MAX_LISTED,
        }


@dataclass(frozen=True, slots=True)
class Grep(_FileTool):
    name: str = "grep"
    description: str = (
        "Search the lines of text files for a regular expression (RE2 syntax: no "
        "backreferences or lookarounds; '(?i)' ignores case); `path_pattern` is a glob on the "
        "path or the file name, e.g. '*.md' or '/docs/*'."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {
                "pattern": {"type": "string", "minLength": 1},
                "path_pattern": {"type": "string"},
                "path": _PATH,
            },
            ["pattern"],
        )
    )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        matches, truncated = await workspace.grep(
            arguments["pattern"],
            path_pattern=arguments.get("path_pattern"),
            under=arguments.get("path", "/"),
        )
        return {
            "matches": [
                {"path": m.path, "line_number": m.line_number, "line": m.line} for m in matches
            ],
            "truncated": truncated,
        }


@dataclass(frozen=True, slots=True)
class DeleteFile(_FileTool):
    name: str = "delete_file"
    writes: ClassVar[bool] = True
    description: str = (
        "Delete a file or an empty directory; `recursive: true` deletes a directory with "
        "everything in it. Read-only entries cannot be deleted."
    )
    parameters: JsonObject = field(
        default_factory=lambda: object_schema(
            {"path": _PATH, "recursive": {"type": "boolean"}}, ["path"]
        )
    )

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        count = await workspace.delete(
            arguments["path"], recursive=bool(arguments.get("recursive", False))
        )
        return {"path": normalize_path(arguments["path"]), "deleted": count}


@dataclass(frozen=True, slots=True)
class Stat(_FileTool):
    name: str = "stat"
    description: str = "Metadata of a file or directory: size, hash, read-only flag, timestamps."
    parameters: JsonObject = field(default_factory=lambda: object_schema({"path": _PATH}, ["path"]))

    async def run(self, workspace: Workspace, arguments: Any) -> JsonValue:
        entry = await workspace.stat(arguments["path"])
        return {
            **_info(entry),
            "content_hash": entry.content_hash,
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
        }


def build_file_system_capability(limits: FileLimits) -> Capability:
    return Capability(
        id="file_system",
        name="File system",
        description="The session's workspace under /workspace (its own, or one shared with "
        "other sessions): read, write, edit, list, search and delete files.",
        category="storage",
        features=("file_system",),
        system_prompt_addition=(
            "You have a file system mounted at /workspace (paths may also be given "
            "relative to it); other sessions may share it. Use read_file before edit_file, and "
            "keep edits small."
        ),
        tools=(
            ReadFile(limits),
            WriteFile(limits),
            EditFile(limits),
            ListDirectory(limits),
            Grep(limits),
            DeleteFile(limits),
            Stat(limits),
        ),
    )
