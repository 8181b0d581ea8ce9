"""The data of a person in the loop: question sets, answers, and the approval policy."""

from __future__ import annotations

import pytest

from everloop.domain.human_input import (
    ApprovalPolicy,
    BadQuestions,
    check_answers,
    normalize_questions,
)
from everloop.errors import InvalidInput

QUESTIONS = normalize_questions(
    {
        "questions": [
            {"question": "Colour?", "choices": ["red", "blue"], "multiple": True},
            {"id": "size", "question": "Size?", "choices": ["S", "M"], "allow_other": True},
            {"question": "Name?"},
        ]
    }
)


def test_questions_get_ids_and_defaults() -> None:
    assert [q["id"] for q in QUESTIONS] == ["q1", "size", "q3"]
    assert QUESTIONS[2] == {
        "id": "q3",
        "question": "Name?",
        "choices": None,
        "multiple": False,
        "allow_other": False,
    }


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"questions": []},
        {"questions": [{"question": ""}]},
        {"questions": [{"id": "a", "question": "x"}, {"id": "a", "question": "y"}]},
        {"questions": [{"question": "x", "choices": []}]},
    ],
)
def test_bad_question_sets_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(BadQuestions):
        normalize_questions(arguments)


def test_answers_are_checked_against_the_questions() -> None:
    answers = [
        {"question_id": "q1", "answer": ["red", "blue"]},
        {"question_id": "size", "answer": "XL"},
        {"question_id": "q3", "answer": "Bob"},
    ]
    checked = check_answers(QUESTIONS, answers)
    assert [a["answer"] for a in checked] == [["red", "blue"], "XL", "Bob"]
    for bad, field in [
        ([{"question_id": "nope", "answer": "x"}], "answers[0].question_id"),
        ([{**answers[0], "answer": ["green"]}, *answers[1:]], "answers[0].answer"),
        ([answers[0], answers[1], {"question_id": "q3", "answer": ["a"]}], "answers[2].answer"),
        ([answers[0], answers[1], {"question_id": "q3", "answer": " "}], "answers[2].answer"),
        (answers[:2], "answers"),
        ([answers[0], answers[0]], "answers[1].question_id"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            check_answers(QUESTIONS, bad)
        assert refused.value.field == field


def test_the_approval_policy() -> None:
    policy = ApprovalPolicy.from_config({"tools": ["kv_set"], "patterns": ["mcp_bill*"]})
    assert policy.requires("kv_set", "low")
    assert policy.requires("mcp_billing__refund", None)
    assert not policy.requires("kv_get", "high")
    by_risk = ApprovalPolicy.from_config({"risk": "medium"})
    assert by_risk.requires("web_fetch", "high") and by_risk.requires("sql_query", "medium")
    assert not by_risk.requires("add", "low")
    assert ApprovalPolicy.from_config(None).requires("anything", None)
    assert ApprovalPolicy.from_config({"risk": "extreme"}).requires("add", "low")  # fail closed
    assert ApprovalPolicy.from_config({"timeout_seconds": 5, "tools": ["a"]}).timeout_seconds == 5
