"""``make bench``: every benchmark, one table, and docs/benchmarks.md rewritten.

``python -m bench`` runs the matching benchmark, the daemon benchmarks (cold and steady
cycles, latency to Slack, a burst of alerts, peak RSS), the parser comparison and the peers
(mastwatch, lemon24/reader and rss2email side by side on one farm, ``bench.peers``), prints
one table with each figure's baseline and target beside it, and rewrites the ``daemon``,
``parsers`` and ``peers`` sections of docs/benchmarks.md (the matching benchmark writes its
own). ``--quick`` shrinks every size for a smoke run and writes nothing. ``--only PART ...``
runs some parts (matching, cycles, latency, burst, rss, parsers, peers) and writes nothing
either: a section of docs/benchmarks.md is only ever rewritten from a whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import bench_matching as matching
from bench import peers as peers_bench
from bench.bench_daemon import DAEMON_PARTS, QUICK, Figure, Plan, run_all
from bench.farm import Farm
from bench.parsers import (
    Comparison,
    PlainComparison,
    compare,
    compare_plain,
    corpus_bodies,
    load_fastfeedparser,
)
from bench.peers import ROUNDS, PeersRun, run_peers
from mastwatch.rules.evaluate import C_MODULE_BUILT
from mastwatch.text import make_document


def matching_figures(quick: bool, *, write: bool) -> list[Figure]:
    """The matching benchmark at its usual sizes (it writes its own section)."""
    rng = random.Random(matching.SEED)
    vocab = matching.make_vocabulary(rng)
    item_count = 2000 if quick else matching.ITEM_COUNT
    docs = [make_document(i) for i in matching.make_items(rng, vocab, item_count)]
    started = time.perf_counter()
    sizes = (10, 1000) if quick else matching.RULE_COUNTS
    rows = matching.measure_sizes(
        [matching.make_rules(random.Random(matching.SEED + n), vocab, n) for n in sizes], docs
    )
    if write:
        body = matching.section(rows, item_count, time.perf_counter() - started)
        matching.write_section(matching.DOC, matching.SECTION, body)
    by_size = {row.rules: row for row in rows}
    at_1000 = by_size[1000]
    figures = [
        Figure(
            "matching, 1,000 rules (compiled)",
            f"{at_1000.items_per_second:,.0f} items/s",
            f"naive {at_1000.naive_items_per_second:,.0f} items/s ({at_1000.speedup:,.0f}x)",
            "≥ 20,000 items/s, ≥ 10x naive",
            at_1000.items_per_second >= 20_000 and at_1000.speedup >= 10,
        )
    ]
    if 10 in by_size and 5000 in by_size:
        few, many = by_size[10], by_size[5000]
        ratio = many.items_per_second / few.items_per_second
        figures.append(
            Figure(
                "matching, 5,000 rules against 10",
                f"{ratio:.1%} ({many.items_per_second:,.0f} items/s)",
                f"10 rules: {few.items_per_second:,.0f} items/s; round by round"
                f" {matching.spread(matching.round_ratios(few, many))}",
                "≥ 50%",
                ratio >= 0.5,
            )
        )
        if few.python_items_per_second and many.python_items_per_second:
            # what an install without a C compiler gets: shown, not held to the target
            figures.append(
                Figure(
                    "matching, 5,000 rules against 10, without the C module",
                    f"{matching.python_ratio(few, many):.1%}"
                    f" ({many.python_items_per_second:,.0f} items/s)",
                    f"10 rules: {few.python_items_per_second:,.0f} items/s; best of"
                    f" {matching.PYTHON_PASSES} passes, deciding and explaining in Python"
                    + ("" if C_MODULE_BUILT else f"; {matching.NOT_BUILT}"),
                    "",
                    None,
                )
            )
    return figures


def parser_figures(quick: bool) -> tuple[list[Figure], list[Comparison]]:
    farm_bodies = [d.body for d in Farm(50 if quick else 500, 30).docs]
    corpus = corpus_bodies()
    documents = [("farm", farm_bodies), ("feedparser-tests corpus", corpus)]
    figures = [_plain_figure(compare_plain(label, bodies)) for label, bodies in documents if bodies]
    fast = load_fastfeedparser()
    if fast is None:
        note = "fastfeedparser not installed (make bench installs it into .venv/bench-extras)"
        return [
            *figures,
            Figure("fastfeedparser vs feedparser", "not measured", note, "", None),
        ], []
    runs = [compare("farm", farm_bodies, fast)]
    if corpus:
        runs.append(compare("feedparser-tests corpus", corpus, fast))
    # a candidate parser's qualification, not a target of ours: the verdict is in the row,
    # the "met" column stays empty (a "no" there would read as a target missed)
    figures += [
        Figure(
            f"fastfeedparser on the {c.label} ({c.documents:,} documents)",
            f"{c.fast_seconds:.2f} s; same entries as feedparser in"
            f" {c.same_documents:,} of {c.documents:,}:"
            f" {'equal' if c.same_documents == c.documents else 'does not qualify'}",
            f"feedparser {c.feedparser_seconds:.2f} s",
            "equal items and text, or it does not qualify",
            None,
        )
        for c in runs
    ]
    return figures, runs


def _plain_figure(c: PlainComparison) -> Figure:
    return Figure(
        f"`parse_feed` (plain reader, else feedparser) on the {c.label} ({c.documents:,} XML"
        " documents)",
        f"{c.shipped_seconds:.2f} s; read plain {c.read_plain:,}, their items equal to"
        f" feedparser's in {c.same_documents:,} of {c.read_plain:,}",
        f"the same step with feedparser only {c.feedparser_seconds:.2f} s"
        f" ({_times_as_long(c.feedparser_seconds, c.shipped_seconds)})",
        "equal items and text where it reads plain",
        c.same_documents == c.read_plain,
    )


def _times_as_long(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x as long" if fast > 0 else "-"


def peer_figures(plan: Plan, quick: bool) -> tuple[PeersRun | None, list[Figure]]:
    """The peers on a farm of the cold cycle's size. Peers run last: a failure here (the farm
    not starting, say) must not throw away the figures of the other parts."""
    try:
        peers = asyncio.run(
            run_peers(plan.cold_feeds, plan.cold_items, rounds=1 if quick else ROUNDS)
        )
    except Exception as error:  # reported in the table instead
        return None, [Figure("peers", "not measured", f"failed: {error!r}"[:300], "", None)]
    return peers, peers_bench.figures(peers)


def table(figures: Sequence[Figure]) -> str:
    lines = ["| figure | measured | baseline (same run) | target | met |", "|---|---|---|---|---|"]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.name} | {f.value} | {f.baseline} | {f.target} | {met} |")
    return "\n".join(lines)


def daemon_section(figures: Sequence[Figure], plan: Plan, seconds: float) -> str:
    machine = f"Python {platform.python_version()}, {platform.machine()}, 2 cores"
    return "\n".join(
        [
            "## The daemon",
            "",
            f"`make bench` ({machine}; {seconds:.0f} s for every benchmark). The real daemon",
            "(`mastwatch run --once` or `mastwatch run`, a subprocess with a generated config and",
            "the shipped rules) against a loopback feed farm (`bench/farm.py`: generated English",
            "and Japanese news, about 5 % of items about tariffs, ETag and Last-Modified",
            "honoured, feeds spread over 50 ports so per-host limits apply as in life) and",
            "`LocalSlackServer`. Baselines are measured in the same run: a bare `aiohttp` fetch",
            "of every feed at once (conditional for the steady cycle) and a default",
            "`feedparser.parse` of the same bodies, one after another.",
            "",
            table(figures),
            "",
            "How to read it:",
            "",
            "- *Cold cycle*: empty store, baseline off, so every item is parsed, checked for",
            "  duplicates, matched and stored. *Process wall* includes starting Python and",
            "  importing mastwatch and loading the rules (0.7-2.2 s, by machine); *in the",
            "  daemon* is from the `daemon_started` log line to `once_finished`. *CPU* is",
            "  user + system time of the daemon and its parse workers, sampled from /proc:",
            "  other load on the machine moves it far less than the wall times. The target",
            "  is the issue's 3 s on a machine where feedparser took 5.4 s, scaled by the",
            "  feedparser baseline of the same run (`bench_daemon.cold_target`). Each",
            "  baseline reading (bare fetch, feedparser parse; the conditional fetch for the",
            "  steady cycle) is taken just before the daemon run it is compared with, and",
            "  each figure is the median of its readings: the machine's speed drifts over",
            "  minutes, and readings taken minutes apart would compare two machines.",
            "- *Steady cycle*: the same store polled again; every feed answers 304.",
            f"- *Latency*: {plan.latency_samples} items published at random moments over",
            f"  {plan.latency_spread:.0f} s on random feeds of {plan.latency_feeds}; the time is",
            "  from publication on the farm to the Slack server receiving the alert, and the",
            "  part of it spent waiting for the feed's next poll is given apart (p99 is the",
            "  nearest rank). Sources poll every",
            f"  {plan.latency_interval:g} s with the shipped `jitter` (10 s, bounded to a",
            "  twentieth of the interval and taken off each period, never added); all alerts go",
            "  to one channel, paced at 1 message/s with the shipped burst, so items found",
            "  together may queue. Publishing starts two intervals after the first polls, once",
            "  each source's phase is spread (`app.PhaseSpreadTrigger`).",
            f"- *Burst*: {plan.burst} matching items appear on one feed at once; each alert goes",
            f"  to one channel, paced at `slack.min_interval = {plan.burst_interval:g}` s with the",
            "  shipped `slack.burst` (that many may go at once; in any T seconds at most",
            "  burst + T / min_interval messages reach the channel).",
            "- *Peak RSS*: `VmHWM` of the daemon process, sampled until it exits; the parse",
            "  workers are separate processes and listed apart.",
            "- The daemon writes its log to a file that the harness follows. (It used to be a",
            "  pipe read by the harness's own event loop, which also serves the farm: when",
            "  that loop fell behind, the pipe filled and the daemon's log writes blocked,",
            "  which the figures then counted as the daemon's time.)",
            "",
            CHANGES,
        ]
    )


# Written by hand from runs of `python -m bench.profile_daemon` and `python -m bench --only`
# during the change (issue 9); the table above is what `make bench` measures each time.
CHANGES = (Path(__file__).parent / "changes.md").read_text(encoding="utf-8")


def parsers_section(figures: Sequence[Figure], runs: Sequence[Comparison]) -> str:
    lines = ["## Feed parsers", "", table(figures), ""]
    if runs:
        lines += [
            "Decision: fastfeedparser does not qualify. It reads the generated farm",
            "identically and far faster, but on feedparser's own test corpus (real-world",
            "encodings, entities, ill-formed documents) it disagrees on titles, links or",
            "summaries in many documents. Instead, `parse_feed` reads *plain* documents",
            "(well-formed RSS 2.0, RSS 1.0 or Atom with only the usual elements, text-only",
            "text elements, no DTD or xml:base) with ElementTree and feedparser's own rules",
            "for the fields it keeps (sources/plainfeed.py), and hands every other document",
            "to feedparser; the rows above check that every plain document's items equal",
            "feedparser's, as tests/unit/test_plainfeed.py does over the corpus and generated",
            "documents. Parsing still runs in a process pool, one worker per CPU",
            '(`[performance] parse_workers = "auto"`, the default; see docs/operations.md).',
            "",
        ]
    return "\n".join(lines)


PARTS = ("matching", *DAEMON_PARTS, "parsers", "peers")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, write nothing")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, metavar="PART", help=f"some of: {', '.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    parts = tuple(args.only or PARTS)
    write = not args.quick and args.only is None
    started = time.perf_counter()
    figures: list[Figure] = []
    if "matching" in parts:
        print("matching ...", file=sys.stderr)
        figures += matching_figures(args.quick, write=write)
    daemon_parts = [part for part in DAEMON_PARTS if part in parts]
    daemon: list[Figure] = []
    if daemon_parts:
        print(f"daemon: {', '.join(daemon_parts)} ...", file=sys.stderr)
        daemon = asyncio.run(run_all(plan, daemon_parts))
    parsers: list[Figure] = []
    runs: list[Comparison] = []
    if "parsers" in parts:
        print("parsers ...", file=sys.stderr)
        parsers, runs = parser_figures(args.quick)
    peers: PeersRun | None = None
    peer_rows: list[Figure] = []
    if "peers" in parts:
        print("peers ...", file=sys.stderr)
        peers, peer_rows = peer_figures(plan, args.quick)
    seconds = time.perf_counter() - started
    print(table([*figures, *daemon, *parsers, *peer_rows]))
    if write:
        matching.write_section(matching.DOC, "daemon", daemon_section(daemon, plan, seconds))
        matching.write_section(matching.DOC, "parsers", parsers_section(parsers, runs))
        if peers is not None:
            matching.write_section(matching.DOC, peers_bench.SECTION, peers_bench.section(peers))
        print(f"written: {matching.DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
