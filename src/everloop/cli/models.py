"""``everloop models ls`` and ``everloop providers ls|add``: the organization's LLMs.

A provider's API key is sent once and never shown again (the API returns only whether one is
set); ``--api-key-env`` reads it from an environment variable so it stays out of shell history.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from everloop.cli.client import ApiClient, DataDir, Token, Url, resolve
from everloop.cli.output import USAGE, Json, fail, print_json, print_table, short

models_app = typer.Typer(help="List the models the server's providers offer.", no_args_is_help=True)
providers_app = typer.Typer(
    help="List and add LLM providers (OpenAI, Anthropic, compatible servers, llmsim).",
    no_args_is_help=True,
)


@models_app.command("ls")
def models_ls(
    provider: Annotated[
        str | None, typer.Option(help="Only this provider's models (its id or name).")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List models: the id to pass as --model, the provider, the model's name."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        found = api.get("models")["data"]
    if provider:
        found = [m for m in found if provider in (m["provider_id"], m.get("provider_name"))]
    if json_out:
        print_json(found)
        return
    print_table(
        (
            (
                m["id"],
                m.get("provider_name") or m["provider_id"],
                m["model_id"],
                "yes" if m.get("enabled") else "no",
                ", ".join(m.get("capabilities", [])),
            )
            for m in found
        ),
        ("id", "provider", "model", "enabled", "capabilities"),
    )


@providers_app.command("ls")
def providers_ls(
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List providers (API keys are never shown: only whether one is set)."""
    with ApiClient(resolve(url, token, data_dir)) as api:
        found = api.get("providers")["data"]
    if json_out:
        print_json(found)
        return
    print_table(
        (
            (
                p["id"],
                p["name"],
                p["driver"],
                p.get("base_url") or "",
                "set" if p.get("api_key_set") else "",
                p["status"],
                short(p.get("created_at")),
            )
            for p in found
        ),
        ("id", "name", "driver", "base url", "key", "status", "created"),
    )


@providers_app.command("add")
def providers_add(
    name: Annotated[str, typer.Option(help="A name for the provider.")],
    driver: Annotated[str, typer.Option(help="openai, openai_completions, anthropic or llmsim.")],
    base_url: Annotated[
        str | None, typer.Option(help="The API's base URL (default: the vendor's).")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Read the API key from this environment variable.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="The API key (prefer --api-key-env: shells keep history).")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Also add this model (repeatable).")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Add a provider, and optionally its models."""
    if api_key is not None and api_key_env is not None:
        fail("give --api-key or --api-key-env, not both", USAGE)
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            fail(f"--api-key-env: the environment variable {api_key_env} is not set", USAGE)
    body: dict[str, Any] = {"name": name, "driver": driver}
    if base_url:
        body["base_url"] = base_url
    if api_key:
        body["api_key"] = api_key
    with ApiClient(resolve(url, token, data_dir)) as api:
        created = api.post("providers", body)
        models = [
            api.post(f"providers/{created['id']}/models", {"model_id": m}) for m in model or []
        ]
    if json_out:
        print_json({"provider": created, "models": models})
        return
    typer.echo(f"added provider {created['id']} ({created['name']}, {created['driver']})")
    for added in models:
        typer.echo(f"added model {added['id']} ({added['model_id']})")
