"""Peers side by side: one farm, each tool's first fetch of every feed, one after another.

``python -m bench.peers`` starts ONE farm (``python -m bench.farm`` in a process of its own,
so every tool, the harness included, reaches it from outside, over loopback, through the
URL list and OPML file it writes) and against those URLs times, in turn:

- a bare concurrent ``aiohttp`` fetch of every feed (the floor for fetching);
- the same fetch, then a default ``feedparser.parse`` of every body (the floor for reading);
- mastwatch's cold cycle, ``mastwatch run --once`` on an empty store with the baseline off,
  so every item is parsed, matched and stored (as ``bench.bench_daemon`` runs it);
- lemon24/reader's first ``update_feeds()`` on a fresh database;
- rss2email's first ``r2e run --no-send`` on a fresh feed list.

That is one round; there are three (``--rounds``), after one warm-up fetch, and each row
reports its tool's median. The peers are not project dependencies: ``make bench`` installs
them into ``.venv/bench-extras`` and they run there, each in its own process
(``bench/peer_run.py``). A peer that is missing, fails or hangs gets a row saying so, and
the run goes on. The table gives each figure's ratio to the bare fetch and to fetch + parse
measured in the same run, since the machine is shared and absolute times move with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from types import TracebackType

import aiohttp
import feedparser

from bench.bench_daemon import Figure, Plan, bare_fetch, feedparser_seconds
from bench.bench_matching import DOC, write_section
from bench.daemon_run import ROOT, BenchConfig, DaemonRun, run_once, write_config
from bench.farm import READY
from bench.parsers import EXTRAS

PEERS = ("reader", "rss2email")
# rounds of every tool (a round takes about 45 s here): the peers are there for scale,
# not held to a target, so fewer than the daemon's own cycles (bench_daemon.REPEATS)
ROUNDS = 3
PEER_RUN = Path(__file__).with_name("peer_run.py")
PEER_PATIENCE = 900.0  # seconds a peer may take before it is stopped and reported as hung
SECTION = "peers"


@dataclass(frozen=True)
class Result:
    """One row: a tool's first fetch of the farm, or why there is no figure for it."""

    tool: str  # name and version
    timed: str  # what ``seconds`` covers
    seconds: float | None = None  # None: not measured (see ``note``)
    process_seconds: float | None = None  # start to exit of the tool's process, if it has one
    cpu_seconds: float | None = None  # user + system, the whole process (and its children)
    items: int | None = None  # entries the tool read and kept
    requests: int | None = None  # requests the farm served while it ran
    note: str = ""
    load: float = 0.0  # 1-minute load average as it started


@dataclass
class PeersRun:
    feeds: int
    items: int
    rounds: int
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def baseline(self, position: int) -> float | None:
        """Seconds of the bare fetch (0) or of fetch + parse (1)."""
        found = self.results[position].seconds if len(self.results) > position else None
        return found or None


class FarmProcess:
    """``python -m bench.farm`` as a child process, as any tool outside the project runs it."""

    def __init__(self, feeds: int, items: int, workdir: Path, *, hosts: int = 50) -> None:
        self.workdir = workdir
        self.urls_file = workdir / "urls.txt"
        self.opml_file = workdir / "farm.opml"
        self.args = [
            *(sys.executable, "-m", "bench.farm", "--feeds", str(feeds), "--items", str(items)),
            *("--hosts", str(hosts), "--urls", str(self.urls_file), "--opml", str(self.opml_file)),
        ]
        self.urls: list[str] = []
        self.returncode: int | None = None  # once stopped: 0 when it stopped cleanly on SIGTERM
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> FarmProcess:
        with (self.workdir / "farm.log").open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        try:
            await self._wait_until_ready(self._proc)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
            raise
        self.urls = self.urls_file.read_text(encoding="utf-8").split()
        return self

    async def _wait_until_ready(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async with asyncio.timeout(120):  # generating 500 x 30 items takes a second or two
            while not (line := await proc.stdout.readline()).startswith(READY.encode()):
                if not line:
                    log_text = (self.workdir / "farm.log").read_text(errors="replace")
                    raise RuntimeError(f"the farm did not start: {log_text[-500:]}")

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            await self._proc.communicate()
        self.returncode = None if self._proc is None else self._proc.returncode

    async def requests(self) -> int:
        """Requests the farm has served so far (its ``/stats``)."""
        stats_url = self.urls[0].split("/feed/")[0] + "/stats"
        async with aiohttp.ClientSession() as session, session.get(stats_url) as response:
            return int((await response.json())["requests"])


def _load() -> float:
    return os.getloadavg()[0]


def _children_cpu() -> float:
    """CPU seconds of this process's children that have exited (and their waited-for
    descendants): what a tool run as a child process used, whatever else loads the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def bare_row(farm: FarmProcess) -> Result:
    """One bare concurrent fetch of every feed, in this process: the floor."""
    load, before, cpu = _load(), await farm.requests(), time.process_time()
    seconds, bodies, _ = await bare_fetch(farm.urls)
    return Result(
        f"aiohttp {aiohttp.__version__}",
        "bare concurrent fetch",
        seconds,
        cpu_seconds=time.process_time() - cpu,
        items=len(bodies),
        requests=await farm.requests() - before,
        note="items: bodies fetched",
        load=load,
    )


async def parse_row(farm: FarmProcess) -> Result:
    """The same fetch, then a default ``feedparser.parse`` of every body, in this process."""
    load, before, cpu = _load(), await farm.requests(), time.process_time()
    started = time.perf_counter()
    _, bodies, _ = await bare_fetch(farm.urls)
    parse_seconds, entries = feedparser_seconds(list(bodies.values()))
    return Result(
        f"aiohttp + feedparser {feedparser.__version__}",
        "fetch, then `feedparser.parse` of every body",
        time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu,
        items=entries,
        requests=await farm.requests() - before,
        note=f"of which parsing {parse_seconds:.2f} s",
        load=load,
    )


async def mastwatch_cold(farm: FarmProcess, workdir: Path) -> Result:
    """``mastwatch run --once`` on an empty store with the baseline off (every item matched)."""
    workdir.mkdir(parents=True)  # noqa: ASYNC240 (before the daemon starts)
    load, before = _load(), await farm.requests()
    try:
        run = await run_once(write_config(workdir, BenchConfig(farm.urls, baseline=False)))
    except RuntimeError as error:  # the daemon exited non-zero: say so, go on with the peers
        return Result(_mastwatch_name(), "cold `run --once`", note=f"failed: {error}"[:300])
    return Result(
        _mastwatch_name(),
        "cold `run --once`, daemon_started to once_finished",
        run.span("daemon_started", "once_finished"),
        run.wall_seconds,
        # sampled from /proc, as the daemon section does: the parse workers outlive the
        # daemon by a moment, are not reaped by it, so getrusage would miss them
        run.cpu_seconds,
        items=_new_items(run),
        requests=await farm.requests() - before,
        note=f"{run.count('rule_matched')} matches; {_failed_sources(run)} sources failed",
        load=load,
    )


def _mastwatch_name() -> str:
    return f"mastwatch {metadata.version('mastwatch')}"


def _new_items(run: DaemonRun) -> int:
    return sum(int(str(e.get("new_items", 0))) for e in run.events if e["event"] == "source_polled")


def _failed_sources(run: DaemonRun) -> int:
    finished = [e for e in run.events if e["event"] == "once_finished"]
    failed = finished[-1].get("failed_sources") if finished else None  # their ids
    return len(failed) if isinstance(failed, list) else 0


def peer_version(tool: str, extras: Path) -> str | None:
    """The version installed in ``extras``, or None when the peer is not there."""
    for dist in metadata.distributions(path=[str(extras)]):
        if (dist.metadata["Name"] or "").lower() == tool:
            return dist.version
    return None


async def run_peer(tool: str, farm: FarmProcess, scratch: Path, extras: Path) -> Result:
    """One peer's first fetch, in its own process with ``extras`` on its path."""
    version = peer_version(tool, extras)
    if version is None:
        return Result(tool, "", note=f"not installed (make bench installs it into {extras})")
    name = f"{tool} {version}"
    scratch.mkdir(parents=True)  # noqa: ASYNC240 (before the peer starts)
    env = {
        **os.environ,
        "PYTHONPATH": str(extras),
        "XDG_RUNTIME_DIR": str(scratch),  # rss2email's lock file: not shared with other runs
        "NO_PROXY": "127.0.0.1,localhost",
    }
    load, before, cpu = _load(), await farm.requests(), _children_cpu()
    args = [str(scratch), str(farm.urls_file), str(farm.opml_file)]
    started = time.perf_counter()
    with (scratch / "stderr.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            # -P: the script's directory (bench/) is not put on the peer's path
            *(sys.executable, "-P", str(PEER_RUN), tool, *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=env,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), PEER_PATIENCE)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Result(name, "", note=f"stopped after {PEER_PATIENCE:.0f} s", load=load)
    wall, used = time.perf_counter() - started, _children_cpu() - cpu
    if proc.returncode != 0:
        last = _last_line((scratch / "stderr.log").read_text(errors="replace"))
        return Result(name, "", note=f"failed (exit {proc.returncode}): {last}", load=load)
    return peer_result(name, out, Seen(wall, used, await farm.requests() - before, load))


@dataclass(frozen=True)
class Seen:
    """What the harness saw of a peer's process."""

    wall: float
    cpu: float
    requests: int
    load: float


def peer_result(name: str, out: bytes, seen: Seen) -> Result:
    """A row from what ``bench/peer_run.py`` printed (its last line is a JSON report)."""
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
        seconds, items, failed = report["seconds"], report["items"], report["failed_feeds"]
        note = (
            f"subscribing {report['setup_seconds']:.2f} s; import {report['import_seconds']:.2f} s"
        )
    except (ValueError, IndexError, KeyError, TypeError) as error:
        note = f"unreadable report ({error!r}): {out[-200:]!r}"
        return Result(name, "", note=note, load=seen.load)
    if failed:
        note += f"; {failed} feeds failed"
    timed = str(report.get("timed", ""))
    return Result(name, timed, seconds, seen.wall, seen.cpu, items, seen.requests, note, seen.load)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


async def one_round(
    farm: FarmProcess,
    workdir: Path,
    peers: Sequence[str],
    extras: Path,
    previous: Sequence[Result] = (),
) -> list[Result]:
    """Every tool once, one after another. A peer missing or failing in the previous round
    is not tried again."""
    row = [await bare_row(farm), await parse_row(farm)]
    row.append(await mastwatch_cold(farm, workdir / "mastwatch"))
    for position, tool in enumerate(peers, start=len(row)):
        earlier = previous[position] if previous else None
        if earlier is not None and earlier.seconds is None:
            row.append(earlier)
        else:
            row.append(await run_peer(tool, farm, workdir / tool, extras))
    return row


def median_result(runs: Sequence[Result]) -> Result:
    """The run with the median seconds, with the median CPU and every run's seconds noted."""
    measured = sorted((r for r in runs if r.seconds is not None), key=lambda r: r.seconds or 0)
    if len(runs) == 1 or not measured:
        return runs[0]
    middle = measured[len(measured) // 2]
    cpus = [r.cpu_seconds for r in measured if r.cpu_seconds is not None]
    each = ", ".join(f"{r.seconds:.2f}" for r in runs if r.seconds is not None)
    note = f"median of {len(measured)}: {each} s"
    failures = [r.note for r in runs if r.seconds is None]
    if failures:
        note += f"; {len(failures)} failed: {failures[0]}"
    return replace(
        middle,
        cpu_seconds=statistics.median(cpus) if cpus else None,
        note=f"{note}; {middle.note}",
    )


async def run_peers(
    feeds: int,
    items: int,
    *,
    rounds: int = ROUNDS,
    peers: Sequence[str] = PEERS,
    extras: Path = EXTRAS,
) -> PeersRun:
    """Every tool against one farm, one after another, for ``rounds`` rounds (interleaved,
    so that a change in the machine's load falls on every tool alike); medians reported."""
    result = PeersRun(feeds, items, rounds)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mastwatch-peers-") as tmp:
        workdir = Path(tmp)
        async with FarmProcess(feeds, items, workdir) as farm:
            await bare_fetch(farm.urls)  # warm-up: sockets, page cache, imports
            done: list[list[Result]] = []
            for number in range(rounds):
                previous = done[-1] if done else ()
                done.append(
                    await one_round(farm, workdir / f"round-{number}", peers, extras, previous)
                )
    result.results = [median_result(runs) for runs in zip(*done, strict=True)]
    result.seconds = time.perf_counter() - started
    return result


def _ratio(seconds: float | None, base: float | None) -> str:
    if seconds is None or not base:
        return ""
    ratio = seconds / base
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "" if value is None else fmt.format(value)


def table(run: PeersRun) -> str:
    bare, parsed = run.baseline(0), run.baseline(1)
    lines = [
        "| tool | timed | seconds | process wall (s) | CPU (s) | items | requests"
        " | x bare fetch | x fetch + parse | load | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in run.results:
        cells = [
            r.tool,
            r.timed,
            _num(r.seconds) or "not measured",
            _num(r.process_seconds),
            _num(r.cpu_seconds),
            _num(r.items, "{:,}"),
            _num(r.requests, "{:,}"),
            _ratio(r.seconds, bare),
            _ratio(r.seconds, parsed),
            f"{r.load:.1f}",
            r.note.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figures(run: PeersRun) -> list[Figure]:
    """Rows for ``python -m bench``'s table: each tool beside the two baselines."""
    bare, parsed = run.baseline(0), run.baseline(1)
    rows = []
    for r in run.results[2:]:
        name = f"peers, first fetch of {run.feeds} x {run.items}: {r.tool}"
        if r.seconds is None:
            rows.append(Figure(name, "not measured", r.note, "", None))
            continue
        value = (
            f"{r.seconds:.2f} s, {_num(r.items, '{:,}')} items ({r.timed}; process wall"
            f" {_num(r.process_seconds)} s)"
        )
        base = (
            f"bare aiohttp {_num(bare)} s ({_ratio(r.seconds, bare)});"
            f" fetch + feedparser {_num(parsed)} s ({_ratio(r.seconds, parsed)})"
        )
        rows.append(Figure(name, value, base, "", None))
    return rows


def section(run: PeersRun) -> str:
    rounds = (
        [
            f"- Each tool ran {run.rounds} times, in rounds that take every tool once in the",
            "  order of the table, so that a change in the machine's load falls on all of",
            "  them alike; a row is the run with the median seconds (its process wall and",
            "  load), with the median CPU, and the notes list every run's seconds.",
        ]
        if run.rounds > 1
        else []
    )
    return "\n".join(
        [
            "## Peers",
            "",
            f"`python -m bench.peers` (part of `make bench`; {run.seconds:.0f} s in all). One farm",
            f"of {run.feeds} feeds x {run.items} items, served by `python -m bench.farm` in a"
            " process of its own",
            "over 50 loopback ports, and every tool fetching all of it for the first time, each",
            "into a fresh store, database or feed list, one after another. The peers read the",
            "farm's URL list or OPML file, run in their own processes and come from",
            "`.venv/bench-extras`, where `make bench` installs them (never into the project's",
            "dependencies); a peer that is missing or fails gets a row saying so.",
            "",
            table(run),
            "",
            "How to read it:",
            "",
            *rounds,
            "- *seconds* is each tool's own first fetch-and-store of every feed: for mastwatch,",
            "  its log from `daemon_started` to `once_finished` (parse workers and matching",
            "  included); for reader, `update_feeds()` with its defaults (one worker: feeds are",
            "  fetched one after another) after `make_reader` and one `add_feed` per URL; for",
            "  rss2email, `r2e run --no-send` (each feed fetched in turn and every new entry made",
            "  into an email message, not sent) after `r2e new` and `r2e opmlimport`. *Process",
            "  wall* adds starting Python, imports and subscribing (given in the notes).",
            "- *CPU* is user + system time of the whole process: for mastwatch, of the daemon",
            "  and its parse workers, sampled from /proc as in the daemon section; for the peers",
            "  (which start no processes), from `getrusage` once they exit; for the baselines, of",
            "  the harness while it fetched (and parsed). Other load on the machine moves it far",
            "  less than the wall times.",
            "- *items* are the entries each tool kept (mastwatch: new items stored; reader: its",
            "  entry count; rss2email: entries in its seen list); *requests* are those the farm",
            "  served while the tool ran (a first fetch sends no validators).",
            "- The two baselines run in the harness: the bare concurrent fetch is the floor for",
            "  fetching alone, fetch + parse the floor for anything that reads every entry with",
            "  feedparser (mastwatch, reader and rss2email all do). The machine is shared and has",
            "  2 cores, so the ratios to them (their medians in the same run) carry more than the",
            "  seconds; *load* is the 1-minute load average as the row's run started.",
            "- The tools do different work on each entry: mastwatch matches every item against",
            "  the shipped rules and stores it, reader stores entries (and their content) in",
            "  SQLite, rss2email builds a mail message per entry and keeps its seen list in JSON.",
            "",
            FARM_HOWTO,
        ]
    )


FARM_HOWTO = """### Running the farm from outside

`python -m bench.farm --feeds 500 --items 30 [--hosts 50] [--seed N] [--first-port P]
[--urls FILE] [--opml FILE]` serves the generated farm the benchmarks use (the same sizes
and seed give the same documents, byte for byte) on 127.0.0.1 until Ctrl-C or SIGTERM. It
writes the feed URLs, one per line (default `var/farm/urls.txt`), and an OPML subscription
list (default `var/farm/farm.opml`), then prints its ports, those two paths, a `/stats` URL
(requests served so far, and how many were answered 304) and `farm ready`. Every feed
carries an ETag and a Last-Modified date and answers 304 to either. The ports are free ones
picked at start, or P to P + hosts - 1 with `--first-port P`, so that a tool's
subscriptions survive a restart of the farm. For example, in one shell:

    .venv/bin/python -m bench.farm --first-port 18000

and in another, any feed reader pointed at those files, such as rss2email installed on
its own:

    r2e new you@example.invalid && r2e opmlimport var/farm/farm.opml && time r2e run --no-send

`python -m bench.peers` does the same for every tool it compares (see
`bench/peer_run.py` for how reader and rss2email are driven).
"""


def main(argv: Sequence[str] | None = None) -> int:
    full = Plan()  # the sizes of the daemon's cold cycle
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=full.cold_feeds)
    parser.add_argument("--items", type=int, default=full.cold_items)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="each tool's runs")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run = asyncio.run(run_peers(args.feeds, args.items, rounds=args.rounds))
    print(table(run))
    sizes = (args.feeds, args.items, args.rounds)
    if args.no_write or sizes != (full.cold_feeds, full.cold_items, ROUNDS):
        print("not written: only a full-size run without --no-write rewrites the section")
    else:
        write_section(DOC, SECTION, section(run))
        print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
