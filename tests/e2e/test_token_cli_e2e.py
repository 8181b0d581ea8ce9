"""Token management beside a running ``everloop serve``: the real CLI, a real server.

``everloop token revoke`` writes through the database while the server runs; the server's
next request with that token is refused, though it had the token's identity cached. Failed
authentications are limited per client address, which a client cannot choose by sending
``X-Forwarded-For`` (no proxy is trusted by default).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable

import httpx

from tests.e2e.conftest import Server, everloop_command


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**server.env, "COLUMNS": "200"}
    return subprocess.run(
        [*everloop_command(), "token", *args, "--data-dir", str(server.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_token_revoked_by_the_cli_is_refused_by_the_running_server_at_once(
    start_server: Callable[..., Server],
) -> None:
    server = start_server()
    created = _cli(server, "create", "--name", "deploy", "--expires-in", "1d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{server.api_url}/v1/", timeout=30.0) as http:
        for _ in range(3):  # the server now has the token's identity cached
            assert http.get("sessions", headers=headers).status_code == 200
        keys = http.get("auth/api-keys", headers=headers).json()
        [token_id] = [k["id"] for k in keys if k["name"] == "deploy"]
        assert keys[-1]["expires_at"] is not None

        listed = _cli(server, "list")
        assert listed.returncode == 0, listed.stderr
        assert token_id in listed.stdout and token not in listed.stdout

        revoked = _cli(server, "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        refused = http.get("sessions", headers=headers)
        assert refused.status_code == 401, refused.text
        assert http.get("sessions", headers=server.headers).status_code == 200


def test_failed_authentications_are_limited_per_peer_whatever_it_forwards(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(EVERLOOP_AUTH_FAILURE_LIMIT="5/minute")
    with httpx.Client(base_url=f"{server.api_url}/v1/", timeout=30.0) as http:
        assert http.get("sessions", headers=server.headers).status_code == 200
        statuses = []
        for n in range(6):
            bad = {
                "Authorization": f"Bearer evr_pat_{secrets.token_urlsafe(32)}",
                "X-Forwarded-For": f"10.0.0.{n}",
            }
            statuses.append(http.get("sessions", headers=bad))
        assert [r.status_code for r in statuses] == [401] * 5 + [429]
        assert int(statuses[-1].headers["retry-after"]) >= 1
        assert statuses[-1].json()["error"]["code"] == "too_many_requests"
        # The admin token authenticated from this address before: it still works.
        assert http.get("sessions", headers=server.headers).status_code == 200
