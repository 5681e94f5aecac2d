"""Helpers for the reliability suite: run the daemon once, read back what it stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import sqlite3
import sys
from pathlib import Path

from daemon_fixtures import Servers


def max_rss_mib() -> float:
    """The process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slack_texts(servers: Servers) -> list[str]:
    return [m.text or "" for m in servers.slack.messages]


class DaemonProcess:
    """``mastwatch run`` as a subprocess; its JSON log lines are kept, raw lines too."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mastwatch.cli", "run", "--config", str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    def events(self) -> list[str]:
        names = []
        for line in self.lines:
            try:
                names.append(str(json.loads(line).get("event")))
            except (json.JSONDecodeError, AttributeError):
                continue
        return names

    async def wait_event(self, name: str, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while name not in self.events():
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited before {name}: {self.lines[-5:]}")
                await asyncio.sleep(0.02)

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for a clean exit."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code


def outbox_counts(db: Path) -> dict[str, int]:
    """Deliveries per state, read straight from the SQLite file (the daemon may run)."""
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        rows = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def integrity_check(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
