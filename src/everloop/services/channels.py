"""The Agent Execution API: one agent's sessions, for a caller of one of its channels.

A channel call is an ordinary session of the channel's agent, made and run by the same
services and engine as the management API's (``services/sessions.py``, ``services/turns.py``).
What a channel adds is scope: a caller (``services/channel_auth.py``) sees only the sessions of
the channel's agent that its own principal owns; any other session is a 404, whoever owns it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from everloop import ids
from everloop.domain.resources import Session
from everloop.errors import InvalidInput, NotFound
from everloop.services.channel_auth import END_USER_HEADER, ChannelCaller
from everloop.services.config_resources import AgentService
from everloop.services.sessions import SessionService

INPUT_CONTENT_TYPES = ("text", "image")


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[Session]
    next_page_token: str | None


def _page_token(session: Session) -> str:
    raw = json.dumps([session.updated_at, session.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(token: str | None) -> tuple[str, str] | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        updated_at, session_id = json.loads(raw)
        if not isinstance(updated_at, str) or not isinstance(session_id, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "page_token is not a token this listing gave out", field="page_token"
        ) from exc
    return updated_at, session_id


class ChannelService:
    def __init__(self, sessions: SessionService, agents: AgentService) -> None:
        self._sessions = sessions
        self._agents = agents

    async def card(self, call: ChannelCaller) -> dict[str, Any]:
        """The agent card: who the agent is, what input it takes, which credentials reach it."""
        agent = await self._agents.get(call.caller, call.channel.agent_id)
        credentials = ["agent_key", "runtime_token"]
        if call.channel.allow_member_tokens:
            credentials.append("personal_access_token")
        return {
            "id": call.channel.id,
            "agent_id": agent.id,
            "name": agent.name,
            "display_name": agent.display_name,
            "description": agent.description,
            "status": agent.status.value,
            "accepted_input": {
                "content_types": list(INPUT_CONTENT_TYPES),
                "end_user_header": END_USER_HEADER,
            },
            "input_hints": {"roles": ["user"], "idempotency_key_header": "Idempotency-Key"},
            "conversation_starters": [],
            "credentials": credentials,
        }

    async def create_session(self, call: ChannelCaller, title: str | None) -> Session:
        """A session of the channel's agent, owned by the caller. Its client can answer the
        agent's questions (the API has ``pending_questions`` and ``question-answers``), so the
        session carries the ``ask_user`` client hint: an agent with ``ask_user`` may ask."""
        fields: dict[str, Any] = {"agent_id": call.channel.agent_id, "hints": {"ask_user": True}}
        if title is not None:
            fields["title"] = title
        return await self._sessions.create(call.caller, fields)

    async def list_sessions(
        self, call: ChannelCaller, *, limit: int, page_token: str | None
    ) -> SessionPage:
        """The caller's sessions of the agent, most recently active first; the next page
        starts after ``next_page_token`` (None: this was the last)."""
        found = await self._sessions.list_owned(
            call.caller, call.channel.agent_id, limit=limit + 1, after=_position(page_token)
        )
        more = len(found) > limit
        page = found[:limit]
        return SessionPage(page, _page_token(page[-1]) if more and page else None)

    async def own(self, call: ChannelCaller, session_id: str) -> Session:
        """One of the caller's sessions of the channel's agent; 404 for any other."""
        ids.parse("session", session_id, field="session_id")
        found = await self._sessions.get(call.caller, session_id)
        if (
            found.agent_id != call.channel.agent_id
            or found.owner_principal_id != call.caller.principal_id
        ):
            raise NotFound.of("session", session_id)
        return found
