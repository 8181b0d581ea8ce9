"""The pure half of health checks: the judge's reply read robustly, the deterministic checks,
and the summary's numbers."""

from __future__ import annotations

import pytest

from everloop.domain.health_checks import (
    HealthCheckCase,
    HealthCheckConfig,
    JudgeUnparseable,
    JudgeVerdict,
    TurnOutcome,
    check_deterministically,
    parse_judge_reply,
    score_case,
    summarize,
)

CASE = HealthCheckCase("c", "hi?", "Greets.", max_turns=2)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 1, "pass": true, "reason": "ok"}', JudgeVerdict(1.0, True, "ok")),
        ('Sure.\n```json\n{"score": 0.25, "pass": false}\n```', JudgeVerdict(0.25, False, "")),
        # The first object that is a verdict wins; others around it are skipped.
        ('{"note": 1} then {"score": 0.5, "pass": true, "reason": 3}', JudgeVerdict(0.5, True, "")),
    ],
)
def test_a_verdict_is_found(reply: str, expected: JudgeVerdict) -> None:
    assert parse_judge_reply(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "Looks fine.",
        '{"score": 1.5, "pass": true}',  # out of range
        '{"score": true, "pass": true}',  # a bool is no score
        '{"score": 0.5, "pass": "yes"}',
        '{"score": 0.5, "pass": true',  # cut off
        "",
    ],
)
def test_no_verdict_is_unparseable(reply: str) -> None:
    found = parse_judge_reply(reply)
    assert isinstance(found, JudgeUnparseable)
    assert "not a JSON object" in found.reason


def outcome(answer: str = "Hello!", iterations: int = 1) -> TurnOutcome:
    return TurnOutcome("completed", answer, iterations, 10, 5, 7, error=None)


def test_deterministic_checks() -> None:
    assert check_deterministically(CASE, outcome()).passed
    empty = check_deterministically(CASE, outcome(answer="  "))
    assert not empty.passed and empty.error is None and "empty" in empty.reason
    over = check_deterministically(CASE, outcome(iterations=3))
    assert not over.passed and over.error is None and "max_turns (2)" in over.reason
    failed = TurnOutcome("failed", "I stopped", 2, 1, 1, 1, error="reached max_iterations (2)")
    verdict = check_deterministically(CASE, failed)
    assert verdict.error == "timed out: reached max_iterations (2)"


def test_the_summary() -> None:
    good = check_deterministically(CASE, outcome())
    passed = score_case(CASE, outcome(), "s1", good, JudgeVerdict(0.9, True, "ok"), (3, 2))
    low = score_case(CASE, outcome(), "s2", good, JudgeVerdict(0.6, True, "meh"))
    failed_turn = TurnOutcome("failed", "", 2, 4, 4, 9, error="boom")
    errored = score_case(CASE, failed_turn, "s3", check_deterministically(CASE, failed_turn), None)
    assert passed.passed and (passed.input_tokens, passed.output_tokens) == (13, 7)
    assert not low.passed and "below 0.7" in low.judge_reason
    assert errored.error == "did not complete: boom" and errored.score == 0.0
    summary = summarize([passed, low, errored])
    assert (summary.total, summary.passed, summary.failed, summary.errored) == (3, 1, 1, 1)
    assert summary.pass_rate == pytest.approx(1 / 3, abs=1e-6)
    assert summary.avg_score == pytest.approx(0.5, abs=1e-6)
    assert summary.avg_turns == pytest.approx(4 / 3, abs=1e-6)
    assert (summary.total_input_tokens, summary.total_output_tokens) == (13 + 10 + 4, 7 + 5 + 4)
    assert summarize([]).pass_rate == 0.0


def test_the_config_of_an_agents_capabilities() -> None:
    capabilities = [
        {"ref": "test_math"},
        {
            "ref": "health_check",
            "config": {
                "cases": [{"name": "a", "user_message": "m", "rubric": "r", "max_turns": 3}],
                "pass_threshold": 0.5,
                "judge_model_id": "model_x",
            },
        },
    ]
    config = HealthCheckConfig.of_capabilities(capabilities)
    assert config == HealthCheckConfig((HealthCheckCase("a", "m", "r", 3, 0.5),), "model_x")
    assert HealthCheckConfig.of_capabilities([{"ref": "test_math"}]) is None
