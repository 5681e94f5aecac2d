"""Keep feed fetches away from the daemon's own network: loopback, private, link-local
(cloud metadata at 169.254.169.254) and other non-global addresses.

A feed URL, or a redirect a feed server answers with, must not make mastwatch a proxy into
the machine or the network it runs on (SSRF). Two checks cover every connection the
guarded session makes, redirects included:

* ``PublicOnlyResolver`` refuses a host name when any address it resolves to is not
  global, so DNS cannot point a public-looking name inward; the connector uses exactly the
  addresses it checked, so a second lookup cannot swap them (DNS rebinding).
* ``guard_trace_config`` refuses IP-literal URLs (aiohttp does not ask the resolver about
  those) on the first request and on every redirect target, before connecting.

Operators opt a source out with ``allow_private = true``; the daemon then fetches it
through a second, unguarded session. ``file://`` sources never reach this module.
"""

from __future__ import annotations

import ipaddress
import socket
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL


class BlockedAddressError(OSError):
    """A fetch would have connected to a loopback, private or otherwise internal address."""


def is_public_address(address: str) -> bool:
    """True when ``address`` (an IP literal) is globally routable unicast."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public_address(str(embedded))
    return ip.is_global and not ip.is_multicast


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    return True


def check_url_host(url: URL) -> None:
    """Raise ``BlockedAddressError`` when ``url`` names a non-public IP literal."""
    host = url.raw_host or ""
    if _is_ip_literal(host) and not is_public_address(host):
        raise BlockedAddressError(f"refusing to fetch from non-public address {host}")


class PublicOnlyResolver(AbstractResolver):
    """Resolves through aiohttp's default resolver and refuses any non-public answer."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses, or ``BlockedAddressError`` if any of them is internal."""
        results = await self._inner.resolve(host, port, family)
        internal = sorted({r["host"] for r in results if not is_public_address(r["host"])})
        if internal:
            raise BlockedAddressError(
                f"refusing to fetch from {host}: it resolves to non-public {', '.join(internal)}"
            )
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


async def _on_request_start(
    _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any
) -> None:
    check_url_host(params.url)


async def _on_request_redirect(
    _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any
) -> None:
    location = params.response.headers.get("Location") or params.response.headers.get("URI")
    if location:
        try:
            target = params.response.url.join(URL(location))
        except ValueError:
            return  # aiohttp itself refuses a Location that is not a URL
        check_url_host(target)


def guard_trace_config(*, check_first_request: bool = True) -> aiohttp.TraceConfig:
    """A TraceConfig refusing non-public IP literals on each request and redirect
    (``check_first_request=False`` checks redirects only, for tests on loopback)."""
    trace = aiohttp.TraceConfig()
    if check_first_request:
        trace.on_request_start.append(_on_request_start)
    trace.on_request_redirect.append(_on_request_redirect)
    return trace


def find_blocked(exc: BaseException | None) -> BlockedAddressError | None:
    """The ``BlockedAddressError`` behind ``exc`` (aiohttp wraps resolver errors), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, BlockedAddressError):
            return exc
        os_error = getattr(exc, "os_error", None)
        if isinstance(os_error, BlockedAddressError):
            return os_error
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
