"""Routes for LLM providers and their models (thin: parse, call the service, present)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response, status

from everloop.api.deps import CallerDep, services
from everloop.api.model_schemas import (
    CreateModelRequest,
    CreateProviderRequest,
    ModelResponse,
    ProviderResponse,
    UpdateModelRequest,
    UpdateProviderRequest,
)
from everloop.api.schemas import ListResponse
from everloop.domain.providers import Provider
from everloop.services.model_views import ModelView

router = APIRouter()


def provider_out(provider: Provider) -> ProviderResponse:
    return ProviderResponse.model_validate(
        asdict(provider)
        | {"provider_type": provider.driver, "api_key_set": provider.credentials_set}
    )


def model_out(view: ModelView) -> ModelResponse:
    model, provider, catalogue = view.model, view.provider, view.catalogue
    stored = model.profile
    context = stored.get("context_window") or catalogue.context_window
    output = stored.get("max_output_tokens") or catalogue.max_output_tokens
    prices = stored.get("prices") or {}
    profile = stored | {
        "name": catalogue.name,
        "family": catalogue.family,
        "attachment": catalogue.attachment,
        "reasoning": catalogue.reasoning,
        "temperature": catalogue.temperature,
        "tool_call": catalogue.tool_call,
        "structured_output": catalogue.structured_output,
        "open_weights": catalogue.open_weights,
        "release_date": catalogue.release_date,
        "limits": None
        if context is None or output is None
        else {"context": context, "output": output},
        "cost": {k: float(prices.get(k) or 0.0) for k in ("input", "output", "cache_read")},
        "modalities": {"input": list(catalogue.input_modalities), "output": ["text"]},
    }
    return ModelResponse.model_validate(
        asdict(model)
        | {
            "provider_name": provider.name,
            "provider_type": provider.driver,
            "model_vendor": catalogue.vendor,
            "profile": profile,
            "capabilities": catalogue.capabilities,
            "enabled": view.enabled,
            "healthy": view.healthy,
            "is_favorite": view.is_favorite,
            "source": "predefined" if model.is_built_in else "manual",
        }
    )


@router.get("/v1/providers", response_model=ListResponse[ProviderResponse], tags=["providers"])
async def list_providers(request: Request, caller: CallerDep) -> ListResponse[ProviderResponse]:
    """List the organization's LLM providers (API keys are never returned)."""
    found = await services(request).providers.list(caller)
    return ListResponse(data=[provider_out(p) for p in found], total=len(found))


@router.post(
    "/v1/providers",
    response_model=ProviderResponse,
    status_code=status.HTTP_201_CREATED,
    tags=["providers"],
)
async def create_provider(
    request: Request, caller: CallerDep, body: CreateProviderRequest
) -> ProviderResponse:
    """Add an LLM provider (its type, base URL and API key); the key is stored sealed and never
    returned."""
    created = await services(request).providers.create(caller, body.model_dump(exclude_unset=True))
    return provider_out(created)


@router.get("/v1/providers/{provider_id}", response_model=ProviderResponse, tags=["providers"])
async def get_provider(request: Request, caller: CallerDep, provider_id: str) -> ProviderResponse:
    """Get one LLM provider by id."""
    return provider_out(await services(request).providers.get(caller, provider_id))


@router.patch("/v1/providers/{provider_id}", response_model=ProviderResponse, tags=["providers"])
async def update_provider(
    request: Request, caller: CallerDep, provider_id: str, body: UpdateProviderRequest
) -> ProviderResponse:
    """Change an LLM provider; fields not sent stay as they are."""
    updated = await services(request).providers.update(
        caller, provider_id, body.model_dump(exclude_unset=True)
    )
    return provider_out(updated)


@router.delete(
    "/v1/providers/{provider_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["providers"]
)
async def delete_provider(request: Request, caller: CallerDep, provider_id: str) -> Response:
    """Delete an LLM provider."""
    await services(request).providers.delete(caller, provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/providers/{provider_id}/models",
    response_model=ListResponse[ModelResponse],
    tags=["models"],
)
async def list_provider_models(
    request: Request, caller: CallerDep, provider_id: str
) -> ListResponse[ModelResponse]:
    """List the models of one provider."""
    found = await services(request).model_views.list(caller, provider_id=provider_id)
    return ListResponse(data=[model_out(m) for m in found], total=len(found))


@router.post(
    "/v1/providers/{provider_id}/models",
    response_model=ModelResponse,
    status_code=status.HTTP_201_CREATED,
    tags=["models"],
)
async def create_model(
    request: Request, caller: CallerDep, provider_id: str, body: CreateModelRequest
) -> ModelResponse:
    """Add a model to a provider."""
    svc = services(request)
    created = await svc.models.create(caller, provider_id, body.model_dump(exclude_unset=True))
    (view,) = await svc.model_views.of(caller, [created])
    return model_out(view)


@router.get("/v1/models", response_model=ListResponse[ModelResponse], tags=["models"])
async def list_models(request: Request, caller: CallerDep) -> ListResponse[ModelResponse]:
    """List every model of the organization's providers."""
    found = await services(request).model_views.list(caller)
    return ListResponse(data=[model_out(m) for m in found], total=len(found))


@router.get("/v1/models/{model_id}", response_model=ModelResponse, tags=["models"])
async def get_model(request: Request, caller: CallerDep, model_id: str) -> ModelResponse:
    """Get one model by id."""
    return model_out(await services(request).model_views.get(caller, model_id))


@router.patch("/v1/models/{model_id}", response_model=ModelResponse, tags=["models"])
async def update_model(
    request: Request, caller: CallerDep, model_id: str, body: UpdateModelRequest
) -> ModelResponse:
    """Change a model; fields not sent stay as they are."""
    svc = services(request)
    updated = await svc.models.update(caller, model_id, body.model_dump(exclude_unset=True))
    (view,) = await svc.model_views.of(caller, [updated])
    return model_out(view)


@router.delete("/v1/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["models"])
async def delete_model(request: Request, caller: CallerDep, model_id: str) -> Response:
    """Delete a model."""
    await services(request).models.delete(caller, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
