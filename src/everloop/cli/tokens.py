"""``everloop token create|list|revoke``: personal access tokens, straight through the database.

These commands run beside a server on the same data dir (they take no lock on it): a token
revoked here is refused by that server from its next request on (see ``services/auth.py``).
They print a token only when it is created, never its hash.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:  # imported where used: `everloop --help` loads neither
    from everloop.config import Settings
    from everloop.domain.resources import AccessToken

T = TypeVar("T")

token_app = typer.Typer(
    help=(
        "Manage personal access tokens: create (optionally expiring), ls, revoke. Works "
        "while the server runs; a revoked or expired token is refused at once."
    ),
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./.everloop, or EVERLOOP_DATA_DIR)."),
]

_DURATION = re.compile(r"([1-9]\d*)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TABLE_WIDTH = 150


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``2w`` as a timedelta."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration like 90m, 12h, 30d or 2w", param_hint="--expires-in"
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or time; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time like 2030-01-31T12:00:00Z",
            param_hint="--expires-at",
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _settings(data_dir: Path | None) -> Settings:
    from everloop.bootstrap_admin import prepare_storage
    from everloop.cli.claims import private_files
    from everloop.config import Settings

    private_files()  # a token command may be the first to create the data dir's files
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    if settings.database_url is None and not (settings.data_dir / "everloop.db").exists():
        # Nothing to mint for yet: say so at once, not after creating and migrating a
        # database (seconds) only to find no admin user in it.
        typer.echo(
            f"error: no everloop database in {settings.data_dir}: start `everloop serve` once "
            "(it creates the admin user), or give the --data-dir of an existing server",
            err=True,
        )
        raise typer.Exit(code=1)
    prepare_storage(settings)
    return settings


def _run(work: Coroutine[Any, Any, T], *, expiry_flag: str | None = None) -> T:
    """Run one database operation; an everloop error is printed and exits 1."""
    import asyncio

    from everloop.errors import EverloopError

    try:
        return asyncio.run(work)
    except EverloopError as exc:
        where = expiry_flag if exc.field == "expires_at" and expiry_flag else None
        typer.echo(f"error: {where + ': ' if where else ''}{exc.message}", err=True)
        raise typer.Exit(code=1) from exc


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")],
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
    """Mint a new personal access token for the admin user and print it (shown once)."""
    from everloop.bootstrap_admin import create_token

    if expires_in is not None and expires_at is not None:
        raise typer.BadParameter("give --expires-in or --expires-at, not both")
    expiry, flag = None, None
    if expires_in is not None:
        expiry, flag = datetime.now(UTC) + parse_duration(expires_in), "--expires-in"
    elif expires_at is not None:
        expiry, flag = parse_moment(expires_at), "--expires-at"
    settings = _settings(data_dir)
    typer.echo(_run(create_token(settings, name, expiry), expiry_flag=flag))


@token_app.command("ls")
def token_ls(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List every token: id, name, prefix, created, expires, revoked, state.

    Never a token or its hash: the prefix is its first 12 characters, to recognise it by."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    tokens = _quick_list(data_dir)
    if tokens is None:
        from everloop.bootstrap_admin import list_tokens

        tokens = _run(list_tokens(_settings(data_dir)))
    now = datetime.now(UTC)
    if json_out:
        from everloop.cli.output import print_json

        print_json(
            [
                {
                    "id": t.id,
                    "name": t.name,
                    "prefix": t.hint,
                    "created_at": t.created_at,
                    "expires_at": t.expires_at,
                    "revoked_at": t.revoked_at,
                    "state": _state(t, now),
                }
                for t in tokens
            ]
        )
        return
    table = Table(
        "id", "name", "prefix", "created", "expires", "revoked", "state", box=box.SIMPLE_HEAD
    )
    for column in table.columns:
        column.no_wrap = column.header != "name"
    for token in tokens:
        table.add_row(
            token.id,
            token.name,
            token.hint,
            _short(token.created_at),
            _short(token.expires_at) if token.expires_at else "never",
            _short(token.revoked_at) if token.revoked_at else "",
            _state(token, now),
        )
    # As wide as the rows need (a narrower terminal wraps the lines; ids are never cut).
    Console(width=max(Console().width, _TABLE_WIDTH)).print(table)


def _quick_list(data_dir: Path | None) -> list[AccessToken] | None:
    """The tokens of an embedded data dir read without the server stack (None: take the full
    path: a PostgreSQL database, no database yet, or one that needs migrating)."""
    import os

    if os.environ.get("EVERLOOP_DATABASE_URL"):
        return None
    from everloop.store.token_listing import list_tokens_sqlite

    directory = data_dir or Path(os.environ.get("EVERLOOP_DATA_DIR") or ".everloop")
    return list_tokens_sqlite(directory / "everloop.db")


# `list`, as the README first documented it: the same command, not shown twice in --help.
token_app.command("list", hidden=True)(token_ls)


def _short(ts: str) -> str:
    """``2030-01-31T12:00:00.000Z`` as ``2030-01-31 12:00:00Z``."""
    return ts[:19].replace("T", " ") + "Z"


def _state(token: AccessToken, now: datetime) -> str:
    if token.revoked_at:
        return "revoked"
    if token.expires_at and datetime.fromisoformat(token.expires_at) <= now:
        return "expired"
    return "live"


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (pat_...).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a token: a running server on this data dir refuses it from its next request."""
    from everloop.bootstrap_admin import revoke_token

    _run(revoke_token(_settings(data_dir), token_id))
    typer.echo(f"revoked {token_id}")
