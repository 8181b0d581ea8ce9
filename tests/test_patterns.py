"""Untrusted regexes (RE2) and grep's whole-file filter, which must never lose a line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from everloop.errors import InvalidInput
from everloop.patterns import compile_line_filter, compile_untrusted
from everloop.store.workspace_files import _LinePattern

PATTERNS = [
    "^a",
    "a$",
    "^$",
    "^a*$",
    r"\bab\b",
    r"b\B",
    r"\B",
    "(?i)A+$",
    r"a\z",
    r"\Aa",
    "(?-m)^a",
    "(?i-m:b$)",
    r"a\s*b",
    "[^a]$",
    "a|^b",
    "(a+)+$",
    "x*",
]
TEXT = st.lists(st.text(alphabet="ab x\n\r\x0b\u2028", max_size=12), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), text=TEXT)
def test_the_whole_file_filter_finds_every_line_a_line_by_line_search_finds(
    pattern: str, text: str
) -> None:
    regex = compile_untrusted(pattern, field="pattern")
    expected = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if regex.search(line)
    ]
    assert _LinePattern.compile(pattern).matching_lines(text.encode(), 10_000) == expected


@pytest.mark.parametrize("pattern", [r"\Aa", r"a\z", "(?-m)^a", "(?is-m:a)"])
def test_whole_text_anchors_get_no_filter(pattern: str) -> None:
    assert compile_line_filter(pattern) is None
    assert compile_line_filter("a" * 1000) is None  # "(?m)" would take it over the limit


def test_case_folding_and_limits() -> None:
    assert compile_untrusted("HELLO", field="when", ignore_case=True).search("say hello")
    assert not compile_untrusted("HELLO", field="when").search("say hello")
    with pytest.raises(InvalidInput) as too_long:
        compile_untrusted("a" * 1001, field="pattern")
    assert too_long.value.field == "pattern" and too_long.value.code == "invalid_pattern"
    with pytest.raises(InvalidInput, match="repetition"):
        compile_untrusted("(a{1000}){1000}", field="pattern")
    with pytest.raises(InvalidInput, match="too large"):  # over RE2's memory budget
        compile_untrusted(r"\pL{1000}", field="pattern")
