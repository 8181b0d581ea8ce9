"""Running a server process (``serve``, ``api``, ``worker``) in three phases.

First the process claims what it needs (``cli.claims``): an executing process (``serve``,
``worker``) locks its data dir, then every process binds its port; a second server on the same
data dir, or a taken port, exits at once with status 1 and a message naming the holder.

Then, before the port serves: migrate the app database (one version read when it is up to
date) and make sure the admin user and its token exist, so ``<data-dir>/admin-token`` is there
when ``/healthz`` first answers. That phase imports only the database and auth modules.

After: import and build the services and the HTTP app (FastAPI, DBOS) in a thread, seed the
organization, launch the durable engine, then open the ``StartupGate``. Until then ``/healthz``
answers 200, ``/readyz`` 503, and other requests wait for the app. Last, the model and MCP SDKs
(which load on first use) are imported in a thread, so that no turn waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from everloop import __version__, logs
from everloop.api.gate import StartupGate
from everloop.bootstrap_admin import bootstrap_admin, prepare_storage
from everloop.cli.claims import ClaimRefused, bind_port, lock_data_dir, private_files
from everloop.config import Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from everloop.bootstrap import Services

log = logging.getLogger("everloop.startup")


def write_admin_token(data_dir: Path, token: str) -> Path:
    """Write the admin token to ``<data-dir>/admin-token`` readable by the owner only."""
    path = data_dir / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return path


class Startup:
    """What runs after the port is bound, and its undoing at shutdown."""

    def __init__(
        self, settings: Settings, role: str, organization_id: str, migrations: str = ""
    ) -> None:
        self.settings = settings
        self.role = role
        self.organization_id = organization_id
        self.migrations = migrations
        self.services: Services | None = None
        self.failed: BaseException | None = None
        self._warm_up: asyncio.Task[None] | None = None

    def _build(self) -> tuple[Services, ASGIApp]:
        # In a thread: the imports are most of the start-up time, and the event loop keeps
        # answering /healthz meanwhile. Building touches no event loop.
        from everloop.api.app import create_app
        from everloop.bootstrap import build_services

        services = build_services(self.settings)
        return services, create_app(services, api=self.role != "worker")

    async def start(self) -> ASGIApp:
        services, app = await asyncio.to_thread(self._build)
        self.services = services
        await services.seed_org(self.organization_id)
        await services.audit.start()
        swept = await services.start_engine(execute=self.role != "api", role=self.role)
        self._announce(services.engine.executor_id, swept)
        self._warm_up = asyncio.create_task(asyncio.to_thread(_load_sdks), name="load-sdks")
        return app

    def _announce(self, executor_id: str, swept: int) -> None:
        """The start-up block: version, storage, migrations, where to reach the process."""
        settings = self.settings
        where = f"http://{settings.host}:{settings.port}"
        fields: dict[str, object] = {"version": __version__, "role": self.role}
        if self.role != "api":
            fields["data_dir"] = str(settings.data_dir.resolve())
            fields["executor"] = executor_id
        fields["database"] = _shown_url(settings.app_database_url)
        fields["migrations"] = self.migrations
        if self.role == "worker":
            fields["health"] = f"{where}/healthz"
        else:
            fields["url"] = f"{where}/api"
            fields["docs"] = f"{where}/api/docs"
        if swept:
            fields["resumed_turns"] = swept
        if settings.log_format == "json":
            log.info("everloop started", extra={"fields": fields})
            return
        lines = [f"everloop {__version__} {self.role}: ready"]
        lines += [f"  {k.replace('_', ' '):<14}{v}" for k, v in list(fields.items())[2:]]
        typer.echo("\n".join(lines))

    async def stop(self) -> None:
        if self.services is not None:
            await self.services.close()
            self.services = None


def _shown_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _load_sdks() -> None:
    from everloop.capabilities.mcp import load_sdk as load_mcp_sdk
    from everloop.llm.clients import load_sdks as load_model_sdks

    try:
        load_model_sdks()
        load_mcp_sdk()
    except Exception:  # they load again, and fail visibly, when a turn needs them
        log.exception("loading the model and MCP SDKs failed")


def run(settings: Settings, *, role: str) -> None:
    """Run one server process until it is stopped; exit 1 if it fails to start."""
    import uvicorn

    logs.configure(settings.log_level, settings.log_format)
    if role != "serve" and not settings.is_postgres:
        typer.echo(
            f"error: `everloop {role}` runs beside other processes and needs PostgreSQL: set "
            "EVERLOOP_DATABASE_URL=postgresql+psycopg://user@host/db (or use `everloop serve`)",
            err=True,
        )
        raise typer.Exit(code=2)
    private_files()
    try:
        # Held until the process ends: the OS drops the lock with the process.
        lock = lock_data_dir(settings.data_dir, role) if role != "api" else None
        sock = bind_port(settings.host, settings.port)
    except ClaimRefused as exc:
        typer.echo(f"error: everloop {role} not started: {exc}", err=True)
        raise typer.Exit(code=1) from None
    migrations = logs.quiet_migrations()
    prepare_storage(settings)
    boot = asyncio.run(bootstrap_admin(settings))
    if boot.token:
        path = write_admin_token(settings.data_dir, boot.token)
        typer.echo(
            f"everloop: created admin token (shown once, also saved to {path}):\n  {boot.token}"
        )

    startup = Startup(settings, role, boot.organization_id, migrations.text)
    server: uvicorn.Server | None = None

    def failed(exc: BaseException) -> None:
        startup.failed = exc
        if server is not None:
            server.should_exit = True

    config = uvicorn.Config(
        StartupGate(startup.start, startup.stop, on_failure=failed),
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=3,
        # The client address (which failed authentications count against) is the socket
        # peer, unless the operator names trusted proxies.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=settings.log_level.lower(),
        log_config=None,  # our handler (logs.configure), in the chosen format
        access_log=False,  # ours (api.observe) names the route and the request id
    )
    # uvicorn's start and stop lines repeat the start-up block; its warnings and errors remain.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if lock is not None:
            lock.release()
    if startup.failed is not None:
        typer.echo(
            f"error: everloop {role} failed to start: {startup.failed} (see the log above)",
            err=True,
        )
        raise typer.Exit(code=1)
