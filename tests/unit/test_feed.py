"""Feeds of every supported kind into Items."""

from __future__ import annotations

import json
import pickle
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mastwatch.errors import FetchError
from mastwatch.model import Item
from mastwatch.sources.feed import ParsedFeed, parse_feed
from mastwatch.testing.feeds import atom, json_feed, rss

JST = timezone(timedelta(hours=9))

RSS_091 = b"""<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel>
<title>Old style</title><link>https://old.example/</link><description>d</description>
<language>en</language>
<item><title>G7 finance ministers meet</title><link>https://old.example/g7</link>
<description>Talks on &lt;b&gt;tariffs&lt;/b&gt;</description></item>
</channel></rss>"""

RSS_10_RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://www.mof.go.jp/rss.xml"><title>財務省 新着情報</title>
<link>https://www.mof.go.jp/</link><description>d</description>
<items><rdf:Seq><rdf:li rdf:resource="https://www.mof.go.jp/a.html"/></rdf:Seq></items>
</channel>
<item rdf:about="https://www.mof.go.jp/a.html"><title>米国債の保有状況</title>
<link>https://www.mof.go.jp/a.html</link><dc:date>2024-05-01T10:00:00+09:00</dc:date>
<dc:subject>国債</dc:subject></item>
</rdf:RDF>""".encode()


def test_rss_091() -> None:
    parsed = parse_feed(RSS_091, source_id="old")
    assert parsed.title == "Old style"
    (item,) = parsed.items
    assert item.title == "G7 finance ministers meet"
    assert item.summary == "Talks on <b>tariffs</b>"  # raw HTML kept for later normalisation
    assert item.key == "link:https://old.example/g7"
    assert item.source_id == "old"


def test_rss_10_rdf_with_a_dublin_core_date() -> None:
    parsed = parse_feed(RSS_10_RDF, source_id="mof")
    assert parsed.title == "財務省 新着情報"
    (item,) = parsed.items
    assert item.title == "米国債の保有状況"
    assert item.link == "https://www.mof.go.jp/a.html"
    assert item.published == datetime(2024, 5, 1, 1, 0, tzinfo=UTC)
    assert item.tags == ("国債",)


def test_rss_20_fields() -> None:
    body = rss(
        [
            {
                "title": "Tariffs & <trade>",
                "link": "https://news.example/tariffs",
                "guid": "tag:news.example,2024:1",
                "description": "<p>US\u2013Japan talks</p>",
                "content": "<p>Full text</p>",
                "author": "desk@news.example (Desk)",
                "published": datetime(2024, 5, 1, 9, 0, tzinfo=JST),
                "categories": ["trade", "tariffs", "trade"],
            }
        ],
        title="News",
    )
    parsed = parse_feed(body, source_id="news")
    assert parsed == ParsedFeed("News", parsed.items, None)
    (item,) = parsed.items
    assert item.title == "Tariffs & <trade>"
    assert item.key == "guid:tag:news.example,2024:1"
    assert item.guid == "tag:news.example,2024:1"
    assert item.summary == "<p>US\u2013Japan talks</p>"
    assert item.content == "<p>Full text</p>"
    assert item.published == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert item.published is not None and item.published.utcoffset() == timedelta(0)
    assert item.tags == ("trade", "tariffs")
    assert item.author is not None and "desk@news.example" in item.author


def test_atom() -> None:
    body = atom(
        [
            {
                "id": "urn:uuid:1",
                "title": "Election timing",
                "link": "https://atom.example/e",
                "summary": "Snap election?",
                "content": "<p>Body</p>",
                "updated": datetime(2024, 6, 1, 12, 0, tzinfo=JST),
                "categories": ["politics"],
                "author": "Reporter",
            },
            {"id": "urn:uuid:2", "title": "Only updated", "updated": "2024-06-02T00:00:00Z"},
        ],
        title="Atom news",
    )
    parsed = parse_feed(body, source_id="atom")
    assert parsed.title == "Atom news"
    first, second = parsed.items
    assert (first.key, first.link, first.summary) == (
        "guid:urn:uuid:1",
        "https://atom.example/e",
        "Snap election?",
    )
    assert first.content == "<p>Body</p>"
    assert first.published == datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
    assert (first.tags, first.author) == (("politics",), "Reporter")
    assert second.published == datetime(2024, 6, 2, tzinfo=UTC)


def test_json_feed_11() -> None:
    body = json_feed(
        [
            {
                "id": "1",
                "url": "https://json.example/1",
                "title": "Treasury auction",
                "content_html": "<p>Yields</p>",
                "summary": "Yields rose",
                "date_published": "2024-05-01T09:00:00+09:00",
                "tags": ["bonds", 7, "bonds"],
                "authors": [{"name": "Bond desk"}],
            },
            {"id": 2, "content_text": "plain text only", "date_published": "not a date"},
        ],
        title="JSON news",
    )
    parsed = parse_feed(body, source_id="json", content_type="application/feed+json")
    assert parsed.title == "JSON news"
    first, second = parsed.items
    assert (first.key, first.link, first.title) == (
        "guid:1",
        "https://json.example/1",
        "Treasury auction",
    )
    assert (first.content, first.summary) == ("<p>Yields</p>", "Yields rose")
    assert first.published == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert (first.tags, first.author) == (("bonds",), "Bond desk")
    assert (second.key, second.content, second.published) == ("guid:2", "plain text only", None)


def test_json_feed_10_author_and_sniffed_without_content_type() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1",
        "title": "v1",
        "author": {"name": "Feed author"},
        "items": [{"id": "a", "url": "/posts/a", "content_text": "x"}],
    }
    parsed = parse_feed(
        json.dumps(document).encode(), source_id="j1", base_url="https://j.example/feed.json"
    )
    (item,) = parsed.items
    assert item.link == "https://j.example/posts/a"
    assert item.author == "Feed author"


@pytest.mark.parametrize(
    "document",
    [b'{"version": "1.0", "items": []}', b"[1, 2, 3]", b'{"broken": ', b'{"version": 5}'],
)
def test_json_that_is_not_a_json_feed_raises(document: bytes) -> None:
    with pytest.raises(FetchError, match="'jsrc'"):
        parse_feed(document, source_id="jsrc", content_type="application/json")


def test_relative_links_are_resolved_and_absolute_ones_kept() -> None:
    body = rss(
        [
            {"title": "rel", "link": "/news/1.html"},
            {"title": "abs", "link": "https://other.example/2"},
            {"title": "js", "link": "javascript:alert(1)"},
        ]
    )
    items = parse_feed(body, source_id="s", base_url="https://www.mofa.go.jp/feeds/rss.xml").items
    assert [item.link for item in items] == [
        "https://www.mofa.go.jp/news/1.html",
        "https://other.example/2",
        None,  # unsafe schemes never reach Slack or email
    ]


def test_relative_guid_is_not_rewritten_against_the_base() -> None:
    body = rss([{"title": "t", "guid": "item-42"}])
    (item,) = parse_feed(body, source_id="s", base_url="https://e.example/feed.xml").items
    assert item.key == "guid:item-42"


def test_html_page_is_not_a_feed() -> None:
    page = b"<!DOCTYPE html><html><head><title>Ministry</title></head><body><p>hi</p></body></html>"
    with pytest.raises(FetchError, match="'mofa'"):
        parse_feed(page, source_id="mofa", content_type="text/html")


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01\x02\xff" * 50, b"just some text", b"<<<>>>"])
def test_garbage_is_not_a_feed(garbage: bytes) -> None:
    with pytest.raises(FetchError, match="'junk'"):
        parse_feed(garbage, source_id="junk")


def test_empty_but_valid_feeds_have_no_items() -> None:
    assert parse_feed(rss([]), source_id="e").items == ()
    assert parse_feed(atom([]), source_id="e").items == ()
    assert parse_feed(json_feed([]), source_id="e").items == ()


def test_bozo_but_usable_feed_gives_items_and_a_warning() -> None:
    body = b"<rss version='2.0'><channel><title>T</title><item><title>A &nbsp; B</title>"
    body += b"<link>https://e.example/a</link></item><item><title>Cut off"
    parsed = parse_feed(body, source_id="bozo")
    assert [item.title for item in parsed.items][:1] == ["A \xa0 B"]
    assert parsed.warning


def test_shift_jis_feed_is_decoded_before_feedparser_sees_it() -> None:
    body = rss([{"title": "①髙市氏、関税について", "guid": "1"}]).replace(
        b'encoding="utf-8"', b'encoding="Shift_JIS"'
    )
    body = body.decode("utf-8").encode("cp932")
    (item,) = parse_feed(body, source_id="jp", http_charset="shift_jis").items
    assert item.title == "①髙市氏、関税について"


def test_dates_without_timezone_are_utc() -> None:
    body = rss([{"title": "t", "guid": "1", "published": "Wed, 01 May 2024 09:00:00 GMT"}])
    (item,) = parse_feed(body, source_id="s").items
    assert item.published == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def test_result_and_errors_are_picklable_for_the_process_pool() -> None:
    parsed = parse_feed(rss([{"title": "t", "guid": "1"}]), source_id="s")
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    with pytest.raises(FetchError) as raised:
        parse_feed(b"nope", source_id="s")
    assert str(pickle.loads(pickle.dumps(raised.value))) == str(raised.value)


def test_an_item_crosses_the_process_pool_whole() -> None:
    """Items have their own pickled state (a tuple of every slot): each field arrives,
    content_hash (not compared by ==) included, carried rather than recomputed."""
    item = Item(
        "s", "guid:1", "t", "https://x/1", "1", "sum", "body", datetime(2024, 5, 1, tzinfo=UTC),
        ("tag",), "author",
    )  # fmt: skip
    object.__setattr__(item, "content_hash", "made-by-the-worker")
    back = pickle.loads(pickle.dumps(item))
    assert [getattr(back, f.name) for f in fields(Item)] == [
        getattr(item, f.name) for f in fields(Item)
    ]
    assert back.content_hash == "made-by-the-worker"
    with pytest.raises(FrozenInstanceError):
        back.title = "changed"
