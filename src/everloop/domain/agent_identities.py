"""Agent identities: durable virtual principals that sessions run as when nobody is watching.

An identity is not behaviour (that is the agent's): it is who acts, with its own principal
(kind ``agent_identity``, parented to the principal that created it) and the defaults an
unattended run starts from (``locale``, ``timezone``). ``Session.agent_identity_id`` names one;
a subagent inherits its parent's, a schedule its session's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """One ``agent_identities`` row."""

    id: str
    organization_id: str
    principal_id: str
    owner_principal_id: str
    name: str
    display_name: str | None
    description: str | None
    locale: str | None
    timezone: str | None
    created_at: str
    updated_at: str
