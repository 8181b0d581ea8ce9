"""The gallery of ``guardrails`` presets (``GET /v1/capabilities/guardrails/examples``).

Each preset's ``config`` is a whole ``guardrails`` config, adopted by copying it into an agent's
capability config (and tuned there: more words, ``action: "log"`` first, ``mode: "advisory"``).
All run in-process (``data_egress: "none"``). The presets are parsed by the tests like any
config, so one that stops parsing fails them.
"""

from __future__ import annotations

from dataclasses import dataclass

from everloop.capabilities.guardrails import parse_policy
from everloop.domain.messages import JsonObject, JsonValue


@dataclass(frozen=True, slots=True)
class GuardrailPreset:
    name: str
    display_name: str
    description: str
    tags: tuple[str, ...]
    config: JsonObject

    @property
    def check_types(self) -> list[str]:
        """The distinct rule types of its checks, in first-use order."""
        return list(dict.fromkeys(c.rule_type for c in parse_policy(self.config).checks))

    @property
    def stages(self) -> list[str]:
        """The distinct stages its checks run in, in first-use order."""
        found: dict[str, None] = {}
        for check in parse_policy(self.config).checks:
            found.update((s, None) for s in sorted(check.stages))
        return list(found)


def _checks(*checks: JsonObject) -> JsonObject:
    return {"mode": "enforce", "checks": list[JsonValue](checks)}


PRESETS: tuple[GuardrailPreset, ...] = (
    GuardrailPreset(
        name="profanity",
        display_name="Profanity Filter",
        description=(
            "Replaces an answer that swears with a polite refusal. A short starter list: add "
            "the words your audience finds offensive, and start with action log to see what "
            "it would catch."
        ),
        tags=("content", "brand-safety"),
        config=_checks(
            {
                "id": "profanity",
                "type": "blocklist",
                "words": ["damn", "darn", "shit", "fuck", "bastard", "crap", "bollocks"],
                "stages": ["output"],
                "action": "block",
                "replacement": "Sorry, I can't phrase it that way. Let me try again politely.",
            }
        ),
    ),
    GuardrailPreset(
        name="secret-detection",
        display_name="Secret & Credential Detection",
        description=(
            "Stops API keys, tokens and private keys from leaving in an answer or reaching the "
            "model from a tool result (AWS, GitHub, OpenAI/Anthropic-style, Slack tokens, PEM "
            "private keys)."
        ),
        tags=("security", "secrets"),
        config=_checks(
            {
                "id": "api-keys",
                "type": "regex",
                "pattern": (
                    r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|"
                    r"sk-(?:ant-)?[A-Za-z0-9_-]{20,}|xox[abpr]-[A-Za-z0-9-]{10,})"
                ),
                "stages": ["output", "tool_output"],
                "action": "block",
                "replacement": "[withheld: the text contained a credential]",
            },
            {
                "id": "private-keys",
                "type": "regex",
                "pattern": r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",
                "stages": ["output", "tool_output"],
                "action": "block",
                "replacement": "[withheld: the text contained a private key]",
            },
        ),
    ),
    GuardrailPreset(
        name="pii",
        display_name="PII: Emails and Card Numbers",
        description=(
            "Keeps email addresses and payment card numbers out of answers and tool results. "
            "Card numbers are 13 to 16 digits, optionally grouped by spaces or dashes; emails "
            "are logged only (switch to block if your agent must never repeat one)."
        ),
        tags=("privacy", "pii"),
        config=_checks(
            {
                "id": "email",
                "type": "regex",
                "pattern": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
                "stages": ["output", "tool_output"],
                "action": "log",
            },
            {
                "id": "card-number",
                "type": "regex",
                "pattern": r"\b(?:\d[ -]?){12,15}\d\b",
                "stages": ["output", "tool_output"],
                "action": "block",
                "replacement": "[withheld: the text contained a card number]",
            },
        ),
    ),
    GuardrailPreset(
        name="dangerous-tools",
        display_name="Dangerous Shell and Tool Calls",
        description=(
            "Refuses tool calls that destroy data or run fetched code: rm -rf on a root or "
            "home path, mkfs, dd to a device, curl|sh, DROP TABLE/DATABASE, chmod 777. Add your "
            "own tools' names in tools to refuse them outright."
        ),
        tags=("security", "tools"),
        config=_checks(
            {
                "id": "destructive-shell",
                "type": "tool_pattern",
                "pattern": (
                    r"(?i)\brm\s+-[a-z]*r[a-z]*f?[a-z]*\s+(?:/|~|\$HOME)|\bmkfs\b|"
                    r"\bdd\s+[^\"]*of=/dev/|(?:curl|wget)[^|\"]*\|\s*(?:ba|z)?sh\b|"
                    r"\bchmod\s+-?R?\s*777\b"
                ),
                "stages": ["tool_use"],
                "action": "block",
            },
            {
                "id": "destructive-sql",
                "type": "regex",
                "pattern": r"(?i)\b(?:drop\s+(?:table|database|schema)|truncate\s+table)\b",
                "stages": ["tool_use"],
                "action": "block",
            },
        ),
    ),
)
