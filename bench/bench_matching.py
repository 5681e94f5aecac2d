"""Matching benchmark: the compiled rule set against a naive baseline, at 10 to 5,000 rules.

Run with ``make bench`` (or ``python -m bench.bench_matching``). Everything is generated
from a fixed seed, so two runs measure the same work:

- **items**: 20,000 bilingual news items from templates (English and Japanese headlines and
  summaries naming companies, agencies and places, with dates, money and percentages);
- **rules**: shaped like the shipped pack: an ``any`` of two to four names (Latin or
  katakana), an ``all`` with a topic-word ``any`` (tariff*, 関税, yield...), sometimes a
  ``none`` of exclusions, a ``near`` with ``@date`` or a regex; one rule in a thousand is a
  lone regex, which has no literal and so is evaluated on every item.

The compiled matcher (:func:`mastwatch.rules.match`) runs over every item, fifteen times per
size, the sizes taking turns pass by pass (each size's best pass counts); what is timed is
the call as the daemon makes it, returning every firing rule's complete
:class:`~mastwatch.model.Match`, its evidence (terms, fields, spans) built.
The naive baseline (:class:`mastwatch.rules.reference.ReferenceMatcher`: each rule's regexes
tried in turn) runs over as many items as fit in a few seconds; its rate is items per second
over those. Both are single-threaded, on one core, in the same process
and run. Documents are normalised before timing starts: the figures are for matching alone.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mastwatch.model import Document, Item
from mastwatch.rules import MatchNode, Near, Rule, RuleSet, Term, compile_rules, match
from mastwatch.rules.evaluate import C_MODULE_BUILT, python_steps
from mastwatch.rules.reference import ReferenceMatcher
from mastwatch.text import make_document

SEED = 20260310
RULE_COUNTS = (10, 100, 1000, 5000)
ITEM_COUNT = 20_000
NAIVE_SECONDS = 3.0  # time given to the baseline at each size
# compiled matching: best of this many passes over all items, per size. A round of all four
# sizes takes about a second. On this shared machine the 5,000-against-10 ratio from the
# best of 7 moved by 8 points between groups of rounds in one run; from the best of 14,
# by 0.2 points in one run and 4 points across three runs (bench/changes.md, twelfth session)
PASSES = 15
# passes at the sizes of the verdict with deciding and explaining in Python (as an install
# without a C compiler runs them; see mastwatch/rules/_native.c): shown beside the verdict
PYTHON_PASSES = 5
PYTHON_SIZES = (10, 5000)
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "matching"
FULLWIDTH_PERCENT = "\uff05"  # as Japanese feeds often write it; NFKC makes it '%'

LATIN_SYLLABLES = ["ka", "ri", "to", "mo", "na", "ve", "lo", "sa", "din", "ber", "gan", "tor",
                   "mex", "vil", "ran", "co", "pel", "zu", "ha", "rin"]  # fmt: skip
KANA = "カキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
TOPICS = [
    "tariff*", "duty", "levy", "import*", "export*", "yield", "treasuries", "bond*", "summit",
    "election", "minister", "sanction*", "subsid*", "semiconductor", "steel", "merger",
    "関税", "輸出", "輸入", "補助金", "選挙", "会議", "首脳", "国債", "金利", "規制", "制裁",
    "合併",
]  # fmt: skip
EXCLUSIONS = ["feed-in tariff", "club", "campus", "hotel", "電気料金", "組合", "camera", "sports"]
EN_TEMPLATES = [
    ("{a} faces new {t} as talks with {b} stall",
     "Officials said on {d} that the measures could cost {m}, or {p} of sales."),
    ("{a} and {b} agree on {t} framework",
     "The deal, announced {d}, follows months of negotiations over {t}."),
    ("{a} shares fall {p} after {t} warning",
     "Analysts at {b} cut their targets; the company expects {m} in extra costs."),
    ("Ministers to discuss {t} with {a} next week",
     "A meeting is set for {d}, according to people familiar with the plan."),
    ("{a} quarterly profit beats forecasts",
     "Revenue rose {p} to {m}, helped by strong demand in Asia and a weaker yen."),
]  # fmt: skip
JA_TEMPLATES = [
    ("{a}、{t}で{b}と協議　{d}に発表へ", "関係者によると、影響額は{m}に上る見通し。"),
    ("{a}の株価が{p}下落　{t}への懸念で", "{b}は{d}に見通しを公表する予定。"),
    ("政府、{a}向け{t}を検討", "{d}の会議で{b}と調整する。規模は{m}程度。"),
    ("{a}、決算で増益　円安が追い風", "売上高は前年比{p}増の{m}だった。"),
]
EN_TOPIC_WORDS = ["tariffs", "duties", "import curbs", "bond yields", "sanctions", "subsidies",
                  "chip export controls", "steel quotas", "election timing",
                  "summit plans"]  # fmt: skip
JA_TOPIC_WORDS = ["関税", "輸出規制", "補助金", "国債", "制裁", "金利", "首脳会議", "選挙"]


@dataclass(frozen=True)
class Vocabulary:
    latin: list[str]
    kana: list[str]


def make_vocabulary(rng: random.Random, size: int = 12_000) -> Vocabulary:
    """Distinct made-up names, so items and rules share an open-ended set of entities."""
    latin: set[str] = set()
    while len(latin) < size:
        word = "".join(rng.choice(LATIN_SYLLABLES) for _ in range(rng.randint(2, 4)))
        latin.add(word.capitalize())
    kana: set[str] = set()
    while len(kana) < size // 2:
        kana.add("".join(rng.choice(KANA) for _ in range(rng.randint(3, 5))))
    return Vocabulary(sorted(latin), sorted(kana))


def _date(rng: random.Random, japanese: bool) -> str:
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    if japanese:
        return rng.choice(
            [f"{month}月{day}日", f"2026年{month}月{day}日", f"令和8年{month}月{day}日"]
        )
    name = ["January", "February", "March", "April", "May", "June", "July", "August",
            "September", "October", "November", "December"][month - 1]  # fmt: skip
    return rng.choice([f"{day} {name}", f"{name} {day}"])


def _money(rng: random.Random, japanese: bool) -> str:
    if japanese:
        return rng.choice(
            [f"{rng.randint(1, 9)}兆{rng.randint(1, 9)}000億円", f"{rng.randint(10, 900)}億ドル"]
        )
    return rng.choice(
        [f"${rng.randint(1, 90)} billion", f"USD {rng.randint(1, 9)}.{rng.randint(1, 9)}tn"]
    )


def _percent_sign(rng: random.Random, japanese: bool) -> str:
    return FULLWIDTH_PERCENT if japanese and rng.random() < 0.5 else "%"


def make_items(rng: random.Random, vocab: Vocabulary, count: int) -> list[Item]:
    """Headline + summary items, a third of them Japanese (with full-width digits at times)."""
    items = []
    for number in range(count):
        japanese = number % 3 == 0
        names = vocab.kana if japanese else vocab.latin
        title, summary = rng.choice(JA_TEMPLATES if japanese else EN_TEMPLATES)
        fields = {
            "a": rng.choice(names),
            "b": rng.choice(names),
            "t": rng.choice(JA_TOPIC_WORDS if japanese else EN_TOPIC_WORDS),
            "d": _date(rng, japanese),
            "m": _money(rng, japanese),
            "p": f"{rng.randint(1, 40)}{_percent_sign(rng, japanese)}",
        }
        items.append(
            Item(
                source_id=rng.choice(["wire-en", "ministry-ja", "markets"]),
                key=f"bench:{number}",
                title=title.format(**fields),
                summary=summary.format(**fields),
                link=f"https://news.example.com/{number}",
            )
        )
    return items


def _rule(rng: random.Random, vocab: Vocabulary, number: int) -> Rule:
    names = rng.sample(vocab.latin, rng.randint(1, 3)) + rng.sample(vocab.kana, rng.randint(1, 2))
    anchor = MatchNode(op="any", children=tuple(names))
    topics = MatchNode(op="any", children=tuple(rng.sample(TOPICS, rng.randint(3, 6))))
    children: list[MatchNode | Near | str | Term] = [anchor, topics]
    shape = rng.random()
    if shape < 0.3:
        children.append(MatchNode(op="none", children=tuple(rng.sample(EXCLUSIONS, 2))))
    elif shape < 0.4:
        children[1] = Near(terms=(names[0], "@date"), within=12)
    elif shape < 0.45:
        children.append(MatchNode(op="any", children=(Term(kind="regex", text=r"\d+(\.\d+)? ?%"),)))
    tree = MatchNode(op="all", children=tuple(children))
    if number % 1000 == 999:  # a lone regex: no literal, evaluated on every item
        tree = MatchNode(op="any", children=(Term(kind="regex", text=r"section (232|301)"),))
    return Rule(id=f"bench-{number}", title=f"Bench rule {number}", tier="high", match=tree)


def make_rules(rng: random.Random, vocab: Vocabulary, count: int) -> list[Rule]:
    return [_rule(rng, vocab, number) for number in range(count)]


@dataclass(frozen=True)
class Row:
    rules: int
    compile_seconds: float
    items_per_second: float
    matches: int
    naive_items: int
    naive_items_per_second: float
    pass_seconds: tuple[float, ...]  # every compiled pass, in the order they ran
    python_items_per_second: float | None = None  # the best of PYTHON_PASSES, in Python

    @property
    def speedup(self) -> float:
        return self.items_per_second / self.naive_items_per_second


def round_ratios(few: Row, many: Row) -> list[float]:
    """Per round (one pass of each size, run one after the other), the throughput of
    ``many`` rules as a fraction of ``few``'s: how far the machine's own noise moves the
    ratio that the best passes give."""
    return [f / m for f, m in zip(few.pass_seconds, many.pass_seconds, strict=True)]


def spread(ratios: Sequence[float]) -> str:
    """The lowest, median and highest of ``ratios``, as percentages."""
    ordered = sorted(ratios)
    return (
        f"{ordered[0]:.0%} to {ordered[-1]:.0%}, median {statistics.median(ordered):.0%},"
        f" in {len(ordered)} rounds"
    )


def _pass_seconds(ruleset: RuleSet, docs: Sequence[Document]) -> float:
    started = time.perf_counter()
    for doc in docs:
        match(ruleset, doc)
    return time.perf_counter() - started


def measure_sizes(rule_sets: Sequence[Sequence[Rule]], docs: Sequence[Document]) -> list[Row]:
    """One row per rule set. The compiled passes of all sizes take turns, pass by pass,
    and each size keeps its best: on a shared machine the speed drifts over minutes (other
    tenants' load, the CPU cache they leave), and measured one size after the other a
    ratio between sizes would compare different machines. Taking turns, every size sees
    the same ones. Every pass's time is kept too (``Row.pass_seconds``), so the verdict
    can show how far the ratio moves from one round to the next."""
    compiled, compile_seconds, matches = [], [], []
    for rules in rule_sets:
        started = time.perf_counter()
        compiled.append(compile_rules(rules))
        compile_seconds.append(time.perf_counter() - started)
        matches.append(sum(len(match(compiled[-1], doc)) for doc in docs))  # and a warm-up
    passes: list[list[float]] = [[] for _ in compiled]
    for _ in range(PASSES):
        for index, ruleset in enumerate(compiled):
            passes[index].append(_pass_seconds(ruleset, docs))
    in_python: list[list[float]] = [[] for _ in compiled]
    with python_steps():
        for _ in range(PYTHON_PASSES):
            for index, ruleset in enumerate(compiled):
                if len(rule_sets[index]) in PYTHON_SIZES:
                    in_python[index].append(_pass_seconds(ruleset, docs))
    rows = []
    for rules, ruleset, times, python_times, built, found in zip(
        rule_sets, compiled, passes, in_python, compile_seconds, matches, strict=True
    ):
        naive_items, naive_rate = _naive(rules, ruleset, docs)
        rate = len(docs) / min(times)
        python_rate = len(docs) / min(python_times) if python_times else None
        rows.append(
            Row(len(rules), built, rate, found, naive_items, naive_rate, tuple(times), python_rate)
        )
    return rows


def _naive(rules: Sequence[Rule], ruleset: RuleSet, docs: Sequence[Document]) -> tuple[int, float]:
    """Items the naive baseline matched in NAIVE_SECONDS and its rate, checking on each
    that it finds what the compiled matcher finds."""
    reference = ReferenceMatcher(rules)
    naive_start = time.perf_counter()
    done = 0
    for doc in docs:
        expected = [m.rule_id for m in match(ruleset, doc)]
        if [rule_id for rule_id, _ in reference.matching_rules(doc)] != expected:
            raise SystemExit(f"compiled and naive disagree on {doc.item.key}")
        done += 1
        if time.perf_counter() - naive_start > NAIVE_SECONDS:
            break
    return done, done / (time.perf_counter() - naive_start)


def table(rows: Sequence[Row], items: int) -> str:
    lines = [
        f"| rules | compile (s) | compiled items/s | naive items/s (items timed) | speed-up |"
        f" matches in {items:,} items |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.rules:,} | {row.compile_seconds:.2f} | {row.items_per_second:,.0f} |"
            f" {row.naive_items_per_second:,.0f} ({row.naive_items:,}) | {row.speedup:,.0f}x |"
            f" {row.matches:,} |"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    by_size = {row.rules: row for row in rows}
    out = []
    if 1000 in by_size:
        at_1000 = by_size[1000]
        out.append(
            f"- {at_1000.items_per_second:,.0f} items/s at 1,000 rules (target ≥ 20,000):"
            f" {'met' if at_1000.items_per_second >= 20_000 else 'NOT met'}"
        )
        out.append(
            f"- {at_1000.speedup:,.0f}x the naive baseline at 1,000 rules (target ≥ 10x):"
            f" {'met' if at_1000.speedup >= 10 else 'NOT met'}"
        )
    if 10 in by_size and 5000 in by_size:
        few, many = by_size[10], by_size[5000]
        ratio = many.items_per_second / few.items_per_second
        out.append(
            f"- 5,000 rules run at {ratio:.1%} of the 10-rule throughput (target ≥ 50%):"
            f" {'met' if ratio >= 0.5 else 'NOT met'}; round by round (a pass of each size,"
            f" one after the other) {spread(round_ratios(few, many))}"
        )
        if few.python_items_per_second and many.python_items_per_second:
            out.append(
                f"- without the C module (deciding and explaining in Python, as an install"
                f" without a C compiler runs them; best of {PYTHON_PASSES} passes, same run):"
                f" {python_ratio(few, many):.1%}, {many.python_items_per_second:,.0f} against"
                f" {few.python_items_per_second:,.0f} items/s"
            )
    if not C_MODULE_BUILT:
        out.append(f"- {NOT_BUILT}: every reading above is of the Python steps")
    return out


NOT_BUILT = "the C module (mastwatch/rules/_native.c) is not built here, no C compiler?"


def python_ratio(few: Row, many: Row) -> float:
    """The 5,000-against-10 ratio with deciding and explaining in Python."""
    return (many.python_items_per_second or 0.0) / (few.python_items_per_second or 1.0)


def section(rows: Sequence[Row], items: int, seconds: float) -> str:
    machine = f"Python {platform.python_version()} on {platform.machine()} ({platform.system()})"
    return "\n".join(
        [
            "## Matching",
            "",
            f"`make bench` ({machine}, one core, {seconds:.0f} s in all). {items:,} generated",
            "English and Japanese items; rules generated in the shape of the shipped pack (see",
            "`bench/bench_matching.py`). *Compiled* is `mastwatch.rules.match`: one Aho-Corasick",
            "pass picks candidate rules, only those are evaluated; its rate is the best of"
            f" {PASSES} passes over all items, the sizes taking turns pass by pass (so all",
            "sizes see the same machine). *Naive* tries each rule's regexes in turn",
            "(`mastwatch.rules.reference`), over as many items as fit in",
            f"{NAIVE_SECONDS:.0f} s, checking that both find the same matches.",
            "",
            table(rows, items),
            "",
            *verdicts(rows),
            "",
            *_notes(rows, items),
        ]
    )


def _notes(rows: Sequence[Row], items: int) -> list[str]:
    """Why throughput falls with more rules: the work that grows with them, in numbers."""
    by_size = {row.rules: row for row in rows}
    if 10 not in by_size or 5000 not in by_size:
        return []
    few, many = by_size[10], by_size[5000]
    return [
        "The rules: each an `all` of an `any` of two to five entity names (Latin or katakana,",
        "from the same pool of 18,000 names the items draw on), an `any` of three to six topic",
        "words (prefixes and Japanese terms included); 30 % add a `none` of exclusions, 10 %",
        "have a `near` of a name and `@date` instead of the topic words, 5 % add a regex, and",
        "one in a thousand is a lone regex. So the more rules, the more of every item is about",
        "some rule:",
        f"{many.matches / items:.0%} of items match at {many.rules:,} rules against"
        f" {few.matches / items:.2%} at {few.rules}.",
        "",
        "Where the time goes: per item, a fixed cost (normalised fields joined, one automaton",
        "pass) plus work that grows with the rule set. An item that is all ASCII (two thirds",
        "here) is matched on a marked copy of its text in which every non-word character",
        "reads as a space, and a literal that must sit on a word boundary is looked for with",
        "a space on that side, so the automaton applies word boundaries itself: a name inside",
        "a longer word is never reported (`mastwatch.rules.boundary`). Other items use the",
        "automaton of all literals and check boundaries in Python. A find's term and the one",
        "or two rules it makes candidates are read from one flat array. A rule is a candidate",
        "only when its rarest required group (usually a name) is found. Nearly all rules (an",
        "`all` of literal branches, with or without a regex, `@date` or proximity beside them)",
        "are then decided by bits: the 63 terms most branches share (topic words, exclusions)",
        "each have a bit, and each rule's other required branch and its exclusions are two",
        "such bit sets side by side in one flat array; only when these hold are a rule's",
        "other branches evaluated (a regex or `@date` only in fields holding a string every",
        "match contains, a proximity only in fields its literal entries share). A match is",
        "explained from a packed table of its rule's steps, its `Match` and `Evidence` made as",
        "named tuples (the timed call returns them complete). Deciding by bits and explaining",
        "from the table, the two steps whose work is all per candidate and per match, run in C",
        "(`mastwatch/rules/_native.c`), reading the same flat arrays in place; without a C",
        "compiler the same steps run in Python (the line above gives that ratio). What still",
        "grows with the rule set: the automaton pass itself (daachorse's double arrays: more",
        "states to miss in the CPU cache with more names), the candidates found per item,",
        f"explaining the {many.matches / items:.0%} of items that match, and above all the",
        "CPU cache misses on memory no longer cached at that size: the automaton's states on",
        "the path of each name found, each candidate's and each match's rule data (counted",
        "with callgrind in `bench/changes.md`; step by step: `python -m bench.matching_phases`).",
        f"Per item: {1e6 / many.items_per_second:.1f} µs at {many.rules:,} rules against"
        f" {1e6 / few.items_per_second:.1f} µs at {few.rules}.",
        "The naive baseline is timed on the first items only (it would take hours on all of",
        "them at 5,000 rules); its rate is items per second over those.",
        "",
    ]


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or add) one ``<!-- section: name -->`` block, keeping the others."""
    begin, end = f"<!-- section: {name} -->", f"<!-- end section: {name} -->"
    block = f"{begin}\n{body}{end}\n"
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else (
            "# Benchmarks\n\nFigures written by `make bench`; each section is rewritten by its own"
            " benchmark, so sections for other parts can sit beside this one.\n\n"
        )
    )
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text + block
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEM_COUNT)
    parser.add_argument("--rules", type=int, nargs="*", default=list(RULE_COUNTS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rng = random.Random(SEED)
    vocab = make_vocabulary(rng)
    docs = [make_document(item) for item in make_items(rng, vocab, args.items)]
    rows = measure_sizes([make_rules(random.Random(SEED + n), vocab, n) for n in args.rules], docs)
    seconds = time.perf_counter() - started
    print(table(rows, args.items))
    print("\n".join(verdicts(rows)))
    if not args.no_write:
        write_section(DOC, SECTION, section(rows, args.items, seconds))
        print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
