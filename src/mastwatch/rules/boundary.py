"""Word boundaries applied by the automaton itself, for texts that are all ASCII.

A Latin literal must not continue a word on a side that starts or ends with a word
character (:func:`~mastwatch.text.is_word_char`: for ASCII, ``[0-9A-Za-z_]``). Checking that
in Python for every find is costly when many finds fail it (with thousands of rules, names
are often found inside longer words). For an ASCII text the check is made by the automaton
instead: it reads a *marked* copy of the text, of the same length, in which every
character that is not a word character reads as a space, with one space before and after
(the edges of the text are boundaries too); a literal whose side must be a boundary is
looked for with a space on that side. ``tariff`` is then looked for as `` tariff `` in
`` us tariffs  tariff, ``: only the second find, which is on a boundary in the original
text, is reported.

What the automaton looks for (:func:`ascii_key`):

- a literal of word characters only: itself, padded where a boundary is needed; a find is
  exactly the literal on boundaries in the original text;
- a literal holding other characters too (``feed-in tariff``, ``trade deal``): its marked
  form, padded likewise; a find may stand for other characters (``feed in tariff``), so it
  is compared with the original text (``verify``);
- a literal holding no word character at all (``%``) or a line break: it would be found
  all over the marked text, so it is not in the automaton; such literals are searched in
  the original text with ``str.find`` (:attr:`AsciiKey.searched`).

Texts holding other characters (Japanese, accented Latin) are matched with the automaton
of all literals and the boundary checked in Python, as before: a CJK character is a
boundary and an accented letter is not, which no cheap 1:1 mapping of such text shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from mastwatch.text import is_word_char

__all__ = ["MARK", "AsciiKey", "ascii_key", "marked"]

MARK = " "  # what a non-word character reads as in a marked text
# bytes.translate table: an ASCII word character stays, anything else becomes MARK
_TABLE = bytes(byte if is_word_char(chr(byte)) else ord(MARK) for byte in range(128)) + bytes(
    ord(MARK) for _ in range(128)
)


def marked(text: str) -> str:
    """The marked copy of an ASCII ``text``: ``MARK``, each character (a word character as
    itself, any other as ``MARK``), ``MARK``. Index ``i + 1`` holds character ``i``.

    Encoding, translating and decoding ASCII are plain byte copies in C: a fraction of a
    microsecond for an item, where a Python loop or a regex substitution would take several.
    """
    return f"{MARK}{_mark_characters(text)}{MARK}"


def _mark_characters(text: str) -> str:
    return text.encode("ascii").translate(_TABLE).decode("ascii")


@dataclass(frozen=True, slots=True)
class AsciiKey:
    """How an ASCII literal is looked for in marked text."""

    key: str  # what the automaton holds ("" when searched)
    right_pad: bool  # the key ends with the MARK after the literal
    verify: bool  # a find must be compared with the original text
    searched: bool  # not in the automaton: found with str.find in the original text


def ascii_key(literal: str, check_left: bool, check_right: bool) -> AsciiKey:
    """The automaton key of an ASCII ``literal`` whose sides must (``check_*``) sit on word
    boundaries; the checked sides are always word characters (see ``compile._patterns``)."""
    if "\n" in literal or not any(map(is_word_char, literal)):
        return AsciiKey("", right_pad=False, verify=False, searched=True)
    inner = _mark_characters(literal)
    left = MARK if check_left else ""
    right = MARK if check_right else ""
    verify = not all(map(is_word_char, literal))  # a MARK in the key may be any non-word
    return AsciiKey(f"{left}{inner}{right}", check_right, verify, searched=False)
