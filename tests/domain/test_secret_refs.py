"""Placeholders and redaction of secret values (``domain.secret_refs``), without a server."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from everloop.domain.secret_refs import (
    Redactor,
    StreamRedactor,
    map_strings,
    referenced_names,
    substitute,
)

SECRETS = {"API_KEY": "sk-abc123-secret", "TOKEN": "tok-9f8e7d", "PIN": "1234"}


def test_placeholders_resolve_everywhere_in_a_value() -> None:
    value = {"url": "https://x/?k={{secret:API_KEY}}", "h": ["Bearer {{secret:TOKEN}}", 3]}
    assert referenced_names(value) == {"API_KEY", "TOKEN"}
    assert substitute(value, SECRETS) == {
        "url": "https://x/?k=sk-abc123-secret",
        "h": ["Bearer tok-9f8e7d", 3],
    }
    assert referenced_names({"text": "{{secret:}} {{ secret:X }}"}) == set()


def test_values_are_redacted_in_text_and_turned_into_placeholders_in_arguments() -> None:
    redactor = Redactor(SECRETS)
    assert redactor.text("a sk-abc123-secret b tok-9f8e7d") == (
        "a [redacted:API_KEY] b [redacted:TOKEN]"
    )
    assert map_strings({"q": "k=sk-abc123-secret"}, redactor.references) == {
        "q": "k={{secret:API_KEY}}"
    }
    # Too short to redact without mangling ordinary text.
    assert redactor.text("PIN 1234") == "PIN 1234"
    assert not Redactor({"PIN": "1234"})


# Text around the values has no "-" (every value has one): any "-" shown came from a value.
_AROUND = st.text(alphabet=st.characters(blacklist_characters="-"), max_size=30)


@given(
    prefix=_AROUND,
    middle=_AROUND,
    cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=12),
)
def test_a_value_split_across_deltas_never_streams_out(
    prefix: str, middle: str, cuts: list[int]
) -> None:
    text = f"{prefix}sk-abc123-secret{middle}tok-9f8e7dsk-abc123-secret"
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    stream = StreamRedactor(Redactor(SECRETS))
    pieces = [stream.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    pieces.append(stream.finish())
    for end in range(1, len(pieces) + 1):  # at no moment has any part of a value gone out
        shown = "".join(pieces[:end])
        assert "-" not in shown
    assert "".join(pieces) == stream.emitted == Redactor(SECRETS).text(text)
