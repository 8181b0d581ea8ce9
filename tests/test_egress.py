"""The egress guard: network access lists, SSRF rules after DNS resolution, pinned connections,
redirects re-checked. Real HTTP servers on 127.0.0.1; name resolution injected as a resolver."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from everloop.domain.network_access import NetworkAccess, merge_network_access, pattern_matches
from everloop.egress import EgressGuard, IPAddress, internal_reason
from everloop.errors import EgressDenied
from tests.local_web import LocalWeb

OPEN = NetworkAccess()


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


def fake_resolver(table: dict[str, str]):  # type: ignore[no-untyped-def]
    """A resolver answering from ``table``; records every lookup."""
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address(table[host])]

    resolve.lookups = lookups  # type: ignore[attr-defined]
    return resolve


def allowed(*patterns: str, blocked: tuple[str, ...] = ()) -> NetworkAccess:
    return NetworkAccess.from_json({"allowed": list(patterns), "blocked": list(blocked)})


# -- patterns and merging -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "url", "matches"),
    [
        ("example.com", "https://example.com/a", True),
        ("example.com", "https://EXAMPLE.com:8443/a", True),
        ("Example.COM", "https://example.com/", True),
        ("example.com", "https://api.example.com/", False),
        ("*.example.com", "https://api.example.com/", True),
        ("*.example.com", "https://a.b.example.com/", True),
        ("*.example.com", "https://example.com/", False),
        ("*.example.com", "https://badexample.com/", False),
        ("https://example.com/docs/", "https://example.com/docs/x", True),
        ("https://example.com/docs/", "https://example.com/admin", False),
        ("https://example.com/docs/", "http://example.com/docs/x", False),
        ("https://example.com/docs/", "https://example.com:444/docs/x", False),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/a", True),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8081/a", False),
    ],
)
def test_patterns(pattern: str, url: str, matches: bool) -> None:
    assert pattern_matches(pattern, url) is matches


def test_blocked_wins_and_an_empty_allowed_list_is_open() -> None:
    access = allowed("*.example.com", blocked=("secret.example.com",))
    assert access.verdict("https://secret.example.com/") == "blocked"
    assert access.verdict("https://api.example.com/") == "allowed"
    assert access.verdict("https://other.org/") == "not_allowed"
    empty = NetworkAccess.from_json({"allowed": [], "blocked": []})
    assert empty.verdict("https://x.org") == "open"


def test_merge_intersects_allowed_and_unions_blocked() -> None:
    merged = merge_network_access(
        {"allowed": ["*.example.com", "docs.org"], "blocked": ["a.example.com"]},
        None,
        {"allowed": ["api.example.com", "other.net"], "blocked": ["b.example.com"]},
    )
    assert merged.allowed == ("api.example.com",)
    assert merged.blocked == ("a.example.com", "b.example.com")
    # A layer without allowed entries inherits; disjoint layers allow nothing (not "open").
    assert merge_network_access({"allowed": ["a.org"]}, {"blocked": []}).allowed == ("a.org",)
    nothing = merge_network_access({"allowed": ["a.org"]}, {"allowed": ["b.org"]})
    assert nothing.allowed == ()
    assert nothing.verdict("https://a.org/") == "not_allowed"
    assert merge_network_access(None, None, None).verdict("https://a.org/") == "open"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
    ],
)
def test_internal_addresses(address: str) -> None:
    assert internal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert internal_reason(ipaddress.ip_address(address)) is None


# -- SSRF refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://0.0.0.0:{port}/",
        "http://10.0.0.1/",
    ],
)
async def test_internal_addresses_are_refused_without_a_pattern(web: LocalWeb, url: str) -> None:
    guard = EgressGuard(timeout_seconds=5)
    with pytest.raises(EgressDenied):
        await guard.fetch(url.format(port=web.port), OPEN)
    assert web.requests == []


async def test_a_name_resolving_to_loopback_is_refused(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)  # the system resolver: localhost is loopback
    with pytest.raises(EgressDenied, match="loopback"):
        await guard.fetch(f"http://localhost:{web.port}/", OPEN)
    assert web.requests == []


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolver = fake_resolver({"intranet.test": "10.0.0.7"})
    guard = EgressGuard(resolver=resolver, timeout_seconds=5)
    with pytest.raises(EgressDenied, match="private"):
        await guard.fetch("http://intranet.test/", OPEN)
    assert resolver.lookups == ["intranet.test"]  # type: ignore[attr-defined]


async def test_a_mixed_answer_is_refused_when_any_address_is_internal() -> None:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")]

    guard = EgressGuard(resolver=resolve, timeout_seconds=5)
    with pytest.raises(EgressDenied, match="loopback"):
        await guard.fetch("http://rebind.test/", OPEN)


async def test_bad_urls_are_refused() -> None:
    guard = EgressGuard(timeout_seconds=5)
    for url in (
        "file:///etc/passwd",
        "ftp://example.com/",
        "http://",
        "not a url",
        "http://u:p@x/",
    ):
        with pytest.raises(EgressDenied):
            await guard.fetch(url, OPEN)


# -- explicitly allowed local servers -------------------------------------------------------------


async def test_an_allowed_host_pattern_reaches_the_local_server(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    result = await guard.fetch(f"{web.url}/text", allowed("127.0.0.1"))
    assert (result.status, result.body, result.truncated) == (200, b"plain words", False)
    assert result.content_type == "text/plain" and result.charset == "utf-8"


async def test_an_allowed_url_prefix_reaches_the_local_server(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    access = allowed(f"{web.url}/te")
    assert (await guard.fetch(f"{web.url}/text", access)).body == b"plain words"
    with pytest.raises(EgressDenied, match="not in the session's allowed"):
        await guard.fetch(f"{web.url}/binary", access)


async def test_the_connection_is_pinned_to_the_checked_address(web: LocalWeb) -> None:
    resolver = fake_resolver({"app.test": "127.0.0.1"})
    guard = EgressGuard(resolver=resolver, timeout_seconds=5)
    result = await guard.fetch(f"http://app.test:{web.port}/text", allowed("app.test"))
    assert result.body == b"plain words"
    assert resolver.lookups == ["app.test"]  # type: ignore[attr-defined]


async def test_blocked_wins_over_allowed(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    with pytest.raises(EgressDenied, match="blocked"):
        await guard.fetch(f"{web.url}/", allowed("127.0.0.1", blocked=("127.0.0.1",)))
    assert web.requests == []


# -- redirects ------------------------------------------------------------------------------------


async def test_a_redirect_to_the_metadata_address_is_refused(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    target = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(EgressDenied):
        await guard.fetch(f"{web.url}/redirect?to={target}", allowed(f"{web.url}/"))
    assert web.requests == [f"/redirect?to={target}"]


async def test_a_redirect_to_a_name_of_a_private_address_is_refused(web: LocalWeb) -> None:
    resolver = fake_resolver({"public.test": "127.0.0.1", "internal.test": "192.168.0.10"})
    guard = EgressGuard(resolver=resolver, timeout_seconds=5)
    url = f"http://public.test:{web.port}/redirect?to=http://internal.test/admin"
    with pytest.raises(EgressDenied):
        await guard.fetch(url, allowed("public.test"))
    assert web.requests == ["/redirect?to=http://internal.test/admin"]
    assert resolver.lookups == ["public.test"]  # type: ignore[attr-defined]


async def test_redirects_within_the_allowed_set_are_followed(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    result = await guard.fetch(f"{web.url}/redirect?to=/text", allowed("127.0.0.1"))
    assert (result.status, result.body) == (200, b"plain words")
    assert result.url == f"{web.url}/text"


async def test_too_many_redirects_stop(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5, max_redirects=3)
    with pytest.raises(EgressDenied, match="more than 3 redirects"):
        await guard.fetch(f"{web.url}/loop", allowed("127.0.0.1"))
    assert len(web.requests) == 4


# -- size cap and the guarded client --------------------------------------------------------------


async def test_the_body_is_capped(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    result = await guard.fetch(f"{web.url}/big", allowed("127.0.0.1"), max_bytes=1000)
    assert result.truncated is True and len(result.body) == 1000


async def test_the_guarded_client_checks_every_request(web: LocalWeb) -> None:
    guard = EgressGuard(timeout_seconds=5)
    async with guard.client(allowed("127.0.0.1")) as client:
        assert (await client.get(f"{web.url}/text")).text == "plain words"
    async with guard.client(OPEN, follow_redirects=True) as client:
        with pytest.raises(EgressDenied):
            await client.get(f"{web.url}/text")
    # httpx following redirects on its own still passes every hop through the guard.
    async with guard.client(allowed(f"{web.url}/redirect"), follow_redirects=True) as client:
        with pytest.raises(EgressDenied):
            await client.get(f"{web.url}/redirect?to=/text")
    assert web.requests == ["/text", "/redirect?to=/text"]
    assert isinstance(guard.client(OPEN), httpx.AsyncClient)
