"""The fetcher: one conditional GET per poll, with limits, that never raises for the network.

Every outcome is a value: ``Fetched`` (a new body), ``NotModified`` (a 304, or a 200 whose body
hashes the same as last time, so it costs no parse) or ``FetchFailed`` (with a reason that names
what went wrong and a class the scheduler uses to back off). Validators are stored and sent
back verbatim, as servers compare them byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

import aiohttp
import structlog
from yarl import URL

from mastwatch import __version__

log = structlog.get_logger(__name__)

DEFAULT_USER_AGENT = f"mastwatch/{__version__} (+https://github.com/mastwatch/mastwatch)"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_CHUNK_BYTES = 64 * 1024
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_GONE = 410
_DELTA_SECONDS = re.compile(r"^\s*(\d{1,10})(?:\.\d+)?\s*$")
_MAX_REASON = 200


@dataclass(frozen=True)
class FetchSettings:
    """Limits and identity for every fetch."""

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    read_timeout: float = 20.0  # the longest silence between two reads of a response
    connection_limit: int = 32


@dataclass(frozen=True)
class Fetched:
    """A new body to parse."""

    url: str
    final_url: str
    status: int
    body: bytes
    content_type: str | None  # the media type only, lower-case, e.g. "application/rss+xml"
    http_charset: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str


@dataclass(frozen=True)
class NotModified:
    """Nothing new: a 304, or a 200 whose body is byte for byte the last one."""

    etag: str | None
    last_modified: str | None
    reason: Literal["304", "same-body"]


@dataclass(frozen=True)
class FetchFailed:
    """The fetch failed; ``failure_class`` is one of the FAILURE_* names below."""

    reason: str
    failure_class: str
    status: int | None = None
    retry_after: float | None = None
    permanent: bool = False


FAILURE_TIMEOUT = "timeout"
FAILURE_CONNECT = "connect"
FAILURE_HTTP_STATUS = "http_status"
FAILURE_TOO_LARGE = "too_large"
FAILURE_REDIRECTS = "redirects"
FAILURE_INVALID_URL = "invalid_url"
FAILURE_PROTOCOL = "protocol"  # the server's response was malformed or cut short
FAILURE_FILE = "file"

FetchResult = Fetched | NotModified | FetchFailed


def make_session(settings: FetchSettings | None = None) -> aiohttp.ClientSession:
    """The one HTTP session the daemon shares. Call it inside the running event loop."""
    settings = settings or FetchSettings()
    connector = aiohttp.TCPConnector(
        limit=settings.connection_limit, limit_per_host=4, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": settings.user_agent, "Accept": _ACCEPT},
        auto_decompress=True,
        timeout=_client_timeout(settings),
    )


def body_digest(body: bytes) -> str:
    """The hash stored between polls to notice an unchanged 200."""
    return hashlib.sha256(body).hexdigest()


class Fetcher:
    """Fetches sources through a shared session, turning every problem into a FetchFailed."""

    def __init__(self, session: aiohttp.ClientSession, settings: FetchSettings) -> None:
        self._session = session
        self._settings = settings

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        previous_body_hash: str | None = None,
    ) -> FetchResult:
        """Fetch ``url`` conditionally; never raises for network, server or file problems."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return await self._fetch_file(url, previous_body_hash)
        if scheme not in ("http", "https"):
            return FetchFailed(
                f"unsupported URL scheme {scheme!r}", FAILURE_INVALID_URL, permanent=True
            )
        try:
            async with asyncio.timeout(self._settings.total_timeout):
                return await self._fetch_http(url, etag, last_modified, previous_body_hash)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return _failure_from_exception(exc, url, self._settings)

    async def _fetch_http(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        previous_body_hash: str | None,
    ) -> FetchResult:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self._session.get(
            URL(url),
            headers=headers,
            timeout=_client_timeout(self._settings),
            max_redirects=self._settings.max_redirects,
        ) as response:
            if response.status == 304:
                return NotModified(
                    response.headers.get("ETag") or etag,
                    response.headers.get("Last-Modified") or last_modified,
                    "304",
                )
            if not 200 <= response.status < 300:
                return _status_failure(response)
            body = await self._read_capped(response)
            if body is None:
                return self._too_large()
            return _fetched_or_same(url, response, body, previous_body_hash)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes | None:
        """The body, or None as soon as it grows past the cap (declared or streamed)."""
        cap = self._settings.max_body_bytes
        if response.content_length is not None and response.content_length > cap:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> FetchFailed:
        cap = self._settings.max_body_bytes
        return FetchFailed(f"body is larger than {cap} bytes", FAILURE_TOO_LARGE)

    async def _fetch_file(self, url: str, previous_body_hash: str | None) -> FetchResult:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return FetchFailed(f"file URL on a remote host {parts.netloc!r}", FAILURE_INVALID_URL)
        path = Path(url2pathname(parts.path))
        try:
            body = await asyncio.to_thread(_read_file_capped, path, self._settings.max_body_bytes)
        except OSError as exc:
            return FetchFailed(f"cannot read {path}: {exc.strerror or exc}", FAILURE_FILE)
        if body is None:
            return self._too_large()
        body_hash = body_digest(body)
        if body_hash == previous_body_hash:
            return NotModified(None, None, "same-body")
        content_type = mimetypes.guess_type(path.name)[0]
        return Fetched(url, url, 200, body, content_type, None, None, None, body_hash)


def _client_timeout(settings: FetchSettings) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=settings.total_timeout,
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )


def _read_file_capped(path: Path, cap: int) -> bytes | None:
    with path.open("rb") as handle:
        body = handle.read(cap + 1)
    return None if len(body) > cap else body


def _fetched_or_same(
    url: str, response: aiohttp.ClientResponse, body: bytes, previous_body_hash: str | None
) -> Fetched | NotModified:
    etag = response.headers.get("ETag")
    last_modified = response.headers.get("Last-Modified")
    body_hash = body_digest(body)
    if body_hash == previous_body_hash:
        return NotModified(etag, last_modified, "same-body")
    has_content_type = "Content-Type" in response.headers
    return Fetched(
        url=url,
        final_url=str(response.url),
        status=response.status,
        body=body,
        content_type=response.content_type.lower() if has_content_type else None,
        http_charset=response.charset if has_content_type else None,
        etag=etag,
        last_modified=last_modified,
        body_hash=body_hash,
    )


def _status_failure(response: aiohttp.ClientResponse) -> FetchFailed:
    status = response.status
    reason = f"HTTP {status} {response.reason or ''}".strip()[:_MAX_REASON]
    retry_after = None
    if status in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return FetchFailed(
        reason,
        FAILURE_HTTP_STATUS,
        status=status,
        retry_after=retry_after,
        permanent=status == _GONE,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    seconds = _DELTA_SECONDS.match(value)
    if seconds:
        return float(seconds.group(1))
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _failure_from_exception(exc: BaseException, url: str, settings: FetchSettings) -> FetchFailed:
    """Name what went wrong; order matters, as aiohttp's timeouts are also OS and client errors.

    Reasons name the host, never the whole URL: feed URLs can carry access tokens.
    """
    host = urlsplit(url).hostname or "?"
    if isinstance(exc, aiohttp.TooManyRedirects):
        reason = f"more than {settings.max_redirects} redirects from {host}"
        return FetchFailed(reason, FAILURE_REDIRECTS)
    if isinstance(exc, TimeoutError):
        kind = "connecting to" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "fetching"
        reason = f"timed out {kind} {host} (limit {settings.total_timeout:g} s)"
        return FetchFailed(reason, FAILURE_TIMEOUT)
    if isinstance(exc, ValueError):  # includes aiohttp.InvalidURL and bad redirect targets
        return FetchFailed(
            f"invalid URL or request for {host}: {type(exc).__name__}", FAILURE_INVALID_URL
        )
    if isinstance(exc, OSError):  # includes aiohttp.ClientConnectorError and ClientOSError
        return FetchFailed(f"cannot connect to {host}: {exc}", FAILURE_CONNECT)
    log.info("fetch_client_error", host=host, error=type(exc).__name__)
    return FetchFailed(f"bad response from {host}: {type(exc).__name__}: {exc}", FAILURE_PROTOCOL)
