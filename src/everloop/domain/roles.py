"""Roles of a person in an organization: ``owner`` ⊃ ``admin`` ⊃ ``member``.

Members create and use sessions and read the organization's configuration; admins manage that
configuration (agents, harnesses, providers, models, MCP servers, budgets, agent keys) and the
organization's members; owners also manage owners and the organization's settings. An
organization always keeps at least one owner.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role named ``value``; ``ValueError`` for anything else."""
        return cls(value)


_RANKS = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


def has_role(held: str, needed: Role) -> bool:
    """Whether someone holding ``held`` may do what ``needed`` may (an unknown role: no)."""
    try:
        return Role(held).rank >= needed.rank
    except ValueError:
        return False
