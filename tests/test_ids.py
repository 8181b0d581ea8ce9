from __future__ import annotations

import pytest

from everloop import ids
from everloop.errors import InvalidInput


def test_ids_made_in_one_burst_sort_in_creation_order() -> None:
    # Rows made in the same millisecond are ordered by id: it must be monotonic.
    made = [ids.new_id("session") for _ in range(5000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_new_ids_are_well_formed() -> None:
    for prefix in ("session", "agent", "message"):
        value = ids.new_id(prefix)  # type: ignore[arg-type]
        assert ids.is_valid(prefix, value)  # type: ignore[arg-type]
    assert ids.new_id("session")[len("session_") :][12] == "7"  # UUID version nibble


@pytest.mark.parametrize(
    "value", ["session_", "session_ABC", "agent_" + "0" * 32, "session_" + "0" * 31, "x"]
)
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ids.parse("session", value)
    assert caught.value.code == "invalid_id"
    assert caught.value.field == "session_id"
