"""Every management command of the ``everloop`` CLI against one real ``everloop serve``.

Each command is run as a person would (the console script, the server found through
``EVERLOOP_URL`` and the data dir's admin token); its table and its ``--json`` are both read,
and its exit code checked: 0 ok, 1 error, 2 usage, 3 not found, 4 unauthorised.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from everloop import __version__
from tests.e2e.cli_support import cli_env, module_server, run_cli, table_rows
from tests.e2e.conftest import Api, Server, everloop_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with module_server(tmp_path_factory.mktemp("cli")) as started:
        yield started


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    helper = Api(server)
    try:
        yield helper
    finally:
        helper.close()


def ok(server: Server, *args: str) -> str:
    done = run_cli(server, *args)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def as_json(server: Server, *args: str) -> object:
    return json.loads(ok(server, *args, "--json"))


def test_version_and_help(server: Server) -> None:
    assert ok(server, "--version").strip() == f"everloop {__version__}"
    helped = ok(server, "--help")
    for command in ("serve", "chat", "status", "sessions", "agents", "models", "token"):
        assert command in helped


def test_status_reports_a_ready_server(server: Server) -> None:
    report = as_json(server, "status", "--wait", "30")
    assert isinstance(report, dict)
    assert report["ready"] is True and report["healthy"] is True
    assert report["version"] == __version__
    assert report["database"] == "ok" and report["engine"] == "ok"
    assert [e["role"] for e in report["executors"] if not e["stopped_at"]] == ["serve"]
    table = ok(server, "status")
    assert "ready" in table and "yes" in table
    [executor] = table_rows(table.split("executors", 1)[1])
    assert executor["role"] == "serve" and executor["state"] == "live"


def test_models_and_providers(server: Server) -> None:
    models = as_json(server, "models", "ls")
    assert isinstance(models, list)
    assert "llmsim" in [m["model_id"] for m in models]
    added = as_json(
        server, "providers", "add", "--name", "sim2", "--driver", "llmsim", "--model", "m-one"
    )
    assert isinstance(added, dict)
    assert added["provider"]["name"] == "sim2"
    assert [m["model_id"] for m in added["models"]] == ["m-one"]
    providers = table_rows(ok(server, "providers", "ls"))
    assert {"llmsim", "sim2"} <= {p["name"] for p in providers}
    rows = table_rows(ok(server, "models", "ls", "--provider", "sim2"))
    assert [(r["provider"], r["model"]) for r in rows] == [("sim2", "m-one")]
    missing = run_cli(server, "providers", "add", "--name", "x", "--driver", "nope")
    assert missing.returncode == 1 and "driver" in missing.stderr


def test_agents_create_show_edit_export_import(server: Server, tmp_path: Path) -> None:
    created = run_cli(server, "agents", "create", "--name", "helper", "--prompt", "Be brief.")
    assert created.returncode == 0, created.stderr
    agent_id = created.stdout.split()[1]
    rows = table_rows(ok(server, "agents", "ls"))
    assert {"id": agent_id, "name": "helper"}.items() <= next(
        r for r in rows if r["name"] == "helper"
    ).items()
    shown = as_json(server, "agents", "show", "helper")
    assert isinstance(shown, dict) and shown["id"] == agent_id
    edited = as_json(server, "agents", "edit", "helper", "--description", "short answers")
    assert isinstance(edited, dict) and edited["description"] == "short answers"

    document = tmp_path / "helper.md"
    ok(server, "agents", "export", "helper", "-o", str(document))
    text = document.read_text()
    assert "name: helper" in text and "Be brief." in text
    copies = []
    for n in range(3):
        copy = tmp_path / f"copy{n}.md"
        copy.write_text(text.replace("name: helper", f"name: helper-copy-{n}"))
        copies.append(str(copy))
    imported = as_json(server, "agents", "import", *copies)
    assert isinstance(imported, list)
    assert [a["name"] for a in imported] == [f"helper-copy-{n}" for n in range(3)]
    assert all(a["system_prompt"].strip() == "Be brief." for a in imported)
    example = ok(server, "agents", "import", "--example", "dad-jokes-agent")
    assert example.startswith("imported agent_")

    again = run_cli(server, "agents", "import", str(document))
    assert again.returncode == 1 and "helper" in again.stderr  # the name is taken
    assert run_cli(server, "agents", "show", "nobody").returncode == 3
    assert run_cli(server, "agents", "create", "--name", "no-prompt").returncode == 2
    assert run_cli(server, "agents", "edit", "helper").returncode == 2


def test_sessions_ls_show_events_export_cancel_delete(
    server: Server, api: Api, tmp_path: Path
) -> None:
    session_id = api.create_session(api.llmsim_model({"response": {"type": "echo"}}))
    api.post_message(session_id, "hello there")
    api.wait_type(session_id, "turn.completed")

    listed = as_json(server, "sessions", "ls")
    assert isinstance(listed, list) and session_id in [s["id"] for s in listed]
    row = next(r for r in table_rows(ok(server, "sessions", "ls")) if r["id"] == session_id)
    assert row["status"] == "idle" and row["title"] == "hello there"
    shown = as_json(server, "sessions", "show", session_id)
    assert isinstance(shown, dict) and shown["status"] == "idle"
    assert "Echo: hello there" in ok(server, "sessions", "show", session_id)

    events = as_json(server, "sessions", "events", session_id)
    assert isinstance(events, list)
    kinds = [e["type"] for e in events]
    assert "turn.completed" in kinds and "output.message.delta" not in kinds
    table = table_rows(ok(server, "sessions", "events", session_id, "--type", "input.message"))
    assert [(r["type"], r["about"]) for r in table] == [("input.message", "hello there")]

    piped = json.loads(ok(server, "sessions", "export", session_id))  # no progress bar in it
    assert piped["session"]["id"] == session_id
    exported = tmp_path / "session.json"
    ok(server, "sessions", "export", session_id, "-o", str(exported))
    document = json.loads(exported.read_text())
    assert document["session"]["id"] == session_id
    assert [e["sequence"] for e in document["events"]] == list(
        range(1, len(document["events"]) + 1)
    )
    assert document["messages"][0]["content"][0]["text"] == "hello there"

    assert ok(server, "sessions", "cancel", session_id).strip() == "no turn was running"
    assert as_json(server, "sessions", "cancel", session_id) == {"status": "no_op", "turn_id": None}
    assert ok(server, "sessions", "delete", session_id).strip() == f"deleted {session_id}"
    gone = run_cli(server, "sessions", "show", session_id)
    assert gone.returncode == 3
    assert "not found: `everloop sessions ls` lists them" in gone.stderr


def test_a_progress_bar_shows_on_a_terminal_only(server: Server, tmp_path: Path) -> None:
    documents = []
    for n in range(3):
        document = tmp_path / f"progress{n}.md"
        document.write_text(f"---\nname: progress-{n}\n---\nBe kind.\n")
        documents.append(str(document))
    terminal = pexpect.spawn(
        everloop_command()[0],
        ["agents", "import", *documents[:2]],
        env=cli_env(server),
        encoding="utf-8",
        timeout=60,
    )
    try:
        terminal.expect(pexpect.EOF)
        shown = str(terminal.before)
    finally:
        terminal.close()
    assert "importing agents" in shown and "2/2" in shown
    assert terminal.exitstatus == 0
    piped = run_cli(server, "agents", "import", documents[2])
    assert piped.returncode == 0
    assert "importing" not in piped.stdout + piped.stderr


def test_chat_reads_a_script_from_a_pipe(server: Server) -> None:
    script = 'hello\n"""\nline a\nline b\n"""\n/usage\n'
    done = run_cli(server, "chat", stdin=script)
    assert done.returncode == 0, done.stderr
    assert "you> " not in done.stdout  # no prompts when nobody types
    assert "Echo: hello\nEcho: line a\nline b\ntokens: " in done.stdout


def test_exit_codes_and_what_to_do_next(server: Server, tmp_path: Path) -> None:
    gone = run_cli(server, "status", "--wait", "0.3", "--url", "http://127.0.0.1:9")
    assert gone.returncode == 1 and "no server at" in gone.stderr
    nobody = run_cli(server, "sessions", "ls", "--url", "http://127.0.0.1:9")
    assert nobody.returncode == 1
    assert "no server at http://127.0.0.1:9: start one with `everloop serve`" in nobody.stderr
    chat = run_cli(server, "chat", "--url", "http://127.0.0.1:9")
    assert chat.returncode == 1 and "start one with `everloop serve`" in chat.stderr
    refused = run_cli(server, "sessions", "ls", "--token", "evr_pat_not-a-real-token")
    assert refused.returncode == 4 and "--token" in refused.stderr
    no_token = run_cli(server, "status", EVERLOOP_DATA_DIR=str(tmp_path / "empty"))
    assert no_token.returncode == 4 and "admin-token" in no_token.stderr
    assert run_cli(server, "sessions", "show", "session_nope").returncode == 3
    assert run_cli(server, "sessions", "ls", "--limit", "0").returncode == 2
    assert run_cli(server, "no-such-command").returncode == 2


def test_token_ls_is_list(server: Server) -> None:
    created = ok(server, "token", "create", "--name", "ci", "--data-dir", str(server.data_dir))
    assert created.strip().startswith("evr_pat_")
    tokens = as_json(server, "token", "ls", "--data-dir", str(server.data_dir))
    assert isinstance(tokens, list)
    [ci] = [t for t in tokens if t["name"] == "ci"]
    assert ci["state"] == "live" and created.strip() not in json.dumps(tokens)
    for command in ("ls", "list"):
        rows = table_rows(ok(server, "token", command, "--data-dir", str(server.data_dir)))
        assert ci["id"] in [r["id"] for r in rows]
    ok(server, "token", "revoke", ci["id"], "--data-dir", str(server.data_dir))
    refused = run_cli(server, "sessions", "ls", "--token", created.strip())
    assert refused.returncode == 4
