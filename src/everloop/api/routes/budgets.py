"""Routes of budgets (thin: parse, call the service, present). Lists are bare JSON arrays, as
``everruns-sdk`` reads them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from everloop.api.budget_schemas import (
    BudgetCheckResponse,
    BudgetResponse,
    CreateBudgetRequest,
    LedgerEntryResponse,
    ResumeSessionResponse,
    TopUpRequest,
    UpdateBudgetRequest,
)
from everloop.api.deps import CallerDep, services
from everloop.api.idempotency import IdempotencyKey, once
from everloop.domain.budgets import Budget
from everloop.services.budgets import BudgetCheck

router = APIRouter(tags=["budgets"])


def budget_out(budget: Budget) -> BudgetResponse:
    return BudgetResponse(
        id=budget.id,
        organization_id=budget.organization_id,
        subject_type=budget.subject_type,
        subject_id=budget.subject_id,
        currency=budget.currency,
        limit=budget.limit,
        soft_limit=budget.soft_limit,
        period=budget.period,
        period_started_at=budget.period_started_at,
        balance=budget.balance,
        status=budget.status,
        metadata=budget.metadata,
        created_at=budget.created_at,
        updated_at=budget.updated_at,
    )


def ledger_entry_out(entry: dict[str, Any]) -> LedgerEntryResponse:
    return LedgerEntryResponse.model_validate(
        {key: entry[key] for key in LedgerEntryResponse.model_fields}
    )


def check_out(check: BudgetCheck) -> BudgetCheckResponse:
    budget = check.budget
    if budget is None:
        return BudgetCheckResponse(action=check.action)
    fields = (
        {
            "budget_id": budget.id,
            "balance": budget.balance,
            "limit": budget.limit,
            "currency": budget.currency,
        }
        if check.error_code is not None
        else None
    )
    return BudgetCheckResponse(
        action=check.action,
        budget_id=budget.id,
        balance=budget.balance,
        currency=budget.currency,
        message=check.message,
        error_code=check.error_code,
        error_fields=fields,
    )


@router.get("/v1/budgets", response_model=list[BudgetResponse])
async def list_budgets(
    request: Request,
    caller: CallerDep,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[BudgetResponse]:
    """List the organization's budgets, optionally only those of one subject (``subject_type`` and
    ``subject_id``)."""
    found = await services(request).budgets.list(
        caller, subject_type=subject_type, subject_id=subject_id
    )
    return [budget_out(b) for b in found]


@router.post("/v1/budgets", response_model=BudgetResponse, status_code=status.HTTP_201_CREATED)
async def create_budget(
    request: Request, caller: CallerDep, body: CreateBudgetRequest
) -> BudgetResponse:
    """Create a budget: a spending limit on a subject (an organization, agent, session...) over a
    period."""
    fields = body.model_dump()
    return budget_out(await services(request).budgets.create(caller, fields))


@router.get("/v1/budgets/{budget_id}", response_model=BudgetResponse)
async def get_budget(request: Request, caller: CallerDep, budget_id: str) -> BudgetResponse:
    """Get one budget by id, with its balance."""
    return budget_out(await services(request).budgets.get(caller, budget_id))


@router.patch("/v1/budgets/{budget_id}", response_model=BudgetResponse)
async def update_budget(
    request: Request, caller: CallerDep, budget_id: str, body: UpdateBudgetRequest
) -> BudgetResponse:
    """Change a budget's limit, thresholds or state; fields not sent stay as they are."""
    updated = await services(request).budgets.update(
        caller, budget_id, body.model_dump(exclude_unset=True)
    )
    return budget_out(updated)


@router.delete("/v1/budgets/{budget_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_budget(request: Request, caller: CallerDep, budget_id: str) -> Response:
    """Delete a budget; it no longer limits its subject."""
    await services(request).budgets.delete(caller, budget_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/budgets/{budget_id}/top-up", response_model=BudgetResponse)
async def top_up_budget(
    request: Request,
    caller: CallerDep,
    budget_id: str,
    body: TopUpRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Credit ``amount`` to the budget. With an ``Idempotency-Key``, a retry credits once."""

    async def top_up() -> BudgetResponse:
        budgets = services(request).budgets
        topped = await budgets.top_up(caller, budget_id, body.amount, description=body.description)
        return budget_out(topped)

    return await once(request, caller, idempotency_key, 200, top_up)


@router.get("/v1/budgets/{budget_id}/ledger", response_model=list[LedgerEntryResponse])
async def budget_ledger(
    request: Request,
    caller: CallerDep,
    budget_id: str,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many entries.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[LedgerEntryResponse]:
    """The budget's ledger: its charges and top-ups, newest first, ``limit`` at a time from
    ``offset``."""
    entries = await services(request).budgets.ledger(caller, budget_id, limit=limit, offset=offset)
    return [ledger_entry_out(e) for e in entries]


@router.get("/v1/budgets/{budget_id}/check", response_model=BudgetCheckResponse)
async def check_budget(request: Request, caller: CallerDep, budget_id: str) -> BudgetCheckResponse:
    """Whether the budget still allows spending, and how much is left."""
    return check_out(await services(request).budgets.check(caller, budget_id))


@router.get("/v1/sessions/{session_id}/budgets", response_model=list[BudgetResponse])
async def session_budgets(
    request: Request, caller: CallerDep, session_id: str
) -> list[BudgetResponse]:
    """List the budgets that apply to a session (its own and those of its agent, owner and
    organization)."""
    found = await services(request).budgets.for_session(caller, session_id)
    return [budget_out(b) for b in found]


@router.get("/v1/sessions/{session_id}/budget-check", response_model=BudgetCheckResponse)
async def session_budget_check(
    request: Request, caller: CallerDep, session_id: str
) -> BudgetCheckResponse:
    """Whether the session may spend: the check of the tightest budget that applies to it."""
    return check_out(await services(request).budgets.check_session(caller, session_id))


@router.post("/v1/sessions/{session_id}/resume", response_model=ResumeSessionResponse)
async def resume_session(
    request: Request, caller: CallerDep, session_id: str
) -> ResumeSessionResponse:
    """Set the session's paused budgets active again; a paused session with no budget left
    blocking it is idle again and runs what was queued, in order."""
    resumed = await services(request).budgets.resume(caller, session_id)
    return ResumeSessionResponse(resumed_budgets=resumed, session_id=session_id)
