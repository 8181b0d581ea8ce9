"""``everloop agents ls|show|create|edit|export|import``: agents over the HTTP API.

An agent is named by its id or its name wherever one is asked for (the API resolves both).
``export`` writes the Markdown document (YAML front matter, then the system prompt) that
``import`` reads back as a new agent.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from everloop.cli.client import ApiClient, DataDir, Token, Url, resolve
from everloop.cli.output import (
    NOT_FOUND,
    USAGE,
    Json,
    clip,
    fail,
    print_fields,
    print_json,
    print_table,
    progress,
    short,
)

agents_app = typer.Typer(
    help="List, show, create, edit, export and import agents on a running server.",
    no_args_is_help=True,
)

AgentRef = Annotated[str, typer.Argument(metavar="AGENT", help="The agent's name or id.")]
Prompt = Annotated[str | None, typer.Option("--prompt", help="The system prompt.")]
PromptFile = Annotated[
    Path | None, typer.Option("--prompt-file", help="Read the system prompt from this file.")
]
Model = Annotated[str | None, typer.Option("--model", help="Default model id.")]
Description = Annotated[str | None, typer.Option(help="A line saying what the agent is for.")]


def _prompt(prompt: str | None, prompt_file: Path | None) -> str | None:
    if prompt is not None and prompt_file is not None:
        fail("give --prompt or --prompt-file, not both", USAGE)
    if prompt_file is not None:
        try:
            return prompt_file.read_text()
        except OSError as exc:
            fail(f"--prompt-file: cannot read {prompt_file}: {exc.strerror}", USAGE)
    return prompt


def agent_id(api: ApiClient, ref: str) -> str:
    """The id of the agent named ``ref`` (an id is taken as is); not found exits 3."""
    if ref.startswith("agent_"):
        return ref
    for agent in api.pages("agents", search=ref, include_archived=True):
        if agent["name"] == ref:
            return str(agent["id"])
    fail(f"no agent named {ref!r}: `everloop agents ls` lists them", NOT_FOUND)


def _show(agent: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(agent)
        return
    print_fields(
        [
            ("id", agent["id"]),
            ("name", agent["name"]),
            ("description", agent.get("description")),
            ("model", agent.get("default_model_id")),
            ("status", agent["status"]),
            ("tools", ", ".join(t.get("name", "") for t in agent.get("tools", []))),
            ("capabilities", ", ".join(c.get("ref", "") for c in agent.get("capabilities", []))),
            ("updated", short(agent.get("updated_at"))),
            ("prompt", clip(agent.get("system_prompt", ""), 70)),
        ]
    )


@agents_app.command("ls")
def agents_ls(
    search: Annotated[str | None, typer.Option(help="Only agents whose name has this.")] = None,
    archived: Annotated[bool, typer.Option(help="Include archived agents.")] = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List agents."""
    params: dict[str, Any] = {"include_archived": archived}
    if search:
        params["search"] = search
    with ApiClient(resolve(url, token, data_dir)) as api:
        found = list(api.pages("agents", **params))
    if json_out:
        print_json(found)
        return
    print_table(
        (
            (
                a["id"],
                a["name"],
                a.get("default_model_id") or "",
                a["status"],
                short(a.get("updated_at")),
                clip(a.get("description") or "", 30),
            )
            for a in found
        ),
        ("id", "name", "model", "status", "updated", "description"),
    )


@agents_app.command("show")
def agents_show(
    agent: AgentRef,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Show one agent."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        _show(api.get(f"agents/{agent_id(api, agent)}"), json_out)


@agents_app.command("create")
def agents_create(
    name: Annotated[str, typer.Option(help="The agent's name (unique in the organization).")],
    prompt: Prompt = None,
    prompt_file: PromptFile = None,
    model: Model = None,
    description: Description = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Create an agent from a name and a system prompt."""
    text = _prompt(prompt, prompt_file)
    if text is None:
        fail("give the system prompt: --prompt TEXT or --prompt-file FILE", USAGE)
    body: dict[str, Any] = {"name": name, "system_prompt": text}
    if model:
        body["default_model_id"] = model
    if description:
        body["description"] = description
    with ApiClient(resolve(url, token, data_dir)) as api:
        created = api.post("agents", body)
    if json_out:
        print_json(created)
    else:
        typer.echo(f"created {created['id']} ({created['name']})")


@agents_app.command("edit")
def agents_edit(
    agent: AgentRef,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    prompt: Prompt = None,
    prompt_file: PromptFile = None,
    model: Model = None,
    description: Description = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Change an agent's name, prompt, model or description (a new version)."""
    text = _prompt(prompt, prompt_file)
    changes = {
        key: value
        for key, value in {
            "name": name,
            "system_prompt": text,
            "default_model_id": model,
            "description": description,
        }.items()
        if value is not None
    }
    if not changes:
        fail("nothing to change: give --name, --prompt, --prompt-file, --model or --description", 2)
    with ApiClient(resolve(url, token, data_dir)) as api:
        _show(api.patch(f"agents/{agent_id(api, agent)}", changes), json_out)


@agents_app.command("export")
def agents_export(
    agent: AgentRef,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Export an agent as Markdown with YAML front matter (what import reads)."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        document = api.request("GET", f"agents/{agent_id(api, agent)}/export").text
    if output is None:
        sys.stdout.write(document if document.endswith("\n") else document + "\n")
    else:
        output.write_text(document)
        typer.echo(f"wrote {output}", err=True)


@agents_app.command("import")
def agents_import(
    files: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[FILE]...", help="Documents to import ('-' for stdin)."),
    ] = None,
    example: Annotated[
        str | None, typer.Option(help="Import a built-in example by name instead.")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Import agents from documents: Markdown with front matter, JSON, YAML, text.

    Each document becomes a new agent; a name already in use is refused."""
    if not files and example is None:
        fail("give documents to import, or --example NAME", USAGE)
    texts: list[tuple[str, str]] = []
    for path in files or []:
        try:
            texts.append((str(path), sys.stdin.read() if str(path) == "-" else path.read_text()))
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}", USAGE)
    created: list[dict[str, Any]] = []
    with ApiClient(resolve(url, token, data_dir)) as api:
        if example is not None:
            created.append(api.post("agents/import", params={"from-example": example}))
        with progress("importing agents", len(texts)) as advance:
            for _, text in texts:
                response = api.request(
                    "POST",
                    "agents/import",
                    content=text.encode(),
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
                created.append(response.json())
                advance(1)
    if json_out:
        print_json(created)
        return
    for agent in created:
        typer.echo(f"imported {agent['id']} ({agent['name']})")
