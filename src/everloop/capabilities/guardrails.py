"""Capability ``guardrails``: checks that block (or only log) what an agent says or does.

Its config (the Everruns ``GuardrailsConfig``) is a list of ``checks`` and a ``mode``. A check
has a rule ``type``, the ``stages`` it runs in, an ``action`` and an optional ``replacement``:

- ``regex``: an RE2 ``pattern`` (linear time whatever a tenant writes: ``everloop.patterns``);
- ``blocklist``: ``words``, matched case-insensitively as whole words where a word starts or
  ends with a letter or digit;
- ``tool_pattern`` (stage ``tool_use`` only): ``tools``, glob patterns of tool names, and/or a
  ``pattern`` (RE2) over the call's arguments as canonical JSON.

Stages: ``output`` (the model's answer, checked as it streams: ``engine.guardrails``),
``tool_use`` (a call's arguments, before it runs: refused with an error the model reads) and
``tool_output`` (a server-side result, replaced before the model sees it: the capability's
``result_filter``). ``mode: "advisory"`` turns every ``block`` into ``log``: the hits are
recorded (``guardrail.triggered``) and nothing is stopped, to audit a config before enforcing it.

This module is pure: parsing a config into a :class:`GuardrailPolicy` and evaluating it against a
text. The engine decides when; the API's dry run calls :func:`evaluate` directly.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal, get_args

from everloop.capabilities.base import Capability, ToolContext
from everloop.domain.messages import JsonObject, JsonValue, ToolResultPart, json_text
from everloop.errors import InvalidInput
from everloop.patterns import Regex, compile_untrusted

GUARDRAILS: Final = "guardrails"
Stage = Literal["output", "tool_use", "tool_output"]
RuleType = Literal["regex", "blocklist", "tool_pattern"]
Action = Literal["block", "log"]
Mode = Literal["enforce", "advisory"]
STAGES: Final[tuple[Stage, ...]] = get_args(Stage)
RULE_TYPES: Final[tuple[RuleType, ...]] = get_args(RuleType)
EXCERPT_CHARS: Final = 200
DEFAULT_REPLACEMENT: Final = "[This response was withheld by a guardrail.]"
DEFAULT_TOOL_OUTPUT_REPLACEMENT: Final = "[This tool output was withheld by a guardrail.]"

_CHECK_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 100},
        "type": {"enum": list[JsonValue](RULE_TYPES)},
        "stages": {
            "type": "array",
            "items": {"enum": list[JsonValue](STAGES)},
            "minItems": 1,
            "uniqueItems": True,
            "description": "Default: output (tool_use for tool_pattern).",
        },
        "action": {"enum": ["block", "log"], "description": "Default: block."},
        "replacement": {"type": "string", "minLength": 1, "maxLength": 2000},
        "pattern": {"type": "string", "minLength": 1, "maxLength": 1000},
        "ignore_case": {"type": "boolean"},
        "words": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "minItems": 1,
            "maxItems": 1000,
        },
        "tools": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "minItems": 1,
            "maxItems": 100,
        },
        "description": {"type": "string", "maxLength": 1000},
    },
    "required": ["type"],
    "additionalProperties": False,
}

CONFIG_SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "mode": {
            "enum": ["enforce", "advisory"],
            "description": "advisory: every block is logged instead (default enforce).",
        },
        "checks": {"type": "array", "items": _CHECK_SCHEMA, "maxItems": 100},
    },
    "required": ["checks"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class GuardrailCheck:
    """One parsed check. ``regex`` finds what it blocks in a text (a regex, or a blocklist's
    words as one); ``tools`` are a ``tool_pattern``'s name globs, compiled."""

    index: int
    check_id: str
    rule_type: RuleType
    stages: frozenset[Stage]
    action: Action
    replacement: str | None
    regex: Regex | None
    tools: re.Pattern[str] | None
    longest: int | None  # a blocklist's longest word: no match is longer

    @property
    def reason_code(self) -> str:
        return f"guardrail.{self.rule_type}"


@dataclass(frozen=True, slots=True)
class GuardrailHit:
    """A check that matched: in which ``stage``, its effective ``action`` (after the mode),
    and a bounded ``excerpt`` of what it matched."""

    check: GuardrailCheck
    stage: Stage
    action: Action
    excerpt: str

    @property
    def blocks(self) -> bool:
        return self.action == "block"


@dataclass(frozen=True, slots=True)
class GuardrailPolicy:
    """A parsed config: its checks, in config order, and its mode."""

    checks: tuple[GuardrailCheck, ...]
    mode: Mode = "enforce"

    def action_of(self, check: GuardrailCheck) -> Action:
        return "log" if self.mode == "advisory" else check.action

    def for_stage(self, stage: Stage) -> tuple[GuardrailCheck, ...]:
        return tuple(c for c in self.checks if stage in c.stages)


def parse_policy(config: Mapping[str, Any]) -> GuardrailPolicy:
    """The policy of a config its schema accepted; ``InvalidInput`` naming the failing check
    (``checks.<index>.<field>``) for what the schema cannot say."""
    raw_checks = config.get("checks") or []
    checks: list[GuardrailCheck] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_checks):
        check = _parse_check(index, raw)
        if check.check_id in seen:
            raise InvalidInput(
                f"check {index}: the id '{check.check_id}' is used by an earlier check",
                field=f"checks.{index}.id",
            )
        seen.add(check.check_id)
        checks.append(check)
    mode: Mode = "advisory" if config.get("mode") == "advisory" else "enforce"
    return GuardrailPolicy(tuple(checks), mode)


@lru_cache(maxsize=256)
def _cached_policy(canonical: str) -> GuardrailPolicy:
    return parse_policy(json.loads(canonical))


def policy_of(config: Mapping[str, Any] | None) -> GuardrailPolicy | None:
    """The policy of an active capability's stored config (parsed once per distinct config);
    None when it has no checks, or no longer parses (a stored config is checked on write)."""
    if not config or not config.get("checks"):
        return None
    try:
        return _cached_policy(json.dumps(config, sort_keys=True))
    except (InvalidInput, TypeError, AttributeError):
        return None


def check_config(config: Mapping[str, Any]) -> None:
    """The capability's ``config_check``: a config that does not parse is refused on write."""
    parse_policy(config)


def _parse_check(index: int, raw: Mapping[str, Any]) -> GuardrailCheck:
    where = f"checks.{index}"
    rule_type: RuleType = raw["type"]
    default_stages: list[Stage] = ["tool_use"] if rule_type == "tool_pattern" else ["output"]
    stages = frozenset[Stage](raw.get("stages") or default_stages)
    regex: Regex | None = None
    tools: re.Pattern[str] | None = None
    longest: int | None = None
    pattern = raw.get("pattern")
    ignore_case = bool(raw.get("ignore_case", False))
    if rule_type == "regex":
        if not pattern:
            raise InvalidInput(f"check {index}: a regex check needs a pattern", field=where)
        regex = compile_untrusted(pattern, field=f"{where}.pattern", ignore_case=ignore_case)
    elif rule_type == "blocklist":
        words = [w for w in raw.get("words") or [] if w.strip()]
        if not words:
            raise InvalidInput(f"check {index}: a blocklist needs words", field=f"{where}.words")
        regex = compile_untrusted(_words_pattern(words), field=f"{where}.words", ignore_case=True)
        longest = max(len(w) for w in words)
    else:
        if stages != {"tool_use"}:
            raise InvalidInput(
                f"check {index}: a tool_pattern check runs in the tool_use stage only",
                field=f"{where}.stages",
            )
        names = raw.get("tools")
        if not names and not pattern:
            raise InvalidInput(
                f"check {index}: a tool_pattern check needs tools or a pattern", field=where
            )
        if names:
            tools = re.compile("|".join(f"(?:{fnmatch.translate(n)})" for n in names))
        if pattern:
            regex = compile_untrusted(pattern, field=f"{where}.pattern", ignore_case=ignore_case)
    return GuardrailCheck(
        index=index,
        check_id=raw.get("id") or f"{rule_type}#{index}",
        rule_type=rule_type,
        stages=stages,
        action="log" if raw.get("action") == "log" else "block",
        replacement=raw.get("replacement"),
        regex=regex,
        tools=tools,
        longest=longest,
    )


def _words_pattern(words: list[str]) -> str:
    """One RE2 alternation of ``words``, each a whole word where its edge is a word character
    (``\\b`` is ASCII in RE2: a word ending in ``*`` or in Cyrillic is matched as a substring)."""

    def one(word: str) -> str:
        escaped = re.escape(word.strip())
        start = r"\b" if _is_word_char(word.strip()[0]) else ""
        end = r"\b" if _is_word_char(word.strip()[-1]) else ""
        return f"{start}{escaped}{end}"

    return "|".join(one(w) for w in sorted(words, key=len, reverse=True))


def _is_word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def find(check: GuardrailCheck, text: str, tool_name: str | None = None) -> str | None:
    """What ``check`` matches in ``text`` (for a ``tool_pattern``, the call's arguments and
    ``tool_name``), bounded to ``EXCERPT_CHARS``; None if nothing."""
    if check.tools is not None:
        if tool_name is None or not check.tools.fullmatch(tool_name):
            return None
        if check.regex is None:
            return tool_name[:EXCERPT_CHARS]
    assert check.regex is not None
    match = check.regex.search(text)
    if match is None:
        return None
    return match.group()[:EXCERPT_CHARS]


def evaluate(
    policy: GuardrailPolicy, stage: Stage, text: str, tool_name: str | None = None
) -> list[GuardrailHit]:
    """Every check of ``stage`` that matches ``text``, in config order."""
    hits: list[GuardrailHit] = []
    for check in policy.for_stage(stage):
        excerpt = find(check, text, tool_name)
        if excerpt is not None:
            hits.append(GuardrailHit(check, stage, policy.action_of(check), excerpt))
    return hits


def first_block(hits: list[GuardrailHit]) -> GuardrailHit | None:
    return next((h for h in hits if h.blocks), None)


def arguments_text(arguments: JsonObject) -> str:
    """A call's arguments as the ``tool_use`` stage reads them: canonical JSON."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def refusal_message(hit: GuardrailHit, tool_name: str) -> str:
    """What the model reads instead of a blocked call's result."""
    return (
        f"not run: a guardrail ({hit.check.check_id}, {hit.check.reason_code}) blocks this "
        f"call of {tool_name}. Do not retry it with the same arguments; answer without it or "
        "take another approach."
    )


async def replace_blocked_output(
    result: ToolResultPart, config: Mapping[str, Any], context: ToolContext
) -> ToolResultPart:
    """The ``result_filter``: a result a ``tool_output`` check blocks becomes the check's
    replacement (the model never sees it); the engine records the hits (``engine.guardrails``)."""
    policy = policy_of(config)
    if policy is None or not policy.for_stage("tool_output"):
        return result
    hit = first_block(evaluate(policy, "tool_output", json_text(result.result)))
    if hit is None:
        return result
    replacement = hit.check.replacement or DEFAULT_TOOL_OUTPUT_REPLACEMENT
    return ToolResultPart(result.tool_call_id, result.name, replacement)


def build_guardrails_capability() -> Capability:
    return Capability(
        id=GUARDRAILS,
        name="Guardrails",
        description=(
            "Checks what the agent says and does: regex, blocklist and tool-pattern checks on "
            "its streamed answer (output), its tool calls before they run (tool_use) and tool "
            "results before the model reads them (tool_output). A hit blocks (the answer is "
            "replaced, the call refused, the result withheld) or only logs; every hit is a "
            "guardrail.triggered event. mode advisory logs instead of blocking. Presets: GET "
            "/v1/capabilities/guardrails/examples; try a config: POST "
            "/v1/capabilities/guardrails/dry-run."
        ),
        category="safety",
        features=("guardrails",),
        config_schema=CONFIG_SCHEMA,
        result_filter=replace_blocked_output,
        config_check=check_config,
    )
