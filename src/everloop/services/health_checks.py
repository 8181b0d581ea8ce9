"""Agent health checks: triggering a run and reading runs (``/v1/agents/{id}/health-checks``).

A run plays the cases of the agent's ``health_check`` capability (``capabilities.health_check``)
as sessions of the agent; ``services.health_check_runs`` drives it. A run records the hash of
the agent's *resolved* config (its harness chain and capabilities applied, as the agent's
versions record it) at the trigger, so ``latest`` can say whether the agent changed since.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from everloop import ids
from everloop.domain.agent_versions import authored_config, config_hash
from everloop.domain.health_checks import HEALTH_CHECK, CaseResult, HealthCheckConfig
from everloop.domain.resources import Agent, ResourceStatus
from everloop.domain.runtime_agent import runtime_agent_to_json
from everloop.domain.timestamps import now
from everloop.engine.assembly import Assembler
from everloop.errors import InvalidInput, NotFound
from everloop.services.auth import Caller
from everloop.services.config_resources import AgentService
from everloop.services.health_check_runs import HealthCheckRunner
from everloop.services.models import ModelService
from everloop.store import health_checks as store
from everloop.store.db import Database
from everloop.store.runtime_layers import agent_layer, load_harness_chain


@dataclass(frozen=True, slots=True)
class HealthCheckRunView:
    """A run and the results of its cases done so far (in case order)."""

    run: store.RunRow
    results: tuple[CaseResult, ...]


@dataclass(frozen=True, slots=True)
class LatestHealthCheck:
    run: HealthCheckRunView | None
    config_changed: bool


class HealthCheckService:
    def __init__(
        self,
        db: Database,
        agents: AgentService,
        models: ModelService,
        assembler: Assembler,
        runner: HealthCheckRunner,
    ) -> None:
        self._db = db
        self._agents = agents
        self._models = models
        self._assembler = assembler
        self._runner = runner

    async def trigger(
        self, caller: Caller, agent_id: str, *, judge_model_id: str | None = None
    ) -> HealthCheckRunView:
        """Record a pending run of the agent's cases and start driving it. ``judge_model_id``
        overrides the config's judge. 422 when the agent is archived or has no cases."""
        if judge_model_id is not None:
            ids.parse("model", judge_model_id, field="judge_model_id")
        run_id = ids.new_id("healthcheck")
        async with self._db.write() as conn:
            agent = await self._agents.get(caller, agent_id, conn)
            if agent.status is not ResourceStatus.ACTIVE:
                raise InvalidInput(
                    f"agent '{agent.name}' is archived and cannot be checked", field="agent_id"
                )
            config = HealthCheckConfig.of_capabilities(agent.capabilities)
            if config is None or not config.cases:
                raise InvalidInput(
                    f"agent '{agent.name}' has no health-check cases: give it the "
                    f"'{HEALTH_CHECK}' capability with a config of cases",
                    code="health_checks_unavailable",
                    field="capabilities",
                )
            judge = judge_model_id or config.judge_model_id
            field = "judge_model_id" if judge_model_id else "capabilities.health_check.config"
            await self._models.ensure_exists(conn, caller.organization_id, judge, field)
            await store.insert_run(
                conn,
                {
                    "id": run_id,
                    "organization_id": caller.organization_id,
                    "agent_id": agent.id,
                    "config_hash": await self._resolved_hash(conn, agent),
                    "status": "pending",
                    "judge_model_id": judge,
                    "cases": [case.to_json() for case in config.cases],
                    "summary": None,
                    "error_message": None,
                    "principal_id": caller.principal_id,
                    "user_id": caller.user_id,
                    "principal_role": caller.role,
                    "principal_kind": caller.kind.value,
                    "created_at": now(),
                    "completed_at": None,
                },
                len(config.cases),
            )
            run = await store.get_run(conn, run_id)
        assert run is not None
        self._runner.start(run_id)
        return HealthCheckRunView(run, ())

    async def list(
        self, caller: Caller, agent_id: str, *, limit: int, offset: int
    ) -> list[HealthCheckRunView]:
        """The agent's runs, newest first."""
        async with self._db.read() as conn:
            agent = await self._agents.get(caller, agent_id, conn)
            runs = await store.list_runs(
                conn, caller.organization_id, agent.id, limit=limit, offset=offset
            )
            return await _views(conn, runs)

    async def get(self, caller: Caller, agent_id: str, run_id: str) -> HealthCheckRunView:
        ids.parse("healthcheck", run_id, field="run_id")
        async with self._db.read() as conn:
            agent = await self._agents.get(caller, agent_id, conn)
            run = await store.get_run(
                conn, run_id, org_id=caller.organization_id, agent_id=agent.id
            )
            if run is None:
                raise NotFound.of("health check run", run_id)
            (view,) = await _views(conn, [run])
            return view

    async def latest(self, caller: Caller, agent_id: str) -> LatestHealthCheck:
        """The newest run, and whether the agent's resolved config differs from that run's."""
        async with self._db.read() as conn:
            agent = await self._agents.get(caller, agent_id, conn)
            runs = await store.list_runs(conn, caller.organization_id, agent.id, limit=1, offset=0)
            if not runs:
                return LatestHealthCheck(None, False)
            (view,) = await _views(conn, runs)
            current = await self._resolved_hash(conn, agent)
        return LatestHealthCheck(view, current != view.run.config_hash)

    async def _resolved_hash(self, conn: AsyncConnection, agent: Agent) -> str:
        """The hash of the agent's resolved config: what a session of it would run now."""
        chain = await load_harness_chain(conn, agent.organization_id, agent.harness_id)
        authored = authored_config(asdict(agent))
        runtime = self._assembler.assemble(harnesses=chain, agent=agent_layer(authored, agent.id))
        return config_hash(runtime_agent_to_json(runtime))


async def _views(conn: AsyncConnection, runs: list[store.RunRow]) -> list[HealthCheckRunView]:
    cases = await store.cases_of(conn, [run.id for run in runs])
    results: dict[str, list[CaseResult]] = {}
    for case in cases:
        if case.result is not None:
            results.setdefault(case.run_id, []).append(CaseResult.from_json(case.result))
    return [HealthCheckRunView(run, tuple(results.get(run.id, ()))) for run in runs]
