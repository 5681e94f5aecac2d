"""Feeds in the plain shape most publishers write, read without feedparser's machinery and
to exactly what feedparser reads from them.

feedparser handles every dialect and every mistake, one Python call per tag and per run of
text: about 4 ms for a feed of 30 items, most of a cold cycle's CPU. A *plain* RSS 2.0,
RSS 1.0 or Atom 1.0 document is read here with ElementTree (expat, in C) in a fifth of
that. Plain means: well-formed; no DOCTYPE and no ``xml:base``; only the elements listed
below, in their usual places, each at most once in an item except categories and links;
text elements holding text only (no child elements), with no ``type`` other than Atom's
``text`` and ``html``. Anything else gives None, and feedparser reads the document.

What comes out is the part of feedparser's result that ``sources.feed`` reads: the feed's
title and, per entry, the keys ``title``, ``link``, ``id``, ``summary``, ``content``,
``published_parsed``, ``updated_parsed``, ``tags`` and ``author``, each with the value
feedparser would give, computed by feedparser's own rules (below, ``_text`` follows
``_FeedParserMixin.pop``) and helpers (its date parser, URI joiner and cp1252 table).
tests/unit/test_plainfeed.py checks the equality over feedparser's own test corpus and
over generated documents.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin

_RSS1 = "{http://purl.org/rss/1.0/}"
_ATOM = "{http://www.w3.org/2005/Atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_SY = "{http://purl.org/rss/1.0/modules/syndication/}"
_WFW = "{http://wellformedweb.org/CommentAPI/}"
_SLASH = "{http://purl.org/rss/1.0/modules/slash/}"
_MEDIA = "{http://search.yahoo.com/mrss/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_HTML_TYPES = _FeedParserMixin.html_types
_map_content_type: Callable[[str], str] = _FeedParserMixin.map_content_type
# feedparser's repair of query strings in RSS <link> text read as entity references
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
# the characters feedparser's cp1252 map changes (all C1 controls), as one class
_C1_MAPPED = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_cp1252)) + "]")

# Leaf elements of a channel (or an Atom feed) that touch neither the feed's title nor
# its entries in feedparser; anything else there sends the document to feedparser.
_RSS2_CHANNEL_LEAVES = frozenset(
    {
        "link",
        "description",
        "language",
        "copyright",
        "managingEditor",
        "webMaster",
        "pubDate",
        "lastBuildDate",
        "category",
        "generator",
        "docs",
        "ttl",
        _ATOM + "link",
        _SY + "updatePeriod",
        _SY + "updateFrequency",
        _SY + "updateBase",
        _DC + "language",
        _DC + "rights",
        _DC + "date",
        _DC + "publisher",
        _DC + "creator",
    }
)
_RSS1_CHANNEL_LEAVES = frozenset(
    {_RSS1 + "link", _RSS1 + "description"}
    | {t for t in _RSS2_CHANNEL_LEAVES if t.startswith((_DC, _SY))}
)
_ATOM_FEED_LEAVES = frozenset(
    _ATOM + name
    for name in ("id", "link", "updated", "subtitle", "generator", "icon", "logo", "rights")
)
# Leaf elements of an RSS item that feedparser keeps under keys of their own (comment
# links, counts, publisher, rights, thumbnails...), never in the fields read here; common
# in WordPress and ministry feeds.
_RSS_ITEM_LEAVES = frozenset(
    {
        "enclosure",
        "comments",
        _WFW + "comment",
        _WFW + "commentRss",
        _SLASH + "comments",
        _DC + "publisher",
        _DC + "rights",
        _DC + "language",
        _DC + "identifier",
        _DC + "type",
        _DC + "format",
        _MEDIA + "thumbnail",
        _MEDIA + "content",
    }
)
_RSS2_IMAGE_CHILDREN = frozenset({"title", "url", "link", "width", "height", "description"})
_ATOM_AUTHOR_CHILDREN = frozenset({_ATOM + "name", _ATOM + "email", _ATOM + "uri"})


class NotPlain(Exception):
    """The document is not plain: feedparser reads it."""


@dataclass(frozen=True, slots=True)
class PlainFeed:
    """The feed's title (feedparser's ``feed.title``) and its entries as feedparser's keys."""

    title: str | None
    entries: list[dict[str, Any]]


def read_plain_feed(xml: bytes) -> PlainFeed | None:
    """The feed in ``xml`` (UTF-8, as handed to feedparser), or None if it is not plain."""
    # a DTD may define entities; xml:base changes how feedparser resolves links
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml or b"xml:base" in xml:
        return None
    try:
        root = ET.fromstring(xml)  # noqa: S314 (no DTD, so no entity expansion)
        return _read_root(root)
    except (ET.ParseError, NotPlain):
        return None


def _read_root(root: ET.Element) -> PlainFeed:
    if root.tag == "rss":
        return _Reader().rss2(root)
    if root.tag == _RDF + "RDF":
        return _Reader().rss1(root)
    if root.tag == _ATOM + "feed":
        return _Reader().atom(root)
    raise NotPlain


# ---------------------------------------------------------------------------- text, as pop() does


def _text(element: ET.Element, *, uri: bool = False) -> str:
    """An element's text as feedparser's ``pop`` returns it for an element that expects
    text: stripped, joined to the (empty) base URI if it may be a relative URI, UTF-8
    misread as Latin-1 repaired, cp1252's extra characters mapped."""
    _only_text(element)
    output = (element.text or "").strip()
    if uri and output:
        output = _urljoin("", output)
    if output.isascii():  # no Latin-1 bytes to repair, no C1 character to map
        return output
    try:  # noqa: SIM105 (once per text: a try costs nothing, a suppress() a call)
        output = output.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    # translate() looks every character up in the map: 14 us for a Japanese summary,
    # where a search for the 27 characters it maps is 1 us and usually finds none
    return output.translate(_cp1252) if _C1_MAPPED.search(output) else output


def _only_text(element: ET.Element) -> None:
    if len(element):
        raise NotPlain


def _attributes(element: ET.Element, allowed: frozenset[str] = frozenset()) -> dict[str, str]:
    """The element's attributes; xml:lang is always allowed, anything not in ``allowed``
    makes the document not plain."""
    attributes = element.attrib
    if attributes and not attributes.keys() <= allowed | {_XML_LANG}:
        raise NotPlain
    return attributes


_ATOM_TEXT_ATTRIBUTES = frozenset({"type"})


def _atom_text(element: ET.Element) -> str:
    """An Atom text construct of type text or html (xhtml is left to feedparser)."""
    kind = _attributes(element, _ATOM_TEXT_ATTRIBUTES).get("type", "text").lower()
    if kind not in ("text", "html"):
        raise NotPlain
    return _text(element)


# ---------------------------------------------------------------------------- entries


@dataclass(slots=True)
class _Entry:
    """One entry as feedparser builds it, for the keys sources.feed reads."""

    values: dict[str, Any] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    tags: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)

    def once(self, key: str) -> None:
        """Each of these elements at most once per entry: feedparser's rules for repeats
        differ by element (first title, last date...), so repeats go to it."""
        if key in self.seen:
            raise NotPlain
        self.seen.add(key)

    def set(self, key: str, value: Any) -> None:
        self.once(key)
        self.values[key] = value

    def setdefault(self, key: str, value: Any) -> None:
        self.values.setdefault(key, value)

    def guid(self, value: str, *, is_link: bool) -> None:
        """``_end_guid``: the id, and the link too while none is set (a later link
        element replaces it)."""
        self.set("id", value)
        if is_link:
            self.setdefault("link", value)

    def category(self, element: ET.Element) -> None:
        """``_start_category`` and ``_end_category``, tags being (term, scheme, label)."""
        attributes = _attributes(element, frozenset({"term", "scheme", "domain", "label"}))
        scheme = attributes.get("scheme", attributes.get("domain"))
        self._add_tag(attributes.get("term"), scheme, attributes.get("label"))
        value = _text(element)
        if not value:
            return
        if self.tags and not self.tags[-1][0]:
            _term, scheme, label = self.tags[-1]
            self.tags[-1] = (value, scheme, label)
        else:
            self._add_tag(value, None, None)

    def _add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        if not (term or scheme or label):
            return
        if (term, scheme, label) not in self.tags:
            self.tags.append((term, scheme, label))

    def finish(self) -> dict[str, Any]:
        if self.tags:
            self.values["tags"] = [{"term": t, "label": label} for t, _s, label in self.tags]
        return self.values


class _Reader:
    """Walks one document in order, keeping feedparser's ``title_depth``: a title is stored
    unless one was already stored at its depth or above since the last entry or image."""

    def __init__(self) -> None:
        self.title_depth = -1
        self.feed_title: str | None = None
        self.feed_titles = 0
        self.entries: list[dict[str, Any]] = []

    def _title(self, element: ET.Element, depth: int, *, atom: bool = False) -> str | None:
        """The title's value if feedparser stores it, else None."""
        if atom:
            value = _atom_text(element)
        else:
            _attributes(element)
            value = _text(element)
        stored = not (-1 < self.title_depth <= depth)
        if value:
            self.title_depth = depth
        return value if stored else None

    def _entry_title(
        self, entry: _Entry, element: ET.Element, depth: int, *, atom: bool = False
    ) -> None:
        value = self._title(element, depth, atom=atom)
        entry.once("title")
        if value is not None:
            entry.values["title"] = value

    def _channel_title(self, element: ET.Element, depth: int, *, atom: bool = False) -> None:
        self.feed_titles += 1
        value = self._title(element, depth, atom=atom)
        if value is not None:
            self.feed_title = value

    def _done(self) -> PlainFeed:
        if self.feed_titles > 1:  # which one feedparser keeps depends on their values
            raise NotPlain
        return PlainFeed(self.feed_title, self.entries)

    # ------------------------------------------------------------------ RSS 2.0 (and 0.9x)

    def rss2(self, root: ET.Element) -> PlainFeed:
        if _attributes(root, frozenset({"version"})).get("version") not in ("2.0", "0.91", "0.92"):
            raise NotPlain
        channels = list(root)
        if len(channels) != 1 or channels[0].tag != "channel":
            raise NotPlain
        channel = channels[0]
        _attributes(channel)
        for child in channel:
            tag = child.tag
            if tag == "item":
                self.entries.append(self._rss_item(child, depth=3, rdf=False))
            elif tag == "title":
                self._channel_title(child, 3)
            elif tag == "image":
                self._image(child, 3, _RSS2_IMAGE_CHILDREN)
            elif tag in _RSS2_CHANNEL_LEAVES:
                _only_text(child)
            else:
                raise NotPlain
        return self._done()

    def _image(self, image: ET.Element, depth: int, children: frozenset[str]) -> None:
        """``_start_image`` resets the title depth; the image's title is its own."""
        self.title_depth = -1
        for child in image:
            if child.tag not in children:
                raise NotPlain
            if child.tag.endswith("title"):
                self._title(child, depth + 1)
            else:
                _only_text(child)

    def _rss_item(self, item: ET.Element, *, depth: int, rdf: bool) -> dict[str, Any]:
        self.title_depth = -1
        entry = _Entry()
        about = _attributes(item, frozenset({_RDF + "about"}) if rdf else frozenset())
        if _RDF + "about" in about:  # _start_item: the raw attribute, as it is
            entry.values["id"] = about[_RDF + "about"]
        for child in item:
            self._rss_item_child(entry, child, depth + 1, rdf)
        return entry.finish()

    def _rss_item_child(self, entry: _Entry, child: ET.Element, depth: int, rdf: bool) -> None:
        tag = child.tag[len(_RSS1) :] if rdf and child.tag.startswith(_RSS1) else child.tag
        if tag == "title":
            self._entry_title(entry, child, depth)
        elif tag == "link":
            _attributes(child)
            link = _text(child, uri=True).replace("&amp;", "&")
            entry.set("link", _LINK_ENTITY.sub(r"&\g<1>", link))
        elif tag == "guid" and not rdf:
            permalink = _attributes(child, frozenset({"isPermaLink"})).get("isPermaLink", "true")
            is_link = permalink == "true"
            entry.guid(_text(child, uri=is_link), is_link=is_link)
        else:
            self._rss_item_leaf(entry, tag, child)

    def _rss_item_leaf(self, entry: _Entry, tag: str, child: ET.Element) -> None:
        if tag in ("category", _DC + "subject"):
            entry.category(child)
            return
        if tag in _RSS_ITEM_LEAVES:
            _only_text(child)
            return
        _attributes(child)
        if tag == "description":
            entry.set("summary", _text(child))
        elif tag == _CONTENT + "encoded":
            value = _text(child)
            entry.set("content", [{"value": value}])
            entry.setdefault("summary", value)  # _end_content copies it while none is set
        elif tag == "pubDate":
            entry.set("published_parsed", _parse_date(_text(child)))
        elif tag == _DC + "date":
            entry.set("updated_parsed", _parse_date(_text(child)))
        elif tag in ("author", _DC + "creator"):
            entry.set("author", _text(child))
        else:
            raise NotPlain

    # ------------------------------------------------------------------ RSS 1.0

    def rss1(self, root: ET.Element) -> PlainFeed:
        _attributes(root)
        channels = 0
        for child in root:
            if child.tag == _RSS1 + "item":
                self.entries.append(self._rss_item(child, depth=2, rdf=True))
            elif child.tag == _RSS1 + "channel":
                channels += 1
                self._rss1_channel(child)
            elif child.tag == _RSS1 + "image":
                _attributes(child, frozenset({_RDF + "about"}))
                self._image(child, 2, frozenset({_RSS1 + "title", _RSS1 + "url", _RSS1 + "link"}))
            else:
                raise NotPlain
        if channels != 1:
            raise NotPlain
        return self._done()

    def _rss1_channel(self, channel: ET.Element) -> None:
        _attributes(channel, frozenset({_RDF + "about"}))
        for child in channel:
            if child.tag == _RSS1 + "title":
                self._channel_title(child, 3)
            elif child.tag == _RSS1 + "items":
                _rdf_sequence(child)
            elif child.tag == _RSS1 + "image":
                # an rdf:resource pointer, but still feedparser's _start_image
                _attributes(child, frozenset({_RDF + "resource"}))
                self._image(child, 3, frozenset())
            elif child.tag in _RSS1_CHANNEL_LEAVES:
                _only_text(child)
            else:
                raise NotPlain

    # ------------------------------------------------------------------ Atom 1.0

    def atom(self, root: ET.Element) -> PlainFeed:
        _attributes(root)
        for child in root:
            tag = child.tag
            if tag == _ATOM + "entry":
                self.entries.append(self._atom_entry(child))
            elif tag == _ATOM + "title":
                self._channel_title(child, 2, atom=True)
            elif tag in (_ATOM + "author", _ATOM + "contributor"):
                _atom_person(child)
            elif tag == _ATOM + "category":
                _Entry().category(child)
            elif tag in _ATOM_FEED_LEAVES:
                _only_text(child)
            else:
                raise NotPlain
        return self._done()

    def _atom_entry(self, element: ET.Element) -> dict[str, Any]:
        self.title_depth = -1
        _attributes(element)
        entry = _Entry()
        alternate: str | None = None
        for child in element:
            tag = child.tag
            if tag == _ATOM + "link":
                alternate = _atom_link(child) or alternate
            elif tag == _ATOM + "title":
                self._entry_title(entry, child, 3, atom=True)
            else:
                _atom_entry_child(entry, tag, child)
        if alternate is not None:  # _start_link sets it over any id copied before
            entry.values["link"] = alternate
        return entry.finish()


def _atom_entry_child(entry: _Entry, tag: str, child: ET.Element) -> None:
    if tag == _ATOM + "id":
        _attributes(child)
        entry.guid(_text(child, uri=True), is_link=True)  # Atom ids start as "permalinks"
    elif tag == _ATOM + "summary":
        entry.set("summary", _atom_text(child))
    elif tag == _ATOM + "content":
        value = _atom_text(child)
        entry.set("content", [{"value": value}])
        entry.setdefault("summary", value)
    elif tag == _ATOM + "published":
        _attributes(child)
        entry.set("published_parsed", _parse_date(_text(child)))
    elif tag == _ATOM + "updated":
        _attributes(child)
        entry.set("updated_parsed", _parse_date(_text(child)))
    elif tag == _ATOM + "category":
        entry.category(child)
    elif tag == _ATOM + "author":
        entry.set("author", _atom_person(child))
    elif tag == _ATOM + "rights":
        _atom_text(child)  # kept by feedparser under "rights" only
    else:
        raise NotPlain


def _atom_link(link: ET.Element) -> str | None:
    """``_start_link``: the href when the link is an alternate HTML page, else None."""
    attributes = _attributes(
        link, frozenset({"href", "rel", "type", "hreflang", "title", "length"})
    )
    _only_text(link)
    if "href" not in attributes or (link.text or "").strip():
        raise NotPlain
    # feedparser lowercases these two attributes' values
    rel = attributes.get("rel", "alternate").lower()
    kind = attributes.get("type", "application/atom+xml" if rel == "self" else "text/html")
    kind = kind.lower()
    if rel == "alternate" and _map_content_type(kind) in _HTML_TYPES:
        return str(_urljoin("", attributes["href"]))
    return None


def _atom_person(person: ET.Element) -> str:
    """An Atom author as feedparser names it: "name (email)", the name, or the email.
    Name and email are only stripped (feedparser pops them as not expecting text)."""
    _attributes(person)
    if (person.text or "").strip():
        raise NotPlain
    found: dict[str, str] = {}
    for child in person:
        if child.tag not in _ATOM_AUTHOR_CHILDREN or child.tag in found:
            raise NotPlain
        _attributes(child)
        _only_text(child)
        if (child.tail or "").strip():
            raise NotPlain
        found[child.tag] = (child.text or "").strip()
    name, email = found.get(_ATOM + "name"), found.get(_ATOM + "email")
    if name and email:
        return f"{name} ({email})"
    return name or email or ""


def _rdf_sequence(items: ET.Element) -> None:
    """``<items><rdf:Seq><rdf:li resource=.../></rdf:Seq></items>``: nothing feedparser keeps."""
    for sequence in _children(items, _RDF + "Seq"):
        for item in _children(sequence, _RDF + "li"):
            _only_text(item)


def _children(element: ET.Element, tag: str) -> Iterator[ET.Element]:
    for child in element:
        if child.tag != tag:
            raise NotPlain
        yield child
