"""Agent routes beside CRUD: copy, stats, analysis, export and import (thin: parse, call the
service, present).

Registered before ``config_resources`` so a literal path (``/v1/agents/analyze``) is never
taken for an agent id.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from everloop.api.agent_schemas import (
    AgentAnalysisResponse,
    FindingLocation,
    FindingOut,
    ImportAgentRequest,
    ResourceStatsResponse,
)
from everloop.api.deps import CallerDep, services
from everloop.api.routes.config_resources import agent_out
from everloop.api.runtime_schemas import PreviewAgentRequest
from everloop.api.schemas import AgentResponse
from everloop.domain.agent_checks import Finding
from everloop.domain.agent_documents import parse
from everloop.errors import InvalidInput

MAX_DOCUMENT_BYTES = 12 * 1024 * 1024

router = APIRouter(tags=["agents"])


def finding_out(finding: Finding) -> FindingOut:
    location = (
        FindingLocation(field=finding.field, start=finding.start, end=finding.end)
        if finding.field
        else None
    )
    return FindingOut(
        rule_id=finding.rule_id,
        severity=finding.severity,
        category=finding.category,
        message=finding.message,
        source="builtin",
        location=location,
    )


@router.post(
    "/v1/agents/analyze",
    response_model=AgentAnalysisResponse,
)
async def analyze_agent(
    request: Request, caller: CallerDep, body: PreviewAgentRequest
) -> AgentAnalysisResponse:
    """Run advisory checks against a draft agent: it is assembled as a preview does (harness
    chain, capabilities applied) and the built-in rules' findings are returned. Nothing is
    saved."""
    findings = await services(request).runtime_agents.analyze_agent(caller, body.model_dump())
    return AgentAnalysisResponse(findings=[finding_out(f) for f in findings])


@router.post(
    "/v1/agents/{agent_id}/copy",
    response_model=AgentResponse,
    status_code=status.HTTP_201_CREATED,
)
async def copy_agent(request: Request, caller: CallerDep, agent_id: str) -> AgentResponse:
    """Copy an agent: a new agent with the same configuration, named `{name}-copy`."""
    return agent_out(await services(request).agents.copy(caller, agent_id))


@router.get(
    "/v1/agents/{agent_id}/stats",
    response_model=ResourceStatsResponse,
)
async def agent_stats(request: Request, caller: CallerDep, agent_id: str) -> ResourceStatsResponse:
    """An agent's usage statistics: its live sessions by status, their turns (executions),
    tokens, estimated cost and durations."""
    stats = await services(request).agent_stats.stats(caller, agent_id)
    return ResourceStatsResponse(
        **asdict(stats),
        total_actual_cost_usd=None,
        total_cost_usd=stats.total_estimated_cost_usd,
    )


@router.post(
    "/v1/agents/import",
    response_model=AgentResponse,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def import_agent(
    request: Request,
    caller: CallerDep,
    from_example: Annotated[str | None, Query(alias="from-example", max_length=200)] = None,
) -> AgentResponse:
    """Import an agent from a document or a built-in example. The body (any content type) is
    Markdown with YAML front matter as `GET /v1/agents/{agent_id}/export` writes it, or a JSON
    or YAML object of the create request's fields (`harness` names the harness), or plain text:
    all of it the system prompt. With `?from-example={name}` the body is ignored and the
    built-in example of that name is imported (named as the example; an unknown one is a 404).
    Always a new agent, its first version of change kind `import`: a name the organization
    uses is a 409."""
    documents = services(request).agent_documents
    if from_example is not None:
        text = documents.example_document(from_example)
    else:
        text = await _document_text(request)
    try:
        body = ImportAgentRequest.model_validate(parse(text))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    agent = await documents.import_agent(caller, body.model_dump(exclude_unset=True))
    return agent_out(agent)


async def _document_text(request: Request) -> str:
    raw = await request.body()
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput("the document is larger than 12 MiB", field="body")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise InvalidInput("the document is not UTF-8 text", field="body") from None


@router.get(
    "/v1/agents/{agent_id}/export",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
)
async def export_agent(request: Request, caller: CallerDep, agent_id: str) -> PlainTextResponse:
    """Export an agent as a document: Markdown with YAML front matter (the configuration,
    the harness by name; no ids, timestamps or MCP header values), then the system prompt.
    `POST /v1/agents/import` reads it back."""
    document = await services(request).agent_documents.export(caller, agent_id)
    return PlainTextResponse(document, media_type="text/markdown; charset=utf-8")
