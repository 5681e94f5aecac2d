"""Property: the compiled matcher gives exactly the reference evaluator's results.

Random rules (nested any/all/none, proximity, field scopes, prefixes, exact case, regexes,
built-in patterns, named lists, source and language filters) over random English and
Japanese texts built from words chosen to hit boundaries, plurals, case and overlaps.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mastwatch.model import Document, Item, Match
from mastwatch.rules import MatchNode, Near, Rule, Term, compile_rules, field_texts, match
from mastwatch.rules.compile import RuleSet
from mastwatch.rules.evaluate import (
    Scan,
    _fires_on,
    _firing,
    _plan_evidence,
    admits,
    python_steps,
)
from mastwatch.rules.reference import ReferenceMatcher, _literal_regex, _overlapping
from mastwatch.rules.tree import FIELDS
from mastwatch.text import make_document


def fullwidth(ascii_text: str) -> str:
    """The full-width form of printable ASCII (what Japanese feeds often carry)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in ascii_text)


PLAIN_TERMS = [
    "tax",
    "tariff",
    "US",
    "yen",
    "g7",
    "duty",
    "trade deal",
    "関税",
    "日米",
    "税",
    "tari*",
    "du*",
    "関*",
    "@date",
    "@money",
    "@percent",
]
TERM_OBJECTS = [
    Term(kind="exact", text="US"),
    Term(kind="exact", text="Tax*"),
    Term(kind="regex", text=r"\d+ ?億"),
    Term(kind="regex", text=r"ta[rx]\w*"),
    Term(kind="regex", text=r"(?:us|japan) tariffs?"),
    Term(kind="list", text="trade-words", items=("tariff", "duty", Term(kind="exact", text="WTO"))),
]
WORDS = [
    "tax",
    "taxes",
    "Tax",
    "TAX",
    "taxing",
    "tariff",
    "tariffs",
    "tariffication",
    "US",
    "us",
    fullwidth("US"),
    "yen",
    "G7",
    fullwidth("g7"),
    "duty",
    "duties",
    "WTO",
    "Straße",
    "wto",
    "trade",
    "deal",
    "関税",
    "日米",
    "税",
    "追加関税",
    "7月20日",
    "25%",
    fullwidth("25%"),
    "$40 billion",
    "1兆2700億ドル",
    "20 July",
    "the",
    "of",
    "-",
    "、",
]
FIELD_SCOPES = [(), (), (), ("title",), ("summary", "content"), ("tags", "link"), ("source",)]

leaves = st.sampled_from(PLAIN_TERMS) | st.sampled_from(TERM_OBJECTS)
scopes = st.sampled_from(FIELD_SCOPES)


def near_nodes() -> st.SearchStrategy[Near]:
    entry = leaves | st.lists(st.sampled_from(PLAIN_TERMS), min_size=1, max_size=3).map(
        lambda items: Term(kind="any", items=tuple(items))
    )
    return st.builds(
        lambda terms, within, fields: Near(terms=tuple(terms), within=within, fields=fields),
        st.lists(entry, min_size=2, max_size=3),
        st.integers(0, 4),
        scopes,
    )


def extend(children: st.SearchStrategy[object]) -> st.SearchStrategy[MatchNode]:
    return st.builds(
        lambda op, items, fields: MatchNode(op=op, children=tuple(items), fields=fields),
        st.sampled_from(["any", "all", "none"]),
        st.lists(children, min_size=1, max_size=3),
        scopes,
    )


trees = st.recursive(leaves | near_nodes(), extend, max_leaves=8).map(
    lambda node: node if isinstance(node, MatchNode) else MatchNode(op="all", children=(node,))
)


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(1, 4))
    out = []
    for number in range(count):
        out.append(
            Rule(
                id=f"r{number}",
                title=f"Rule {number}",
                tier="high",
                match=draw(trees),
                enabled=draw(st.booleans() | st.just(True)),
                sources=draw(st.sampled_from([(), (), ("wire",)])),
                source_tags=draw(st.sampled_from([(), (), ("japan",)])),
                languages=draw(st.sampled_from([(), (), ("ja",), ("en",)])),
            )
        )
    return out


def _texts(words: list[str]) -> st.SearchStrategy[str]:
    return st.lists(
        st.tuples(st.sampled_from(words), st.sampled_from([" ", " ", "", ", ", "\n"])),
        max_size=12,
    ).map(lambda parts: "".join(word + sep for word, sep in parts))


# all-ASCII items are matched on a marked copy of their text (rules.boundary), the others
# with the boundaries checked in Python: both kinds are drawn
text = _texts(WORDS) | _texts([word for word in WORDS if word.isascii()])


@st.composite
def documents(draw: st.DrawFn) -> Document:
    item = Item(
        source_id=draw(st.sampled_from(["wire", "ministry", "tax-news"])),
        key="k",
        title=draw(text),
        summary=draw(text),
        content=draw(st.sampled_from(["", "<p>US tariffs</p>"]) | text),
        link=draw(st.sampled_from([None, "https://example.com/tariffs/us", "https://x.jp/関税"])),
        tags=tuple(draw(st.lists(st.sampled_from(["trade", "Tax", "関税", "g7"]), max_size=2))),
    )
    return make_document(item, draw(st.sampled_from([(), ("japan",), ("markets",)])))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(documents(), min_size=1, max_size=3))
def test_compiled_matcher_equals_reference(rule_list: list[Rule], docs: list[Document]) -> None:
    compiled = compile_rules(rule_list)
    reference = ReferenceMatcher(rule_list)
    for doc in docs:
        found = match(compiled, doc)
        assert [(m.rule_id, m.matched) for m in found] == reference.matching_rules(doc)
        texts = dict(zip(FIELDS, field_texts(doc), strict=True))
        for m in found:
            for evidence in m.evidence:
                assert 0 <= evidence.start < evidence.end <= len(texts[evidence.field])
        _check_shortcuts(compiled, doc, found)
        _check_literal_finds(compiled, doc)
        _check_python_evaluator(compiled, doc, found)


def _check_python_evaluator(ruleset: RuleSet, doc: Document, found: list[Match]) -> None:
    """Deciding and explaining in Python gives what the C module gives, types included."""
    with python_steps():
        in_python = match(ruleset, doc)
    assert in_python == found
    assert [type(m) for m in in_python] == [type(m) for m in found]
    assert [type(e) for m in in_python for e in m.evidence] == [
        type(e) for m in found for e in m.evidence
    ]


def _check_literal_finds(ruleset: RuleSet, doc: Document) -> None:
    """Every plain term is found exactly where the reference's regex finds it (evidence
    spans come from these finds), in order of the finds' ends, in the fields scanned."""
    scan = Scan(ruleset, doc)
    texts = field_texts(doc)
    for term, spec in enumerate(ruleset.terms):
        if spec.kind != "term":
            continue
        literals = sorted((spec.literal, *spec.plurals), key=len, reverse=True)
        pattern = re.compile("|".join(_literal_regex(lit, spec.prefix) for lit in literals))
        expected = [
            (field, start, end)
            for field in range(ruleset.scanned_fields)
            for start, end in _overlapping(pattern, texts[field])
        ]
        hits = scan.hits.get(term, [])
        assert sorted(hits) == sorted(expected)
        assert hits == sorted(hits, key=lambda hit: (hit[0], hit[2]))


def _check_shortcuts(ruleset: RuleSet, doc: Document, found: list[Match]) -> None:
    """The matcher's shortcuts give what the plain paths give: the literal conditions (and
    the candidate choice) what the whole compiled tree says for every enabled rule, and the
    evidence from the terms found what walking the whole evidence plan gives."""
    scan = Scan(ruleset, doc)
    fired = {m.rule_id: m for m in found}
    candidates = scan.triggered | set(ruleset.always_candidates)
    for position, compiled in enumerate(ruleset.compiled):
        if not compiled.rule.enabled:
            continue
        holds = admits(compiled, scan) and scan.holds(compiled.tree)
        assert (compiled.rule.id in fired) == holds
        assert _fires_on(compiled, scan) == holds  # literal conditions first, then the rest
        if position in candidates:  # by bits, packed conditions or the rest, as it is checked
            assert _firing(ruleset, scan, {position}) == ([position] if holds else [])
        else:
            assert not holds
        if holds:
            plain: dict[tuple[str, int, int, int], None] = {}
            _plan_evidence(scan, compiled.evidence_plan, plain)
            evidence = fired[compiled.rule.id].evidence
            assert [(e.term, FIELDS.index(e.field), e.start, e.end) for e in evidence] == list(
                plain
            )


NEAR_WORDS = ["tax", "yen", "関税", "日米", "of", "the", "7月20日", "20 July", "、"]
near_text = st.lists(
    st.tuples(st.sampled_from(NEAR_WORDS), st.sampled_from([" ", "", ", "])), max_size=10
).map(lambda parts: "".join(word + sep for word, sep in parts))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["tax", "yen", "関税", "日", "@date", "of"]), min_size=2, max_size=3),
    st.integers(0, 3),
    st.lists(near_text, min_size=1, max_size=4),
)
def test_proximity_equals_reference(terms: list[str], within: int, titles: list[str]) -> None:
    rule = Rule(
        id="near",
        title="Near",
        tier="high",
        match=MatchNode(op="all", children=(Near(terms=tuple(terms), within=within),)),
    )
    compiled = compile_rules([rule])
    reference = ReferenceMatcher([rule])
    for title in titles:
        doc = make_document(Item(source_id="s", key="k", title=title))
        assert [(m.rule_id, m.matched) for m in match(compiled, doc)] == reference.matching_rules(
            doc
        )


LITERALS = st.sampled_from([t for t in PLAIN_TERMS if not t.startswith("@")]) | st.sampled_from(
    [Term(kind="exact", text="US"), Term(kind="exact", text="Tax*")]
)
branch = st.builds(
    lambda op, items, fields: MatchNode(op=op, children=tuple(items), fields=fields),
    st.sampled_from(["any", "any", "all", "none"]),
    st.lists(LITERALS, min_size=1, max_size=3),
    scopes,
)


@st.composite
def branch_rules(draw: st.DrawFn) -> list[Rule]:
    """Rules shaped like most real ones (and the benchmark's): an `all` of literal branches
    (`any` of names, `any` of topic words, `none` of exclusions), decided by the matcher's
    literal conditions alone; sometimes a literal, a pattern or a proximity beside them."""
    out = []
    for number in range(draw(st.integers(1, 4))):
        children: list[object] = draw(st.lists(branch, min_size=1, max_size=3))
        children += draw(st.lists(LITERALS | st.sampled_from(["@date"]) | near_nodes(), max_size=1))
        tree = MatchNode(op="all", children=tuple(children), fields=draw(scopes))  # type: ignore[arg-type]
        out.append(Rule(id=f"b{number}", title="B", tier="high", match=tree))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(branch_rules(), st.lists(documents(), min_size=1, max_size=3))
def test_literal_branch_rules_equal_reference(rule_list: list[Rule], docs: list[Document]) -> None:
    compiled = compile_rules(rule_list)
    reference = ReferenceMatcher(rule_list)
    for doc in docs:
        found = match(compiled, doc)
        assert [(m.rule_id, m.matched) for m in found] == reference.matching_rules(doc)
        _check_shortcuts(compiled, doc, found)
        _check_python_evaluator(compiled, doc, found)
