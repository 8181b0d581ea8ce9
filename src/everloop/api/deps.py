"""Request dependencies: the service container and the authenticated caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from everloop.api.access import USER_LEVEL, Access, access_of, route_template
from everloop.api.json_values import printable
from everloop.api.observe import current_request_id
from everloop.domain.roles import Role, has_role
from everloop.errors import Forbidden, InvalidInput, NotFound
from everloop.services.auth import Caller

if TYPE_CHECKING:
    from everloop.bootstrap import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


BEARER = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="evr_pat_...",
    description=(
        "A personal access token, sent as `Authorization: Bearer evr_pat_...` (the admin token "
        "is in `<data-dir>/admin-token`). `X-Org-Id` picks the organization of a member of "
        "several."
    ),
    auto_error=False,
)
"""The API's security scheme: declared in the OpenAPI document, so ``/api/docs`` can authorize.
It only documents: ``caller`` reads the header itself (with or without ``Bearer``)."""


async def caller(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_org_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    """The authenticated caller; failures count against the client's address (the socket peer,
    or what a trusted proxy says: ``EVERLOOP_FORWARDED_ALLOW_IPS``)."""
    svc: Services = request.app.state.services
    client = request.client.host if request.client else "unknown"
    # A route about one organization (``/v1/orgs/{org_id}...``) acts in that organization.
    org = request.path_params.get("org_id") or x_org_id
    route = request.scope.get("route")
    user_level = isinstance(route, APIRoute) and route.path in USER_LEVEL
    who = await svc.auth.authenticate(authorization, org, client, any_org=user_level)
    await _authorize(request, svc, who)
    request.state.org_id = who.organization_id  # for the access log (``api.observe``)
    return who


async def _authorize(request: Request, svc: Services, who: Caller) -> None:
    """The route's entry in ``api.access.ROUTES`` against the caller's role (403 naming the
    role needed); then a member reaches only their own sessions (404 for anyone else's)."""
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else request.url.path
    access = access_of(request.method, path)
    if access is None:
        raise Forbidden(f"{request.method} {path} has no access rule: it is refused to everyone")
    if not _allowed(access, who, svc):
        if access is Access.OPERATOR:  # to a tenant, an instance-wide view does not exist
            raise NotFound(
                "no such route for this organization: it is shown to the operators of this "
                "instance only (admins of its default organization)"
            )
        raise Forbidden(_needs(access, who))
    session_id = request.path_params.get("session_id")
    if session_id and not has_role(who.role, Role.ADMIN):
        await svc.sessions.check_visible(who, session_id)
    template = route_template(path)
    if request.method in _MUTATING and access is not Access.CHANNEL:
        if not svc.audit.audits(request.method, template):
            return  # a read by POST, or a turn's traffic: no body parsed again for nothing
        svc.audit.open(
            who,
            request.method,
            template,
            dict(request.path_params),
            await _json_body(request),
            current_request_id(),  # the client's X-Request-Id, or the one made for it
            request.client.host if request.client else None,
        )


_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _json_body(request: Request) -> object:
    """The request's JSON body (FastAPI has read it already), or None."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _allowed(access: Access, who: Caller, svc: Services) -> bool:
    match access:
        case Access.MEMBER:
            return True
        case Access.ADMIN:
            return has_role(who.role, Role.ADMIN)
        case Access.OWNER:
            return has_role(who.role, Role.OWNER)
        case Access.OPERATOR:
            return who.is_operator
        case Access.ORG_CREATOR:
            return who.is_operator or svc.settings.any_user_creates_orgs
        case Access.CHANNEL:
            return False
    return False


def _needs(access: Access, who: Caller) -> str:
    if access is Access.CHANNEL:
        return "this route takes an agent key or runtime token, not a personal access token"
    if access is Access.ORG_CREATOR:
        return (
            "creating organizations needs the instance's operator (an admin of the default "
            "organization), unless EVERLOOP_ANY_USER_CREATES_ORGS is set"
        )
    return f"this needs the {access.value} role in the organization (you are {who.role})"


CallerDep = Annotated[Caller, Depends(caller)]


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def known_query(request: Request) -> None:
    """Refuse a query parameter the route does not take (422 naming it) instead of ignoring
    it: a misspelt or unsupported filter would otherwise silently return everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = _QUERY_NAMES[id(route)] = frozenset(_query_names(route.dependant))
    for name in request.query_params:
        if name not in names:
            raise InvalidInput(
                f"unknown query parameter {printable(name)!r}; this route takes "
                f"{', '.join(sorted(names))}",
                field=printable(name),
            )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


KnownQuery = Depends(known_query)
"""A route's ``dependencies=[KnownQuery]``: its query string may name only its parameters."""
