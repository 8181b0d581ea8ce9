"""Routes of memories: ``/v1/memories`` (CRUD; delete archives), ``/sync``, and a memory's
files under ``/v1/memories/{memory_id}/fs``.

``GET /fs/{path}`` reads a file (a directory lists), ``POST`` creates a file or a directory,
``PUT`` replaces a file, ``DELETE`` deletes a file or a directory with what is in it. Actions
live under the reserved ``/fs/_/``: ``download``, ``grep``, ``stat``. Paths follow the session
files' rules: ``..``, NUL and backslashes are a 400. A memory with a git source is read-only:
writes are a 403 ``memory_read_only``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import PlainTextResponse

from everloop.api.deps import CallerDep, services
from everloop.api.memory_schemas import (
    CreateMemoryFileRequest,
    CreateMemoryRequest,
    MemoryFileInfoResponse,
    MemoryFileResponse,
    MemoryGrepRequest,
    MemoryGrepResultResponse,
    MemoryResponse,
    MemoryStatRequest,
    UpdateMemoryFileRequest,
    UpdateMemoryRequest,
    file_info_out,
    file_out,
    memory_out,
)
from everloop.api.schemas import ListResponse
from everloop.domain.files import normalize_path
from everloop.errors import InvalidInput
from everloop.services.files import decode_content

router = APIRouter(tags=["memories"])

ONE = "/v1/memories/{memory_id}"
FS = ONE + "/fs"


@router.get("/v1/memories", response_model=ListResponse[MemoryResponse])
async def list_memories(
    request: Request,
    caller: CallerDep,
    search: str | None = None,
    include_archived: bool = False,
) -> ListResponse[MemoryResponse]:
    """List the organization's memories by name; ``search`` filters by name or description,
    ``include_archived`` lists archived ones too."""
    found = await services(request).memories.list(
        caller, search=search, include_archived=include_archived
    )
    return ListResponse(data=[memory_out(m) for m in found], total=len(found))


@router.post("/v1/memories", response_model=MemoryResponse, status_code=status.HTTP_201_CREATED)
async def create_memory(
    request: Request, caller: CallerDep, body: CreateMemoryRequest
) -> MemoryResponse:
    """Create a memory: manual (written through the API and the memory tools), or with a git
    ``source`` (``{"type": "git", "url", "branch", "root_folder", "sync_interval_secs"}`` or
    ``{"type": "github", "repository": "owner/repo", ...}``) that ``sync`` fetches. Credentials
    in the URL are stored sealed and never returned."""
    created = await services(request).memories.create(caller, body.model_dump(exclude_none=True))
    return memory_out(created)


@router.get(ONE, response_model=MemoryResponse)
async def get_memory(request: Request, caller: CallerDep, memory_id: str) -> MemoryResponse:
    """Get one memory by id, with its sync state."""
    return memory_out(await services(request).memories.get(caller, memory_id))


@router.patch(ONE, response_model=MemoryResponse)
async def update_memory(
    request: Request, caller: CallerDep, memory_id: str, body: UpdateMemoryRequest
) -> MemoryResponse:
    """Change a memory's name, description or source; fields not sent stay as they are."""
    updated = await services(request).memories.update(
        caller, memory_id, body.model_dump(exclude_unset=True)
    )
    return memory_out(updated)


@router.delete(ONE, status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory(request: Request, caller: CallerDep, memory_id: str) -> Response:
    """Archive a memory: it leaves the default listing and keeps its files and its name."""
    await services(request).memories.archive(caller, memory_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(ONE + "/sync", response_model=MemoryResponse)
async def sync_memory(request: Request, caller: CallerDep, memory_id: str) -> MemoryResponse:
    """Fetch the memory's git source now (through the egress guard) and replace its files; a
    failure is recorded in ``last_sync_error`` and the last good files stay."""
    return memory_out(await services(request).memories.sync(caller, memory_id))


@router.get(FS, response_model=ListResponse[MemoryFileInfoResponse])
async def list_memory_root(
    request: Request, caller: CallerDep, memory_id: str, recursive: bool = False
) -> ListResponse[MemoryFileInfoResponse]:
    """List the memory's top directory; ``recursive`` lists everything below it too."""
    async with services(request).memories.files(caller, memory_id) as files:
        entries = await files.listing("/", recursive=recursive)
    return ListResponse(data=[file_info_out(e) for e in entries], total=len(entries))


@router.get(
    FS + "/_/download/{path:path}",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def download_memory_file(
    request: Request, caller: CallerDep, memory_id: str, path: str
) -> Response:
    """A memory file's raw content (text as UTF-8, binary as is)."""
    async with services(request).memories.files(caller, memory_id) as files:
        entry = await files.read(path)
    return Response(entry.content or b"", media_type="text/plain; charset=utf-8")


@router.post(FS + "/_/grep", response_model=ListResponse[MemoryGrepResultResponse])
async def grep_memory_files(
    request: Request, caller: CallerDep, memory_id: str, body: MemoryGrepRequest
) -> ListResponse[MemoryGrepResultResponse]:
    """The memory's text files with a line matching the regular expression ``pattern`` (RE2),
    optionally only paths or names matching the glob ``path_pattern``."""
    async with services(request).memories.files(caller, memory_id) as files:
        found = await files.grep(body.pattern, path_pattern=body.path_pattern)
    data = [MemoryGrepResultResponse(path=e.path, size_bytes=e.size_bytes) for e in found]
    return ListResponse(data=data, total=len(data))


@router.post(FS + "/_/stat", response_model=MemoryFileInfoResponse)
async def stat_memory_path(
    request: Request, caller: CallerDep, memory_id: str, body: MemoryStatRequest
) -> MemoryFileInfoResponse:
    """Metadata of one file or directory of the memory (size, kind, hash, times)."""
    async with services(request).memories.files(caller, memory_id) as files:
        return file_info_out(await files.stat(body.path))


@router.get(FS + "/{path:path}", response_model=MemoryFileResponse)
async def read_memory_file(
    request: Request, caller: CallerDep, memory_id: str, path: str
) -> MemoryFileResponse:
    """Read a memory file: UTF-8 text, or base64 for binary content (``encoding``)."""
    async with services(request).memories.files(caller, memory_id) as files:
        return file_out(await files.read(path))


@router.post(
    FS + "/{path:path}",
    response_model=MemoryFileInfoResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_memory_path(
    request: Request,
    caller: CallerDep,
    memory_id: str,
    path: str,
    body: CreateMemoryFileRequest,
) -> MemoryFileInfoResponse:
    """Create a file (``content``, text or base64) or a directory (``is_directory``) in the
    memory; 409 if something is there, 403 for a memory synced from git."""
    normalize_path(path)  # a bad path is a 400 before the memory lookup's 404
    content = b""
    if not body.is_directory:
        content = decode_content(body.content or "", body.encoding or "text")
    async with services(request).memories.files(caller, memory_id, write=True) as files:
        if body.is_directory:
            return file_info_out(await files.make_directory(path))
        entry, _ = await files.write(path, content, create_only=True)
        return file_info_out(entry)


@router.put(FS + "/{path:path}", response_model=MemoryFileResponse)
async def update_memory_file(
    request: Request,
    caller: CallerDep,
    memory_id: str,
    path: str,
    body: UpdateMemoryFileRequest,
) -> MemoryFileResponse:
    """Replace a memory file's content (the file must exist)."""
    normalize_path(path)
    if body.content is None:
        raise InvalidInput("content is required", field="content")
    content = decode_content(body.content, body.encoding or "text")
    async with services(request).memories.files(caller, memory_id, write=True) as files:
        entry, _ = await files.write(path, content, update_only=True)
        return file_out(entry)


@router.delete(FS + "/{path:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory_path(
    request: Request, caller: CallerDep, memory_id: str, path: str
) -> Response:
    """Delete a memory file, or a directory with everything in it."""
    normalize_path(path)
    async with services(request).memories.files(caller, memory_id, write=True) as files:
        await files.delete(path)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
