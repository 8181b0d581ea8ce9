"""Sessions: creating, reading, listing, updating, pinning and deleting them.

A session is created ``started`` and records ``session.started`` as its first event, in the same
transaction as the row: a session never exists without its log. The creator's user connections
become the session's secrets in that transaction too (``services.connections``).

Deleting a session deletes its subagents (its descendants) with it, in one transaction: their
working turns are cancelled first (``SubtreeStopper``, ``services.subagents``).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.event_log import NewEvent
from everloop.domain.resources import (
    Agent,
    Harness,
    ResourceStatus,
    Session,
    SessionFilter,
    SessionStatus,
)
from everloop.domain.roles import Role, has_role
from everloop.domain.runtime_agent import NO_CONTROLS, Controls, Layer, RuntimeAgent
from everloop.domain.timestamps import now
from everloop.engine.assembly import Assembler
from everloop.errors import Conflict, InvalidInput, NotFound
from everloop.services.agent_identities import check_identity
from everloop.services.agent_versions import captured_version_id
from everloop.services.auth import Caller
from everloop.services.blueprints import BlueprintService
from everloop.services.capability_refs import check_capability_refs
from everloop.services.config_resources import (
    AgentService,
    HarnessService,
    _check_tool_names,
)
from everloop.services.files import FileLimits, copy_initial_files
from everloop.services.mcp_servers import ScopedMcpHeaders, check_mcp_refs
from everloop.services.models import ModelService
from everloop.services.workspaces import resolve_shared
from everloop.store import session_titles
from everloop.store.channels import owned_sessions
from everloop.store.db import Database
from everloop.store.event_log import start_log
from everloop.store.runtime_layers import load_agent_layer, load_harness_chain, session_layer
from everloop.store.schedules import delete_session_schedules
from everloop.store.session_databases import delete_session_databases
from everloop.store.session_rows import HarnessRoot, session_from_row
from everloop.store.session_storage import purge_session
from everloop.store.session_tasks import descendant_ids, lock_tree, tree_root
from everloop.store.sql import Store
from everloop.store.tables import sessions
from everloop.store.turns import session_config
from everloop.store.workspaces import create_automatic

FeaturesOf = Callable[[Sequence[str]], tuple[str, ...]]


class ConnectionInjector(Protocol):
    """Gives a new session its creator's user connections as secrets
    (``services.connections.ConnectionService``)."""

    async def inject(
        self, conn: AsyncConnection, org_id: str, user_id: str, session_id: str
    ) -> tuple[str, ...]: ...


class SubtreeStopper(Protocol):
    """Stops the work of a session's delegation tree before it is deleted
    (``services.subagents.SubagentService``)."""

    async def stop_tree(self, conn: AsyncConnection, session_id: str) -> list[tuple[str, str]]: ...

    def wake(self, cancelled: list[tuple[str, str]], *sessions: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Layers:
    """A session's harness chain and agent (version) as layers."""

    harness_chain: tuple[Layer, ...]
    agent_layer: Layer | None


@dataclass(frozen=True, slots=True)
class _NewSessionLayers(_Layers):
    """The configuration layers of a session being created (``engine.assembly.SessionLayers``)."""

    session_layer: Layer | None
    blueprint_id: str | None
    blueprint_config: Mapping[str, object] | None


def _shallow(value: Harness | Agent) -> dict[str, Any]:
    """A resource's fields as its row (shallow: ``dataclasses.asdict`` copies every value)."""
    return {f.name: getattr(value, f.name) for f in fields(value)}


def uuid_text(hex32: str | None) -> str | None:
    if hex32 is None or len(hex32) != 32:
        return hex32
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


class SessionService:
    def __init__(
        self,
        db: Database,
        store: Store,
        harnesses: HarnessService,
        agents: AgentService,
        features_of: FeaturesOf,
        models: ModelService,
        file_limits: FileLimits | None = None,
        *,
        known_capabilities: Container[str],
        assembler: Assembler,
        blueprints: BlueprintService,
        mcp_headers: ScopedMcpHeaders,
        subagents: SubtreeStopper | None = None,
        connections: ConnectionInjector | None = None,
    ) -> None:
        self._subagents = subagents
        self._connections = connections
        self._mcp_headers = mcp_headers
        self._known_capabilities = known_capabilities
        self._assembler = assembler
        self._blueprints = blueprints
        self._db = db
        self._store = store
        self._harnesses = harnesses
        self._agents = agents
        self._features_of = features_of
        self._models = models
        self._file_limits = file_limits or FileLimits()

    async def create(self, caller: Caller, fields: dict[str, Any]) -> Session:
        async with self._db.write() as conn:
            return await self.create_in(conn, caller, fields)

    async def create_in(
        self, conn: AsyncConnection, caller: Caller, fields: dict[str, Any]
    ) -> Session:
        """``create`` inside the caller's transaction, so that what the session is created for
        (a health-check case: ``services.health_checks``) commits with it or not at all."""
        supplied_id = fields.pop("id", None)
        session_id = supplied_id or ids.new_id("session")
        ids.parse("session", session_id, field="id")
        agent_id = fields.pop("agent_id", None)
        agent_name = fields.pop("agent_name", None)
        harness_id = fields.pop("harness_id", None)
        harness_name = fields.pop("harness_name", None)
        shared_workspace_id = fields.pop("workspace_id", None)
        if agent_id and agent_name:
            raise InvalidInput("give agent_id or agent_name, not both", field="agent_id")
        for key, prefix in (("model_id", "model"), ("agent_identity_id", "identity")):
            if fields.get(key) is not None:
                ids.parse(prefix, fields[key], field=key)  # type: ignore[arg-type]
        _check_tool_names(fields.get("tools") or [])
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        if fields.get("blueprint_id"):
            fields["blueprint_config"] = self._blueprints.validated_config(
                fields["blueprint_id"], fields.get("blueprint_config")
            )
        elif fields.get("blueprint_config") is not None:
            raise InvalidInput("blueprint_config needs a blueprint_id", field="blueprint_config")
        ts = now()
        # A generated id is a fresh UUIDv7 (monotonic in this process, 74 random bits
        # across processes): only one the client chose can be taken already.
        if supplied_id and await self._store.id_exists(conn, sessions, session_id):
            raise Conflict(f"session id '{session_id}' is already in use", field="id")
        await check_mcp_refs(conn, caller.organization_id, fields.get("capabilities"))
        await self._models.ensure_exists(
            conn, caller.organization_id, fields.get("model_id"), "model_id"
        )
        await check_identity(conn, caller.organization_id, fields.get("agent_identity_id"))
        if shared_workspace_id is not None:
            await resolve_shared(conn, caller.organization_id, shared_workspace_id)
        agent = None
        if agent_id:
            agent = await self._agents.get(caller, agent_id, conn)
        elif agent_name:
            agent = await self._agents.get_by_name(conn, caller, agent_name)
        if agent is not None and agent.status is not ResourceStatus.ACTIVE:
            raise InvalidInput(
                f"agent '{agent.name}' is archived and cannot be used", field="agent_id"
            )
        harness_row: dict[str, Any] | None = None
        if harness_id or harness_name or agent is None:
            harness = await self._harnesses.resolve_for_use(
                conn, caller, harness_id=harness_id, harness_name=harness_name
            )
            resolved_harness_id = harness.id
            harness_row = _shallow(harness)
        else:
            resolved_harness_id = agent.harness_id
        version_id = await captured_version_id(conn, agent) if agent else None
        title = fields.get("title")
        row: dict[str, Any] = {
            "id": session_id,
            "organization_id": caller.organization_id,
            "harness_id": resolved_harness_id,
            "agent_id": agent.id if agent else None,
            "agent_version_id": version_id,
            "agent_identity_id": fields.get("agent_identity_id"),
            "owner_principal_id": caller.principal_id,
            "resolved_owner_user_id": uuid_text(caller.user_id),
            "title": title,
            "title_search": title.lower() if title else None,
            "locale": fields.get("locale"),
            "preview": None,
            "output_preview": None,
            "tags": fields.get("tags") or [],
            "model_id": fields.get("model_id"),
            "capabilities": fields.get("capabilities") or [],
            "tools": fields.get("tools") or [],
            "mcp_servers": self._mcp_headers.seal(
                caller.organization_id, fields.get("mcp_servers")
            ),
            "system_prompt": fields.get("system_prompt"),
            "initial_files": fields.get("initial_files") or [],
            "hints": fields.get("hints"),
            "network_access": fields.get("network_access"),
            "max_iterations": fields.get("max_iterations"),
            "parallel_tool_calls": fields.get("parallel_tool_calls"),
            "status": SessionStatus.STARTED.value,
            "created_at": ts,
            "updated_at": ts,
            "started_at": None,
            "finished_at": None,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_creation_tokens": 0,
            "parent_session_id": None,
            "subagent_name": None,
            "subagent_task": None,
            "subagent_status": None,
            "blueprint_id": fields.get("blueprint_id"),
            "blueprint_config": fields.get("blueprint_config"),
            "last_sequence": 1,  # session.started, written below
            "deleted_at": None,
            "workspace_id": shared_workspace_id,
        }
        # The session's RuntimeAgent must assemble (a harness cycle, two tools of one name
        # are a 422), from the rows just read rather than read again.
        layers = _NewSessionLayers(
            harness_chain=await load_harness_chain(
                conn, caller.organization_id, resolved_harness_id, first=harness_row
            ),
            agent_layer=(
                await load_agent_layer(
                    conn,
                    caller.organization_id,
                    agent.id,
                    version_id,
                    agent_row=_shallow(agent),
                )
                if agent
                else None
            ),
            session_layer=session_layer(row),
            blueprint_id=row["blueprint_id"],
            blueprint_config=row["blueprint_config"],
        )
        runtime = self._assembler.for_session(layers)
        if shared_workspace_id is None:
            # Its own workspace: one more insert in this transaction.
            row["workspace_id"] = await create_automatic(
                conn, caller.organization_id, session_id, caller.principal_id, ts
            )
        await self._store.insert_session(conn, row)
        if self._connections is not None:
            # The creator's user connections become its secrets (one indexed read if none).
            await self._connections.inject(conn, caller.organization_id, caller.user_id, session_id)
        # Its initial files, merged by path across the layers, are copied in.
        await copy_initial_files(
            conn,
            row["workspace_id"],
            [list(runtime.initial_files)],
            self._file_limits,
            only_missing=shared_workspace_id is not None,
        )
        await start_log(
            conn,
            session_id,
            [
                NewEvent(
                    "session.started",
                    {"agent_id": row["agent_id"], "model_id": row["model_id"]},
                )
            ],
        )
        # The session as a read would give it, from the row just written: the caller's own
        # principal owns it and has not pinned it yet.
        return session_from_row(
            row,
            is_pinned=False,
            owner_kind=caller.kind,
            owner_subject_id=caller.owner_subject_id,
            features=self._features_of(
                self._assembler.capability_refs(
                    self._feature_layers(row["capabilities"], row["blueprint_id"], layers)
                )
            ),
        )

    async def get(
        self, caller: Caller, session_id: str, conn: AsyncConnection | None = None
    ) -> Session:
        ids.parse("session", session_id, field="session_id")
        if conn is None:
            async with self._db.read() as own:
                return await self._read(own, caller, session_id)
        return await self._read(conn, caller, session_id)

    async def check_visible(self, caller: Caller, session_id: str) -> None:
        """404 unless ``caller`` may see the session: its effective owner, or an admin. A
        session that does not exist is left for the route to refuse."""
        if has_role(caller.role, Role.ADMIN):
            return
        ids.parse("session", session_id, field="session_id")
        async with self._db.read() as conn:
            owner = await self._store.session_owner_user(conn, caller.organization_id, session_id)
        if owner is not None and owner != (uuid_text(caller.user_id) or ""):
            raise NotFound.of("session", session_id)

    async def _read(self, conn: AsyncConnection, caller: Caller, session_id: str) -> Session:
        found = await self._store.get_session(
            conn, caller.organization_id, session_id, principal_id=caller.principal_id
        )
        if found is None:
            raise NotFound.of("session", session_id)
        return await self._with_features(conn, caller, found)

    async def _with_features(
        self, conn: AsyncConnection, caller: Caller, session: Session
    ) -> Session:
        return (await self._with_features_many(conn, caller, [session]))[0]

    async def _with_features_many(
        self,
        conn: AsyncConnection,
        caller: Caller,
        found: Sequence[Session],
        roots: Mapping[str, HarnessRoot | None] | None = None,
    ) -> list[Session]:
        """Resolve ``features`` of many sessions, reading each harness and agent once.

        A page of sessions mostly shares a few harnesses and agents: one read per distinct one,
        not per session, keeps a 50-item page from costing 100 queries.
        """
        org_id = caller.organization_id
        chains: dict[str, tuple[Layer, ...]] = {}
        agent_layers: dict[tuple[str | None, str | None], Layer | None] = {}
        # Features depend on the harness, the agent (version), the blueprint and the order of
        # the session's own capability refs: most sessions of a page share all four.
        known: dict[tuple[Any, ...], tuple[str, ...]] = {}
        result = []
        for s in found:
            if s.harness_id not in chains:
                chains[s.harness_id] = await self._harness_chain(conn, org_id, s.harness_id, roots)
            key = (s.agent_id, s.agent_version_id)
            if key not in agent_layers:
                agent_layers[key] = await load_agent_layer(conn, org_id, *key)
            own_refs = tuple(str(c.get("ref")) for c in s.capabilities)
            memo = (s.harness_id, key, s.blueprint_id, own_refs)
            features = known.get(memo)
            if features is None:
                layers = self._feature_layers(
                    s.capabilities,
                    s.blueprint_id,
                    _Layers(chains[s.harness_id], agent_layers[key]),
                )
                features = known[memo] = self._features_of(self._assembler.capability_refs(layers))
            result.append(replace(s, features=features))
        return result

    async def _harness_chain(
        self,
        conn: AsyncConnection,
        org_id: str,
        harness_id: str,
        roots: Mapping[str, HarnessRoot | None] | None,
    ) -> tuple[Layer, ...]:
        """A session's harness chain for its features, from what its listing read of the
        harness when it did (its parents, if any, are read)."""
        if roots is None or harness_id not in roots:
            return await load_harness_chain(conn, org_id, harness_id)
        root = roots[harness_id]
        if root is None:
            return ()  # as load_harness_chain gives for a harness that is not there
        first = {
            "id": harness_id,
            "parent_harness_id": root.parent_harness_id,
            "capabilities": root.capabilities,
        }
        return await load_harness_chain(conn, org_id, harness_id, first=first)

    def _feature_layers(
        self, capabilities: Sequence[Any], blueprint_id: str | None, layers: _Layers
    ) -> list[Layer]:
        """The layers whose capabilities make a session's ``features``."""
        own = Layer(kind="session", capabilities=capabilities)
        if blueprint_id and blueprint_id in self._assembler.blueprints:
            return [self._assembler.blueprint(blueprint_id).layer(None), own]
        return [*layers.harness_chain, *filter(None, [layers.agent_layer]), own]

    async def list_owned(
        self, caller: Caller, agent_id: str, *, limit: int, after: tuple[str, str] | None
    ) -> list[Session]:
        """The caller's own top-level sessions of one agent, most recently active first, after
        the keyset position ``after`` = (updated_at, id) (the Agent Execution API's listing)."""
        async with self._db.read() as conn:
            found = await owned_sessions(
                conn,
                caller.organization_id,
                agent_id,
                caller.principal_id,
                limit=limit,
                after=after,
            )
            return await self._with_features_many(conn, caller, found)

    async def list(
        self, caller: Caller, flt: SessionFilter, *, offset: int, limit: int
    ) -> tuple[list[Session], int]:
        if flt.agent_id:
            ids.parse("agent", flt.agent_id, field="agent_id")
        if flt.parent_session_id:
            ids.parse("session", flt.parent_session_id, field="parent_session_id")
        if not has_role(caller.role, Role.ADMIN):  # a member lists only their own sessions
            flt = replace(flt, owner_user_id=uuid_text(caller.user_id) or "")
        async with self._db.read() as conn:
            found, total, roots = await self._store.list_sessions(
                conn,
                caller.organization_id,
                flt,
                principal_id=caller.principal_id,
                offset=offset,
                limit=limit,
            )
            return await self._with_features_many(conn, caller, found, roots), total

    async def update(self, caller: Caller, session_id: str, fields: dict[str, Any]) -> Session:
        if fields.get("agent_identity_id") is not None:
            ids.parse("identity", fields["agent_identity_id"], field="agent_identity_id")
        check_capability_refs(self._known_capabilities, fields.get("capabilities") or [])
        async with self._db.write() as conn:
            await self.get(caller, session_id, conn)
            await check_mcp_refs(conn, caller.organization_id, fields.get("capabilities"))
            await check_identity(conn, caller.organization_id, fields.get("agent_identity_id"))
            values = dict(fields)
            if "agent_id" in values:
                # Rebind: the session now runs the agent's default (else latest) version.
                agent = None
                if values["agent_id"] is not None:
                    agent = await self._agents.get(caller, values["agent_id"], conn)
                    if agent.status is not ResourceStatus.ACTIVE:
                        raise InvalidInput(
                            f"agent '{agent.name}' is archived and cannot be used",
                            field="agent_id",
                        )
                values["agent_version_id"] = (
                    await captured_version_id(conn, agent) if agent else None
                )
            retitle = "title" in values
            title = values.pop("title", None)
            if "tags" in values and values["tags"] is None:
                values["tags"] = []
            values["updated_at"] = now()
            await self._store.update_session(conn, caller.organization_id, session_id, values)
            if retitle:
                # With its ``session.title.updated`` event, as the tool's and the automatic
                # title's (no event when the title stays the same).
                await session_titles.set_title(conn, session_id, title, source="api")
            await self._runtime(conn, session_id)
            return await self._read(conn, caller, session_id)

    async def runtime_agent(
        self, caller: Caller, session_id: str, controls: Controls = NO_CONTROLS
    ) -> tuple[Session, RuntimeAgent]:
        """The RuntimeAgent a turn of the session would run now (the context report)."""
        async with self._db.read() as conn:
            session = await self.get(caller, session_id, conn)
            return session, await self._runtime(conn, session_id, controls)

    async def _runtime(
        self, conn: AsyncConnection, session_id: str, controls: Controls = NO_CONTROLS
    ) -> RuntimeAgent:
        config = await session_config(conn, session_id)
        if config is None:
            raise NotFound.of("session", session_id)
        return self._assembler.for_session(config, controls)

    async def delete(self, caller: Caller, session_id: str) -> None:
        """Soft-delete the session and every session below it (its subagents, theirs), purging
        their storage, in one transaction. The tree's working subagents are cancelled (their
        turns end, their tasks settle, and a parent waiting for the session, if it is a
        subagent, gets the cancellation); any other turn of a deleted session halts at its next
        step (the engine's turn guard).

        On PostgreSQL the tree's lock comes first: a spawn in the tree either commits before
        (its child is found below) or waits and then finds its parent deleted. Rows are then
        locked from the leaves up, the order of every transaction that locks several sessions
        of a tree (``services.subagents``): the descendants deepest first, the cancels (which
        end at this session and its parent), this session last."""
        org_id = caller.organization_id
        async with self._db.write() as conn:
            session = await self.get(caller, session_id, conn)
            await lock_tree(conn, await tree_root(conn, session_id))
            below = await descendant_ids(conn, org_id, session_id)
            # Schedules before sessions: a fire locks its schedule, then its session's row.
            await delete_session_schedules(conn, [session_id, *below])
            ts = now()
            deleted = {"deleted_at": ts, "updated_at": ts}
            for child_id in reversed(below):
                await self._store.update_session(conn, org_id, child_id, deleted)
            cancelled = await self._subagents.stop_tree(conn, session_id) if self._subagents else []
            await self._store.update_session(conn, org_id, session_id, deleted)
            doomed = [session_id, *below]
            for doomed_id in doomed:
                await purge_session(conn, doomed_id)  # files, key-values, secrets, leases
                await delete_session_databases(conn, doomed_id)
        if self._subagents:
            parent = (session.parent_session_id,) if session.parent_session_id else ()
            self._subagents.wake(cancelled, *doomed, *parent)

    async def set_pinned(self, caller: Caller, session_id: str, pinned: bool) -> None:
        async with self._db.write() as conn:
            await self.get(caller, session_id, conn)
            if pinned:
                await self._store.pin_session(conn, session_id, caller.principal_id, now())
            else:
                await self._store.unpin_session(conn, session_id, caller.principal_id)

    async def stats(self, caller: Caller) -> dict[str, int]:
        async with self._db.read() as conn:
            counts = await self._store.session_counts_by_status(conn, caller.organization_id)
        result = {status.value: counts.get(status.value, 0) for status in SessionStatus}
        result["total"] = sum(counts.values())
        return result
