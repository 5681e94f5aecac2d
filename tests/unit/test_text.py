"""Normalisation, HTML to text, CJK detection and documents (mastwatch.text)."""

from __future__ import annotations

import pytest

from mastwatch.model import Item
from mastwatch.text import (
    detect_language,
    fold_offsets,
    has_cjk,
    html_to_text,
    is_cjk_char,
    is_word_char,
    make_document,
    normalize,
    normalize_cased,
    token_bounds,
)


def fullwidth(ascii_text: str) -> str:
    """The full-width form of printable ASCII (what Japanese feeds often carry)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in ascii_text)


def halfwidth_katakana(text: str) -> str:
    """Map the few katakana used below to their half-width forms (U+FF66..)."""
    table = {"カ": "\uff76", "ン": "\uff9d", "セ": "\uff7e", "イ": "\uff72"}
    return "".join(table.get(ch, ch) for ch in text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (fullwidth("G7"), "g7"),
        (fullwidth("25%"), "25%"),
        (fullwidth("Section 232"), "section 232"),
        ("TARIFFS on Cars", "tariffs on cars"),
        ("Straße", "strasse"),
        ("  tariffs \t on\n\n cars  ", "tariffs on cars"),
        ("米国債\u3000保有", "米国債 保有"),  # ideographic space collapses like any other
        ("non\u00a0breaking", "non breaking"),
        ("tar\u00adiff and zero\u200bwidth", "tariff and zerowidth"),
        ("lone \ud83d surrogate", "lone \ufffd surrogate"),  # as a JSON feed's escape can give
        (halfwidth_katakana("カンセイ"), "カンセイ"),
        ("①", "1"),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_is_idempotent() -> None:
    once = normalize(fullwidth("G7 Summit") + "\u3000先進" + fullwidth("7") + "カ国")
    assert normalize(once) == once


def test_html_to_text_strips_tags_and_decodes_entities() -> None:
    html = '<p>Tariffs &amp; duties on <a href="x">cars</a> &#8212; 25&nbsp;%</p>'
    assert html_to_text(html) == "Tariffs & duties on cars \u2014 25 %"


def test_html_to_text_drops_script_and_style() -> None:
    html = "<style>p {color: red}</style><p>Yields rise</p><script>var tariff = 1;</script>"
    assert html_to_text(html) == "Yields rise"


def test_html_to_text_turns_blocks_into_lines() -> None:
    html = "<h1>Title</h1><p>First<br>second</p><ul><li>one</li><li>two</li></ul>end"
    assert html_to_text(html).splitlines() == ["Title", "First", "second", "one", "two", "end"]


def test_html_to_text_keeps_inline_words_apart_only_where_the_source_did() -> None:
    assert html_to_text("<b>tar</b>iff and <i>G</i>7") == "tariff and G7"


def test_html_to_text_returns_plain_text_untouched() -> None:
    plain = "Plain text, no markup: 5 > 3"
    assert html_to_text(plain) is plain


def test_html_to_text_unescapes_without_tags() -> None:
    assert html_to_text("AT&amp;T &lt;b&gt; R&D") == "AT&T <b> R&D"


def test_html_to_text_treats_lone_angle_bracket_as_text() -> None:
    assert html_to_text("yields < 4% and > 3%") == "yields < 4% and > 3%"


def test_html_to_text_survives_broken_markup() -> None:
    assert html_to_text("<p>unclosed <b>bold <i>tariff") == "unclosed bold tariff"


@pytest.mark.parametrize("ch", ["関", "税", "あ", "ア", "ー", "한", "々", "\uff76", "\U00020b9f"])
def test_is_cjk_char_true(ch: str) -> None:
    assert is_cjk_char(ch)


@pytest.mark.parametrize("ch", ["a", "Z", "7", "%", " ", "é", fullwidth("G"), fullwidth("7"), "、"])
def test_is_cjk_char_false(ch: str) -> None:
    assert not is_cjk_char(ch)


def test_has_cjk() -> None:
    assert has_cjk("g7サミット")
    assert has_cjk(normalize(halfwidth_katakana("カンセイ")))
    assert not has_cjk("tariffs on cars")
    assert not has_cjk(fullwidth("G7"))  # full-width Latin is not a CJK script
    assert not has_cjk("")


def test_is_word_char() -> None:
    assert is_word_char("a")
    assert is_word_char("7")
    assert is_word_char("é")
    assert is_word_char("_")
    assert not is_word_char("関")
    assert not is_word_char("-")
    assert not is_word_char(" ")


def test_make_document_normalises_every_field() -> None:
    item = Item(
        source_id="ministry",
        key="guid:1",
        title=fullwidth("G7") + "財務相会議　開催",
        summary="<p>Finance Ministers &amp; <b>Central Bank</b> Governors</p>",
        content="<div>Agenda:<br/>FX</div><script>alert(1)</script>",
    )
    doc = make_document(item, source_tags=("official", "ja"))
    assert doc.title == "g7財務相会議 開催"
    assert doc.summary == "finance ministers & central bank governors"
    assert doc.content == "agenda: fx"
    assert doc.item is item
    assert doc.source_id == "ministry"
    assert doc.source_tags == ("official", "ja")


def test_make_document_defaults() -> None:
    doc = make_document(Item(source_id="s", key="k", title="Plain"))
    assert (doc.title, doc.summary, doc.content, doc.source_tags) == ("plain", "", "", ())


def test_normalize_cased_keeps_case_and_folds_to_normalize() -> None:
    raw = f"  {fullwidth('US')}\tTariffs  on Straße "
    assert normalize_cased(raw) == "US Tariffs on Straße"
    assert normalize_cased(raw).casefold() == normalize(raw)


def test_fold_offsets_follow_characters_that_fold_to_several() -> None:
    assert fold_offsets("US tax") == [0, 1, 2, 3, 4, 5, 6]
    assert fold_offsets("aßb") == [0, 1, 3, 4]  # ß folds to ss


def test_token_bounds_counts_latin_words_and_single_cjk_characters() -> None:
    starts, ends = token_bounds("g7首脳 met, x_y 2025年")
    assert list(zip(starts, ends, strict=True)) == [
        (0, 2), (2, 3), (3, 4), (5, 8), (10, 13), (14, 18), (18, 19)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "language"),
    [("Tariffs rise", "en"), ("関税を引き上げ", "ja"), ("Ｇ７サミット", "ja"), ("", "en")],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language
