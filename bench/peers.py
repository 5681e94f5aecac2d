"""Peers side by side: one farm, each tool's first fetch of every feed, one after another.

``python -m bench.peers`` starts ONE farm (``python -m bench.farm`` in a process of its own,
so every tool, the harness included, reaches it from outside, over loopback, through the
URL list and OPML file it writes) and against those URLs times, in turn:

- a bare concurrent ``aiohttp`` fetch of every feed (the floor; median of 3 after a warm-up);
- the same fetch, then a default ``feedparser.parse`` of every body;
- mastwatch's cold cycle, ``mastwatch run --once`` on an empty store with the baseline off,
  so every item is parsed, matched and stored (as ``bench.bench_daemon`` runs it);
- lemon24/reader's first ``update_feeds()`` on a fresh database;
- rss2email's first ``r2e run --no-send`` on a fresh feed list.

The peers are not project dependencies: ``make bench`` installs them into
``.venv/bench-extras`` and they run there, each in its own process (``bench/peer_run.py``).
A peer that is missing, fails or hangs gets a row saying so, and the run goes on. The table
gives each figure's ratio to the bare fetch and to fetch + parse measured in the same run,
since the machine is shared and absolute times move with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType

import aiohttp
import feedparser

from bench.bench_daemon import REPEATS, Figure, Plan, bare_fetch, feedparser_seconds
from bench.bench_matching import DOC, write_section
from bench.daemon_run import ROOT, BenchConfig, DaemonRun, run_once, write_config
from bench.farm import READY
from bench.parsers import EXTRAS

PEERS = ("reader", "rss2email")
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
    items: int | None = None  # entries the tool read and kept
    requests: int | None = None  # requests the farm served while it ran
    note: str = ""
    load: float = 0.0  # 1-minute load average as it started


@dataclass
class PeersRun:
    feeds: int
    items: int
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


async def in_project_baselines(farm: FarmProcess) -> list[Result]:
    """The bare fetch and fetch + ``feedparser.parse``, in this process."""
    await bare_fetch(farm.urls)  # warm-up: sockets, page cache, imports
    load, before = _load(), await farm.requests()
    fetches = [await bare_fetch(farm.urls) for _ in range(REPEATS)]
    per_fetch = (await farm.requests() - before) // REPEATS
    bodies = list(fetches[0][1].values())
    bare = Result(
        f"aiohttp {aiohttp.__version__}",
        f"bare concurrent fetch (median of {REPEATS})",
        statistics.median(f[0] for f in fetches),
        items=len(bodies),
        requests=per_fetch,
        note="items: bodies fetched",
        load=load,
    )
    load, before = _load(), await farm.requests()
    started = time.perf_counter()
    _, fetched, _ = await bare_fetch(farm.urls)
    parse_seconds, entries = feedparser_seconds(list(fetched.values()))
    parsed = Result(
        f"aiohttp + feedparser {feedparser.__version__}",
        "fetch, then `feedparser.parse` of every body",
        time.perf_counter() - started,
        items=entries,
        requests=await farm.requests() - before,
        note=f"of which parsing {parse_seconds:.2f} s",
        load=load,
    )
    return [bare, parsed]


async def mastwatch_cold(farm: FarmProcess, workdir: Path) -> Result:
    """``mastwatch run --once`` on an empty store with the baseline off (every item matched)."""
    store = workdir / "mastwatch"
    store.mkdir()
    load, before = _load(), await farm.requests()
    try:
        run = await run_once(write_config(store, BenchConfig(farm.urls, baseline=False)))
    except RuntimeError as error:  # the daemon exited non-zero: say so, go on with the peers
        return Result(_mastwatch_name(), "cold `run --once`", note=f"failed: {error}"[:300])
    return Result(
        _mastwatch_name(),
        "cold `run --once`, daemon_started to once_finished",
        run.span("daemon_started", "once_finished"),
        run.wall_seconds,
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


async def run_peer(tool: str, farm: FarmProcess, workdir: Path, extras: Path) -> Result:
    """One peer's first fetch, in its own process with ``extras`` on its path."""
    version = peer_version(tool, extras)
    if version is None:
        return Result(tool, "", note=f"not installed (make bench installs it into {extras})")
    name = f"{tool} {version}"
    scratch = workdir / tool
    scratch.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(extras),
        "XDG_RUNTIME_DIR": str(scratch),  # rss2email's lock file: not shared with other runs
        "NO_PROXY": "127.0.0.1,localhost",
    }
    load, before = _load(), await farm.requests()
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
    wall = time.perf_counter() - started
    requests = await farm.requests() - before
    if proc.returncode != 0:
        last = _last_line((scratch / "stderr.log").read_text(errors="replace"))
        return Result(name, "", note=f"failed (exit {proc.returncode}): {last}", load=load)
    return peer_result(name, out, wall, requests, load)


def peer_result(name: str, out: bytes, wall: float, requests: int, load: float) -> Result:
    """A row from what ``bench/peer_run.py`` printed (its last line is a JSON report)."""
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
        seconds, items, failed = report["seconds"], report["items"], report["failed_feeds"]
        note = (
            f"subscribing {report['setup_seconds']:.2f} s; import {report['import_seconds']:.2f} s"
        )
    except (ValueError, IndexError, KeyError, TypeError) as error:
        return Result(name, "", note=f"unreadable report ({error!r}): {out[-200:]!r}", load=load)
    if failed:
        note += f"; {failed} feeds failed"
    return Result(name, str(report.get("timed", "")), seconds, wall, items, requests, note, load)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


async def run_peers(
    feeds: int, items: int, *, peers: Sequence[str] = PEERS, extras: Path = EXTRAS
) -> PeersRun:
    """Everything against one farm, one after another."""
    result = PeersRun(feeds, items)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mastwatch-peers-") as tmp:
        workdir = Path(tmp)
        async with FarmProcess(feeds, items, workdir) as farm:
            result.results += await in_project_baselines(farm)
            result.results.append(await mastwatch_cold(farm, workdir))
            for tool in peers:
                result.results.append(await run_peer(tool, farm, workdir, extras))
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
        "| tool | timed | seconds | process wall (s) | items | requests | x bare fetch"
        " | x fetch + parse | load | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in run.results:
        cells = [
            r.tool,
            r.timed,
            _num(r.seconds) or "not measured",
            _num(r.process_seconds),
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
    return "\n".join(
        [
            "## Peers",
            "",
            f"`python -m bench.peers` (part of `make bench`; {run.seconds:.0f} s). One farm of"
            f" {run.feeds} feeds x {run.items} items, served by `python -m bench.farm` in its own",
            "process over 50 loopback ports, and every tool in turn fetching all of it for the",
            "first time: a fresh store, database or feed list each. Nothing else of the project",
            "is shared with the peers: they read the farm's URL list or OPML file, run in their",
            "own processes and come from `.venv/bench-extras`, where `make bench` installs them",
            "(never into the project's dependencies).",
            "",
            table(run),
            "",
            "How to read it:",
            "",
            "- *seconds* is each tool's own first fetch-and-store of every feed: for mastwatch,",
            "  its log from `daemon_started` to `once_finished` (parse workers and matching",
            "  included); for reader, `update_feeds()` with its defaults (one worker: feeds are",
            "  fetched one after another) after `make_reader` and one `add_feed` per URL; for",
            "  rss2email, `r2e run --no-send` (each feed fetched in turn and every new entry made",
            "  into an email message, not sent) after `r2e new` and `r2e opmlimport`. *Process",
            "  wall* adds starting Python, imports and subscribing (given in the notes).",
            "- *items* are the entries each tool kept (mastwatch: new items stored; reader: its",
            "  entry count; rss2email: entries in its seen list); *requests* are those the farm",
            "  served while the tool ran (a first fetch sends no validators).",
            "- The two baselines run in the harness: the bare fetch is the floor for fetching",
            "  alone, fetch + parse the floor for anything that reads every entry with",
            "  feedparser (mastwatch, reader and rss2email all do). The machine is shared and has",
            "  2 cores, so the ratios, measured in the same run, carry more than the seconds;",
            "  *load* is the 1-minute load average as each row started.",
            "- The tools do different work on each entry: mastwatch matches every item against",
            "  the shipped rules and stores it, reader stores entries (and their content) in",
            "  SQLite, rss2email builds a mail message per entry and keeps its seen list in JSON.",
            "",
            FARM_HOWTO,
        ]
    )


FARM_HOWTO = """### Running the farm from outside

`python -m bench.farm --feeds 500 --items 30 [--hosts 50] [--seed N] [--first-port P]
[--urls FILE] [--opml FILE]` serves the same generated farm as the benchmarks (the same sizes
and seed give the same documents) on 127.0.0.1 until Ctrl-C or SIGTERM. It writes the feed
URLs, one per line (default `var/farm/urls.txt`), and an OPML subscription list (default
`var/farm/farm.opml`), and prints its ports, those paths and a `/stats` URL (requests served
so far, and how many were answered 304). Every feed honours `If-None-Match` and
`If-Modified-Since`. With `--first-port` the ports are fixed (P to P + hosts - 1), so a
tool's subscriptions stay valid across restarts. For example, in one shell
`.venv/bin/python -m bench.farm --first-port 18000`, and in another
`r2e opmlimport var/farm/farm.opml && r2e run --no-send`, or
`python -c 'import reader; r = reader.make_reader("x.sqlite");
[r.add_feed(u) for u in open("var/farm/urls.txt").read().split()]; r.update_feeds()'`.
"""


def main(argv: Sequence[str] | None = None) -> int:
    full = Plan()  # the sizes of the daemon's cold cycle
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=full.cold_feeds)
    parser.add_argument("--items", type=int, default=full.cold_items)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run = asyncio.run(run_peers(args.feeds, args.items))
    print(table(run))
    if args.no_write or (args.feeds, args.items) != (full.cold_feeds, full.cold_items):
        print("not written: only a run at the full sizes without --no-write rewrites the section")
    else:
        write_section(DOC, SECTION, section(run))
        print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
