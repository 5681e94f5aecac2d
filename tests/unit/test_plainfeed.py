"""The plain-feed reader (sources.plainfeed) against feedparser: whenever it reads a
document, parse_feed must give exactly what feedparser gives for it.

Three sources of documents: feedparser's own test corpus (../shared/corpus), generated
RSS 2.0, RSS 1.0 and Atom documents whose texts are made of the characters and fragments
feedparser treats specially (entities, markup, cp1252 and mojibake, URIs, odd whitespace),
and the feeds that must take the fast path (the bundled samples, the benchmark farm's).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_corpus import case_content_type, corpus_files

from mastwatch.sources.decode import to_utf8_xml
from mastwatch.sources.feed import ParsedFeed, parse_feed, parse_xml_with_feedparser
from mastwatch.sources.plainfeed import read_plain_feed

BASE = "http://127.0.0.1:8097/feeds/"
EXAMPLES = Path(__file__).parents[2] / "examples" / "feeds"

Draw = Callable[..., str]


def both_ways(body: bytes, content_type: str | None = None) -> tuple[ParsedFeed, ParsedFeed]:
    """parse_feed (which takes the fast path when it can) and feedparser alone."""
    xml = to_utf8_xml(body, None, content_type)
    fast = parse_feed(body, source_id="s", content_type=content_type, base_url=BASE)
    return fast, parse_xml_with_feedparser(xml, "s", BASE)


# ---------------------------------------------------------------------------- the corpus


def test_corpus_documents_read_plain_equal_feedparser() -> None:
    plain = 0
    differ: list[str] = []
    for path in corpus_files():
        body = path.read_bytes()
        content_type = case_content_type(body)
        try:
            xml = to_utf8_xml(body, None, content_type)
        except Exception:  # not a document either reader gets
            continue
        if read_plain_feed(xml) is None:
            continue
        plain += 1
        fast, slow = both_ways(body, content_type)
        if fast != slow:
            differ.append(f"{path.name}:\n  plain      {fast}\n  feedparser {slow}")
    assert not differ, "\n".join(differ)
    # about a third of feedparser's cases are plain; the rest test what is not
    assert plain > 500


# ---------------------------------------------------------------------------- generated

FRAGMENTS = [
    "Tariff",
    "関税",
    " ",
    "\t",
    "\n",
    "\u3000",
    "\u00a0",
    "&",
    "&amp;",
    "&lt;b&gt;",
    "&#39;",
    "&nbsp;",
    "<b>",
    "</b>",
    "<p>x</p>",
    "Ã©",
    "Ã",
    "é",
    "\x80",
    "\x93",
    "\x9f",
    ";",
    "http://",
    "https://example.com/a?x=1&y=2",
    "/relative/path",
    "//double/slash",
    "javascript:alert(1)",
    "urn:x:1",
    "(",
    ")",
    "a@b.example",
]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join)
DATES = [
    "Tue, 10 Mar 2026 09:30:00 GMT",
    "Tue, 10 Mar 2026 09:30:00 +0900",
    "10 Mar 2026 09:30 JST",
    "2026-03-10T09:30:00Z",
    "2026-03-10T09:30:00+09:00",
    "2026-03-10",
    "yesterday",
    "",
]
dates = st.sampled_from(DATES)


def text_element(draw: Draw, tag: str, attributes: str = "") -> str:
    text = draw(texts)
    body = f"<![CDATA[{text}]]>" if draw(st.booleans()) and "]]>" not in text else escape(text)
    return f"<{tag}{attributes}>{body}</{tag}>"


def rss2_item(draw: Draw) -> str:
    parts: list[str] = []
    for tag in draw(st.lists(st.sampled_from(RSS2_ITEM_TAGS), max_size=9)):
        parts.append(rss2_item_child(draw, tag))
    return "<item>" + "".join(parts) + "</item>"


RSS2_ITEM_TAGS = [
    "title",
    "link",
    "guid",
    "description",
    "content:encoded",
    "pubDate",
    "dc:date",
    "category",
    "dc:subject",
    "author",
    "dc:creator",
    "comments",
    "enclosure",
    "wfw:commentRss",
    "slash:comments",
    "dc:publisher",
    "dc:rights",
    "dc:identifier",
    "media:thumbnail",
    "media:content",
]


def rss2_item_child(draw: Draw, tag: str) -> str:
    if tag == "guid":
        permalink = draw(st.sampled_from(["", "true", "false", "False"]))
        attribute = f" isPermaLink={quoteattr(permalink)}" if permalink else ""
        return text_element(draw, "guid", attribute)
    if tag in ("pubDate", "dc:date"):
        return f"<{tag}>{escape(draw(dates))}</{tag}>"
    if tag == "category":
        domain = draw(st.sampled_from(["", " domain='http://example.com/t'"]))
        return text_element(draw, "category", domain)
    if tag == "enclosure":
        return '<enclosure url="http://example.com/a.mp3" length="1" type="audio/mpeg"/>'
    if tag in ("media:thumbnail", "media:content"):
        return f'<{tag} url="http://example.com/t.jpg" width="10"/>'
    return text_element(draw, tag)


@st.composite
def rss2_documents(draw: Draw) -> str:
    children = [rss2_item(draw) for _ in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(0, 2))):
        children.insert(draw(st.integers(0, len(children))), text_element(draw, "title"))
    if draw(st.booleans()):
        image = "<image>" + text_element(draw, "title") + "<url>http://e/i.png</url></image>"
        children.insert(draw(st.integers(0, len(children))), image)
    version = draw(st.sampled_from(["2.0", "0.92", "0.91"]))
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="{version}"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:wfw="http://wellformedweb.org/CommentAPI/"'
        ' xmlns:slash="http://purl.org/rss/1.0/modules/slash/"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        "><channel><link>http://example.com/</link><description>d</description>"
        + "".join(children)
        + "</channel></rss>"
    )


@st.composite
def rss1_documents(draw: Draw) -> str:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        about = draw(st.sampled_from(["", " rdf:about='http://example.com/1'", " rdf:about=' x '"]))
        tags = draw(st.lists(st.sampled_from(RSS1_ITEM_TAGS), max_size=7))
        inner = "".join(rss2_item_child(draw, tag) for tag in tags)
        items.append(f"<item{about}>{inner}</item>")
    channel = (
        "<channel rdf:about='http://example.com/'>"
        + "".join(text_element(draw, "title") for _ in range(draw(st.integers(0, 2))))
        + "<link>http://example.com/</link><image rdf:resource='http://e/i.png'/>"
        "<items><rdf:Seq><rdf:li resource='http://example.com/1'/></rdf:Seq></items></channel>"
    )
    parts = [channel, *items]
    if draw(st.booleans()):
        image = "<image rdf:about='http://e/i.png'>" + text_element(draw, "title") + "</image>"
        parts.insert(draw(st.integers(0, len(parts))), image)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:wfw="http://wellformedweb.org/CommentAPI/"'
        ' xmlns:slash="http://purl.org/rss/1.0/modules/slash/"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        ">" + "".join(parts) + "</rdf:RDF>"
    )


RSS1_ITEM_TAGS = ["title", "link", "description", "content:encoded", "dc:date", "dc:subject"]
RSS1_ITEM_TAGS += ["dc:creator", "dc:publisher", "dc:rights", "wfw:commentRss"]


def atom_text(draw: Draw, tag: str) -> str:
    kind = draw(st.sampled_from(["", "text", "html", "HTML", "xhtml"]))
    if kind == "xhtml":
        return f"<{tag} type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'>x</div></{tag}>"
    return text_element(draw, tag, f" type='{kind}'" if kind else "")


def atom_link(draw: Draw) -> str:
    rel = draw(st.sampled_from(["", "alternate", "ALTERNATE", "self", "enclosure", "related"]))
    kind = draw(st.sampled_from(["", "text/html", "TEXT/HTML", "html", "application/pdf"]))
    href = draw(st.sampled_from(["http://example.com/a", "/rel", "https:///x", "a&b", " h "]))
    attributes = f" href={quoteattr(href)}"
    attributes += f" rel='{rel}'" if rel else ""
    attributes += f" type='{kind}'" if kind else ""
    return f"<link{attributes}/>"


def atom_person(draw: Draw) -> str:
    parts = draw(st.lists(st.sampled_from(["name", "email", "uri"]), unique=True))
    return "<author>" + "".join(text_element(draw, part) for part in parts) + "</author>"


def atom_entry_child(draw: Draw, tag: str) -> str:
    if tag in ("title", "summary", "content", "rights"):
        return atom_text(draw, tag)
    if tag == "link":
        return atom_link(draw)
    if tag in ("published", "updated"):
        return f"<{tag}>{escape(draw(dates))}</{tag}>"
    if tag == "category":
        term = draw(st.sampled_from(["", " term='t'", " term=''"]))
        label = draw(st.sampled_from(["", " label='L'"]))
        return text_element(draw, "category", term + label)
    if tag == "author":
        return atom_person(draw)
    return text_element(draw, tag)  # id


ATOM_ENTRY_TAGS = ["title", "link", "id", "summary", "content", "published", "updated"]
ATOM_ENTRY_TAGS += ["category", "author", "rights"]


@st.composite
def atom_documents(draw: Draw) -> str:
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        tags = draw(st.lists(st.sampled_from(ATOM_ENTRY_TAGS), max_size=9))
        entries.append("<entry>" + "".join(atom_entry_child(draw, t) for t in tags) + "</entry>")
    parts = list(entries)
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), atom_text(draw, "title"))
    if draw(st.booleans()):
        parts.insert(0, atom_person(draw) + "<id>urn:feed</id><updated>2026-03-10</updated>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        + "".join(parts)
        + "</feed>"
    )


GENERATED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same_when_plain(document: str) -> None:
    body = document.encode("utf-8")
    plain = read_plain_feed(to_utf8_xml(body)) is not None
    event("read plain" if plain else "left to feedparser")
    if not plain:
        return
    fast, slow = both_ways(body)
    assert fast == slow


@GENERATED
@given(rss2_documents())
def test_generated_rss2_reads_as_feedparser_reads_it(document: str) -> None:
    assert_same_when_plain(document)


@GENERATED
@given(rss1_documents())
def test_generated_rss1_reads_as_feedparser_reads_it(document: str) -> None:
    assert_same_when_plain(document)


@GENERATED
@given(atom_documents())
def test_generated_atom_reads_as_feedparser_reads_it(document: str) -> None:
    assert_same_when_plain(document)


# ---------------------------------------------------------------------------- what must be fast


@pytest.mark.parametrize("name", ["wire-en.xml", "ministry-ja.rdf", "markets.atom"])
def test_bundled_sample_feeds_take_the_plain_path(name: str) -> None:
    body = (EXAMPLES / name).read_bytes()
    assert read_plain_feed(to_utf8_xml(body)) is not None
    fast, slow = both_ways(body)
    assert fast == slow
    assert fast.items


def test_a_plain_document_with_every_listed_element_is_read() -> None:
    document = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>Wire</title><link>http://example.com/</link><description>d</description>"
        "<item><title>US tariffs &amp; Japan</title><link>http://example.com/1</link>"
        '<guid isPermaLink="false">id-1</guid><description>&lt;p&gt;Text&lt;/p&gt;</description>'
        "<content:encoded><![CDATA[<p>Full</p>]]></content:encoded>"
        "<pubDate>Tue, 10 Mar 2026 09:30:00 GMT</pubDate><category>trade</category>"
        "<dc:creator>Desk</dc:creator></item></channel></rss>"
    )
    plain = read_plain_feed(document.encode())
    assert plain is not None
    fast, slow = both_ways(document.encode())
    assert fast == slow
    (item,) = fast.items
    assert (item.title, item.summary, item.author) == ("US tariffs & Japan", "<p>Text</p>", "Desk")


def test_a_wordpress_style_item_is_read_plain() -> None:
    document = (
        b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"'
        b' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        b' xmlns:wfw="http://wellformedweb.org/CommentAPI/"'
        b' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        b' xmlns:atom="http://www.w3.org/2005/Atom"'
        b' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
        b' xmlns:slash="http://purl.org/rss/1.0/modules/slash/"><channel>'
        b"<title>Observing Japan</title>"
        b'<atom:link href="https://example.com/feed/" rel="self" type="application/rss+xml"/>'
        b"<link>https://example.com</link><description>Politics</description>"
        b"<lastBuildDate>Mon, 09 Mar 2026 01:00:00 +0000</lastBuildDate>"
        b"<language>en-US</language><sy:updatePeriod>hourly</sy:updatePeriod>"
        b"<item><title>Lashing himself to the mast</title>"
        b"<link>https://example.com/2026/03/mast/</link>"
        b"<comments>https://example.com/2026/03/mast/#respond</comments>"
        b"<dc:creator><![CDATA[Tobias Harris]]></dc:creator>"
        b"<pubDate>Mon, 09 Mar 2026 00:30:00 +0000</pubDate>"
        b"<category><![CDATA[Japan]]></category><category><![CDATA[Trade]]></category>"
        b'<guid isPermaLink="false">https://example.com/?p=123</guid>'
        b"<description><![CDATA[<p>The prime minister &#8230;</p>]]></description>"
        b"<content:encoded><![CDATA[<p>Full text</p>]]></content:encoded>"
        b"<wfw:commentRss>https://example.com/2026/03/mast/feed/</wfw:commentRss>"
        b"<slash:comments>0</slash:comments></item></channel></rss>"
    )
    assert read_plain_feed(to_utf8_xml(document)) is not None
    fast, slow = both_ways(document)
    assert fast == slow
    (item,) = fast.items
    assert (item.author, item.tags) == ("Tobias Harris", ("Japan", "Trade"))


@pytest.mark.parametrize(
    "document",
    [
        '<!DOCTYPE rss [<!ENTITY e "x">]><rss version="2.0"><channel><title>&e;</title>'
        "</channel></rss>",
        '<rss version="2.0"><channel xml:base="http://other/"><item><link>/a</link></item>'
        "</channel></rss>",
        '<rss version="2.0"><channel><item><title>a<b>b</b></title></item></channel></rss>',
        '<rss version="2.0"><channel><item><title>a</title><title>b</title></item></channel></rss>',
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><item>'
        "<media:title>x</media:title></item></channel></rss>",
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><content src="http://x/"/></entry></feed>',
        '<rss version="2.0"><channel><item><title>unclosed</item></channel></rss>',
        "<html><body>not a feed</body></html>",
    ],
    ids=["dtd", "xml-base", "markup", "repeat", "media", "content-src", "ill-formed", "html"],
)
def test_what_is_not_plain_goes_to_feedparser(document: str) -> None:
    assert read_plain_feed(document.encode()) is None
