"""Pure evaluation of a compiled :class:`RuleSet` against a normalised :class:`Document`.

No I/O and no clock: the same rule set and document always give the same matches.
"""

from __future__ import annotations

from mastwatch.model import Document, Item, Match
from mastwatch.rules.compile import CompiledRule, Pattern, RuleSet, holds
from mastwatch.text import is_word_char, make_document

__all__ = ["find_terms", "match", "rule_fires", "run_inline_tests", "searchable_text"]

INLINE_TEST_SOURCE = "inline-test"


def searchable_text(doc: Document) -> str:
    """Title, summary and content joined by line breaks (which no normalised term contains,
    so a phrase never spans two fields)."""
    return f"{doc.title}\n{doc.summary}\n{doc.content}"


def _on_boundaries(text: str, start: int, end: int, pattern: Pattern) -> bool:
    """Whether the literal at text[start:end + 1] respects the word boundaries it needs."""
    if pattern.check_left and start > 0 and is_word_char(text[start - 1]):
        return False
    return not (pattern.check_right and end + 1 < len(text) and is_word_char(text[end + 1]))


def find_terms(ruleset: RuleSet, text: str) -> frozenset[int]:
    """Indices (into ``ruleset.terms``) of the terms present in normalised ``text``."""
    if ruleset.automaton is None:
        return frozenset()
    found: set[int] = set()
    for end, (length, patterns) in ruleset.automaton.iter(text):
        start = end - length + 1
        for pattern in patterns:
            if pattern.spec not in found and _on_boundaries(text, start, end, pattern):
                found.add(pattern.spec)
    return frozenset(found)


def _to_match(compiled: CompiledRule, found: frozenset[int]) -> Match:
    rule = compiled.rule
    return Match(
        rule_id=rule.id,
        rule_title=rule.title,
        tier=rule.tier,
        matched=tuple(written for written, term in compiled.evidence if term in found),
        labels=rule.labels,
    )


def match(ruleset: RuleSet, doc: Document) -> list[Match]:
    """The enabled rules that fire on ``doc``, in rule order.

    Each :class:`Match` names the rule's terms found in the text, as the rule wrote them, in
    rule order and without repeats; terms under a ``none`` are never listed as evidence.
    """
    found = find_terms(ruleset, searchable_text(doc))
    candidates = set(ruleset.always_candidates)
    for term in found:
        candidates.update(ruleset.rules_by_term.get(term, ()))
    matches = []
    for position in sorted(candidates):
        compiled = ruleset.compiled[position]
        if compiled.rule.enabled and holds(compiled.tree, found):
            matches.append(_to_match(compiled, found))
    return matches


def rule_fires(ruleset: RuleSet, rule_id: str, doc: Document) -> bool:
    """Whether one rule of the set (enabled or not) fires on ``doc``."""
    for compiled in ruleset.compiled:
        if compiled.rule.id == rule_id:
            return holds(compiled.tree, find_terms(ruleset, searchable_text(doc)))
    raise KeyError(rule_id)


def run_inline_tests(ruleset: RuleSet) -> list[str]:
    """Run every rule's inline tests; return one message per failing test (empty: all pass).

    Disabled rules are tested too, so a rule can be fixed before it is switched on.
    """
    failures = []
    for compiled in ruleset.compiled:
        rule = compiled.rule
        for number, test in enumerate(rule.tests, start=1):
            item = Item(
                source_id=INLINE_TEST_SOURCE,
                key=f"test:{rule.id}:{number}",
                title=test.title,
                summary=test.summary,
                content=test.content,
            )
            found = find_terms(ruleset, searchable_text(make_document(item)))
            outcome = "match" if holds(compiled.tree, found) else "no-match"
            if outcome != test.expect:
                failures.append(
                    f"{rule.source}:{test.line}: rule {rule.id!r} test {number}:"
                    f" expected {test.expect}, got {outcome}"
                )
    return failures
