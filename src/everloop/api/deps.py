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
    svc: Services = request.app.state.services
    return await svc.auth.authenticate(authorization, x_org_id)


CallerDep = Annotated[Caller, Depends(caller)]
