"""Daemon benchmarks: cold and steady cycles, alert latency, a burst of alerts, peak RSS.

Each figure comes from the real daemon (``mastwatch run`` in a subprocess) against the
loopback feed farm (:mod:`bench.farm`) and :class:`mastwatch.testing.slack.LocalSlackServer`,
with its baselines measured in the same run: a bare concurrent aiohttp fetch of the same
farm and a default ``feedparser.parse`` of the same bodies.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import feedparser

from bench.daemon_run import TIERS, BenchConfig, Daemon, DaemonRun, run_once, write_config
from bench.farm import Farm
from mastwatch.config import SlackConfig
from mastwatch.testing.slack import LocalSlackServer


@dataclass(frozen=True)
class Figure:
    """One row of the table: what was measured, against what, and the target."""

    name: str
    value: str
    baseline: str
    target: str
    met: bool | None  # None: no target


async def bare_fetch(
    urls: Sequence[str], validators: dict[str, str] | None = None
) -> tuple[float, dict[str, bytes], dict[str, str]]:
    """Every URL at once with a plain aiohttp session: the floor for a fetch cycle.

    With ``validators`` (url -> ETag) the requests are conditional, as a steady cycle's.
    """
    bodies: dict[str, bytes] = {}
    etags: dict[str, str] = {}

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        headers = {"If-None-Match": validators[url]} if validators else {}
        async with session.get(url, headers=headers) as response:
            body = await response.read()
            if response.status == 200:
                bodies[url] = body
            etags[url] = response.headers.get("ETag", "")

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, url) for url in urls))
    return time.perf_counter() - started, bodies, etags


def feedparser_seconds(bodies: Sequence[bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    entries = sum(len(feedparser.parse(body).entries) for body in bodies)
    return time.perf_counter() - started, entries


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


# Each cycle and baseline runs this many times; the median is reported. Five, not three:
# on the shared machine single cold cycles of one build ranged over 2.14-3.01 s in one run
# (bench/changes.md, eighth session), and a median of three moved with one slow reading.
REPEATS = 5


def _median_run(runs: Sequence[DaemonRun], measure: Callable[[DaemonRun], float]) -> DaemonRun:
    return sorted(runs, key=measure)[len(runs) // 2]


def _in_daemon(run: DaemonRun) -> float:
    return run.span("daemon_started", "once_finished")


def _wall(run: DaemonRun) -> float:
    return run.wall_seconds


POOL = os.cpu_count() or 1


async def _cold(farm: Farm, store_dir: Path, workers: int | None) -> DaemonRun:
    """One cold cycle; ``workers`` sets ``[performance] parse_workers`` (None: the default)."""
    store_dir.mkdir()  # noqa: ASYNC240 (once, before the daemon starts)
    extra = "" if workers is None else f"[performance]\nparse_workers = {workers}\n"
    return await run_once(write_config(store_dir, BenchConfig(farm.urls, False, extra=extra)))


def _cpu(runs: Sequence[DaemonRun]) -> str:
    return f"{statistics.median(r.cpu_seconds for r in runs):.2f} s"


# The latency and burst figures measure the delivery path: one Slack message per alert.
# The alert policy would fold the farm's template-made items into stories (thread replies)
# and, past 30 alerts an hour per rule, into one flood summary, so both are off for them;
# the policy's own behaviour is tested in tests/ (test_alert_policy.py).
DELIVERY_PATH_ONLY = "[stories]\nenabled = false\n[throttle]\nflood_max_per_hour = 1000000\n"


# The issue's cold-cycle target is 3 s on its machine, where a plain feedparser.parse of the
# same farm took 5.4 s. Machines differ by twice that and more (6.3 s here on one day, 2.3 s
# on another), so the target is taken in the issue's own terms: the same fraction of the
# feedparser baseline measured in this run. (Against the bare 3 s, a fast machine would
# pass a daemon twice as slow as asked, and a slow one fail a fast daemon.)
ISSUE_COLD_SECONDS = 3.0
ISSUE_FEEDPARSER_SECONDS = 5.4


def cold_target(feedparser_seconds: float) -> float:
    """The cold-cycle target on this machine: 3 s scaled by its feedparser baseline."""
    return ISSUE_COLD_SECONDS * feedparser_seconds / ISSUE_FEEDPARSER_SECONDS


@dataclass
class _Cycles:
    """Every reading of the cold and steady cycles and of their baselines."""

    bare_cold: list[float] = field(default_factory=list)
    parses: list[float] = field(default_factory=list)
    entries: int = 0
    colds: list[DaemonRun] = field(default_factory=list)
    threaded: list[DaemonRun] = field(default_factory=list)
    bare_steady: list[float] = field(default_factory=list)
    steadies: list[DaemonRun] = field(default_factory=list)
    answered_304: int = 0  # by the daemon, per steady run


async def _measure_cycles(farm: Farm, workdir: Path) -> _Cycles:
    """Each baseline reading is taken just before the daemon run it is compared with: the
    machine's speed drifts over minutes (other tenants), and a ratio of readings taken
    minutes apart would compare two machines (as the matching sizes take turns)."""
    await bare_fetch(farm.urls)  # warm-up: page cache, sockets, imports
    _, fetched, etags = await bare_fetch(farm.urls)
    bodies = list(fetched.values())
    cycles = _Cycles()
    for n in range(REPEATS):
        cycles.bare_cold.append((await bare_fetch(farm.urls))[0])
        parse_s, cycles.entries = feedparser_seconds(bodies)
        cycles.parses.append(parse_s)
        cycles.colds.append(await _cold(farm, workdir / f"cold-{n}", None))
    for n in range(REPEATS):
        cycles.threaded.append(await _cold(farm, workdir / f"thread-{n}", 0))
    config = workdir / "cold-0" / "mastwatch.toml"
    for _ in range(REPEATS):
        cycles.bare_steady.append((await bare_fetch(farm.urls, etags))[0])
        before = farm.not_modified
        cycles.steadies.append(await run_once(config))
        cycles.answered_304 += farm.not_modified - before
    cycles.answered_304 //= REPEATS
    return cycles


async def cold_and_steady(feeds: int, items: int, workdir: Path) -> list[Figure]:
    """Cold cycle (empty store, baseline off so every item is matched) and a steady one."""
    farm = Farm(feeds, items)
    await farm.start()
    try:
        cycles = await _measure_cycles(farm, workdir)
    finally:
        await farm.stop()
    colds, threaded, steadies = cycles.colds, cycles.threaded, cycles.steadies
    bare_cold = statistics.median(cycles.bare_cold)
    bare_steady = statistics.median(cycles.bare_steady)
    parse_s = statistics.median(cycles.parses)
    cold = _median_run(colds, _wall)
    cold_poll = statistics.median(_in_daemon(r) for r in colds)
    steady = _median_run(steadies, _wall)
    steady_poll = statistics.median(_in_daemon(r) for r in steadies)
    all_cold = ", ".join(f"{_wall(r):.2f}/{_in_daemon(r):.2f}" for r in colds)
    threaded_poll = statistics.median(_in_daemon(r) for r in threaded)
    threaded_wall = statistics.median(_wall(r) for r in threaded)
    polled = cold.count("source_polled")
    matched = cold.count("rule_matched")
    base = (
        f"bare aiohttp {bare_cold:.2f} s (median of {REPEATS});"
        f" feedparser.parse {parse_s:.2f} s, median of {REPEATS} ({cycles.entries:,} entries)"
    )
    return [
        Figure(
            f"cold cycle, {feeds} feeds x {items} items, in the daemon (daemon_started to"
            f' once_finished, median of {REPEATS}; default `parse_workers = "auto"`:'
            f" {POOL} processes here)",
            f"{cold_poll:.2f} s ({polled} sources, {matched} matches; CPU of daemon and"
            f" workers {_cpu(colds)})",
            f"{base}; same daemon parsing in a thread (`parse_workers = 0`):"
            f" {threaded_poll:.2f} s, CPU {_cpu(threaded)}",
            f"≤ 3 s where feedparser takes 5.4 s: here ≤ {cold_target(parse_s):.2f} s"
            f" ({ISSUE_COLD_SECONDS / ISSUE_FEEDPARSER_SECONDS:.2f}x its"
            f" {parse_s:.2f} s; the bare 3 s {'met' if cold_poll <= 3.0 else 'not met'})",
            cold_poll <= cold_target(parse_s),
        ),
        Figure(
            f"cold cycle, process wall (start to exit, median of {REPEATS})",
            f"{cold.wall_seconds:.2f} s (wall/in-daemon of the {REPEATS} runs: {all_cold} s)",
            f"{base}; parsing in a thread: {threaded_wall:.2f} s",
            "",
            None,
        ),
        Figure(
            f"steady cycle, nothing changed, in the daemon (median of {REPEATS})",
            f"{steady_poll:.2f} s ({cycles.answered_304} of {feeds} answered 304;"
            f" process wall {steady.wall_seconds:.2f} s)",
            f"bare conditional aiohttp {bare_steady:.2f} s, median of {REPEATS}"
            f" ({_ratio(steady_poll, bare_steady)})",
            "≤ 1.5x bare",
            steady_poll <= 1.5 * bare_steady,
        ),
        Figure(
            f"peak RSS, {feeds} feeds cold",
            f"{cold.peak_rss_kib / 1024:.0f} MB",
            _workers(cold),
            "",
            None,
        ),
    ]


async def latency(
    feeds: int, samples: int, spread: float, interval: float, workdir: Path
) -> list[Figure]:
    """Items appear at random times on random feeds; time until Slack receives each alert."""
    rng = random.Random(9)
    farm = Farm(feeds, 10, hosts=20)
    await farm.start()
    async with LocalSlackServer() as slack:
        bench = BenchConfig(
            urls=farm.urls,
            interval=interval,
            jitter=None,  # the shipped default (bounded to a twentieth of the interval)
            tiers={tier: [f"#bench-{tier}"] for tier in TIERS},
            slack_base_url=slack.base_url,
            extra=DELIVERY_PATH_ONLY,
        )
        daemon = Daemon(write_config(workdir, bench), once=False)
        await daemon.start()
        try:
            await daemon.wait_for_event("source_polled", feeds, patience=60)
            # each source's second period is longer by a random part of the interval (so
            # polls spread out: app.PhaseSpreadTrigger); measure once that has happened
            await asyncio.sleep(2 * interval)
            published = await _publish(farm, rng, samples, spread)
            appeared = {tag: p.monotonic for tag, p in published.items()}
            received = await _await_tags(slack, appeared, patience=interval * 3 + 10)
        finally:
            run = await daemon.stop()
            await farm.stop()
    delays = sorted(received[tag] - appeared[tag] for tag in received)
    if not delays:
        return [Figure("latency", "no alert arrived", "", "median ≤ 6 s", False)]
    median = statistics.median(delays)
    p99 = _p99(delays)
    waits = _poll_waits(run, published)
    after = sorted(received[tag] - appeared[tag] - w for tag, w in waits.items() if tag in received)
    parts = (
        f"waiting for the poll: median {statistics.median(waits.values()):.1f} s, max"
        f" {max(waits.values()):.1f} s; found to Slack: median {statistics.median(after):.2f} s,"
        f" p99 {_p99(after):.2f} s"
        if waits and after
        else "poll times not found in the log"
    )
    return [
        Figure(
            f"item on farm to Slack, polling every {interval:g} s (shipped jitter setting)",
            f"median {median:.1f} s, p99 {p99:.1f} s, max {delays[-1]:.1f} s"
            f" ({len(delays)} of {samples} items, {feeds} feeds); of which {parts}",
            f"poll interval {interval:g} s (mean wait for the next poll ≈ {interval / 2:g} s)",
            "median ≤ 6 s, p99 ≤ 11 s",
            len(delays) == samples and median <= 6 and p99 <= 11,
        ),
        Figure(
            f"peak RSS, {feeds} feeds, long-running",
            f"{run.peak_rss_kib / 1024:.0f} MB",
            _workers(run),
            "",
            None,
        ),
    ]


@dataclass(frozen=True)
class Published:
    """When and where a latency sample appeared on the farm."""

    monotonic: float  # the clock the Slack server stamps messages with
    wall: datetime  # the clock of the daemon's log lines
    source_id: str


async def _publish(
    farm: Farm, rng: random.Random, samples: int, spread: float
) -> dict[str, Published]:
    offsets = sorted(rng.uniform(0, spread) for _ in range(samples))
    appeared: dict[str, Published] = {}
    started = time.monotonic()
    for number, offset in enumerate(offsets):
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
        tag = f"[lat-{number}]"
        feed = rng.randrange(len(farm.docs))
        farm.add_item(feed, tag=f" {tag}")
        appeared[tag] = Published(time.monotonic(), datetime.now(UTC), f"farm-{feed}")
    return appeared


def _p99(values: Sequence[float]) -> float:
    """The 99th percentile (nearest rank) of sorted ``values``."""
    return values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


def _poll_waits(run: DaemonRun, published: dict[str, Published]) -> dict[str, float]:
    """For each sample (by tag), publication to the first poll of its feed that found new
    items: the part of the latency that is the polling schedule, not the daemon's work."""
    polls = [
        (str(e["source"]), datetime.fromisoformat(str(e["timestamp"])))
        for e in run.events
        if e["event"] == "source_polled" and e.get("new_items")
    ]
    waits = {}
    for tag, p in published.items():
        found = [at for source, at in polls if source == p.source_id and at >= p.wall]
        if found:
            waits[tag] = (min(found) - p.wall).total_seconds()
    return waits


async def _await_tags(
    slack: LocalSlackServer, tags: dict[str, float], patience: float
) -> dict[str, float]:
    """When each tag first reached Slack (monotonic, as the server stamps messages)."""
    deadline = time.monotonic() + patience
    received: dict[str, float] = {}
    while time.monotonic() < deadline:
        for message in slack.messages:
            for tag in tags:
                if tag not in received and tag in (message.text or ""):
                    received[tag] = message.received_at
        if len(received) == len(tags):
            break
        await asyncio.sleep(0.1)
    return received


async def burst(count: int, min_interval: float, workdir: Path) -> list[Figure]:
    """``count`` matching items appear at once on one feed; all alerts go to one channel."""
    farm = Farm(1, 5)
    await farm.start()
    async with LocalSlackServer() as slack:
        bench = BenchConfig(
            urls=farm.urls,
            tiers={tier: ["#bench-burst"] for tier in TIERS},
            slack_base_url=slack.base_url,
            min_interval=min_interval,
            once_wait=count * min_interval * 2 + 60,
            extra=DELIVERY_PATH_ONLY,
        )
        config = write_config(workdir, bench)
        await run_once(config)  # baseline: records the feed, alerts on nothing
        for number in range(count):
            farm.add_item(0, tag=f" [burst-{number}]")
        started = time.monotonic()
        run = await run_once(config)
        await farm.stop()
    messages = [m for m in slack.messages if m.channel == "#bench-burst"]
    tags = {t for m in messages for t in _burst_tags(m.text or "")}
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(messages)]
    errors = [a for a in slack.attempts if a.outcome != "ok"]
    raised = run.count("rule_matched")
    span = messages[-1].received_at - started if messages else 0.0
    worst = _most_in_a_span([m.received_at for m in messages], min_interval)
    ok = len(tags) == count and len(messages) == raised and worst <= SLACK_BURST
    return [
        Figure(
            f"{count} alerts at once to one Slack channel (min_interval {min_interval:g} s,"
            f" shipped burst {SLACK_BURST})",
            f"{len(tags)} of {count} items delivered, {len(messages)} messages for {raised}"
            f" alerts, {len(errors)} errors; {span:.0f} s; gap median"
            f" {statistics.median(gaps) if gaps else 0:.2f} s; largest burst {worst} (messages"
            f" in a span beyond 1 per {min_interval:g} s)",
            "Slack allows 1 message/s per channel, short bursts >1",
            "all delivered, paced, none dropped",
            ok,
        )
    ]


SLACK_BURST = SlackConfig().burst  # what the daemon runs with; the bench leaves it as shipped


def _most_in_a_span(times: Sequence[float], interval: float) -> int:
    """The largest ``n - T / interval`` over every span of ``n`` messages lasting ``T`` s
    (rounded up, with 50 ms for the clocks): the burst the pacing allowed itself. Paced
    at one per ``interval`` with bursts of ``b`` it is at most ``b``."""
    ordered = sorted(times)
    worst = 0
    for i, first in enumerate(ordered):
        for j in range(i, len(ordered)):
            worst = max(worst, math.ceil(j - i + 1 - (ordered[j] - first + 0.05) / interval))
    return worst


def _burst_tags(text: str) -> list[str]:
    return [part.split("]")[0] for part in text.split("[burst-")[1:]]


async def peak_rss(feeds: int, items: int, workdir: Path) -> list[Figure]:
    farm = Farm(feeds, items, hosts=100)
    await farm.start()
    try:
        run = await run_once(write_config(workdir, BenchConfig(urls=farm.urls)))
    finally:
        await farm.stop()
    mb = run.peak_rss_kib / 1024
    return [
        Figure(
            f"peak RSS (VmHWM), {feeds:,} feeds x {items} items, cold --once",
            f"{mb:.0f} MB ({run.wall_seconds:.1f} s wall)",
            _workers(run),
            "≤ 150 MB",
            mb <= 150,
        )
    ]


def _workers(run: DaemonRun) -> str:
    peaks = sorted(kib for kib in run.workers_rss_kib.values() if kib)
    if not peaks:
        return "no child processes"
    each = ", ".join(f"{kib / 1024:.0f}" for kib in peaks)
    return f"plus {len(peaks)} child processes (fork server, parse workers...): {each} MB"


@dataclass(frozen=True)
class Plan:
    """Sizes of each benchmark; ``quick`` shrinks them for a smoke run."""

    cold_feeds: int = 500
    cold_items: int = 30
    latency_feeds: int = 200
    # 150 samples, so p99 is not just the slowest one; spread so that alerts reach the
    # one channel at 0.5/s on average (items appear at random, so they still bunch)
    latency_samples: int = 150
    latency_spread: float = 300.0
    latency_interval: float = 10.0
    burst: int = 200
    burst_interval: float = 1.0
    rss_feeds: int = 2000


QUICK = Plan(50, 30, 20, 5, 10.0, 5.0, 10, 0.2, 200)


DAEMON_PARTS = ("cycles", "latency", "burst", "rss")


async def run_all(plan: Plan, parts: Sequence[str] = DAEMON_PARTS) -> list[Figure]:
    """The daemon benchmarks named in ``parts`` (all of :data:`DAEMON_PARTS` by default)."""
    figures: list[Figure] = []
    steps: dict[str, Callable[[Path], Awaitable[list[Figure]]]] = {
        "cycles": lambda d: cold_and_steady(plan.cold_feeds, plan.cold_items, d),
        "latency": lambda d: latency(
            plan.latency_feeds, plan.latency_samples, plan.latency_spread, plan.latency_interval, d
        ),
        "burst": lambda d: burst(plan.burst, plan.burst_interval, d),
        "rss": lambda d: peak_rss(plan.rss_feeds, 30, d),
    }
    for step in (steps[part] for part in DAEMON_PARTS if part in parts):
        with tempfile.TemporaryDirectory(prefix="mastwatch-bench-") as tmp:
            figures += await step(Path(tmp))
    return figures
