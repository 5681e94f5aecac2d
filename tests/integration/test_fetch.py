"""The fetcher against a real local HTTP server (FeedServer) and real files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from mastwatch.sources.http import (
    Fetched,
    Fetcher,
    FetchFailed,
    FetchSettings,
    NotModified,
    body_digest,
    make_session,
    parse_retry_after,
)
from mastwatch.testing.feeds import FeedServer, rss

SETTINGS = FetchSettings(total_timeout=5.0, connect_timeout=2.0, read_timeout=5.0)
FEED = rss([{"title": "Tariffs", "link": "https://e.example/1", "guid": "1"}])
LAST_MODIFIED = "Wed, 01 May 2024 09:00:00 GMT"


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as feed_server:
        yield feed_server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with make_session(SETTINGS, allow_private=True) as client_session:
        yield client_session


@pytest.fixture
def fetcher(session: aiohttp.ClientSession) -> Fetcher:
    return Fetcher(session, SETTINGS)


async def test_200_then_304_with_validators_sent_verbatim(
    server: FeedServer, fetcher: Fetcher
) -> None:
    etag = 'W/"weird etag, with comma"'
    server.add_feed("/f.xml", FEED, etag=etag, last_modified=LAST_MODIFIED)

    first = await fetcher.fetch(server.url("/f.xml"))
    assert isinstance(first, Fetched)
    assert (first.status, first.body, first.body_hash) == (200, FEED, body_digest(FEED))
    assert (first.etag, first.last_modified) == (etag, LAST_MODIFIED)
    assert first.content_type == "application/rss+xml"

    second = await fetcher.fetch(
        server.url("/f.xml"),
        etag=first.etag,
        last_modified=first.last_modified,
        previous_body_hash=first.body_hash,
    )
    assert second == NotModified(etag, LAST_MODIFIED, "304")
    _, headers = server.requests("/f.xml")[1]
    assert headers["If-None-Match"] == etag
    assert headers["If-Modified-Since"] == LAST_MODIFIED
    assert "If-None-Match" not in server.requests("/f.xml")[0][1]


async def test_304_keeps_old_validators_unless_new_ones_are_sent(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.add_feed("/f.xml", FEED, etag=None, last_modified=LAST_MODIFIED)
    result = await fetcher.fetch(server.url("/f.xml"), etag='"old"', last_modified=LAST_MODIFIED)
    # If-None-Match decides when present, and "old" no longer matches: a full 200.
    assert isinstance(result, Fetched)
    result = await fetcher.fetch(server.url("/f.xml"), etag=None, last_modified=LAST_MODIFIED)
    assert result == NotModified(None, LAST_MODIFIED, "304")


async def test_updated_feed_is_fetched_again(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_feed("/f.xml", FEED)
    first = await fetcher.fetch(server.url("/f.xml"))
    assert isinstance(first, Fetched)
    changed = rss([{"title": "New", "guid": "2"}])
    server.update_feed("/f.xml", changed)
    second = await fetcher.fetch(
        server.url("/f.xml"), etag=first.etag, previous_body_hash=first.body_hash
    )
    assert isinstance(second, Fetched)
    assert second.body == changed
    assert second.etag not in (None, first.etag)


async def test_same_body_200_is_not_modified_with_the_new_validators(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.add_feed("/f.xml", FEED, etag='"v2"')
    result = await fetcher.fetch(
        server.url("/f.xml"), etag='"v1"', previous_body_hash=body_digest(FEED)
    )
    assert result == NotModified('"v2"', None, "same-body")


async def test_gzip_bodies_are_decompressed(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_feed("/gz.xml", FEED, compress=True)
    result = await fetcher.fetch(server.url("/gz.xml"))
    assert isinstance(result, Fetched)
    assert result.body == FEED


async def test_charset_and_final_url_after_a_redirect(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_feed("/new.xml", FEED, content_type="text/xml; charset=Shift_JIS")
    server.add_redirect("/old.xml", "/new.xml", status=301)
    result = await fetcher.fetch(server.url("/old.xml"))
    assert isinstance(result, Fetched)
    assert (result.url, result.final_url) == (server.url("/old.xml"), server.url("/new.xml"))
    assert (result.content_type, result.http_charset) == ("text/xml", "Shift_JIS")


async def test_500_is_an_http_status_failure(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_status("/f.xml", 500)
    result = await fetcher.fetch(server.url("/f.xml"))
    assert isinstance(result, FetchFailed)
    assert (result.failure_class, result.status, result.permanent) == ("http_status", 500, False)
    assert "500" in result.reason


async def test_429_with_retry_after_seconds(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_status("/f.xml", 429, {"Retry-After": "120"})
    result = await fetcher.fetch(server.url("/f.xml"))
    assert isinstance(result, FetchFailed)
    assert (result.failure_class, result.status, result.retry_after) == ("http_status", 429, 120.0)


async def test_503_with_retry_after_date(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_status("/f.xml", 503, {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"})
    result = await fetcher.fetch(server.url("/f.xml"))
    assert isinstance(result, FetchFailed)
    assert result.retry_after is not None and result.retry_after > 365 * 24 * 3600


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Tue, 30 Apr 2024 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


async def test_410_is_permanent(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_status("/gone.xml", 410)
    result = await fetcher.fetch(server.url("/gone.xml"))
    assert isinstance(result, FetchFailed)
    assert (result.status, result.permanent) == (410, True)


async def test_slow_server_times_out(server: FeedServer, session: aiohttp.ClientSession) -> None:
    server.add_slow("/slow.xml", delay=30)
    fetcher = Fetcher(session, replace(SETTINGS, total_timeout=0.5, read_timeout=0.5))
    result = await fetcher.fetch(server.url("/slow.xml"))
    assert isinstance(result, FetchFailed)
    assert result.failure_class == "timeout"
    assert "127.0.0.1" in result.reason


async def test_redirect_loop_is_cut(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_redirect_loop("/loop.xml")
    result = await fetcher.fetch(server.url("/loop.xml"))
    assert isinstance(result, FetchFailed)
    assert result.failure_class == "redirects"
    assert 1 < len(server.requests("/loop.xml")) <= SETTINGS.max_redirects + 1


@pytest.mark.parametrize("declare_length", [False, True])
async def test_body_over_the_cap_is_too_large(
    server: FeedServer, session: aiohttp.ClientSession, declare_length: bool
) -> None:
    server.add_huge("/huge.xml", 2_000_000, declare_length=declare_length)
    fetcher = Fetcher(session, replace(SETTINGS, max_body_bytes=200_000))
    result = await fetcher.fetch(server.url("/huge.xml"))
    assert isinstance(result, FetchFailed)
    assert result.failure_class == "too_large"


async def test_connection_refused_is_a_connect_failure(fetcher: Fetcher) -> None:
    async with FeedServer() as closed_soon:
        url = closed_soon.url("/f.xml")
    result = await fetcher.fetch(url)
    assert isinstance(result, FetchFailed)
    assert result.failure_class == "connect"


@pytest.mark.parametrize("url", ["ftp://e.example/feed", "http://", "notaurl"])
async def test_invalid_urls_fail_without_raising(fetcher: Fetcher, url: str) -> None:
    result = await fetcher.fetch(url)
    assert isinstance(result, FetchFailed)
    assert result.failure_class == "invalid_url"


async def test_user_agent_names_mastwatch(server: FeedServer, fetcher: Fetcher) -> None:
    server.add_feed("/f.xml", FEED)
    await fetcher.fetch(server.url("/f.xml"))
    _, headers = server.requests("/f.xml")[0]
    assert headers["User-Agent"].startswith("mastwatch/")
    assert "gzip" in headers["Accept-Encoding"]


async def test_file_urls(tmp_path: Path, fetcher: Fetcher) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    result = await fetcher.fetch(path.as_uri())
    assert isinstance(result, Fetched)
    assert (result.body, result.status, result.etag) == (FEED, 200, None)
    again = await fetcher.fetch(path.as_uri(), previous_body_hash=result.body_hash)
    assert again == NotModified(None, None, "same-body")


async def test_file_url_missing_or_too_large(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    fetcher = Fetcher(session, replace(SETTINGS, max_body_bytes=10))
    missing = await fetcher.fetch((tmp_path / "absent.xml").as_uri())
    assert isinstance(missing, FetchFailed)
    assert missing.failure_class == "file"
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * 11)
    too_large = await fetcher.fetch(big.as_uri())
    assert isinstance(too_large, FetchFailed)
    assert too_large.failure_class == "too_large"
