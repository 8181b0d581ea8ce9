"""Routes of a session's file system: ``/v1/sessions/{session_id}/fs``.

``GET /fs/{path}`` reads a file or lists a directory; ``POST`` creates, ``PUT`` updates,
``DELETE`` deletes (``?recursive=true`` for a directory with content). Actions live under the
reserved ``/fs/_/``: ``grep``, ``stat``, ``move``, ``copy``. Paths may carry the ``/workspace``
prefix; ``..``, NUL and backslashes are a 400.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ListResponse
from everloop.api.storage_schemas import (
    CopyFileRequest,
    CreateFileRequest,
    DeleteFileResponse,
    FileInfoResponse,
    FileStatResponse,
    GrepMatchResponse,
    GrepRequest,
    GrepResultResponse,
    MoveFileRequest,
    SessionFileResponse,
    StatRequest,
    UpdateFileRequest,
    file_info,
    file_stat,
    session_file,
)
from everloop.domain.files import normalize_path
from everloop.errors import InvalidInput
from everloop.services.files import decode_content

router = APIRouter(tags=["session-files"])

FS = "/v1/sessions/{session_id}/fs"


@router.get(FS, response_model=ListResponse[FileInfoResponse])
async def list_root(
    request: Request, caller: CallerDep, session_id: str, recursive: bool = False
) -> ListResponse[FileInfoResponse]:
    """List the session workspace's top directory; ``recursive`` lists everything below it too."""
    async with services(request).files.workspace(caller, session_id) as workspace:
        entries = await workspace.listing("/", recursive=recursive)
    return ListResponse(data=[file_info(e) for e in entries], total=len(entries))


@router.post(FS + "/_/stat", response_model=FileStatResponse)
async def stat_path(
    request: Request, caller: CallerDep, session_id: str, body: StatRequest
) -> FileStatResponse:
    """Metadata of one file or directory of the session workspace (size, kind, read-only, times)."""
    async with services(request).files.workspace(caller, session_id) as workspace:
        return file_stat(await workspace.stat(body.path))


@router.post(FS + "/_/grep", response_model=ListResponse[GrepResultResponse])
async def grep_files(
    request: Request, caller: CallerDep, session_id: str, body: GrepRequest
) -> ListResponse[GrepResultResponse]:
    """Search the session workspace's files for a regular expression, optionally only in paths
    matching ``path_pattern``; matches grouped by file."""
    async with services(request).files.workspace(caller, session_id) as workspace:
        matches, _ = await workspace.grep(body.pattern, path_pattern=body.path_pattern)
    by_path: dict[str, list[GrepMatchResponse]] = {}
    for m in matches:
        by_path.setdefault(m.path, []).append(
            GrepMatchResponse(path=m.path, line_number=m.line_number, line=m.line)
        )
    results = [GrepResultResponse(path=p, matches=found) for p, found in by_path.items()]
    return ListResponse(data=results, total=len(results))


@router.post(FS + "/_/move", response_model=SessionFileResponse)
async def move_path(
    request: Request, caller: CallerDep, session_id: str, body: MoveFileRequest
) -> SessionFileResponse:
    """Move or rename a file or directory of the session workspace."""
    async with services(request).files.workspace(caller, session_id, write=True) as workspace:
        return session_file(await workspace.move(body.src_path, body.dst_path))


@router.post(
    FS + "/_/copy", response_model=SessionFileResponse, status_code=status.HTTP_201_CREATED
)
async def copy_path(
    request: Request, caller: CallerDep, session_id: str, body: CopyFileRequest
) -> SessionFileResponse:
    """Copy a file or directory of the session workspace to a new path."""
    async with services(request).files.workspace(caller, session_id, write=True) as workspace:
        return session_file(await workspace.copy(body.src_path, body.dst_path))


@router.get(
    FS + "/{path:path}", response_model=SessionFileResponse | ListResponse[FileInfoResponse]
)
async def get_path(
    request: Request, caller: CallerDep, session_id: str, path: str, recursive: bool = False
) -> SessionFileResponse | ListResponse[FileInfoResponse]:
    """Read a file of the session workspace, or list a directory (``recursive`` for everything below
    it)."""
    async with services(request).files.workspace(caller, session_id) as workspace:
        entry = await workspace.stat(path)
        if entry.is_directory:
            entries = await workspace.listing(path, recursive=recursive)
            return ListResponse(data=[file_info(e) for e in entries], total=len(entries))
        return session_file(await workspace.read(path))


@router.post(
    FS + "/{path:path}", response_model=SessionFileResponse, status_code=status.HTTP_201_CREATED
)
async def create_path(
    request: Request, caller: CallerDep, session_id: str, path: str, body: CreateFileRequest
) -> SessionFileResponse:
    """Create a file (with ``content``, text or base64) or a directory at a path of the session
    workspace; 409 if something is there."""
    normalize_path(path)  # a bad path is a 400 before the session lookup's 404
    async with services(request).files.workspace(caller, session_id, write=True) as workspace:
        if body.is_directory:
            entry = await workspace.make_directory(path, is_readonly=bool(body.is_readonly))
        else:
            content = decode_content(body.content or "", body.encoding or "text")
            entry, _ = await workspace.write(
                path, content, is_readonly=bool(body.is_readonly), create_only=True
            )
        return session_file(entry)


@router.put(FS + "/{path:path}", response_model=SessionFileResponse)
async def update_path(
    request: Request, caller: CallerDep, session_id: str, path: str, body: UpdateFileRequest
) -> SessionFileResponse:
    """Replace a file's content, change whether it is read-only, or both."""
    normalize_path(path)
    if body.content is None and body.is_readonly is None:
        raise InvalidInput("give content, is_readonly or both", field="content")
    async with services(request).files.workspace(caller, session_id, write=True) as workspace:
        if body.content is None:
            assert body.is_readonly is not None
            return session_file(await workspace.set_readonly(path, body.is_readonly))
        content = decode_content(body.content, body.encoding or "text")
        entry, _ = await workspace.write(
            path, content, is_readonly=body.is_readonly, update_only=True, may_unlock=True
        )
        return session_file(entry)


@router.delete(FS + "/{path:path}", response_model=DeleteFileResponse)
async def delete_path(
    request: Request, caller: CallerDep, session_id: str, path: str, recursive: bool = False
) -> DeleteFileResponse:
    """Delete a file, or a directory (``recursive`` for one that is not empty)."""
    normalize_path(path)
    async with services(request).files.workspace(caller, session_id, write=True) as workspace:
        await workspace.delete(path, recursive=recursive)
    return DeleteFileResponse(deleted=True)
