"""Word boundaries applied by the automaton on marked ASCII text (rules.boundary).

An ASCII text is matched on a marked copy (see :mod:`mastwatch.rules.boundary`); any other
text with the automaton of all literals and the boundary checked in Python. Both must find
exactly what the reference evaluator finds, at the same places: each case here is run on
the ASCII text and on the same text with a non-ASCII field beside it (which takes the other
path), and compared with the reference; the cases with non-ASCII neighbours (accented
letters, which continue a word, and CJK characters, which do not) are compared with the
reference alone.
"""

from __future__ import annotations

import pytest

from mastwatch.model import Document, Item
from mastwatch.rules import MatchNode, Rule, Term, compile_rules, field_texts, match
from mastwatch.rules.boundary import MARK, ascii_key, marked
from mastwatch.rules.compile import compile_leaf
from mastwatch.rules.evaluate import Scan
from mastwatch.rules.reference import ReferenceMatcher, _Doc
from mastwatch.rules.tree import FIELDS
from mastwatch.text import make_document


def test_marked_text_keeps_word_characters_and_marks_the_rest() -> None:
    text = "Us-tariffs, 25% tax_rate\n(g7)"
    out = marked(text)
    assert len(out) == len(text) + 2
    assert out == " Us tariffs  25  tax_rate  g7  "
    assert marked("") == MARK * 2


def test_every_ascii_character_is_marked_as_is_word_char_says() -> None:
    for code in range(128):
        ch = chr(code)
        expected = ch if (ch.isalnum() or ch == "_") else MARK
        assert marked(ch)[1] == expected, repr(ch)


@pytest.mark.parametrize(
    ("literal", "left", "right", "expected"),
    [
        ("tariff", True, True, (" tariff ", True, False, False)),
        ("tariff", True, False, (" tariff", False, False, False)),  # a prefix: tariff*
        ("section", False, False, ("section", False, False, False)),  # a hint: anywhere
        ("feed-in tariff", True, True, (" feed in tariff ", True, True, False)),
        ("trade deal", True, True, (" trade deal ", True, True, False)),
        ("u.s.", True, False, (" u s ", False, True, False)),
        ("$40", False, True, (" 40 ", True, True, False)),
        ("%", False, False, ("", False, False, True)),
        ("a\nb", False, False, ("", False, False, True)),
    ],
)
def test_ascii_key(
    literal: str, left: bool, right: bool, expected: tuple[str, bool, bool, bool]
) -> None:
    found = ascii_key(literal, left, right)
    assert (found.key, found.right_pad, found.verify, found.searched) == expected


def _rule(rule_id: str, *leaves: str | Term) -> Rule:
    tree = MatchNode(op="any", children=leaves, fields=FIELDS)
    return Rule(id=rule_id, title=rule_id, tier="high", match=tree)


def _doc(title: str, summary: str = "", link: str | None = None) -> Document:
    return make_document(Item("src", "k", title, summary=summary, link=link))


Found = tuple[str, tuple[str, ...], tuple[tuple[str, str, int, int], ...]]


def _finds(rules: list[Rule], document: Document) -> list[Found]:
    ruleset = compile_rules(rules)
    return [
        (m.rule_id, m.matched, tuple((e.term, e.field, e.start, e.end) for e in m.evidence))
        for m in match(ruleset, document)
    ]


CASES: list[tuple[list[str | Term], str, str]] = [
    # (leaves of one rule, title, summary)
    (["tariff"], "tariff", ""),  # the whole text: both edges are boundaries
    (["tariff"], "(tariff), tariff. tariff! anti-tariff", ""),
    (["tariff"], "tariffication pretariff tariff_rate tariff2", ""),  # no find
    (["tariff"], "new tariffs", "tariff"),  # a plural; the summary's first word
    (["tariff"], "ends with tariff", "tariff starts"),  # the edges of fields
    (["tariff*"], "tariffication pretariff tariff*", ""),  # a prefix: left side only
    (["g7"], "g7 g77 g7-summit 1g7 _g7", ""),
    (["tax", "taxes"], "tax taxes taxing", ""),  # two terms, overlapping literals
    (["feed-in tariff"], "feed-in tariff, feed in tariff, feed-in tariffs", ""),
    (["feed in tariff"], "feed-in tariff, feed in tariff, feed-in-tariff", ""),
    (["trade deal"], "trade deal trade-deal trade  deal trade deals", ""),
    (["u.s.", "u.s"], "u.s. u.s u.s.a us", ""),  # one marked key for two literals
    (["$40"], "$40 billion, $400, us$40", ""),
    ([Term(kind="exact", text="US")], "US us Us USA", ""),
    (["us", Term(kind="exact", text="US")], "US us", ""),  # the same key, one with a case check
    ([Term(kind="regex", text=r"section (232|301)")], "a section 232 probe", ""),
    (["tariff", "tariff*"], "tariff tariffs tariffed", ""),  # sides differ: two keys
]


@pytest.mark.parametrize(("leaves", "title", "summary"), CASES)
def test_ascii_and_other_texts_find_what_the_reference_finds(
    leaves: list[str | Term], title: str, summary: str
) -> None:
    rules = [_rule("r", *leaves)]
    reference = ReferenceMatcher(rules)
    ascii_doc = _doc(title, summary)
    other_doc = _doc(title, summary, link="https://example.jp/関税")  # not ASCII: the other path
    assert "\n".join(field_texts(ascii_doc)).isascii()
    assert not "\n".join(field_texts(other_doc)).isascii()
    for document in (ascii_doc, other_doc):
        assert [(m[0], m[1]) for m in _finds(rules, document)] == reference.matching_rules(document)
    # the same evidence, at the same places, on both paths (the link adds none here)
    assert _finds(rules, ascii_doc) == _finds(rules, other_doc)


@pytest.mark.parametrize(("leaves", "title", "summary"), CASES)
def test_each_term_is_found_where_the_reference_finds_it(
    leaves: list[str | Term], title: str, summary: str
) -> None:
    rules = [_rule("r", *leaves)]
    ruleset, reference = compile_rules(rules), ReferenceMatcher(rules)
    for document in (_doc(title, summary), _doc(title, summary, link="https://example.jp/関税")):
        scan, state = Scan(ruleset, document), _Doc(document)
        for leaf in leaves:
            if isinstance(leaf, Term) and leaf.kind in {"regex", "exact"}:
                continue  # regexes are searched lazily; exact spans are in cased text there
            term = ruleset.terms.index(compile_leaf(leaf))
            expected = reference._finds(leaf, state, FIELDS)
            assert sorted(scan.hits.get(term, [])) == sorted(expected), leaf


def test_hits_of_a_term_come_in_order_of_their_end() -> None:
    ruleset = compile_rules([_rule("r", "tariff")])
    scan = Scan(ruleset, _doc("tariff and tariffs", "tariff"))
    term = next(i for i, spec in enumerate(ruleset.terms) if spec.literal == "tariff")
    assert scan.hits[term] == [(0, 0, 6), (0, 11, 18), (1, 0, 6)]


NON_ASCII_CASES: list[tuple[list[str | Term], str]] = [
    # an accented letter continues a word; a CJK character or Japanese punctuation does not
    (["tariff"], "écotariff tariffé tariff関税 関税tariff 「tariff」 tariff。 «tariff»"),
    (["tariff*"], "tariffé étariff tariffs関税"),  # a prefix: its right side is free
    (["g7"], "g7首脳会議 Ｇ７サミット g7é ég7 g7"),  # full width is NFKC-normalised first
    (["feed-in tariff"], "feed-in tariffé éfeed-in tariff feed-in tariff、"),  # verified finds
    (["u.s."], "u.s.関税 éu.s. u.s.é"),
    (["café", "関税"], "café cafés décafé café関税 関税café"),  # a non-ASCII Latin literal
    (["tariff", "関税"], "tariff関税tariff"),  # both automata on one text
    ([Term(kind="regex", text=r"section (232|301)")], "sectionné section 232 関税"),
]


@pytest.mark.parametrize(("leaves", "title"), NON_ASCII_CASES)
def test_non_ascii_neighbours_bound_words_as_the_reference_says(
    leaves: list[str | Term], title: str
) -> None:
    rules = [_rule("r", *leaves)]
    ruleset, reference = compile_rules(rules), ReferenceMatcher(rules)
    document = _doc(title)
    assert [(m[0], m[1]) for m in _finds(rules, document)] == reference.matching_rules(document)
    scan, state = Scan(ruleset, document), _Doc(document)
    for leaf in leaves:
        if isinstance(leaf, Term):
            continue  # regexes are searched lazily
        term = ruleset.terms.index(compile_leaf(leaf))
        assert sorted(scan.hits.get(term, [])) == sorted(reference._finds(leaf, state, FIELDS))


def test_an_accented_letter_beside_an_ascii_literal_is_no_boundary() -> None:
    """No mapping of such text to marked text shows this boundary; the check in Python
    keeps ``tariffé`` from being a find of ``tariff``."""
    ruleset = compile_rules([_rule("r", "tariff")])
    assert match(ruleset, _doc("tariffé écotariff")) == []
    found = match(ruleset, _doc("tariff関税"))
    assert [(e.start, e.end) for e in found[0].evidence] == [(0, 6)]


def test_the_path_is_chosen_by_the_fields_the_automaton_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rules on the default fields never scan the link: an English item whose link holds
    other characters is matched on marked text, and finds what the reference finds."""
    rules = [Rule(id="r", title="r", tier="high", match=MatchNode(op="any", children=("tariff",)))]
    ruleset = compile_rules(rules)
    document = _doc("New tariffs, tariff talks", link="https://example.jp/関税")

    def other_path(scan: Scan, scanned_text: str) -> None:
        raise AssertionError(f"the other path for {scanned_text!r}")

    monkeypatch.setattr(Scan, "_find_literals", other_path)
    found = _finds(rules, document)
    assert [(m[0], m[1]) for m in found] == ReferenceMatcher(rules).matching_rules(document)
    assert found[0][2] == (("tariff", "title", 4, 11), ("tariff", "title", 13, 19))
    # a title that is not ASCII, the automaton scans it: the other path
    with pytest.raises(AssertionError, match="the other path"):
        Scan(ruleset, _doc("関税 tariff"))
