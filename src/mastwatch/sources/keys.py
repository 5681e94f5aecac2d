"""Layered item keys: how we recognise the same item on the next poll.

A GUID is the publisher's own identity for an item, but feeds reuse one GUID for every
item often enough that it is only trusted when unique within the document. The link comes
next (normalised, so tracking parameters do not make a repeat look new), and a content hash
is the last resort for items with neither.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from mastwatch.model import Item

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid"})
# Keys are stored and indexed; a feed must not be able to make them arbitrarily long.
_MAX_KEY_VALUE = 500
_HASH_LENGTH = 32


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as parsed from a document, before it has a key."""

    title: str = ""
    link: str | None = None
    guid: str | None = None
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    tags: tuple[str, ...] = ()
    author: str | None = None


def assign_keys(source_id: str, entries: Sequence[RawEntry]) -> tuple[Item, ...]:
    """Items with layered keys, in document order, duplicates (same key) collapsed to the first."""
    guid_counts = Counter(entry.guid for entry in entries if entry.guid)
    # links decide only the keys of entries without a unique GUID: in most feeds none, and
    # normalising every link (urlsplit, query sorting) was a tenth of parsing a document
    link_counts = (
        Counter(normalise_link(entry.link) for entry in entries if entry.link)
        if any(not _has_unique_guid(entry, guid_counts) for entry in entries)
        else Counter[str]()
    )
    items: list[Item] = []
    seen: set[str] = set()
    for entry in entries:
        key = _key_for(entry, guid_counts, link_counts)
        if key in seen:
            continue
        seen.add(key)
        items.append(_to_item(source_id, key, entry))
    return tuple(items)


def item_key(entry: RawEntry, *, guid_unique: bool = True, link_unique: bool = True) -> str:
    """The key of one entry, given whether its GUID and link are unique in the document."""
    if entry.guid and guid_unique:
        return "guid:" + _bounded(entry.guid)
    if entry.link and link_unique:
        return "link:" + _bounded(normalise_link(entry.link))
    return "hash:" + content_digest(entry)


def content_digest(entry: RawEntry) -> str:
    """A digest of title, publication time and body (content, else summary)."""
    published = entry.published.isoformat() if entry.published else ""
    body = entry.content or entry.summary
    digest = hashlib.sha256()
    for part in (entry.title, published, body):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")  # a separator, so ("ab", "c") and ("a", "bc") differ
    return digest.hexdigest()[:_HASH_LENGTH]


def normalise_link(url: str) -> str:
    """A canonical form of a URL for comparison.

    Lower-cases scheme and host, drops default ports, fragments and tracking parameters
    (utm_*, fbclid, gclid, ...), and sorts the query. Anything unparsable comes back stripped.
    """
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    netloc = _normalise_netloc(parts.netloc, scheme, port)
    path = parts.path or ("/" if netloc and scheme in _DEFAULT_PORTS else "")
    return urlunsplit((scheme, netloc, path, _normalise_query(parts.query), ""))


def _has_unique_guid(entry: RawEntry, guid_counts: Counter[str]) -> bool:
    return bool(entry.guid) and guid_counts[entry.guid or ""] == 1


def _key_for(entry: RawEntry, guid_counts: Counter[str], link_counts: Counter[str]) -> str:
    if _has_unique_guid(entry, guid_counts):
        return item_key(entry)  # the GUID key, whatever the link
    link_unique = bool(entry.link) and link_counts[normalise_link(entry.link or "")] == 1
    return item_key(entry, guid_unique=False, link_unique=link_unique)


def _to_item(source_id: str, key: str, entry: RawEntry) -> Item:
    return Item(
        source_id=source_id,
        key=key,
        title=entry.title,
        link=entry.link,
        guid=entry.guid,
        summary=entry.summary,
        content=entry.content,
        published=entry.published,
        tags=entry.tags,
        author=entry.author,
    )


def _bounded(value: str) -> str:
    if len(value) <= _MAX_KEY_VALUE:
        return value
    return "sha256=" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _normalise_netloc(netloc: str, scheme: str, port: int | None) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    hostport = hostport.lower()
    if (port is not None and _DEFAULT_PORTS.get(scheme) == port) or hostport.endswith(":"):
        hostport = hostport[: hostport.rfind(":")]
    return f"{userinfo}{at}{hostport}"


def _normalise_query(query: str) -> str:
    kept = [pair for pair in query.split("&") if pair and not _is_tracking(pair)]
    return "&".join(sorted(kept))


def _is_tracking(pair: str) -> bool:
    name = pair.partition("=")[0].lower()
    return name.startswith("utm_") or name in _TRACKING_PARAMS
