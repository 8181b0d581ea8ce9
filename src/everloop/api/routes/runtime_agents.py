"""Routes showing assembled RuntimeAgents: a session's context report, agent and harness
previews of unsaved drafts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from everloop.api.deps import CallerDep, services
from everloop.api.runtime_schemas import (
    CompactionOut,
    ContextReportContribution,
    ContextReportSection,
    McpToolListingOut,
    NetworkAccessOut,
    PreviewAgentRequest,
    PreviewHarnessRequest,
    RuntimeAgentView,
    RuntimeCapability,
    RuntimeLimits,
    RuntimeModel,
    RuntimeToolOut,
    SessionContextReport,
)
from everloop.api.schemas import TokenUsage
from everloop.capabilities.mcp import ServerListing
from everloop.domain.mcp import MCP_REF_PREFIX
from everloop.domain.runtime_agent import RuntimeAgent
from everloop.services.runtime_agents import ModelChoice

router = APIRouter()


def runtime_view(
    runtime: RuntimeAgent, model: ModelChoice, default_max_iterations: int
) -> RuntimeAgentView:
    access = runtime.network_access
    return RuntimeAgentView(
        system_prompt=runtime.system_prompt or "",
        capabilities=[
            RuntimeCapability(
                ref=c.ref, config=dict(c.config) if c.config else None, implicit=c.implicit
            )
            for c in runtime.capabilities
        ],
        tools=[
            RuntimeToolOut(
                name=t.name,
                description=t.description,
                parameters=dict(t.parameters),
                source=t.source,
                capability_id=t.capability_id,
            )
            for t in runtime.tools
        ],
        model=RuntimeModel(
            id=model.id, name=model.name, provider_id=model.provider_id, error=model.error
        ),
        limits=RuntimeLimits(
            max_iterations=runtime.max_iterations or default_max_iterations,
            parallel_tool_calls=runtime.parallel_tool_calls is not False,
        ),
        hints=dict(runtime.hints),
        network_access=NetworkAccessOut(
            allowed=list(access.allowed) if access.allowed is not None else None,
            blocked=list(access.blocked),
        ),
        locale=runtime.locale,
        mcp_servers=dict(runtime.mcp_servers),
        initial_files=[str(f["path"]) for f in runtime.initial_files],
        features=list(runtime.features),
        estimated_prompt_tokens=runtime.prompt_tokens_estimate,
    )


@router.get(
    "/v1/sessions/{session_id}/context-report",
    response_model=SessionContextReport,
    tags=["sessions"],
)
async def get_session_context_report(
    request: Request,
    caller: CallerDep,
    session_id: str,
    discover: Annotated[
        bool,
        Query(
            description="List an MCP server that has no cached tool listing now (through the "
            "egress guard, bounded by the MCP timeout). false: no network call; such a "
            "server's tools are reported `unknown`."
        ),
    ] = True,
) -> SessionContextReport:
    """What the session's next model call would carry: the resolved agent (prompt, tools, model)
    and its tokens by section (system prompt, tools, compacted summary, history) and source,
    counted for the session's model, with its context window, the session's usage and how
    close it is to compacting. The tools include those of the MCP servers the session
    can reach (`mcp_tool_listings` says, per server, whether they came from the tool cache, were
    listed for this report, or are unknown or unreachable); a cached listing costs no network
    call."""
    svc = services(request)
    report = await svc.runtime_agents.context_report(caller, session_id, discover=discover)
    session, runtime, tokens = report.session, report.runtime, report.tokens
    view = runtime_view(runtime, report.model, svc.settings.default_max_iterations)
    view.tools += [
        RuntimeToolOut(
            name=t.name,
            description=t.description,
            parameters=dict(t.parameters),
            source="mcp",
            capability_id=f"{MCP_REF_PREFIX}{t.spec.server_id}" if t.spec.server_id else None,
        )
        for t in report.mcp_tools
    ]
    if report.instructions:
        view.system_prompt = "\n\n".join(p for p in (view.system_prompt, report.instructions) if p)
    view.estimated_prompt_tokens = sum(
        s.tokens for s in tokens.sections if s.key in ("system_prompt", "tools")
    )
    compaction = tokens.compaction
    usage = session.usage
    return SessionContextReport(
        **view.model_dump(by_alias=True),
        session_id=session.id,
        agent_version_id=session.agent_version_id,
        blueprint_id=session.blueprint_id,
        estimated_input_tokens=tokens.estimated,
        token_count_method=tokens.method,
        calibration_ratio=tokens.ratio,
        context_window_tokens=tokens.context_window,
        cumulative_usage=TokenUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
        ),
        compaction=CompactionOut(
            active=compaction.active,
            threshold_tokens=compaction.threshold_tokens,
            last_checkpoint_id=compaction.last_checkpoint_id,
            last_checkpoint_at=compaction.last_checkpoint_at,
        ),
        sections=[
            ContextReportSection(key=s.key, label=s.label, tokens=s.tokens, items=s.items)
            for s in tokens.sections
        ],
        contributions=[
            ContextReportContribution(
                section_key=c.section_key, source_id=c.source_id, label=c.label, tokens=c.tokens
            )
            for c in tokens.contributions
        ],
        mcp_tool_listings=[listing_out(listing) for listing in report.mcp_servers],
    )


def listing_out(listing: ServerListing) -> McpToolListingOut:
    known = listing.status in ("cached", "discovered")
    detail = listing.error
    if listing.status == "unknown":
        detail = "tools unknown until the first turn lists them (no cached listing; discover=false)"
    return McpToolListingOut(
        server=listing.spec.name,
        server_id=listing.spec.server_id,
        status=listing.status,
        tools=[t.name for t in listing.tools] if known else None,
        detail=detail,
    )


@router.post("/v1/agents/preview", response_model=RuntimeAgentView, tags=["agents"])
async def preview_agent(
    request: Request, caller: CallerDep, body: PreviewAgentRequest
) -> RuntimeAgentView:
    """Preview the agent an agent definition would run as (harness, capabilities and tools applied),
    without saving anything."""
    svc = services(request)
    runtime, model = await svc.runtime_agents.preview_agent(caller, body.model_dump())
    return runtime_view(runtime, model, svc.settings.default_max_iterations)


@router.post("/v1/harnesses/preview", response_model=RuntimeAgentView, tags=["harnesses"])
async def preview_harness(
    request: Request, caller: CallerDep, body: PreviewHarnessRequest
) -> RuntimeAgentView:
    """Preview the agent a harness definition would run as (capabilities and tools applied), without
    saving anything."""
    svc = services(request)
    runtime, model = await svc.runtime_agents.preview_harness(caller, body.model_dump())
    return runtime_view(runtime, model, svc.settings.default_max_iterations)
