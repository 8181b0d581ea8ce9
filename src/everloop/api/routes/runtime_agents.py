"""Routes showing assembled RuntimeAgents: a session's context report, agent and harness
previews of unsaved drafts."""

from __future__ import annotations

from fastapi import APIRouter, Request

from everloop.api.deps import CallerDep, services
from everloop.api.runtime_schemas import (
    ContextReportContribution,
    ContextReportSection,
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
from everloop.domain.runtime_agent import RuntimeAgent, estimate_tokens
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
    request: Request, caller: CallerDep, session_id: str
) -> SessionContextReport:
    """What the session's model call would carry: the resolved agent (prompt, tools, model) and an
    estimate of its tokens by section."""
    svc = services(request)
    session, runtime, model = await svc.runtime_agents.for_session(caller, session_id)
    view = runtime_view(runtime, model, svc.settings.default_max_iterations)
    prompt_tokens = estimate_tokens(runtime.system_prompt, ())
    tool_tokens = {t.name: estimate_tokens(None, (t,)) for t in runtime.tools}
    return SessionContextReport(
        **view.model_dump(by_alias=True),
        session_id=session.id,
        agent_version_id=session.agent_version_id,
        blueprint_id=session.blueprint_id,
        estimated_input_tokens=runtime.prompt_tokens_estimate,
        sections=[
            ContextReportSection(
                key="system_prompt", label="System prompt", tokens=prompt_tokens, items=1
            ),
            ContextReportSection(
                key="tools",
                label="Tool definitions",
                tokens=sum(tool_tokens.values()),
                items=len(tool_tokens),
            ),
        ],
        contributions=[
            ContextReportContribution(section_key="tools", source_id=name, label=name, tokens=n)
            for name, n in tool_tokens.items()
        ],
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
