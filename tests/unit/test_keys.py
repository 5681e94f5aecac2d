"""Layered item keys and link normalisation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mastwatch.sources.keys import RawEntry, assign_keys, content_digest, normalise_link


def test_unique_guids_are_the_keys() -> None:
    items = assign_keys(
        "src",
        [RawEntry(title="a", guid="g1", link="https://e.org/1"), RawEntry(title="b", guid="g2")],
    )
    assert [item.key for item in items] == ["guid:g1", "guid:g2"]
    assert all(item.source_id == "src" for item in items)


def test_duplicate_guids_fall_back_to_links() -> None:
    entries = [
        RawEntry(title="a", guid="same", link="https://e.org/a"),
        RawEntry(title="b", guid="same", link="https://E.org/b?utm_source=x#top"),
        RawEntry(title="c", guid="unique", link="https://e.org/c"),
    ]
    keys = [item.key for item in assign_keys("src", entries)]
    assert keys == ["link:https://e.org/a", "link:https://e.org/b", "guid:unique"]


def test_a_link_shared_with_an_entry_keyed_by_guid_is_not_unique() -> None:
    # only the second entry is keyed by its link, but the first one's link counts too
    entries = [
        RawEntry(title="a", guid="g1", link="https://e.org/story?utm_source=feed"),
        RawEntry(title="b", link="https://e.org/story"),
        RawEntry(title="c", link="https://e.org/other"),
    ]
    keys = [item.key for item in assign_keys("src", entries)]
    assert keys[0] == "guid:g1"
    assert keys[1].startswith("hash:")
    assert keys[2] == "link:https://e.org/other"


def test_entries_without_guid_or_link_get_a_hash_key() -> None:
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    entries = [
        RawEntry(title="Tariff talks", published=when, summary="body"),
        RawEntry(title="Tariff talks", published=when, summary="other body"),
    ]
    keys = [item.key for item in assign_keys("src", entries)]
    assert all(key.startswith("hash:") and len(key) == len("hash:") + 32 for key in keys)
    assert keys[0] != keys[1]
    assert keys[0] == "hash:" + content_digest(entries[0])


def test_duplicate_links_without_guids_fall_back_to_hash() -> None:
    entries = [
        RawEntry(title="one", link="https://e.org/index.html"),
        RawEntry(title="two", link="https://e.org/index.html#second"),
    ]
    keys = [item.key for item in assign_keys("src", entries)]
    assert all(key.startswith("hash:") for key in keys)
    assert keys[0] != keys[1]


def test_identical_entries_are_collapsed_keeping_the_first_and_document_order() -> None:
    entries = [
        RawEntry(title="x", summary="same"),
        RawEntry(title="first", guid="g"),
        RawEntry(title="x", summary="same", author="second copy"),
        RawEntry(title="last", guid="h"),
    ]
    items = assign_keys("src", entries)
    assert [item.title for item in items] == ["x", "first", "last"]
    assert items[0].author is None


def test_item_fields_are_carried_over() -> None:
    when = datetime(2024, 5, 1, tzinfo=UTC)
    entry = RawEntry(
        title="t",
        link="https://e.org/x",
        guid="g",
        summary="s",
        content="c",
        published=when,
        tags=("a", "b"),
        author="me",
    )
    (item,) = assign_keys("src", [entry])
    assert (item.title, item.link, item.guid, item.summary, item.content) == (
        "t",
        "https://e.org/x",
        "g",
        "s",
        "c",
    )
    assert (item.published, item.tags, item.author) == (when, ("a", "b"), "me")


def test_very_long_guids_are_hashed_to_bound_the_key() -> None:
    (item,) = assign_keys("src", [RawEntry(title="t", guid="g" * 5000)])
    assert item.key.startswith("guid:sha256=")
    assert len(item.key) < 100


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://WWW.Example.COM:443/Path?b=2&a=1#frag", "https://www.example.com/Path?a=1&b=2"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        (
            "https://e.org/a?utm_source=rss&utm_MEDIUM=x&id=7&fbclid=abc&gclid=def",
            "https://e.org/a?id=7",
        ),
        ("https://e.org/a?q=a%20b&p=", "https://e.org/a?p=&q=a%20b"),
        ("  https://user@E.org/a  ", "https://user@e.org/a"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("/relative/path?b&a", "/relative/path?a&b"),
        ("http://[broken/", "http://[broken/"),
    ],
)
def test_normalise_link(url: str, expected: str) -> None:
    assert normalise_link(url) == expected
