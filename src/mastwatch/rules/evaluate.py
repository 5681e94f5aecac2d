"""Pure evaluation of a compiled :class:`RuleSet` against a normalised :class:`Document`.

One :class:`Scan` per document: a single automaton pass over all fields finds every literal
(with word boundaries and exact-case checks); regexes and built-in patterns run lazily, only
when a candidate rule asks, at most once per field. No I/O and no clock: the same rule set
and document always give the same matches. Deciding candidates by bits and explaining
matches from the packed table run in C (``_native.c``) when the install compiled it, and
here in Python otherwise (``_firing_by_bits``, ``_explain_in_python``), with the same
results.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mastwatch.model import Document, Evidence, Item, Match
from mastwatch.rules.boundary import marked
from mastwatch.rules.compile import (
    BY_BITS,
    CHECK_LEFT,
    CHECK_RIGHT,
    LEFT_PAD,
    MIXED,
    REST,
    BranchBits,
    CompiledNear,
    CompiledNode,
    CompiledRule,
    Pattern,
    RuleSet,
)
from mastwatch.rules.fields import Hit, cased_texts, field_texts, item_language, token_range
from mastwatch.rules.regex import spans
from mastwatch.rules.tree import FIELDS
from mastwatch.text import fold_offsets, is_word_char, make_document, token_bounds

__all__ = [
    "C_MODULE_BUILT",
    "Scan",
    "explain",
    "match",
    "python_steps",
    "rule_fires",
    "run_inline_tests",
]

try:  # deciding by bits and explaining from the table in C, where the install compiled it
    from mastwatch.rules import _native
except ImportError:  # pragma: no cover - an install without a C compiler: the same in Python
    _native = None  # type: ignore[assignment]
C_MODULE_BUILT = _native is not None  # whether the install compiled _native.c


@contextmanager
def python_steps() -> Iterator[None]:
    """Within: deciding and explaining run in Python, as in an install without the C
    module. Tests compare the two, the matching benchmark reports both; it switches the
    whole process, so it is for them, not for a daemon."""
    global _native  # noqa: PLW0603  # the switch is this module's one global
    saved, _native = _native, None  # type: ignore[assignment]  # None: no C module
    try:
        yield
    finally:
        _native = saved


INLINE_TEST_SOURCE = "inline-test"
MAX_EVIDENCE = 100  # per match: enough to explain, bounded for hostile repetitive text
# the field indices of each field mask, in FIELDS order
_FIELDS_OF = tuple(
    tuple(f for f in range(len(FIELDS)) if mask >> f & 1) for mask in range(1 << len(FIELDS))
)
_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _continues_word(ch: str) -> bool:
    """:func:`~mastwatch.text.is_word_char`, with a set lookup for the usual ASCII case."""
    return ch in _ASCII_WORD or (ch >= "\x80" and is_word_char(ch))


class Scan:
    """What one document holds for one rule set: literal finds now, patterns on demand."""

    __slots__ = (
        "_bounds",
        "_cased",
        "_folds",
        "_found_in",
        "_language",
        "_lazy",
        "_nears",
        "doc",
        "ends",
        "found",
        "hits",
        "joined",
        "ruleset",
        "texts",
        "triggered",
    )

    def __init__(self, ruleset: RuleSet, doc: Document) -> None:
        self.ruleset = ruleset
        self.doc = doc
        self.texts = field_texts(doc)
        self.hits: dict[int, list[Hit]] = {}  # automaton terms found, by term index
        self.found: dict[int, int] = {}  # automaton terms found: a bit per field
        self.triggered: set[int] = set()  # positions of the rules whose trigger was found
        self._found_in: dict[int, frozenset[int]] = {}
        self._lazy: dict[tuple[int, int], list[Hit]] = {}
        self._nears: dict[int, list[int]] = {}  # by id() of a CompiledNear of the rule set
        self._bounds: dict[int, tuple[list[int], list[int]]] = {}
        self._cased: tuple[str, ...] | None = None
        self._folds: dict[int, list[int]] = {}
        self._language: str | None = None
        # no term or built-in pattern holds a line break: finds stay in one field
        self.joined = "\n".join(self.texts)
        self.ends: list[int] = []  # where each field ends in `joined`
        for text in self.texts:
            self.ends.append((self.ends[-1] + 1 if self.ends else 0) + len(text))
        if ruleset.automaton is not None and ruleset.scanned_fields:
            # the fields the automaton scans (all of them: the slice is `joined` itself);
            # the path is chosen by them alone, so an English item whose link or tags hold
            # other characters is still matched on marked text when no rule reads those
            scanned = self.joined[: self.ends[ruleset.scanned_fields - 1]]
            if scanned.isascii():
                self._find_ascii_literals(scanned)
            else:
                self._find_literals(scanned)

    def _find_ascii_literals(self, scanned_text: str) -> None:
        """:meth:`_find_literals` for a text that is all ASCII: the automaton reads the marked
        text (see :mod:`mastwatch.rules.boundary`), so every find is on its word boundaries
        and none is rejected here."""
        ends, matcher = self.ends, self.ruleset.ascii
        info, one, flags = matcher.table.info, matcher.table.one, matcher.table.flags
        field, offset, field_end = 0, 0, ends[0]
        triggered, hits, found = self.triggered, self.hits, self.found
        automaton = matcher.automaton
        # marked index i + 1 is joined index i, and the mark after the last field scanned
        # ends the literals that end that field
        scanned = () if automaton is None else automaton.find_overlapping(marked(scanned_text))
        for key_start, key_end, number in scanned:  # in the marked text
            flag = flags[number]
            if flag & MIXED:
                self._add_verified(info[number][1], key_end - 1)
                continue
            end = key_end - 1 - (flag >> 1)  # in joined, exclusive (RIGHT_PAD is bit 1)
            while end > field_end:  # finds come in order of their end
                offset = field_end + 1
                field += 1
                field_end = ends[field]
            start = key_start - 1 + (flag & LEFT_PAD)
            # recording the find repeats _find_literals' lines on purpose: this runs for
            # every find, and a shared helper would add a call to each
            hit = (field, start - offset, end - offset)
            term = one[number * 3]
            if term < 0:  # a literal standing for several terms
                for spec in info[number][0]:
                    self._add(spec, hit)
            elif (bits := found.get(term)) is None:
                hits[term] = [hit]
                found[term] = 1 << field
            else:
                hits[term].append(hit)
                found[term] = bits | 1 << field
            rule = one[number * 3 + 1]
            if rule >= 0:
                triggered.add(rule)
                triggered.add(one[number * 3 + 2])  # the same rule again if it is alone
            elif rule < -1:
                triggered.update(info[number][2])
        if matcher.searched:
            self._find_searched(len(scanned_text))

    def _find_searched(self, scan_end: int) -> None:
        """The ASCII literals that hold no word character (or a line break), which are not
        in the automaton of marked text (see :mod:`mastwatch.rules.boundary`)."""
        matcher, joined = self.ruleset.ascii, self.joined
        for literal, number in matcher.searched:
            at = joined.find(literal, 0, scan_end)
            while at >= 0:  # overlapping finds too, as the automaton reports them
                self._add_verified(matcher.table.info[number][1], at + len(literal))
                at = joined.find(literal, at + 1, scan_end)

    def _add_verified(self, patterns: tuple[Pattern, ...], last: int) -> None:
        """A find ending at ``last`` in the marked text, taken pattern by pattern: each where
        its own literal lies, if the original text holds it there."""
        joined = self.joined
        for pattern in patterns:
            end = last - pattern.check_right  # the key ends with a mark after the literal
            start = end - len(pattern.literal)
            if start < 0 or joined[start:end] != pattern.literal:
                continue
            field = bisect_left(self.ends, end)
            offset = self.ends[field - 1] + 1 if field else 0
            self._add_checked((pattern,), (field, start - offset, end - offset), start)

    def _find_literals(self, scanned_text: str) -> None:
        joined, ends, ruleset = self.joined, self.ends, self.ruleset
        size, table = len(joined), ruleset.literals
        info, one, flags = table.info, table.one, table.flags
        field, offset, field_end = 0, 0, ends[0]
        scanned = ruleset.automaton.find_overlapping(scanned_text)
        triggered, hits, found = self.triggered, self.hits, self.found
        for start, end, number in scanned:
            while end > field_end:  # finds come in order of their end
                offset = field_end + 1
                field += 1
                field_end = ends[field]
            flag = flags[number]
            if flag & MIXED:  # leaves that take this literal differently: each on its own
                hit = (field, start - offset, end - offset)
                self._add_checked(info[number][1], hit, start)
                continue
            # a Latin literal must not continue a word on either side (the ASCII case by a
            # set lookup, inline: this runs for every find, about half of them rejected
            # here, before anything of the rule set is read)
            if (
                flag & CHECK_LEFT
                and start
                and (
                    (ch := joined[start - 1]) in _ASCII_WORD or (ch >= "\x80" and is_word_char(ch))
                )
            ) or (
                flag & CHECK_RIGHT
                and end < size
                and ((ch := joined[end]) in _ASCII_WORD or (ch >= "\x80" and is_word_char(ch)))
            ):
                continue
            hit = (field, start - offset, end - offset)
            term = one[number * 3]
            if term < 0:  # a literal standing for several terms
                for spec in info[number][0]:
                    self._add(spec, hit)
            elif (bits := found.get(term)) is None:
                hits[term] = [hit]
                found[term] = 1 << field
            else:
                hits[term].append(hit)
                found[term] = bits | 1 << field
            rule = one[number * 3 + 1]
            if rule >= 0:
                triggered.add(rule)
                triggered.add(one[number * 3 + 2])  # the same rule again if it is alone
            elif rule < -1:
                triggered.update(info[number][2])

    def _add(self, spec: int, hit: Hit) -> None:
        if spec in self.found:
            self.hits[spec].append(hit)
            self.found[spec] |= 1 << hit[0]
        else:
            self.hits[spec] = [hit]
            self.found[spec] = 1 << hit[0]

    def _add_checked(self, patterns: tuple[Pattern, ...], hit: Hit, start: int) -> None:
        """A find of a literal whose leaves take it differently (``start`` in ``joined``)."""
        joined = self.joined
        end = start + hit[2] - hit[1]
        left_word = start > 0 and _continues_word(joined[start - 1])
        right_word = end < len(joined) and _continues_word(joined[end])
        for pattern in patterns:
            if (left_word and pattern.check_left) or (right_word and pattern.check_right):
                continue
            if pattern.exact and not self._case_matches(pattern, hit):
                continue
            self._add(pattern.spec, hit)
            self.triggered.update(self.ruleset.rules_by_term.get(pattern.spec, ()))

    def _case_matches(self, pattern: Pattern, found: Hit) -> bool:
        if self._cased is None:
            self._cased = cased_texts(self.doc)
        field, start, end = found
        cased = self._cased[field]
        if len(cased) != len(self.texts[field]):  # a character before folds to several
            if field not in self._folds:
                self._folds[field] = fold_offsets(cased)
            start = bisect_left(self._folds[field], start)
            end = start + len(self.ruleset.terms[pattern.spec].cased)
        return cased[start:end] == self.ruleset.terms[pattern.spec].cased

    def finds(self, term: int, mask: int) -> list[Hit]:
        """Where term ``term`` occurs in the fields of ``mask``."""
        if term not in self.ruleset.pattern_terms:
            return [hit for hit in self.hits.get(term, ()) if (1 << hit[0]) & mask]
        return [
            hit for field in self._search(term, mask) for hit in self._pattern_finds(term, field)
        ]

    def _search(self, term: int, mask: int) -> tuple[int, ...]:
        """The fields of ``mask``, with a built-in pattern searched in all fields at once
        when several of them are wanted and not yet searched (one call instead of several)."""
        fields = _FIELDS_OF[mask]
        if (
            len(fields) > 1
            and self.ruleset.terms[term].kind == "builtin"
            and sum((term, field) not in self._lazy for field in fields) > 1
        ):
            self._builtin_finds(term)
        return fields

    def _pattern_finds(self, term: int, field: int) -> list[Hit]:
        """A regex or built-in pattern searched in one field (once per document)."""
        key = (term, field)
        hits = self._lazy.get(key)
        if hits is None:
            text = self.texts[field]
            if _lacks_needles(text, self.ruleset.needles[term]):  # no match: skip the search
                hits = []
            else:
                found = spans(self.ruleset.matchers[term], text)
                hits = [(field, start, end) for start, end in found]
            self._lazy[key] = hits
        return hits

    def _builtin_finds(self, term: int) -> None:
        """One search over all fields at once: a built-in pattern never spans a line break,
        and its ``\b`` sees the break as it sees the edge of a field."""
        per_field: list[list[Hit]] = [[] for _ in FIELDS]
        field, offset = 0, 0
        lacking = _lacks_needles(self.joined, self.ruleset.needles[term])
        for start, end in () if lacking else spans(self.ruleset.matchers[term], self.joined):
            while start > self.ends[field]:
                offset = self.ends[field] + 1
                field += 1
            per_field[field].append((field, start - offset, end - offset))
        for index, hits in enumerate(per_field):
            self._lazy[(term, index)] = hits

    def present(self, term: int, mask: int) -> bool:
        """Whether term ``term`` occurs in one of the fields of ``mask``."""
        if term in self.ruleset.pattern_terms:
            return any(self._pattern_finds(term, f) for f in self._search(term, mask))
        return bool(self.found.get(term, 0) & mask)

    def holds(self, node: CompiledNode) -> bool:
        """Evaluate a compiled tree on this document."""
        op = node.op
        if node.literals:  # all automaton terms of the node in one set operation
            found = self.found_in(node.mask)
            if op == "all":
                if not node.literals <= found:
                    return False
            elif not node.literals.isdisjoint(found):
                return op == "any"
        for child in node.rest:
            value = self._child_holds(child, node.mask)
            if op == "all":
                if not value:
                    return False
            elif value:
                return op == "any"
        return op != "any"

    def _child_holds(self, child: CompiledNode | CompiledNear | int, mask: int) -> bool:
        if isinstance(child, int):
            return self.present(child, mask)
        if isinstance(child, CompiledNear):
            return bool(self.near_fields(child))
        if child.rest:
            return self.holds(child)
        # a node of automaton terms only (the common case), without a recursive call
        if child.op == "all":
            return child.literals <= self.found_in(child.mask)
        return child.literals.isdisjoint(self.found_in(child.mask)) == (child.op == "none")

    def found_in(self, mask: int) -> frozenset[int]:
        """The automaton terms found in the fields of ``mask``."""
        terms = self._found_in.get(mask)
        if terms is None:
            terms = frozenset([term for term, bits in self.found.items() if bits & mask])
            self._found_in[mask] = terms
        return terms

    def near_fields(self, near: CompiledNear) -> list[int]:
        """The fields in which one find of every entry lies within ``near.within``."""
        fields = self._nears.get(id(near))  # asked again when the match is explained
        if fields is None:
            fields = self._near_fields(near)
            self._nears[id(near)] = fields
        return fields

    def _near_fields(self, near: CompiledNear) -> list[int]:
        mask = self._near_mask(near)
        if not mask:
            return []
        per_entry = [
            [hit for term in entry for hit in self.finds(term, mask)] for entry in near.entries
        ]
        return [f for f in _FIELDS_OF[mask] if self._near_in_field(f, per_entry, near.within)]

    def _near_mask(self, near: CompiledNear) -> int:
        """The fields (of ``near.mask``) in which every entry is found: literal entries first
        (from the bits of the terms found), so patterns are searched only in the fields
        these leave, and the usual failure costs no list of finds."""
        mask, found, patterns = near.mask, self.found, self.ruleset.pattern_terms
        for index in near.order or range(len(near.entries)):
            bits = 0
            for term in near.entries[index]:
                if term not in patterns:
                    bits |= found.get(term, 0)
                    continue
                for field in self._search(term, mask & ~bits):
                    if self._pattern_finds(term, field):
                        bits |= 1 << field
            mask &= bits
            if not mask:
                return 0
        return mask

    def _near_in_field(self, field: int, per_entry: list[list[Hit]], within: int) -> bool:
        """Sweep the finds by first token, keeping each entry's latest-ending find so far:
        the smallest window that ends with a given find is then known exactly."""
        if field not in self._bounds:
            self._bounds[field] = token_bounds(self.texts[field])
        bounds = self._bounds[field]
        events = sorted(
            (*token_range(bounds, start, end), entry)
            for entry, hits in enumerate(per_entry)
            for f, start, end in hits
            if f == field
        )
        best: dict[int, int] = {}
        for first, last, entry in events:
            best[entry] = max(last, best.get(entry, last))
            if len(best) == len(per_entry) and first - min(best.values()) - 1 <= within:
                return True
        return False

    def language(self) -> str:
        if self._language is None:
            self._language = item_language(self.doc)
        return self._language


def _lacks_needles(text: str, needles: tuple[str, ...]) -> bool:
    """Whether ``text`` holds none of a pattern's needles (so it holds no match); False
    when the pattern has none."""
    for needle in needles:
        if needle in text:
            return False
    return bool(needles)


def admits(compiled: CompiledRule, scan: Scan) -> bool:
    """Whether the rule's source and language filters let the document through."""
    doc = scan.doc
    if (compiled.source_ids or compiled.source_tags) and (
        doc.source_id not in compiled.source_ids
        and compiled.source_tags.isdisjoint(doc.source_tags)
    ):
        return False
    return not compiled.languages or scan.language() in compiled.languages


Found = dict[tuple[str, int, int, int], None]  # evidence in order: written, field, start, end
# Evidence and Match made without their __new__'s argument handling (a named tuple's
# fields are its items, in order): one call each per find and per match
_make = tuple.__new__


def explain(scan: Scan, fired: Sequence[int]) -> list[Match]:
    """The :class:`Match` of each rule at the positions ``fired``, each known to fire, in
    that order: every find of its terms outside ``none`` branches (for a proximity, in the
    fields where it holds), in rule order, the first MAX_EVIDENCE of them. One call for all
    of an item's matches, so what every match reads of the scan and the table is looked
    up once."""
    if _native is None:
        return _explain_in_python(scan, fired)
    table = scan.ruleset.explain_table
    matches: list[Match | None] = _native.explain(
        scan.found, scan.hits, table.at, table.ints, table.objects, fired,
        FIELDS, Evidence, Match, MAX_EVIDENCE,
    )  # fmt: skip
    if None in matches:  # rules with patterns or proximity, or very many steps
        for index, made in enumerate(matches):
            if made is None:
                matches[index] = _explain_in_python(scan, (fired[index],))[0]
    return matches  # type: ignore[return-value]  # no None is left


def _explain_in_python(scan: Scan, fired: Sequence[int]) -> list[Match]:
    """:func:`explain`, every step in Python (``_native.explain`` does the same in C)."""
    ruleset = scan.ruleset
    table = ruleset.explain_table
    at_of, ints, objects, found, hits = table.at, table.ints, table.objects, scan.found, scan.hits
    matches = []
    for position in fired:
        at = at_of[position]
        if at < 0:
            header, matched, evidence = _plan_explanation(scan, ruleset.compiled[position])
        else:
            # literals only: the rule's steps from the packed table (see ExplainTable),
            # each looked up among the terms found; no two steps share a term or a
            # spelling, so no evidence repeats
            steps, first = ints[at], ints[at + 1]
            masks = at + 2 + steps  # where the first step's fields mask is
            spellings = first + 4  # where the first step's spelling is
            header = objects[first:spellings]
            evidence = []
            written_found = []
            # the step's index counted by enumerate (a small, cached int) and added to an
            # offset only for a term found: two running offsets into the long table made
            # two new ints for every step, found or not (7 % of the call, by callgrind)
            for step, term in enumerate(ints[at + 2 : masks]):
                if term in found and found[term] & (mask := ints[masks + step]):
                    written = objects[spellings + step]
                    written_found.append(written)
                    for field, start, end in hits[term]:
                        if 1 << field & mask:
                            evidence.append(_make(Evidence, (written, FIELDS[field], start, end)))
            matched = tuple(written_found)
        if len(evidence) > MAX_EVIDENCE:
            del evidence[MAX_EVIDENCE:]
        rule_id, title, tier, labels = header
        matches.append(_make(Match, (rule_id, title, tier, matched, labels, tuple(evidence))))
    return matches


def _plan_explanation(
    scan: Scan, compiled: CompiledRule
) -> tuple[Sequence[object], tuple[object, ...], list[Evidence]]:
    """For :func:`explain`, a rule with patterns or proximity: its header (id, title, tier
    and labels), its terms found and their evidence, from the whole plan step by step,
    repeats dropped."""
    steps: Found = {}
    _plan_evidence(scan, compiled.evidence_plan, steps)
    evidence = list(
        dict.fromkeys(
            _make(Evidence, (written, FIELDS[field], start, end))
            for written, field, start, end in steps
        )
    )
    return compiled.header, tuple(dict.fromkeys([key[0] for key in steps])), evidence


def _plan_evidence(
    scan: Scan, plan: Sequence[tuple[int, str, int] | CompiledNear], found: Found
) -> None:
    bits = scan.found
    for step in plan:
        if isinstance(step, CompiledNear):
            _near_evidence(scan, step, found)
            continue
        term, written, mask = step
        if term in bits:  # an automaton term: its finds are known already
            if bits[term] & mask:
                for field, start, end in scan.hits[term]:
                    if (1 << field) & mask:
                        found[written, field, start, end] = None
        elif term in scan.ruleset.pattern_terms:
            for field, start, end in scan.finds(term, mask):
                found[written, field, start, end] = None


def _near_evidence(scan: Scan, near: CompiledNear, out: Found) -> None:
    fields = scan.near_fields(near)
    if not fields:
        return
    for entry, names in zip(near.entries, near.written, strict=True):
        for term, name in zip(entry, names, strict=True):
            for field, start, end in scan.finds(term, near.mask):
                if field in fields:
                    out[name, field, start, end] = None


def match(ruleset: RuleSet, doc: Document) -> list[Match]:
    """The enabled rules that fire on ``doc``, in rule order, each with its evidence.

    ``matched`` names the rule's terms found in the text, as the rule wrote them, in rule
    order and without repeats; terms under a ``none`` are never listed as evidence.
    """
    scan = Scan(ruleset, doc)
    candidates = scan.triggered  # the rules some literal found makes candidates
    if ruleset.always_candidates:
        candidates.update(ruleset.always_candidates)
    if not candidates:
        return []
    fired = _firing(ruleset, scan, candidates)
    if not fired:  # most items with candidates at all
        return []
    return explain(scan, fired)


def _firing(ruleset: RuleSet, scan: Scan, candidates: set[int]) -> list[int]:
    """The candidate rules that fire, in rule order. Most are decided by bits (see
    :class:`~mastwatch.rules.compile.BranchBits`), their other branches evaluated only when
    the bits hold; the others by :func:`_others_firing`."""
    branch = ruleset.branch_bits
    if _native is None:
        out, others = _firing_by_bits(scan, branch, candidates)
    else:
        out, rests, others = _native.decide(scan.found, branch.bit_of, branch.pairs, candidates)
        for position in rests or ():
            if _branches_hold(scan, branch.rests[position]):
                out.append(position)
    if others:
        out += _others_firing(ruleset, scan, others)
    if len(out) > 1:
        out.sort()
    return out


def _firing_by_bits(
    scan: Scan, branch: BranchBits, candidates: set[int]
) -> tuple[list[int], list[int]]:
    """The candidates decided by bits that fire, and those not decided by bits (in Python;
    ``_native.decide`` does the same in C)."""
    pairs, bit_of = branch.pairs, branch.bit_of
    common = 0  # the bits of the terms found anywhere the automaton scanned
    for term in scan.found:
        common |= bit_of.get(term, 0)
    out = []
    others = []
    for position in candidates:  # disabled rules are never candidates
        need = pairs[position << 1]
        if not need:
            others.append(position)
        # BY_BITS alone: no other required group; common never has that bit (nor REST)
        elif (
            (need == BY_BITS or common & need)
            and not common & (banned := pairs[position << 1 | 1])
            and (banned < REST or _branches_hold(scan, branch.rests[position]))
        ):
            out.append(position)
    return out, others


def _branches_hold(scan: Scan, rest: tuple[Any, ...]) -> bool:
    """Whether the branches a rule decided by bits leaves to evaluate hold (see
    ``BranchBits.rests``): the root's fields mask, then the branches."""
    mask = rest[0]
    # a loop, not all() over a generator: no generator made and resumed per branch
    for branch in rest[1:]:  # noqa: SIM110
        if not scan._child_holds(branch, mask):
            return False
    return True


def _others_firing(ruleset: RuleSet, scan: Scan, candidates: list[int]) -> list[int]:
    """The candidates not decided by bits that fire: by their packed literal conditions
    (see ``RuleSet.quick``) when these decide them, else by :func:`_fires_on`."""
    quick, found_in = ruleset.quick, scan.found_in
    out = []
    for position in candidates:
        check = quick[position]
        if check is not None:
            mask, bits, need, banned, decided = check
            got = 0
            for term in found_in(mask):  # a few terms per item
                got |= bits.get(term, 0)
            if got & need != need or got & banned:
                continue
            if decided or _rest_holds(ruleset.compiled[position], scan):
                out.append(position)
        elif _fires_on(ruleset.compiled[position], scan):
            out.append(position)
    return out


def _fires_on(compiled: CompiledRule, scan: Scan) -> bool:
    """Whether a candidate rule fires: its literal conditions first (see
    :func:`~mastwatch.rules.compile._literal_conditions`), then the rest of its tree."""
    packed = compiled.packed
    if packed is not None:
        mask, bits, need, banned = packed
        got = 0
        for term in scan.found_in(mask):  # a few terms per item
            got |= bits.get(term, 0)
        if got & need != need or got & banned:
            return False
    elif not _literal_conditions_hold(compiled, scan):
        return False
    return _rest_holds(compiled, scan)


def _rest_holds(compiled: CompiledRule, scan: Scan) -> bool:
    """Whether a rule whose literal conditions hold fires: its filters, then its tree."""
    if compiled.filtered and not admits(compiled, scan):
        return False
    if compiled.decided:
        return True
    if compiled.check is None:
        return scan.holds(compiled.tree)
    return bool(compiled.check(scan.found_in, scan.present, scan.near_fields))


def _literal_conditions_hold(compiled: CompiledRule, scan: Scan) -> bool:
    """The literal conditions group by group (when they do not share one field mask)."""
    found_in = scan.found_in
    for mask, group in compiled.requires:
        if group.isdisjoint(found_in(mask)):
            return False
    return all(group.isdisjoint(found_in(mask)) for mask, group in compiled.excludes)


def _fires(ruleset: RuleSet, compiled: CompiledRule, doc: Document) -> bool:
    scan = Scan(ruleset, doc)
    return admits(compiled, scan) and scan.holds(compiled.tree)


def rule_fires(ruleset: RuleSet, rule_id: str, doc: Document) -> bool:
    """Whether one rule of the set (enabled or not) fires on ``doc``."""
    for compiled in ruleset.compiled:
        if compiled.rule.id == rule_id:
            return _fires(ruleset, compiled, doc)
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
                source_id=test.source or INLINE_TEST_SOURCE,
                key=f"test:{rule.id}:{number}",
                title=test.title,
                summary=test.summary,
                content=test.content,
                link=test.link or None,
                tags=test.tags,
            )
            doc = make_document(item, test.source_tags)
            outcome = "match" if _fires(ruleset, compiled, doc) else "no-match"
            where = f"{rule.source}:{test.line}: rule {rule.id!r} test {number}"
            if outcome != test.expect:
                failures.append(f"{where}: expected {test.expect}, got {outcome}")
            elif outcome == "match" and test.tier and test.tier != rule.tier:
                failures.append(f"{where}: expected tier {test.tier}, got {rule.tier}")
    return failures
