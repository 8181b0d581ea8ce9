"""Routes for blueprints (read-only: built in or loaded from ``EVERLOOP_BLUEPRINTS_DIR``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from everloop.api.deps import CallerDep, services
from everloop.api.runtime_schemas import BlueprintResponse
from everloop.api.schemas import CapabilityConfigOut, ListResponse
from everloop.domain.blueprints import Blueprint

router = APIRouter(tags=["blueprints"])


def blueprint_out(blueprint: Blueprint) -> BlueprintResponse:
    return BlueprintResponse(
        id=blueprint.id,
        name=blueprint.name,
        description=blueprint.description,
        system_prompt=blueprint.system_prompt,
        capabilities=[CapabilityConfigOut.model_validate(c) for c in blueprint.capabilities],
        tools=[dict(t) for t in blueprint.tools],
        model_id=blueprint.model_id,
        max_iterations=blueprint.max_iterations,
        config_schema=dict(blueprint.config_schema),
        is_built_in=blueprint.is_built_in,
    )


@router.get("/v1/blueprints", response_model=ListResponse[BlueprintResponse])
async def list_blueprints(request: Request, caller: CallerDep) -> ListResponse[BlueprintResponse]:
    """List the built-in blueprints: session templates with a configuration schema."""
    found = services(request).blueprints.list()
    return ListResponse(data=[blueprint_out(b) for b in found], total=len(found))


@router.get("/v1/blueprints/{blueprint_id}", response_model=BlueprintResponse)
async def get_blueprint(
    request: Request, caller: CallerDep, blueprint_id: str
) -> BlueprintResponse:
    """Get one blueprint by id, with its configuration schema."""
    return blueprint_out(services(request).blueprints.get(blueprint_id))
