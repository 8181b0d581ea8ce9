"""Wire schemas of memories (``/v1/memories``): Everruns' ``Memory``, ``MemoryFile``,
``MemoryFileInfo`` and ``MemoryGrepResult``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, StringConstraints

from everloop.api.schemas import WireModel
from everloop.api.storage_schemas import FileContent, FilePath
from everloop.domain.memories import Memory, source_response
from everloop.services.files import encode_content
from everloop.services.memories import MemoryFile

Encoding = Literal["text", "base64"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]


class CreateMemoryRequest(WireModel):
    name: Name
    description: Description | None = None
    source: dict[str, Any] | None = None


class UpdateMemoryRequest(WireModel):
    name: Name | None = None
    description: Description | None = None
    source: dict[str, Any] | None = None


class MemoryResponse(BaseModel):
    """A memory: a named file store agents read across sessions, optionally synced from git."""

    id: str
    name: str
    description: str | None = None
    source_type: str
    source: dict[str, Any]
    is_readonly: bool
    status: str
    sync_status: str
    last_synced_at: str | None = None
    last_sync_error: str | None = None
    created_at: str
    updated_at: str
    archived_at: str | None = None
    deleted_at: str | None = None


class CreateMemoryFileRequest(WireModel):
    content: FileContent | None = None
    encoding: Encoding | None = None
    is_directory: bool | None = None


class UpdateMemoryFileRequest(WireModel):
    content: FileContent | None = None
    encoding: Encoding | None = None


class MemoryFileInfoResponse(BaseModel):
    path: str
    is_directory: bool
    size_bytes: int
    content_hash: str | None = None
    created_at: str
    updated_at: str


class MemoryFileResponse(BaseModel):
    path: str
    content: str
    encoding: Encoding
    size_bytes: int
    content_hash: str | None = None
    created_at: str
    updated_at: str


class MemoryGrepRequest(WireModel):
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    path_pattern: Annotated[str, StringConstraints(max_length=1000)] | None = None


class MemoryGrepResultResponse(BaseModel):
    path: str
    size_bytes: int


class MemoryStatRequest(WireModel):
    path: FilePath


def memory_out(memory: Memory) -> MemoryResponse:
    return MemoryResponse(
        id=memory.id,
        name=memory.name,
        description=memory.description,
        source_type=memory.source_type,
        source=source_response(memory),
        is_readonly=memory.is_readonly,
        status=memory.status,
        sync_status=memory.sync_status,
        last_synced_at=memory.last_synced_at,
        last_sync_error=memory.last_sync_error,
        created_at=memory.created_at,
        updated_at=memory.updated_at,
        archived_at=memory.archived_at,
    )


def file_info_out(entry: MemoryFile) -> MemoryFileInfoResponse:
    return MemoryFileInfoResponse(
        path=entry.path,
        is_directory=entry.is_directory,
        size_bytes=entry.size_bytes,
        content_hash=entry.content_hash,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )


def file_out(entry: MemoryFile) -> MemoryFileResponse:
    content, encoding = encode_content(entry.content or b"")
    return MemoryFileResponse(
        path=entry.path,
        content=content,
        encoding=encoding,
        size_bytes=entry.size_bytes,
        content_hash=entry.content_hash,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )
