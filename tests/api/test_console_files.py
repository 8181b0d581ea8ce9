"""The web console's files (issue 22): served at ``/`` and ``/console/`` by the API app, all
local, under a strict page policy, revalidated on each load, and shipped in the package. The
console's behaviour is tested in a real browser in ``tests/e2e/test_console.py``."""

from __future__ import annotations

from everloop.console import ASSETS
from tests.conftest import Api

ROOT = "http://everloop.test"


async def test_the_page_is_served_at_the_root_under_a_strict_policy(api: Api) -> None:
    page = await api.client.get(f"{ROOT}/", headers={"Authorization": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "http://" not in page.text and "https://" not in page.text


async def test_every_file_is_local_preloaded_and_revalidated(api: Api) -> None:
    page = (await api.client.get(f"{ROOT}/")).text
    modules = sorted(p.name for p in ASSETS.glob("*.js"))
    assert "app.js" in modules and "sse.js" in modules
    for name in [*modules, "style.css"]:
        response = await api.client.get(f"{ROOT}/console/{name}", headers={"Authorization": ""})
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "no-cache", name
        assert "https://" not in response.text and "http://" not in response.text, name
        if name.endswith(".js"):
            # Each module is named by the page (fetched at once, not import by import).
            assert f'"/console/{name}"' in page, name
            # No markup from strings: the DOM is built with text nodes only.
            assert "innerHTML" not in response.text, name


async def test_a_missing_file_is_a_404_and_the_api_keeps_its_errors(api: Api) -> None:
    assert (await api.client.get(f"{ROOT}/console/nope.js")).status_code == 404
    unknown = await api.client.get("/v1/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"]
