"""Feeds (RSS 0.9x, RSS 1.0, RSS 2.0, Atom, JSON Feed) into Items.

``parse_feed`` is pure and picklable so the pipeline can run it in a process pool. We decode
bytes ourselves (sources.decode) and hand feedparser UTF-8 in a BytesIO: feedparser treats a
bare ``bytes`` or ``str`` argument as a possible file name or URL, and a feed body must never
make it open anything. A document in the plain shape most publishers write is read by
``sources.plainfeed`` instead, to exactly what feedparser would give, at a fifth of the cost.
"""

from __future__ import annotations

import calendar
import io
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from mastwatch.errors import FetchError
from mastwatch.model import Item
from mastwatch.sources.decode import decode_document, to_utf8_xml
from mastwatch.sources.keys import RawEntry, assign_keys
from mastwatch.sources.plainfeed import read_plain_feed

JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"
# Links we hand on to Slack and email; anything else (javascript:, data:) is dropped.
_SAFE_LINK_SCHEMES = frozenset({"http", "https"})
_MAX_WARNING = 300


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What a feed document holds: its title, its items in document order, and any warning."""

    title: str | None
    items: tuple[Item, ...]
    warning: str | None = None


def parse_feed(
    body: bytes,
    *,
    source_id: str,
    http_charset: str | None = None,
    content_type: str | None = None,
    base_url: str | None = None,
) -> ParsedFeed:
    """Parse a feed document into Items.

    Raises FetchError (naming the source) when the document is not a feed at all or cannot
    be parsed; an empty but valid feed gives no items; a damaged but usable one gives its
    items and a ``warning``.
    """
    try:
        if looks_like_json(body, content_type):
            return _parse_json_feed(body, source_id, http_charset, content_type, base_url)
        return _parse_xml_feed(body, source_id, http_charset, content_type, base_url)
    except FetchError:
        raise
    except Exception as exc:  # feedparser and json can fail in many ways on hostile input
        raise FetchError(
            f"source {source_id!r}: could not parse feed: {type(exc).__name__}: {exc}"
        ) from exc


def looks_like_json(body: bytes, content_type: str | None) -> bool:
    """Whether a body is (meant as) JSON: it opens with ``{``, or is labelled JSON and
    does not open with ``<``."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return True
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type.endswith(("/json", "+json")) and not head.startswith(b"<")


# ------------------------------------------------------------------- XML: plain, or feedparser


def _parse_xml_feed(
    body: bytes,
    source_id: str,
    http_charset: str | None,
    content_type: str | None,
    base_url: str | None,
) -> ParsedFeed:
    xml = to_utf8_xml(body, http_charset, content_type)
    plain = read_plain_feed(xml)
    if plain is None:
        return parse_xml_with_feedparser(xml, source_id, base_url)
    entries = [_raw_entry(entry, base_url) for entry in plain.entries]
    return ParsedFeed(plain.title or None, assign_keys(source_id, entries))


def parse_xml_with_feedparser(xml: bytes, source_id: str, base_url: str | None) -> ParsedFeed:
    """A feed document (UTF-8, as ``to_utf8_xml`` makes it) read by feedparser: what every
    document that is not plain (sources.plainfeed) goes through."""
    result = feedparser.parse(
        io.BytesIO(xml),
        sanitize_html=False,
        resolve_relative_uris=False,
        # We already decoded: say so, so feedparser does not guess again. No
        # Content-Location: feedparser would resolve GUIDs against it and change keys.
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )
    if not result.get("version") and not result.get("entries"):
        raise FetchError(f"source {source_id!r}: the document is not an RSS, Atom or JSON feed")
    entries = [_raw_entry(entry, base_url) for entry in result.get("entries", [])]
    title = _text(result.get("feed", {}).get("title")) or None
    return ParsedFeed(title, assign_keys(source_id, entries), _bozo_warning(result))


def _raw_entry(entry: dict[str, Any], base_url: str | None) -> RawEntry:
    """An entry under feedparser's keys (from feedparser, or from the plain reader, which
    gives the same keys and values) as the RawEntry that keys and items are made from."""
    contents = entry.get("content") or []
    content = _text(contents[0].get("value")) if contents else ""
    return RawEntry(
        title=_text(entry.get("title")),
        link=_resolve_link(_text(entry.get("link")), base_url),
        guid=_text(entry.get("id")).strip() or None,
        summary=_text(entry.get("summary")),
        content=content,
        # dict.get: FeedParserDict would answer a missing updated_parsed with the
        # published one, warning that this mapping is deprecated
        published=_struct_to_utc(
            dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
        ),
        tags=_unique(_text(tag.get("term") or tag.get("label")) for tag in entry.get("tags", [])),
        author=_text(entry.get("author")) or None,
    )


def _bozo_warning(result: Mapping[str, Any]) -> str | None:
    if not result.get("bozo"):
        return None
    exc = result.get("bozo_exception")
    detail = f"{type(exc).__name__}: {exc}" if exc is not None else "malformed feed"
    return detail[:_MAX_WARNING]


def _struct_to_utc(value: Any) -> datetime | None:
    """feedparser's parsed dates are struct_time in UTC."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


# ---------------------------------------------------------------------------- JSON Feed


def _parse_json_feed(
    body: bytes,
    source_id: str,
    http_charset: str | None,
    content_type: str | None,
    base_url: str | None,
) -> ParsedFeed:
    document = json.loads(decode_document(body, http_charset, content_type).text)
    if not _is_json_feed(document):
        raise FetchError(f"source {source_id!r}: the JSON document is not a JSON Feed")
    feed_author = _json_author(document)
    items = document.get("items") or []
    if not isinstance(items, list):
        raise FetchError(f"source {source_id!r}: the JSON Feed 'items' is not a list")
    entries = [
        _entry_from_json(item, base_url, feed_author) for item in items if isinstance(item, dict)
    ]
    title = _text(document.get("title")) or None
    return ParsedFeed(title, assign_keys(source_id, entries))


def _is_json_feed(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    version = document.get("version")
    return isinstance(version, str) and version.startswith(JSON_FEED_VERSION_PREFIX)


def _entry_from_json(
    item: Mapping[str, Any], base_url: str | None, feed_author: str | None
) -> RawEntry:
    item_id = item.get("id")
    # JSON Feed says ids are strings, but some publishers write numbers.
    guid = str(item_id).strip() if isinstance(item_id, str | int) else ""
    return RawEntry(
        title=_text(item.get("title")),
        link=_resolve_link(_text(item.get("url")) or _text(item.get("external_url")), base_url),
        guid=guid or None,
        summary=_text(item.get("summary")),
        content=_text(item.get("content_html")) or _text(item.get("content_text")),
        published=_iso_to_utc(item.get("date_published") or item.get("date_modified")),
        tags=_unique(_text(tag) for tag in _list(item.get("tags"))),
        author=_json_author(item) or feed_author,
    )


def _json_author(holder: Mapping[str, Any]) -> str | None:
    """The first author's name: ``authors`` (1.1) or ``author`` (1.0)."""
    authors = _list(holder.get("authors")) or [holder.get("author")]
    first = authors[0]
    return (_text(first.get("name")) or None) if isinstance(first, dict) else None


def _iso_to_utc(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:  # RFC 3339 requires an offset; assume UTC when it is missing
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# ---------------------------------------------------------------------------- shared helpers


def _resolve_link(link: str, base_url: str | None) -> str | None:
    """The link made absolute against ``base_url`` (only when relative); None if unsafe."""
    link = link.strip()
    if not link:
        return None
    try:
        if base_url and not urlsplit(link).scheme:
            link = urljoin(base_url, link)
        scheme = urlsplit(link).scheme.lower()
    except ValueError:
        return None
    # A link still relative (no base to resolve against) is kept: it identifies the item.
    return link if scheme in _SAFE_LINK_SCHEMES or not scheme else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
