"""Agent versions: immutable snapshots of an agent's configuration.

Every agent create and update writes one (``change_kind`` ``auto``; ``import`` for an agent
imported from a document or an example); a user can save one
(``manual``, or ``patch``/``minor``/``major`` to choose the semver bump) and roll back to one
(a new version, ``rollback``, whose ``source_version_id`` is the one restored) and fork one into a
new agent (whose first version is a ``fork`` naming the forked one as its source). A session
captures a version when it is created or rebound and its turns run that snapshot, so editing the
agent changes no running session until it is rebound.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

ChangeKind = Literal["auto", "manual", "patch", "minor", "major", "import", "rollback", "fork"]
CHANGE_KINDS: frozenset[str] = frozenset(get_args(ChangeKind))
PUBLISHED_KINDS: frozenset[str] = frozenset({"manual", "patch", "minor", "major"})
FIRST_SEMVER = (0, 1, 0)

# The agent fields a version holds (``authored_config``): everything that shapes its behaviour.
AUTHORED_KEYS: tuple[str, ...] = (
    "name",
    "display_name",
    "description",
    "system_prompt",
    "harness_id",
    "default_model_id",
    "tags",
    "capabilities",
    "tools",
    "initial_files",
    "network_access",
    "mcp_servers",
    "max_iterations",
    "parallel_tool_calls",
)
# What a rollback restores: the authored config but the name (another agent may have taken it).
RESTORED_KEYS: tuple[str, ...] = tuple(k for k in AUTHORED_KEYS if k != "name")
# What a fork copies into its new agent: the authored config but the name (the fork's own) and
# the MCP servers (their header values are opened and sealed afresh for the new agent).
FORKED_KEYS: tuple[str, ...] = tuple(k for k in RESTORED_KEYS if k != "mcp_servers")


@dataclass(frozen=True, slots=True)
class AgentVersion:
    id: str
    agent_id: str
    organization_id: str
    version_number: int
    semver_major: int
    semver_minor: int
    semver_patch: int
    version: str
    config_hash: str
    authored_config: dict[str, Any]
    resolved_config: dict[str, Any]
    change_kind: str
    summary: str | None
    parent_version_id: str | None
    source_version_id: str | None
    is_published: bool
    created_by_principal_id: str | None
    created_at: str


def authored_config(agent: Mapping[str, Any]) -> dict[str, Any]:
    """The versioned part of an agent (an ``Agent`` as a dict, or a row)."""
    return {key: agent.get(key) for key in AUTHORED_KEYS}


def config_hash(config: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON (sorted keys, no spaces) of ``config``."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def next_semver(previous: tuple[int, int, int] | None, kind: str) -> tuple[int, int, int]:
    """``0.1.0`` first; then ``major``/``minor`` bump their part, anything else the patch."""
    if previous is None:
        return FIRST_SEMVER
    major, minor, patch = previous
    if kind == "major":
        return (major + 1, 0, 0)
    if kind == "minor":
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def diff_configs(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys whose values differ: ``{key: {"from": ..., "to": ...}}``."""
    keys = list(dict.fromkeys([*before, *after]))
    return {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in keys
        if before.get(key) != after.get(key)
    }
