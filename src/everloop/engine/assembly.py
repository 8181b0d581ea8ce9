"""Assembling a session's RuntimeAgent: the registry and blueprints as data, plus the layers a
session's configuration loads into, folded by the pure ``domain.runtime_agent.assemble``.

The runner builds every turn's settings through :class:`Assembler`; the services use the same
object for the context report, previews and validation, so nothing else re-derives config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from everloop.capabilities.base import CapabilityRegistry
from everloop.domain.blueprints import BUILT_IN_BLUEPRINTS, Blueprint
from everloop.domain.runtime_agent import (
    NO_CONTROLS,
    AssemblyError,
    CapabilityInfo,
    Controls,
    Layer,
    Layers,
    RuntimeAgent,
    ToolInfo,
    assemble,
    resolve_capabilities,
)


class SessionLayers(Protocol):
    """What a session's loaded configuration offers (``store.turns.SessionConfig``)."""

    @property
    def harness_chain(self) -> tuple[Layer, ...]: ...

    @property
    def agent_layer(self) -> Layer | None: ...

    @property
    def session_layer(self) -> Layer | None: ...

    @property
    def blueprint_id(self) -> str | None: ...

    @property
    def blueprint_config(self) -> Mapping[str, object] | None: ...


def capability_catalog(registry: CapabilityRegistry) -> dict[str, CapabilityInfo]:
    return {
        c.id: CapabilityInfo(
            id=c.id,
            dependencies=c.dependencies,
            system_prompt_addition=c.system_prompt_addition,
            tools=tuple(ToolInfo(t.name, t.description, t.parameters) for t in c.tools),
            features=c.features,
        )
        for c in registry.all()
    }


class Assembler:
    """Builds RuntimeAgents from layers, with the registered capabilities and the blueprints."""

    def __init__(
        self,
        capabilities: CapabilityRegistry,
        blueprints: Sequence[Blueprint] = BUILT_IN_BLUEPRINTS,
    ) -> None:
        self._capabilities = capabilities
        self._blueprints = {b.id: b for b in blueprints}
        self._catalog: tuple[tuple[str, ...], dict[str, CapabilityInfo]] | None = None

    @property
    def blueprints(self) -> Mapping[str, Blueprint]:
        return self._blueprints

    def blueprint(self, blueprint_id: str) -> Blueprint:
        found = self._blueprints.get(blueprint_id)
        if found is None:
            raise AssemblyError(
                f"unknown blueprint '{blueprint_id}' (GET /v1/blueprints lists them)",
                code="unknown_blueprint",
                field="blueprint_id",
            )
        return found

    def assemble(
        self,
        *,
        harnesses: Sequence[Layer] = (),
        agent: Layer | None = None,
        session: Layer | None = None,
        controls: Controls = NO_CONTROLS,
    ) -> RuntimeAgent:
        return assemble(Layers(tuple(harnesses), agent, session, controls, self.catalog()))

    def catalog(self) -> dict[str, CapabilityInfo]:
        """The registry as data, rebuilt only when the set of capabilities changes."""
        key = tuple(c.id for c in self._capabilities.all())
        if self._catalog is None or self._catalog[0] != key:
            self._catalog = (key, capability_catalog(self._capabilities))
        return self._catalog[1]

    def capability_refs(self, layers: Sequence[Layer]) -> list[str]:
        """The active capability ids of ``layers`` with their dependencies, in order; unknown
        ids and cycles are skipped, not raised (for read-time facts such as ``features``)."""
        catalog = self.catalog()
        known = [
            replace(
                layer,
                capabilities=[c for c in layer.capabilities if c.get("ref") in catalog],
            )
            for layer in layers
        ]
        try:
            return [c.ref for c in resolve_capabilities(known, catalog)]
        except AssemblyError:
            return [c["ref"] for layer in known for c in layer.capabilities]

    def for_session(self, config: SessionLayers, controls: Controls = NO_CONTROLS) -> RuntimeAgent:
        """The RuntimeAgent a turn of this session runs: from its blueprint when it has one,
        else from its harness chain and agent (version)."""
        if config.blueprint_id:
            layer = self.blueprint(config.blueprint_id).layer(config.blueprint_config)
            return self.assemble(agent=layer, session=config.session_layer, controls=controls)
        return self.assemble(
            harnesses=config.harness_chain,
            agent=config.agent_layer,
            session=config.session_layer,
            controls=controls,
        )
