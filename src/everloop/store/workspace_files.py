"""A workspace's file system (seen at ``/workspace``), kept in the app database.

``Workspace`` holds the rules (paths, parents, read-only entries, quotas, compare-and-set) over
one open connection. It lives below the services so that both users reach the same code: the
``file_system`` tools use it inside the runner's step transaction, the REST routes through
``services.files`` / ``services.workspaces``, which check the caller may see the session or the
workspace first. A session's files are its workspace's files (``store.workspaces``). Any worker
can serve any workspace: nothing lives on a local disk.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.files import (
    StoredFile,
    ancestors,
    content_hash,
    is_binary,
    normalize_path,
    parent_of,
)
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, MalformedInput, NotFound, PayloadTooLarge
from everloop.offload import run_cpu
from everloop.patterns import Regex, compile_line_filter, compile_untrusted
from everloop.store import files as file_store

Encoding = Literal["text", "base64"]

MAX_GREP_MATCHES = 1000
MAX_GREP_LINE_CHARS = 500


@dataclass(frozen=True, slots=True)
class FileLimits:
    file_max_bytes: int = 10 * 1024 * 1024
    workspace_max_bytes: int = 500 * 1024 * 1024  # the quota of one workspace


@dataclass(frozen=True, slots=True)
class GrepMatch:
    path: str
    line_number: int
    line: str


def decode_content(content: str, encoding: Encoding, *, field: str = "content") -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("content is not valid base64", field=field) from None
    return content.encode("utf-8")


def encode_content(content: bytes) -> tuple[str, Encoding]:
    """Text as is; binary (NUL in the first 8 KiB, or not UTF-8) as base64."""
    if is_binary(content):
        return base64.b64encode(content).decode("ascii"), "base64"
    return content.decode("utf-8"), "text"


@dataclass(frozen=True, slots=True)
class _LinePattern:
    """A grep pattern: ``regex`` for each line, and ``whole`` to skip a file at once when it
    has no matching line (``None``: no such filter for this pattern)."""

    regex: Regex
    whole: Regex | None

    @classmethod
    def compile(cls, pattern: str) -> _LinePattern:
        return cls(compile_untrusted(pattern, field="pattern"), compile_line_filter(pattern))

    def matching_lines(self, content: bytes, limit: int) -> list[tuple[int, str]]:
        """The first ``limit`` lines of a text file that match, as (line number, line cut to
        ``MAX_GREP_LINE_CHARS``); none for a binary file. Runs on the CPU pool."""
        if is_binary(content):
            return []
        lines = content.decode("utf-8").splitlines()
        if self.whole is not None and not self.whole.search("\n".join(lines)):
            return []
        hits: list[tuple[int, str]] = []
        for number, line in enumerate(lines, start=1):
            if self.regex.search(line):
                hits.append((number, line[:MAX_GREP_LINE_CHARS]))
                if len(hits) >= limit:
                    break
        return hits


def _path_matches(path: str, path_pattern: str | None) -> bool:
    if not path_pattern:
        return True
    name = path.rsplit("/", 1)[-1]
    pattern = path_pattern.removeprefix("/workspace")
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)


class Workspace:
    """One workspace's files over an open connection (a transaction when writing).

    ``writer_session_id`` is the session whose tool writes (None for the REST API): it is
    recorded on each entry the workspace writes (``updated_by_session_id``)."""

    def __init__(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        limits: FileLimits,
        *,
        writer_session_id: str | None = None,
    ) -> None:
        self._conn = conn
        self._workspace_id = workspace_id
        self._limits = limits
        self._writer = writer_session_id

    @property
    def workspace_id(self) -> str:
        return self._workspace_id

    # -- reading ---------------------------------------------------------------------------

    async def stat(self, raw_path: str) -> StoredFile:
        path = normalize_path(raw_path)
        if path == "/":
            ts = now()
            return StoredFile("", self._workspace_id, "/", True, False, 0, None, ts, ts)
        return await self._require(path, with_content=False)

    async def read(self, raw_path: str) -> StoredFile:
        path = normalize_path(raw_path)
        entry = await self._require(path, with_content=True) if path != "/" else None
        if entry is None or entry.is_directory:
            raise Conflict(f"'{path}' is a directory", code="is_a_directory")
        return entry

    async def listing(self, raw_path: str = "/", *, recursive: bool = False) -> list[StoredFile]:
        path = normalize_path(raw_path)
        if path != "/":
            entry = await self._require(path, with_content=False)
            if not entry.is_directory:
                raise Conflict(f"'{path}' is not a directory", code="not_a_directory")
        if recursive:
            return await file_store.subtree(self._conn, self._workspace_id, path)
        return await file_store.children(self._conn, self._workspace_id, path)

    async def grep(
        self, pattern: str, *, path_pattern: str | None = None, under: str = "/"
    ) -> tuple[list[GrepMatch], bool]:
        """Lines matching ``pattern`` in text files (optionally filtered by a glob on the path
        or the name); returns the matches and whether the list was cut at the limit.

        ``pattern`` is an RE2 regular expression (linear time, see ``everloop.patterns``),
        matched against each line; the matching runs off the event loop, a file at a time."""
        line_pattern = _LinePattern.compile(pattern)
        root = normalize_path(under)
        entries = await file_store.subtree(self._conn, self._workspace_id, root, include_self=True)
        paths = [
            e.path for e in entries if not e.is_directory and _path_matches(e.path, path_pattern)
        ]
        found: list[GrepMatch] = []
        async for path, content in file_store.contents(self._conn, self._workspace_id, paths):
            wanted = MAX_GREP_MATCHES + 1 - len(found)  # one more tells that the list was cut
            hits = await run_cpu(line_pattern.matching_lines, content, wanted)
            found.extend(GrepMatch(path, number, line) for number, line in hits)
            if len(found) > MAX_GREP_MATCHES:
                return found[:MAX_GREP_MATCHES], True
        return found, False

    # -- writing ---------------------------------------------------------------------------

    async def write(
        self,
        raw_path: str,
        content: bytes,
        *,
        is_readonly: bool | None = None,
        create_only: bool = False,
        update_only: bool = False,
        may_unlock: bool = False,
        expected_hash: str | None = None,
    ) -> tuple[StoredFile, bool]:
        """Create or replace the file at ``raw_path``; returns it and whether it is new.

        A read-only file refuses the write, unless ``may_unlock`` (the REST API) and the same
        request clears the flag (``is_readonly=False``). With ``expected_hash`` the write is a
        compare-and-set: it happens only while the file's hash is still that one (409
        ``hash_mismatch`` naming the current hash otherwise; a missing file is a 404)."""
        path = self._writable_path(raw_path)
        existing = await file_store.get(self._conn, self._workspace_id, path, with_content=False)
        if expected_hash is not None:
            if existing is None:
                raise NotFound.of("file", path)
            check_hash(existing, expected_hash)
        if existing is not None:
            if create_only:
                raise Conflict(f"'{path}' already exists", code="file_exists")
            if existing.is_directory:
                raise Conflict(f"'{path}' is a directory", code="is_a_directory")
            if existing.is_readonly and not (may_unlock and is_readonly is False):
                raise Conflict(f"'{path}' is read-only", code="read_only")
        elif update_only:
            raise NotFound.of("file", path)
        await self._check_quota(len(content), existing.size_bytes if existing else 0)
        ts = now()
        digest = content_hash(content)
        if existing is not None:
            readonly = existing.is_readonly if is_readonly is None else is_readonly
            values = {
                "content": content,
                "size_bytes": len(content),
                "content_hash": digest,
                "is_readonly": readonly,
                "updated_at": ts,
                "updated_by_session_id": self._writer,
            }
            changed = await file_store.update_entry(
                self._conn, self._workspace_id, path, values, expected_hash=expected_hash
            )
            if not changed:  # another writer got there between the read and the update
                now_there = await self._require(path, with_content=False)
                raise HashMismatch(path, now_there.content_hash, str(expected_hash))
            return replace(
                existing,
                content=content,
                size_bytes=len(content),
                content_hash=digest,
                is_readonly=readonly,
                updated_at=ts,
                updated_by_session_id=self._writer,
            ), False
        await self._ensure_parents(path, ts)
        entry = StoredFile(
            file_store.new_file_id(),
            self._workspace_id,
            path,
            False,
            bool(is_readonly),
            len(content),
            digest,
            ts,
            ts,
            content,
            self._writer,
        )
        await file_store.insert(self._conn, self._workspace_id, parent_of(path), entry)
        return entry, True

    async def make_directory(self, raw_path: str, *, is_readonly: bool = False) -> StoredFile:
        path = self._writable_path(raw_path)
        if await file_store.get(self._conn, self._workspace_id, path, with_content=False):
            raise Conflict(f"'{path}' already exists", code="file_exists")
        ts = now()
        await self._ensure_parents(path, ts)
        entry = StoredFile(
            file_store.new_file_id(), self._workspace_id, path, True, is_readonly, 0, None, ts, ts
        )
        await file_store.insert(self._conn, self._workspace_id, parent_of(path), entry)
        return entry

    async def set_readonly(self, raw_path: str, is_readonly: bool) -> StoredFile:
        path = self._writable_path(raw_path)
        entry = await self._require(path, with_content=True)
        ts = now()
        values = {"is_readonly": is_readonly, "updated_at": ts}
        await file_store.update_entry(self._conn, self._workspace_id, path, values)
        return replace(entry, is_readonly=is_readonly, updated_at=ts)

    async def edit(
        self,
        raw_path: str,
        *,
        old_string: str | None = None,
        new_string: str | None = None,
        content: bytes | None = None,
        expected_hash: str | None = None,
    ) -> StoredFile:
        """Replace the one occurrence of ``old_string``, or write ``content`` (compare-and-set:
        only while the file's hash is still ``expected_hash``)."""
        entry = await self.read(raw_path)
        assert entry.content is not None
        if expected_hash is not None:
            check_hash(entry, expected_hash)
        if old_string is not None:
            if new_string is None:
                raise InvalidInput("new_string is required with old_string", field="new_string")
            if is_binary(entry.content):
                raise Conflict(f"'{entry.path}' is binary; write it whole", code="binary_file")
            text = entry.content.decode("utf-8")
            count = text.count(old_string) if old_string else 0
            if count != 1:
                problem = "does not occur" if count == 0 else f"occurs {count} times"
                raise InvalidInput(
                    f"old_string {problem} in '{entry.path}'; it must occur exactly once",
                    code="edit_not_unique" if count else "edit_not_found",
                    field="old_string",
                )
            content = text.replace(old_string, new_string, 1).encode("utf-8")
        elif content is None or expected_hash is None:
            raise InvalidInput(
                "give old_string and new_string, or content with expected_hash", field="content"
            )
        # Compare-and-set against the hash just read: a concurrent edit is a 409, not lost.
        written, _ = await self.write(
            entry.path, content, update_only=True, expected_hash=entry.content_hash
        )
        return written

    async def delete(self, raw_path: str, *, recursive: bool = False) -> int:
        """Delete a file, or a directory (with what is in it only when ``recursive``)."""
        path = self._writable_path(raw_path)
        entry = await self._require(path, with_content=False)
        below = await file_store.subtree(self._conn, self._workspace_id, path)
        if entry.is_directory and below and not recursive:
            raise Conflict(f"directory '{path}' is not empty", code="directory_not_empty")
        self._refuse_readonly([entry, *below], "deleted")
        return await file_store.delete_tree(self._conn, self._workspace_id, path)

    async def move(self, raw_source: str, raw_target: str) -> StoredFile:
        source = self._writable_path(raw_source, field="src_path")
        target = self._writable_path(raw_target, field="dst_path")
        entry = await self._require(source, with_content=False)
        if target == source or target.startswith(source + "/"):
            raise InvalidInput("cannot move a path into itself", field="dst_path")
        if await file_store.get(self._conn, self._workspace_id, target, with_content=False):
            raise Conflict(f"'{target}' already exists", code="file_exists")
        self._refuse_readonly(
            [entry, *await file_store.subtree(self._conn, self._workspace_id, source)], "moved"
        )
        ts = now()
        await self._ensure_parents(target, ts)
        await file_store.rename_tree(self._conn, self._workspace_id, source, target, ts)
        return await self._require(target, with_content=True)

    async def copy(self, raw_source: str, raw_target: str) -> StoredFile:
        source = normalize_path(raw_source, field="src_path")
        entry = await self._require(source, with_content=True)
        if entry.is_directory:
            raise InvalidInput("only files can be copied", field="src_path")
        assert entry.content is not None
        self._writable_path(raw_target, field="dst_path")
        copied, _ = await self.write(raw_target, entry.content, create_only=True)
        return copied

    # -- internals -------------------------------------------------------------------------

    def _writable_path(self, raw_path: str, *, field: str = "path") -> str:
        path = normalize_path(raw_path, field=field)
        if path == "/":
            raise MalformedInput(
                "the workspace root cannot be changed", code="invalid_path", field=field
            )
        return path

    async def _require(self, path: str, *, with_content: bool) -> StoredFile:
        entry = await file_store.get(
            self._conn, self._workspace_id, path, with_content=with_content
        )
        if entry is None:
            raise NotFound.of("file", path)
        return entry

    async def _ensure_parents(self, path: str, ts: str) -> None:
        for directory in ancestors(path):
            found = await file_store.get(
                self._conn, self._workspace_id, directory, with_content=False
            )
            if found is None:
                entry = StoredFile(
                    file_store.new_file_id(),
                    self._workspace_id,
                    directory,
                    True,
                    False,
                    0,
                    None,
                    ts,
                    ts,
                )
                await file_store.insert(self._conn, self._workspace_id, parent_of(directory), entry)
            elif not found.is_directory:
                raise Conflict(f"'{directory}' is a file, not a directory", code="not_a_directory")

    async def _check_quota(self, new_size: int, old_size: int) -> None:
        limits = self._limits
        if new_size > limits.file_max_bytes:
            raise PayloadTooLarge(
                f"the file is {new_size} bytes; the limit is {limits.file_max_bytes}",
                code="file_too_large",
            )
        total = await file_store.total_size(self._conn, self._workspace_id) - old_size + new_size
        if total > limits.workspace_max_bytes:
            raise PayloadTooLarge(
                f"the workspace's files would take {total} bytes; its quota is "
                f"{limits.workspace_max_bytes}",
                code="workspace_quota_exceeded",
            )

    @staticmethod
    def _refuse_readonly(entries: Iterable[StoredFile], verb: str) -> None:
        locked = [e.path for e in entries if e.is_readonly]
        if locked:
            raise Conflict(f"'{locked[0]}' is read-only and cannot be {verb}", code="read_only")


class HashMismatch(Conflict):
    """A compare-and-set write met another hash: ``current_hash`` is the file's hash now."""

    code = "hash_mismatch"

    def __init__(self, path: str, current_hash: str | None, expected_hash: str) -> None:
        super().__init__(
            f"'{path}' changed: its content_hash is now {current_hash}, not {expected_hash}; "
            "read it again and retry",
            field="content_hash",
        )
        self.current_hash = current_hash


def check_hash(entry: StoredFile, expected_hash: str) -> None:
    if entry.is_directory:
        raise Conflict(f"'{entry.path}' is a directory", code="is_a_directory")
    if expected_hash != entry.content_hash:
        raise HashMismatch(entry.path, entry.content_hash, expected_hash)


def merge_initial_files(layers: Sequence[Sequence[Any]]) -> list[Mapping[str, Any]]:
    """Harness, agent and session ``initial_files`` merged: a later layer wins by path."""
    merged: dict[str, Mapping[str, Any]] = {}
    for layer in layers:
        for spec in layer:
            if not isinstance(spec, Mapping) or "path" not in spec:
                raise InvalidInput("an initial file needs a path", field="initial_files")
            merged[normalize_path(str(spec["path"]), field="initial_files")] = spec
    return list(merged.values())


async def copy_initial_files(
    conn: AsyncConnection,
    workspace_id: str,
    layers: Sequence[Sequence[Any]],
    limits: FileLimits,
    *,
    only_missing: bool = False,
) -> None:
    """Copy the merged ``initial_files`` into a new session's workspace (in the creating
    transaction). ``only_missing``: a shared workspace keeps what is there already."""
    workspace = Workspace(conn, workspace_id, limits)
    for spec in merge_initial_files(layers):
        if only_missing and await file_store.get(
            conn, workspace_id, normalize_path(str(spec["path"])), with_content=False
        ):
            continue
        content = decode_content(
            str(spec.get("content", "")), spec.get("encoding") or "text", field="initial_files"
        )
        await workspace.write(
            str(spec["path"]), content, is_readonly=bool(spec.get("is_readonly", False))
        )
