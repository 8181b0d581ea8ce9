"""Capability ``secrets``: session secrets the agent uses by reference, never by value.

``secret_get`` checks that a secret exists and returns its placeholder ``{{secret:NAME}}``, not
its value. The model writes the placeholder into the arguments of a tool that makes an outbound
call (``web_fetch``, MCP tools); that tool resolves it at the moment of the call
(``ToolContext.resolve_secrets``). The model, the stored tool call, its events and the turn state
only ever hold the placeholder, and a value echoed back by a remote server is redacted from the
tool result before it is recorded (``engine.act``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue
from everloop.domain.secret_refs import placeholder
from everloop.errors import EverloopError
from everloop.store.session_storage_rules import SecretVault

USAGE = (
    "Write the placeholder, exactly, where the value belongs in the arguments of a tool that "
    "calls out (a web_fetch URL, an MCP tool argument): the server puts the value in when it "
    "makes the call. You never see the value, and do not need to."
)


@dataclass(frozen=True, slots=True)
class SecretGet:
    vault: SecretVault = field(repr=False)
    name: str = "secret_get"
    description: str = (
        "Get the placeholder of a secret of this session (an API key, a token) by name: "
        "'{{secret:NAME}}'. Secrets are used by reference: put the placeholder in the "
        "arguments of web_fetch or an MCP tool and the server substitutes the value when it "
        "makes the call. The value itself is never shown to you."
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
            # Opened only to prove it exists and is readable with the current key.
            await self.vault.get(context.connection, context.org_id, context.session_id, name)
        except EverloopError as exc:
            raise ToolError(exc.message) from None
        return {"name": name, "placeholder": placeholder(name), "usage": USAGE}


def build_secrets_capability(vault: SecretVault) -> Capability:
    return Capability(
        id="secrets",
        name="Secrets",
        description=(
            "Encrypted per-session secrets, used by reference: tools that call out take "
            "'{{secret:NAME}}' placeholders and the server substitutes the value."
        ),
        category="storage",
        features=("secrets",),
        system_prompt_addition=(
            "This session has secrets (API keys, tokens) you can use without seeing them: "
            "write '{{secret:NAME}}' in a web_fetch URL or an MCP tool argument and the server "
            "puts the value in when it makes the call. secret_get(name) checks that a secret "
            "exists and gives its placeholder."
        ),
        tools=(SecretGet(vault),),
    )
