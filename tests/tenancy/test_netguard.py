"""SSRF-1/SSRF-2 at the unit level: the tenant URL table, embedded IPv4 forms, and the connect-time resolver."""

from __future__ import annotations

import ipaddress
import random
import re
import socket
import string
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

import omnigate
from omnigate.netguard import (
    ForbiddenAddressError,
    GuardedResolver,
    UnsafeURLError,
    check_url,
    forbidden_reason,
    refused_by_guard,
    validate_url,
)
from tests.tenancy.conftest import Sentinel

# Names the tests resolve without DNS; "localhost" is left to the real resolver (the hosts file).
FAKE_DNS: dict[str, list[str]] = {
    "res.openai.azure.com": ["20.42.0.1"],
    "res.cognitiveservices.azure.com": ["20.42.0.2", "2603:1030::1"],
    "apim.azure-api.net": ["20.42.0.3"],
    "private.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["20.42.0.4", "192.168.1.10"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "cgnat.test": ["100.64.0.7"],
}


async def fake_resolve(host: str, port: int) -> list[str]:
    if host == "localhost":
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]
    if host not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_DNS[host]


LEGIT = [
    "https://res.openai.azure.com",
    "https://res.openai.azure.com/",
    "https://RES.openai.azure.com",
    "https://res.openai.azure.com:443",
    "https://res.cognitiveservices.azure.com/",
    "https://apim.azure-api.net/openai-proxy/v2",
    "https://20.42.0.1",
    "https://[2606:4700::1111]",
]

HOSTILE = [
    # scheme downgrade and other schemes
    "http://res.openai.azure.com",
    "file:///etc/passwd",
    "gopher://res.openai.azure.com",
    "ftp://res.openai.azure.com",
    "//res.openai.azure.com",
    "https:res.openai.azure.com",
    "https:/res.openai.azure.com",
    "https://",
    "",
    # loopback, private, link-local, metadata, unspecified, CGNAT, multicast literals
    "https://127.0.0.1",
    "https://127.255.0.9",
    "https://0.0.0.0",
    "https://10.0.0.1",
    "https://10.255.255.254",
    "https://172.16.0.1",
    "https://172.31.255.254",
    "https://192.168.1.1",
    "https://169.254.169.254",
    "https://169.254.1.1",
    "https://100.100.100.200",
    "https://100.64.0.1",
    "https://224.0.0.1",
    "https://255.255.255.255",
    "https://[::1]",
    "https://[::]",
    "https://[fd00:ec2::254]",
    "http://[fd00:ec2::254]",
    "https://[fc00::1]",
    "https://[fe80::1]",
    "https://[fe80::1%25eth0]",
    "https://[ff02::1]",
    # IPv4 inside IPv6: mapped, compatible, NAT64, 6to4
    "https://[::ffff:127.0.0.1]",
    "https://[::ffff:7f00:1]",
    "https://[::ffff:169.254.169.254]",
    "https://[::ffff:10.0.0.1]",
    "https://[::127.0.0.1]",
    "https://[64:ff9b::a9fe:a9fe]",
    "https://[2002:7f00:1::]",
    # decimal, octal, hex and short spellings of 127.0.0.1
    "https://2130706433",
    "https://0177.0.0.1",
    "https://0x7f.1",
    "https://0x7f000001",
    "https://127.1",
    "https://017700000001",
    # names that resolve to forbidden addresses, or not at all
    "https://localhost",
    "https://private.test",
    "https://metadata.test",
    "https://mixed.test",
    "https://v6loop.test",
    "https://mapped.test",
    "https://cgnat.test",
    "https://does-not-resolve.test",
    # splicing: fragments, userinfo, backslashes, escapes, queries
    "https://evil.test#.openai.azure.com",
    "https://x.openai.azure.com@evil.test",
    "https://user:pass@res.openai.azure.com",
    "https://evil.test\\.openai.azure.com",
    "https://res.openai.azure.com%2eevil.test",
    "https://res.openai.azure.com%40evil.test",
    "https://res.openai.azure.com/?api-version=1",
    "https://res.openai.azure.com?",
    "https://res.openai.azure.com#",
    # whitespace and control characters
    " https://res.openai.azure.com",
    "https://res.openai.azure.com ",
    "https://res.openai.azure.com\r\nHost: evil.test",
    "https://res.openai.azure.com\x00.evil.test",
    "https://res.openai.azure.com\t",
    # ports, paths, host syntax
    "https://res.openai.azure.com:8443",
    "https://res.openai.azure.com:80",
    "https://res.openai.azure.com:0x1bb",
    "https://res.openai.azure.com/../admin",
    "https://res.openai.azure.com/a/./b",
    "https://res.openai.azure.com//x",
    "https://res_x.openai.azure.com",
    "https://-res.openai.azure.com",
    "https://rés.openai.azure.com",
]


def test_the_table_is_big_enough() -> None:
    assert len(LEGIT) + len(HOSTILE) >= 45


@pytest.mark.parametrize("url", LEGIT)
async def test_legit_endpoints_are_accepted(url: str) -> None:
    assert await validate_url(url, allow_private=False, resolve=fake_resolve) == url


@pytest.mark.parametrize("url", HOSTILE)
async def test_hostile_endpoints_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError) as info:
        await validate_url(url, allow_private=False, resolve=fake_resolve)
    assert str(info.value)


async def test_allowing_private_upstreams_lifts_only_address_port_and_scheme_rules() -> None:
    for url in ("http://127.0.0.1:8080", "https://localhost:8443/", "http://[::1]:9000", "http://10.0.0.1"):
        assert await validate_url(url, allow_private=True, resolve=fake_resolve) == url
    for url in ("http://a@127.0.0.1", "http://127.0.0.1/?x=1", "http://127.0.0.1#f", "ftp://127.0.0.1"):
        with pytest.raises(UnsafeURLError):
            await validate_url(url, allow_private=True, resolve=fake_resolve)


async def test_names_are_resolved_with_the_event_loop() -> None:
    # The default resolver is the loop's getaddrinfo: localhost is refused for what it resolves to.
    with pytest.raises(UnsafeURLError, match="loopback"):
        await validate_url("https://localhost", allow_private=False)


def test_check_url_needs_no_network_and_catches_literals() -> None:
    check_url("https://res.openai.azure.com", allow_private=False)
    with pytest.raises(UnsafeURLError, match="non-canonical"):
        check_url("https://2130706433", allow_private=False)
    with pytest.raises(UnsafeURLError, match="metadata"):
        check_url("https://169.254.169.254", allow_private=False)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b:1::1", False),
        ("::ffff:192.168.0.1", False),
        ("2002:a00:1::", False),
        ("2001:db8::1", False),
        ("198.18.0.1", False),
        ("240.0.0.1", False),
    ],
)
def test_forbidden_reason(address: str, allowed: bool) -> None:
    assert (forbidden_reason(ipaddress.ip_address(address)) is None) is allowed


class MappedResolver(AbstractResolver):
    """A resolver answering from a table, and counting its lookups per name."""

    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = table
        self.lookups: dict[str, int] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups[host] = self.lookups.get(host, 0) + 1
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


async def _get(resolver: AbstractResolver, url: str) -> BaseException | None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as session:
        try:
            async with session.get(url, allow_redirects=False):
                return None
        except aiohttp.ClientError as exc:
            return exc


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["20.42.0.1", "127.0.0.1"], ["::1"], ["::ffff:127.0.0.1"]],
    ids=["rebound-to-loopback", "public-and-private", "aaaa-loopback-only", "mapped"],
)
async def test_guarded_resolver_refuses_at_connect_time(sentinel: Sentinel, addresses: list[str]) -> None:
    # (a) the name validated as public when it was saved...
    assert (
        await validate_url("https://rebind.test", allow_private=False, resolve=_public)
        == "https://rebind.test"
    )
    # ...and resolves to a forbidden address when the gateway connects (DNS rebinding).
    inner = MappedResolver({"rebind.test": addresses})
    error = await _get(GuardedResolver(inner), f"http://rebind.test:{sentinel.port}/")
    assert error is not None
    refusal = refused_by_guard(error)
    assert isinstance(refusal, ForbiddenAddressError) and "rebind.test" in str(refusal)
    assert sentinel.connections == 0


async def test_guarded_resolver_lets_trusted_hosts_through(sentinel: Sentinel) -> None:
    # The same table without the guard's refusal reaches the sentinel: the guard is what blocked above.
    inner = MappedResolver({"operator.test": ["127.0.0.1"]})
    error = await _get(
        GuardedResolver(inner, trusted_hosts=["Operator.test."]),
        sentinel.url.replace("127.0.0.1", "operator.test"),
    )
    assert error is not None and refused_by_guard(error) is None
    assert sentinel.connections >= 1  # aiohttp retries an idempotent request the server dropped


async def _public(host: str, port: int) -> list[str]:
    return ["20.42.0.9"]


def test_every_upstream_session_is_built_in_one_place() -> None:
    """SSRF-3: sessions and connectors come only from gateway/upstream.new_session (resolver injectable)."""
    package = Path(omnigate.__file__).parent
    builders = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "testing" not in path.parts
        and re.search(r"\b(ClientSession|TCPConnector)\(", path.read_text(encoding="utf-8"))
    )
    assert builders == ["gateway/upstream.py"]


def test_random_urls_raise_only_the_declared_error_and_accepted_ones_obey_the_oracle() -> None:
    """BI-5 in small: seeded random URLs; anything accepted is https, on 443, without userinfo or literals refused."""
    rng = random.Random(20240521)
    alphabet = string.ascii_letters + string.digits + ":/?#[]@!$&'()*+,;=%.-_~\\ \t\x00é"
    starts = ["https://", "http://", "", "https:", "//", "https://[", "https://127.", "https://0x"]
    accepted = 0
    for _ in range(20_000):
        url = rng.choice(starts) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        try:
            parts = check_url(url, allow_private=False)
        except UnsafeURLError:
            continue
        accepted += 1
        assert parts.scheme == "https" and "@" not in parts.netloc and parts.port in (None, 443), url
        assert not parts.query and not parts.fragment and parts.hostname, url
        try:
            literal = ipaddress.ip_address(parts.hostname.rstrip("."))
        except ValueError:
            continue
        assert forbidden_reason(literal) is None, url
    assert accepted > 0
