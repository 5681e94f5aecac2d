"""Compile validated rules into an immutable :class:`RuleSet` with one Aho-Corasick presearcher.

Every literal term of every rule (the normalised term, plus its plural forms) goes into a
single automaton. Matching a document is then one pass over its fields to find literals, a
word-boundary check for each, and the evaluation of only the candidate rules: those whose
*trigger* was seen (a group of terms one of which the rule cannot fire without, chosen to
be rare, see :func:`_triggers`), plus the few that could fire without any literal (a
regex, a built-in pattern or a ``none`` branch decides them).

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
- ``{exact: US}`` matches like a term, then also requires the same letter case in the text.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import daachorse

from mastwatch.rules.boundary import ascii_key
from mastwatch.rules.builtins import BUILTIN_NEEDLES, BUILTIN_PATTERNS
from mastwatch.rules.regex import compile_regex, required_literal
from mastwatch.rules.tree import DEFAULT_FIELDS, FIELDS, MatchNode, Near, Rule, Term
from mastwatch.text import has_cjk, is_word_char, normalize, normalize_cased

__all__ = [
    "CompiledNear",
    "CompiledNode",
    "CompiledRule",
    "RuleSet",
    "TermSpec",
    "compile_rules",
    "compile_term",
    "content_hash",
    "field_mask",
]

_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")
_VOWELS = frozenset("aeiou")


def field_mask(fields: Sequence[str]) -> int:
    """A bit per field name, in :data:`~mastwatch.rules.tree.FIELDS` order."""
    return sum(1 << FIELDS.index(name) for name in set(fields))


DEFAULT_MASK = field_mask(DEFAULT_FIELDS)


@dataclass(frozen=True, slots=True)
class TermSpec:
    """A leaf as the matcher sees it.

    ``kind`` is ``term`` (automaton literal), ``exact`` (automaton literal, then a case
    check against ``cased``), ``regex`` (an RE2 pattern in ``literal``), ``builtin``
    (``@date`` and friends, named in ``literal``) or ``hint`` (a literal every match of a
    regex contains: found anywhere, it makes the regex's rules candidates; never evaluated).
    """

    literal: str
    prefix: bool = False  # written with a trailing '*'
    plurals: tuple[str, ...] = ()  # extra literals accepted as the same term
    kind: str = "term"
    cased: str = ""  # exact: the NFKC form with its letter case, without '*'

    @property
    def in_automaton(self) -> bool:
        return self.kind in {"term", "exact", "hint"}


@dataclass(frozen=True, slots=True)
class Pattern:
    """One automaton literal standing for a leaf, with the boundaries it must respect."""

    spec: int  # index into RuleSet.terms
    check_left: bool
    check_right: bool
    exact: bool = False
    literal: str = ""  # the literal itself (compared with the text when a find is verified)


# A literal's flags (LiteralTable.flags, by its id, which is its pattern id in the
# automaton): a flag for each side that must not continue a word, and a flag for literals
# whose leaves take a find differently (each is then checked on its own).
CHECK_LEFT = 1
CHECK_RIGHT = 2
MIXED = 4
# In the automaton of marked ASCII text (see mastwatch.rules.boundary) no side is checked
# in Python: the side flags say instead that the key starts with the mark before the
# literal (LEFT_PAD) or ends with the mark after it (RIGHT_PAD), and MIXED also flags keys
# whose finds are compared with the original text (literals holding non-word characters).
LEFT_PAD = CHECK_LEFT
RIGHT_PAD = CHECK_RIGHT
# a rule's packed literal conditions (see CompiledRule.packed) and whether they decide it
QuickCheck = tuple[int, Mapping[int, int], int, int, bool]
# term indices (empty when MIXED), the patterns, the rules a find makes candidates (a
# find's start and end come from the automaton, so no length is kept)
LiteralInfo = tuple[tuple[int, ...], tuple[Pattern, ...], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class LiteralTable:
    """What a find of each automaton literal means, by its id (its pattern id in the
    automaton).

    Most literals stand for one term and make at most two rules candidates: for those the
    term and the rules are read from a flat array rather than from the literal's objects
    (which, among tens of thousands, are mostly cold in the CPU cache: a name shared by two
    rules would cost a read of its info tuple, of its tuple of rules and of each rule's
    int object).
    """

    info: tuple[LiteralInfo, ...]
    # three ints per literal, side by side (one cache line to read per find): at 3 * id
    # the literal's term, or -1 when it has several (read info); at 3 * id + 1 a rule it
    # makes a candidate, -1 for none, -2 for more than two (read info); at 3 * id + 2 the
    # second such rule (the first again when it is the only one)
    one: array[int]
    # per literal in the automaton: CHECK_LEFT, CHECK_RIGHT (or the pads) and MIXED, read
    # as small ints, which Python never allocates
    flags: bytes = b""


def _empty_table() -> LiteralTable:
    return LiteralTable((), array("i"))


@dataclass(frozen=True, slots=True)
class AsciiMatcher:
    """Literals as found in texts that are all ASCII: an automaton over marked text, which
    applies word boundaries itself (see :mod:`mastwatch.rules.boundary`), its table (ids
    and flags as in :class:`LiteralTable`, with the pads for the side flags), and
    the literals searched with ``str.find`` instead, each with its id in the table."""

    automaton: Any = None  # the automaton (see RuleSet.automaton), None if no ASCII literal
    table: LiteralTable = field(default_factory=_empty_table)
    searched: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledNear:
    """Proximity: one hit of each entry (a set of alternative leaves) within ``within``."""

    entries: tuple[tuple[int, ...], ...]
    written: tuple[tuple[str, ...], ...]
    within: int
    mask: int
    # the entries in the order to look them up: those of literals only (already found by
    # the automaton) first, so the fields they share narrow where patterns are searched
    order: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledNode:
    """A match-tree node whose leaves are term indices, scoped to the fields in ``mask``."""

    op: str
    children: tuple[CompiledNode | CompiledNear | int, ...]
    written: tuple[str, ...] = ()  # for each int child, the term as the rule wrote it
    mask: int = DEFAULT_MASK
    # the same children split for speed: automaton terms (tested as one set operation
    # against the terms found) and the rest (patterns, nested nodes, proximity), the rest
    # ordered cheap first: nested nodes of literals only before anything that may run a
    # regex, a pattern or a proximity sweep. The operands are pure, so the order changes
    # no result; it only lets an `all` that lacks a literal fail before the costly part.
    literals: frozenset[int] = frozenset()
    rest: tuple[CompiledNode | CompiledNear | int, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its compiled tree and the filters checked before evaluating it."""

    rule: Rule
    tree: CompiledNode
    terms: frozenset[int]
    matches_without_terms: bool  # a regex, pattern or `none` may let it fire with no literal
    trigger: frozenset[int] = frozenset()  # terms one of which must be found (see _triggers)
    filtered: bool = False  # has source or language filters (see evaluate.admits)
    check: Any = None  # the tree as one Python function (see _codegen), None if too deep
    # the literal conditions at the root (see _literal_conditions): one of each `requires`
    # group and none of each `excludes` group found in its fields; when `decided`, they are
    # the whole rule and `check` is not called
    requires: tuple[tuple[int, frozenset[int]], ...] = ()
    excludes: tuple[tuple[int, frozenset[int]], ...] = ()
    decided: bool = False
    # the same conditions packed for speed when they share one field mask (the usual
    # case, see _packed): the mask, each term's bits (bit i: in requires group i, bit
    # len(requires) + j: in excludes group j), the bits that must all be set and those that
    # must not. One small dict per rule, probed once per term found, instead of a frozenset
    # per group: with thousands of rules the rule data is cold in the CPU cache, and this
    # touches fewer objects
    packed: tuple[int, Mapping[int, int], int, int] | None = None
    # the leaves whose finds explain a match, in rule order (see _evidence_plan); when
    # they are automaton terms only (the usual case), ExplainTable holds them packed
    evidence_plan: tuple[tuple[int, str, int] | CompiledNear, ...] = ()
    # what a Match repeats of the rule: id, title, tier, labels (one tuple to read per
    # match rather than the rule model and its attribute dict)
    header: tuple[str, str, str, tuple[tuple[str, str], ...]] = ("", "", "", ())
    source_ids: frozenset[str] = frozenset()
    source_tags: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ExplainTable:
    """What explaining a match reads of its rule, for every rule whose evidence plan holds
    automaton terms only (the usual case), packed into two flat sequences.

    With thousands of rules a rule's data is cold in the CPU cache when it fires, and each
    object read is a cache miss: here a rule's part of each sequence is a few adjacent
    words, in place of a dict, a tuple per step and the header tuple. For the rule at
    position p, ``at[p]`` is -1 when its plan has patterns or proximity, or two steps
    share a term or a spelling (it is then explained step by step from
    ``CompiledRule.evidence_plan``, repeats dropped); else i, and ``ints[i]`` is the
    number k of its plan steps, ``ints[i + 1]`` the index j of its objects, and step s has
    its term at ``ints[i + 2 + s]`` and its fields mask at ``ints[i + 2 + k + s]``.
    ``objects[j:j + 4]`` are the rule's id, title, tier and labels, and ``objects[j + 4 +
    s]`` step s as the rule wrote it.
    """

    at: array[int]
    ints: array[int]
    objects: tuple[object, ...]


def _explain_table(compiled: Sequence[CompiledRule], specs: Sequence[TermSpec]) -> ExplainTable:
    at, ints, objects = array("i"), array("i"), list[object]()
    for item in compiled:
        plan = item.evidence_plan
        if any(isinstance(step, CompiledNear) or not specs[step[0]].in_automaton for step in plan):
            at.append(-1)
            continue
        steps: Sequence[tuple[int, str, int]] = plan  # type: ignore[assignment]  # no nears
        if len({t for t, _, _ in steps}) < len(steps) or len({w for _, w, _ in steps}) < len(steps):
            at.append(-1)
            continue
        at.append(len(ints))
        ints.extend((len(plan), len(objects)))
        objects.extend(item.header)
        ints.extend(term for term, _, _ in steps)
        ints.extend(mask for _, _, mask in steps)
        objects.extend(written for _, written, _ in steps)
    return ExplainTable(at, ints, tuple(objects))


COMMON_TERMS = 63  # terms given a bit in BranchBits (one unsigned 64-bit word, with BY_BITS)
BY_BITS = 1 << 63
REST = 1 << 63  # in a rule's excluded-bits word: other branches remain (no term has it)


@dataclass(frozen=True, slots=True)
class BranchBits:
    """Rules decided by bits: per rule, in arrays indexed by its position, the terms of its
    literal branches as bits of the rule set's most used terms (topic words, exclusions).

    A rule qualifies when its literal conditions (no filter), all in fields the automaton
    scans whole, are a root `all` whose trigger lies within one of its required groups:
    once it is a candidate that group holds, and the rest is one required group and any
    excluded groups made of bit terms only. Its check is then two int operations on numbers
    read from flat arrays (which stay in the CPU cache) instead of reading its objects
    (which, among thousands of rules, are mostly not). A rule whose root also has other
    branches (a regex, a proximity, a nested node with patterns) qualifies too: when the
    bits hold, those branches (``rests``) are evaluated one by one, without the rule's
    function.
    """

    bit_of: dict[int, int]  # term -> its bit (bits 0 to 62)
    # two numbers per rule, side by side (one cache line to read per candidate): at
    # 2 * position the bits of its other required group with BY_BITS set when the rule is
    # decided by bits (0: it is not), at 2 * position + 1 the bits of its excluded groups,
    # with REST set when branches other than literals remain to be evaluated
    pairs: array[int]
    # per rule with REST: the root's fields mask and those other branches (else empty)
    rests: tuple[tuple[Any, ...], ...] = ()

    @property
    def kinds(self) -> bytes:
        """Per rule: 1 when decided by bits."""
        return bytes(bool(need) for need in self.pairs[0::2])


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """An immutable, compiled rule set; swapped whole on reload, never edited in place."""

    rules: tuple[Rule, ...]
    content_hash: str
    terms: tuple[TermSpec, ...] = ()
    matchers: tuple[Any, ...] = ()  # per term: the compiled regex of regex/builtin leaves
    compiled: tuple[CompiledRule, ...] = ()
    rules_by_term: Mapping[int, tuple[int, ...]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    always_candidates: tuple[int, ...] = ()
    # a daachorse.CharwiseDoubleArrayAhoCorasick of every literal, None if no term
    automaton: Any = field(default=None, repr=False)
    # per automaton literal (by its id, its pattern id in the automaton, see LiteralInfo):
    # what a find of it means
    literals: LiteralTable = field(default_factory=_empty_table, repr=False)
    # the same literals (those that are ASCII) for texts that are all ASCII
    ascii: AsciiMatcher = field(default_factory=AsciiMatcher, repr=False)
    # per rule (by position): its packed literal conditions (CompiledRule.packed) and
    # whether they decide it alone (no filter, nothing else in its tree), None when they
    # are not packed. One tuple per candidate read instead of the whole CompiledRule:
    # with thousands of rules each object read is likely a CPU cache miss
    quick: tuple[QuickCheck | None, ...] = field(default=(), repr=False)
    branch_bits: BranchBits = field(default_factory=lambda: BranchBits({}, array("Q")), repr=False)
    explain_table: ExplainTable = field(
        default_factory=lambda: ExplainTable(array("i"), array("i"), ()), repr=False
    )
    pattern_terms: frozenset[int] = frozenset()  # regex and built-in terms: found lazily
    # per term: for a regex, a literal every match contains (even one character, such as
    # the '%' of a percentage); for a built-in pattern, strings one of which every match
    # contains (BUILTIN_NEEDLES): a field holding none is not searched; else ()
    needles: tuple[tuple[str, ...], ...] = ()
    # how many fields (in FIELDS order) the automaton scans: up to the last one any rule
    # looks at, so the source, tags and link are not scanned when no rule is about them
    scanned_fields: int = len(FIELDS)

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
    """Turn a term string as written in a rule into what the matcher looks for."""
    norm = normalize(written)
    if norm in BUILTIN_PATTERNS:
        return TermSpec(literal=norm, kind="builtin")
    if norm.endswith("*"):
        return TermSpec(literal=norm[:-1], prefix=True)
    if has_cjk(norm[-1:]):
        return TermSpec(literal=norm)
    return TermSpec(literal=norm, plurals=_plural_forms(norm, written))


def compile_leaf(leaf: str | Term) -> TermSpec:
    """A string or :class:`Term` leaf (not a list) as a :class:`TermSpec`."""
    if isinstance(leaf, str):
        return compile_term(leaf)
    if leaf.kind == "regex":
        return TermSpec(literal=leaf.text, kind="regex")
    cased = normalize_cased(leaf.text)
    prefix = cased.endswith("*")
    cased = cased.removesuffix("*")
    return TermSpec(literal=cased.casefold(), prefix=prefix, kind="exact", cased=cased)


def _patterns(spec: TermSpec, index: int) -> list[tuple[str, Pattern]]:
    if spec.kind == "hint":  # found anywhere, inside words too
        return [(spec.literal, Pattern(index, False, False, literal=spec.literal))]
    out = []
    for literal in (spec.literal, *spec.plurals):
        check_left = is_word_char(literal[0])
        check_right = not spec.prefix and is_word_char(literal[-1])
        pattern = Pattern(index, check_left, check_right, spec.kind == "exact", literal)
        out.append((literal, pattern))
    return out


def _flatten(leaf: str | Term) -> list[str | Term]:
    """A leaf with named lists and inline alternatives expanded into plain leaves."""
    if isinstance(leaf, Term) and leaf.kind in {"list", "any"}:
        return [inner for item in leaf.items for inner in _flatten(item)]
    return [leaf]


def _written(leaf: str | Term) -> str:
    return leaf if isinstance(leaf, str) else leaf.written


class _Compiler:
    """Interns leaves across rules so each literal enters the automaton once."""

    def __init__(self) -> None:
        self.specs: list[TermSpec] = []
        self.index: dict[TermSpec, int] = {}
        self.hints: dict[int, int] = {}  # regex term -> hint term

    def term(self, leaf: str | Term) -> int:
        return self.intern(compile_leaf(leaf))

    def intern(self, spec: TermSpec) -> int:
        if spec not in self.index:
            self.index[spec] = len(self.specs)
            self.specs.append(spec)
            if spec.kind == "regex":
                hint = required_literal(spec.literal)
                if hint is not None:
                    self.hints[self.index[spec]] = self.intern(TermSpec(hint, kind="hint"))
        return self.index[spec]

    def node(self, node: MatchNode, mask: int) -> CompiledNode:
        mask = field_mask(node.fields) if node.fields else mask
        children: list[CompiledNode | CompiledNear | int] = []
        written: list[str] = []
        for child in node.children:
            if isinstance(child, MatchNode):
                children.append(self.node(child, mask))
            elif isinstance(child, Near):
                children.append(self.near(child, mask))
            elif isinstance(child, Term) and child.kind in {"list", "any"}:
                leaves = _flatten(child)
                inner = tuple(self.term(leaf) for leaf in leaves)
                children.append(self.make("any", inner, tuple(map(_written, leaves)), mask))
            else:
                children.append(self.term(child))
                written.append(_written(child))
                continue
            written.append("")
        return self.make(node.op, tuple(children), tuple(written), mask)

    def make(
        self,
        op: str,
        children: tuple[CompiledNode | CompiledNear | int, ...],
        written: tuple[str, ...],
        mask: int,
    ) -> CompiledNode:
        def literal(child: CompiledNode | CompiledNear | int) -> bool:
            return isinstance(child, int) and self.specs[child].in_automaton

        return CompiledNode(
            op=op,
            children=children,
            written=written,
            mask=mask,
            literals=frozenset(c for c in children if isinstance(c, int) and literal(c)),
            rest=tuple(sorted((c for c in children if not literal(c)), key=self.costly)),
        )

    def costly(self, child: CompiledNode | CompiledNear | int) -> bool:
        """Whether evaluating ``child`` may run a regex, a built-in pattern or a proximity
        sweep (anything else is set operations on the literals already found)."""
        if isinstance(child, int):
            return not self.specs[child].in_automaton
        return isinstance(child, CompiledNear) or any(map(self.costly, child.rest))

    def near(self, near: Near, mask: int) -> CompiledNear:
        entries = [_flatten(entry) for entry in near.terms]
        terms = tuple(tuple(self.term(leaf) for leaf in entry) for entry in entries)
        return CompiledNear(
            entries=terms,
            written=tuple(tuple(map(_written, entry)) for entry in entries),
            within=near.within,
            mask=field_mask(near.fields) if near.fields else mask,
            order=tuple(sorted(range(len(terms)), key=lambda i: any(map(self.costly, terms[i])))),
        )

    def rule(self, rule: Rule, tree: CompiledNode, trigger: frozenset[int] | None) -> CompiledRule:
        requires, excludes, decided = _literal_conditions(tree)
        plan = tuple(_evidence_plan(tree))
        return CompiledRule(
            rule=rule,
            tree=tree,
            terms=frozenset(_leaves(tree)),
            matches_without_terms=trigger is None,
            filtered=bool(rule.sources or rule.source_tags or rule.languages),
            check=_codegen(tree),
            requires=tuple(requires),
            excludes=tuple(excludes),
            decided=decided,
            packed=_packed(requires, excludes),
            evidence_plan=plan,
            header=(rule.id, rule.title, rule.tier, rule.labels),
            trigger=trigger or frozenset(),
            source_ids=frozenset(rule.sources),
            source_tags=frozenset(rule.source_tags),
            languages=frozenset(rule.languages),
        )

    def matchers(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for spec in self.specs:
            if spec.kind == "regex":
                out.append(compile_regex(spec.literal))
            elif spec.kind == "builtin":
                out.append(BUILTIN_PATTERNS[spec.literal])
            else:
                out.append(None)
        return tuple(out)

    def automaton(self, rules_by_term: Mapping[int, Sequence[int]]) -> tuple[Any, LiteralTable]:
        """The automaton of every literal and its table. Each literal's flags say whether
        its neighbours must be checked, so a find rejected at a word boundary touches no
        Python object of the rule set; the table entry, read only for accepted finds, holds
        its terms and the rules it makes candidates (so a find leads to its rules without a
        lookup in a table of all terms: with thousands of rules that table is large and
        cold in the CPU cache)."""
        by_literal: dict[str, list[Pattern]] = {}
        for literal, pattern in self.patterns():
            by_literal.setdefault(literal, []).append(pattern)
        return _literal_automaton(by_literal, rules_by_term, _literal_flags)

    def ascii_matcher(self, rules_by_term: Mapping[int, Sequence[int]]) -> AsciiMatcher:
        """The ASCII literals keyed as the marked text shows them (see
        :mod:`mastwatch.rules.boundary`): one key per literal and boundary sides, so leaves
        that differ only in their sides (``tariff``, ``tariff*``) are apart."""
        by_key: dict[str, list[Pattern]] = {}
        searched: dict[str, list[Pattern]] = {}
        for literal, pattern in self.patterns():
            if literal.isascii():
                key = ascii_key(literal, pattern.check_left, pattern.check_right)
                group = searched.setdefault(literal, []) if key.searched else None
                (group if group is not None else by_key.setdefault(key.key, [])).append(pattern)

        def flags_of(key: str, patterns: Sequence[Pattern]) -> int | None:
            return None if key in searched else _ascii_flags(patterns)

        automaton, table = _literal_automaton({**by_key, **searched}, rules_by_term, flags_of)
        return AsciiMatcher(
            automaton=automaton,
            table=table,
            searched=tuple((literal, len(by_key) + n) for n, literal in enumerate(searched)),
        )

    def patterns(self) -> list[tuple[str, Pattern]]:
        # the very int objects the trees and groups hold (self.index's values), not equal
        # copies: set and dict probes then match by identity, without reading the objects
        return [
            pair
            for spec, index in self.index.items()
            if spec.in_automaton
            for pair in _patterns(spec, index)
        ]


def _literal_automaton(
    by_literal: Mapping[str, Sequence[Pattern]],
    rules_by_term: Mapping[int, Sequence[int]],
    flags_of: Callable[[str, Sequence[Pattern]], int | None],
) -> tuple[Any, LiteralTable]:
    """An automaton of ``by_literal``'s keys (ids in the order given, flags from
    ``flags_of(key, patterns)``; None for the keys searched apart, which come last) and its
    :class:`LiteralTable`.

    The automaton is daachorse's character-wise double array: its states in flat arrays, a
    transition one indexed read. pyahocorasick, before it, kept a separately allocated node
    and child table per state, and at every character followed the state's failure chain
    for the literals ending there (bench/changes.md: the walk 2.2 -> 1.2 us an item at 10
    rules and 4.2 -> 1.7 us at 5,000; at 5,000 rules half the cache misses)."""
    if not by_literal:
        return None, _empty_table()
    table: list[LiteralInfo] = []
    one = array("i")
    keys: list[str] = []
    flags = bytearray()
    for key, patterns in by_literal.items():
        triggered = sorted({r for p in patterns for r in rules_by_term.get(p.spec, ())})
        # the usual case, a literal whose leaves all take a find the same way (one leaf,
        # no case check), is stored as the bare term indices: less to unpack per find
        specs = () if _mixed(patterns) else tuple(p.spec for p in patterns)
        table.append((specs, tuple(patterns), tuple(triggered)))
        one.append(specs[0] if len(specs) == 1 else -1)
        one.append(triggered[0] if 0 < len(triggered) <= 2 else -1 - bool(triggered))
        one.append(triggered[-1] if 0 < len(triggered) <= 2 else -1)
        flag = flags_of(key, patterns)
        if flag is not None:  # None: searched apart, not in the automaton
            # its pattern id in the automaton is its id: no key searched apart before it
            assert len(keys) == len(table) - 1, "keys searched apart must come last"
            keys.append(key)
            flags.append(flag)
    automaton = daachorse.CharwiseDoubleArrayAhoCorasick(keys) if keys else None
    return automaton, LiteralTable(tuple(table), one, bytes(flags))


def _mixed(patterns: Sequence[Pattern]) -> bool:
    """Whether the leaves sharing a literal take a find differently (a case check, or
    word-boundary checks that differ): each is then checked on its own."""
    sides = {(p.check_left, p.check_right) for p in patterns}
    return len(sides) > 1 or any(p.exact for p in patterns)


def _ascii_flags(patterns: Sequence[Pattern]) -> int:
    """An ASCII key's flags: whether it starts with the mark before the literal and ends
    with the mark after it, and MIXED when its finds are taken pattern by pattern: compared
    with the original text (a literal holding non-word characters, which several literals
    may share a key with: ``u.s.`` and ``u.s`` both read ``u s `` once marked and padded),
    or checked for case."""
    literal = patterns[0].literal
    verify = ascii_key(literal, patterns[0].check_left, patterns[0].check_right).verify
    mixed = verify or any(p.exact or p.literal != literal for p in patterns)
    return (
        (LEFT_PAD if patterns[0].check_left else 0)
        | (RIGHT_PAD if patterns[0].check_right else 0)
        | (MIXED if mixed else 0)
    )


def _literal_flags(literal: str, patterns: Sequence[Pattern]) -> int:
    # whether any pattern needs the neighbours looked at (CJK literals never do)
    left = any(p.check_left for p in patterns)
    right = any(p.check_right for p in patterns)
    return (
        (CHECK_LEFT if left else 0)
        | (CHECK_RIGHT if right else 0)
        | (MIXED if _mixed(patterns) else 0)
    )


def _leaves(node: CompiledNode | CompiledNear) -> list[int]:
    if isinstance(node, CompiledNear):
        return [leaf for entry in node.entries for leaf in entry]
    out: list[int] = []
    for child in node.children:
        out.extend(_leaves(child) if not isinstance(child, int) else [child])
    return out


MAX_CODEGEN_DEPTH = 40  # deeper trees (never seen in practice) are interpreted instead


def _expression(node: CompiledNode, consts: list[object], depth: int) -> str:
    """Python source for a node, using only integers, operators and ``K[i]`` constants;
    the literals first, then the rest in its (cheap-first) order."""
    if depth > MAX_CODEGEN_DEPTH:
        raise RecursionError
    parts = []
    if node.literals:
        consts.append(node.literals)
        literal, found = f"K[{len(consts) - 1}]", f"F({node.mask})"
        if node.op == "all":
            parts.append(f"{literal} <= {found}")
        else:
            parts.append(f"not {literal}.isdisjoint({found})")
    for child in node.rest:
        if isinstance(child, int):
            parts.append(f"P({child}, {node.mask})")
        elif isinstance(child, CompiledNear):
            consts.append(child)
            parts.append(f"N(K[{len(consts) - 1}])")
        else:
            parts.append(f"({_expression(child, consts, depth + 1)})")
    if node.op == "all":
        return " and ".join(parts) or "True"
    either = " or ".join(parts) or "False"
    return either if node.op == "any" else f"not ({either})"


def _codegen(tree: CompiledNode) -> Any:
    """The tree as one function ``check(F, P, N)``, true when the rule holds, which a
    candidate rule is evaluated with: ``F(mask)`` is the set of automaton terms found in
    those fields, ``P(term, mask)`` whether a pattern term is found, ``N(near)`` true when a
    proximity condition holds (the fields where it does). One call and a few set
    operations instead of walking the tree.

    The source is built from integers and fixed operators only, never from rule text, so
    compiling it cannot run anything an operator wrote.
    """
    consts: list[object] = []
    try:
        source = f"lambda F, P, N: {_expression(tree, consts, 0)}"
        return eval(compile(source, "<rule>", "eval"), {"K": consts})  # noqa: S307
    except (RecursionError, SyntaxError, MemoryError):
        return None


Condition = tuple[int, frozenset[int]]  # a field mask and a group of automaton terms


def _literal_conditions(tree: CompiledNode) -> tuple[list[Condition], list[Condition], bool]:
    """The root's conditions on literals alone: groups of which one term must be found
    (each literal child of an `all`, each `any` of literals under it) and groups of which
    none may be (a `none` of literals), and whether they decide the rule alone.

    Most rules are an `all` of such branches ("a name" and "a topic word", "no exclusion"),
    so the matcher decides them with a few set operations in one shared loop, without
    calling the rule's own function; for the others the groups are a necessary condition
    checked first, so a rule that lacks one branch costs no regex or proximity search.
    """
    if tree.op != "all":
        if tree.rest:
            return [], [], False
        group = [(tree.mask, tree.literals)]
        return (group, [], True) if tree.op == "any" else ([], group, True)
    requires = [(tree.mask, frozenset((term,))) for term in tree.literals]
    excludes = []
    decided = True
    for child in tree.rest:
        if not isinstance(child, CompiledNode) or child.rest:
            decided = False
        elif child.op == "any":
            requires.append((child.mask, child.literals))
        elif child.op == "none":
            excludes.append((child.mask, child.literals))
        else:
            requires += [(child.mask, frozenset((term,))) for term in child.literals]
    return requires, excludes, decided


def _packed(
    requires: Sequence[Condition], excludes: Sequence[Condition]
) -> tuple[int, Mapping[int, int], int, int] | None:
    """The literal conditions as one term -> bits dict (see ``CompiledRule.packed``), when
    they all share one field mask; None otherwise (they are then checked group by group)."""
    masks = {mask for mask, _ in (*requires, *excludes)}
    if len(masks) > 1:
        return None
    bits: dict[int, int] = {}
    for number, (_, group) in enumerate((*requires, *excludes)):
        for term in group:
            bits[term] = bits.get(term, 0) | 1 << number
    need = (1 << len(requires)) - 1
    banned = ((1 << len(excludes)) - 1) << len(requires)
    return (masks.pop() if masks else DEFAULT_MASK), bits, need, banned


def _evidence_plan(node: CompiledNode) -> list[tuple[int, str, int] | CompiledNear]:
    """The leaves an explanation reports, in rule order: ``(term, written, mask)`` for each
    leaf and the proximity conditions whole; leaves under a ``none`` are never evidence.
    Flattened once at compile time so explaining a match does not walk the tree."""
    plan: list[tuple[int, str, int] | CompiledNear] = []
    for child, written in zip(node.children, node.written, strict=True):
        if isinstance(child, int):
            plan.append((child, written, node.mask))
        elif isinstance(child, CompiledNear):
            plan.append(child)
        elif child.op != "none":
            plan += _evidence_plan(child)
    return plan


Group = frozenset[int]


def _required(node: CompiledNode | CompiledNear | int, ctx: _Cost) -> list[Group]:
    """Groups of automaton terms of which at least one must be found for ``node`` to hold.

    Any one of the returned groups is a valid necessary condition; an empty list means no
    literal is needed (a regex, a pattern or a ``none`` may decide alone).
    """
    if isinstance(node, int):
        return _leaf_required(node, ctx)
    if isinstance(node, CompiledNear):  # every entry must be found: each is a group
        entries = [[_leaf_required(term, ctx) for term in entry] for entry in node.entries]
        return [frozenset().union(*(opt[0] for opt in entry)) for entry in entries if all(entry)]
    if node.op == "none":
        return []
    options = [_required(child, ctx) for child in node.children]
    if node.op == "all":  # any child's requirement is the node's
        return [group for option in options for group in option]
    if not all(options):  # `any`: every child needs a literal, so one of theirs must be found
        return []
    return [frozenset().union(*(min(option, key=ctx.cost) for option in options))]


def _leaf_required(term: int, ctx: _Cost) -> list[Group]:
    if ctx.specs[term].in_automaton:
        return [frozenset((term,))]
    return [frozenset((ctx.hints[term],))] if term in ctx.hints else []


@dataclass(frozen=True, slots=True)
class _Cost:
    """How often a group of terms is likely to be found: the rules sharing its terms."""

    specs: Sequence[TermSpec]
    usage: Mapping[int, int]
    hints: Mapping[int, int]

    def cost(self, group: Group) -> tuple[int, int]:
        return sum(self.usage.get(term, 1) for term in group), len(group)


def _triggers(
    trees: Sequence[CompiledNode], specs: Sequence[TermSpec], hints: Mapping[int, int]
) -> list[Group | None]:
    """For each rule, the cheapest group of terms one of which must be found (None: any item
    may match, so the rule is evaluated on every item). Terms shared by many rules (common
    topic words) are avoided in favour of rare ones (names)."""
    usage = Counter(term for tree in trees for term in set(_leaves(tree)))
    ctx = _Cost(specs, usage, hints)
    out: list[Group | None] = []
    for tree in trees:
        options = _required(tree, ctx)
        out.append(min(options, key=ctx.cost) if options else None)
    return out


def content_hash(rules: Sequence[Rule]) -> str:
    """sha256 over the rules' canonical content, sorted: independent of file order and names."""
    canonical = sorted(
        json.dumps(rule.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for rule in rules
    )
    # surrogatepass: a rule file's "\ud800" escape is hashed as written (it matches as U+FFFD)
    return hashlib.sha256("\n".join(canonical).encode("utf-8", "surrogatepass")).hexdigest()


def compile_rules(rules: Sequence[Rule]) -> RuleSet:
    """Compile validated rules (in their load order) into an immutable :class:`RuleSet`."""
    compiler = _Compiler()
    trees = [compiler.node(rule.match, DEFAULT_MASK) for rule in rules]
    triggers = _triggers(trees, compiler.specs, compiler.hints)
    compiled = tuple(map(compiler.rule, rules, trees, triggers))
    rules_by_term: dict[int, list[int]] = {}
    live = [(position, item) for position, item in enumerate(compiled) if item.rule.enabled]
    for position, item in live:
        for term in item.trigger:
            rules_by_term.setdefault(term, []).append(position)
    automaton, literals = compiler.automaton(rules_by_term)
    ascii_matcher = compiler.ascii_matcher(rules_by_term)
    scanned_fields = max(map(_mask_in_use, trees), default=0).bit_length()
    return RuleSet(
        rules=tuple(rules),
        content_hash=content_hash(rules),
        terms=tuple(compiler.specs),
        matchers=compiler.matchers(),
        needles=tuple(map(_needles, compiler.specs)),
        compiled=compiled,
        rules_by_term=MappingProxyType({term: tuple(ids) for term, ids in rules_by_term.items()}),
        always_candidates=tuple(position for position, item in live if item.matches_without_terms),
        automaton=automaton,
        literals=literals,
        ascii=ascii_matcher,
        quick=tuple(map(_quick_check, compiled)),
        pattern_terms=frozenset(
            i for i, spec in enumerate(compiler.specs) if spec.kind in {"regex", "builtin"}
        ),
        scanned_fields=scanned_fields,
        branch_bits=_branch_bits(compiled, scanned_fields),
        explain_table=_explain_table(compiled, compiler.specs),
    )


def _needles(spec: TermSpec) -> tuple[str, ...]:
    if spec.kind == "builtin":
        return BUILTIN_NEEDLES[spec.literal]
    needle = required_literal(spec.literal, 1) if spec.kind == "regex" else None
    return (needle,) if needle else ()


def _branch_bits(compiled: Sequence[CompiledRule], scanned_fields: int) -> BranchBits:
    """See :class:`BranchBits`; the terms given bits are those most branches share."""
    usage = Counter(
        term
        for item in compiled
        for _, group in (*item.requires, *item.excludes)
        if not item.trigger <= group
        for term in group
    )
    bit_of = {term: 1 << n for n, (term, _) in enumerate(usage.most_common(COMMON_TERMS))}
    pairs = array("Q", bytes(16 * len(compiled)))
    rests: list[tuple[Any, ...]] = [()] * len(compiled)
    scanned = (1 << scanned_fields) - 1
    for position, item in enumerate(compiled):
        others = _bit_branches(item, scanned, bit_of)
        if others is not None:
            pairs[2 * position] = BY_BITS | sum(bit_of[term] for term in others)
            excluded = {term for _, group in item.excludes for term in group}
            pairs[2 * position + 1] = sum(bit_of[term] for term in excluded)
            if not item.decided:
                pairs[2 * position + 1] |= REST
                rests[position] = (item.tree.mask, *_undecided_branches(item.tree))
    return BranchBits(bit_of, pairs, tuple(rests))


def _undecided_branches(tree: CompiledNode) -> tuple[CompiledNode | CompiledNear | int, ...]:
    """The branches of a root `all` that its literal conditions leave to evaluate (see
    _literal_conditions): patterns, proximity, nested nodes holding either."""
    return tuple(c for c in tree.rest if not isinstance(c, CompiledNode) or c.rest)


def _bit_branches(
    item: CompiledRule, scanned: int, bit_of: Mapping[int, int]
) -> frozenset[int] | None:
    """The required group besides the trigger (empty: none) if the rule is decided by bits,
    else None."""
    if item.packed is None or item.filtered or not item.trigger:
        return None
    if not item.decided and item.tree.op != "all":  # only a root `all` splits in two
        return None
    if scanned & ~item.packed[0]:  # a find that makes it a candidate may lie outside
        return None
    # a required group holding the whole trigger holds once the rule is a candidate
    others = [group for _, group in item.requires if not item.trigger <= group]
    if len(others) == len(item.requires) or len(others) > 1:
        return None
    groups = [*others, *(group for _, group in item.excludes)]
    if any(term not in bit_of for group in groups for term in group):
        return None
    return others[0] if others else frozenset()


def _quick_check(compiled: CompiledRule) -> QuickCheck | None:
    if compiled.packed is None:
        return None
    return (*compiled.packed, compiled.decided and not compiled.filtered)


def _mask_in_use(node: CompiledNode | CompiledNear | int) -> int:
    """The fields a tree looks at (every rule, enabled or not: inline tests run them all)."""
    if isinstance(node, int):
        return 0
    if isinstance(node, CompiledNear):
        return node.mask
    mask = node.mask
    for child in node.children:
        mask |= _mask_in_use(child)
    return mask
