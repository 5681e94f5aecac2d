"""Showing why a rule fired: matched spans highlighted in the text they were found in."""

from __future__ import annotations

from collections.abc import Iterable

from mastwatch.model import Document, Evidence, Match
from mastwatch.rules.fields import field_texts
from mastwatch.rules.tree import FIELDS

__all__ = ["evidence_records", "highlight", "highlighted_fields"]

CONTEXT = 40  # characters kept either side of a highlighted span


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with overlapping or touching ones merged."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def highlight(text: str, spans: Iterable[tuple[int, int]], context: int = CONTEXT) -> str:
    """``text`` with each span in ``[brackets]``, long stretches between them cut to ``…``."""
    parts: list[str] = []
    position = 0
    for start, end in _merged(spans):
        gap = text[position:start]
        if len(gap) > 2 * context:
            head = gap[:context] if position else ""
            gap = f"{head}…{gap[-context:]}"
        parts.append(f"{gap}[{text[start:end]}]")
        position = end
    tail = text[position:]
    parts.append(tail if len(tail) <= context else tail[:context] + "…")
    return "".join(parts).replace("\n", " ")


def highlighted_fields(doc: Document, found: Match) -> list[tuple[str, str]]:
    """(field, highlighted text) for every field holding evidence, in field order."""
    texts = dict(zip(FIELDS, field_texts(doc), strict=True))
    out = []
    for name in FIELDS:
        spans = [(e.start, e.end) for e in found.evidence if e.field == name]
        if spans:
            out.append((name, highlight(texts[name], spans)))
    return out


def evidence_records(doc: Document, evidence: Iterable[Evidence]) -> list[dict[str, object]]:
    """Evidence as JSON-ready mappings, each with the matched text itself."""
    texts = dict(zip(FIELDS, field_texts(doc), strict=True))
    return [
        {
            "term": e.term,
            "field": e.field,
            "start": e.start,
            "end": e.end,
            "text": texts[e.field][e.start : e.end],
        }
        for e in evidence
    ]
