"""``everloop agent-keys create|list|revoke``: agent keys, straight through the database.

An agent key (``evr_ak_...``) reaches one agent's channels of the Agent Execution API and
nothing else. These commands run beside a server on the same data dir, as the operator (any
organization's agent); a key revoked here is refused by that server from its next request. They
print a key only when it is created, never its hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from everloop.cli.tokens import DataDir, _run, _settings, _short, parse_duration, parse_moment

agent_keys_app = typer.Typer(
    help=(
        "Manage agent keys (evr_ak_...): credentials that reach one agent's channels of the "
        "Agent Execution API (/api/v1/channels/...) and nothing else. Create (shown once, "
        "optionally expiring, optionally allowed to act for end users), list, revoke. Works "
        "while the server runs; a revoked key is refused at once."
    ),
    no_args_is_help=True,
)


@agent_keys_app.command("create")
def agent_key_create(
    agent: Annotated[str, typer.Option("--agent", help="The agent's id (agent_...).")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    end_user: Annotated[
        bool,
        typer.Option(
            "--end-user/--no-end-user",
            help="Grant the end_user permission: the key may send End-User: <id>.",
        ),
    ] = False,
    expires_in: Annotated[
        str | None,
        typer.Option(help="Lifetime from now: 90m, 12h, 30d, 2w (default: never expires)."),
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option(help="Expiry as ISO 8601, e.g. 2030-01-31T12:00:00Z (no zone: UTC)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Mint an agent key for an agent and print it (shown once): its id, then the key."""
    from everloop.bootstrap_admin import create_agent_key

    if expires_in is not None and expires_at is not None:
        raise typer.BadParameter("give --expires-in or --expires-at, not both")
    expiry, flag = None, None
    if expires_in is not None:
        expiry, flag = datetime.now(UTC) + parse_duration(expires_in), "--expires-in"
    elif expires_at is not None:
        expiry, flag = parse_moment(expires_at), "--expires-at"
    permissions = ["end_user"] if end_user else []
    settings = _settings(data_dir)
    record, key = _run(
        create_agent_key(settings, agent, name, permissions, expiry), expiry_flag=flag
    )
    typer.echo(f"created {record.id} for {record.agent_id}", err=True)
    typer.echo(key)


@agent_keys_app.command("list")
def agent_key_list(
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only this agent's keys (agent_...).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """List agent keys: id, agent, name, prefix, permissions, created, expires, state.

    Never a key or its hash: the prefix is its first 12 characters, to recognise it by."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from everloop.bootstrap_admin import list_agent_keys

    keys = _run(list_agent_keys(_settings(data_dir), agent))
    now = datetime.now(UTC)
    table = Table(
        "id",
        "agent",
        "name",
        "prefix",
        "permissions",
        "created",
        "expires",
        "state",
        box=box.SIMPLE_HEAD,
    )
    for column in table.columns:
        column.no_wrap = column.header != "name"
    for key in keys:
        expired = key.expires_at is not None and datetime.fromisoformat(key.expires_at) <= now
        state = "revoked" if key.revoked_at else "expired" if expired else "live"
        table.add_row(
            key.id,
            key.agent_id,
            key.name,
            key.token_hint,
            ",".join(key.permissions) or "-",
            _short(key.created_at),
            _short(key.expires_at) if key.expires_at else "never",
            state,
        )
    Console(width=max(Console().width, 200)).print(table)


@agent_keys_app.command("revoke")
def agent_key_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (agentkey_...).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke an agent key (and the runtime tokens it minted): refused from the next request."""
    from everloop.bootstrap_admin import revoke_agent_key

    _run(revoke_agent_key(_settings(data_dir), key_id))
    typer.echo(f"revoked {key_id}")
