"""Request dependencies: the service container and the authenticated caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request

from everloop.services.auth import Caller

if TYPE_CHECKING:
    from everloop.bootstrap import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_org_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    """The authenticated caller; failures count against the client's address (the socket peer,
    or what a trusted proxy says: ``EVERLOOP_FORWARDED_ALLOW_IPS``)."""
    svc: Services = request.app.state.services
    client = request.client.host if request.client else "unknown"
    return await svc.auth.authenticate(authorization, x_org_id, client)


CallerDep = Annotated[Caller, Depends(caller)]
