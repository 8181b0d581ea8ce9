"""Wire schemas of budgets (``/v1/budgets``, a session's ``budgets``, ``budget-check`` and
``resume``), in the shapes of ``everruns-sdk`` 0.3.1's models.

Amounts are JSON numbers; whether they are finite, positive and consistent (a soft limit at
most the limit), the currency, the subject and the period are the service's checks
(``domain.budgets``), so each failure is a 422 naming its field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from everloop.api.json_values import JsonValue
from everloop.api.schemas import WireModel

SubjectText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ShortWord = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Description = Annotated[str, StringConstraints(max_length=1000)]
BudgetStatusOut = Literal["active", "paused", "exhausted", "disabled"]
# A JSON number, not a string or a boolean that would pass for one.
Amount = Annotated[float, Field(strict=True)]


class BudgetPeriodIn(WireModel):
    """``{"type": "duration", "seconds": N}``, ``{"type": "rolling", "window": "24h"}`` or
    ``{"type": "calendar", "unit": "month"}`` (hour, day, week, month, year; UTC)."""

    type: ShortWord
    seconds: Annotated[int, Field(strict=True)] | None = None
    window: ShortWord | None = None
    unit: ShortWord | None = None


class CreateBudgetRequest(WireModel):
    subject_type: ShortWord
    subject_id: SubjectText
    currency: ShortWord
    limit: Amount
    soft_limit: Amount | None = None
    period: BudgetPeriodIn | None = None
    metadata: JsonValue = None


class UpdateBudgetRequest(WireModel):
    limit: Amount | None = None
    soft_limit: Amount | None = None
    status: ShortWord | None = None
    metadata: JsonValue = None


class TopUpRequest(WireModel):
    amount: Amount
    description: Description | None = None


class BudgetResponse(BaseModel):
    id: str
    organization_id: str
    subject_type: str
    subject_id: str
    currency: str
    limit: float
    soft_limit: float | None
    period: dict[str, Any] | None = Field(
        description="As stored: {type: duration, seconds}, {type: rolling, window, seconds} "
        "or {type: calendar, unit}."
    )
    period_started_at: str | None
    balance: float
    status: BudgetStatusOut
    metadata: Any
    created_at: str
    updated_at: str


class LedgerEntryResponse(BaseModel):
    id: str
    budget_id: str
    amount: Amount
    meter_source: str
    ref_type: str | None
    ref_id: str | None
    session_id: str | None
    description: str | None
    created_at: str


class BudgetCheckResponse(BaseModel):
    action: Literal["continue", "warn", "pause", "stop"]
    budget_id: str | None = None
    balance: float | None = None
    currency: str | None = None
    message: str | None = None
    error_code: str | None = None
    error_fields: dict[str, Any] | None = None


class ResumeSessionResponse(BaseModel):
    resumed_budgets: int
    session_id: str
