"""Request dependencies: the service container and the authenticated caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from everloop.api.json_values import printable
from everloop.errors import InvalidInput
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
    found = await svc.auth.authenticate(authorization, x_org_id, client)
    request.state.org_id = found.organization_id  # for the access log (``api.observe``)
    return found


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
