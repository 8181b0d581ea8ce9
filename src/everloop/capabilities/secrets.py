"""Capability ``secrets``: ``secret_get`` gives the model a session secret, and nobody else.

A tool result is persisted many times over (the ``tool.completed`` event, the step record, the
durable turn state, the history of later turns), so the plaintext cannot be in it. ``secret_get``
returns the value sealed for this one tool call (AES-256-GCM, bound to the session, the call id
and the name); the runner asks the tool to ``reveal`` it only while building a model request, in
memory. Events, logs, the database and the API see only the sealed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue
from everloop.errors import EverloopError
from everloop.services.session_storage import SecretVault

REDACTED = "[secret: shown to the model only]"


@dataclass(frozen=True, slots=True)
class SecretGet:
    vault: SecretVault = field(repr=False)
    name: str = "secret_get"
    description: str = (
        "Read a secret of this session (an API key, a token) by name. Use the value only in "
        "tool arguments; never repeat it in your answers."
    )
    parameters: JsonObject = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128}},
            "required": ["name"],
            "additionalProperties": False,
        }
    )
    side_effect: ClassVar[SideEffect] = SideEffect.TRANSACTIONAL

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        if context.connection is None:
            raise ToolError("secrets are only available inside a turn")
        name = arguments["name"]
        assert isinstance(name, str)  # schema-checked
        try:
            value = await self.vault.get(
                context.connection, context.org_id, context.session_id, name
            )
        except EverloopError as exc:
            raise ToolError(exc.message) from None
        sealed = self.vault.seal_for_result(context.session_id, context.tool_call_id, name, value)
        return {"name": name, "value": REDACTED, "sealed_value": sealed}

    def reveal(self, result: JsonValue, session_id: str, tool_call_id: str) -> JsonValue:
        """The result as the model sees it: the sealed value opened (in memory only)."""
        if not isinstance(result, dict):
            return result
        name, sealed = result.get("name"), result.get("sealed_value")
        if not isinstance(name, str) or not isinstance(sealed, str):
            return result
        try:
            value = self.vault.reveal(session_id, tool_call_id, name, sealed)
        except EverloopError:
            return {"name": name, "error": "the secret could not be revealed"}
        return {"name": name, "value": value}


def build_secrets_capability(vault: SecretVault) -> Capability:
    return Capability(
        id="secrets",
        name="Secrets",
        description="Encrypted per-session secrets the agent can read with secret_get.",
        category="storage",
        features=("secrets",),
        tools=(SecretGet(vault),),
    )
