"""Blueprints: the built-in ones plus those loaded from YAML files, and validating a session's
``blueprint_config`` against a blueprint's schema.

A YAML file (``*.yaml`` or ``*.yml`` in ``EVERLOOP_BLUEPRINTS_DIR``) holds one blueprint or a
list of them::

    id: code_reviewer
    name: Code reviewer
    description: Reviews one repository.
    system_prompt: "You review {{config.repo}}."
    capabilities: [{ref: file_system}]
    config_schema:
      type: object
      properties: {repo: {type: string}}
      required: [repo]

A file that does not describe valid blueprints stops the start with an error naming it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import SchemaError

from everloop.domain.blueprints import BUILT_IN_BLUEPRINTS, Blueprint
from everloop.errors import InvalidInput, NotFound

_KEYS = {
    "id",
    "name",
    "description",
    "system_prompt",
    "capabilities",
    "tools",
    "model_id",
    "max_iterations",
    "config_schema",
}


class BlueprintError(InvalidInput):
    """A blueprint file is not valid (raised at start, naming the file)."""

    code = "invalid_blueprint"


def load_blueprints(
    directory: Path | None, known_capabilities: Container[str]
) -> tuple[Blueprint, ...]:
    """The built-in blueprints, then those of ``directory``; a later one replaces an earlier
    one of the same id."""
    found = {b.id: b for b in BUILT_IN_BLUEPRINTS}
    if directory is not None:
        if not directory.is_dir():
            raise BlueprintError(f"blueprints directory '{directory}' does not exist")
        files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
        for path in files:
            for blueprint in _parse_file(path, known_capabilities):
                found[blueprint.id] = blueprint
    return tuple(found.values())


def _parse_file(path: Path, known_capabilities: Container[str]) -> list[Blueprint]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BlueprintError(f"blueprint file '{path}' is not valid YAML: {exc}") from None
    entries = data if isinstance(data, list) else [data]
    return [
        _blueprint(entry, f"{path}[{i}]", known_capabilities) for i, entry in enumerate(entries)
    ]


def _blueprint(entry: Any, where: str, known_capabilities: Container[str]) -> Blueprint:
    def bad(message: str) -> BlueprintError:
        return BlueprintError(f"blueprint {where}: {message}")

    if not isinstance(entry, dict):
        raise bad("must be a mapping")
    unknown = set(entry) - _KEYS
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}")
    for key in ("id", "name", "system_prompt"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise bad(f"'{key}' must be a non-empty string")
    capabilities = entry.get("capabilities") or []
    tools = entry.get("tools") or []
    if not isinstance(capabilities, list) or not isinstance(tools, list):
        raise bad("'capabilities' and 'tools' must be lists")
    refs = []
    for capability in capabilities:
        if not isinstance(capability, dict) or not isinstance(capability.get("ref"), str):
            raise bad("each capability needs a 'ref'")
        if capability["ref"] not in known_capabilities:
            raise bad(f"unknown capability '{capability['ref']}'")
        refs.append({"ref": capability["ref"], "config": capability.get("config")})
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise bad("each tool needs a 'name'")
    schema = entry.get("config_schema") or {"type": "object", "properties": {}}
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise bad(f"config_schema is not a valid JSON Schema: {exc.message}") from None
    max_iterations = entry.get("max_iterations")
    if max_iterations is not None and (not isinstance(max_iterations, int) or max_iterations < 1):
        raise bad("'max_iterations' must be a positive integer")
    return Blueprint(
        id=entry["id"],
        name=entry["name"],
        description=str(entry.get("description") or ""),
        system_prompt=entry["system_prompt"],
        capabilities=tuple(refs),
        tools=tuple(tools),
        model_id=entry.get("model_id"),
        max_iterations=max_iterations,
        config_schema=schema,
    )


class BlueprintService:
    def __init__(self, blueprints: Iterable[Blueprint]) -> None:
        self._blueprints = {b.id: b for b in blueprints}

    def list(self) -> list[Blueprint]:
        return sorted(self._blueprints.values(), key=lambda b: b.id)

    def get(self, blueprint_id: str) -> Blueprint:
        found = self._blueprints.get(blueprint_id)
        if found is None:
            raise NotFound.of("blueprint", blueprint_id)
        return found

    def validated_config(
        self, blueprint_id: str, config: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """``config`` checked against the blueprint's schema; a 422 names the failing path."""
        blueprint = self._blueprints.get(blueprint_id)
        if blueprint is None:
            raise InvalidInput(
                f"unknown blueprint '{blueprint_id}' (GET /v1/blueprints lists them)",
                code="unknown_blueprint",
                field="blueprint_id",
            )
        value = dict(config or {})
        validator = jsonschema.Draft202012Validator(blueprint.config_schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            path = ".".join(str(step) for step in error.absolute_path)
            field = f"blueprint_config.{path}" if path else "blueprint_config"
            if error.validator == "required" and not path:
                missing = next((k for k in error.validator_value if k not in value), None)
                field = f"blueprint_config.{missing}" if missing else field
            raise InvalidInput(
                f"blueprint_config does not match the schema of '{blueprint_id}' at "
                f"'{field}': {error.message}",
                code="invalid_blueprint_config",
                field=field,
            )
        return value
