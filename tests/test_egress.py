"""The egress guard: network access lists, the operator's policy on internal addresses after DNS
resolution, pinned connections, redirects re-checked, paths that cannot smuggle segments.

Real HTTP servers on 127.0.0.1 (and ::1); name resolution injected as a resolver. Every refusal
is asserted by its ``reason``, so a test cannot pass because another rule refused first."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from everloop.config import Settings
from everloop.domain.network_access import NetworkAccess, merge_network_access, pattern_matches
from everloop.egress import EgressGuard, IPAddress, IPNetwork, internal_reason
from everloop.errors import EgressDenied, EgressReason
from tests.local_web import LocalWeb, ipv6_loopback_available

OPEN = NetworkAccess()
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"),)


def guard(*networks: str, **kwargs: Any) -> EgressGuard:
    """A guard whose operator policy allows ``networks`` (none: the default policy)."""
    allowed = tuple(ipaddress.ip_network(n) for n in networks)
    return EgressGuard(allowed_private_networks=allowed, timeout_seconds=5, **kwargs)


async def refused(reason: EgressReason, target: Awaitable[object]) -> EgressDenied:
    """Await ``target``; it must be refused for ``reason``."""
    with pytest.raises(EgressDenied) as raised:
        await target
    assert raised.value.reason == reason, raised.value.message
    return raised.value


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as server:
        yield server


def fake_resolver(table: dict[str, str]):  # type: ignore[no-untyped-def]
    """A resolver answering from ``table``; records every lookup. The guard still opens real
    sockets to the addresses it answers."""
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
        # Hosts and schemes ignore case, paths do not; unreserved escapes are decoded.
        ("http://h.test/public/", "http://h.test/PUBLIC/x", False),
        ("http://h.test/Public/", "http://h.test/public/x", False),
        ("HTTP://H.TEST/public/", "http://h.test/public/x", True),
        ("http://h.test/public/", "http://h.test/%70ublic/x", True),
        ("http://h.test/%70ublic/", "http://h.test/public/x", True),
        ("http://h.test/public/", "http://h.test/public%2fx", False),
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


def test_a_blocked_path_is_blocked_in_any_case_an_allowed_one_only_as_written() -> None:
    access = allowed("http://h.test/public/", blocked=("http://h.test/public/secret/",))
    assert access.verdict("http://h.test/public/x") == "allowed"
    assert access.verdict("http://h.test/PUBLIC/x") == "not_allowed"
    assert access.verdict("http://h.test/public/SECRET/x") == "blocked"
    assert access.verdict("http://h.test/public/%73ecret/x") == "blocked"
    assert access.allowed == ("http://h.test/public/",)
    assert allowed("HTTPS://Docs.Example/Guide/").allowed == ("https://docs.example/Guide/",)


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


# -- the operator's policy: internal addresses -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "access"),
    [
        ("http://127.0.0.1:{port}/", allowed("127.0.0.1")),
        ("http://127.0.0.1:{port}/", OPEN),
        ("http://169.254.169.254/latest/meta-data/", allowed("169.254.169.254")),
        ("http://[::ffff:127.0.0.1]:{port}/", allowed("::ffff:127.0.0.1")),
        ("http://[::ffff:169.254.169.254]/", allowed("::ffff:169.254.169.254")),
        ("http://0.0.0.0:{port}/", allowed("0.0.0.0")),
        ("http://10.0.0.1/", allowed("http://10.0.0.1/")),
        ("http://100.64.0.1/", allowed("100.64.0.1")),
        ("http://[fd00::1]/", allowed("fd00::1")),
        ("http://[fe80::1]/", allowed("fe80::1")),
        ("http://224.0.0.1/", allowed("224.0.0.1")),
    ],
)
async def test_internal_addresses_are_refused_whatever_network_access_says(
    web: LocalWeb, url: str, access: NetworkAccess
) -> None:
    await refused("private_address", guard().fetch(url.format(port=web.port), access))
    assert web.requests == []


async def test_the_operator_policy_is_the_only_way_to_an_internal_address(web: LocalWeb) -> None:
    # Named by the session and allowed by the operator: reached.
    result = await guard("127.0.0.0/8").fetch(f"{web.url}/text", allowed("127.0.0.1"))
    assert result.body == b"plain words"
    # Allowed by the operator, but the session does not name the host: refused.
    await refused("private_address_not_named", guard("127.0.0.0/8").fetch(f"{web.url}/", OPEN))
    # A network the operator did not list stays closed, however the session names it.
    await refused(
        "private_address",
        guard("127.0.0.0/8").fetch("http://169.254.169.254/", allowed("169.254.169.254")),
    )
    await refused("private_address", guard("10.0.0.0/8").fetch(f"{web.url}/", allowed("127.0.0.1")))
    assert web.requests == ["/text"]


@pytest.fixture
def web6() -> Iterator[LocalWeb]:
    if not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6 loopback")
    with LocalWeb("::1") as server:
        yield server


async def test_ipv6_loopback_is_refused_while_a_server_listens_there(web6: LocalWeb) -> None:
    await refused("private_address", guard().fetch(f"{web6.url}/text", allowed("[::1]")))
    await refused("private_address", guard("127.0.0.0/8").fetch(f"{web6.url}/text", OPEN))
    assert web6.requests == []
    # The same request with ::1 allowed by the operator reaches the server: the refusals above
    # were the address rule, not a server that was not there.
    result = await guard("::1/128").fetch(f"{web6.url}/text", allowed("[::1]"))
    assert result.body == b"plain words" and web6.requests == ["/text"]


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.20.30.40"])
@pytest.mark.parametrize(
    ("host", "pattern"),
    [
        ("internal.test", "internal.test"),
        ("api.example.test", "*.example.test"),
        ("internal.test", "http://internal.test:{port}/"),
    ],
)
async def test_an_allowed_name_resolving_to_an_internal_address_is_refused(
    web: LocalWeb, address: str, host: str, pattern: str
) -> None:
    resolver = fake_resolver({host: address})
    checked = guard(resolver=resolver)
    access = allowed(pattern.format(port=web.port))
    await refused("private_address", checked.fetch(f"http://{host}:{web.port}/text", access))
    assert resolver.lookups == [host]  # type: ignore[attr-defined]
    assert web.requests == []


async def test_a_name_resolving_to_loopback_is_refused(web: LocalWeb) -> None:
    # The system resolver: localhost is loopback.
    error = await refused("private_address", guard().fetch(f"http://localhost:{web.port}/", OPEN))
    assert "loopback" in error.message
    assert web.requests == []


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolver = fake_resolver({"intranet.test": "10.0.0.7"})
    checked = guard("127.0.0.0/8", resolver=resolver)
    await refused("private_address", checked.fetch("http://intranet.test/", OPEN))
    assert resolver.lookups == ["intranet.test"]  # type: ignore[attr-defined]


async def test_a_mixed_answer_is_refused_when_any_address_is_internal(web: LocalWeb) -> None:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")]

    checked = guard(resolver=resolve)
    await refused("private_address", checked.fetch(f"http://rebind.test:{web.port}/", OPEN))
    assert web.requests == []


def test_the_operator_setting_takes_cidrs_and_refuses_anything_else() -> None:
    settings = Settings(egress_allowed_private_networks=" 127.0.0.0/8, ::1 ,fd00::/8")
    assert [str(n) for n in settings.egress_private_networks] == [
        "127.0.0.0/8",
        "::1/128",
        "fd00::/8",
    ]
    assert Settings().egress_private_networks == ()
    for bad in ("10.0.0.1/8", "intranet", "10.0.0.0/33"):
        with pytest.raises(ValidationError, match="EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS"):
            Settings(egress_allowed_private_networks=bad)


# -- URLs refused before any connection -----------------------------------------------------------


async def test_bad_urls_are_refused() -> None:
    for url in (
        "file:///etc/passwd",
        "ftp://example.com/",
        "http://",
        "not a url",
        "http://u:p@x/",
    ):
        await refused("invalid_url", guard().fetch(url, OPEN))


@pytest.mark.parametrize(
    "path",
    [
        "/public/%2e%2e/private",
        "/public/%2E%2E/private",
        "/public/%2e%2E/private",
        "/public/.%2e/private",
        "/public/%2e./private",
        "/public/%2e/private",
        "/public/..%2fprivate",
        "/public/..%2Fprivate",
        "/public/..%5cprivate",
        "/public/..\\private",
        "/public/%2e%2e",
    ],
)
async def test_encoded_dot_segments_are_refused(web: LocalWeb, path: str) -> None:
    access = allowed(f"{web.url}/public/")
    await refused("encoded_dot_segment", guard("127.0.0.0/8").fetch(web.url + path, access))
    assert web.requests == []


async def test_a_path_prefix_is_matched_case_sensitively(web: LocalWeb) -> None:
    access = allowed(f"{web.url}/public/")
    checked = guard("127.0.0.0/8")
    await refused("not_allowed", checked.fetch(f"{web.url}/PUBLIC/x", access))
    await refused("not_allowed", checked.fetch(f"{web.url}/Public/x", access))
    assert (await checked.fetch(f"{web.url}/%70ublic/x", access)).status == 404
    assert web.requests == ["/%70ublic/x"]


async def test_encoded_slashes_are_refused_where_a_path_pattern_decides(web: LocalWeb) -> None:
    checked = guard("127.0.0.0/8")
    by_path = allowed(f"{web.url}/public/", blocked=(f"{web.url}/public/private/",))
    await refused("encoded_slash", checked.fetch(f"{web.url}/public/private%2Fkey", by_path))
    await refused("encoded_slash", checked.fetch(f"{web.url}/public%2fx", by_path))
    # Where only the host decides, an encoded slash is an ordinary character of the path.
    assert (await checked.fetch(f"{web.url}/a%2Fb", allowed("127.0.0.1"))).status == 404
    assert web.requests == ["/a%2Fb"]


# -- explicitly allowed local servers -------------------------------------------------------------


async def test_an_allowed_host_pattern_reaches_the_local_server(web: LocalWeb) -> None:
    result = await guard("127.0.0.0/8").fetch(f"{web.url}/text", allowed("127.0.0.1"))
    assert (result.status, result.body, result.truncated) == (200, b"plain words", False)
    assert result.content_type == "text/plain" and result.charset == "utf-8"


async def test_an_allowed_url_prefix_reaches_the_local_server(web: LocalWeb) -> None:
    checked = guard("127.0.0.0/8")
    access = allowed(f"{web.url}/te")
    assert (await checked.fetch(f"{web.url}/text", access)).body == b"plain words"
    await refused("not_allowed", checked.fetch(f"{web.url}/binary", access))


async def test_the_connection_is_pinned_to_the_checked_address(web: LocalWeb) -> None:
    resolver = fake_resolver({"app.test": "127.0.0.1"})
    checked = guard("127.0.0.0/8", resolver=resolver)
    result = await checked.fetch(f"http://app.test:{web.port}/text", allowed("app.test"))
    assert result.body == b"plain words"
    assert resolver.lookups == ["app.test"]  # type: ignore[attr-defined]


async def test_blocked_wins_over_allowed(web: LocalWeb) -> None:
    access = allowed("127.0.0.1", blocked=("127.0.0.1",))
    await refused("blocked", guard("127.0.0.0/8").fetch(f"{web.url}/", access))
    assert web.requests == []


# -- redirects ------------------------------------------------------------------------------------


async def test_a_redirect_to_the_metadata_address_is_refused(web: LocalWeb) -> None:
    # The session allows the target too: only the address rule can refuse it.
    target = "http://169.254.169.254/latest/meta-data/"
    access = allowed(f"{web.url}/", "169.254.169.254")
    url = f"{web.url}/redirect?to={target}"
    await refused("private_address", guard("127.0.0.0/8").fetch(url, access))
    assert web.requests == [f"/redirect?to={target}"]


async def test_a_redirect_to_a_name_of_a_private_address_is_refused(web: LocalWeb) -> None:
    resolver = fake_resolver({"public.test": "127.0.0.1", "internal.test": "192.168.0.10"})
    checked = guard("127.0.0.0/8", resolver=resolver)
    url = f"http://public.test:{web.port}/redirect?to=http://internal.test/admin"
    await refused("private_address", checked.fetch(url, allowed("public.test", "internal.test")))
    assert web.requests == ["/redirect?to=http://internal.test/admin"]
    assert resolver.lookups == ["public.test", "internal.test"]  # type: ignore[attr-defined]


async def test_a_redirect_outside_the_allowed_set_is_refused(web: LocalWeb) -> None:
    url = f"{web.url}/redirect?to=http://elsewhere.test/"
    await refused("not_allowed", guard("127.0.0.0/8").fetch(url, allowed("127.0.0.1")))
    assert web.requests == ["/redirect?to=http://elsewhere.test/"]


async def test_redirects_within_the_allowed_set_are_followed(web: LocalWeb) -> None:
    checked = guard("127.0.0.0/8")
    result = await checked.fetch(f"{web.url}/redirect?to=/text", allowed("127.0.0.1"))
    assert (result.status, result.body) == (200, b"plain words")
    assert result.url == f"{web.url}/text"


async def test_too_many_redirects_stop(web: LocalWeb) -> None:
    checked = guard("127.0.0.0/8", max_redirects=3)
    error = await refused(
        "too_many_redirects", checked.fetch(f"{web.url}/loop", allowed("127.0.0.1"))
    )
    assert "more than 3 redirects" in error.message
    assert len(web.requests) == 4


# -- size cap and the guarded client --------------------------------------------------------------


async def test_the_body_is_capped(web: LocalWeb) -> None:
    checked = guard("127.0.0.0/8")
    result = await checked.fetch(f"{web.url}/big", allowed("127.0.0.1"), max_bytes=1000)
    assert result.truncated is True and len(result.body) == 1000


async def test_the_guarded_client_checks_every_request(web: LocalWeb) -> None:
    checked = guard("127.0.0.0/8")
    async with checked.client(allowed("127.0.0.1")) as client:
        assert (await client.get(f"{web.url}/text")).text == "plain words"
    async with checked.client(OPEN, follow_redirects=True) as client:
        await refused("private_address_not_named", client.get(f"{web.url}/text"))
    async with guard().client(allowed("127.0.0.1")) as client:
        await refused("private_address", client.get(f"{web.url}/text"))
    # httpx following redirects on its own still passes every hop through the guard.
    async with checked.client(allowed(f"{web.url}/redirect"), follow_redirects=True) as client:
        await refused("not_allowed", client.get(f"{web.url}/redirect?to=/text"))
    assert web.requests == ["/text", "/redirect?to=/text"]
    assert isinstance(checked.client(OPEN), httpx.AsyncClient)
