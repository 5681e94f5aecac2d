"""Where matching's time goes, one rule-set size against another:
``python -m bench.matching_phases``.

The matching benchmark's items and rules (``bench.bench_matching``), matched as
:func:`mastwatch.rules.match` matches them, in three timed steps per item: the *scan* (the
document's texts joined, the automaton pass, the finds recorded), *deciding* the candidate
rules, *explaining* the rules that fire. Each size's best of ``--passes`` passes counts, the
sizes taking turns pass by pass (as in the benchmark). Printed per item: microseconds per
step at each size and the growth between them, and what grows (finds, candidates, matches).
A change meant to bring the 5,000-rule throughput closer to the 10-rule one has to cut that
growth; ``bench/changes.md`` records what was measured so.

Each step's time includes one clock reading (tens of nanoseconds): the explaining step at
10 rules, where nearly nothing fires, shows about what that costs.

Counted instead of timed (the same totals on every run, whatever else the machine does):
``--callgrind N`` matches the items twice at N rules (plain :func:`~mastwatch.rules.match`,
as the benchmark times it) and has callgrind count the second pass only, the first warming
the caches:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes \\
        --LL=2097152,16,64 .venv/bin/python -m bench.matching_phases --items 3000 \\
        --callgrind 5000

(``--LL`` the size of the machine's per-core L2; ``callgrind_annotate`` the output file
callgrind names ``.1``.)
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.bench_matching import ITEM_COUNT, SEED, make_items, make_rules, make_vocabulary
from mastwatch.model import Document, Match
from mastwatch.rules import RuleSet, compile_rules, match
from mastwatch.rules.evaluate import Scan, _firing, explain
from mastwatch.text import make_document

STEPS = ("scan", "decide", "explain")
PASSES = 5


@dataclass
class Pass:
    """One pass over the items at one size: seconds per step, and what the steps handled."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))
    finds: int = 0  # finds recorded, by term (on their word boundaries)
    candidates: int = 0
    matches: int = 0


def match_in_steps(ruleset: RuleSet, doc: Document, into: Pass) -> list[Match]:
    """What :func:`mastwatch.rules.match` returns for ``doc``, each step timed into ``into``."""
    clock = time.perf_counter
    started = clock()
    scan = Scan(ruleset, doc)
    scanned = clock()
    candidates = scan.triggered
    if ruleset.always_candidates:
        candidates.update(ruleset.always_candidates)
    fired = _firing(ruleset, scan, candidates) if candidates else []
    decided = clock()
    matches = explain(scan, fired)
    explained = clock()
    seconds = into.seconds
    seconds["scan"] += scanned - started
    seconds["decide"] += decided - scanned
    seconds["explain"] += explained - decided
    into.finds += sum(len(hits) for hits in scan.hits.values())
    into.candidates += len(candidates)
    into.matches += len(matches)
    return matches


def one_pass(ruleset: RuleSet, docs: Sequence[Document]) -> Pass:
    result = Pass()
    for doc in docs:
        match_in_steps(ruleset, doc, result)
    return result


def best_passes(rulesets: Sequence[RuleSet], docs: Sequence[Document], passes: int) -> list[Pass]:
    """Per rule set, the pass with the least time in all, the sets taking turns."""
    best: list[Pass | None] = [None] * len(rulesets)
    for _ in range(passes):
        for index, ruleset in enumerate(rulesets):
            result = one_pass(ruleset, docs)
            kept = best[index]
            if kept is None or sum(result.seconds.values()) < sum(kept.seconds.values()):
                best[index] = result
    return [result for result in best if result is not None]


def table(sizes: Sequence[int], results: Sequence[Pass], items: int) -> str:
    def micro(result: Pass, step: str | None = None) -> float:
        spent = result.seconds[step] if step else sum(result.seconds.values())
        return spent / items * 1e6

    few, many = results[0], results[-1]
    head = " | ".join(f"{size:,} rules" for size in sizes)
    lines = [f"| per item | {head} | growth |", "|---" * (len(sizes) + 2) + "|"]
    for step in (*STEPS, None):
        cells = " | ".join(f"{micro(result, step):.2f} us" for result in results)
        growth = micro(many, step) - micro(few, step)
        lines.append(f"| {step or 'all three'} | {cells} | {growth:+.2f} us |")
    for name in ("finds", "candidates", "matches"):
        cells = " | ".join(f"{getattr(result, name) / items:.3f}" for result in results)
        growth = (getattr(many, name) - getattr(few, name)) / items
        lines.append(f"| {name} | {cells} | {growth:+.3f} |")
    lines.append(f"\n{sizes[-1]:,} rules at {micro(few) / micro(many):.1%} of {sizes[0]:,}")
    return "\n".join(lines)


def _callgrind(command: str) -> None:
    """Ask the callgrind running this process to act (see the module's docstring)."""
    control = ["callgrind_control", command, str(os.getpid())]
    subprocess.run(control, check=True, capture_output=True)


def counted_pass(ruleset: RuleSet, docs: Sequence[Document]) -> None:
    """A warm-up pass, then one pass that callgrind counts alone: of the call the benchmark
    times, without the clock readings of the steps."""
    _callgrind("--instr=on")
    for doc in docs:
        match(ruleset, doc)
    _callgrind("--zero")
    for doc in docs:
        match(ruleset, doc)
    _callgrind("--dump")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEM_COUNT)
    parser.add_argument("--rules", type=int, nargs=2, default=[10, 5000])
    parser.add_argument("--passes", type=int, default=PASSES)
    parser.add_argument("--callgrind", type=int, metavar="N", help="count one pass at N rules")
    args = parser.parse_args(argv)

    rng = random.Random(SEED)
    vocab = make_vocabulary(rng)
    docs = [make_document(item) for item in make_items(rng, vocab, args.items)]
    sizes = [args.callgrind] if args.callgrind else args.rules
    rulesets = [compile_rules(make_rules(random.Random(SEED + n), vocab, n)) for n in sizes]
    if args.callgrind:
        counted_pass(rulesets[0], docs)
        return 0
    print(table(sizes, best_passes(rulesets, docs, args.passes), len(docs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
