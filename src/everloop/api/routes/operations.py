"""Operations: liveness, readiness, metrics, and the executors of the durable engine."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from everloop.api.deps import CallerDep, services
from everloop.api.schemas import ErrorResponse, ListResponse
from everloop.telemetry.metrics import CONTENT_TYPE

router = APIRouter()


class WorkerResponse(BaseModel):
    executor_id: str
    role: str
    hostname: str
    pid: int
    application_version: str
    started_at: str
    last_heartbeat_at: str
    running_turns: int
    stopped_at: str | None
    recovered_at: str | None
    recovered_by: str | None


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the app database and the engine's system database answer."""
    checks = await services(request).ready()
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)


@router.get(
    "/api/v1/durable/workers",
    response_model=ListResponse[WorkerResponse],
    tags=["operations"],
    responses={404: {"model": ErrorResponse, "description": "The caller is not an operator"}},
)
async def list_workers(request: Request, caller: CallerDep) -> ListResponse[WorkerResponse]:
    """The executors of the durable engine, with their last heartbeat and running turns.

    Operators only (callers acting for the default organization); 404 for anyone else."""
    found = await services(request).executors.list(caller)
    data = []
    for worker in found:
        values = asdict(worker)
        values["last_heartbeat_at"] = values.pop("heartbeat_at")
        data.append(WorkerResponse(**values))
    return ListResponse(data=data, total=len(data))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The process's metrics in the Prometheus text format (docs/operations.md).

    Operators only: a token acting for the default organization, or a client address in
    ``EVERLOOP_METRICS_ALLOW_IPS``; 404 for anyone else, 401 without a token."""
    body = await services(request).observability.scrape(
        request.headers.get("authorization"),
        request.headers.get("x-org-id"),
        request.client.host if request.client else None,
    )
    return Response(body, media_type=CONTENT_TYPE)
