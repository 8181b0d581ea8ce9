"""What a model can do: the profiles of the built-in providers' current models.

A model row stores only what an org may edit (token limits and prices, see
``services.models``); what the model itself can do (reasoning, tool calls, images in, ...)
comes from this catalogue, keyed by the wire name. A dated or suffixed wire name
(``claude-sonnet-4-5-20250929``) takes its base entry's profile; a name the catalogue does not
know gets ``unknown_profile``: text in and out, tool calls, temperature, nothing else claimed.

Release dates and token limits are as the vendors published them when this table was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Modality = Literal["text", "image", "audio", "video", "pdf"]
Vendor = Literal["openai", "anthropic", "google", "qwen", "xai", "llmsim"]


@dataclass(frozen=True, slots=True)
class CatalogueProfile:
    name: str
    family: str
    vendor: Vendor | None
    attachment: bool = False
    reasoning: bool = False
    temperature: bool = True
    tool_call: bool = True
    structured_output: bool = False
    open_weights: bool = False
    input_modalities: tuple[Modality, ...] = ("text",)
    release_date: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None

    @property
    def capabilities(self) -> list[str]:
        """Capability tags (Everruns: ``text``, ``tools``, ``vision``, ``thinking``)."""
        tags = ["text"]
        if self.tool_call:
            tags.append("tools")
        if "image" in self.input_modalities:
            tags.append("vision")
        if self.reasoning:
            tags.append("thinking")
        return tags


_OPENAI_IN: Final[tuple[Modality, ...]] = ("text", "image")
_ANTHROPIC_IN: Final[tuple[Modality, ...]] = ("text", "image", "pdf")

CATALOGUE: Final[dict[str, CatalogueProfile]] = {
    "llmsim": CatalogueProfile(
        "llmsim (simulated model)",
        "llmsim",
        "llmsim",
        temperature=False,
        release_date=None,
    ),
    "gpt-5": CatalogueProfile(
        "GPT-5",
        "gpt-5",
        "openai",
        attachment=True,
        reasoning=True,
        temperature=False,  # reasoning models take no temperature
        structured_output=True,
        input_modalities=_OPENAI_IN,
        release_date="2025-08-07",
        context_window=400_000,
        max_output_tokens=128_000,
    ),
    "gpt-5-mini": CatalogueProfile(
        "GPT-5 mini",
        "gpt-5",
        "openai",
        attachment=True,
        reasoning=True,
        temperature=False,
        structured_output=True,
        input_modalities=_OPENAI_IN,
        release_date="2025-08-07",
        context_window=400_000,
        max_output_tokens=128_000,
    ),
    "gpt-4.1-mini": CatalogueProfile(
        "GPT-4.1 mini",
        "gpt-4.1",
        "openai",
        attachment=True,
        structured_output=True,
        input_modalities=_OPENAI_IN,
        release_date="2025-04-14",
        context_window=1_047_576,
        max_output_tokens=32_768,
    ),
    "claude-sonnet-4-5": CatalogueProfile(
        "Claude Sonnet 4.5",
        "claude-sonnet",
        "anthropic",
        attachment=True,
        reasoning=True,
        input_modalities=_ANTHROPIC_IN,
        release_date="2025-09-29",
        context_window=200_000,
        max_output_tokens=64_000,
    ),
    "claude-haiku-4-5": CatalogueProfile(
        "Claude Haiku 4.5",
        "claude-haiku",
        "anthropic",
        attachment=True,
        reasoning=True,
        input_modalities=_ANTHROPIC_IN,
        release_date="2025-10-15",
        context_window=200_000,
        max_output_tokens=64_000,
    ),
    "claude-opus-4-1": CatalogueProfile(
        "Claude Opus 4.1",
        "claude-opus",
        "anthropic",
        attachment=True,
        reasoning=True,
        input_modalities=_ANTHROPIC_IN,
        release_date="2025-08-05",
        context_window=200_000,
        max_output_tokens=32_000,
    ),
}

_VENDOR_PREFIXES: Final[tuple[tuple[str, Vendor], ...]] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "google"),
    ("qwen", "qwen"),
    ("grok-", "xai"),
    ("llmsim", "llmsim"),
)
_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|-preview)$")


def profile_for(wire_model_id: str, display_name: str) -> CatalogueProfile:
    """The catalogue profile of ``wire_model_id`` (or of its base name), else
    ``unknown_profile``."""
    name = wire_model_id.lower()
    for key in sorted(CATALOGUE, key=len, reverse=True):
        if name == key or name.startswith(key + "-"):
            return CATALOGUE[key]
    return unknown_profile(wire_model_id, display_name)


def unknown_profile(wire_model_id: str, display_name: str) -> CatalogueProfile:
    """A model the catalogue does not know: its vendor guessed from the name's prefix, its
    family the name without a date or ``-latest`` suffix, and no capability claimed beyond
    text and tool calls."""
    lowered = wire_model_id.lower()
    vendor = next((v for prefix, v in _VENDOR_PREFIXES if lowered.startswith(prefix)), None)
    return CatalogueProfile(display_name, _SUFFIX.sub("", wire_model_id), vendor)
