"""Routes of a file area: ``/v1/sessions/{session_id}/fs`` and ``/v1/workspaces/{workspace_id}/fs``.

One implementation serves both: a session's files are its workspace's files, so the session
routes open the session's workspace and the workspace routes the named one
(``store.workspace_files.Workspace`` under both). ``GET /fs/{path}`` reads a file or lists a
directory; ``POST`` creates, ``PUT`` updates (``content_hash``: compare-and-set), ``DELETE``
deletes (``?recursive=true`` for a directory with content). Actions live under the reserved
``/fs/_/``: ``grep``, ``stat``, ``move``, ``copy``, ``download/{path}`` (raw bytes),
``preview/{path}`` (an HTML file, sandboxed). Paths may
carry the ``/workspace`` prefix; ``..``, NUL and backslashes are a 400.
"""

# No ``from __future__ import annotations``: the routes are made by a function, and FastAPI
# reads their parameter annotations (which name that function's locals) as objects.

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

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
from everloop.errors import InvalidInput, MalformedInput, UnsupportedMedia
from everloop.services.auth import Caller
from everloop.services.files import Workspace, decode_content

Opener = Callable[[Request, Caller, str, bool], AbstractAsyncContextManager[Workspace]]


def _session_files(
    request: Request, caller: Caller, session_id: str, write: bool
) -> AbstractAsyncContextManager[Workspace]:
    return services(request).files.workspace(caller, session_id, write=write)


# An HTML file previewed runs sandboxed: an opaque origin (no cookies, storage or parent DOM),
# scripts allowed, no forms, popups or top-level navigation; it loads nothing from elsewhere.
_PREVIEW_POLICY = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'"
)


def file_routes(router: APIRouter, base: str, id_name: str, open_files: Opener) -> None:
    """The file routes under ``{base}/{{id_name}}/fs``, opening the area with ``open_files``."""
    fs = f"{base}/{{{id_name}}}/fs"
    OwnerId = Annotated[str, Path(alias=id_name, description="The session or workspace id.")]

    @router.get(fs, response_model=ListResponse[FileInfoResponse])
    async def list_root(
        request: Request, caller: CallerDep, owner_id: OwnerId, recursive: bool = False
    ) -> ListResponse[FileInfoResponse]:
        """List the workspace's top directory.

        ``recursive`` lists everything below it too. Under a session: the session's workspace.
        """
        async with open_files(request, caller, owner_id, False) as workspace:
            entries = await workspace.listing("/", recursive=recursive)
        return ListResponse(data=[file_info(e, owner_id) for e in entries], total=len(entries))

    @router.post(fs + "/_/stat", response_model=FileStatResponse)
    async def stat_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, body: StatRequest
    ) -> FileStatResponse:
        """Metadata of one file or directory.

        Size, kind, read-only flag, content hash and times, without the content.
        """
        async with open_files(request, caller, owner_id, False) as workspace:
            return file_stat(await workspace.stat(body.path))

    @router.post(fs + "/_/grep", response_model=ListResponse[GrepResultResponse])
    async def grep_files(
        request: Request, caller: CallerDep, owner_id: OwnerId, body: GrepRequest
    ) -> ListResponse[GrepResultResponse]:
        """Search the files for a regular expression.

        RE2 syntax, line by line, optionally only in paths matching ``path_pattern``; matches
        grouped by file.
        """
        async with open_files(request, caller, owner_id, False) as workspace:
            matches, _ = await workspace.grep(body.pattern, path_pattern=body.path_pattern)
        by_path: dict[str, list[GrepMatchResponse]] = {}
        for m in matches:
            by_path.setdefault(m.path, []).append(
                GrepMatchResponse(path=m.path, line_number=m.line_number, line=m.line)
            )
        results = [GrepResultResponse(path=p, matches=found) for p, found in by_path.items()]
        return ListResponse(data=results, total=len(results))

    @router.post(fs + "/_/move", response_model=SessionFileResponse)
    async def move_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, body: MoveFileRequest
    ) -> SessionFileResponse:
        """Move or rename a file or directory.

        Parents of the target are created; 409 if the target exists or an entry is read-only.
        """
        async with open_files(request, caller, owner_id, True) as workspace:
            return session_file(await workspace.move(body.src_path, body.dst_path), owner_id)

    @router.post(
        fs + "/_/copy", response_model=SessionFileResponse, status_code=status.HTTP_201_CREATED
    )
    async def copy_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, body: CopyFileRequest
    ) -> SessionFileResponse:
        """Copy a file to a new path.

        409 if something is at the target; the copy counts against the workspace's quota.
        """
        async with open_files(request, caller, owner_id, True) as workspace:
            return session_file(await workspace.copy(body.src_path, body.dst_path), owner_id)

    @router.get(
        fs + "/_/download/{path:path}",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def download_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, path: str
    ) -> Response:
        """Download a file's raw bytes.

        ``application/octet-stream`` with ``Content-Disposition: attachment`` naming the file;
        a directory is a 409 ``is_a_directory``.
        """
        async with open_files(request, caller, owner_id, False) as workspace:
            entry = await workspace.read(path)
        assert entry.content is not None
        quoted = entry.name.replace("\\", "_").replace('"', "_")
        return Response(
            content=entry.content,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{quoted}"',
                "ETag": f'"{entry.content_hash}"',
            },
        )

    @router.get(
        fs + "/_/preview/{path:path}",
        response_class=Response,
        responses={
            200: {"content": {"text/html": {}}},
            400: {"description": "The path is a directory"},
            415: {"description": "The file is not an HTML document"},
        },
    )
    async def preview_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, path: str
    ) -> Response:
        """Render an HTML file, sandboxed.

        An ``.html``/``.htm`` file as a ``text/html`` document under a ``sandbox`` content
        security policy: a viewer can show it (scripts included) in an iframe without it reaching
        everloop's origin, storage, the parent page or top-level navigation. A directory is a
        400; any other file a 415 (download it instead).
        """
        async with open_files(request, caller, owner_id, False) as workspace:
            found = await workspace.stat(path)
            if found.is_directory:
                raise MalformedInput(f"'{found.path}' is a directory", field="path")
            if not found.name.lower().endswith((".html", ".htm")):
                raise UnsupportedMedia(
                    f"'{found.path}' is not an HTML file: download it with fs/_/download"
                )
            entry = await workspace.read(path)
        assert entry.content is not None
        return Response(
            content=entry.content,
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": _PREVIEW_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    @router.get(
        fs + "/{path:path}", response_model=SessionFileResponse | ListResponse[FileInfoResponse]
    )
    async def get_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, path: str, recursive: bool = False
    ) -> SessionFileResponse | ListResponse[FileInfoResponse]:
        """Read a file, or list a directory.

        A directory lists its entries (``recursive`` for everything below it); a file comes with
        its content (text, or base64 for binary).
        """
        async with open_files(request, caller, owner_id, False) as workspace:
            entry = await workspace.stat(path)
            if entry.is_directory:
                entries = await workspace.listing(path, recursive=recursive)
                return ListResponse(
                    data=[file_info(e, owner_id) for e in entries], total=len(entries)
                )
            return session_file(await workspace.read(path), owner_id)

    @router.post(
        fs + "/{path:path}", response_model=SessionFileResponse, status_code=status.HTTP_201_CREATED
    )
    async def create_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, path: str, body: CreateFileRequest
    ) -> SessionFileResponse:
        """Create a file or a directory.

        A file with ``content`` (text or base64), or a directory with ``is_directory``; 409 if
        something is there, 413 over the file size limit or the workspace's quota.
        """
        normalize_path(path)  # a bad path is a 400 before the lookup's 404
        async with open_files(request, caller, owner_id, True) as workspace:
            if body.is_directory:
                entry = await workspace.make_directory(path, is_readonly=bool(body.is_readonly))
            else:
                content = decode_content(body.content or "", body.encoding or "text")
                entry, _ = await workspace.write(
                    path, content, is_readonly=bool(body.is_readonly), create_only=True
                )
            return session_file(entry, owner_id)

    @router.put(fs + "/{path:path}", response_model=SessionFileResponse)
    async def update_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, path: str, body: UpdateFileRequest
    ) -> SessionFileResponse:
        """Replace a file's content, change whether it is read-only, or both.

        With ``content_hash`` the content is replaced only while the file's hash is still that
        one: a stale hash is a 409 ``hash_mismatch`` whose message names the current hash.
        """
        normalize_path(path)
        if body.content is None and body.is_readonly is None:
            raise InvalidInput("give content, is_readonly or both", field="content")
        if body.content is None and body.content_hash is not None:
            raise InvalidInput("content_hash guards a content change", field="content_hash")
        async with open_files(request, caller, owner_id, True) as workspace:
            if body.content is None:
                assert body.is_readonly is not None
                return session_file(await workspace.set_readonly(path, body.is_readonly), owner_id)
            content = decode_content(body.content, body.encoding or "text")
            entry, _ = await workspace.write(
                path,
                content,
                is_readonly=body.is_readonly,
                update_only=True,
                may_unlock=True,
                expected_hash=body.content_hash,
            )
            return session_file(entry, owner_id)

    @router.delete(fs + "/{path:path}", response_model=DeleteFileResponse)
    async def delete_path(
        request: Request, caller: CallerDep, owner_id: OwnerId, path: str, recursive: bool = False
    ) -> DeleteFileResponse:
        """Delete a file or a directory.

        A directory that is not empty needs ``recursive``; read-only entries are refused (409).
        """
        normalize_path(path)
        async with open_files(request, caller, owner_id, True) as workspace:
            await workspace.delete(path, recursive=recursive)
        return DeleteFileResponse(deleted=True)


router = APIRouter(tags=["session-files"])
file_routes(router, "/v1/sessions", "session_id", _session_files)
