"""``everloop org ls|create|members|add-member``: organizations and their members.

Creating an organization takes the instance's operator (the admin token of ``everloop serve``)
unless the server lets any user (``EVERLOOP_ANY_USER_CREATES_ORGS``). Adding a person who has
no user yet prints their first token once: hand it to them (everloop sends no mail).
"""

from __future__ import annotations

from typing import Annotated

import typer

from everloop.cli.client import ApiClient, DataDir, Token, Url, resolve
from everloop.cli.output import Json, print_json, print_table, short

org_app = typer.Typer(help="Organizations and their members.", no_args_is_help=True)

OrgId = Annotated[str, typer.Argument(help="The organization's id (org_...).")]


@org_app.command("ls")
def org_ls(
    json_out: Json = False, url: Url = None, token: Token = None, data_dir: DataDir = None
) -> None:
    """List the organizations the token's user belongs to, with their role in each."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        found = api.get("orgs")["data"]
    if json_out:
        print_json(found)
        return
    print_table(
        ((o["id"], o["name"], o.get("role") or "", short(o["created_at"])) for o in found),
        ("id", "name", "role", "created"),
    )


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organization's display name.")],
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Create an organization, with you as its owner (act in it with X-Org-Id)."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        created = api.post("orgs", {"name": name})
    if json_out:
        print_json(created)
        return
    typer.echo(f"created organization {created['id']} ({created['name']}); you are its owner")


@org_app.command("members")
def org_members(
    org_id: OrgId,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List an organization's members and their roles."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        found = api.get(f"orgs/{org_id}/members")["data"]
    if json_out:
        print_json(found)
        return
    print_table(
        (
            (m["user_id"], m["name"], m.get("email") or "", m["role"], short(m["joined_at"]))
            for m in found
        ),
        ("user id", "name", "email", "role", "joined"),
    )


@org_app.command("add-member")
def org_add_member(
    org_id: OrgId,
    email: Annotated[str, typer.Option(help="The person's e-mail address.")],
    role: Annotated[str, typer.Option(help="owner, admin or member.")] = "member",
    name: Annotated[str | None, typer.Option(help="Their display name.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Add a person to an organization (a new person's first token is printed once)."""
    body = {"email": email, "role": role} | ({"name": name} if name else {})
    with ApiClient(resolve(url, token, data_dir)) as api:
        added = api.post(f"orgs/{org_id}/members", body)
    if json_out:
        print_json(added)
        return
    typer.echo(f"added {added['email']} ({added['user_id']}) as {added['role']}")
    if added.get("token"):
        typer.echo(f"their token (shown once, hand it over): {added['token']}")
