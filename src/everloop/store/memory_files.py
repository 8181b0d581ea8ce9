"""A memory's file tree (``memory_files``) and its rules, over one open connection.

``MemoryFiles`` is shared by the REST service (``services/memories.py``) and the ``memory``
tools (``capabilities/memory.py``, inside the step transaction: exactly once). Paths follow the
session files' rules (``domain.files.normalize_path``: no ``..``, NUL, backslash, control
characters; the top-level ``_`` is reserved); sizes follow the same settings
(``EVERLOOP_FILE_MAX_BYTES`` per file, ``EVERLOOP_SESSION_FILES_MAX_BYTES`` per memory).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.domain.files import ancestors, content_hash, is_binary, normalize_path, parent_of
from everloop.domain.timestamps import now
from everloop.errors import Conflict, Forbidden, MalformedInput, NotFound, PayloadTooLarge
from everloop.offload import run_cpu
from everloop.patterns import Regex, compile_untrusted
from everloop.store.tables import memory_files

MAX_GREP_RESULTS = 1000


@dataclass(frozen=True, slots=True)
class MemoryLimits:
    file_max_bytes: int = 10 * 1024 * 1024
    memory_max_bytes: int = 500 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MemoryFile:
    """One file or directory of a memory; ``content`` is None for directories and listings."""

    path: str
    is_directory: bool
    size_bytes: int
    content_hash: str | None
    created_at: str
    updated_at: str
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class RecallHit:
    path: str
    score: int
    updated_at: str
    content: str


_META = [c for c in memory_files.c if c.name not in ("content", "parent_path", "memory_id")]


def _file(row: Any) -> MemoryFile:
    values = dict(row._mapping)
    if values.get("content") is not None:
        values["content"] = bytes(values["content"])
    return MemoryFile(**values)


class MemoryFiles:
    """One memory's files. ``readonly`` (a memory with a git source, or mounted read-only)
    refuses every write with a readable 403."""

    def __init__(
        self,
        conn: AsyncConnection,
        memory_id: str,
        limits: MemoryLimits,
        *,
        readonly: str | None = None,
    ) -> None:
        self._conn = conn
        self._memory_id = memory_id
        self._limits = limits
        self._readonly = readonly  # why writes are refused, or None

    # -- reading ---------------------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        """Whether writes are refused (a git source, or a read-only mount)."""
        return self._readonly is not None

    async def stat(self, raw_path: str) -> MemoryFile:
        path = normalize_path(raw_path)
        if path == "/":
            ts = now()
            return MemoryFile("/", True, 0, None, ts, ts)
        return await self._require(path, with_content=False)

    async def read(self, raw_path: str) -> MemoryFile:
        path = normalize_path(raw_path)
        entry = await self._require(path, with_content=True) if path != "/" else None
        if entry is None or entry.is_directory:
            raise Conflict(f"'{path}' is a directory", code="is_a_directory")
        return entry

    async def listing(self, raw_path: str = "/", *, recursive: bool = False) -> list[MemoryFile]:
        path = normalize_path(raw_path)
        if path != "/":
            entry = await self._require(path, with_content=False)
            if not entry.is_directory:
                raise Conflict(f"'{path}' is not a directory", code="not_a_directory")
        query = select(*_META).where(memory_files.c.memory_id == self._memory_id)
        if recursive:
            query = query.where(self._under(path), memory_files.c.path != path)
        else:
            query = query.where(memory_files.c.parent_path == path)
        rows = await self._conn.execute(
            query.order_by(memory_files.c.is_directory.desc(), memory_files.c.path)
        )
        return [_file(r) for r in rows]

    async def files_with_content(self) -> list[MemoryFile]:
        rows = await self._conn.execute(
            select(*_META, memory_files.c.content)
            .where(memory_files.c.memory_id == self._memory_id, ~memory_files.c.is_directory)
            .order_by(memory_files.c.path)
        )
        return [_file(r) for r in rows]

    async def grep(self, pattern: str, *, path_pattern: str | None = None) -> list[MemoryFile]:
        """Text files with a line matching ``pattern`` (RE2, linear time), optionally only
        paths (or names) matching the glob ``path_pattern``."""
        regex = compile_untrusted(pattern, field="pattern")
        found: list[MemoryFile] = []
        for entry in await self.files_with_content():
            if not _path_matches(entry.path, path_pattern):
                continue
            if await run_cpu(_has_matching_line, regex, entry.content or b""):
                found.append(entry)
                if len(found) >= MAX_GREP_RESULTS:
                    break
        return found

    async def recall(self, query: str, *, limit: int) -> list[RecallHit]:
        """Text files ranked by how many of ``query``'s words they contain (case-insensitive;
        the whole phrase counts double), then by recency; an empty query: the newest."""
        terms = [t for t in re.findall(r"\w+", query.lower()) if len(t) > 1]
        phrase = query.strip().lower()
        hits: list[RecallHit] = []
        for entry in await self.files_with_content():
            content = entry.content or b""
            if is_binary(content):
                continue
            text = content.decode("utf-8")
            haystack = (entry.path + "\n" + text).lower()
            score = sum(1 for t in set(terms) if t in haystack)
            if phrase and len(terms) > 1 and phrase in haystack:
                score += len(set(terms))
            if terms and score == 0:
                continue
            hits.append(RecallHit(entry.path, score, entry.updated_at, text))
        hits.sort(key=lambda h: (h.score, h.updated_at), reverse=True)
        return hits[:limit]

    # -- writing ---------------------------------------------------------------------------

    async def write(
        self, raw_path: str, content: bytes, *, create_only: bool = False, update_only: bool = False
    ) -> tuple[MemoryFile, bool]:
        """Create or replace a file; returns it and whether it is new."""
        path = self._writable_path(raw_path)
        existing = await self._get(path, with_content=False)
        if existing is not None:
            if create_only:
                raise Conflict(f"'{path}' already exists", code="file_exists")
            if existing.is_directory:
                raise Conflict(f"'{path}' is a directory", code="is_a_directory")
        elif update_only:
            raise NotFound.of("file", path)
        await self._check_quota(len(content), existing.size_bytes if existing else 0)
        ts = now()
        digest = content_hash(content)
        if existing is not None:
            await self._conn.execute(
                update(memory_files)
                .where(memory_files.c.memory_id == self._memory_id, memory_files.c.path == path)
                .values(
                    content=content, size_bytes=len(content), content_hash=digest, updated_at=ts
                )
            )
            entry = MemoryFile(path, False, len(content), digest, existing.created_at, ts, content)
            return entry, False
        await self._ensure_parents(path, ts)
        entry = MemoryFile(path, False, len(content), digest, ts, ts, content)
        await self._insert(entry)
        return entry, True

    async def make_directory(self, raw_path: str) -> MemoryFile:
        path = self._writable_path(raw_path)
        if await self._get(path, with_content=False):
            raise Conflict(f"'{path}' already exists", code="file_exists")
        ts = now()
        await self._ensure_parents(path, ts)
        entry = MemoryFile(path, True, 0, None, ts, ts)
        await self._insert(entry)
        return entry

    async def delete(self, raw_path: str) -> int:
        """Delete a file, or a directory with everything in it."""
        path = self._writable_path(raw_path)
        await self._require(path, with_content=False)
        result = await self._conn.execute(
            delete(memory_files).where(
                memory_files.c.memory_id == self._memory_id, self._under(path)
            )
        )
        return int(result.rowcount or 0)

    async def replace_all(self, files: Mapping[str, bytes]) -> None:
        """The whole tree becomes ``files`` (a git sync; ignores ``readonly``)."""
        await self._conn.execute(
            delete(memory_files).where(memory_files.c.memory_id == self._memory_id)
        )
        ts = now()
        made: set[str] = set()
        total = 0
        for path, content in sorted(files.items()):
            total += len(content)
            if len(content) > self._limits.file_max_bytes:
                raise PayloadTooLarge(
                    f"'{path}' is {len(content)} bytes; the limit is {self._limits.file_max_bytes}",
                    code="file_too_large",
                )
            if total > self._limits.memory_max_bytes:
                raise PayloadTooLarge(
                    f"the repository's files take over {self._limits.memory_max_bytes} bytes",
                    code="memory_quota_exceeded",
                )
            for directory in ancestors(path):
                if directory not in made:
                    made.add(directory)
                    await self._insert(MemoryFile(directory, True, 0, None, ts, ts))
            digest = content_hash(content)
            await self._insert(MemoryFile(path, False, len(content), digest, ts, ts, content))

    # -- internals -------------------------------------------------------------------------

    def _under(self, path: str) -> Any:
        if path == "/":
            return True
        return or_(
            memory_files.c.path == path,
            memory_files.c.path.startswith(path + "/", autoescape=True),
        )

    def _writable_path(self, raw_path: str) -> str:
        path = normalize_path(raw_path)
        if self._readonly is not None:
            raise Forbidden(self._readonly, code="memory_read_only")
        if path == "/":
            raise MalformedInput(
                "the memory's root cannot be changed", code="invalid_path", field="path"
            )
        return path

    async def _get(self, path: str, *, with_content: bool) -> MemoryFile | None:
        columns = [*_META, memory_files.c.content] if with_content else _META
        row = (
            await self._conn.execute(
                select(*columns).where(
                    memory_files.c.memory_id == self._memory_id, memory_files.c.path == path
                )
            )
        ).first()
        return _file(row) if row else None

    async def _require(self, path: str, *, with_content: bool) -> MemoryFile:
        entry = await self._get(path, with_content=with_content)
        if entry is None:
            raise NotFound.of("file", path)
        return entry

    async def _insert(self, entry: MemoryFile) -> None:
        await self._conn.execute(
            memory_files.insert().values(
                memory_id=self._memory_id,
                path=entry.path,
                parent_path=parent_of(entry.path),
                is_directory=entry.is_directory,
                content=entry.content,
                size_bytes=entry.size_bytes,
                content_hash=entry.content_hash,
                created_at=entry.created_at,
                updated_at=entry.updated_at,
            )
        )

    async def _ensure_parents(self, path: str, ts: str) -> None:
        for directory in ancestors(path):
            found = await self._get(directory, with_content=False)
            if found is None:
                await self._insert(MemoryFile(directory, True, 0, None, ts, ts))
            elif not found.is_directory:
                raise Conflict(f"'{directory}' is a file, not a directory", code="not_a_directory")

    async def _check_quota(self, new_size: int, old_size: int) -> None:
        limits = self._limits
        if new_size > limits.file_max_bytes:
            raise PayloadTooLarge(
                f"the file is {new_size} bytes; the limit is {limits.file_max_bytes}",
                code="file_too_large",
            )
        used = await self._conn.scalar(
            select(func.coalesce(func.sum(memory_files.c.size_bytes), 0)).where(
                memory_files.c.memory_id == self._memory_id
            )
        )
        total = int(used or 0) - old_size + new_size
        if total > limits.memory_max_bytes:
            raise PayloadTooLarge(
                f"the memory's files would take {total} bytes; the quota is "
                f"{limits.memory_max_bytes}",
                code="memory_quota_exceeded",
            )


def _has_matching_line(regex: Regex, content: bytes) -> bool:
    if is_binary(content):
        return False
    return any(regex.search(line) for line in content.decode("utf-8").splitlines())


def _path_matches(path: str, path_pattern: str | None) -> bool:
    if not path_pattern:
        return True
    name = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(path, path_pattern) or fnmatch.fnmatchcase(name, path_pattern)
