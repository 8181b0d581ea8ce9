"""Request dependencies: the service container and the authenticated caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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
    return await svc.auth.authenticate(authorization, x_org_id, client)


CallerDep = Annotated[Caller, Depends(caller)]
