"""Wire shapes of agent health checks (the reference's ``HealthCheckRun`` and friends, which
``everruns-sdk`` parses)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TriggerHealthCheckRequest(BaseModel):
    """Optional: the SDK sends ``{}``. ``judge_model_id`` overrides the config's judge."""

    model_config = ConfigDict(extra="forbid")
    judge_model_id: str | None = Field(default=None, max_length=48)


class HealthCheckCaseResultResponse(BaseModel):
    name: str
    user_message: str
    rubric: str
    passed: bool
    score: float
    judge_reason: str
    deterministic_reason: str
    turns: int
    latency_ms: int
    input_tokens: int
    output_tokens: int
    session_id: str | None
    error: str | None


class HealthCheckSummaryResponse(BaseModel):
    total: int
    passed: int
    failed: int
    errored: int
    pass_rate: float
    avg_score: float
    avg_turns: float
    total_input_tokens: int
    total_output_tokens: int


class HealthCheckRunResponse(BaseModel):
    id: str
    agent_id: str | None
    config_hash: str
    status: Literal["pending", "running", "completed", "failed"]
    model_id: str | None
    results: list[HealthCheckCaseResultResponse] | None
    summary: HealthCheckSummaryResponse | None
    error_message: str | None
    created_at: str
    completed_at: str | None


class LatestHealthCheckRunResponse(BaseModel):
    run: HealthCheckRunResponse | None
    config_changed: bool
