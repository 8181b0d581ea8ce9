"""Session files through the REST API: a session's files are its workspace's files.

The file system itself (paths, parents, read-only entries, quotas, compare-and-set) is
``store.workspace_files.Workspace``, below the services so the ``file_system`` tools use the
same code; ``FileService`` checks the caller may see the session, then opens the session's
workspace (``sessions.workspace_id``: its automatic one, or the shared one it names).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from everloop.errors import Conflict, NotFound
from everloop.services.auth import Caller
from everloop.services.session_storage import SessionAccess
from everloop.store import workspaces as workspace_store
from everloop.store.db import Database
from everloop.store.workspace_files import (
    MAX_GREP_LINE_CHARS,
    MAX_GREP_MATCHES,
    Encoding,
    FileLimits,
    GrepMatch,
    HashMismatch,
    Workspace,
    copy_initial_files,
    decode_content,
    encode_content,
    merge_initial_files,
)

__all__ = [
    "MAX_GREP_LINE_CHARS",
    "MAX_GREP_MATCHES",
    "Encoding",
    "FileLimits",
    "FileService",
    "GrepMatch",
    "HashMismatch",
    "Workspace",
    "copy_initial_files",
    "decode_content",
    "encode_content",
    "merge_initial_files",
    "opened",
]


@asynccontextmanager
async def opened(db: Database, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """A connection for a file operation; a unique-key race becomes a retryable 409."""
    try:
        async with db.write() if write else db.read() as conn:
            yield conn
    except IntegrityError:
        # Two writers created the same path at once (PostgreSQL); the loser retries.
        raise Conflict("the file system changed concurrently; retry", code="conflict") from None


class FileService:
    """The session file system for the REST API: session access first, then its workspace."""

    def __init__(self, db: Database, sessions: SessionAccess, limits: FileLimits) -> None:
        self._db = db
        self._sessions = sessions
        self.limits = limits

    @asynccontextmanager
    async def workspace(
        self, caller: Caller, session_id: str, *, write: bool = False
    ) -> AsyncIterator[Workspace]:
        async with opened(self._db, write=write) as conn:
            await self._sessions.get(caller, session_id, conn)
            workspace_id = await workspace_store.of_session(conn, session_id)
            if workspace_id is None:
                raise NotFound.of("session", session_id)
            yield Workspace(conn, workspace_id, self.limits)
