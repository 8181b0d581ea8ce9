"""Agent health checks: an agent run through test cases, each scored twice.

A case is a user message, a rubric and an optional bound on the turn's model calls
(``max_turns``). It runs as a real session of the agent (``services.health_checks``); what the
turn left (``TurnOutcome``) is then scored:

- **deterministically**: the turn completed, its answer is not empty, and it stayed within its
  bound. A turn that did not complete (it hit ``max_turns``, failed, or outran the case timeout)
  *errored*: it is not judged, its score is 0.
- **by a judge model** against the rubric: asked for one JSON object ``{"score": 0..1, "pass":
  bool, "reason": "..."}``. A reply that holds no such object fails the case with that reason;
  the judge passes only with ``pass`` true and ``score`` at least the case's threshold.

Everything here is pure: the runs, the model calls and the records are the service's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["pending", "running", "completed", "failed"]
CaseStatus = Literal["pending", "running", "done"]
TurnEnd = Literal["completed", "failed", "cancelled", "sealed", "timed_out"]

HEALTH_CHECK = "health_check"
"""The capability whose config holds an agent's cases (``capabilities.health_check``)."""
DEFAULT_PASS_THRESHOLD = 0.7
TAG_PREFIX = "health_check:"
"""Sessions of a run carry the tag ``health_check:<run id>``."""


@dataclass(frozen=True, slots=True)
class HealthCheckCase:
    name: str
    user_message: str
    rubric: str
    max_turns: int | None = None
    pass_threshold: float = DEFAULT_PASS_THRESHOLD

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "user_message": self.user_message,
            "rubric": self.rubric,
            "max_turns": self.max_turns,
            "pass_threshold": self.pass_threshold,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any], default_threshold: float) -> HealthCheckCase:
        threshold = value.get("pass_threshold")
        return cls(
            name=str(value["name"]),
            user_message=str(value["user_message"]),
            rubric=str(value["rubric"]),
            max_turns=value.get("max_turns"),
            pass_threshold=float(threshold) if threshold is not None else default_threshold,
        )


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    """An agent's cases and judge, from its ``health_check`` capability's config (validated
    against the capability's schema when the agent was written)."""

    cases: tuple[HealthCheckCase, ...]
    judge_model_id: str | None = None

    @classmethod
    def of_capabilities(cls, capabilities: Sequence[Any]) -> HealthCheckConfig | None:
        """The config of the agent's ``health_check`` capability; None when it has none."""
        for capability in capabilities:
            if isinstance(capability, Mapping) and capability.get("ref") == HEALTH_CHECK:
                config = capability.get("config") or {}
                default = config.get("pass_threshold")
                threshold = float(default) if default is not None else DEFAULT_PASS_THRESHOLD
                return cls(
                    cases=tuple(
                        HealthCheckCase.from_json(case, threshold)
                        for case in config.get("cases") or []
                    ),
                    judge_model_id=config.get("judge_model_id"),
                )
        return None


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What a case's turn left: how it ended, its answer, its model calls and tokens."""

    end: TurnEnd
    answer: str
    iterations: int
    input_tokens: int
    output_tokens: int
    latency_ms: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeterministicVerdict:
    passed: bool
    reason: str
    error: str | None = None
    """Set when the turn did not complete: the case errored (it is not judged)."""


def check_deterministically(case: HealthCheckCase, outcome: TurnOutcome) -> DeterministicVerdict:
    """Completed, non-empty, within ``max_turns``."""
    bound = f"max_turns ({case.max_turns})" if case.max_turns is not None else "no turn bound"
    if outcome.end != "completed":
        what = outcome.error or f"the turn ended {outcome.end}"
        if outcome.end == "timed_out" or "max_iterations" in (outcome.error or ""):
            reason = f"timed out: {what}"
        else:
            reason = f"did not complete: {what}"
        return DeterministicVerdict(False, reason, error=reason)
    if not outcome.answer.strip():
        return DeterministicVerdict(False, "completed with an empty answer")
    if case.max_turns is not None and outcome.iterations > case.max_turns:
        return DeterministicVerdict(
            False, f"took {outcome.iterations} model calls, more than {bound}"
        )
    return DeterministicVerdict(
        True, f"completed in {outcome.iterations} model call(s), non-empty, within {bound}"
    )


JUDGE_SYSTEM_PROMPT = (
    "You grade an AI agent's answer against a rubric. Reply with exactly one JSON object and "
    'nothing else: {"score": <number from 0 to 1>, "pass": <true or false>, "reason": '
    '"<one or two sentences>"}.'
)


def judge_prompt(case: HealthCheckCase, answer: str) -> str:
    """The judge's user message: the case, the rubric and the agent's answer."""
    return (
        f"Test case: {case.name}\n\n"
        f"User message:\n{case.user_message}\n\n"
        f"Rubric:\n{case.rubric}\n\n"
        f"Agent's answer:\n{answer}\n\n"
        "Grade the answer against the rubric."
    )


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    score: float
    passed: bool
    reason: str
    kind: Literal["verdict"] = field(default="verdict", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class JudgeUnparseable:
    reason: str
    kind: Literal["unparseable"] = field(default="unparseable", init=False, repr=False)


_OBJECT_START = re.compile(r"\{")


def parse_judge_reply(text: str) -> JudgeVerdict | JudgeUnparseable:
    """The first JSON object in ``text`` (code fences and prose around it are tolerated) that
    has a numeric ``score`` in 0..1 and a boolean ``pass``."""
    decoder = json.JSONDecoder()
    for match in _OBJECT_START.finditer(text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        score, verdict = value.get("score"), value.get("pass")
        if isinstance(score, bool) or not isinstance(score, int | float):
            continue
        if not isinstance(verdict, bool) or not 0.0 <= float(score) <= 1.0:
            continue
        reason = value.get("reason")
        return JudgeVerdict(float(score), verdict, reason if isinstance(reason, str) else "")
    excerpt = " ".join(text.split())[:200]
    return JudgeUnparseable(
        f'judge reply is not a JSON object with "score" (0..1) and "pass": {excerpt!r}'
    )


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's outcome in the wire shape of ``HealthCheckCaseResult``."""

    name: str
    user_message: str
    rubric: str
    passed: bool
    score: float
    judge_reason: str
    deterministic_reason: str
    turns: int
    latency_ms: int
    input_tokens: int
    output_tokens: int
    session_id: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "user_message": self.user_message,
            "rubric": self.rubric,
            "passed": self.passed,
            "score": self.score,
            "judge_reason": self.judge_reason,
            "deterministic_reason": self.deterministic_reason,
            "turns": self.turns,
            "latency_ms": self.latency_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "session_id": self.session_id,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> CaseResult:
        error = value.get("error")
        session_id = value.get("session_id")
        return cls(
            name=str(value["name"]),
            user_message=str(value["user_message"]),
            rubric=str(value["rubric"]),
            passed=bool(value["passed"]),
            score=float(value["score"]),
            judge_reason=str(value["judge_reason"]),
            deterministic_reason=str(value["deterministic_reason"]),
            turns=int(value["turns"]),
            latency_ms=int(value["latency_ms"]),
            input_tokens=int(value.get("input_tokens") or 0),
            output_tokens=int(value.get("output_tokens") or 0),
            session_id=str(session_id) if session_id is not None else None,
            error=str(error) if error is not None else None,
        )


def score_case(
    case: HealthCheckCase,
    outcome: TurnOutcome,
    session_id: str | None,
    deterministic: DeterministicVerdict,
    judged: JudgeVerdict | JudgeUnparseable | None,
    judge_tokens: tuple[int, int] = (0, 0),
) -> CaseResult:
    """Both verdicts into one result: passed only when both pass; the score is the judge's."""
    score, judge_passed = 0.0, False
    match judged:
        case None:
            judge_reason = f"not judged: {deterministic.reason}"
        case JudgeUnparseable(reason=reason):
            judge_reason = reason
        case JudgeVerdict(score=value, passed=verdict, reason=reason):
            score = value
            judge_passed = verdict and value >= case.pass_threshold
            if verdict and not judge_passed:
                reason = f"{reason} (score {value:g} is below {case.pass_threshold:g})".strip()
            judge_reason = reason
    return CaseResult(
        name=case.name,
        user_message=case.user_message,
        rubric=case.rubric,
        passed=deterministic.passed and judge_passed,
        score=score,
        judge_reason=judge_reason,
        deterministic_reason=deterministic.reason,
        turns=outcome.iterations,
        latency_ms=outcome.latency_ms,
        input_tokens=outcome.input_tokens + judge_tokens[0],
        output_tokens=outcome.output_tokens + judge_tokens[1],
        session_id=session_id,
        error=deterministic.error,
    )


@dataclass(frozen=True, slots=True)
class Summary:
    total: int
    passed: int
    failed: int
    errored: int
    pass_rate: float
    avg_score: float
    avg_turns: float
    total_input_tokens: int
    total_output_tokens: int

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__slots__}


def summarize(results: Sequence[CaseResult]) -> Summary:
    """Counts over every case (an errored case is neither passed nor failed), averages over
    every case (an errored one scores 0), tokens summed over the cases' sessions and judges."""
    total = len(results)
    passed = sum(1 for r in results if r.passed)
    errored = sum(1 for r in results if r.error is not None)

    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 6) if values else 0.0

    return Summary(
        total=total,
        passed=passed,
        failed=total - passed - errored,
        errored=errored,
        pass_rate=mean([1.0 if r.passed else 0.0 for r in results]),
        avg_score=mean([r.score for r in results]),
        avg_turns=mean([float(r.turns) for r in results]),
        total_input_tokens=sum(r.input_tokens for r in results),
        total_output_tokens=sum(r.output_tokens for r in results),
    )
