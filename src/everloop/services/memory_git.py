"""Fetching a memory's git source: dulwich's smart-HTTP client, every request through the
egress guard.

dulwich speaks the git protocol; ``_GuardedGitClient`` hands each of its HTTP requests (the ref
advertisement and the ``git-upload-pack`` POST) back to the event loop, where
``EgressGuard.client`` sends it: the URL and every redirect hop are checked, the host is resolved
and every address checked before the socket opens, and the connection is pinned to a checked
address. dulwich itself opens no socket. Only http(s) sources are accepted (no ssh, no
``git://``, no local paths).

The network access of a sync names the source's host alone (so a redirect elsewhere is refused);
an internal address needs the operator's ``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS`` as for any
request. Credentials (sealed with the memory) go as HTTP basic auth to the source's origin only.
"""

from __future__ import annotations

import asyncio
import base64
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from dulwich.client import AbstractHttpGitClient
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.repo import MemoryRepo

from everloop.domain.files import normalize_path
from everloop.domain.memories import GitSource
from everloop.domain.network_access import NetworkAccess
from everloop.egress import EgressGuard
from everloop.errors import EgressDenied, EverloopError, InvalidInput

_REQUEST_TIMEOUT_SECONDS = 120.0


class SyncFailed(EverloopError):
    """A sync could not fetch the source (the message is what ``last_sync_error`` records)."""

    code = "memory_sync_failed"


@dataclass(frozen=True, slots=True)
class FetchedTree:
    commit: str
    files: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: dict[str, str]
    url: str
    body: bytes


Request = Callable[[str, dict[str, str], bytes | None], _Reply]


class _Response:
    """The little of a urllib3 response dulwich reads."""

    def __init__(self, reply: _Reply, requested: str) -> None:
        self.status = reply.status
        self.headers = reply.headers
        self.content_type = reply.headers.get("content-type")
        self.redirect_location = reply.url if reply.url != requested else ""

    def close(self) -> None:
        pass


class _GuardedGitClient(AbstractHttpGitClient):
    def __init__(self, base_url: str, request: Request) -> None:
        super().__init__(base_url)
        self._request = request

    def _http_request(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        data: bytes | Iterator[bytes] | None = None,
        raise_for_status: bool = True,
    ) -> tuple[Any, Callable[[int], bytes]]:
        body = data if data is None or isinstance(data, bytes) else b"".join(data)
        reply = self._request(url, dict(headers or {}), body)
        if raise_for_status:
            if reply.status == 404:
                raise NotGitRepository()
            if reply.status != 200:
                raise GitProtocolError(f"unexpected HTTP status {reply.status} for {url}")
        stream = _Reader(reply.body)
        return _Response(reply, url), stream.read


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._at + size
        chunk = self._data[self._at : end]
        self._at += len(chunk)
        return chunk


class GitFetcher:
    """Fetches one branch of an http(s) git repository into memory, through the guard."""

    def __init__(self, guard: EgressGuard, *, max_bytes: int) -> None:
        self._guard = guard
        self._max_bytes = max_bytes

    async def fetch(self, source: GitSource) -> FetchedTree:
        """The files of ``source``'s branch head (under ``root_folder``); ``SyncFailed`` with a
        readable reason when it cannot."""
        parts = urlsplit(source.url)
        host = parts.hostname or ""
        access = NetworkAccess.from_json({"allowed": [host]})
        origin = f"{parts.scheme}://{parts.netloc}"
        auth = None
        if source.username or source.password:
            pair = f"{source.username or ''}:{source.password or ''}".encode()
            auth = "Basic " + base64.b64encode(pair).decode("ascii")
        loop = asyncio.get_running_loop()

        def request(url: str, headers: dict[str, str], data: bytes | None) -> _Reply:
            if auth is not None and url.startswith(origin + "/"):
                headers["Authorization"] = auth
            future = asyncio.run_coroutine_threadsafe(self._send(url, headers, data, access), loop)
            return future.result(timeout=_REQUEST_TIMEOUT_SECONDS + 5)

        try:
            return await asyncio.to_thread(_fetch_tree, source, origin + "/", parts.path, request)
        except EgressDenied as exc:
            raise SyncFailed(f"the egress guard refused the request: {exc.message}") from None
        except InvalidInput as exc:
            raise SyncFailed(exc.message) from None
        except (GitProtocolError, HangupException, NotGitRepository) as exc:
            raise SyncFailed(f"git fetch failed: {exc or type(exc).__name__}") from None
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            raise SyncFailed(f"git fetch failed: {type(exc).__name__}: {exc}") from None

    async def _send(
        self, url: str, headers: dict[str, str], data: bytes | None, access: NetworkAccess
    ) -> _Reply:
        async with self._guard.client(
            access, follow_redirects=True, timeout=_REQUEST_TIMEOUT_SECONDS
        ) as client:
            method = "GET" if data is None else "POST"
            try:
                async with client.stream(method, url, headers=headers, content=data) as response:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self._max_bytes:
                            raise SyncFailed(
                                f"the repository is over {self._max_bytes} bytes to fetch"
                            )
                        chunks.append(chunk)
                    return _Reply(
                        response.status_code,
                        {k.lower(): v for k, v in response.headers.items()},
                        str(response.url),
                        b"".join(chunks),
                    )
            except httpx.HTTPError as exc:
                raise SyncFailed(
                    f"request to {httpx.URL(url).host} failed: {type(exc).__name__}"
                ) from None


def _fetch_tree(source: GitSource, base_url: str, path: str, request: Request) -> FetchedTree:
    """Runs in a worker thread (dulwich is synchronous)."""
    client = _GuardedGitClient(base_url, request)
    repo = MemoryRepo()
    chosen: list[bytes] = []

    def wants(refs: Any, depth: Any = None) -> list[Any]:
        if source.branch:
            ref = b"refs/heads/" + source.branch.encode()
            if ref not in refs:
                raise SyncFailed(f"the repository has no branch '{source.branch}'")
        else:
            ref = b"HEAD"
            if ref not in refs:
                raise SyncFailed("the repository has no HEAD (empty repository?)")
        chosen.append(refs[ref])
        return [refs[ref]]

    client.fetch(path or "/", repo, determine_wants=wants)
    if not chosen:
        raise SyncFailed("the repository advertised no refs")
    commit = repo[chosen[0]]
    root = source.root_folder.strip("/")
    files: dict[str, bytes] = {}
    for entry in repo.object_store.iter_tree_contents(commit.tree):  # type: ignore[attr-defined]
        if entry.path is None or entry.mode is None or entry.sha is None:
            continue
        if not stat.S_ISREG(entry.mode):
            continue  # symlinks and submodules are not copied
        name = entry.path.decode("utf-8", "replace")
        if root:
            if not name.startswith(root + "/"):
                continue
            name = name[len(root) + 1 :]
        try:
            target = normalize_path(name)
        except InvalidInput:
            continue  # a name our paths cannot hold (e.g. the reserved top-level '_')
        files[target] = repo[entry.sha].as_raw_string()
    return FetchedTree(chosen[0].decode("ascii"), files)
