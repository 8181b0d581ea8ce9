"""Wire schemas of the capability registry and of session SQL databases."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, StringConstraints

from everloop.api.schemas import WireModel


class ToolDefinitionInfo(BaseModel):
    type: Literal["builtin"] = "builtin"
    name: str
    description: str
    parameters: dict[str, Any]


class CapabilityInfoResponse(BaseModel):
    """A registered capability (the Everruns ``CapabilityInfo`` shape)."""

    id: str
    name: str
    description: str
    status: Literal["available", "coming_soon", "deprecated", "retired"]
    category: str | None
    features: list[str]
    dependencies: list[str]
    config_schema: dict[str, Any]
    tool_definitions: list[ToolDefinitionInfo]
    risk_level: Literal["low", "medium", "high"]
    system_prompt: str | None
    icon: str | None = None
    is_mcp: bool = False
    is_skill: bool = False


class CreateDatabaseRequest(WireModel):
    # The pattern is checked by the service, so its 422 names the rule in words.
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class DatabaseInfoResponse(BaseModel):
    name: str
    size_bytes: int
    page_count: int
    created_at: str
    updated_at: str


class ColumnInfo(BaseModel):
    name: str
    type: str
    not_null: bool
    default: str | None
    primary_key: bool


class TableInfo(BaseModel):
    name: str
    type: Literal["table", "view"]
    sql: str | None
    columns: list[ColumnInfo]


class SchemaResponse(BaseModel):
    database: str
    tables: list[TableInfo]


class GuardrailExampleResponse(BaseModel):
    """A read-only, adoptable guardrails preset (the Everruns ``GuardrailExample`` shape)."""

    name: str
    display_name: str
    description: str
    tags: list[str]
    check_types: list[str]
    stages: list[str]
    data_egress: Literal["none"] = "none"
    config: dict[str, Any]


class GuardrailExamplesResponse(BaseModel):
    examples: list[GuardrailExampleResponse]


class GuardrailsDryRunRequest(WireModel):
    """A guardrails config and a sample to evaluate it on, for one stage."""

    config: dict[str, Any]
    stage: Literal["output", "tool_use", "tool_output"]
    text: Annotated[str, StringConstraints(max_length=200_000)]
    tool_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class GuardrailsDryRunHitResponse(BaseModel):
    """One triggered check (the Everruns ``GuardrailsDryRunHit`` shape)."""

    check_index: int
    check_id: str
    stage: Literal["output", "tool_use", "tool_output"]
    rule_type: Literal["regex", "blocklist", "tool_pattern"]
    action: Literal["block", "log"]
    reason_code: str
    matched: str | None = None
    replacement: str | None = None


class GuardrailsDryRunResponse(BaseModel):
    hits: list[GuardrailsDryRunHitResponse]
    blocked: bool
