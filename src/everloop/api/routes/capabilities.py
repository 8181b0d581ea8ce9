"""Routes of the capability registry: what capabilities this server offers (read-only), and the
guardrails gallery and dry run (``services.guardrails``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from everloop.api.capability_schemas import (
    CapabilityInfoResponse,
    GuardrailExampleResponse,
    GuardrailExamplesResponse,
    GuardrailsDryRunHitResponse,
    GuardrailsDryRunRequest,
    GuardrailsDryRunResponse,
    ToolDefinitionInfo,
)
from everloop.api.deps import CallerDep, services
from everloop.api.schemas import PageResponse
from everloop.capabilities.base import Capability, CapabilityError
from everloop.errors import NotFound
from everloop.services.guardrails import dry_run_guardrails, guardrail_examples

router = APIRouter()

_EMPTY_CONFIG = {"type": "object", "properties": {}, "additionalProperties": False}


def capability_out(capability: Capability) -> CapabilityInfoResponse:
    return CapabilityInfoResponse(
        id=capability.id,
        name=capability.name,
        description=capability.description,
        status=capability.status,
        category=capability.category,
        features=list(capability.features),
        dependencies=list(capability.dependencies),
        config_schema=capability.config_schema or _EMPTY_CONFIG,
        tool_definitions=[
            ToolDefinitionInfo(name=t.name, description=t.description, parameters=t.parameters)
            for t in capability.tools
        ],
        risk_level=capability.risk_level,
        system_prompt=capability.system_prompt_addition,
    )


@router.get(
    "/v1/capabilities",
    response_model=PageResponse[CapabilityInfoResponse],
    tags=["capabilities"],
)
async def list_capabilities(
    request: Request,
    caller: CallerDep,
    search: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageResponse[CapabilityInfoResponse]:
    """List the capabilities agents can be given (tool sets and behaviours), by id; ``search``
    filters on id, name and description."""
    found = sorted(services(request).capabilities.all(), key=lambda c: c.id)
    if search:
        needle = search.lower()
        found = [
            c
            for c in found
            if needle in c.id.lower() or needle in c.name.lower() or needle in c.description.lower()
        ]
    page = [capability_out(c) for c in found[offset : offset + limit]]
    return PageResponse(data=page, total=len(found), offset=offset, limit=limit)


@router.get(
    "/v1/capabilities/guardrails/examples",
    response_model=GuardrailExamplesResponse,
    tags=["capabilities"],
)
async def list_guardrail_examples(caller: CallerDep) -> GuardrailExamplesResponse:
    """List adoptable guardrail presets: copy one's ``config`` into an agent's ``guardrails``
    capability config (try it first with the dry run)."""
    examples = [
        GuardrailExampleResponse(
            name=p.name,
            display_name=p.display_name,
            description=p.description,
            tags=list(p.tags),
            check_types=p.check_types,
            stages=p.stages,
            config=p.config,
        )
        for p in guardrail_examples()
    ]
    return GuardrailExamplesResponse(examples=examples)


@router.post(
    "/v1/capabilities/guardrails/dry-run",
    response_model=GuardrailsDryRunResponse,
    tags=["capabilities"],
)
async def dry_run(
    request: Request, caller: CallerDep, body: GuardrailsDryRunRequest
) -> GuardrailsDryRunResponse:
    """Evaluate a ``guardrails`` config against sample text for one stage, without a session:
    the checks that would trigger, their effective action, and whether the content would be
    blocked. A config that could not be saved is a 422 naming the failing check."""
    found = dry_run_guardrails(
        services(request).capabilities, body.config, body.stage, body.text, body.tool_name
    )
    hits = [
        GuardrailsDryRunHitResponse(
            check_index=h.check.index,
            check_id=h.check.check_id,
            stage=h.stage,
            rule_type=h.check.rule_type,
            action=h.action,
            reason_code=h.check.reason_code,
            matched=h.excerpt,
            replacement=h.check.replacement,
        )
        for h in found.hits
    ]
    return GuardrailsDryRunResponse(hits=hits, blocked=found.blocked)


@router.get(
    "/v1/capabilities/{capability_id}",
    response_model=CapabilityInfoResponse,
    tags=["capabilities"],
)
async def get_capability(
    request: Request, caller: CallerDep, capability_id: str
) -> CapabilityInfoResponse:
    """Get one capability by id, with its tools and configuration schema."""
    try:
        capability = services(request).capabilities.get(capability_id)
    except CapabilityError:
        raise NotFound.of("capability", capability_id[:200]) from None
    return capability_out(capability)
