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
import zlib
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
from mastwatch.sources.netguard import PublicOnlyResolver, find_blocked, guard_trace_config

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
# We decompress ourselves (see _BoundedDecoder), so we only offer what we can bound.
_ACCEPT_ENCODING = "gzip, deflate"
_IDENTITY = frozenset({"", "identity"})


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
FAILURE_BLOCKED = "blocked_address"  # loopback/private/link-local without allow_private

FetchResult = Fetched | NotModified | FetchFailed


def make_session(
    settings: FetchSettings | None = None, *, allow_private: bool = False
) -> aiohttp.ClientSession:
    """An HTTP session for fetching sources. Call it inside the running event loop.

    Unless ``allow_private``, it refuses to connect to loopback, private, link-local and
    other non-global addresses, redirects included (see :mod:`mastwatch.sources.netguard`).
    Bodies are not decompressed by aiohttp: the fetcher does it with a bound.
    """
    settings = settings or FetchSettings()
    connector = aiohttp.TCPConnector(
        limit=settings.connection_limit,
        limit_per_host=4,
        ttl_dns_cache=300,
        resolver=None if allow_private else PublicOnlyResolver(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": _ACCEPT,
            "Accept-Encoding": _ACCEPT_ENCODING,
        },
        auto_decompress=False,
        timeout=_client_timeout(settings),
        trace_configs=None if allow_private else [guard_trace_config()],
    )


def body_digest(body: bytes) -> str:
    """The hash stored between polls to notice an unchanged 200."""
    return hashlib.sha256(body).hexdigest()


class Fetcher:
    """Fetches sources through a shared session, turning every problem into a FetchFailed.

    ``private_session`` (made with ``make_session(allow_private=True)``) serves the
    sources an operator allowed to reach internal addresses; without it they go through
    ``session`` like the others.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: FetchSettings,
        *,
        private_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._session = session
        self._private_session = private_session
        self._settings = settings

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        previous_body_hash: str | None = None,
        allow_private: bool = False,
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
                session = (self._private_session if allow_private else None) or self._session
                return await self._fetch_http(session, url, etag, last_modified, previous_body_hash)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, zlib.error) as exc:
            return _failure_from_exception(exc, url, self._settings)

    async def _fetch_http(
        self,
        session: aiohttp.ClientSession,
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
        async with session.get(
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
        """The decoded body, or None as soon as it grows past the cap (declared, streamed
        or decompressed: a gzip bomb stops at the cap, never inflating further)."""
        cap = self._settings.max_body_bytes
        if response.content_length is not None and response.content_length > cap:
            return None
        decoder = _BoundedDecoder(response.headers.get("Content-Encoding", ""), cap)
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            if not decoder.feed(chunk):
                return None
        return decoder.finish()

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


class UnsupportedEncodingError(ValueError):
    """The server used a Content-Encoding we did not offer and cannot bound."""


class _BoundedDecoder:
    """Decodes a Content-Encoding chunk by chunk, never producing more than ``cap`` bytes.

    ``zlib``'s ``max_length`` stops inflation at the cap, so a few kilobytes that would
    expand to gigabytes cost at most ``cap`` bytes of memory.
    """

    def __init__(self, encoding: str, cap: int) -> None:
        self._encoding = encoding.strip().lower()
        if self._encoding not in _IDENTITY | {"gzip", "x-gzip", "deflate"}:
            raise UnsupportedEncodingError(f"unsupported Content-Encoding {self._encoding[:40]!r}")
        self._cap = cap
        self._size = 0
        self._parts: list[bytes] = []
        self._inflater: zlib._Decompress | None = None

    def feed(self, chunk: bytes) -> bool:
        """Add a received chunk; False once the decoded body is larger than the cap."""
        if self._encoding in _IDENTITY:
            return self._keep(chunk)
        if self._inflater is None:
            self._inflater = zlib.decompressobj(self._wbits(chunk))
        data = chunk
        while data:
            out = self._inflater.decompress(data, self._cap + 1 - self._size)
            if not self._keep(out):
                return False
            data = self._inflater.unconsumed_tail
        return True

    def finish(self) -> bytes | None:
        """The whole decoded body, or None if the last bytes pushed it past the cap."""
        if self._inflater is not None and not self._keep(self._inflater.flush()):
            return None
        return b"".join(self._parts)

    def _wbits(self, first: bytes) -> int:
        if self._encoding != "deflate":
            return 16 + zlib.MAX_WBITS
        # "deflate" should be zlib-wrapped, but many servers send a raw stream
        return zlib.MAX_WBITS if first[:1] and first[0] & 0x0F == 8 else -zlib.MAX_WBITS

    def _keep(self, out: bytes) -> bool:
        self._size += len(out)
        if self._size > self._cap:
            self._parts.clear()
            return False
        if out:
            self._parts.append(out)
        return True


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


def _guard_or_body_failure(exc: BaseException, host: str) -> FetchFailed | None:
    """Our own refusals: an internal address, a corrupt or unsupported encoding."""
    blocked = find_blocked(exc)
    if blocked is not None:
        return FetchFailed(f"{blocked} (set allow_private to permit)", FAILURE_BLOCKED)
    if isinstance(exc, zlib.error):
        return FetchFailed(f"corrupt compressed body from {host}", FAILURE_PROTOCOL)
    if isinstance(exc, UnsupportedEncodingError):
        return FetchFailed(f"{exc} from {host}", FAILURE_PROTOCOL)
    return None


def _failure_from_exception(exc: BaseException, url: str, settings: FetchSettings) -> FetchFailed:
    """Name what went wrong; order matters, as aiohttp's timeouts are also OS and client errors.

    Reasons name the host, never the whole URL: feed URLs can carry access tokens.
    """
    host = urlsplit(url).hostname or "?"
    guarded = _guard_or_body_failure(exc, host)
    if guarded is not None:
        return guarded
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
