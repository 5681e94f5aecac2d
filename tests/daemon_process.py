"""``mastwatch run`` as a subprocess, for the tests that drive the daemon as an operator
does: signals, SIGKILL, restarts. One driver for the integration and reliability suites."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from daemon_fixtures import SLACK_TOKEN


class DaemonProcess:
    """The daemon's output (stdout and stderr, in order) is kept line by line; its JSON
    log lines can be read back as records or event names."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env if env is not None else {**os.environ, "MASTWATCH_SLACK_TOKEN": SLACK_TOKEN}
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

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines as dicts (console alerts and other raw lines left out)."""
        found = []
        for line in self.lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def names(self) -> list[str]:
        return [str(record.get("event")) for record in self.records()]

    def event(self, name: str) -> dict[str, Any]:
        """The first log record of event ``name``."""
        return next(record for record in self.records() if record.get("event") == name)

    async def wait_event(self, name: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``name`` was logged ``count`` times; fail at once if the daemon exits."""
        async with asyncio.timeout(timeout):
            while self.names().count(name) < count:
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited before {name}: {self.lines[-5:]}")
                await asyncio.sleep(0.02)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for a clean exit."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
