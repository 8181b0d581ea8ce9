"""The guardrails gallery and dry run (``/v1/capabilities/guardrails/...``): what a config would
do to a sample text, without a session. The matching itself is ``capabilities.guardrails``, the
same functions a turn runs, so a dry run and a live turn cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from everloop.capabilities.base import CapabilityRegistry
from everloop.capabilities.guardrail_presets import PRESETS, GuardrailPreset
from everloop.capabilities.guardrails import (
    GUARDRAILS,
    GuardrailHit,
    Stage,
    evaluate,
    parse_policy,
)
from everloop.services.capability_refs import check_config


@dataclass(frozen=True, slots=True)
class DryRun:
    """The hits of a config on a sample, in config order; ``blocked`` if one would block."""

    hits: tuple[GuardrailHit, ...]

    @property
    def blocked(self) -> bool:
        return any(h.blocks for h in self.hits)


def guardrail_examples() -> tuple[GuardrailPreset, ...]:
    """The presets, in display order."""
    return PRESETS


def dry_run_guardrails(
    registry: CapabilityRegistry,
    config: Mapping[str, Any],
    stage: Stage,
    text: str,
    tool_name: str | None = None,
) -> DryRun:
    """Evaluate ``config`` on ``text`` as stage ``stage`` would (a ``tool_use`` text is the
    call's serialized arguments, ``tool_name`` its tool); a config that could not be saved is a
    422 naming the failing check (``config.checks.<index>...``)."""
    check_config(registry.get(GUARDRAILS), dict(config), "config")
    policy = parse_policy(config)
    return DryRun(tuple(evaluate(policy, stage, text, tool_name)))
