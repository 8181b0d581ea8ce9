"""Wire schemas of session storage: files (``/fs``), key-values and secrets (``/storage``) and
the resource registry (``/resources``). Shapes follow Everruns' ``FileInfo``, ``SessionFile``,
``FileStat``, ``GrepResult``, ``KeyValueInfo``, ``SecretInfo`` and ``SessionResourceEntry``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from everloop.api.schemas import WireModel
from everloop.domain.files import StoredFile
from everloop.services.files import encode_content

FilePath = Annotated[str, StringConstraints(min_length=1, max_length=1100)]
FileContent = Annotated[str, StringConstraints(max_length=20 * 1024 * 1024)]
SecretValue = Annotated[str, StringConstraints(max_length=64 * 1024)]
Encoding = Literal["text", "base64"]


class FileInfoResponse(BaseModel):
    """File metadata without content."""

    id: str
    session_id: str = Field(
        description="The session (or, under `/v1/workspaces`, the workspace) the file was read "
        "through."
    )
    workspace_id: str | None = Field(default=None, description="The workspace holding the file.")
    path: str
    name: str
    is_directory: bool
    is_readonly: bool
    size_bytes: int
    content_hash: str | None = None
    created_at: str
    updated_at: str


class SessionFileResponse(FileInfoResponse):
    """A file with its content: UTF-8 text, or base64 for binary (``encoding``)."""

    content: str | None = None
    encoding: Encoding | None = None


class FileStatResponse(BaseModel):
    path: str
    name: str
    is_directory: bool
    is_readonly: bool
    size_bytes: int
    content_hash: str | None = None
    created_at: str
    updated_at: str


class CreateFileRequest(WireModel):
    content: FileContent | None = None
    encoding: Encoding | None = None
    is_directory: bool | None = None
    is_readonly: bool | None = None


class UpdateFileRequest(WireModel):
    content: FileContent | None = None
    encoding: Encoding | None = None
    is_readonly: bool | None = None
    content_hash: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] | None = (
        Field(
            default=None,
            description="Compare-and-set: replace the content only while the file's hash is "
            "still this one (409 `hash_mismatch` naming the current hash otherwise).",
        )
    )


class DeleteFileResponse(BaseModel):
    deleted: bool


class StatRequest(WireModel):
    path: FilePath


class GrepRequest(WireModel):
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    path_pattern: Annotated[str, StringConstraints(max_length=1100)] | None = None


class GrepMatchResponse(BaseModel):
    path: str
    line_number: int
    line: str


class GrepResultResponse(BaseModel):
    path: str
    matches: list[GrepMatchResponse]


class MoveFileRequest(WireModel):
    src_path: FilePath
    dst_path: FilePath


class CopyFileRequest(WireModel):
    src_path: FilePath
    dst_path: FilePath


class KeyValueInfo(BaseModel):
    key: str
    value: str
    created_at: str
    updated_at: str


class SecretInfo(BaseModel):
    """A secret's name and timestamps: never its value."""

    name: str
    created_at: str
    updated_at: str


class BatchSetSecretsRequest(WireModel):
    secrets: Annotated[
        dict[Annotated[str, StringConstraints(max_length=128)], SecretValue], Field(max_length=100)
    ]


class BatchSetSecretsResponse(BaseModel):
    count: int


class SessionResourceEntry(BaseModel):
    resource_id: str
    session_id: str
    kind: str
    display_name: str
    status: Literal["active", "completed", "failed", "released"]
    metadata: Any = None
    expires_at: str | None = None
    created_at: str
    updated_at: str


def file_info(entry: StoredFile, through: str | None = None) -> FileInfoResponse:
    """``through``: the session or workspace id of the route (default: the workspace)."""
    return FileInfoResponse(
        id=entry.id,
        session_id=through or entry.workspace_id,
        workspace_id=entry.workspace_id,
        path=entry.path,
        name=entry.name,
        is_directory=entry.is_directory,
        is_readonly=entry.is_readonly,
        size_bytes=entry.size_bytes,
        content_hash=entry.content_hash,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )


def session_file(entry: StoredFile, through: str | None = None) -> SessionFileResponse:
    content: str | None = None
    encoding: Encoding | None = None
    if entry.content is not None and not entry.is_directory:
        content, encoding = encode_content(entry.content)
    return SessionFileResponse(
        **file_info(entry, through).model_dump(), content=content, encoding=encoding
    )


def file_stat(entry: StoredFile) -> FileStatResponse:
    info = file_info(entry).model_dump(exclude={"id", "session_id", "workspace_id"})
    return FileStatResponse(**info)
