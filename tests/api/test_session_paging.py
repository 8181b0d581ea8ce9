"""Session pages are found by keyset (seek to the row at the offset, then take the next rows):
every page must be exactly the one ``ORDER BY created_at DESC, id DESC OFFSET n LIMIT m``
gives, with ties in ``created_at``, deleted sessions between them and every filter. Some of the
sessions are subagents (of session 1): hidden unless a listing asks for them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from everloop.store.tables import sessions
from tests.api.conftest import create_agent, create_session
from tests.conftest import Api

N = 37


async def _page(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def made(api: Api) -> list[dict[str, Any]]:
    """N sessions whose created_at come in runs of equal values (ties broken by id only),
    with agents, titles, tags, statuses and pins to filter on, some subagents of session 1,
    and some deleted (a subagent among them)."""
    agent = await create_agent(api, "paged")
    out: list[dict[str, Any]] = []
    for i in range(N):
        fields: dict[str, Any] = {"title": f"Page {i} {'even' if i % 2 == 0 else 'odd'}"}
        if i % 3 == 0:
            fields["agent_id"] = agent["id"]
        fields["tags"] = ["red"] if i % 4 == 0 else ["red", "blue"] if i % 4 == 1 else []
        out.append(await create_session(api, **fields))
    async with api.services.db.write() as conn:
        for i, s in enumerate(out):
            # Runs of 1 to 5 sessions share a millisecond, the runs out of creation order.
            stamp = f"2026-01-01T00:00:{(i * 7 // 5) % 60:02d}.000Z"
            status = ("idle", "active", "started")[i % 3]
            parent = out[1]["id"] if i % 7 == 5 else None
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == s["id"])
                .values(created_at=stamp, status=status, parent_session_id=parent)
            )
            s["created_at"], s["status"], s["i"], s["parent"] = stamp, status, i, parent
    for s in out[::5]:
        assert (await api.client.put(f"/v1/sessions/{s['id']}/pin")).status_code == 204
        s["pinned"] = True
    for s in out[2::6]:
        assert (await api.client.delete(f"/v1/sessions/{s['id']}")).status_code == 204
        s["deleted"] = True
    return out


def _expected(made: list[dict[str, Any]], keep: Any, *, subagents: bool = False) -> list[str]:
    """The offset query's order, computed here: newest created_at first, ties by id; without
    subagents unless ``subagents``."""
    live = [
        s for s in made if not s.get("deleted") and keep(s) and (subagents or s["parent"] is None)
    ]
    live.sort(key=lambda s: (s["created_at"], s["id"]), reverse=True)
    return [s["id"] for s in live]


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({}, lambda s: True),
    ({"search": "EVEN"}, lambda s: s["i"] % 2 == 0),
    ({"tags": ["red"]}, lambda s: s["i"] % 4 in (0, 1)),
    ({"tags": ["red", "blue"]}, lambda s: s["i"] % 4 == 1),
    ({"status": "idle"}, lambda s: s["i"] % 3 == 0),
    ({"pinned": "true"}, lambda s: s.get("pinned", False)),
    ({"pinned": "false"}, lambda s: not s.get("pinned", False)),
    ({"status": "active", "search": "odd"}, lambda s: s["i"] % 3 == 1 and s["i"] % 2 == 1),
    ({"include_subagents": "true"}, lambda s: True),
    ({"include_subagents": "true", "search": "odd"}, lambda s: s["i"] % 2 == 1),
    ({"include_subagents": "false"}, lambda s: True),
]


async def test_every_page_matches_the_offset_order(api: Api, made: list[dict[str, Any]]) -> None:
    expected = _expected(made, lambda s: True)
    assert len(expected) < N  # some were deleted
    for limit in (1, 2, 5, 50):
        for offset in range(len(expected) + 2):
            page = await _page(api, offset=offset, limit=limit)
            assert [s["id"] for s in page["data"]] == expected[offset : offset + limit], (
                offset,
                limit,
            )
            assert page["total"] == len(expected)


@pytest.mark.parametrize(("params", "keep"), FILTERS)
async def test_filtered_pages_match_the_offset_order(
    api: Api, made: list[dict[str, Any]], params: dict[str, Any], keep: Any
) -> None:
    expected = _expected(made, keep, subagents=params.get("include_subagents") == "true")
    assert expected  # every filter selects something
    for limit in (1, 3):
        for offset in range(len(expected) + 1):
            page = await _page(api, offset=offset, limit=limit, **params)
            assert [s["id"] for s in page["data"]] == expected[offset : offset + limit], (
                params,
                offset,
                limit,
            )
            assert page["total"] == len(expected)


async def test_filter_by_agent_pages(api: Api, made: list[dict[str, Any]]) -> None:
    agent_id = made[0]["agent_id"]
    expected = _expected(made, lambda s: s["agent_id"] == agent_id)
    pages = [
        [s["id"] for s in (await _page(api, agent_id=agent_id, offset=o, limit=2))["data"]]
        for o in range(0, len(expected) + 2, 2)
    ]
    assert [i for page in pages for i in page] == expected


async def test_the_children_of_a_session_page_by_parent(
    api: Api, made: list[dict[str, Any]]
) -> None:
    parent = made[1]["id"]
    expected = _expected(made, lambda s: s["parent"] == parent, subagents=True)
    assert len(expected) == 4  # five children, one deleted
    for params in ({}, {"include_subagents": "false"}, {"include_subagents": "true"}):
        for limit in (1, 3):
            for offset in range(len(expected) + 1):
                page = await _page(
                    api, parent_session_id=parent, offset=offset, limit=limit, **params
                )
                assert [s["id"] for s in page["data"]] == expected[offset : offset + limit]
                assert page["total"] == len(expected)
    # Stats count every live session, subagents too.
    stats = (await api.client.get("/v1/sessions/stats")).json()
    assert stats["total"] == len(_expected(made, lambda s: True, subagents=True))


async def test_the_pinned_flag_is_the_callers_on_every_page(
    api: Api, made: list[dict[str, Any]]
) -> None:
    pinned = {s["id"] for s in made if s.get("pinned") and not s.get("deleted")}
    seen = {}
    for offset in range(0, N, 4):
        for s in (await _page(api, offset=offset, limit=4, include_subagents="true"))["data"]:
            seen[s["id"]] = s["is_pinned"]
    assert {i for i, flag in seen.items() if flag} == pinned
