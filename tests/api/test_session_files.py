"""The session file system over REST: /v1/sessions/{id}/fs, with its bad inputs."""

from __future__ import annotations

import base64
import threading

import pytest

from everloop.config import Settings
from everloop.store import workspace_files as files_service
from tests.api.conftest import OtherOrg, assert_error, create_agent, create_session
from tests.conftest import Api


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Small quotas, so overflowing them needs only a few bytes.
    return settings.model_copy(update={"file_max_bytes": 100, "session_files_max_bytes": 250})


async def _session(api: Api) -> str:
    return str((await create_session(api))["id"])


async def test_create_read_update_list_and_delete_a_file(api: Api) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    created = await api.client.post(f"{fs}/docs/notes.md", json={"content": "hello\n"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["path"] == "/docs/notes.md" and body["name"] == "notes.md"
    assert body["content"] == "hello\n" and body["encoding"] == "text"
    assert body["size_bytes"] == 6 and body["session_id"] == sid
    assert body["content_hash"].startswith("sha256:")

    # The parent directory was created; /workspace/x names the same file as /x.
    root = (await api.client.get(fs)).json()
    assert [(e["path"], e["is_directory"]) for e in root["data"]] == [("/docs", True)]
    read = await api.client.get(f"{fs}/workspace/docs/notes.md")
    assert read.status_code == 200 and read.json()["content"] == "hello\n"
    listed = await api.client.get(f"{fs}/docs")
    assert [e["name"] for e in listed.json()["data"]] == ["notes.md"]
    assert "content" not in listed.json()["data"][0]

    again = await api.client.post(f"{fs}/docs/notes.md", json={"content": "x"})
    assert_error(again, 409, "file_exists")
    updated = await api.client.put(f"{fs}/docs/notes.md", json={"content": "bye"})
    assert updated.status_code == 200 and updated.json()["content"] == "bye"
    assert_error(await api.client.put(f"{fs}/docs/missing.md", json={"content": "x"}), 404)

    not_empty = await api.client.delete(f"{fs}/docs")
    assert_error(not_empty, 409, "directory_not_empty")
    deleted = await api.client.delete(f"{fs}/docs", params={"recursive": "true"})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": True}
    assert (await api.client.get(fs)).json()["data"] == []
    assert_error(await api.client.get(f"{fs}/docs/notes.md"), 404)


async def test_binary_content_round_trips_as_base64(api: Api) -> None:
    sid = await _session(api)
    raw = b"\x89PNG\x00\x01\x02"
    encoded = base64.b64encode(raw).decode()
    created = await api.client.post(
        f"/v1/sessions/{sid}/fs/img.png", json={"content": encoded, "encoding": "base64"}
    )
    assert created.status_code == 201, created.text
    read = (await api.client.get(f"/v1/sessions/{sid}/fs/img.png")).json()
    assert read["encoding"] == "base64" and base64.b64decode(read["content"]) == raw
    bad = await api.client.post(
        f"/v1/sessions/{sid}/fs/bad.bin", json={"content": "***", "encoding": "base64"}
    )
    assert_error(bad, 422, field="content")


async def test_directories_stat_grep_move_and_copy(api: Api) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    made = await api.client.post(f"{fs}/src", json={"is_directory": True})
    assert made.status_code == 201 and made.json()["is_directory"] is True
    await api.client.post(f"{fs}/src/a.py", json={"content": "import os\nx = 1\n"})
    await api.client.post(f"{fs}/src/b.txt", json={"content": "import nothing\n"})

    stat = await api.client.post(f"{fs}/_/stat", json={"path": "/workspace/src/a.py"})
    assert stat.status_code == 200, stat.text
    assert stat.json()["size_bytes"] == 16 and stat.json()["is_directory"] is False
    assert_error(await api.client.post(f"{fs}/_/stat", json={"path": "/nope"}), 404)

    grep = await api.client.post(
        f"{fs}/_/grep", json={"pattern": "^import", "path_pattern": "*.py"}
    )
    assert grep.status_code == 200, grep.text
    assert grep.json()["data"] == [
        {
            "path": "/src/a.py",
            "matches": [{"path": "/src/a.py", "line_number": 1, "line": "import os"}],
        }
    ]
    bad_regex = await api.client.post(f"{fs}/_/grep", json={"pattern": "(["})
    assert_error(bad_regex, 422, "invalid_pattern", field="pattern")

    moved = await api.client.post(f"{fs}/_/move", json={"src_path": "src", "dst_path": "lib/src"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["path"] == "/lib/src"
    assert (await api.client.get(f"{fs}/lib/src/a.py")).json()["content"] == "import os\nx = 1\n"
    assert_error(await api.client.get(f"{fs}/src/a.py"), 404)
    into_itself = await api.client.post(
        f"{fs}/_/move", json={"src_path": "lib", "dst_path": "lib/inner"}
    )
    assert_error(into_itself, 422)

    copied = await api.client.post(
        f"{fs}/_/copy", json={"src_path": "/lib/src/a.py", "dst_path": "/a-copy.py"}
    )
    assert copied.status_code == 201 and copied.json()["content"] == "import os\nx = 1\n"
    exists = await api.client.post(
        f"{fs}/_/copy", json={"src_path": "/lib/src/a.py", "dst_path": "/a-copy.py"}
    )
    assert_error(exists, 409, "file_exists")
    directory = await api.client.post(f"{fs}/_/copy", json={"src_path": "/lib", "dst_path": "/x"})
    assert_error(directory, 422)
    recursive = (await api.client.get(fs, params={"recursive": "true"})).json()["data"]
    assert [e["path"] for e in recursive] == [
        "/a-copy.py",
        "/lib",
        "/lib/src",
        "/lib/src/a.py",
        "/lib/src/b.txt",
    ]


@pytest.mark.parametrize(
    "bad_path",
    ["../etc/passwd", "/workspace/../../etc/passwd", "a/../../b", "a\\b", "a\x00b", "_/reserved"],
)
async def test_paths_that_leave_the_workspace_are_a_400(api: Api, bad_path: str) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    assert_error(
        await api.client.post(f"{fs}/_/stat", json={"path": bad_path}), 400, "invalid_path"
    )
    move = await api.client.post(f"{fs}/_/move", json={"src_path": "/a", "dst_path": bad_path})
    assert_error(move, 400, "invalid_path")
    copy = await api.client.post(f"{fs}/_/copy", json={"src_path": bad_path, "dst_path": "/b"})
    assert_error(copy, 400, "invalid_path")


@pytest.mark.parametrize("raw_path", ["..%2Fsecret", "%2E%2E/%2E%2E/etc/passwd", "a%5Cb", "a%00b"])
async def test_bad_paths_in_the_url_are_a_400(api: Api, raw_path: str) -> None:
    sid = await _session(api)
    url = f"/v1/sessions/{sid}/fs/{raw_path}"
    for response in (
        await api.client.post(url, json={"content": "x"}),
        await api.client.put(url, json={"content": "x"}),
        await api.client.delete(url),
    ):
        assert_error(response, 400, "invalid_path")


async def test_quotas_per_file_and_per_session(api: Api) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    too_big = await api.client.post(f"{fs}/big.txt", json={"content": "x" * 101})
    assert_error(too_big, 413, "file_too_large")
    for name in ("a", "b"):
        ok = await api.client.post(f"{fs}/{name}.txt", json={"content": "x" * 100})
        assert ok.status_code == 201, ok.text
    over = await api.client.post(f"{fs}/c.txt", json={"content": "x" * 60})
    assert_error(over, 413, "workspace_quota_exceeded")
    # Replacing a file counts its new size, not both.
    replaced = await api.client.put(f"{fs}/a.txt", json={"content": "y" * 100})
    assert replaced.status_code == 200, replaced.text
    copy = await api.client.post(f"{fs}/_/copy", json={"src_path": "/a.txt", "dst_path": "/d"})
    assert_error(copy, 413, "workspace_quota_exceeded")


async def test_read_only_files_refuse_writes_and_deletes(api: Api) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    created = await api.client.post(
        f"{fs}/cfg/lock.txt", json={"content": "v1", "is_readonly": True}
    )
    assert created.status_code == 201 and created.json()["is_readonly"] is True
    assert_error(
        await api.client.put(f"{fs}/cfg/lock.txt", json={"content": "v2"}), 409, "read_only"
    )
    assert_error(await api.client.delete(f"{fs}/cfg/lock.txt"), 409, "read_only")
    recursive = await api.client.delete(f"{fs}/cfg", params={"recursive": "true"})
    assert_error(recursive, 409, "read_only")
    move = await api.client.post(f"{fs}/_/move", json={"src_path": "/cfg", "dst_path": "/x"})
    assert_error(move, 409, "read_only")
    # The API may clear the flag (the read-only promise binds the agent, not the owner).
    unlocked = await api.client.put(
        f"{fs}/cfg/lock.txt", json={"content": "v2", "is_readonly": False}
    )
    assert unlocked.status_code == 200 and unlocked.json()["content"] == "v2"
    assert (await api.client.delete(f"{fs}/cfg/lock.txt")).status_code == 200


async def test_unknown_session_and_another_orgs_session_are_404(
    api: Api, other_org: OtherOrg
) -> None:
    sid = await _session(api)
    await api.client.post(f"/v1/sessions/{sid}/fs/a.txt", json={"content": "mine"})
    missing = "session_" + "0" * 32
    for client, session_id in ((api.client, missing), (other_org.client, sid)):
        fs = f"/v1/sessions/{session_id}/fs"
        assert_error(await client.get(fs), 404)
        assert_error(await client.get(f"{fs}/a.txt"), 404)
        assert_error(await client.post(f"{fs}/b.txt", json={"content": "x"}), 404)
        assert_error(await client.put(f"{fs}/a.txt", json={"content": "x"}), 404)
        assert_error(await client.delete(f"{fs}/a.txt"), 404)
        assert_error(await client.post(f"{fs}/_/stat", json={"path": "/a.txt"}), 404)
        assert_error(await client.post(f"{fs}/_/grep", json={"pattern": "m"}), 404)
    assert (await api.client.get(f"/v1/sessions/{sid}/fs/a.txt")).json()["content"] == "mine"


# 40 characters: a backtracking engine takes about 2**40 steps on this line (hours).
HOSTILE_LINE = "a" * 40 + "!"


async def test_grep_with_a_catastrophic_pattern_finds_the_right_lines(api: Api) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    content = f"{HOSTILE_LINE}\naaaa\nAAAA\n"
    assert (await api.client.post(f"{fs}/evil.txt", json={"content": content})).status_code == 201

    grep = await api.client.post(f"{fs}/_/grep", json={"pattern": "(a+)+$"})
    assert grep.status_code == 200, grep.text
    (result,) = grep.json()["data"]
    assert [(m["line_number"], m["line"]) for m in result["matches"]] == [(2, "aaaa")]
    # RE2's inline flag keeps case-insensitive search available.
    folded = await api.client.post(f"{fs}/_/grep", json={"pattern": "(?i)^(a+)+$"})
    (result,) = folded.json()["data"]
    assert [m["line_number"] for m in result["matches"]] == [2, 3]


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)a", "(?<!b)a", r"a\Z", "a{1001}"])
async def test_grep_patterns_that_need_backtracking_are_a_422_naming_pattern(
    api: Api, pattern: str
) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    await api.client.post(f"{fs}/a.txt", json={"content": "aa\n"})
    refused = await api.client.post(f"{fs}/_/grep", json={"pattern": pattern})
    error = assert_error(refused, 422, "invalid_pattern", field="pattern")
    assert "regular expression" in error["message"]


async def test_grep_matches_lines_off_the_event_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = await _session(api)
    fs = f"/v1/sessions/{sid}/fs"
    for name in ("a.txt", "b.txt"):
        await api.client.post(f"{fs}/{name}", json={"content": "needle\n"})
    loop_thread = threading.get_ident()
    seen: list[int] = []
    checks_binary = files_service.is_binary

    def spy(content: bytes) -> bool:  # the first step of matching a file's lines
        seen.append(threading.get_ident())
        return checks_binary(content)

    monkeypatch.setattr(files_service, "is_binary", spy)
    grep = await api.client.post(f"{fs}/_/grep", json={"pattern": "needle"})
    assert [r["path"] for r in grep.json()["data"]] == ["/a.txt", "/b.txt"]
    assert len(seen) == 2 and loop_thread not in seen


async def test_initial_files_are_layered_into_a_new_session(api: Api) -> None:
    agent = await create_agent(
        api,
        "with-files",
        initial_files=[
            {"path": "/workspace/README.md", "content": "agent readme", "is_readonly": True},
            {
                "path": "data/seed.bin",
                "content": base64.b64encode(b"\x00\x01").decode(),
                "encoding": "base64",
            },
        ],
    )
    session = await create_session(
        api,
        agent_id=agent["id"],
        initial_files=[{"path": "/README.md", "content": "session readme"}],
    )
    fs = f"/v1/sessions/{session['id']}/fs"
    readme = (await api.client.get(f"{fs}/README.md")).json()
    assert readme["content"] == "session readme" and readme["is_readonly"] is False
    seed = (await api.client.get(f"{fs}/data/seed.bin")).json()
    assert seed["encoding"] == "base64" and base64.b64decode(seed["content"]) == b"\x00\x01"

    locked = await create_session(
        api, initial_files=[{"path": "/lock.txt", "content": "x", "is_readonly": True}]
    )
    put = await api.client.put(f"/v1/sessions/{locked['id']}/fs/lock.txt", json={"content": "y"})
    assert_error(put, 409, "read_only")

    bad = await api.client.post(
        "/v1/sessions", json={"initial_files": [{"path": "../escape", "content": "x"}]}
    )
    assert_error(bad, 400, "invalid_path")
