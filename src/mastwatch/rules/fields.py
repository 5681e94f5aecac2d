"""The texts a rule can look at, and how proximity between two finds is measured.

Shared by the compiled matcher and the reference evaluator so both read the same text;
evidence spans (:class:`~mastwatch.model.Evidence`) are offsets into these texts.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from mastwatch.model import Document
from mastwatch.text import detect_language, html_to_text, normalize, normalize_cased

__all__ = ["cased_texts", "field_texts", "gap", "item_language", "token_range"]

Hit = tuple[int, int, int]  # field index (into FIELDS), start, end


def field_texts(doc: Document) -> tuple[str, ...]:
    """The normalised text of every field, in :data:`~mastwatch.rules.tree.FIELDS` order.

    ``title``, ``summary`` and ``content`` are the document's; ``source`` is the source id,
    ``tags`` the item's tags one per line, ``link`` the item's link, each normalised.
    """
    item = doc.item
    return (
        doc.title,
        doc.summary,
        doc.content,
        normalize(doc.source_id),
        "\n".join(normalize(tag) for tag in item.tags),
        normalize(item.link or ""),
    )


def cased_texts(doc: Document) -> tuple[str, ...]:
    """Like :func:`field_texts` but keeping letter case, for exact-case terms."""
    item = doc.item
    return (
        normalize_cased(html_to_text(item.title)),
        normalize_cased(html_to_text(item.summary)),
        normalize_cased(html_to_text(item.content)),
        normalize_cased(doc.source_id),
        "\n".join(normalize_cased(tag) for tag in item.tags),
        normalize_cased(item.link or ""),
    )


def item_language(doc: Document) -> str:
    """The language a rule's ``languages`` filter sees: from the title and summary."""
    return detect_language(f"{doc.title} {doc.summary}")


def token_range(bounds: tuple[list[int], list[int]], start: int, end: int) -> tuple[int, int]:
    """Indices of the first and last token a find at ``text[start:end]`` touches.

    A find that touches no token (``$``) gets an empty range (``last == first - 1``).
    """
    starts, ends = bounds
    return bisect_right(ends, start), bisect_left(starts, end) - 1


def gap(ranges: Sequence[tuple[int, int]]) -> int:
    """Tokens between the earliest-ending and the latest-starting of several finds (0 if they
    touch or overlap): how far apart the finds of a ``near`` are."""
    latest_first = max(first for first, _ in ranges)
    earliest_last = min(last for _, last in ranges)
    return max(0, latest_first - earliest_last - 1)
