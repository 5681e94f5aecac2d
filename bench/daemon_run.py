"""Driving the real daemon for the benchmarks: a generated config, a subprocess, its logs.

The daemon runs as ``mastwatch run [--once]`` in its own process, exactly as an operator
starts it, against a config written into a temporary directory. Its JSON log lines (on
standard error) give the in-process timings; ``/proc/PID/status`` gives its peak RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "rules"
TIERS = ("critical", "high", "normal", "digest")  # every tier a rule may name
SLACK_TOKEN_ENV = "MASTWATCH_BENCH_SLACK_TOKEN"


@dataclass(frozen=True)
class BenchConfig:
    """What differs between the benchmark runs; everything else is the shipped default."""

    urls: Sequence[str]
    baseline: bool = True
    interval: float = 300.0
    jitter: float | None = 0.0  # None: the shipped default
    tiers: Mapping[str, Sequence[str]] = field(default_factory=dict)  # tier -> slack channels
    slack_base_url: str | None = None
    min_interval: float = 1.0
    once_wait: float = 30.0
    extra: str = ""  # more TOML appended verbatim (e.g. a [performance] table)


def write_config(directory: Path, bench: BenchConfig) -> Path:
    """A config file for ``bench``; the shipped rules; a fresh store in ``directory``."""
    tiers = "".join(
        f"[tiers.{name}]\nslack = {json.dumps(list(channels))}\n"
        for name, channels in {**dict.fromkeys(TIERS, ()), **bench.tiers}.items()
    )
    jitter = "" if bench.jitter is None else f"jitter = {bench.jitter}\n"
    slack_url = f'base_url = "{bench.slack_base_url}"\n' if bench.slack_base_url else ""
    sources = "".join(
        f'[[sources]]\nid = "farm-{n}"\nkind = "feed"\nurl = "{url}"\nallow_private = true\n'
        for n, url in enumerate(bench.urls)
    )
    text = f"""
[store]
path = "{directory / "bench.db"}"
[rules]
dir = "{RULES_DIR}"
[schedule]
default_interval = {bench.interval}
{jitter}baseline_new_sources = {str(bench.baseline).lower()}
[delivery]
once_wait = {bench.once_wait}
[log]
level = "info"
format = "json"
[web]
enabled = false
[slack]
token_env = "{SLACK_TOKEN_ENV}"
webhook_url_env = "MASTWATCH_BENCH_NO_WEBHOOK"
min_interval = {bench.min_interval}
mention_tiers = []
{slack_url}{bench.extra}
{tiers}
{sources}"""
    path = directory / "mastwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class DaemonRun:
    """One daemon process: wall time, peak RSS and its parsed log events."""

    wall_seconds: float = 0.0
    peak_rss_kib: int = 0
    workers_rss_kib: dict[str, int] = field(default_factory=dict)  # pid -> VmHWM
    cpu_ticks: dict[str, int] = field(default_factory=dict)  # pid -> user + system, last read
    returncode: int | None = None
    events: list[dict[str, object]] = field(default_factory=list)

    def times(self, event: str) -> list[datetime]:
        return [
            datetime.fromisoformat(str(e["timestamp"])) for e in self.events if e["event"] == event
        ]

    def span(self, first: str, last: str) -> float:
        """Seconds from the first ``first`` event to the last ``last`` event."""
        return (max(self.times(last)) - min(self.times(first))).total_seconds()

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the daemon and its children (sampled, so a little short): a figure
        that other load on the machine disturbs far less than wall time."""
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)


def mastwatch_command() -> list[str]:
    found = shutil.which("mastwatch", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "mastwatch.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env[SLACK_TOKEN_ENV] = "xoxb-bench-token"
    return env


class Daemon:
    """``mastwatch run`` (``once`` adds ``--once``) as a child process."""

    _serial = 0

    def __init__(self, config: Path, *, once: bool) -> None:
        self.config = config
        self.args = [*mastwatch_command(), "run", "--config", str(config)]
        if once:
            self.args.append("--once")
        self.run = DaemonRun()
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # The log goes to a file, not a pipe: a pipe read by this (busy) process would fill
        # up and stall the daemon's writes, measuring our reading rather than the daemon.
        Daemon._serial += 1
        self.log_path = self.config.parent / f"daemon-{os.getpid()}-{Daemon._serial}.log"
        self._started = time.perf_counter()
        with self.log_path.open("wb") as log_file:
            self._proc = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                env=_env(),
            )
        self._tasks = [
            asyncio.create_task(self._read_logs()),
            asyncio.create_task(self._sample_rss()),
        ]

    async def wait(self) -> DaemonRun:
        assert self._proc is not None
        self.run.returncode = await self._proc.wait()
        self.run.wall_seconds = time.perf_counter() - self._started
        await asyncio.gather(*self._tasks)
        return self.run

    async def stop(self) -> DaemonRun:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
        return await self.wait()

    async def wait_for_event(self, event: str, count: int = 1, patience: float = 60) -> None:
        deadline = time.monotonic() + patience
        while self.run.count(event) < count:
            if time.monotonic() > deadline or (self._proc and self._proc.returncode is not None):
                raise RuntimeError(f"daemon never logged {count} x {event}")
            await asyncio.sleep(0.05)

    async def _read_logs(self) -> None:
        """Follow the log file while the daemon runs, then read what is left."""
        assert self._proc is not None
        with self.log_path.open("rb") as log_file:
            pending = b""
            while True:
                running = self._proc.returncode is None
                pending += log_file.read()
                *lines, pending = pending.split(b"\n")
                self.run.events += [_event(line) for line in lines if line.strip()]
                if not running:
                    break
                await asyncio.sleep(0.05)
            if pending.strip():
                self.run.events.append(_event(pending))

    async def _sample_rss(self) -> None:
        """VmHWM is the kernel's own high-water mark; the last reading before exit wins.
        The parse workers (child processes) are sampled too, and reported apart."""
        assert self._proc is not None
        pid = self._proc.pid
        while self._proc.returncode is None:
            try:
                self.run.peak_rss_kib = max(self.run.peak_rss_kib, _hwm_kib(pid))
                self.run.cpu_ticks[str(pid)] = _cpu_ticks(pid)
                children = _children(pid)
            except (OSError, ValueError):
                return
            for child in children:
                with contextlib.suppress(OSError, ValueError):
                    self.run.workers_rss_kib[child] = _hwm_kib(int(child))
                    self.run.cpu_ticks[child] = _cpu_ticks(int(child))
            await asyncio.sleep(0.02)


def _event(line: bytes) -> dict[str, object]:
    try:
        event = json.loads(line)
    except ValueError:
        return {"event": "unparsed", "line": line.decode(errors="replace")}
    return event if isinstance(event, dict) else {"event": "unparsed", "line": str(event)}


def _children(pid: int) -> list[str]:
    """Every descendant: parse workers are children of the fork server, not the daemon."""
    found: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # each thread has its own children
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.append(child)
                with contextlib.suppress(OSError):
                    found += _children(int(child))
    return found


def _cpu_ticks(pid: int) -> int:
    """utime + stime from /proc/PID/stat (fields 14 and 15; the name may hold spaces)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def run_once(config: Path) -> DaemonRun:
    daemon = Daemon(config, once=True)
    await daemon.start()
    run = await daemon.wait()
    if run.returncode != 0:
        tail = run.events[-5:]
        raise RuntimeError(f"mastwatch run --once exited {run.returncode}: {tail}")
    return run
