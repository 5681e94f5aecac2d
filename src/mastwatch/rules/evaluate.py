"""Pure evaluation of a compiled :class:`RuleSet` against a normalised :class:`Document`.

One :class:`Scan` per document: a single automaton pass over all fields finds every literal
(with word boundaries and exact-case checks); regexes and built-in patterns run lazily, only
when a candidate rule asks, at most once per field. No I/O and no clock: the same rule set
and document always give the same matches.
"""

from __future__ import annotations

from bisect import bisect_left

from mastwatch.model import Document, Evidence, Item, Match
from mastwatch.rules.compile import CompiledNear, CompiledNode, CompiledRule, Pattern, RuleSet
from mastwatch.rules.fields import Hit, cased_texts, field_texts, item_language, token_range
from mastwatch.rules.tree import FIELDS
from mastwatch.text import fold_offsets, is_word_char, make_document, token_bounds

__all__ = ["Scan", "explain", "match", "rule_fires", "run_inline_tests"]

INLINE_TEST_SOURCE = "inline-test"
MAX_EVIDENCE = 100  # per match: enough to explain, bounded for hostile repetitive text


class Scan:
    """What one document holds for one rule set: literal finds now, patterns on demand."""

    __slots__ = (
        "_bounds",
        "_cased",
        "_folds",
        "_found_in",
        "_language",
        "_lazy",
        "doc",
        "ends",
        "found",
        "hits",
        "joined",
        "ruleset",
        "texts",
    )

    def __init__(self, ruleset: RuleSet, doc: Document) -> None:
        self.ruleset = ruleset
        self.doc = doc
        self.texts = field_texts(doc)
        self.hits: dict[int, list[Hit]] = {}  # automaton terms found, by term index
        self.found: dict[int, int] = {}  # automaton terms found: a bit per field
        self._found_in: dict[int, frozenset[int]] = {}
        self._lazy: dict[tuple[int, int], list[Hit]] = {}
        self._bounds: dict[int, tuple[list[int], list[int]]] = {}
        self._cased: tuple[str, ...] | None = None
        self._folds: dict[int, list[int]] = {}
        self._language: str | None = None
        # no term or built-in pattern holds a line break: finds stay in one field
        self.joined = "\n".join(self.texts)
        self.ends: list[int] = []  # where each field ends in `joined`
        for text in self.texts:
            self.ends.append((self.ends[-1] + 1 if self.ends else 0) + len(text))
        if ruleset.automaton is not None:
            self._find_literals()

    def _find_literals(self) -> None:
        joined, ends = self.joined, self.ends
        size = len(joined)
        hits, found = self.hits, self.found
        field, offset = 0, 0
        for last, (length, patterns, left, right) in self.ruleset.automaton.iter(joined):
            while last >= ends[field]:  # finds come in order of their end
                offset = ends[field] + 1
                field += 1
            start, end = last - length + 1, last + 1
            left_word = left and start > 0 and is_word_char(joined[start - 1])
            right_word = right and end < size and is_word_char(joined[end])
            for pattern in patterns:
                if (pattern.check_left and left_word) or (pattern.check_right and right_word):
                    continue
                hit = (field, start - offset, end - offset)
                if pattern.exact and not self._case_matches(pattern, hit):
                    continue
                hits.setdefault(pattern.spec, []).append(hit)
                found[pattern.spec] = found.get(pattern.spec, 0) | (1 << field)

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
        if self.ruleset.terms[term].kind in {"term", "exact"}:
            return [hit for hit in self.hits.get(term, ()) if (1 << hit[0]) & mask]
        out: list[Hit] = []
        for field in range(len(FIELDS)):
            if (1 << field) & mask:
                out.extend(self._pattern_finds(term, field))
        return out

    def _pattern_finds(self, term: int, field: int) -> list[Hit]:
        key = (term, field)
        if key in self._lazy:
            return self._lazy[key]
        if self.ruleset.terms[term].kind == "builtin":
            self._builtin_finds(term)
            return self._lazy[key]
        found = self.ruleset.matchers[term].finditer(self.texts[field])
        self._lazy[key] = [(field, m.start(), m.end()) for m in found if m.end() > m.start()]
        return self._lazy[key]

    def _builtin_finds(self, term: int) -> None:
        """One search over all fields at once: a built-in pattern never spans a line break,
        and its ``\b`` sees the break as it sees the edge of a field."""
        per_field: list[list[Hit]] = [[] for _ in FIELDS]
        field, offset = 0, 0
        for found in self.ruleset.matchers[term].finditer(self.joined):
            while found.start() > self.ends[field]:
                offset = self.ends[field] + 1
                field += 1
            if found.end() > found.start():
                per_field[field].append((field, found.start() - offset, found.end() - offset))
        for index, hits in enumerate(per_field):
            self._lazy[(term, index)] = hits

    def present(self, term: int, mask: int) -> bool:
        """Whether term ``term`` occurs in one of the fields of ``mask``."""
        if term in self.ruleset.pattern_terms:
            return any(self._pattern_finds(term, f) for f in range(len(FIELDS)) if (1 << f) & mask)
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
        if mask not in self._found_in:
            terms = (term for term, bits in self.found.items() if bits & mask)
            self._found_in[mask] = frozenset(terms)
        return self._found_in[mask]

    def near_holds(self, near: CompiledNear) -> bool:
        return bool(self.near_fields(near))

    def near_fields(self, near: CompiledNear) -> list[int]:
        """The fields in which one find of every entry lies within ``near.within``."""
        per_entry = [
            [hit for term in entry for hit in self.finds(term, near.mask)] for entry in near.entries
        ]
        if not all(per_entry):
            return []
        shared = set.intersection(*({hit[0] for hit in hits} for hits in per_entry))
        return [f for f in sorted(shared) if self._near_in_field(f, per_entry, near.within)]

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


def admits(compiled: CompiledRule, scan: Scan) -> bool:
    """Whether the rule's source and language filters let the document through."""
    doc = scan.doc
    if (compiled.source_ids or compiled.source_tags) and (
        doc.source_id not in compiled.source_ids
        and compiled.source_tags.isdisjoint(doc.source_tags)
    ):
        return False
    return not compiled.languages or scan.language() in compiled.languages


def _collect(scan: Scan, node: CompiledNode, out: dict[Evidence, None]) -> None:
    """Evidence of every term found outside ``none`` branches, in rule order."""
    positions = list(node.rest_positions)
    if node.literals:  # visit only the literal children that were found
        for term in node.literals & scan.found_in(node.mask):
            positions += node.literal_positions[term]
        positions.sort()
    for position in positions:
        child, written = node.children[position], node.written[position]
        if isinstance(child, int):
            if child in node.literals or scan.present(child, node.mask):
                out.update(dict.fromkeys(_evidence(scan, child, written, node.mask)))
        elif isinstance(child, CompiledNear):
            fields = scan.near_fields(child)
            for entry, names in zip(child.entries, child.written, strict=True):
                for term, name in zip(entry, names, strict=True):
                    near = _evidence(scan, term, name, child.mask)
                    out.update(dict.fromkeys(e for e in near if FIELDS.index(e.field) in fields))
        elif child.op != "none":
            _collect(scan, child, out)


def _evidence(scan: Scan, term: int, written: str, mask: int) -> list[Evidence]:
    return [Evidence(written, FIELDS[f], start, end) for f, start, end in scan.finds(term, mask)]


def explain(scan: Scan, compiled: CompiledRule) -> Match:
    """The :class:`Match` of a rule known to fire: its terms found and where."""
    rule = compiled.rule
    found: dict[Evidence, None] = {}
    _collect(scan, compiled.tree, found)
    evidence = tuple(found)[:MAX_EVIDENCE]
    return Match(
        rule_id=rule.id,
        rule_title=rule.title,
        tier=rule.tier,
        matched=tuple(dict.fromkeys(e.term for e in found)),
        labels=rule.labels,
        evidence=evidence,
    )


def match(ruleset: RuleSet, doc: Document) -> list[Match]:
    """The enabled rules that fire on ``doc``, in rule order, each with its evidence.

    ``matched`` names the rule's terms found in the text, as the rule wrote them, in rule
    order and without repeats; terms under a ``none`` are never listed as evidence.
    """
    scan = Scan(ruleset, doc)
    candidates = set(ruleset.always_candidates)
    by_term = ruleset.rules_by_term
    for term in scan.hits:
        candidates.update(by_term.get(term, ()))
    matches = []
    found_in, present, near = scan.found_in, scan.present, scan.near_holds
    for position in sorted(candidates):  # disabled rules are never candidates
        compiled = ruleset.compiled[position]
        if compiled.filtered and not admits(compiled, scan):
            continue
        check = compiled.check
        fires = check(found_in, present, near) if check else scan.holds(compiled.tree)
        if fires:
            matches.append(explain(scan, compiled))
    return matches


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
