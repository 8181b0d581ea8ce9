"""Wire schemas of providers and models (``/v1/providers``, ``/v1/models``).

``api_key`` is write-only: responses say ``credentials_set`` (and the Everruns name
``api_key_set``). ``driver`` is also accepted and returned as Everruns' ``provider_type``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, StringConstraints

from everloop.api.json_values import JsonObject
from everloop.api.schemas import WireModel
from everloop.domain.model_catalogue import Modality, Vendor
from everloop.domain.providers import Driver, ProviderStatus

ProviderName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
BaseUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ApiKey = Annotated[str, StringConstraints(max_length=10_000)]
WireModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_DRIVER_ALIASES = AliasChoices("driver", "provider_type")
TokenCount = Annotated[int, Field(ge=1, le=1_000_000_000)]


class ModelPrices(WireModel):
    """US dollars per million tokens."""

    input: Annotated[float, Field(ge=0)] = 0.0
    output: Annotated[float, Field(ge=0)] = 0.0
    cache_read: Annotated[float, Field(ge=0)] = 0.0
    cache_write: Annotated[float, Field(ge=0)] = 0.0


class ModelProfile(WireModel):
    context_window: TokenCount | None = None
    max_output_tokens: TokenCount | None = None
    prices: ModelPrices = Field(default_factory=ModelPrices)


# -- providers --------------------------------------------------------------------------------


class CreateProviderRequest(WireModel):
    name: ProviderName
    driver: Driver = Field(validation_alias=_DRIVER_ALIASES)
    base_url: BaseUrl | None = None
    api_key: ApiKey | None = None
    settings: JsonObject = {}
    status: ProviderStatus = "active"


class UpdateProviderRequest(WireModel):
    name: ProviderName | None = None
    driver: Driver | None = Field(default=None, validation_alias=_DRIVER_ALIASES)
    base_url: BaseUrl | None = None
    api_key: ApiKey | None = Field(
        default=None, description="A new key; null or an empty string removes the stored key."
    )
    settings: JsonObject | None = None
    status: ProviderStatus | None = None


class ProviderResponse(BaseModel):
    id: str
    organization_id: str
    name: str
    driver: Driver
    provider_type: Driver
    base_url: str | None
    settings: dict[str, Any]
    credentials_set: bool
    api_key_set: bool
    is_built_in: bool
    status: ProviderStatus
    created_at: str
    updated_at: str


# -- models -----------------------------------------------------------------------------------


class CreateModelRequest(WireModel):
    model_id: WireModelName
    display_name: DisplayName | None = None
    settings: JsonObject = {}
    profile: ModelProfile | None = None


class UpdateModelRequest(WireModel):
    model_id: WireModelName | None = None
    display_name: DisplayName | None = None
    settings: JsonObject | None = None
    profile: ModelProfile | None = None


class ModelLimits(BaseModel):
    context: int
    output: int


class ModelCost(BaseModel):
    """US dollars per million tokens (Everruns' form of ``prices``)."""

    input: float
    output: float
    cache_read: float


class ModelModalities(BaseModel):
    input: list[Modality]
    output: list[Modality]


class ModelProfileResponse(ModelProfile):
    """The stored limits and prices (as written) and what the model can do (Everruns'
    ``ModelProfile``; see ``domain.model_catalogue``)."""

    name: str
    family: str
    attachment: bool
    reasoning: bool
    temperature: bool
    tool_call: bool
    structured_output: bool
    open_weights: bool
    release_date: str | None
    limits: ModelLimits | None
    cost: ModelCost
    modalities: ModelModalities


class ModelResponse(BaseModel):
    id: str
    organization_id: str
    provider_id: str
    provider_name: str
    provider_type: Driver
    model_id: str
    display_name: str
    model_vendor: Vendor | None
    settings: dict[str, Any]
    profile: ModelProfileResponse
    capabilities: list[str]
    enabled: bool
    healthy: bool
    is_favorite: bool
    is_built_in: bool
    source: Literal["manual", "predefined"]
    created_at: str
    updated_at: str
