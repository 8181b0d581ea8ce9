"""A subagent's child session: what it inherits from its parent, and its first turn.

A child gets its parent's organization, owner, identity and locale, and, unless the spawn names
an ``agent`` or a ``blueprint_id``, its parent's harness, agent (version) and model; never the
parent's session-level tools, capabilities, MCP servers or prompt. ``capabilities`` narrows
what it inherits (``capability_allowlist``; naming one it would not have is a tool error). Its
first user message is the task, recorded with its queued turn in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.capabilities.base import ToolError
from everloop.capabilities.subagents import SpawnRequest
from everloop.domain.event_log import EventContext, NewEvent
from everloop.domain.messages import Message, TextPart
from everloop.domain.resources import ResourceStatus, SessionStatus
from everloop.domain.runtime_agent import AssemblyError, Layer, RuntimeAgent
from everloop.domain.timestamps import now
from everloop.engine import events as ev
from everloop.engine.assembly import Assembler
from everloop.errors import InvalidInput
from everloop.services.agent_versions import captured_version_id
from everloop.services.blueprints import BlueprintService
from everloop.services.files import FileLimits, copy_initial_files
from everloop.store import agent_identities as identity_store
from everloop.store import turns as turn_store
from everloop.store.event_log import start_log
from everloop.store.runtime_layers import load_agent_layer, load_harness_chain, session_layer
from everloop.store.sql import Store
from everloop.store.workspaces import create_automatic


@dataclass(frozen=True, slots=True)
class _Layers:
    """A child's configuration layers (``engine.assembly.SessionLayers``)."""

    harness_chain: tuple[Layer, ...]
    agent_layer: Layer | None
    session_layer: Layer | None
    blueprint_id: str | None
    blueprint_config: Mapping[str, object] | None


class ChildSessions:
    def __init__(
        self,
        store: Store,
        assembler: Assembler,
        blueprints: BlueprintService,
        file_limits: FileLimits,
    ) -> None:
        self._store = store
        self._assembler = assembler
        self._blueprints = blueprints
        self._file_limits = file_limits

    async def create(
        self,
        conn: AsyncConnection,
        parent: Mapping[str, Any],
        request: SpawnRequest,
        depth: int,
        root: str,
    ) -> tuple[str, str]:
        """Insert the child session of ``parent`` (its row as a mapping), with its initial
        files, its log (``session.started``, the task as ``input.message``) and its queued
        first turn; (child session id, turn id). ``ToolError`` for a spawn it cannot honour."""
        row, layers = await self._row(conn, parent, request, depth, root)
        runtime = self._runtime(layers)
        if request.capabilities is not None:
            # Narrowing: checked against what the child would inherit, then applied.
            _check_narrowing(request.capabilities, {c.ref for c in runtime.capabilities})
            runtime = self._runtime(
                _Layers(
                    layers.harness_chain,
                    layers.agent_layer,
                    session_layer(row),
                    layers.blueprint_id,
                    layers.blueprint_config,
                )
            )
        child_id = row["id"]
        message = Message(ids.new_id("message"), "user", (TextPart(request.task),), now())
        turn_id = ids.new_id("turn")
        # A subagent gets its own automatic workspace, like any session.
        row["workspace_id"] = await create_automatic(
            conn, row["organization_id"], child_id, row["owner_principal_id"], row["created_at"]
        )
        await self._store.insert_session(conn, row)
        await copy_initial_files(
            conn, row["workspace_id"], [list(runtime.initial_files)], self._file_limits
        )
        context = EventContext(turn_id=turn_id, input_message_id=message.id, trace_id=turn_id)
        await start_log(
            conn,
            child_id,
            [
                NewEvent(
                    "session.started", {"agent_id": row["agent_id"], "model_id": row["model_id"]}
                ),
                NewEvent(
                    "input.message",
                    ev.input_message(message=message),
                    context,
                    metadata=await subagent_provenance(conn, child_id, parent["id"]),
                ),
            ],
        )
        await turn_store.insert_turn(
            conn,
            turn_id=turn_id,
            session_id=child_id,
            input_message_id=message.id,
            input_sequence=2,
        )
        return child_id, turn_id

    def _runtime(self, layers: _Layers) -> RuntimeAgent:
        try:
            return self._assembler.for_session(layers)
        except AssemblyError as exc:
            raise ToolError(f"the subagent cannot be configured: {exc.message}") from None

    async def _row(
        self,
        conn: AsyncConnection,
        parent: Mapping[str, Any],
        request: SpawnRequest,
        depth: int,
        root: str,
    ) -> tuple[dict[str, Any], _Layers]:
        org_id = parent["organization_id"]
        harness_id = parent["harness_id"]
        agent_id, version_id = parent["agent_id"], parent["agent_version_id"]
        model_id = parent["model_id"]
        blueprint_id, blueprint_config = None, None
        if request.agent and request.blueprint_id:
            raise ToolError("give `agent` or `blueprint_id`, not both")
        if request.agent:
            agent = await self._store.get_agent(conn, org_id, agent_id=request.agent)
            if agent is None:
                agent = await self._store.get_agent(conn, org_id, name=request.agent)
            if agent is None:
                raise ToolError(f"no agent named or with id '{request.agent}' in this organization")
            if agent.status is not ResourceStatus.ACTIVE:
                raise ToolError(f"agent '{agent.name}' is archived and cannot be used")
            harness_id, agent_id = agent.harness_id, agent.id
            version_id = await captured_version_id(conn, agent)
            model_id = None  # the agent's own default model
        elif request.blueprint_id:
            try:
                blueprint_config = self._blueprints.validated_config(
                    request.blueprint_id, request.blueprint_config
                )
            except InvalidInput as exc:
                raise ToolError(f"invalid blueprint: {exc.message}") from None
            blueprint_id = request.blueprint_id
        elif request.blueprint_config is not None:
            raise ToolError("`blueprint_config` needs a `blueprint_id`")
        identity_id = parent["agent_identity_id"]
        if identity_id is not None and not await identity_store.hold(conn, org_id, identity_id):
            identity_id = None  # deleted after the parent let go of it: nothing to inherit
        stamp = now()
        row: dict[str, Any] = {
            "id": ids.new_id("session"),
            "organization_id": org_id,
            "harness_id": harness_id,
            "agent_id": agent_id,
            "agent_version_id": version_id,
            "agent_identity_id": identity_id,
            "owner_principal_id": parent["owner_principal_id"],
            "resolved_owner_user_id": parent["resolved_owner_user_id"],
            "title": request.name,
            "title_search": request.name.lower(),
            "locale": parent["locale"],
            "preview": ev.preview(request.task),
            "output_preview": None,
            "tags": [],
            "model_id": model_id,
            "capabilities": [],
            "tools": [],
            "mcp_servers": {},
            "system_prompt": None,
            "initial_files": [],
            "hints": None,
            "network_access": None,
            "max_iterations": None,
            "parallel_tool_calls": None,
            "status": SessionStatus.STARTED.value,
            "created_at": stamp,
            "updated_at": stamp,
            "started_at": None,
            "finished_at": None,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_creation_tokens": 0,
            "parent_session_id": parent["id"],
            "subagent_name": request.name,
            "subagent_task": request.task,
            "subagent_status": "spawning",
            "blueprint_id": blueprint_id,
            "blueprint_config": blueprint_config,
            "root_session_id": root,
            "subagent_depth": depth,
            "capability_allowlist": (
                list(request.capabilities) if request.capabilities is not None else None
            ),
            "last_sequence": 2,  # session.started and the task, written by ``create``
            "deleted_at": None,
        }
        layers = _Layers(
            harness_chain=(
                await load_harness_chain(conn, org_id, harness_id) if not blueprint_id else ()
            ),
            agent_layer=(
                await load_agent_layer(conn, org_id, agent_id, version_id)
                if agent_id and not blueprint_id
                else None
            ),
            session_layer=session_layer({**row, "capability_allowlist": None}),
            blueprint_id=blueprint_id,
            blueprint_config=blueprint_config,
        )
        return row, layers


async def subagent_provenance(
    conn: AsyncConnection, child_id: str, parent_id: str
) -> dict[str, Any]:
    """The metadata of a message a parent sends its subagent: who it runs as (the child's
    agent identity's principal, else its owner's) and on whose behalf."""
    acting, identity_id = await identity_store.acting_as(conn, child_id)
    return {
        "initiator": "subagent",
        "parent_session_id": parent_id,
        "acting_principal_id": acting,
        "agent_identity_id": identity_id,
    }


def _check_narrowing(requested: tuple[str, ...], active: set[str]) -> None:
    unknown = sorted(set(requested) - active)
    if unknown:
        raise ToolError(
            "`capabilities` can only narrow what the subagent inherits; it would not have "
            f"{', '.join(unknown)} (it has: {', '.join(sorted(active)) or 'none'})"
        )
