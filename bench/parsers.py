"""Feed parsers side by side: speed, and whether they read the same items and text.

feedparser against fastfeedparser, and ``parse_feed`` as shipped (its plain reader for
plain documents, sources.plainfeed) against the same step with feedparser only.

fastfeedparser is not a project dependency; ``make bench`` installs it into
``.venv/bench-extras`` (best effort) and this module finds it there. A faster parser only
qualifies if it yields the same entries with the same titles, links and summaries.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import feedparser

from mastwatch.sources.decode import to_utf8_xml
from mastwatch.sources.feed import looks_like_json, parse_feed, parse_xml_with_feedparser
from mastwatch.sources.plainfeed import read_plain_feed

EXTRAS = Path(__file__).resolve().parents[1] / ".venv" / "bench-extras"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feedparser-tests"

Entry = tuple[str, str, str]  # title, link, summary (whitespace collapsed)


def load_fastfeedparser() -> ModuleType | None:
    if EXTRAS.is_dir() and str(EXTRAS) not in sys.path:
        sys.path.append(str(EXTRAS))
    try:
        import fastfeedparser  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        return None
    module: ModuleType = fastfeedparser
    return module


def _squash(value: object) -> str:
    return " ".join(str(value or "").split())


def _entries(parsed: Any) -> list[Entry]:
    return [
        (
            _squash(e.get("title")),
            _squash(e.get("link")),
            _squash(e.get("summary") or e.get("description")),  # fastfeedparser's name
        )
        for e in parsed.get("entries", [])
    ]


def _feedparser(body: bytes) -> list[Entry]:
    return _entries(feedparser.parse(body))


_In = TypeVar("_In")
_Out = TypeVar("_Out")


def _timed(parse: Callable[[_In], _Out], inputs: Sequence[_In]) -> tuple[float, list[_Out | None]]:
    started = time.perf_counter()
    out: list[_Out | None] = []
    for one in inputs:
        try:
            out.append(parse(one))
        except Exception:  # a parser that raises on a document reads nothing of it
            out.append(None)
    return time.perf_counter() - started, out


@dataclass(frozen=True)
class Comparison:
    label: str
    documents: int
    feedparser_seconds: float
    fast_seconds: float
    same_documents: int  # documents where both read identical entries


def compare(label: str, bodies: Sequence[bytes], fast: ModuleType) -> Comparison:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp_s, fp = _timed(_feedparser, bodies)
        ff_s, ff = _timed(lambda b: _entries(fast.parse(b)), bodies)
    same = sum(1 for a, b in zip(fp, ff, strict=True) if a is not None and a == b)
    return Comparison(label, len(bodies), fp_s, ff_s, same)


def corpus_bodies() -> list[bytes]:
    bodies = []
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.suffix in {".xml", ".rdf", ".atom", ".rss", ".json"}:
            with contextlib.suppress(OSError):
                bodies.append(path.read_bytes())
    return bodies


@dataclass(frozen=True)
class PlainComparison:
    """``parse_feed`` as shipped (the plain reader, feedparser for the rest) against the
    same step with feedparser only, on XML documents."""

    label: str
    documents: int
    shipped_seconds: float
    feedparser_seconds: float
    read_plain: int  # documents the plain reader read
    same_documents: int  # of those, documents whose items equal feedparser's


def compare_plain(label: str, bodies: Sequence[bytes]) -> PlainComparison:
    documents = []
    for body in bodies:
        if looks_like_json(body, None):
            continue
        with contextlib.suppress(Exception):  # undecodable: neither path gets it
            documents.append((body, to_utf8_xml(body)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shipped_s, shipped = _timed(lambda d: parse_feed(d[0], source_id="b"), documents)
        # decoding included on both sides, as parse_feed decodes: the same step
        feedparser_s, slow = _timed(
            lambda d: parse_xml_with_feedparser(to_utf8_xml(d[0]), "b", None), documents
        )
    plain = [read_plain_feed(xml) is not None for _body, xml in documents]
    same = sum(1 for p, a, b in zip(plain, shipped, slow, strict=True) if p and a == b)
    return PlainComparison(label, len(documents), shipped_s, feedparser_s, sum(plain), same)
