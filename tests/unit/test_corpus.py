"""feedparser's own test documents through parse_feed: nothing but FetchError may escape.

The corpus lives next to the repository (../shared/corpus, which CI provides). Each file's
leading comment may carry a ``Header: Content-type: ...`` line (the HTTP header the case
assumes, passed on here) and an ``Expect:`` line; the simple "first entry's text equals"
expectations of the encoding cases are checked too, as they test our decoding.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mastwatch.errors import FetchError
from mastwatch.sources.decode import decode_document, resolve_codec
from mastwatch.sources.feed import ParsedFeed, parse_feed

CORPUS = Path(__file__).parents[3] / "shared" / "corpus" / "feedparser-tests"

_HEADER = re.compile(r"^Header:\s*Content-type:\s*(?P<value>.+?)\s*$", re.I | re.M)
_EXPECT_FIRST_ENTRY = re.compile(
    r"^Expect:\s*(?:not bozo and |bozo and )?entries\[0\]\['(?P<field>description|title)'\]"
    r"\s*==\s*(?P<literal>u?'[^']*')\s*$",
    re.M,
)


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.fail(
            f"the feedparser test corpus is missing: expected it at {CORPUS} "
            "(a checkout of the shared corpus next to the repository; CI provides it)"
        )
    return sorted(path for path in CORPUS.rglob("*") if path.is_file())


def leading_comment(body: bytes) -> str:
    """The ASCII start of a case (its comment), readable whatever the document's encoding."""
    return body[:4000].replace(b"\x00", b"").decode("latin-1")


def case_content_type(body: bytes) -> str | None:
    """The Content-Type a case says the server sends (its ``Header:`` line), if any."""
    header = _HEADER.search(leading_comment(body))
    return header.group("value") if header else None


def parse_case(path: Path) -> ParsedFeed:
    body = path.read_bytes()
    return parse_feed(
        body,
        source_id=path.name,
        content_type=case_content_type(body),
        base_url="http://127.0.0.1:8097/",
    )


def test_every_corpus_file_parses_or_raises_fetch_error() -> None:
    files = corpus_files()
    escaped: list[str] = []
    with_items = rejected = 0
    for path in files:
        try:
            parsed = parse_case(path)
        except FetchError as exc:
            assert path.name in str(exc)  # the message names the source
            rejected += 1
        except Exception as exc:  # the failure this test exists to catch
            escaped.append(f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}")
        else:
            with_items += bool(parsed.items)
    assert escaped == []
    assert len(files) > 2000
    assert with_items > 1000  # most cases are real feeds with entries
    assert rejected < 50  # only non-feeds (CDF channels, the README, an empty document)


def test_encoding_cases_decode_as_the_corpus_expects() -> None:
    checked = 0
    for path in corpus_files():
        if "encoding" not in path.parts and "chardet" not in path.parts:
            continue
        expectation = _EXPECT_FIRST_ENTRY.search(leading_comment(path.read_bytes()))
        if expectation is None:
            continue
        expected = ast.literal_eval(expectation.group("literal").removeprefix("u"))
        if "&" in expected:  # about entity handling in HTML, which is not our concern here
            continue
        field = "summary" if expectation.group("field") == "description" else "title"
        items = parse_case(path).items
        assert items, path.name
        assert getattr(items[0], field) == expected, path.name
        checked += 1
    assert checked >= 5


def test_unlabelled_legacy_encodings_are_detected_as_the_corpus_expects() -> None:
    cases = [path for path in corpus_files() if "chardet" in path.parts]
    for path in cases:
        body = path.read_bytes()
        expected = re.search(r"encoding == '(?P<label>[^']+)'", leading_comment(body))
        assert expected is not None, path.name
        decoded = decode_document(body)
        assert decoded.encoding == resolve_codec(expected.group("label")), path.name
    assert len(cases) >= 8
