"""A small synchronous HTTP client of the public API (``/api/v1``) for the CLI's commands.

Where the server is and who the caller is come from, first to last: ``--url`` / ``--token``,
``EVERLOOP_URL`` / ``EVERLOOP_TOKEN``, then the local defaults: ``http://127.0.0.1:9000`` and the
admin token ``everloop serve`` writes to ``<data dir>/admin-token`` (``--data-dir``, else
``EVERLOOP_DATA_DIR``, else ``./.everloop``). A user in several organizations picks one with
``EVERLOOP_ORG_ID`` (sent as ``X-Org-Id``). Nothing of the server stack is imported: a client
command starts in the time it takes to import httpx.

HTTP and transport failures are translated here, once, into a one-line error and an exit code
(``cli.output``): no server, a refused token, not found, a refused request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from everloop.cli.output import ERROR, NOT_FOUND, UNAUTHORISED, fail

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:9000"

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="EVERLOOP_URL",
        show_envvar=False,
        help="Server address (default http://127.0.0.1:9000, or EVERLOOP_URL).",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="EVERLOOP_TOKEN",
        show_envvar=False,
        help="Access token (default EVERLOOP_TOKEN, else <data dir>/admin-token).",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data dir holding admin-token (default ./.everloop or EVERLOOP_DATA_DIR).",
    ),
]


@dataclass(frozen=True)
class Target:
    """Where to send requests, and with which token."""

    url: str
    token: str


def resolve(url: str | None, token: str | None, data_dir: Path | None) -> Target:
    """The server's address and the caller's token, from flags, environment or the data dir."""
    base = (url or os.environ.get("EVERLOOP_URL") or DEFAULT_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        fail(f"--url {base!r} is not an http:// or https:// address", 2)
    found = token or os.environ.get("EVERLOOP_TOKEN")
    if not found:
        directory = data_dir or Path(os.environ.get("EVERLOOP_DATA_DIR") or ".everloop")
        path = directory / "admin-token"
        try:
            found = path.read_text().strip()
        except OSError:
            fail(
                f"no token: {path} does not exist. Pass --token or set EVERLOOP_TOKEN, or give "
                "the --data-dir of the server (`everloop serve` writes admin-token there)",
                UNAUTHORISED,
            )
    return Target(base, found)


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    """The server's error message and code (``{"error": {...}}``), else the status line."""
    try:
        body = response.json()
        error = body["error"]
        message = str(error.get("message") or response.reason_phrase)
        return message, error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{response.status_code} {response.reason_phrase}", None


_LISTINGS = {"sessions", "agents", "models", "providers"}


def _listing_hint(response: httpx.Response) -> str:
    """``: `everloop sessions ls` lists them`` for a resource the CLI can list."""
    path = response.request.url.path.split("/api/v1/", 1)[-1]
    kind = path.split("/", 1)[0]
    return f": `everloop {kind} ls` lists them" if kind in _LISTINGS else ""


class ApiClient:
    """Requests to ``<url>/api/v1``; every failure ends the command with its exit code."""

    def __init__(self, target: Target, *, timeout: float = 30.0) -> None:
        import httpx

        self.target = target
        headers = {"Authorization": f"Bearer {target.token}"}
        org = os.environ.get("EVERLOOP_ORG_ID")
        if org:  # a user in several organizations names the one to act in
            headers["X-Org-Id"] = org
        self.http = httpx.Client(base_url=f"{target.url}/api/v1/", headers=headers, timeout=timeout)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; a transport error or a 4xx/5xx ends the command."""
        import httpx

        try:
            return self.attempt(method, path, **kwargs)
        except httpx.ConnectError:
            fail(self.no_server())
        except httpx.TimeoutException:
            fail(f"the server at {self.target.url} did not answer in time: is it overloaded?")
        except httpx.TransportError as exc:
            fail(f"lost the connection to {self.target.url}: {exc}")

    def attempt(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; a 4xx/5xx ends the command, a transport error is raised (for a
        caller that retries, as ``chat`` does across a server restart)."""
        response = self.http.request(method, path, **kwargs)
        self.check(response)
        return response

    def no_server(self) -> str:
        return f"no server at {self.target.url}: start one with `everloop serve`, or pass --url"

    def check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        message, code = _error_text(response)
        if response.status_code in (401, 403):
            fail(
                f"{message} (HTTP {response.status_code}). Pass a valid --token or "
                "EVERLOOP_TOKEN, or the --data-dir of the server you address",
                UNAUTHORISED,
            )
        if response.status_code == 404 or code == "invalid_id":
            fail(message + _listing_hint(response), NOT_FOUND)
        fail(f"{message} (HTTP {response.status_code})", ERROR)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=body, **kwargs)
        return response.json() if response.content else None

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body).json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def health(self, path: str) -> httpx.Response:
        """``/healthz`` or ``/readyz`` (outside ``/api``): any status, only transport errors end."""
        import httpx

        try:
            return self.http.get(f"{self.target.url}{path}")
        except httpx.ConnectError:
            fail(self.no_server())
        except httpx.TransportError as exc:
            fail(f"lost the connection to {self.target.url}: {exc}")

    def pages(self, path: str, *, limit: int = 100, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of an offset-paged list (``{"data", "total", "offset", "limit"}``)."""
        offset = 0
        while True:
            page = self.get(path, offset=offset, limit=limit, **params)
            yield from page["data"]
            offset += len(page["data"])
            if not page["data"] or offset >= page.get("total", offset):
                return

    def events(self, session_id: str, *, after: int = 0, **params: Any) -> Iterator[dict[str, Any]]:
        """A session's events after sequence ``after``, oldest first, a thousand a request."""
        while True:
            batch = self.get(
                f"sessions/{session_id}/events", after_sequence=after, limit=1000, **params
            )["data"]
            yield from batch
            if len(batch) < 1000:
                return
            after = batch[-1]["sequence"]


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """``(event type, decoded data)`` from ``text/event-stream`` lines; comments are skipped."""
    kind, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
