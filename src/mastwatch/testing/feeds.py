"""A local feed server and small feed builders for tests and benchmarks.

::

    async with FeedServer() as server:
        server.add_feed("/news.xml", rss([{"title": "Tariffs", "link": "https://ex.org/1"}]))
        result = await fetcher.fetch(server.url("/news.xml"))
        assert server.requests("/news.xml")[0][0] == "GET"

Feeds answer conditional requests with 304 like a well-behaved server; fault endpoints
(statuses, slow answers, redirect loops, huge bodies) let tests reach every failure branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import itertools
import json
import re
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RequestRecord = tuple[str, CIMultiDictProxy[str]]

_HUGE_CHUNK = 64 * 1024
# An entity-tag (RFC 9110 8.8.3) may itself contain commas, so a list is not split on them.
# Bare tokens are accepted too, as sloppy servers and clients use them.
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"|\*|[^\s,"]+')


@dataclass
class _Feed:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    compress: bool
    headers: Mapping[str, str]


class FeedServer:
    """An aiohttp server on 127.0.0.1 (a free port) serving registered feeds and faults."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._feeds: dict[str, _Feed] = {}
        self._log: dict[str, list[RequestRecord]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._etag_counter = itertools.count(1)

    async def start(self) -> None:
        """Bind and serve; ``async with`` does this for you."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # A short shutdown timeout: slow handlers are woken by stop() instead.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Wake slow handlers and shut the server down."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self._port}{path}"

    def requests(self, path: str) -> list[RequestRecord]:
        """Every request made to ``path``: (method, headers), oldest first."""
        return list(self._log.get(path, []))

    # --- feeds ---------------------------------------------------------------------------

    def add_feed(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/rss+xml",
        *,
        etag: str | bool | None = True,
        last_modified: str | None = None,
        compress: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve ``body`` at ``path``, answering 304 to matching validators.

        ``etag=True`` makes one up from a counter and the body; a string is used verbatim;
        None or False sends no ETag. ``compress`` serves it gzip-encoded.
        """
        self._feeds[path] = _Feed(
            body=body,
            content_type=content_type,
            etag=self._make_etag(etag, body),
            last_modified=last_modified,
            compress=compress,
            headers=dict(headers or {}),
        )
        self._handlers[path] = self._serve_feed

    def update_feed(
        self,
        path: str,
        body: bytes,
        *,
        etag: str | bool | None = True,
        last_modified: str | None = None,
    ) -> None:
        """Change a feed's body; it gets a new ETag, and a later Last-Modified if it had one."""
        feed = self._feeds[path]
        feed.body = body
        feed.etag = self._make_etag(etag, body)
        if last_modified is not None:
            feed.last_modified = last_modified
        elif feed.last_modified is not None:
            feed.last_modified = _later_http_date(feed.last_modified)

    # --- faults --------------------------------------------------------------------------

    def add_status(
        self,
        path: str,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Always answer ``status`` with these headers."""
        fixed_headers = dict(headers or {})

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers=fixed_headers, body=body)

        self._handlers[path] = handler

    def add_slow(
        self,
        path: str,
        delay: float,
        body: bytes = b"<rss version='2.0'><channel/></rss>",
        content_type: str = "application/rss+xml",
    ) -> None:
        """Wait ``delay`` seconds (or until the server stops) before answering."""

        async def handler(_request: web.Request) -> web.StreamResponse:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
            return web.Response(body=body, content_type=content_type)

        self._handlers[path] = handler

    def add_redirect(self, path: str, target: str, status: int = 302) -> None:
        """Redirect ``path`` to ``target`` (a path on this server or an absolute URL)."""

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": target})

        self._handlers[path] = handler

    def add_redirect_loop(self, path: str) -> None:
        """Redirect ``path`` to itself, forever."""
        self.add_redirect(path, path)

    def add_huge(self, path: str, size: int, *, declare_length: bool = False) -> None:
        """Stream ``size`` bytes of a feed-like body, chunked unless ``declare_length``."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
            if declare_length:
                response.content_length = size
            await response.prepare(request)
            try:
                for offset in range(0, size, _HUGE_CHUNK):
                    await response.write(b"x" * min(_HUGE_CHUNK, size - offset))
            except (ConnectionError, RuntimeError):  # the client gave up, as it should
                return response
            await response.write_eof()
            return response

        self._handlers[path] = handler

    def add_trickle(self, path: str, body: bytes, interval: float = 1.0) -> None:
        """Send ``body`` one byte every ``interval`` seconds (a slow-loris server)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, RuntimeError):
                for byte in body:
                    await response.write(bytes([byte]))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), timeout=interval)
                    if self._closing.is_set():
                        break
            return response

        self._handlers[path] = handler

    def add_gzip_bomb(self, path: str, inflated_size: int) -> int:
        """Serve ``inflated_size`` zero bytes gzip-compressed (about 1,000:1); returns the
        compressed size actually sent."""
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(_HUGE_CHUNK * 16)
        parts = [compressor.compress(block) for _ in range(inflated_size // len(block))]
        bomb = b"".join(parts) + compressor.flush()
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=bomb, headers=headers)

        self._handlers[path] = handler
        return len(bomb)

    def add_reset(self, path: str) -> None:
        """Drop the connection without answering."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()

        self._handlers[path] = handler

    def add_handler(self, path: str, handler: Handler) -> None:
        """Serve ``path`` with any aiohttp handler, for cases the helpers above do not cover."""
        self._handlers[path] = handler

    # --- internals -----------------------------------------------------------------------

    def _make_etag(self, etag: str | bool | None, body: bytes) -> str | None:
        if etag is True:
            digest = hashlib.sha256(body).hexdigest()[:16]
            return f'"{next(self._etag_counter)}-{digest}"'
        return etag or None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self._log.setdefault(request.path, []).append(
            (request.method, CIMultiDictProxy(CIMultiDict(request.headers)))
        )
        handler = self._handlers.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such feed")
        return await handler(request)

    async def _serve_feed(self, request: web.Request) -> web.StreamResponse:
        feed = self._feeds[request.path]
        headers = dict(feed.headers)
        if feed.etag:
            headers["ETag"] = feed.etag
        if feed.last_modified:
            headers["Last-Modified"] = feed.last_modified
        if _not_modified(request, feed):
            return web.Response(status=304, headers=headers)
        body = feed.body
        if feed.compress and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = feed.content_type
        return web.Response(body=body, headers=headers)


def _not_modified(request: web.Request, feed: _Feed) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = set(_ENTITY_TAG.findall(if_none_match))
        return feed.etag is not None and ("*" in tags or feed.etag in tags)
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since is None or feed.last_modified is None:
        return False
    if if_modified_since == feed.last_modified:
        return True
    try:
        return parsedate_to_datetime(feed.last_modified) <= parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False


def _later_http_date(value: str) -> str:
    try:
        when = parsedate_to_datetime(value) + timedelta(seconds=1)
    except (TypeError, ValueError):
        when = datetime.now(UTC)
    return http_date(when)


def http_date(when: datetime) -> str:
    """An HTTP date (IMF-fixdate), e.g. for Last-Modified."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


# --- feed builders -------------------------------------------------------------------------


def rss(
    items: Iterable[Mapping[str, Any]],
    title: str = "Test feed",
    link: str = "https://example.org/",
) -> bytes:
    """A small RSS 2.0 document.

    Item keys: title, link, guid, description, content (content:encoded), author,
    published (datetime or a ready RFC 822 string) and categories (a list).
    """
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        f"<channel><title>{escape(title)}</title><link>{escape(link)}</link>",
        "<description>Test feed</description>",
    ]
    parts.extend(_rss_item(item) for item in items)
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


def _rss_item(item: Mapping[str, Any]) -> str:
    fields = [
        _element("title", item.get("title")),
        _element("link", item.get("link")),
        _element("description", item.get("description")),
        _element("content:encoded", item.get("content")),
        _element("author", item.get("author")),
        _element("pubDate", _rfc822(item.get("published"))),
    ]
    guid = item.get("guid")
    if guid is not None:
        fields.append(f'<guid isPermaLink="false">{escape(str(guid))}</guid>')
    fields.extend(_element("category", term) for term in item.get("categories", ()))
    return "<item>" + "".join(fields) + "</item>"


def atom(
    entries: Iterable[Mapping[str, Any]],
    title: str = "Test feed",
    feed_id: str = "urn:mastwatch:test-feed",
) -> bytes:
    """A small Atom 1.0 document.

    Entry keys: id, title, link, summary, content (HTML), author, updated and published
    (datetimes) and categories (a list).
    """
    updated = datetime(2024, 1, 1, tzinfo=UTC).isoformat()
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title><id>{escape(feed_id)}</id><updated>{updated}</updated>",
    ]
    parts.extend(_atom_entry(entry) for entry in entries)
    parts.append("</feed>")
    return "\n".join(parts).encode("utf-8")


def _atom_entry(entry: Mapping[str, Any]) -> str:
    fields = [
        _element("id", entry.get("id")),
        _element("title", entry.get("title")),
        _element("summary", entry.get("summary")),
        _element("updated", _iso(entry.get("updated"))),
        _element("published", _iso(entry.get("published"))),
    ]
    if entry.get("link") is not None:
        fields.append(f"<link rel='alternate' href={quoteattr(str(entry['link']))}/>")
    if entry.get("content") is not None:
        fields.append(f"<content type='html'>{escape(str(entry['content']))}</content>")
    if entry.get("author") is not None:
        fields.append(f"<author><name>{escape(str(entry['author']))}</name></author>")
    fields.extend(f"<category term={quoteattr(str(t))}/>" for t in entry.get("categories", ()))
    return "<entry>" + "".join(fields) + "</entry>"


def json_feed(items: Iterable[Mapping[str, Any]], title: str = "Test feed") -> bytes:
    """A JSON Feed 1.1 document; items use JSON Feed's own keys (id, url, content_text, ...)."""
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "items": [_json_ready(item) for item in items],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _json_ready(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()}


def _element(name: str, value: Any) -> str:
    return "" if value is None else f"<{name}>{escape(str(value))}</{name}>"


def _rfc822(value: Any) -> str | None:
    return format_datetime(value) if isinstance(value, datetime) else value


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value
