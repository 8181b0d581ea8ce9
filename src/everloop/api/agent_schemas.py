"""Wire shapes of an agent's stats and analysis (the SDK's ``ResourceStats`` and
``AgentAnalysisResponse``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from everloop.api.schemas import CreateAgentRequest, ResourceName


class ResourceStatsResponse(BaseModel):
    session_count: int
    active_session_count: int
    idle_session_count: int
    started_session_count: int
    waiting_for_tool_results_session_count: int
    execution_count: int
    total_session_duration_ms: int
    avg_session_duration_ms: int | None
    first_session_at: str | None
    last_session_at: str | None
    last_execution_at: str | None
    total_input_tokens: int
    total_output_tokens: int
    total_cache_read_tokens: int
    total_cache_creation_tokens: int
    # Provider-reported (actual) costs are not recorded: only prices times tokens (estimated).
    total_actual_cost_usd: float | None
    total_estimated_cost_usd: float
    total_cost_usd: float


class FindingLocation(BaseModel):
    field: str
    start: int | None = None
    end: int | None = None


class FindingOut(BaseModel):
    rule_id: str
    severity: Literal["warning", "info", "suggestion"]
    category: Literal["structure", "completeness", "effectiveness", "safety", "cost"]
    message: str
    source: Literal["builtin", "llm", "health_check"]
    location: FindingLocation | None = None
    fix: str | None = None


class AgentAnalysisResponse(BaseModel):
    findings: list[FindingOut]


class ImportAgentRequest(CreateAgentRequest):
    """An imported document's fields: a create request whose name may be left out, and where
    an unknown key is an error rather than ignored (a document is written by hand)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: ResourceName | None = None  # type: ignore[assignment]  # optional only on import
