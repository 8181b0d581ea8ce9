"""Memories mounted in the file tools: ``/memory/<name>/...`` in ``read_file``, ``write_file``,
``list_directory``, ``stat`` and ``delete_file`` reaches that memory's files (the memories the
session's ``memory`` capability names, or its agent's own), read-only where the mount is.

``MountedMemory`` answers the part of the workspace interface those tools use, with the
memory's files and paths prefixed by the mount point, so the tools run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from everloop.capabilities.base import ToolError
from everloop.capabilities.memory import MOUNT_ROOT
from everloop.domain.files import normalize_path
from everloop.store.memory_files import MemoryFile, MemoryFiles
from everloop.store.workspace_files import HashMismatch


def mounted_name(raw_path: str) -> str | None:
    """The memory a ``/memory/<name>/...`` path names; None for any other path."""
    path = "/" + "/".join(s for s in raw_path.split("/") if s not in ("", "."))
    if path != MOUNT_ROOT and not path.startswith(MOUNT_ROOT + "/"):
        return None
    return path[len(MOUNT_ROOT) :].strip("/").partition("/")[0]


@dataclass(frozen=True, slots=True)
class MountedEntry:
    path: str
    name: str
    is_directory: bool
    is_readonly: bool
    size_bytes: int
    content_hash: str | None
    created_at: str
    updated_at: str
    content: bytes | None


class MountedMemory:
    """One memory's files seen at ``/memory/<name>``."""

    def __init__(self, files: MemoryFiles, name: str, *, readonly: bool) -> None:
        self._files = files
        self._prefix = f"{MOUNT_ROOT}/{name}"
        self._readonly = readonly

    def _inner(self, raw_path: str) -> str:
        path = normalize_path(raw_path)
        return normalize_path("/" + path[len(self._prefix) :])

    def _out(self, entry: MemoryFile) -> MountedEntry:
        path = self._prefix + ("" if entry.path == "/" else entry.path)
        return MountedEntry(
            path=path,
            name=path.rsplit("/", 1)[-1],
            is_directory=entry.is_directory,
            is_readonly=self._readonly,
            size_bytes=entry.size_bytes,
            content_hash=entry.content_hash,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
            content=entry.content,
        )

    async def read(self, raw_path: str) -> MountedEntry:
        return self._out(await self._files.read(self._inner(raw_path)))

    async def stat(self, raw_path: str) -> MountedEntry:
        return self._out(await self._files.stat(self._inner(raw_path)))

    async def listing(self, raw_path: str = "/", *, recursive: bool = False) -> list[MountedEntry]:
        found = await self._files.listing(self._inner(raw_path), recursive=recursive)
        return [self._out(e) for e in found]

    async def write(
        self, raw_path: str, content: bytes, *, expected_hash: str | None = None
    ) -> tuple[MountedEntry, bool]:
        inner = self._inner(raw_path)
        if expected_hash is not None:
            current = await self._files.stat(inner)
            if current.content_hash != expected_hash:
                raise HashMismatch(inner, current.content_hash, expected_hash)
        entry, created = await self._files.write(inner, content)
        return self._out(entry), created

    async def delete(self, raw_path: str, *, recursive: bool = False) -> int:
        inner = self._inner(raw_path)
        directory = (await self._files.stat(inner)).is_directory
        if not recursive and directory and await self._files.listing(inner):
            raise ToolError(f"{normalize_path(raw_path)} is not empty: pass recursive")
        return await self._files.delete(inner)

    async def edit(self, *_args: object, **_kwargs: object) -> MountedEntry:
        raise ToolError("edit_file does not reach /memory/: read the file and write_file it")

    async def grep(self, *_args: object, **_kwargs: object) -> object:
        raise ToolError("grep does not reach /memory/: use recall to search a memory")
