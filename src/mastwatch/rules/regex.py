"""Operator regular expressions, compiled with RE2 so no pattern can backtrack catastrophically.

RE2 runs in time linear in the text, whatever the pattern: ``(a+)+b`` on a long run of
``a`` costs what any other search costs. The price is a smaller syntax: no backreferences
and no lookaround; such a pattern is refused at load with RE2's own message. Patterns run on
the normalised (case-folded) text and are compiled case-insensitive, so ``Section \\d+`` works
as written.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

__all__ = ["MAX_PATTERN_LENGTH", "compile_regex", "regex_problem", "required_literal", "spans"]

MAX_PATTERN_LENGTH = 1000  # longer patterns are almost certainly a mistake (or generated)
_MAX_MEM = 8 << 20  # bytes of compiled program per pattern; RE2 refuses bigger ones


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the problem is reported to the operator, not to stderr
    options.max_mem = _MAX_MEM
    return options


def compile_regex(pattern: str) -> Any:
    """Compile an operator pattern with RE2; raises ``re2.error`` when it does not compile."""
    return re2.compile(pattern, _options())


# google-re2's finditer is Python around one call into RE2 per match: it encodes the text,
# converts every offset back to a str offset and builds a match object, five times the cost
# of the search itself on an item's field. spans() makes the same calls into RE2 (the
# extension module the wrapper uses), keeps only what the matcher needs, and converts
# offsets only for text that is not ASCII. Where the module lacks them, finditer is used.
_RE2_CORE: Any = getattr(re2, "_re2", None)
_FAST = (
    _RE2_CORE is not None
    and all(hasattr(_RE2_CORE, name) for name in ("BytesToCharLen", "CharLenToBytes"))
    and hasattr(getattr(_RE2_CORE, "RE2", None), "Match")
)


def spans(compiled: Any, text: str) -> list[tuple[int, int]]:
    """The non-empty matches of ``compiled`` (from :func:`compile_regex`) in ``text``, in
    order, as ``(start, end)`` offsets into ``text``: what ``finditer`` finds, cheaper."""
    regexp = getattr(compiled, "_regexp", None)
    if not _FAST or regexp is None:
        return [(m.start(), m.end()) for m in compiled.finditer(text) if m.end() > m.start()]
    data = text.encode("utf-8")
    found: list[tuple[int, int]] = []
    position, size = 0, len(data)
    anchor = _RE2_CORE.RE2.Anchor.UNANCHORED
    while position <= size:
        start, end = regexp.Match(anchor, data, position, size)[0]
        if start < 0:
            break
        if end > start:
            found.append((start, end))
            position = end
        elif end < size:  # an empty match: step over one character, as finditer does
            position = end + _RE2_CORE.CharLenToBytes(data, end, 1)
        else:
            break
    return found if size == len(text) else _char_offsets(data, found)


def _char_offsets(data: bytes, found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """UTF-8 byte offsets (in order, as RE2 gives them) as str offsets, in one pass."""
    out = []
    byte = char = 0
    for start, end in found:
        char += _RE2_CORE.BytesToCharLen(data, byte, start)
        first = char
        char += _RE2_CORE.BytesToCharLen(data, start, end)
        byte = end
        out.append((first, char))
    return out


def regex_problem(pattern: str) -> str | None:
    """Say why ``pattern`` cannot be used, or return None when it compiles."""
    if not pattern:
        return "empty regex"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"regex longer than {MAX_PATTERN_LENGTH} characters"
    try:
        compiled = compile_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return (
            f"regex {pattern!r} does not compile: {text}"
            " (RE2 syntax: no lookaround, no backreferences)"
        )
    if compiled.search("") is not None:
        return f"regex {pattern!r} matches the empty string, so it would match every item"
    return None


# Syntax that RE2 and Python read differently (POSIX classes, \Q..\E quoting, Unicode
# classes, inline flags): no hint is derived from such patterns, to stay on the safe side.
_UNSURE = re.compile(r"\[:|\\[QEpPCz]|\(\?(?!:)")
MIN_HINT = 2  # characters; shorter literals would pick almost every item anyway


def _runs(parsed: Any) -> list[str]:
    """Runs of consecutive literal characters that every match of ``parsed`` contains."""
    sre = importlib.import_module("re._constants")  # private, but stable since 3.11
    runs: list[str] = []
    current: list[str] = []
    for op, value in parsed:
        if op is sre.LITERAL:
            current.append(chr(value))
            continue
        runs.append("".join(current))
        current = []
        if op is sre.SUBPATTERN:  # a plain group: its own required runs are required too
            runs += _runs(value[-1])
        elif op in {sre.MAX_REPEAT, sre.MIN_REPEAT} and value[0] >= 1:
            runs += _runs(value[2])
    runs.append("".join(current))
    return runs


def required_literal(pattern: str, min_length: int = MIN_HINT) -> str | None:
    """A literal (case-folded) that every match of ``pattern`` contains, or None.

    Used to let the automaton pick rules with regexes as candidates instead of evaluating
    them on every item. Derived only from patterns whose syntax Python and RE2 read alike.
    """
    if _UNSURE.search(pattern):
        return None
    parser = importlib.import_module("re._parser")
    try:
        parsed = parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    runs = [run.casefold() for run in _runs(parsed) if len(run.casefold()) == len(run)]
    best = max(runs, key=len, default="")
    return best if len(best.strip()) >= min_length else None
