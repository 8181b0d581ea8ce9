"""Memories over REST: /v1/memories (CRUD, archive), their files, bad inputs, and a git source
served over HTTP on 127.0.0.1 by dulwich's smart-HTTP WSGI server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from dulwich import porcelain
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain
from sqlalchemy import func, select

from everloop.config import Settings
from everloop.store.tables import memories, memory_files
from tests.api.conftest import assert_error
from tests.conftest import Api

SECRET = "tok-3f9a1c-never-returned"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Small limits (as for session files), and loopback allowed by the operator's egress policy
    # for the git server of these tests.
    return settings.model_copy(
        update={
            "file_max_bytes": 100,
            "session_files_max_bytes": 250,
            "egress_allowed_private_networks": "127.0.0.0/8",
        }
    )


async def _rows(api: Api) -> tuple[int, int]:
    async with api.services.db.read() as conn:
        return (
            int(await conn.scalar(select(func.count()).select_from(memories)) or 0),
            int(await conn.scalar(select(func.count()).select_from(memory_files)) or 0),
        )


async def _memory(api: Api, name: str = "notes", **fields: Any) -> dict[str, Any]:
    created = await api.client.post("/v1/memories", json={"name": name, **fields})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_memory_crud_search_and_archive(api: Api) -> None:
    created = await _memory(api, "team-notes", description="What the team knows")
    assert created["id"].startswith("mem_")
    assert created["source_type"] == "manual" and created["source"] == {"provider": "manual"}
    assert created["is_readonly"] is False and created["status"] == "active"
    assert created["sync_status"] == "idle" and created["last_synced_at"] is None
    await _memory(api, "other")

    got = await api.client.get(f"/v1/memories/{created['id']}")
    assert got.status_code == 200 and got.json()["name"] == "team-notes"
    found = (await api.client.get("/v1/memories", params={"search": "TEAM"})).json()["data"]
    assert [m["name"] for m in found] == ["team-notes"]

    patched = await api.client.patch(
        f"/v1/memories/{created['id']}", json={"name": "team", "description": "v2"}
    )
    assert patched.status_code == 200 and patched.json()["name"] == "team"
    assert patched.json()["description"] == "v2"
    clash = await api.client.patch(f"/v1/memories/{created['id']}", json={"name": "other"})
    assert_error(clash, 409, "name_taken", "name")
    assert_error(await api.client.post("/v1/memories", json={"name": "other"}), 409, "name_taken")

    deleted = await api.client.delete(f"/v1/memories/{created['id']}")
    assert deleted.status_code == 204
    names = [m["name"] for m in (await api.client.get("/v1/memories")).json()["data"]]
    assert names == ["other"]
    everything = await api.client.get("/v1/memories", params={"include_archived": "true"})
    archived = {m["name"]: m for m in everything.json()["data"]}["team"]
    assert archived["status"] == "archived" and archived["archived_at"]
    assert_error(await api.client.get("/v1/memories/mem_" + "0" * 32), 404)


async def test_bad_memory_input_names_the_field_and_writes_nothing(api: Api) -> None:
    before = await _rows(api)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "../x"}, "name"),
        ({"name": "x", "source": {"type": "svn", "url": "https://x"}}, "source.type"),
        ({"name": "x", "source": {"type": "git", "url": "ssh://git@host/r.git"}}, "source.url"),
        ({"name": "x", "source": {"type": "git", "url": "file:///etc"}}, "source.url"),
        ({"name": "x", "source": {"type": "git"}}, "source.url"),
        ({"name": "x", "source": {"type": "github", "repository": "nope"}}, "source.repository"),
        (
            {"name": "x", "source": {"type": "git", "url": "https://h/r", "branch": "a..b"}},
            "source.branch",
        ),
        (
            {"name": "x", "source": {"type": "git", "url": "https://h/r", "root_folder": "../"}},
            "source.root_folder",
        ),
        (
            {
                "name": "x",
                "source": {"type": "git", "url": "https://h/r", "sync_interval_secs": 5},
            },
            "source.sync_interval_secs",
        ),
        ({"name": "x", "source": {"type": "git", "url": "https://h/r", "x": 1}}, "source.x"),
    ]
    for body, field in cases:
        response = await api.client.post("/v1/memories", json=body)
        assert response.status_code in (400, 422), (body, response.text)  # 400: a bad path
        assert response.json()["error"].get("field") == field, (body, response.text)
    assert await _rows(api) == before


async def test_memory_files_surface(api: Api) -> None:
    mem = await _memory(api)
    fs = f"/v1/memories/{mem['id']}/fs"
    created = await api.client.post(f"{fs}/people/ada.md", json={"content": "Ada likes tea\n"})
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["path"] == "/people/ada.md" and info["is_directory"] is False
    assert info["size_bytes"] == 14 and info["content_hash"].startswith("sha256:")
    made = await api.client.post(f"{fs}/empty", json={"is_directory": True})
    assert made.status_code == 201 and made.json()["is_directory"] is True

    root = (await api.client.get(fs)).json()["data"]
    assert [(e["path"], e["is_directory"]) for e in root] == [("/empty", True), ("/people", True)]
    read = await api.client.get(f"{fs}/people/ada.md")
    assert read.status_code == 200
    assert read.json()["content"] == "Ada likes tea\n" and read.json()["encoding"] == "text"
    raw = await api.client.get(f"{fs}/_/download/people/ada.md")
    assert raw.status_code == 200 and raw.text == "Ada likes tea\n"
    stat = await api.client.post(f"{fs}/_/stat", json={"path": "/people"})
    assert stat.status_code == 200 and stat.json()["is_directory"] is True
    grep = await api.client.post(f"{fs}/_/grep", json={"pattern": "t.a", "path_pattern": "*.md"})
    assert grep.json()["data"] == [{"path": "/people/ada.md", "size_bytes": 14}]

    updated = await api.client.put(f"{fs}/people/ada.md", json={"content": "Ada likes coffee"})
    assert updated.status_code == 200 and updated.json()["content"] == "Ada likes coffee"
    assert_error(await api.client.put(f"{fs}/nope.md", json={"content": "x"}), 404)
    assert_error(await api.client.post(f"{fs}/people/ada.md", json={"content": "x"}), 409)
    assert_error(await api.client.put(f"{fs}/people/ada.md", json={}), 422, field="content")
    bad64 = await api.client.post(f"{fs}/b.bin", json={"content": "***", "encoding": "base64"})
    assert_error(bad64, 422, field="content")

    gone = await api.client.delete(f"{fs}/people")
    assert gone.status_code == 204
    assert_error(await api.client.get(f"{fs}/people/ada.md"), 404)


async def test_memory_paths_and_sizes_follow_the_session_file_rules(api: Api) -> None:
    mem = await _memory(api)
    fs = f"/v1/memories/{mem['id']}/fs"
    before = await _rows(api)
    for bad in ("a/%2e%2e/%2e%2e/x", "a\\b", "_/x", "x%00y"):
        response = await api.client.post(f"{fs}/{bad}", json={"content": "x"})
        assert response.status_code in (400, 404, 422), (bad, response.text)
        assert response.status_code != 201
    stat = await api.client.post(f"{fs}/_/stat", json={"path": "../../etc/passwd"})
    assert_error(stat, 400, "invalid_path", "path")
    too_big = await api.client.post(f"{fs}/big.txt", json={"content": "x" * 101})
    assert_error(too_big, 413, "file_too_large")
    assert await _rows(api) == before
    for index in range(2):
        ok = await api.client.post(f"{fs}/f{index}.txt", json={"content": "x" * 100})
        assert ok.status_code == 201
    over = await api.client.post(f"{fs}/f2.txt", json={"content": "x" * 100})
    assert_error(over, 413, "memory_quota_exceeded")


# -- git source ---------------------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[tuple[Repo, str, WSGIServer]]:
    """A git repository served over smart HTTP on 127.0.0.1 (dulwich.web), with one commit."""
    root = tmp_path / "upstream"
    root.mkdir()
    repo = Repo.init(str(root))
    _commit(repo, {"docs/guide.md": "first guide\n", "README.md": "readme\n"}, "first")
    app = make_wsgi_chain(DictBackend({"/team.git": repo}))
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield repo, f"http://127.0.0.1:{server.server_port}/team.git", server
    server.shutdown()
    server.server_close()
    repo.close()


def _commit(repo: Repo, files: dict[str, str], message: str) -> None:
    root = Path(repo.path)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    porcelain.add(repo, [str(root / name) for name in files])
    porcelain.commit(repo, message=message.encode(), author=b"t <t@t>", committer=b"t <t@t>")


async def test_git_source_sync_resync_and_failure_keeps_content(
    api: Api, git_server: tuple[Repo, str, WSGIServer]
) -> None:
    repo, url, server = git_server
    with_credentials = url.replace("http://", f"http://bot:{SECRET}@")
    mem = await _memory(
        api,
        "handbook",
        source={"type": "git", "url": with_credentials, "root_folder": "docs"},
    )
    assert mem["source_type"] == "git" and mem["is_readonly"] is True
    assert mem["source"]["url"] == url and SECRET not in str(mem)
    assert SECRET not in (await api.client.get(f"/v1/memories/{mem['id']}")).text
    async with api.services.db.read() as conn:
        sealed = await conn.scalar(select(memories.c.source_credentials_encrypted))
    assert sealed and SECRET not in sealed

    synced = await api.client.post(f"/v1/memories/{mem['id']}/sync", json={})
    assert synced.status_code == 200, synced.text
    body = synced.json()
    assert body["sync_status"] == "succeeded" and body["last_synced_at"], body
    assert body["last_sync_error"] is None
    fs = f"/v1/memories/{mem['id']}/fs"
    assert (await api.client.get(f"{fs}/guide.md")).json()["content"] == "first guide\n"
    assert_error(await api.client.get(f"{fs}/README.md"), 404)  # outside root_folder

    # Files from a git source are read-only through the API.
    refused = await api.client.put(f"{fs}/guide.md", json={"content": "mine"})
    assert_error(refused, 403, "memory_read_only")
    assert "read-only" in refused.json()["error"]["message"]
    assert_error(await api.client.delete(f"{fs}/guide.md"), 403, "memory_read_only")

    _commit(repo, {"docs/guide.md": "second guide\n", "docs/new.md": "new\n"}, "second")
    again = (await api.client.post(f"/v1/memories/{mem['id']}/sync", json={})).json()
    assert again["sync_status"] == "succeeded"
    assert (await api.client.get(f"{fs}/guide.md")).json()["content"] == "second guide\n"
    assert (await api.client.get(f"{fs}/new.md")).status_code == 200

    server.shutdown()
    server.server_close()
    failed = (await api.client.post(f"/v1/memories/{mem['id']}/sync", json={})).json()
    assert failed["sync_status"] == "failed" and failed["last_sync_error"], failed
    assert failed["last_synced_at"] == again["last_synced_at"]
    assert (await api.client.get(f"{fs}/guide.md")).json()["content"] == "second guide\n"


async def test_interval_sync_runs_when_due(
    api: Api, git_server: tuple[Repo, str, WSGIServer]
) -> None:
    _, url, _ = git_server
    source = {"type": "git", "url": url, "sync_interval_secs": 300}
    mem = await _memory(api, "interval", source=source)
    await _memory(api, "manual-only", source={"type": "git", "url": url})
    # Never synced: due now; the memory without an interval is left alone.
    assert await api.services.memories.sync_due() == 1
    got = (await api.client.get(f"/v1/memories/{mem['id']}")).json()
    assert got["sync_status"] == "succeeded"
    assert (await api.client.get(f"/v1/memories/{mem['id']}/fs/README.md")).status_code == 200
    # Synced just now: not due again for 300 seconds.
    assert await api.services.memories.sync_due() == 0


async def test_sync_of_a_manual_memory_is_a_422(api: Api) -> None:
    mem = await _memory(api)
    refused = await api.client.post(f"/v1/memories/{mem['id']}/sync", json={})
    assert_error(refused, 422, "memory_not_synced", "source")
