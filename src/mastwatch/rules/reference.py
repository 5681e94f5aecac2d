"""A plain evaluator of rules, written for obviousness rather than speed.

It walks each rule's tree as written and searches every term with its own regular
expression, field by field; proximity tries every combination of finds. The compiled
matcher (:mod:`mastwatch.rules.evaluate`) must give exactly its results, which a
property-based test checks on random rules and texts; the matching benchmark uses it as the
naive baseline ("each rule's regexes tried in turn").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from mastwatch.model import Document
from mastwatch.rules.builtins import BUILTIN_PATTERNS
from mastwatch.rules.compile import compile_leaf
from mastwatch.rules.fields import Hit, cased_texts, field_texts, gap, item_language, token_range
from mastwatch.rules.regex import compile_regex
from mastwatch.rules.tree import DEFAULT_FIELDS, FIELDS, MatchNode, Near, Rule, Term
from mastwatch.text import token_bounds

__all__ = ["ReferenceMatcher"]

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7ff"
_WORD = rf"[^\W{_CJK}]"  # a Latin-script word character (approximately is_word_char)


def _literal_regex(literal: str, prefix: bool) -> str:
    left = rf"(?<!{_WORD})" if re.match(_WORD, literal[0]) else ""
    right = rf"(?!{_WORD})" if not prefix and re.match(_WORD, literal[-1]) else ""
    return f"{left}{re.escape(literal)}{right}"


def _overlapping(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
    """Every place ``pattern`` matches, overlapping ones included (as the automaton sees)."""
    position = 0
    while (found := pattern.search(text, position)) is not None:
        yield found.start(), found.end()
        position = found.start() + 1


class ReferenceMatcher:
    """Evaluates rules one by one, term by term: the obviously correct, slow way."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._patterns: dict[tuple[str, str], Any] = {}
        for rule in self.rules:  # compile every term up front, as a naive matcher would
            self._warm(rule.match)

    def _warm(self, node: MatchNode | Near | str | Term) -> None:
        if isinstance(node, MatchNode):
            for child in node.children:
                self._warm(child)
        elif isinstance(node, Near):
            for entry in node.terms:
                self._warm(entry)
        elif isinstance(node, Term) and node.kind in {"list", "any"}:
            for item in node.items:
                self._warm(item)
        else:
            self._pattern(node)

    def _pattern(self, leaf: str | Term) -> Any:
        key = (leaf, "") if isinstance(leaf, str) else (leaf.text, leaf.kind)
        if key not in self._patterns:
            self._patterns[key] = self._build(leaf)
        return self._patterns[key]

    @staticmethod
    def _build(leaf: str | Term) -> Any:
        if isinstance(leaf, Term) and leaf.kind == "regex":
            return compile_regex(leaf.text)
        spec = compile_leaf(leaf)
        if spec.kind == "builtin":
            return BUILTIN_PATTERNS[spec.literal]
        if spec.kind == "exact":
            return re.compile(_literal_regex(spec.cased, spec.prefix))
        literals = sorted((spec.literal, *spec.plurals), key=len, reverse=True)
        return re.compile("|".join(_literal_regex(lit, spec.prefix) for lit in literals))

    def matching_rules(self, doc: Document) -> list[tuple[str, tuple[str, ...]]]:
        """(rule id, terms found outside ``none``) for every enabled rule that fires."""
        state = _Doc(doc)
        out = []
        for rule in self.rules:
            if rule.enabled and _admits(rule, doc) and self._holds(rule.match, state, ()):
                out.append((rule.id, tuple(dict.fromkeys(self._evidence(rule.match, state, ())))))
        return out

    def _finds(self, leaf: str | Term, state: _Doc, fields: Sequence[str]) -> list[Hit]:
        if isinstance(leaf, Term) and leaf.kind in {"list", "any"}:
            return [hit for item in leaf.items for hit in self._finds(item, state, fields)]
        pattern = self._pattern(leaf)
        exact = isinstance(leaf, Term) and leaf.kind == "exact"
        literal = isinstance(leaf, str) and not leaf.startswith("@")
        hits: list[Hit] = []
        for name in fields:
            index = FIELDS.index(name)
            text = state.cased[index] if exact else state.texts[index]
            if exact or literal:
                hits += [(index, s, e) for s, e in _overlapping(pattern, text)]
            else:
                hits += [
                    (index, m.start(), m.end())
                    for m in pattern.finditer(text)
                    if m.end() > m.start()
                ]
        return hits

    def _holds(self, node: MatchNode, state: _Doc, inherited: Sequence[str]) -> bool:
        fields = node.fields or inherited or DEFAULT_FIELDS
        values = [self._child_holds(child, state, fields) for child in node.children]
        if node.op == "any":
            return any(values)
        if node.op == "all":
            return all(values)
        return not any(values)

    def _child_holds(
        self, child: MatchNode | Near | str | Term, state: _Doc, fields: Sequence[str]
    ) -> bool:
        if isinstance(child, MatchNode):
            return self._holds(child, state, fields)
        if isinstance(child, Near):
            return bool(self._near_fields(child, state, fields))
        return bool(self._finds(child, state, fields))

    def _near_fields(self, near: Near, state: _Doc, inherited: Sequence[str]) -> set[int]:
        fields = near.fields or inherited
        per_entry = [self._finds(entry, state, fields) for entry in near.terms]
        good: set[int] = set()
        for combination in itertools.product(*per_entry):
            field = combination[0][0]
            if any(hit[0] != field for hit in combination):
                continue
            bounds = token_bounds(state.texts[field])
            ranges = [token_range(bounds, start, end) for _, start, end in combination]
            if gap(ranges) <= near.within:
                good.add(field)
        return good

    def _evidence(self, node: MatchNode, state: _Doc, inherited: Sequence[str]) -> Iterator[str]:
        fields = node.fields or inherited or DEFAULT_FIELDS
        for child in node.children:
            if isinstance(child, MatchNode):
                if child.op != "none":
                    yield from self._evidence(child, state, fields)
            elif isinstance(child, Near):
                yield from self._near_evidence(child, state, fields)
            else:
                yield from (_written(i) for i in _plain(child) if self._finds(i, state, fields))

    def _near_evidence(self, near: Near, state: _Doc, fields: Sequence[str]) -> Iterator[str]:
        good = self._near_fields(near, state, fields)
        scope = [FIELDS[index] for index in sorted(good)]
        for entry in near.terms:
            for leaf in _plain(entry):
                if self._finds(leaf, state, scope):
                    yield _written(leaf)


def _plain(leaf: str | Term) -> list[str | Term]:
    """The plain leaves under a list or alternatives (the leaf itself otherwise)."""
    if isinstance(leaf, Term) and leaf.kind in {"list", "any"}:
        return [plain for item in leaf.items for plain in _plain(item)]
    return [leaf]


def _written(leaf: str | Term) -> str:
    return leaf if isinstance(leaf, str) else leaf.written


class _Doc:
    """A document's field texts, with the case-preserving ones made on first use."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.texts = field_texts(doc)
        self._cased: tuple[str, ...] | None = None

    @property
    def cased(self) -> tuple[str, ...]:
        if self._cased is None:
            self._cased = cased_texts(self.doc)
        return self._cased


def _admits(rule: Rule, doc: Document) -> bool:
    if rule.sources or rule.source_tags:
        tagged = any(tag in rule.source_tags for tag in doc.source_tags)
        if doc.source_id not in rule.sources and not tagged:
            return False
    return not rule.languages or item_language(doc) in rule.languages
