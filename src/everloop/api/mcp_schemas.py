"""Wire schemas of the MCP server registry (``/v1/mcp-servers``).

``headers`` is write-only: a response lists ``header_names`` (and Everruns' ``api_key_set``,
true when an ``Authorization`` header is stored), never a value. URL and header checks are the
service's (``domain.mcp``), so a bad value is a 422 with a stable code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from everloop.api.schemas import LongText, ResourceName, WireModel

ServerUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
HeaderMap = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=200)],
        Annotated[str, StringConstraints(max_length=8000)],
    ],
    Field(max_length=100),
]
McpServerStatus = Literal["active", "disabled"]


class CreateMcpServerRequest(WireModel):
    name: ResourceName
    url: ServerUrl
    description: LongText | None = None
    headers: HeaderMap | None = None
    transport_type: Literal["http"] = "http"
    status: McpServerStatus = "active"


class UpdateMcpServerRequest(WireModel):
    name: ResourceName | None = None
    url: ServerUrl | None = None
    description: LongText | None = None
    headers: HeaderMap | None = Field(
        default=None, description="Replaces every stored header; null or {} removes them."
    )
    transport_type: Literal["http"] | None = None
    status: McpServerStatus | None = None


class McpServerResponse(BaseModel):
    id: str
    name: str
    description: str | None
    url: str
    transport_type: str
    status: McpServerStatus
    header_names: list[str]
    api_key_set: bool
    capability_ref: str = Field(description="Use it in a capability list: mcp:{id}.")
    created_at: str
    updated_at: str
