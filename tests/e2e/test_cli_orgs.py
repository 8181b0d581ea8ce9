"""``everloop org ls|create|members|add-member`` against a real server (issue 25): the operator
creates an organization, adds a person (whose first token is printed once), and acts in the new
organization with ``EVERLOOP_ORG_ID``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.cli_support import run_cli, table_rows
from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow


def ok(server: Server, *args: str, **env: str) -> str:
    done = run_cli(server, *args, **env)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_org_commands(start_server: Any) -> None:
    server: Server = start_server()
    [default] = json.loads(ok(server, "org", "ls", "--json"))
    assert default["role"] == "owner"
    created = json.loads(ok(server, "org", "create", "Acme", "--json"))
    assert created["name"] == "Acme" and created["role"] == "owner"
    rows = table_rows(ok(server, "org", "ls"))
    assert {(r["name"], r["role"]) for r in rows} == {(default["name"], "owner"), ("Acme", "owner")}
    added = ok(server, "org", "add-member", created["id"], "--email", "ada@example.com")
    assert "added ada@example.com" in added and "as member" in added
    token = added.split("hand it over): ")[1].strip()
    assert token.startswith("evr_pat_")
    members = table_rows(ok(server, "org", "members", created["id"]))
    assert {(m["email"], m["role"]) for m in members} >= {("ada@example.com", "member")}
    # The new member's token reaches Acme only; the owner picks Acme with EVERLOOP_ORG_ID.
    assert json.loads(ok(server, "org", "ls", "--json", "--token", token))[0]["id"] == created["id"]
    refused = run_cli(server, "org", "create", "Mine", "--token", token)
    assert refused.returncode == 4 and "operator" in refused.stderr  # 4: not allowed
    assert json.loads(ok(server, "sessions", "ls", "--json", EVERLOOP_ORG_ID=created["id"])) == []
    ambiguous = run_cli(server, "sessions", "ls")
    assert ambiguous.returncode != 0 and "X-Org-Id" in ambiguous.stderr
