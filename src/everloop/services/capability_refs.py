"""Checking the capabilities a harness, agent or session names: each ``ref`` is registered (or
an ``mcp:{id}`` the org's servers answer for, ``check_mcp_refs``), and each ``config`` fits its
capability's ``config_schema`` and passes its ``config_check`` (what a schema cannot say)."""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

import jsonschema

from everloop.capabilities.base import Capability, CapabilityRegistry
from everloop.domain.mcp import server_id_of_ref
from everloop.errors import InvalidInput


def check_capability_refs(known: Container[str], capabilities: Iterable[dict[str, Any]]) -> None:
    """Every ``{"ref": ...}`` names a registered capability, and its ``config`` fits the
    capability's ``config_schema`` where it has one; otherwise a 422 naming the field.
    ``mcp:{id}`` refs are checked against the org's servers by ``check_mcp_refs``."""
    for index, capability in enumerate(capabilities):
        ref = capability["ref"]
        if ref not in known and server_id_of_ref(ref) is None:
            raise InvalidInput(
                f"unknown capability '{ref}' (GET /v1/capabilities lists them)",
                code="unknown_capability",
                field=f"capabilities.{index}.ref",
            )
        config = capability.get("config")
        if config is not None and isinstance(known, CapabilityRegistry) and ref in known:
            check_config(known.get(ref), config, f"capabilities.{index}.config")


_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}


def check_config(capability: Capability, config: Any, field: str) -> None:
    """``config`` fits ``capability``'s ``config_schema`` and passes its ``config_check``;
    otherwise a 422 naming the field under ``field``."""
    if capability.config_schema is None:
        return
    validator = _VALIDATORS.get(capability.id)
    if validator is None:
        validator = jsonschema.Draft202012Validator(capability.config_schema)
        _VALIDATORS[capability.id] = validator
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        where = "".join(f".{part}" for part in error.absolute_path)
        raise InvalidInput(
            f"the config of capability '{capability.id}' is invalid: {error.message} "
            f"(GET /v1/capabilities/{capability.id} shows its config_schema)",
            code="invalid_capability_config",
            field=field + where,
        )
    if capability.config_check is not None:
        try:
            capability.config_check(config)
        except InvalidInput as exc:
            where = f".{exc.field}" if exc.field else ""
            raise InvalidInput(
                f"the config of capability '{capability.id}' is invalid: {exc.message}",
                code="invalid_capability_config",
                field=field + where,
            ) from None
