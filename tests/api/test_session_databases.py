"""REST routes of session SQL databases, with their bad inputs; deleting a session removes its
databases."""

from __future__ import annotations

from sqlalchemy import func, select

from everloop.store.tables import session_databases
from tests.api.conftest import OtherOrg, assert_error, create_session
from tests.conftest import Api


async def new_database(api: Api, session_id: str, name: str) -> dict[str, object]:
    response = await api.client.post(f"/v1/sessions/{session_id}/databases", json={"name": name})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_list_get_schema_delete(api: Api) -> None:
    sid = (await create_session(api))["id"]
    base = f"/v1/sessions/{sid}/databases"
    assert (await api.client.get(base)).json() == {"data": [], "total": 0}
    created = await new_database(api, sid, "Refund_history")
    assert created["name"] == "Refund_history"
    assert created["size_bytes"] == 4096 and created["page_count"] == 1
    await new_database(api, sid, "_a1")
    listed = (await api.client.get(base)).json()
    assert [d["name"] for d in listed["data"]] == ["Refund_history", "_a1"]
    got = (await api.client.get(f"{base}/Refund_history")).json()
    assert got == created
    schema = (await api.client.get(f"{base}/Refund_history/schema")).json()
    assert schema == {"database": "Refund_history", "tables": []}

    # A table made through the service (as the sql_execute tool does) shows in the schema.
    service = api.services.session_databases
    write = await service.execute(sid, "_a1", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    async with api.services.db.write() as conn:
        assert await service.save(conn, write)
    schema = (await api.client.get(f"{base}/_a1/schema")).json()
    (table,) = schema["tables"]
    assert table["name"] == "t" and [c["name"] for c in table["columns"]] == ["id", "v"]

    deleted = await api.client.delete(f"{base}/_a1")
    assert deleted.status_code == 204
    assert_error(await api.client.get(f"{base}/_a1"), 404, "not_found")
    assert_error(await api.client.delete(f"{base}/_a1"), 404, "not_found")


async def test_bad_names_duplicates_and_the_limit(api: Api) -> None:
    sid = (await create_session(api))["id"]
    base = f"/v1/sessions/{sid}/databases"
    for name in ("1abc", "has-dash", "a b", "x" * 65, "", "../etc", "naïve", "a;DROP"):
        assert_error(await api.client.post(base, json={"name": name}), 422)
    assert_error(await api.client.post(base, json={}), 422, field="name")
    malformed = {"content-type": "application/json"}
    assert_error(await api.client.post(base, content=b"{nope", headers=malformed), 400)
    await new_database(api, sid, "x" * 64)
    assert_error(await api.client.post(base, json={"name": "x" * 64}), 409, "conflict")
    for index in range(9):
        await new_database(api, sid, f"db{index}")
    assert_error(
        await api.client.post(base, json={"name": "one_too_many"}), 422, "database_limit_reached"
    )


async def test_unknown_sessions_and_other_orgs(api: Api, other_org: OtherOrg) -> None:
    sid = (await create_session(api))["id"]
    await new_database(api, sid, "mine")
    assert_error(await api.client.get("/v1/sessions/not-an-id/databases"), 422)
    missing = "session_0190f5c0a3b27d4e8f5a6b7c8d9e0f11"
    assert_error(await api.client.get(f"/v1/sessions/{missing}/databases"), 404)
    base = f"/v1/sessions/{sid}/databases"
    assert_error(await other_org.client.get(base), 404)
    assert_error(await other_org.client.get(f"{base}/mine"), 404)
    assert_error(await other_org.client.get(f"{base}/mine/schema"), 404)
    assert_error(await other_org.client.delete(f"{base}/mine"), 404)
    assert_error(await other_org.client.post(base, json={"name": "theirs"}), 404)
    assert [d["name"] for d in (await api.client.get(base)).json()["data"]] == ["mine"]
    assert_error(await api.client.get(f"{base}/nope"), 404)
    assert_error(await api.client.get(f"{base}/nope/schema"), 404)


async def test_deleting_the_session_deletes_its_databases(api: Api) -> None:
    sid = (await create_session(api))["id"]
    await new_database(api, sid, "one")
    await new_database(api, sid, "two")
    assert (await api.client.delete(f"/v1/sessions/{sid}")).status_code == 204
    assert_error(await api.client.get(f"/v1/sessions/{sid}/databases"), 404)
    async with api.services.db.read() as conn:
        query = select(func.count()).where(session_databases.c.session_id == sid)
        assert (await conn.execute(query)).scalar_one() == 0


async def test_a_write_computed_on_an_old_copy_is_not_saved(api: Api) -> None:
    """The SQL runs on a copy outside any transaction; saving is a compare-and-swap on the
    bytes it ran on, so of two writers racing on one database the later one writes nothing."""
    sid = (await create_session(api))["id"]
    await new_database(api, sid, "shared")
    service = api.services.session_databases
    first = await service.execute(sid, "shared", "CREATE TABLE a(x)")
    second = await service.execute(sid, "shared", "CREATE TABLE b(x)")
    async with api.services.db.write() as conn:
        assert await service.save(conn, first)
    async with api.services.db.write() as conn:
        assert not await service.save(conn, second)
    assert [t["name"] for t in await service.schema(sid, "shared")] == ["a"]
    # Deleted meanwhile: nothing to save into.
    third = await service.execute(sid, "shared", "CREATE TABLE c(x)")
    assert (await api.client.delete(f"/v1/sessions/{sid}/databases/shared")).status_code == 204
    async with api.services.db.write() as conn:
        assert not await service.save(conn, third)
    assert_error(await api.client.get(f"/v1/sessions/{sid}/databases/shared"), 404)
