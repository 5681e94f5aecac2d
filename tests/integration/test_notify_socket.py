"""The daemon under a stand-in for systemd: its own NOTIFY_SOCKET, messages read in order."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon_fixtures import SLACK_TOKEN, Servers, write_config
from mastwatch.testing.feeds import rss

pytestmark = pytest.mark.slow


class NotifySocket:
    """A bound AF_UNIX datagram socket collecting what the daemon sends, one dict a datagram."""

    def __init__(self, path: Path | str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = path if isinstance(path, Path) else "\0" + path.removeprefix("@")
        self.sock.bind(str(address))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def collect(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            lines = data.decode().splitlines()
            self.messages.append(dict(line.split("=", 1) for line in lines))

    def kinds(self) -> list[str]:
        """The first key of each message: READY, WATCHDOG, RELOADING, STOPPING."""
        return [next(iter(m)) for m in self.messages]

    async def wait_for(self, key: str, count: int = 1, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.kinds().count(key) < count:
                self.collect()
                await asyncio.sleep(0.02)


@pytest.fixture
def notify_path(tmp_path: Path) -> Iterator[Path]:
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path may be longer
    path = Path("/tmp") / f"mastwatch-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    yield path
    path.unlink(missing_ok=True)


async def _run_daemon(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mastwatch.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "MASTWATCH_SLACK_TOKEN": SLACK_TOKEN, **env},
    )  # fmt: skip


async def test_ready_watchdog_reload_and_stop_are_announced_in_order(
    tmp_path: Path, servers: Servers, notify_path: Path
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([{"title": "Calm day", "guid": "1"}]))
    config = write_config(
        tmp_path, servers, [{"id": "wire", "url": servers.feeds.url("/wire.xml")}]
    )
    listener = NotifySocket(notify_path)
    proc = await _run_daemon(config, {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"})
    try:
        await listener.wait_for("READY")
        await listener.wait_for("WATCHDOG", count=3)  # every 0.1 s: half of WATCHDOG_USEC
        before_reload = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        proc.send_signal(signal.SIGHUP)
        await listener.wait_for("READY", count=2)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    listener.collect()
    listener.sock.close()

    lifecycle = [k for k in listener.kinds() if k != "WATCHDOG"]
    assert lifecycle == ["READY", "RELOADING", "READY", "STOPPING"]
    keys = listener.kinds()
    assert keys.index("WATCHDOG") > keys.index("READY")  # pings come from the running loop
    ready = listener.messages[keys.index("READY")]
    assert ready["STATUS"] == "polling 1 sources"
    reloading = listener.messages[keys.index("RELOADING")]
    assert int(reloading["MONOTONIC_USEC"]) >= before_reload  # the same clock systemd reads


async def test_abstract_socket_and_no_watchdog_without_watchdog_usec(
    tmp_path: Path, servers: Servers
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([{"title": "Calm day", "guid": "1"}]))
    config = write_config(
        tmp_path, servers, [{"id": "wire", "url": servers.feeds.url("/wire.xml")}]
    )
    name = f"@mastwatch-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifySocket(name)
    proc = await _run_daemon(config, {"NOTIFY_SOCKET": name})
    try:
        await listener.wait_for("READY")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    listener.collect()
    listener.sock.close()
    assert listener.kinds() == ["READY", "STOPPING"]
