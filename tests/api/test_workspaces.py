"""Workspaces over REST: CRUD, every file route under /v1/workspaces/{id}/fs, sessions sharing a
workspace (one file area under both session routes), compare-and-set, quotas and bad paths."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from sqlalchemy import func, select

from everloop.config import Settings
from everloop.store.tables import workspace_files
from tests.api.conftest import OtherOrg, assert_error, create_session
from tests.conftest import Api


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Small limits, so overflowing them needs only a few bytes.
    return settings.model_copy(update={"file_max_bytes": 100, "session_files_max_bytes": 250})


async def _ok(response: Any, status: int = 200) -> Any:
    answer = await response
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


async def _workspace(api: Api, name: str = "team", **fields: Any) -> dict[str, Any]:
    return await _ok(  # type: ignore[no-any-return]
        api.client.post("/v1/workspaces", json={"name": name, **fields}), 201
    )


async def test_workspace_crud(api: Api) -> None:
    client = api.client
    made = await _workspace(api, "research", description="Shared notes")
    assert made["id"].startswith("wsp_") and made["status"] == "active"
    assert made["name"] == "research" and made["description"] == "Shared notes"
    assert made["session_id"] is None and made["archived_at"] is None
    assert_error(await client.post("/v1/workspaces", json={"name": "research"}), 409, field="name")
    assert_error(await client.post("/v1/workspaces", json={"name": "Bad Name"}), 422)
    reserved = await client.post("/v1/workspaces", json={"name": "session-abc"})
    assert_error(reserved, 422, field="name")
    other = await _workspace(api, "drafts")

    got = await _ok(client.get(f"/v1/workspaces/{made['id']}"))
    assert got == made
    listed = await _ok(client.get("/v1/workspaces", params={"search": "SHARED"}))
    assert [w["id"] for w in listed["data"]] == [made["id"]]
    wildcard = await _ok(client.get("/v1/workspaces", params={"search": "%"}))
    assert wildcard["data"] == []  # LIKE's wildcards match themselves only

    renamed = await _ok(client.patch(f"/v1/workspaces/{made['id']}", json={"name": "research-2"}))
    assert renamed["name"] == "research-2" and renamed["description"] == "Shared notes"
    taken = await client.patch(f"/v1/workspaces/{made['id']}", json={"name": "drafts"})
    assert_error(taken, 409, field="name")

    assert (await client.delete(f"/v1/workspaces/{other['id']}")).status_code == 204
    archived = await _ok(client.get(f"/v1/workspaces/{other['id']}"))
    assert archived["status"] == "archived" and archived["archived_at"]
    names = {w["name"] for w in (await _ok(client.get("/v1/workspaces")))["data"]}
    assert "drafts" not in names and "research-2" in names
    everything = await _ok(client.get("/v1/workspaces", params={"include_archived": "true"}))
    assert "drafts" in {w["name"] for w in everything["data"]}
    # An archived workspace's files are read-only; restoring it opens them again.
    write = await client.post(f"/v1/workspaces/{other['id']}/fs/a.txt", json={"content": "x"})
    assert_error(write, 409, "workspace_archived")
    assert (await client.get(f"/v1/workspaces/{other['id']}/fs")).status_code == 200
    restored = await _ok(client.patch(f"/v1/workspaces/{other['id']}", json={"status": "active"}))
    assert restored["status"] == "active" and restored["archived_at"] is None
    await _ok(client.post(f"/v1/workspaces/{other['id']}/fs/a.txt", json={"content": "x"}), 201)
    assert_error(await client.get("/v1/workspaces/wsp_nope"), 422, "invalid_id")
    assert_error(await client.get("/v1/workspaces/wsp_" + "0" * 32), 404)


async def test_every_file_route_of_a_workspace(api: Api) -> None:
    client = api.client
    wsp = (await _workspace(api))["id"]
    fs = f"/v1/workspaces/{wsp}/fs"
    created = await _ok(client.post(f"{fs}/docs/notes.md", json={"content": "hello\n"}), 201)
    assert created["path"] == "/docs/notes.md" and created["workspace_id"] == wsp
    assert created["content_hash"].startswith("sha256:")
    await _ok(client.post(f"{fs}/empty", json={"is_directory": True}), 201)
    raw = base64.b64encode(b"\x00\x01").decode()
    binary = await _ok(client.post(f"{fs}/b.bin", json={"content": raw, "encoding": "base64"}), 201)
    assert binary["encoding"] == "base64" and binary["content"] == raw

    root = await _ok(client.get(fs))
    assert [e["path"] for e in root["data"]] == ["/docs", "/empty", "/b.bin"]
    deep = await _ok(client.get(fs, params={"recursive": "true"}))
    assert "/docs/notes.md" in [e["path"] for e in deep["data"]]
    listed = await _ok(client.get(f"{fs}/docs"))
    assert [e["name"] for e in listed["data"]] == ["notes.md"]
    read = await _ok(client.get(f"{fs}/workspace/docs/notes.md"))
    assert read["content"] == "hello\n"

    updated = await _ok(client.put(f"{fs}/docs/notes.md", json={"content": "hello there\n"}))
    assert updated["content"] == "hello there\n"
    stat = await _ok(client.post(f"{fs}/_/stat", json={"path": "/docs/notes.md"}))
    assert stat["size_bytes"] == 12 and stat["content_hash"] == updated["content_hash"]
    found = await _ok(
        client.post(f"{fs}/_/grep", json={"pattern": "th.re", "path_pattern": "*.md"})
    )
    assert found["data"][0]["path"] == "/docs/notes.md"
    assert found["data"][0]["matches"][0]["line_number"] == 1
    copied = await _ok(
        client.post(f"{fs}/_/copy", json={"src_path": "/docs/notes.md", "dst_path": "/c.md"}), 201
    )
    assert copied["content"] == "hello there\n"
    moved = await _ok(
        client.post(f"{fs}/_/move", json={"src_path": "/c.md", "dst_path": "/old/c.md"})
    )
    assert moved["path"] == "/old/c.md"
    assert_error(await client.get(f"{fs}/c.md"), 404)
    assert_error(await client.delete(f"{fs}/docs"), 409, "directory_not_empty")
    raw_file = await client.get(f"{fs}/_/download/b.bin")
    assert raw_file.status_code == 200 and raw_file.content == b"\x00\x01"
    assert raw_file.headers["content-type"] == "application/octet-stream"
    assert 'filename="b.bin"' in raw_file.headers["content-disposition"]
    assert_error(await client.get(f"{fs}/_/download/docs"), 409, "is_a_directory")
    assert_error(await client.get(f"{fs}/_/download/nope.txt"), 404)
    gone = await _ok(client.delete(f"{fs}/docs", params={"recursive": "true"}))
    assert gone == {"deleted": True}
    assert_error(await client.get(f"{fs}/docs/notes.md"), 404)


async def test_compare_and_set_names_the_current_hash(api: Api) -> None:
    client = api.client
    fs = f"/v1/workspaces/{(await _workspace(api))['id']}/fs"
    first = await _ok(client.post(f"{fs}/plan.md", json={"content": "v1"}), 201)
    second = await _ok(
        client.put(f"{fs}/plan.md", json={"content": "v2", "content_hash": first["content_hash"]})
    )
    assert second["content"] == "v2"
    # A writer still holding v1's hash loses, and is told the hash to retry from.
    stale = await client.put(
        f"{fs}/plan.md", json={"content": "v3", "content_hash": first["content_hash"]}
    )
    error = assert_error(stale, 409, "hash_mismatch", field="content_hash")
    assert second["content_hash"] in error["message"]
    assert (await _ok(client.get(f"{fs}/plan.md")))["content"] == "v2"
    bad = await client.put(f"{fs}/plan.md", json={"content": "x", "content_hash": "md5:1"})
    assert_error(bad, 422)
    missing = await client.put(
        f"{fs}/nope.md", json={"content": "x", "content_hash": first["content_hash"]}
    )
    assert_error(missing, 404)


async def test_sessions_share_a_workspace_and_deleting_one_keeps_it(api: Api) -> None:
    client = api.client
    wsp = (await _workspace(api))["id"]
    one = await create_session(api, workspace_id=wsp)
    two = await create_session(api, workspace_id=wsp)
    alone = await create_session(api)
    assert one["workspace_id"] == two["workspace_id"] == wsp
    assert (await _ok(client.get(f"/v1/sessions/{one['id']}")))["workspace_id"] == wsp
    listed = {s["id"]: s["workspace_id"] for s in (await _ok(client.get("/v1/sessions")))["data"]}
    assert listed[two["id"]] == wsp and listed[alone["id"]] == alone["workspace_id"]
    assert alone["workspace_id"].startswith("wsp_") and alone["workspace_id"] != wsp
    own = await _ok(client.get(f"/v1/workspaces/{alone['workspace_id']}"))
    assert own["session_id"] == alone["id"]

    await _ok(client.post(f"/v1/sessions/{one['id']}/fs/shared.md", json={"content": "hi"}), 201)
    read = await _ok(client.get(f"/v1/sessions/{two['id']}/fs/shared.md"))
    assert read["content"] == "hi" and read["session_id"] == two["id"]
    assert (await _ok(client.get(f"/v1/workspaces/{wsp}/fs/shared.md")))["content"] == "hi"
    assert (await _ok(client.get(f"/v1/sessions/{alone['id']}/fs")))["data"] == []
    # The automatic workspace is reachable as a workspace too, and cannot be archived alone.
    await _ok(
        client.post(f"/v1/workspaces/{alone['workspace_id']}/fs/mine.md", json={"content": "m"}),
        201,
    )
    assert (await _ok(client.get(f"/v1/sessions/{alone['id']}/fs/mine.md")))["content"] == "m"
    refused = await client.delete(f"/v1/workspaces/{alone['workspace_id']}")
    assert_error(refused, 409, "automatic_workspace")

    assert (await client.delete(f"/v1/sessions/{one['id']}")).status_code == 204
    assert (await _ok(client.get(f"/v1/sessions/{two['id']}/fs/shared.md")))["content"] == "hi"
    assert (await _ok(client.get(f"/v1/workspaces/{wsp}")))["status"] == "active"
    # Deleting a session with its own workspace deletes that workspace and its files.
    assert (await client.delete(f"/v1/sessions/{alone['id']}")).status_code == 204
    assert_error(await client.get(f"/v1/workspaces/{alone['workspace_id']}"), 404)
    async with api.services.db.read() as conn:
        left = select(func.count()).where(workspace_files.c.workspace_id == alone["workspace_id"])
        assert await conn.scalar(left) == 0


async def test_a_session_names_only_its_own_orgs_active_workspace(
    api: Api, other_org: OtherOrg
) -> None:
    wsp = (await _workspace(api))["id"]
    theirs = await other_org.client.post("/v1/sessions", json={"workspace_id": wsp})
    assert_error(theirs, 404, field="workspace_id")
    unknown = await api.client.post("/v1/sessions", json={"workspace_id": "wsp_" + "1" * 32})
    assert_error(unknown, 404, field="workspace_id")
    malformed = await api.client.post("/v1/sessions", json={"workspace_id": "nope"})
    assert_error(malformed, 422, field="workspace_id")
    assert (await api.client.delete(f"/v1/workspaces/{wsp}")).status_code == 204
    archived = await api.client.post("/v1/sessions", json={"workspace_id": wsp})
    assert_error(archived, 422, "workspace_archived", field="workspace_id")


async def test_another_orgs_workspace_is_404_everywhere(api: Api, other_org: OtherOrg) -> None:
    wsp = (await _workspace(api))["id"]
    await _ok(api.client.post(f"/v1/workspaces/{wsp}/fs/a.txt", json={"content": "mine"}), 201)
    client = other_org.client
    base = f"/v1/workspaces/{wsp}"
    assert_error(await client.get(base), 404)
    assert_error(await client.patch(base, json={"name": "theirs"}), 404)
    assert_error(await client.delete(base), 404)
    assert_error(await client.get(f"{base}/fs"), 404)
    assert_error(await client.get(f"{base}/fs/a.txt"), 404)
    assert_error(await client.post(f"{base}/fs/b.txt", json={"content": "x"}), 404)
    assert_error(await client.put(f"{base}/fs/a.txt", json={"content": "x"}), 404)
    assert_error(await client.delete(f"{base}/fs/a.txt"), 404)
    assert_error(await client.post(f"{base}/fs/_/stat", json={"path": "/a.txt"}), 404)
    assert_error(await client.post(f"{base}/fs/_/grep", json={"pattern": "m"}), 404)
    assert (await client.get("/v1/workspaces")).json()["data"] == []
    # The same name is free in another organization.
    assert (await client.post("/v1/workspaces", json={"name": "team"})).status_code == 201
    assert (await _ok(api.client.get(f"{base}/fs/a.txt")))["content"] == "mine"


async def test_paths_quota_and_size_limits_on_workspace_routes(api: Api) -> None:
    client = api.client
    fs = f"/v1/workspaces/{(await _workspace(api))['id']}/fs"
    for raw in ("..%2Fsecret", "%2E%2E/%2E%2E/etc/passwd", "a%5Cb", "a%00b"):
        url = f"{fs}/{raw}"
        assert_error(await client.post(url, json={"content": "x"}), 400, "invalid_path")
        assert_error(await client.put(url, json={"content": "x"}), 400, "invalid_path")
        assert_error(await client.delete(url), 400, "invalid_path")
    for bad in ("../etc/passwd", "/workspace/../../etc/passwd", "a\x00b"):
        stat = await client.post(f"{fs}/_/stat", json={"path": bad})
        assert_error(stat, 400, "invalid_path")
        move = await client.post(f"{fs}/_/move", json={"src_path": "/a", "dst_path": bad})
        assert_error(move, 400, "invalid_path")
    too_big = await client.post(f"{fs}/big.txt", json={"content": "x" * 101})
    assert_error(too_big, 413, "file_too_large")
    for name in ("a", "b"):
        await _ok(client.post(f"{fs}/{name}.txt", json={"content": "x" * 100}), 201)
    over = await client.post(f"{fs}/c.txt", json={"content": "x" * 51})
    assert_error(over, 413, "workspace_quota_exceeded")
    copy = await client.post(f"{fs}/_/copy", json={"src_path": "/a.txt", "dst_path": "/d.txt"})
    assert_error(copy, 413, "workspace_quota_exceeded")
    names = [e["name"] for e in (await _ok(client.get(fs)))["data"]]
    assert names == ["a.txt", "b.txt"]


async def test_concurrent_compare_and_set_writers_one_wins(api: Api) -> None:
    fs = f"/v1/workspaces/{(await _workspace(api))['id']}/fs"
    base = await _ok(api.client.post(f"{fs}/race.md", json={"content": "v0"}), 201)
    answers = await asyncio.gather(
        *(
            api.client.put(
                f"{fs}/race.md", json={"content": f"w{n}", "content_hash": base["content_hash"]}
            )
            for n in range(4)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409, 409, 409], [a.text for a in answers]
    [winner] = [a.json() for a in answers if a.status_code == 200]
    for lost in (a for a in answers if a.status_code == 409):
        assert winner["content_hash"] in lost.json()["error"]["message"]
    assert (await _ok(api.client.get(f"{fs}/race.md")))["content"] == winner["content"]


async def test_preview_serves_html_sandboxed(api: Api) -> None:
    wsp = (await api.client.post("/v1/workspaces", json={"name": "site"})).json()["id"]
    page = "<html><script>document.title='hi'</script><p>Report</p></html>"
    for path, content in (("/site/index.html", page), ("/site/data.csv", "a,b\n")):
        made = await api.client.post(f"/v1/workspaces/{wsp}/fs{path}", json={"content": content})
        assert made.status_code == 201, made.text

    shown = await api.client.get(f"/v1/workspaces/{wsp}/fs/_/preview/site/index.html")
    assert shown.status_code == 200, shown.text
    assert shown.text == page and shown.headers["content-type"].startswith("text/html")
    policy = shown.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts;") and "allow-same-origin" not in policy
    assert shown.headers["x-content-type-options"] == "nosniff"

    other = await api.client.get(f"/v1/workspaces/{wsp}/fs/_/preview/site/data.csv")
    assert other.status_code == 415 and "download" in other.json()["error"]["message"]
    folder = await api.client.get(f"/v1/workspaces/{wsp}/fs/_/preview/site")
    assert folder.status_code == 400
    missing = await api.client.get(f"/v1/workspaces/{wsp}/fs/_/preview/site/none.html")
    assert missing.status_code == 404
