"""When schedules fire: cron on a zone's wall clock across clock changes, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from everloop.domain.schedules import (
    last_fire,
    next_fire,
    parse_cron,
    parse_instant,
    parse_zone,
    shortest_interval,
)
from everloop.errors import InvalidInput

NEW_YORK = parse_zone("America/New_York")
VILNIUS = parse_zone("Europe/Vilnius")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def fires(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    cron, found, moment = parse_cron(expression), [], after
    for _ in range(count):
        following = next_fire(cron, parse_zone(zone), moment)
        assert following is not None
        found.append(following)
        moment = following
    return found


def test_daily_fire_keeps_its_local_time_across_the_spring_change_in_new_york() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT: 09:00 local is 14:00Z before, 13:00Z after.
    assert fires("0 9 * * *", "America/New_York", utc(2026, 3, 6), 3) == [
        utc(2026, 3, 6, 14),
        utc(2026, 3, 7, 14),
        utc(2026, 3, 8, 13),
    ]


def test_daily_fire_keeps_its_local_time_across_the_autumn_change_in_vilnius() -> None:
    # 2026-10-25 04:00 EEST -> 03:00 EET: 09:00 local is 06:00Z before, 07:00Z after.
    assert fires("0 9 * * *", "Europe/Vilnius", utc(2026, 10, 24), 2) == [
        utc(2026, 10, 24, 6),
        utc(2026, 10, 25, 7),
    ]


def test_a_skipped_local_time_fires_past_the_gap() -> None:
    # 02:30 does not exist in New York on 2026-03-08: it fires at 03:30 EDT (07:30Z).
    cron = parse_cron("30 2 * * *")
    assert next_fire(cron, NEW_YORK, utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 7, 30)
    assert next_fire(cron, NEW_YORK, utc(2026, 3, 8, 7, 30)) == utc(2026, 3, 9, 6, 30)
    # Vilnius skips 03:00-04:00 on 2026-03-29: 03:30 fires at 04:30 EEST (01:30Z).
    assert next_fire(parse_cron("30 3 * * *"), VILNIUS, utc(2026, 3, 28, 12)) == utc(
        2026, 3, 29, 1, 30
    )


def test_a_repeated_local_time_fires_once() -> None:
    # 01:30 happens twice in New York on 2026-11-01 (05:30Z EDT, 06:30Z EST): the first only.
    cron = parse_cron("30 1 * * *")
    assert next_fire(cron, NEW_YORK, utc(2026, 10, 31, 12)) == utc(2026, 11, 1, 5, 30)
    assert next_fire(cron, NEW_YORK, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 2, 6, 30)
    # Vilnius repeats 03:00-04:00 on 2026-10-25 (00:xxZ EEST, 01:xxZ EET).
    assert fires("15 3 * * *", "Europe/Vilnius", utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 15),
        utc(2026, 10, 26, 1, 15),
    ]


def test_hourly_fires_never_go_backwards_through_a_change() -> None:
    found = fires("0 * * * *", "America/New_York", utc(2026, 11, 1, 3), 6)
    assert found == sorted(set(found))
    found = fires("*/20 * * * *", "America/New_York", utc(2026, 3, 8, 5), 12)
    assert found == sorted(set(found))


def test_last_fire_is_the_latest_at_or_before() -> None:
    cron = parse_cron("0 9 * * *")
    assert last_fire(cron, VILNIUS, utc(2026, 10, 26, 12)) == utc(2026, 10, 26, 7)
    assert last_fire(cron, VILNIUS, utc(2026, 10, 26, 7)) == utc(2026, 10, 26, 7)
    assert last_fire(cron, VILNIUS, utc(2026, 10, 26, 6, 59)) == utc(2026, 10, 25, 7)


def test_seconds_field_and_shortest_interval() -> None:
    start = utc(2026, 1, 1)
    assert fires("*/10 * * * * *", "UTC", start, 2) == [
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 20),
    ]
    assert shortest_interval(parse_cron("*/5 * * * *"), VILNIUS, start) == 300
    assert shortest_interval(parse_cron("0,1 9 * * *"), VILNIUS, start) == 60
    assert shortest_interval(parse_cron("* * * * * *"), VILNIUS, start) == 1
    # A year that has passed: no fire left.
    assert next_fire(parse_cron("0 0 0 1 1 * 2020"), VILNIUS, start) is None


@pytest.mark.parametrize(
    "expression",
    ["", "1 2 3", "61 * * * *", "* * * * * * * *", "0 0 30 2 *", "x" * 201, "0 0 * * mon-xyz"],
)
def test_a_bad_cron_expression_is_refused_naming_the_field(expression: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_cron(expression, field="cron_expression")
    assert refused.value.field == "cron_expression"


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", "/UTC", "x" * 65])
def test_an_unknown_zone_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_zone(name)
    assert refused.value.field == "timezone"


def test_instants_need_an_offset() -> None:
    assert parse_instant("2026-12-24T09:00:00+02:00", field="at") == utc(2026, 12, 24, 7)
    assert parse_instant("2026-12-24T09:00:00Z", field="at") == utc(2026, 12, 24, 9)
    for bad in ("2026-12-24T09:00:00", "tomorrow"):
        with pytest.raises(InvalidInput) as refused:
            parse_instant(bad, field="scheduled_at")
        assert refused.value.field == "scheduled_at"
