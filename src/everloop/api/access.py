"""Who may call each route: one table, enforced in one place.

Every operation of the API has an entry here, keyed by its method and path template (as the
OpenAPI document lists it, without the ``/api`` prefix). The ``caller`` dependency looks the
request's route up after authenticating and refuses a caller below the entry (403 naming the
role needed); a route missing from the table is refused to everyone (fail closed), and
``tests/api/test_access_matrix.py`` fails for it. Another organization's object stays a 404:
that is the services' org scoping, which runs after this check.

- ``MEMBER``: anyone in the organization (members create and use sessions, read agents,
  harnesses, models, budgets, and manage their own tokens and connections).
- ``ADMIN``: admins and owners manage the organization's configuration: agents, harnesses,
  providers, models, MCP servers, memories, agent identities, budgets, agent keys and channels,
  and members.
- ``OWNER``: the organization's settings.
- ``OPERATOR``: an admin of the instance's default organization (``Caller.is_operator``):
  instance-wide views.
- ``ORG_CREATOR``: an operator, or any user when ``EVERLOOP_ANY_USER_CREATES_ORGS`` is set.
- ``CHANNEL``: the Agent Execution API, authenticated by agent keys and runtime tokens
  (``services/channel_auth.py``), never by a personal token's role.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum


class Access(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"
    OPERATOR = "operator"
    ORG_CREATOR = "org_creator"
    CHANNEL = "channel"


MEMBER = Access.MEMBER
ADMIN = Access.ADMIN
OWNER = Access.OWNER
OPERATOR = Access.OPERATOR
ORG_CREATOR = Access.ORG_CREATOR
CHANNEL = Access.CHANNEL

ROUTES: dict[tuple[str, str], Access] = {
    # admin
    ("GET", "/v1/admin/api-keys"): ADMIN,
    ("DELETE", "/v1/admin/api-keys/{key_id}"): ADMIN,
    # agent-identities
    ("GET", "/v1/agent-identities"): MEMBER,
    ("POST", "/v1/agent-identities"): ADMIN,
    ("DELETE", "/v1/agent-identities/{identity_id}"): ADMIN,
    ("GET", "/v1/agent-identities/{identity_id}"): MEMBER,
    ("PATCH", "/v1/agent-identities/{identity_id}"): ADMIN,
    # agents
    ("GET", "/v1/agents"): MEMBER,
    ("POST", "/v1/agents"): ADMIN,
    ("POST", "/v1/agents/analyze"): MEMBER,
    ("POST", "/v1/agents/import"): ADMIN,
    ("POST", "/v1/agents/preview"): MEMBER,
    ("DELETE", "/v1/agents/{agent_id}"): ADMIN,
    ("GET", "/v1/agents/{agent_id}"): MEMBER,
    ("PATCH", "/v1/agents/{agent_id}"): ADMIN,
    ("PUT", "/v1/agents/{agent_id}"): ADMIN,
    ("GET", "/v1/agents/{agent_id}/channels"): ADMIN,
    ("POST", "/v1/agents/{agent_id}/channels"): ADMIN,
    ("DELETE", "/v1/agents/{agent_id}/channels/{channel_id}"): ADMIN,
    ("GET", "/v1/agents/{agent_id}/channels/{channel_id}"): ADMIN,
    ("POST", "/v1/agents/{agent_id}/copy"): ADMIN,
    ("GET", "/v1/agents/{agent_id}/export"): MEMBER,
    ("GET", "/v1/agents/{agent_id}/health-checks"): MEMBER,
    ("POST", "/v1/agents/{agent_id}/health-checks"): ADMIN,
    ("GET", "/v1/agents/{agent_id}/health-checks/latest"): MEMBER,
    ("GET", "/v1/agents/{agent_id}/health-checks/{run_id}"): MEMBER,
    ("GET", "/v1/agents/{agent_id}/keys"): ADMIN,
    ("POST", "/v1/agents/{agent_id}/keys"): ADMIN,
    ("DELETE", "/v1/agents/{agent_id}/keys/{agent_key_id}"): ADMIN,
    ("GET", "/v1/agents/{agent_id}/stats"): MEMBER,
    ("GET", "/v1/agents/{agent_id}/versions"): MEMBER,
    ("POST", "/v1/agents/{agent_id}/versions"): ADMIN,
    ("POST", "/v1/agents/{agent_id}/versions/default"): ADMIN,
    ("GET", "/v1/agents/{agent_id}/versions/{from_version_id}/diff/{to_version_id}"): MEMBER,
    ("POST", "/v1/agents/{agent_id}/versions/{version_id}/fork"): ADMIN,
    ("POST", "/v1/agents/{agent_id}/versions/{version_id}/rollback"): ADMIN,
    # audit-events
    ("GET", "/v1/audit-events"): ADMIN,
    # auth
    ("GET", "/v1/auth/api-keys"): MEMBER,
    ("POST", "/v1/auth/api-keys"): MEMBER,
    ("DELETE", "/v1/auth/api-keys/{key_id}"): MEMBER,
    # blueprints
    ("GET", "/v1/blueprints"): MEMBER,
    ("GET", "/v1/blueprints/{blueprint_id}"): MEMBER,
    # budgets
    ("GET", "/v1/budgets"): MEMBER,
    ("POST", "/v1/budgets"): ADMIN,
    ("DELETE", "/v1/budgets/{budget_id}"): ADMIN,
    ("GET", "/v1/budgets/{budget_id}"): MEMBER,
    ("PATCH", "/v1/budgets/{budget_id}"): ADMIN,
    ("GET", "/v1/budgets/{budget_id}/check"): MEMBER,
    ("GET", "/v1/budgets/{budget_id}/ledger"): MEMBER,
    ("POST", "/v1/budgets/{budget_id}/top-up"): ADMIN,
    # capabilities
    ("GET", "/v1/capabilities"): MEMBER,
    ("POST", "/v1/capabilities/guardrails/dry-run"): MEMBER,
    ("GET", "/v1/capabilities/guardrails/examples"): MEMBER,
    ("GET", "/v1/capabilities/{capability_id}"): MEMBER,
    # channels
    ("GET", "/v1/channels/{channel_id}"): CHANNEL,
    ("POST", "/v1/channels/{channel_id}/runtime-auth"): CHANNEL,
    ("GET", "/v1/channels/{channel_id}/sessions"): CHANNEL,
    ("POST", "/v1/channels/{channel_id}/sessions"): CHANNEL,
    ("GET", "/v1/channels/{channel_id}/sessions/{session_id}"): CHANNEL,
    ("POST", "/v1/channels/{channel_id}/sessions/{session_id}/cancel"): CHANNEL,
    ("GET", "/v1/channels/{channel_id}/sessions/{session_id}/events"): CHANNEL,
    ("POST", "/v1/channels/{channel_id}/sessions/{session_id}/messages"): CHANNEL,
    ("POST", "/v1/channels/{channel_id}/sessions/{session_id}/question-answers"): CHANNEL,
    ("GET", "/v1/channels/{channel_id}/sessions/{session_id}/sse"): CHANNEL,
    ("POST", "/v1/channels/{channel_id}/sessions/{session_id}/tool-approvals"): CHANNEL,
    # debug (only with EVERLOOP_DEBUG_COUNTERS; not in the OpenAPI document)
    ("GET", "/v1/debug/counters"): OPERATOR,
    # durable
    ("GET", "/v1/durable/schedules"): MEMBER,
    ("POST", "/v1/durable/schedules"): MEMBER,
    ("DELETE", "/v1/durable/schedules/{schedule_id}"): MEMBER,
    ("GET", "/v1/durable/schedules/{schedule_id}"): MEMBER,
    ("PATCH", "/v1/durable/schedules/{schedule_id}"): MEMBER,
    ("GET", "/v1/durable/schedules/{schedule_id}/executions"): MEMBER,
    ("POST", "/v1/durable/schedules/{schedule_id}/pause"): MEMBER,
    ("POST", "/v1/durable/schedules/{schedule_id}/resume"): MEMBER,
    ("GET", "/v1/durable/schedules/{schedule_id}/stats"): MEMBER,
    ("POST", "/v1/durable/schedules/{schedule_id}/trigger"): MEMBER,
    ("GET", "/v1/durable/workers"): OPERATOR,
    # harness-examples
    ("GET", "/v1/harness-examples"): MEMBER,
    # harnesses
    ("GET", "/v1/harnesses"): MEMBER,
    ("POST", "/v1/harnesses"): ADMIN,
    ("POST", "/v1/harnesses/preview"): MEMBER,
    ("DELETE", "/v1/harnesses/{harness_id}"): ADMIN,
    ("GET", "/v1/harnesses/{harness_id}"): MEMBER,
    ("PATCH", "/v1/harnesses/{harness_id}"): ADMIN,
    # mcp-servers
    ("GET", "/v1/mcp-servers"): MEMBER,
    ("POST", "/v1/mcp-servers"): ADMIN,
    ("DELETE", "/v1/mcp-servers/{server_id}"): ADMIN,
    ("GET", "/v1/mcp-servers/{server_id}"): MEMBER,
    ("PATCH", "/v1/mcp-servers/{server_id}"): ADMIN,
    # memories
    ("GET", "/v1/memories"): MEMBER,
    ("POST", "/v1/memories"): ADMIN,
    ("DELETE", "/v1/memories/{memory_id}"): ADMIN,
    ("GET", "/v1/memories/{memory_id}"): MEMBER,
    ("PATCH", "/v1/memories/{memory_id}"): ADMIN,
    ("GET", "/v1/memories/{memory_id}/fs"): MEMBER,
    ("GET", "/v1/memories/{memory_id}/fs/_/download/{path}"): MEMBER,
    ("POST", "/v1/memories/{memory_id}/fs/_/grep"): MEMBER,
    ("POST", "/v1/memories/{memory_id}/fs/_/stat"): MEMBER,
    ("DELETE", "/v1/memories/{memory_id}/fs/{path}"): ADMIN,
    ("GET", "/v1/memories/{memory_id}/fs/{path}"): MEMBER,
    ("POST", "/v1/memories/{memory_id}/fs/{path}"): ADMIN,
    ("PUT", "/v1/memories/{memory_id}/fs/{path}"): ADMIN,
    ("POST", "/v1/memories/{memory_id}/sync"): ADMIN,
    # models
    ("GET", "/v1/models"): MEMBER,
    ("DELETE", "/v1/models/{model_id}"): ADMIN,
    ("GET", "/v1/models/{model_id}"): MEMBER,
    ("PATCH", "/v1/models/{model_id}"): ADMIN,
    # orgs
    ("GET", "/v1/orgs"): MEMBER,
    ("POST", "/v1/orgs"): ORG_CREATOR,
    ("GET", "/v1/orgs/{org_id}"): MEMBER,
    ("PATCH", "/v1/orgs/{org_id}"): OWNER,
    ("GET", "/v1/orgs/{org_id}/members"): MEMBER,
    ("POST", "/v1/orgs/{org_id}/members"): ADMIN,
    ("DELETE", "/v1/orgs/{org_id}/members/{user_id}"): ADMIN,
    ("PATCH", "/v1/orgs/{org_id}/members/{user_id}"): ADMIN,
    # providers
    ("GET", "/v1/providers"): MEMBER,
    ("POST", "/v1/providers"): ADMIN,
    ("DELETE", "/v1/providers/{provider_id}"): ADMIN,
    ("GET", "/v1/providers/{provider_id}"): MEMBER,
    ("PATCH", "/v1/providers/{provider_id}"): ADMIN,
    ("GET", "/v1/providers/{provider_id}/models"): MEMBER,
    ("POST", "/v1/providers/{provider_id}/models"): ADMIN,
    # sessions
    ("GET", "/v1/sessions"): MEMBER,
    ("POST", "/v1/sessions"): MEMBER,
    ("GET", "/v1/sessions/stats"): MEMBER,
    ("DELETE", "/v1/sessions/{session_id}"): MEMBER,
    ("GET", "/v1/sessions/{session_id}"): MEMBER,
    ("PATCH", "/v1/sessions/{session_id}"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/budget-check"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/budgets"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/cancel"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/context-report"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/databases"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/databases"): MEMBER,
    ("DELETE", "/v1/sessions/{session_id}/databases/{name}"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/databases/{name}"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/databases/{name}/schema"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/events"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/export"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/fork"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/fs"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/fs/_/copy"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/fs/_/download/{path}"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/fs/_/grep"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/fs/_/move"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/fs/_/preview/{path}"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/fs/_/stat"): MEMBER,
    ("DELETE", "/v1/sessions/{session_id}/fs/{path}"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/fs/{path}"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/fs/{path}"): MEMBER,
    ("PUT", "/v1/sessions/{session_id}/fs/{path}"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/messages"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/messages"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/pending-input"): MEMBER,
    ("DELETE", "/v1/sessions/{session_id}/pin"): MEMBER,
    ("PUT", "/v1/sessions/{session_id}/pin"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/question-answers"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/resources"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/resume"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/sse"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/storage/keys"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/storage/secrets"): MEMBER,
    ("PUT", "/v1/sessions/{session_id}/storage/secrets"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/tasks"): MEMBER,
    ("GET", "/v1/sessions/{session_id}/tasks/{task_id}"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/tasks/{task_id}/cancel"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/tasks/{task_id}/messages"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/tool-approvals"): MEMBER,
    ("POST", "/v1/sessions/{session_id}/tool-results"): MEMBER,
    # tasks
    ("GET", "/v1/tasks"): MEMBER,
    # user
    ("GET", "/v1/user/connections"): MEMBER,
    ("DELETE", "/v1/user/connections/{provider}"): MEMBER,
    ("POST", "/v1/user/connections/{provider}"): MEMBER,
    # users
    ("GET", "/v1/users"): MEMBER,
    ("DELETE", "/v1/users/me"): MEMBER,
    ("GET", "/v1/users/me"): MEMBER,
    ("PATCH", "/v1/users/me"): MEMBER,
    # workspaces
    ("GET", "/v1/workspaces"): MEMBER,
    ("POST", "/v1/workspaces"): MEMBER,
    ("DELETE", "/v1/workspaces/{workspace_id}"): MEMBER,
    ("GET", "/v1/workspaces/{workspace_id}"): MEMBER,
    ("PATCH", "/v1/workspaces/{workspace_id}"): MEMBER,
    ("GET", "/v1/workspaces/{workspace_id}/fs"): MEMBER,
    ("POST", "/v1/workspaces/{workspace_id}/fs/_/copy"): MEMBER,
    ("GET", "/v1/workspaces/{workspace_id}/fs/_/download/{path}"): MEMBER,
    ("POST", "/v1/workspaces/{workspace_id}/fs/_/grep"): MEMBER,
    ("POST", "/v1/workspaces/{workspace_id}/fs/_/move"): MEMBER,
    ("GET", "/v1/workspaces/{workspace_id}/fs/_/preview/{path}"): MEMBER,
    ("POST", "/v1/workspaces/{workspace_id}/fs/_/stat"): MEMBER,
    ("DELETE", "/v1/workspaces/{workspace_id}/fs/{path}"): MEMBER,
    ("GET", "/v1/workspaces/{workspace_id}/fs/{path}"): MEMBER,
    ("POST", "/v1/workspaces/{workspace_id}/fs/{path}"): MEMBER,
    ("PUT", "/v1/workspaces/{workspace_id}/fs/{path}"): MEMBER,
}


# Routes about the caller's user rather than one organization: a member of several needs no
# X-Org-Id for them (the list of their organizations, creating one).
USER_LEVEL = frozenset({"/v1/orgs"})

_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


@functools.lru_cache(maxsize=1024)
def route_template(path: str) -> str:
    """A route's path as this table (and the audit log) names it: without ``/api``, without a
    convertor such as ``{path:path}``."""
    if path.startswith("/api/"):
        path = path[4:]
    return _CONVERTOR.sub(r"{\1}", path)


def access_of(method: str, path: str) -> Access | None:
    """The entry for a route (``path`` as the route declares it)."""
    return ROUTES.get(("GET" if method == "HEAD" else method, route_template(path)))
