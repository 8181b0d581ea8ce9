"""Memories for the REST API: CRUD (delete archives), their files, and git syncs.

A memory's name is unique in its organization (archived ones keep theirs) and is a slug, since
sessions see the memory at ``/memory/<name>/``. A git source's URL credentials are sealed with
``crypto.SecretBox`` (associated data: org and memory id) and never returned. ``sync`` fetches
the source outside any transaction (``services.memory_git``), then replaces the files and
records the outcome in one; a failed sync records ``last_sync_error`` and keeps the files of the
last good one. ``sync_due`` syncs the memories whose ``sync_interval_secs`` has passed
(``MemorySyncTimer``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from everloop.crypto import SecretBox
from everloop.domain.memories import Memory, git_source, parse_source
from everloop.domain.timestamps import now
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.memory_git import GitFetcher, SyncFailed
from everloop.store import memories as store
from everloop.store.db import Database
from everloop.store.memory_files import MemoryFile as MemoryFile  # what the API shows
from everloop.store.memory_files import MemoryFiles, MemoryLimits

log = logging.getLogger("everloop.memories")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_DESCRIPTION_CHARS = 2000


def credentials_aad(org_id: str, memory_id: str) -> str:
    return f"{org_id}/{memory_id}/source"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            "name must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (it is the mount name /memory/<name>/)",
            field="name",
        )
    return name


def _check_description(description: Any) -> str | None:
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS
    ):
        raise InvalidInput(
            f"description must be a string of at most {MAX_DESCRIPTION_CHARS} characters",
            field="description",
        )
    return description


def readonly_reason(memory: Memory) -> str | None:
    if memory.is_readonly:
        return (
            f"memory '{memory.name}' is synced from its {memory.source_type} source and is "
            "read-only; change the repository and sync instead"
        )
    return None


class MemoryService:
    def __init__(
        self, db: Database, secrets: SecretBox, limits: MemoryLimits, fetcher: GitFetcher
    ) -> None:
        self._db = db
        self._secrets = secrets
        self.limits = limits
        self._fetcher = fetcher

    async def list(
        self, caller: Caller, *, search: str | None = None, include_archived: bool = False
    ) -> list[Memory]:
        async with self._db.read() as conn:
            return await store.list_memories(
                conn, caller.organization_id, search=search, include_archived=include_archived
            )

    async def get(self, caller: Caller, memory_id: str) -> Memory:
        async with self._db.read() as conn:
            return await self._require(conn, caller.organization_id, memory_id)

    async def create(self, caller: Caller, body: Mapping[str, Any]) -> Memory:
        name = check_name(body.get("name"))
        description = _check_description(body.get("description"))
        source_type, source, credentials = parse_source(body.get("source"))
        org_id = caller.organization_id
        values = store.new_memory_values(
            org_id, name, description=description, source_type=source_type, source=source
        )
        if credentials is not None:
            values["source_credentials_encrypted"] = self._secrets.seal(
                credentials, credentials_aad(org_id, values["id"])
            )
        try:
            async with self._db.write() as conn:
                await self._unique_name(conn, org_id, name)
                await store.insert(conn, values)
                return await self._require(conn, org_id, values["id"])
        except IntegrityError:
            raise self._name_taken(name) from None

    async def update(self, caller: Caller, memory_id: str, body: Mapping[str, Any]) -> Memory:
        org_id = caller.organization_id
        changes: dict[str, Any] = {}
        if body.get("name") is not None:
            changes["name"] = check_name(body["name"])
        if "description" in body:
            changes["description"] = _check_description(body["description"])
        if body.get("source") is not None:
            source_type, source, credentials = parse_source(body["source"])
            changes.update(source_type=source_type, source=source, sync_status="idle")
            changes["source_credentials_encrypted"] = (
                self._secrets.seal(credentials, credentials_aad(org_id, memory_id))
                if credentials is not None
                else None
            )
        try:
            async with self._db.write() as conn:
                memory = await self._require(conn, org_id, memory_id)
                if "name" in changes and changes["name"] != memory.name:
                    await self._unique_name(conn, org_id, changes["name"])
                if changes:
                    changes["updated_at"] = now()
                    await store.update_memory(conn, memory_id, changes)
                return await self._require(conn, org_id, memory_id)
        except IntegrityError:
            raise self._name_taken(str(changes.get("name"))) from None

    async def archive(self, caller: Caller, memory_id: str) -> None:
        async with self._db.write() as conn:
            memory = await self._require(conn, caller.organization_id, memory_id)
            if memory.status != "archived":
                ts = now()
                values = {"status": "archived", "archived_at": ts, "updated_at": ts}
                await store.update_memory(conn, memory_id, values)

    @asynccontextmanager
    async def files(
        self, caller: Caller, memory_id: str, *, write: bool = False
    ) -> AsyncIterator[MemoryFiles]:
        try:
            async with self._db.write() if write else self._db.read() as conn:
                memory = await self._require(conn, caller.organization_id, memory_id)
                yield MemoryFiles(conn, memory.id, self.limits, readonly=readonly_reason(memory))
        except IntegrityError:
            raise Conflict("the memory changed concurrently; retry", code="conflict") from None

    # -- git sync --------------------------------------------------------------------------

    async def sync(self, caller: Caller, memory_id: str) -> Memory:
        memory = await self.get(caller, memory_id)
        if memory.source_type == "manual":
            raise InvalidInput(
                "this memory has no git source to sync (set one with PATCH source)",
                code="memory_not_synced",
                field="source",
            )
        return await self._sync(memory)

    async def _sync(self, memory: Memory) -> Memory:
        org_id = memory.organization_id
        async with self._db.write() as conn:
            await store.update_memory(conn, memory.id, {"sync_status": "syncing"})
            sealed = await store.sealed_credentials(conn, memory.id)
        credentials = (
            self._secrets.open(sealed, credentials_aad(org_id, memory.id)) if sealed else None
        )
        error: str | None = None
        try:
            tree = await self._fetcher.fetch(git_source(memory, credentials))
            async with self._db.write() as conn:
                current = await self._require(conn, org_id, memory.id)
                await MemoryFiles(conn, memory.id, self.limits).replace_all(tree.files)
                ts = now()
                await store.update_memory(
                    conn,
                    current.id,
                    {
                        "sync_status": "succeeded",
                        "last_synced_at": ts,
                        "last_sync_error": None,
                        "synced_commit": tree.commit,
                        "updated_at": ts,
                    },
                )
                return await self._require(conn, org_id, memory.id)
        except SyncFailed as exc:
            error = exc.message
        except Exception as exc:  # a file the tree cannot hold, a quota: recorded, not raised
            error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        async with self._db.write() as conn:
            ts = now()
            values = {"sync_status": "failed", "last_sync_error": error, "updated_at": ts}
            await store.update_memory(conn, memory.id, values)
            return await self._require(conn, org_id, memory.id)

    async def sync_due(self) -> int:
        """Sync every active memory whose interval has passed; how many it synced."""
        async with self._db.read() as conn:
            candidates = await store.due_for_sync(conn)
        moment = datetime.now(UTC)
        synced = 0
        for memory in candidates:
            last = memory.last_synced_at
            if (
                last is not None
                and datetime.fromisoformat(last) + timedelta(seconds=memory.sync_interval_secs)
                > moment
            ):
                continue
            await self._sync(memory)
            synced += 1
        return synced

    # -- internals -------------------------------------------------------------------------

    async def _require(self, conn: Any, org_id: str, memory_id: str) -> Memory:
        found = await store.get(conn, org_id, memory_id)
        if found is None:
            raise NotFound.of("memory", memory_id)
        return found

    async def _unique_name(self, conn: Any, org_id: str, name: str) -> None:
        if await store.get_by_name(conn, org_id, name) is not None:
            raise self._name_taken(name)

    @staticmethod
    def _name_taken(name: str) -> Conflict:
        return Conflict(
            f"a memory named '{name}' already exists in this organization (archived ones "
            "keep their names)",
            code="name_taken",
            field="name",
        )


class MemorySyncTimer:
    """Runs ``MemoryService.sync_due`` every ``poll_seconds`` while the server runs."""

    def __init__(self, memories: MemoryService, *, poll_seconds: float) -> None:
        self._memories = memories
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self._poll > 0:
            self._task = asyncio.create_task(self._run(), name="memory-sync-timer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._memories.sync_due()
            except Exception:
                log.exception("memory sync timer failed")
            await asyncio.sleep(self._poll)
