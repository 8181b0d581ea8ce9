"""Organizations, their members and roles, and the caller's own account.

Who may call each route is decided by the route table (``api/access.py``); what is left here
are the rules that depend on the objects: only an owner grants, changes or removes the owner
role, an organization always keeps one owner, and a person removed from their last
organization loses their tokens.

everloop sends no mail: adding a person who has no user yet creates the user and returns their
first token once (an invitation to hand over); adding an existing user (by e-mail address)
gives them the role at once. A membership change reaches every process at once: the token
identities kept in memory are forgotten here and, through the data dir's revocation marker,
in processes sharing it (``services/auth.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.resources import Principal, PrincipalKind
from everloop.domain.roles import Role, has_role
from everloop.domain.timestamps import now
from everloop.errors import Conflict, Forbidden, InvalidInput, NotFound
from everloop.services.auth import AuthService, Caller
from everloop.store import orgs as store
from everloop.store.db import Database
from everloop.store.orgs import MemberRow as MemberRow  # what the routes show
from everloop.store.orgs import OrgRow as OrgRow
from everloop.store.sql import Store

USER_PREFIX = "user_"
MAX_NAME = 200
MAX_EMAIL = 320


@dataclass(frozen=True, slots=True)
class Membership:
    org: OrgRow
    role: str


@dataclass(frozen=True, slots=True)
class AddedMember:
    member: MemberRow
    token: str | None  # the new user's first token (shown once); None for an existing user


def public_user_id(user_id: str) -> str:
    return USER_PREFIX + user_id


def _user_id(public: str, field: str = "user_id") -> str:
    ids.parse("user", public, field=field)
    return public[len(USER_PREFIX) :]


def _name(value: str, field: str = "name") -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"{field} must be 1 to {MAX_NAME} characters", field=field)
    return name


def _email(value: str) -> str:
    email = value.strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > MAX_EMAIL or " " in email:
        raise InvalidInput(
            f"email must be an e-mail address such as ada@example.com (got {email[:80]!r})",
            field="email",
        )
    return email


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            f"role must be one of {', '.join(r.value for r in Role)} (got {value[:40]!r})",
            field="role",
        ) from None


class OrgService:
    """``seed`` puts the built-in harnesses, provider and model into a new organization."""

    def __init__(
        self,
        db: Database,
        store_: Store,
        auth: AuthService,
        seed: Callable[[str], Awaitable[None]],
    ) -> None:
        self._db = db
        self._store = store_
        self._auth = auth
        self._seed = seed

    # -- organizations ----------------------------------------------------------------------

    async def list_orgs(self, caller: Caller) -> list[Membership]:
        async with self._db.read() as conn:
            return [Membership(o, r) for o, r in await store.orgs_of_user(conn, caller.user_id)]

    async def create_org(self, caller: Caller, name: str) -> OrgRow:
        """A new organization with the caller as its owner, seeded with the built-ins."""
        name = _name(name)
        org_id = ids.new_id("org")
        ts = now()
        async with self._db.write() as conn:
            await self._store.ensure_organization(conn, org_id, name, ts)
            principal = Principal(
                ids.new_id("principal"), org_id, PrincipalKind.USER, caller.user_id, Role.OWNER
            )
            await self._store.insert_principal(conn, principal, ts)
        self._auth.forget_identities()
        await self._seed(org_id)
        return OrgRow(org_id, name, ts, ts)

    async def get_org(self, caller: Caller) -> OrgRow:
        async with self._db.read() as conn:
            found = await store.get_org(conn, caller.organization_id)
        if found is None:
            raise NotFound.of("organization", caller.organization_id)
        return found

    async def rename_org(self, caller: Caller, name: str) -> OrgRow:
        name = _name(name)
        async with self._db.write() as conn:
            await store.rename_org(conn, caller.organization_id, name, now())
            found = await store.get_org(conn, caller.organization_id)
        assert found is not None
        return found

    # -- members ----------------------------------------------------------------------------

    async def list_members(self, caller: Caller) -> list[MemberRow]:
        async with self._db.read() as conn:
            return await store.list_members(conn, caller.organization_id)

    async def add_member(
        self, caller: Caller, email: str, role: str, name: str | None = None
    ) -> AddedMember:
        email = _email(email)
        granted = _role(role)
        self._check_grant(caller, granted)
        display = _name(name) if name is not None else email.partition("@")[0]
        org_id = caller.organization_id
        token: str | None = None
        ts = now()
        async with self._db.write() as conn:
            existing = await store.user_by_email(conn, email)
            if existing is None:
                user_id = uuid.uuid4().hex
                await store.insert_user(conn, user_id, display, email, ts)
                token = await self._auth.mint_in(conn, user_id, f"invitation to {org_id}")
            else:
                user_id = existing[0]
            found = await store.membership(conn, org_id, user_id)
            if found is None:
                principal = Principal(
                    ids.new_id("principal"), org_id, PrincipalKind.USER, user_id, granted
                )
                await self._store.insert_principal(conn, principal, ts)
            elif found[1] is None:
                raise Conflict(
                    f"{email} is already a member of this organization: change their role "
                    f"with PATCH /v1/orgs/{org_id}/members/{public_user_id(user_id)}"
                )
            else:
                await store.restore_member(conn, found[0], granted)
            member = await store.get_member(conn, org_id, user_id)
        assert member is not None
        self._auth.forget_identities()
        return AddedMember(member, token)

    async def change_role(self, caller: Caller, user: str, role: str) -> MemberRow:
        user_id = _user_id(user)
        granted = _role(role)
        org_id = caller.organization_id
        async with self._db.write() as conn:
            member = await self._member(conn, org_id, user, user_id)
            if member.role == Role.OWNER or granted is Role.OWNER:
                self._check_grant(caller, Role.OWNER)
            if member.role == Role.OWNER and granted is not Role.OWNER:
                await self._keep_an_owner(conn, org_id)
            await store.set_role(conn, member.principal_id, granted)
            changed = await store.get_member(conn, org_id, user_id)
        assert changed is not None
        self._auth.forget_identities()
        return changed

    async def remove_member(self, caller: Caller, user: str) -> None:
        """Remove a person from the organization: their tokens stop reaching it at once, and
        are revoked when it was their last organization."""
        user_id = _user_id(user)
        org_id = caller.organization_id
        async with self._db.write() as conn:
            member = await self._member(conn, org_id, user, user_id)
            if member.role == Role.OWNER:
                self._check_grant(caller, Role.OWNER)
                await self._keep_an_owner(conn, org_id)
            ts = now()
            await store.remove_member(conn, member.principal_id, ts)
            if await store.active_memberships(conn, user_id) == 0:
                await store.revoke_user_tokens(conn, user_id, ts)
        self._auth.forget_identities()

    # -- the caller's own account (``/v1/users``) -------------------------------------------

    async def me(self, caller: Caller) -> MemberRow:
        async with self._db.read() as conn:
            member = await store.get_member(conn, caller.organization_id, caller.user_id)
        if member is None:
            raise NotFound.of("user", public_user_id(caller.user_id))
        return member

    async def update_me(self, caller: Caller, name: str) -> MemberRow:
        async with self._db.write() as conn:
            await store.update_user(conn, caller.user_id, name=_name(name))
        return await self.me(caller)

    async def delete_me(self, caller: Caller) -> None:
        """Leave every organization and revoke every token of the caller's user; refused
        while they are the last owner of an organization."""
        async with self._db.write() as conn:
            memberships = await store.orgs_of_user(conn, caller.user_id)
            for org, role in memberships:
                if role == Role.OWNER and await store.count_owners(conn, org.id) <= 1:
                    raise Conflict(
                        f"you are the last owner of the organization {org.id}: make another "
                        "member its owner first"
                    )
            ts = now()
            for org, _ in memberships:
                found = await store.membership(conn, org.id, caller.user_id)
                if found is not None:
                    await store.remove_member(conn, found[0], ts)
            await store.revoke_user_tokens(conn, caller.user_id, ts)
            await store.update_user(conn, caller.user_id, email=None)
        self._auth.forget_identities()

    # -- rules ------------------------------------------------------------------------------

    @staticmethod
    def _check_grant(caller: Caller, role: Role) -> None:
        if role is Role.OWNER and not has_role(caller.role, Role.OWNER):
            raise Forbidden(
                f"only an owner may grant, change or remove the owner role (you are {caller.role})"
            )

    @staticmethod
    async def _member(conn: AsyncConnection, org_id: str, shown: str, user_id: str) -> MemberRow:
        member = await store.get_member(conn, org_id, user_id)
        if member is None:
            raise NotFound.of("member", shown)
        return member

    @staticmethod
    async def _keep_an_owner(conn: AsyncConnection, org_id: str) -> None:
        if await store.count_owners(conn, org_id) <= 1:
            raise Conflict(
                "an organization keeps at least one owner: make another member an owner first"
            )
