"""``GET /v1/durable/workers`` shows host names, pids and running turns: operators only
(issue 13, item 11). Operators act for the default organization; every other org gets 404."""

from __future__ import annotations

import os
import platform

from everloop.domain.timestamps import now
from everloop.store import workers as worker_store
from tests.api.conftest import OtherOrg, add_user_to_org, assert_error
from tests.conftest import Api


async def _register_worker(api: Api) -> None:
    ts = now()
    row = worker_store.WorkerRow(
        executor_id="worker-1",
        role="worker",
        hostname=platform.node() or "host",
        pid=os.getpid(),
        application_version="everloop-1",
        started_at=ts,
        heartbeat_at=ts,
        running_turns=2,
        stopped_at=None,
        recovered_at=None,
        recovered_by=None,
    )
    async with api.services.db.write() as conn:
        await worker_store.register(conn, row)


async def test_the_operator_sees_the_workers(api: Api) -> None:
    await _register_worker(api)
    response = await api.client.get("/v1/durable/workers")
    assert response.status_code == 200, response.text
    [worker] = response.json()["data"]
    assert worker["executor_id"] == "worker-1" and worker["pid"] == os.getpid()


async def test_another_org_gets_404_and_no_host_details(api: Api, other_org: OtherOrg) -> None:
    await _register_worker(api)
    response = await other_org.client.get("/v1/durable/workers")
    assert_error(response, 404, "not_found")
    assert "worker-1" not in response.text and str(os.getpid()) not in response.text


async def test_the_org_a_request_acts_for_decides(api: Api, other_org: OtherOrg) -> None:
    # The other org's user joins the default org: acting for it they operate, for their own
    # org they do not.
    await add_user_to_org(api, api.org_id, other_org.user_id)
    as_tenant = await other_org.client.get(
        "/v1/durable/workers", headers={"X-Org-Id": other_org.organization_id}
    )
    assert_error(as_tenant, 404, "not_found")
    as_operator = await other_org.client.get(
        "/v1/durable/workers", headers={"X-Org-Id": api.org_id}
    )
    assert as_operator.status_code == 200, as_operator.text
