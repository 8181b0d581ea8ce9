"""Agent versions with the published ``everruns-sdk`` against a real ``everloop serve``."""

from __future__ import annotations

import secrets

import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError

from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow


async def test_versions_through_the_sdk(server: Server) -> None:
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        name = f"sdk-versions-{secrets.token_hex(4)}"
        agent = await client.agents.create(name=name, system_prompt="First prompt.")
        (auto,) = await client.agents.list_versions(agent.id)
        assert (auto.version_number, auto.change_kind, auto.version) == (1, "auto", "0.1.0")

        await client.agents.apply(agent.id, name, "Second prompt.")  # an update: version 2
        saved = await client.agents.create_version(agent.id, change_kind="minor", summary="second")
        assert (saved.version_number, saved.version, saved.is_published) == (3, "0.2.0", True)
        listed = await client.agents.list_versions(agent.id)
        assert [v.version_number for v in listed] == [3, 2, 1]

        diff = await client.agents.diff_versions(agent.id, auto.id, saved.id)
        assert diff.authored_diff["system_prompt"] == {
            "from": "First prompt.",
            "to": "Second prompt.",
        }

        restored = await client.agents.rollback_version(agent.id, auto.id, summary="undo")
        assert restored.system_prompt == "First prompt."
        latest = (await client.agents.list_versions(agent.id))[0]
        assert (latest.change_kind, latest.source_version_id) == ("rollback", auto.id)

        default = await client.agents.set_default_version(agent.id, saved.id)
        assert default.default_version_id == saved.id


async def test_fork_version_through_the_sdk(server: Server) -> None:
    async with Everruns(api_key=server.token, base_url=server.api_url) as client:
        name = f"sdk-fork-{secrets.token_hex(4)}"
        agent = await client.agents.create(name=name, system_prompt="Forked prompt.")
        (first,) = await client.agents.list_versions(agent.id)
        await client.agents.apply(agent.id, name, "Later prompt.")

        fork = await client.agents.fork_version(
            agent.id, first.id, name=f"{name}-fork", display_name="The fork"
        )
        assert fork.id != agent.id
        assert (fork.name, fork.display_name) == (f"{name}-fork", "The fork")
        assert fork.system_prompt == "Forked prompt."
        (origin,) = await client.agents.list_versions(fork.id)
        assert (origin.change_kind, origin.source_version_id) == ("fork", first.id)

        with pytest.raises(ApiError) as taken:
            await client.agents.fork_version(agent.id, first.id, name=name)
        assert taken.value.status_code == 409
