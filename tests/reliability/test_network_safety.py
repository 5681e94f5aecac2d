"""Sources may not reach loopback, private, link-local or metadata addresses unless the
operator sets ``allow_private``; redirects are checked again at every hop."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from support import slack_texts

from daemon_fixtures import Servers, run_once, source, source_states, write_config
from mastwatch.sources.http import FAILURE_BLOCKED, Fetcher, FetchFailed, FetchSettings
from mastwatch.sources.netguard import (
    BlockedAddressError,
    PublicOnlyResolver,
    guard_trace_config,
    is_public_address,
)
from mastwatch.testing.feeds import rss

ITEM = {"title": "Japan trims its US Treasuries", "guid": "n-1"}


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
        "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "0.0.0.0", "::",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "fe80::1", "224.0.0.1", "not-an-ip",
    ],
)  # fmt: skip
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_global_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(BlockedAddressError, match="localhost"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_loopback_sources_need_allow_private(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/internal.xml", rss([ITEM]))
    port = servers.feeds.url("").split(":")[-1]
    sources = [
        source(servers, "/internal.xml", "literal", allow_private=False),
        {"id": "by-name", "url": f"http://localhost:{port}/internal.xml", "allow_private": False},
        {"id": "metadata", "url": "http://169.254.169.254/latest/meta-data/"},
        source(servers, "/internal.xml", "allowed", allow_private=True),
    ]
    config = write_config(tmp_path, servers, [{"allow_private": False, **s} for s in sources])

    daemon = await run_once(config)

    states = await source_states(daemon)
    for refused in ("literal", "by-name", "metadata"):
        assert (states[refused].last_error or "").startswith(FAILURE_BLOCKED), refused
    assert states["allowed"].last_error is None
    assert len(servers.feeds.requests("/internal.xml")) == 1  # only the allowed source's
    assert len(slack_texts(servers)) == 1


@pytest.mark.parametrize(
    "target", ["/internal.xml", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x"]
)
async def test_redirects_to_internal_addresses_are_refused(servers: Servers, target: str) -> None:
    feeds = servers.feeds
    feeds.add_feed("/internal.xml", rss([ITEM]))
    absolute = target if target.startswith("http") else feeds.url(target)
    feeds.add_redirect("/public.xml", absolute)
    settings = FetchSettings(total_timeout=5)
    # the first hop stands in for a public server (only loopback exists here): the guard
    # checks redirects only, exactly as it does after a real public first hop
    session = aiohttp.ClientSession(trace_configs=[guard_trace_config(check_first_request=False)])
    async with session:
        result = await Fetcher(session, settings).fetch(feeds.url("/public.xml"))

    assert isinstance(result, FetchFailed)
    assert result.failure_class == FAILURE_BLOCKED
    assert feeds.requests("/internal.xml") == []
