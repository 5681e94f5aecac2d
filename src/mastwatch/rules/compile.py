"""Compile validated rules into an immutable :class:`RuleSet` with one Aho-Corasick presearcher.

Every term of every rule becomes one or more literal strings (the normalised term, plus its
plural forms) in a single automaton. Matching a document is then one pass over its text to
find candidate literals, a word-boundary check for each, and the evaluation of only those
rules whose terms were seen (plus the few that can match with no term present at all).

Term semantics (see :func:`compile_term`):

- Terms are normalised like the text (NFKC, case-folded, whitespace collapsed), so a
  multi-word phrase matches across any whitespace and a full-width term equals its ASCII form.
- A term edge that is a Latin letter or digit must sit on a word boundary: ``tariff`` does not
  match ``tariffication``. CJK characters count as boundaries, and terms made of CJK characters
  match as plain substrings (``関税`` matches inside ``追加関税``).
- A term ending in ``*`` is a prefix: ``tariff*`` matches ``tariffs``, ``tariffed``.
- Other terms ending in a Latin letter also match their simple English plural: ``tariff`` →
  ``tariffs``, ``duty`` → ``duties``, ``tax`` → ``taxes``, ``JGB`` (written in capitals) →
  ``JGBs``. Only the last word of a phrase is pluralised (``treasury yield`` → ``treasury yields``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import ahocorasick

from mastwatch.rules.schema import MatchNode, Rule
from mastwatch.text import has_cjk, is_word_char, normalize

__all__ = ["CompiledNode", "CompiledRule", "RuleSet", "TermSpec", "compile_rules", "compile_term"]

_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")
_VOWELS = frozenset("aeiou")


@dataclass(frozen=True, slots=True)
class TermSpec:
    """A term as the matcher sees it: its normalised literal and how to widen it."""

    literal: str
    prefix: bool = False  # written with a trailing '*'
    plurals: tuple[str, ...] = ()  # extra literals accepted as the same term


@dataclass(frozen=True, slots=True)
class Pattern:
    """One automaton literal standing for a term, with the boundaries it must respect."""

    spec: int  # index into RuleSet.terms
    check_left: bool
    check_right: bool


@dataclass(frozen=True, slots=True)
class CompiledNode:
    """A match-tree node whose leaves are term indices."""

    op: str
    children: tuple[CompiledNode | int, ...]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its tree over term indices and the terms that count as evidence."""

    rule: Rule
    tree: CompiledNode
    evidence: tuple[tuple[str, int], ...]  # (term as written, term index), outside any `none`
    terms: frozenset[int]
    matches_without_terms: bool  # true when a `none` branch lets it fire on an empty text


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """An immutable, compiled rule set; swapped whole on reload, never edited in place."""

    rules: tuple[Rule, ...]
    content_hash: str
    terms: tuple[TermSpec, ...] = ()
    compiled: tuple[CompiledRule, ...] = ()
    rules_by_term: Mapping[int, tuple[int, ...]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    always_candidates: tuple[int, ...] = ()
    automaton: Any = field(default=None, repr=False)  # ahocorasick.Automaton, None if no term

    def __len__(self) -> int:
        return len(self.rules)


def _plural_forms(literal: str, written: str) -> tuple[str, ...]:
    """Simple English plurals of the last word; acronyms written in capitals just take 's'."""
    if not literal or not ("a" <= literal[-1] <= "z"):
        return ()
    last_written = written.rsplit(maxsplit=1)[-1]
    if last_written.isupper():
        return (literal + "s",)
    if literal.endswith(_SIBILANT_ENDINGS):
        return (literal + "es",)
    if literal.endswith("y") and len(literal) > 1 and literal[-2] not in _VOWELS:
        return (literal[:-1] + "ies",)
    return (literal + "s",)


def compile_term(written: str) -> TermSpec:
    """Turn a term as written in a rule into the literals the automaton looks for."""
    norm = normalize(written)
    if norm.endswith("*"):
        return TermSpec(literal=norm[:-1], prefix=True)
    if has_cjk(norm[-1:]):
        return TermSpec(literal=norm)
    return TermSpec(literal=norm, plurals=_plural_forms(norm, written))


def _patterns(spec: TermSpec, index: int) -> list[tuple[str, Pattern]]:
    out = []
    for literal in (spec.literal, *spec.plurals):
        check_left = is_word_char(literal[0])
        check_right = not spec.prefix and is_word_char(literal[-1])
        out.append((literal, Pattern(index, check_left, check_right)))
    return out


class _Compiler:
    """Interns terms across rules so each literal enters the automaton once."""

    def __init__(self) -> None:
        self.specs: list[TermSpec] = []
        self.index: dict[TermSpec, int] = {}

    def term(self, written: str) -> int:
        spec = compile_term(written)
        if spec not in self.index:
            self.index[spec] = len(self.specs)
            self.specs.append(spec)
        return self.index[spec]

    def node(self, node: MatchNode, negated: bool, evidence: list[tuple[str, int]]) -> CompiledNode:
        children: list[CompiledNode | int] = []
        inner_negated = negated or node.op == "none"
        for child in node.children:
            if isinstance(child, MatchNode):
                children.append(self.node(child, inner_negated, evidence))
                continue
            spec = self.term(child)
            children.append(spec)
            if not inner_negated:
                evidence.append((child, spec))
        return CompiledNode(node.op, tuple(children))

    def rule(self, rule: Rule) -> CompiledRule:
        evidence: list[tuple[str, int]] = []
        tree = self.node(rule.match, False, evidence)
        unique = tuple(dict.fromkeys(evidence))
        return CompiledRule(
            rule=rule,
            tree=tree,
            evidence=unique,
            terms=frozenset(_leaves(tree)),
            matches_without_terms=holds(tree, frozenset()),
        )

    def automaton(self) -> Any:
        by_literal: dict[str, list[Pattern]] = {}
        for index, spec in enumerate(self.specs):
            for literal, pattern in _patterns(spec, index):
                by_literal.setdefault(literal, []).append(pattern)
        if not by_literal:
            return None
        automaton = ahocorasick.Automaton()
        for literal, patterns in by_literal.items():
            automaton.add_word(literal, (len(literal), tuple(patterns)))
        automaton.make_automaton()
        return automaton


def _leaves(node: CompiledNode) -> list[int]:
    out: list[int] = []
    for child in node.children:
        out.extend(_leaves(child) if isinstance(child, CompiledNode) else [child])
    return out


def holds(node: CompiledNode, found: frozenset[int]) -> bool:
    """Evaluate a compiled tree given the set of term indices found in the text."""
    results = (
        holds(child, found) if isinstance(child, CompiledNode) else child in found
        for child in node.children
    )
    if node.op == "any":
        return any(results)
    if node.op == "all":
        return all(results)
    return not any(results)


def content_hash(rules: Sequence[Rule]) -> str:
    """sha256 over the rules' canonical content, sorted: independent of file order and names."""
    canonical = sorted(
        json.dumps(rule.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for rule in rules
    )
    return hashlib.sha256("\n".join(canonical).encode("utf-8")).hexdigest()


def compile_rules(rules: Sequence[Rule]) -> RuleSet:
    """Compile validated rules (in their load order) into an immutable :class:`RuleSet`."""
    compiler = _Compiler()
    compiled = tuple(compiler.rule(rule) for rule in rules)
    rules_by_term: dict[int, list[int]] = {}
    for position, item in enumerate(compiled):
        for term in item.terms:
            rules_by_term.setdefault(term, []).append(position)
    return RuleSet(
        rules=tuple(rules),
        content_hash=content_hash(rules),
        terms=tuple(compiler.specs),
        compiled=compiled,
        rules_by_term=MappingProxyType({term: tuple(ids) for term, ids in rules_by_term.items()}),
        always_candidates=tuple(
            position for position, item in enumerate(compiled) if item.matches_without_terms
        ),
        automaton=compiler.automaton(),
    )
