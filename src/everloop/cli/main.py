"""The ``everloop`` command line."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from everloop.cli.agent_keys import agent_keys_app
from everloop.cli.agents import agents_app
from everloop.cli.chat import chat
from everloop.cli.models import models_app, providers_app
from everloop.cli.orgs import org_app
from everloop.cli.sessions import sessions_app
from everloop.cli.status import status
from everloop.cli.tokens import token_app

if TYPE_CHECKING:  # imported in _settings: `everloop --help` and the client commands skip it
    from everloop.config import Settings

app = typer.Typer(
    help=(
        "everloop: a durable agentic harness engine.\n\n"
        "Runs LLM agent sessions whose turns survive crashes, behind an Everruns v1 "
        "compatible HTTP API. Start a server with `everloop serve`, then talk to it with "
        "`everloop chat`."
    ),
    no_args_is_help=True,
    add_completion=False,
)
LOCAL = "Credentials, on the data dir (--data-dir)"
app.add_typer(
    token_app,
    name="token",
    rich_help_panel=LOCAL,
    short_help="Personal access tokens: create, ls, revoke.",
)
app.add_typer(
    agent_keys_app,
    name="agent-keys",
    rich_help_panel=LOCAL,
    short_help="Agent keys (evr_ak_...) for one agent's channels: create, list, revoke.",
)
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./.everloop, or EVERLOOP_DATA_DIR)."),
]


class LogFormatChoice(enum.StrEnum):
    text = "text"
    json = "json"


LogFormat = Annotated[
    LogFormatChoice | None,
    typer.Option(
        "--log-format", help="Log lines as `text` (default) or `json` (or EVERLOOP_LOG_FORMAT)."
    ),
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    from everloop.config import Settings

    values = {
        k: v.value if isinstance(v, enum.Enum) else v for k, v in overrides.items() if v is not None
    }
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 9000).")] = None,
    data_dir: DataDir = None,
    log_format: LogFormat = None,
) -> None:
    """Run the API and the turn engine in one process (the embedded default: SQLite).

    /healthz answers once the port is bound; /readyz and the API once the engine runs."""
    _run(
        _settings(data_dir, host=host, port=port, log_format=log_format),
        role="serve",
    )


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 9000).")] = None,
    data_dir: DataDir = None,
    log_format: LogFormat = None,
) -> None:
    """Run an API process only (scale-out): turns are queued for `everloop worker` processes.

    Needs EVERLOOP_DATABASE_URL=postgresql+psycopg://... shared with the workers.
    """
    _run(
        _settings(data_dir, host=host, port=port, log_format=log_format),
        role="api",
    )


@app.command()
def worker(
    executor_id: Annotated[
        str | None,
        typer.Option(
            help="Stable executor id (default: host name + a suffix kept in the data dir)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address of the health endpoints.")] = None,
    port: Annotated[
        int, typer.Option(help="Port of the health endpoints (/healthz, /readyz).")
    ] = 9100,
    data_dir: DataDir = None,
    log_format: LogFormat = None,
) -> None:
    """Run a worker process (scale-out): executes queued turns and recovers dead workers' turns.

    Heartbeats while it runs; serves only /healthz and /readyz."""
    settings = _settings(
        data_dir, host=host, port=port, executor_id=executor_id, log_format=log_format
    )
    _run(settings, role="worker")


def _run(settings: Settings, *, role: str) -> None:
    from everloop.cli.serve import run

    run(settings, role=role)


@app.command()
def llmsim(
    port: Annotated[int, typer.Option(help="Port to listen on.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Serve the llmsim model simulator over HTTP (OpenAI- and Anthropic-compatible).

    POST /v1/chat/completions, /v1/responses and /v1/messages, streamed or not. Model names
    `error-<status>`, `error-<status>-once`, `slow-<ms>`, `hang` and `stall` simulate failures;
    see everloop.llm.llmsim_http."""
    from everloop.llm.llmsim_http import serve as serve_llmsim

    typer.echo(f"llmsim: serving on http://{host}:{port}/v1")
    serve_llmsim(host, port)


# The client commands (cli/client.py): they talk to a running server over HTTP.
CLIENT = "Talk to a running server (--url, --token)"
app.command("chat", rich_help_panel=CLIENT)(chat)
app.command("status", rich_help_panel=CLIENT)(status)
for group, name, short in (
    (sessions_app, "sessions", "Sessions: ls, show, events, cancel, delete, export."),
    (agents_app, "agents", "Agents: ls, show, create, edit, export, import."),
    (models_app, "models", "Models the providers offer: ls."),
    (providers_app, "providers", "LLM providers: ls, add."),
    (org_app, "org", "Organizations: ls, create, members, add-member."),
):
    app.add_typer(group, name=name, rich_help_panel=CLIENT, short_help=short)


def _version(value: bool) -> None:
    if value:
        from everloop import __version__

        typer.echo(f"everloop {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The options before any command."""


def main() -> None:  # pragma: no cover - console entry point
    app()
