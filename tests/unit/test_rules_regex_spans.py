"""rules.regex.spans: the same matches as google-re2's finditer, at the same str offsets.

The matcher calls RE2 directly instead of through finditer (see :func:`spans`); any
difference in offsets (a UTF-8 byte offset left unconverted, a character skipped after an
empty match) would move evidence spans or lose finds, so both are compared on generated
texts in English, Japanese and mixed scripts, for the built-in patterns and for operator
patterns that can match the empty string.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mastwatch.rules import regex
from mastwatch.rules.builtins import BUILTIN_PATTERNS
from mastwatch.rules.regex import compile_regex, spans

PATTERNS = {
    **BUILTIN_PATTERNS,
    "section": compile_regex(r"section (232|301)"),
    "percent": compile_regex(r"\d+(\.\d+)? ?%"),
    "optional": compile_regex(r"関?税|x*"),  # empty matches between the others
    "boundary": compile_regex(r"\b"),  # only empty matches
}
PIECES = [
    "20 july", "july 20, 2025", "7月20日", "令和7年7月20日", "$40 billion", "1兆2700億ドル",
    "25%", "25 percent", "section 232", "関税", "税", "xx", "é", "ü", " ", "\n", "、", "a",
    "2025-07-20", "🙂", "\uff47\uff17",
]  # fmt: skip


def _finditer(compiled: object, text: str) -> list[tuple[int, int]]:
    found = compiled.finditer(text)  # type: ignore[attr-defined]
    return [(m.start(), m.end()) for m in found if m.end() > m.start()]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=12),
    name=st.sampled_from(sorted(PATTERNS)),
)
def test_spans_are_what_finditer_finds(pieces: list[str], name: str) -> None:
    text = "".join(pieces)
    compiled = PATTERNS[name]
    assert spans(compiled, text) == _finditer(compiled, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on 20 july", [(3, 10)]),
        ("関税は7月20日から", [(3, 8)]),  # offsets in characters, not UTF-8 bytes
        ("é🙂 7月20日 and july 4", [(3, 8), (13, 19)]),  # an astral character counts one
    ],
)
def test_spans_are_str_offsets(text: str, expected: list[tuple[int, int]]) -> None:
    assert spans(BUILTIN_PATTERNS["@date"], text) == expected
    assert all(text[start].isdigit() or text[start] == "j" for start, _ in expected)


def test_spans_falls_back_to_finditer_without_the_re2_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "関税は7月20日から, or july 4"
    expected = spans(BUILTIN_PATTERNS["@date"], text)
    monkeypatch.setattr(regex, "_FAST", False)
    assert spans(BUILTIN_PATTERNS["@date"], text) == expected == [(3, 8), (15, 21)]
