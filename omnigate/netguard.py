"""Tenant-supplied upstream URLs: strict syntax, and no loopback, private, link-local or metadata targets."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 5.0
HTTPS_PORT = 443

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NETLOC = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
# A last label that WHATWG URL parsers (and inet_aton) read as a number: 2130706433, 0x7f, 0177.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack instance metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud metadata
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class UnsafeURLError(ValueError):
    """A tenant URL that the gateway refuses to call; the message says why (never echoes secrets)."""


class ForbiddenAddressError(OSError):
    """A name resolved to an address tenants may not reach (raised inside aiohttp's resolver step)."""


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a tenant may not reach ``address`` (None when it is a public unicast address)."""
    if address in _METADATA:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return None if reason is None else f"{reason} (inside an IPv6 address)"
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private or not address.is_global:
        return "a private or reserved address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), which is what gets reached."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _bad(problem: str) -> UnsafeURLError:
    return UnsafeURLError(problem)


def check_url(url: str, *, allow_private: bool) -> SplitResult:
    """Check a URL's syntax (and an IP-literal host) without any network access; raise UnsafeURLError.

    Refused: anything but https (http too when private upstreams are allowed), userinfo, a query or a
    fragment (also empty ones), whitespace, control characters, backslashes and percent-escapes, hosts
    that are not plain DNS names or canonical IP literals (decimal, octal and hex spellings of IPv4),
    ports other than 443, dot segments in the path, and IP literals ``forbidden_reason`` refuses.
    ``allow_private`` lifts the address, port and scheme rules only.
    """
    if not isinstance(url, str) or not url:
        raise _bad("must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise _bad(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise _bad("must not contain whitespace or control characters")
    if not url.isascii():
        raise _bad("must be ASCII (write international domain names in punycode)")
    if any(ch in url for ch in "\\%?#"):
        raise _bad("must not contain a query, a fragment, backslashes or percent-escapes")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _bad("is not a valid URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise _bad("must be an https:// URL" if not allow_private else "must be an http(s):// URL")
    if not url.lower().startswith(parts.scheme + "://"):
        raise _bad("must be an absolute URL such as https://name.openai.azure.com")
    if "@" in parts.netloc:
        raise _bad("must not carry credentials (user@host)")
    if not _NETLOC.match(parts.netloc):
        raise _bad(
            "must have a host (a DNS name, an IPv4 address or a bracketed IPv6 address) and optional port"
        )
    try:
        port = parts.port
    except ValueError:
        raise _bad("has an invalid port") from None
    if not allow_private and port not in (None, HTTPS_PORT):
        raise _bad("must use the standard https port (443)")
    host = parts.hostname
    if not host:
        raise _bad("has no host")
    _check_path(parts.path)
    literal = _ip_literal(host, bracketed=parts.netloc.startswith("["))
    if literal is not None and not allow_private:
        reason = forbidden_reason(literal)
        if reason is not None:
            raise _bad(f"points at {reason}")
    return parts


def _check_path(path: str) -> None:
    if path in ("", "/"):
        return
    for segment in path[1:].removesuffix("/").split("/"):
        if segment in (".", "..") or not _PATH_SEGMENT.match(segment):
            raise _bad("has a path segment that is empty, a dot segment or not plain characters")


def _ip_literal(host: str, *, bracketed: bool) -> IPAddress | None:
    """The address of an IP-literal host, None for a DNS name; raise for anything else."""
    if bracketed:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad("has an invalid IPv6 literal") from None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            return ipaddress.IPv4Address(name)  # canonical dotted-quad only
        except ValueError:
            raise _bad("spells an IP address in a non-canonical form (decimal, octal or hex)") from None
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _bad("has a host that is not a valid DNS name")
    return None


async def resolve_with_loop(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, through the event loop's getaddrinfo (never blocking it)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def validate_url(url: str, *, allow_private: bool, resolve: Resolve | None = None) -> str:
    """``check_url``, then every address the host resolves to must be allowed; returns the URL.

    Names are resolved with the event loop's getaddrinfo; a name that does not resolve is refused,
    since it cannot be checked. With ``allow_private`` nothing is resolved.
    """
    parts = check_url(url, allow_private=allow_private)
    if allow_private:
        return url
    host = parts.hostname or ""
    if _ip_literal(host, bracketed=parts.netloc.startswith("[")) is not None:
        return url
    resolver = resolve or resolve_with_loop
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            addresses = await resolver(host, parts.port or HTTPS_PORT)
    except (OSError, TimeoutError):
        raise _bad(f"has a host that does not resolve ({host})") from None
    if not addresses:
        raise _bad(f"has a host that does not resolve ({host})")
    refusal = first_forbidden(addresses)
    if refusal is not None:
        raise _bad(f"resolves to {refusal}")
    return url


def first_forbidden(addresses: Iterable[str]) -> str | None:
    """The reason the first forbidden address is refused, or None when every address is allowed."""
    for raw in addresses:
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            return "an address that cannot be parsed"
        reason = forbidden_reason(address)
        if reason is not None:
            return reason
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses a name when any of its addresses is forbidden.

    aiohttp connects only to the addresses its resolver returns, so a name that resolved to a public
    address when it was saved and to a private one now (DNS rebinding) is refused at connect time.
    ``trusted_hosts`` (the operator's own endpoints) are not checked. aiohttp does not call the
    resolver for IP literals: ``check_url`` handles those before a request is made.
    """

    def __init__(self, inner: AbstractResolver | None = None, trusted_hosts: Collection[str] = ()) -> None:
        self._inner = inner
        self._trusted = frozenset(host.lower().rstrip(".") for host in trusted_hosts)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()  # uses the running loop's getaddrinfo
        results = await self._inner.resolve(host, port, family)
        if host.lower().rstrip(".") in self._trusted:
            return results
        refusal = first_forbidden(result["host"] for result in results)
        if refusal is not None:
            raise ForbiddenAddressError(f"{host} resolves to {refusal}")
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def refused_by_guard(exc: BaseException) -> ForbiddenAddressError | None:
    """The ForbiddenAddressError behind a converted transport error, if the guard caused it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ForbiddenAddressError):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, ForbiddenAddressError):
            return os_error
        current = current.__cause__ or current.__context__
    return None
