"""Text normalisation shared by matching and storage: NFKC, case folding, HTML to plain text.

Everything a rule is matched against passes through :func:`normalize` exactly once (in
:func:`make_document`), and rule terms pass through the same function, so a full-width
``G7`` (U+FF27 U+FF17) in a feed equals ``g7`` in a rule, and a full-width ``25%`` equals ``25%``.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape
from html.parser import HTMLParser

from mastwatch.model import Document, Item

__all__ = [
    "detect_language",
    "fold_offsets",
    "has_cjk",
    "html_to_text",
    "is_cjk_char",
    "is_word_char",
    "make_document",
    "normalize",
    "normalize_cased",
    "token_bounds",
]


# Invisible characters that NFKC keeps but that split words for a reader's eye only
# (soft hyphen, zero-width space/joiners, word joiner, BOM); untrusted feeds could use them
# to slip a term past the matcher: removed. A lone surrogate (a JSON feed's "\ud83d"
# without its pair) is no character, and the rule automaton reads texts as UTF-8, which
# cannot hold one: read as U+FFFD (one for one, so offsets stay). One translate() map.
_UNUSUAL: dict[int, str | None] = {
    **dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff")),
    **dict.fromkeys(range(0xD800, 0xE000), "\ufffd"),
}
# translate() looks every character up in its map (14 us for a Japanese summary here);
# one search for these six and the surrogates is 1 us and usually finds none
_HAS_UNUSUAL = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff\ud800-\udfff]")

# Han, kana and Hangul, in their normal and half-width forms. Full-width Latin letters and
# digits are not listed: NFKC turns them into ASCII, and they are not a CJK script.
_CJK_CLASS = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3005-\u3007"  # iteration mark, closing mark, ideographic zero
    "\u3021-\u3029"  # Hangzhou numerals
    "\u3031-\u3035"  # kana repeat marks
    "\u303b\u303c"  # 〻 〼
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul Jamo extended-A
    "\uac00-\ud7ff"  # Hangul syllables, Jamo extended-B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana
    "\uffa0-\uffdc"  # half-width Hangul
    "\U0001b000-\U0001b16f"  # Kana supplement and extensions
    "\U00020000-\U0002fa1f"  # CJK extensions B-F, compatibility supplement
    "\U00030000-\U000323af"  # CJK extensions G-H
)
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")

_DROPPED_TAGS = frozenset({"script", "style", "template"})
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th",
        "title", "tr", "ul",
    }
)  # fmt: skip


def normalize(text: str) -> str:
    """Return ``text`` NFKC-normalised, case-folded, with whitespace runs collapsed to one space.

    Invisible word-splitting characters (soft hyphen, zero-width space) are removed first.
    """
    return normalize_cased(text).casefold()


def normalize_cased(text: str) -> str:
    """Like :func:`normalize` but keeping letter case, for exact-case rule terms.

    ``normalize(t) == normalize_cased(t).casefold()`` always holds: case folding neither
    makes nor removes whitespace.
    """
    if not text.isascii():  # ASCII is NFKC already and holds no invisible characters
        if _HAS_UNUSUAL.search(text):
            text = text.translate(_UNUSUAL)
        text = unicodedata.normalize("NFKC", text)
    # split() and strip() know the same whitespace as the regex's \s (str.isspace), and
    # joining the split words is a third of the cost of substituting runs, per item field
    return " ".join(text.split())


def fold_offsets(cased: str) -> list[int]:
    """For each offset in ``cased`` (and its end), the offset in ``cased.casefold()``.

    The identity unless a character folds to several (``ß`` to ``ss``); linear in the text.
    """
    offsets = [0]
    for ch in cased:
        offsets.append(offsets[-1] + len(ch.casefold()))
    return offsets


# A Latin-script word (letters, digits, '_', not CJK) or one CJK character: the unit in
# which proximity (`near`) is measured, so "within 5" means five words in English text and
# five characters in Japanese text.
_TOKEN = re.compile(f"[{_CJK_CLASS}]|(?:(?![{_CJK_CLASS}])[\\w])+")
_JAPANESE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


def token_bounds(text: str) -> tuple[list[int], list[int]]:
    """Start and end offsets of the tokens of ``text``: Latin words and single CJK characters."""
    starts: list[int] = []
    ends: list[int] = []
    for found in _TOKEN.finditer(text):
        starts.append(found.start())
        ends.append(found.end())
    return starts, ends


def detect_language(text: str) -> str:
    """``"ja"`` when ``text`` holds kana or kanji, otherwise ``"en"``.

    Feeds rarely declare a reliable language per item, and the sources watched are English
    or Japanese, so the script is a good enough signal for a rule's language filter.
    """
    return "ja" if _JAPANESE.search(text) else "en"


def is_cjk_char(ch: str) -> bool:
    """Tell whether one character is Han, Hiragana, Katakana or Hangul (half-width forms too)."""
    return _CJK_CHAR.fullmatch(ch) is not None


def has_cjk(text: str) -> bool:
    """Tell whether ``text`` holds at least one CJK character (see :func:`is_cjk_char`)."""
    return _CJK_CHAR.search(text) is not None


def is_word_char(ch: str) -> bool:
    """Tell whether ``ch`` continues a Latin-script word (a letter, digit or ``_``, not CJK).

    CJK characters are not word characters here, so ``g7`` stands as a word in ``g7首脳会議``.
    """
    if ch < "\x80":  # the common case, without the CJK lookup
        return ch.isalnum() or ch == "_"
    return (ch.isalnum() or ch == "_") and not is_cjk_char(ch)


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, without scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_TAGS:
            self._dropping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_TAGS:
            self._dropping = max(0, self._dropping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Turn an HTML fragment into plain text: tags stripped, entities decoded.

    Script, style and template contents are dropped; block elements (paragraphs, list items,
    line breaks, headings, table cells) become line breaks, other whitespace runs one space.
    Text with neither ``<`` nor ``&`` is returned as it is, without parsing.
    """
    if "<" not in html:
        return unescape(html) if "&" in html else html
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    return "\n".join(line for line in lines if line)


def make_document(item: Item, source_tags: tuple[str, ...] = ()) -> Document:
    """Normalise an item's title, summary and content once, for matching."""
    return Document(
        item=item,
        title=normalize(html_to_text(item.title)),
        summary=normalize(html_to_text(item.summary)),
        content=normalize(html_to_text(item.content)),
        source_id=item.source_id,
        source_tags=source_tags,
    )
