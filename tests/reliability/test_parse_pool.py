"""The parse worker processes (``[performance] parse_workers``, on by default).

The daemon runs as a real subprocess with two parse workers. Its descendants (the fork
server and the workers) must hold none of its sockets, must not stop polling when the
process group gets Ctrl-C, and must be gone after a SIGTERM and after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import DaemonProcess

from daemon_fixtures import SLACK_TOKEN, Servers, source, write_config
from mastwatch.sources.parsing import resolve_workers
from mastwatch.testing.feeds import rss

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

WORKERS = 2


def descendants(pid: int) -> list[int]:
    """Every live descendant (the resource tracker, the fork server and its workers).
    Each thread has its own list of children: the pool starts from a thread."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def started_daemon(tmp_path: Path, servers: Servers) -> tuple[DaemonProcess, list[int]]:
    servers.feeds.add_feed("/wire.xml", rss([{"title": "Tariff news", "guid": "g1"}]))
    config = write_config(
        tmp_path,
        servers,
        [source(servers, "/wire.xml")],
        performance={"parse_workers": WORKERS},
        schedule={"default_interval": 0.5, "jitter": 0},
    )
    daemon = DaemonProcess(config, {**os.environ, "MASTWATCH_SLACK_TOKEN": SLACK_TOKEN})
    await daemon.start()
    await daemon.wait_event("source_polled")
    assert daemon.proc is not None
    async with asyncio.timeout(10):  # tracker, fork server and both workers, set up
        while len(found := descendants(daemon.proc.pid)) < 2 + WORKERS or not all(
            map(ignores_sigint, found)
        ):
            await asyncio.sleep(0.05)
    return daemon, found


def ignores_sigint(pid: int) -> bool:
    """Whether the process ignores SIGINT yet (a worker does once its initializer ran)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & (1 << (signal.SIGINT - 1)))


async def gone(pids: list[int], patience: float = 10.0) -> list[int]:
    deadline = asyncio.get_running_loop().time() + patience
    while (left := [p for p in pids if alive(p)]) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return left


@contextlib.asynccontextmanager
async def pool_daemon(
    tmp_path: Path, servers: Servers
) -> AsyncIterator[tuple[DaemonProcess, list[int]]]:
    """The daemon and its descendants; whatever a test leaves running is killed after it."""
    daemon, workers = await started_daemon(tmp_path, servers)
    try:
        yield daemon, workers
    finally:  # descendants first: they hold the daemon's output pipe open
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        await daemon.kill()


async def test_workers_hold_none_of_the_daemons_sockets(tmp_path: Path, servers: Servers) -> None:
    async with pool_daemon(tmp_path, servers) as (daemon, workers):
        assert daemon.proc is not None
        own = socket_inodes(daemon.proc.pid)
        assert own  # the web endpoint listens, the HTTP sessions connect
        for pid in workers:
            assert not own & socket_inodes(pid), f"process {pid} shares a daemon socket"
        assert await daemon.stop() == 0
        assert await gone(workers) == []


async def test_ctrl_c_to_the_group_stops_the_daemon_cleanly(
    tmp_path: Path, servers: Servers
) -> None:
    async with pool_daemon(tmp_path, servers) as (daemon, workers):
        await _ctrl_c(daemon, workers, servers)


async def _ctrl_c(daemon: DaemonProcess, workers: list[int], servers: Servers) -> None:
    assert daemon.proc is not None
    for pid in workers:  # what a terminal's Ctrl-C does to the whole foreground group
        os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.3)
    assert all(alive(pid) for pid in workers)  # ignored: the daemon decides
    polled = daemon.names().count("source_polled")
    servers.feeds.update_feed("/wire.xml", rss([{"title": "More tariff news", "guid": "g2"}]))
    async with asyncio.timeout(10):  # polls go on, parsed by the same workers
        while daemon.names().count("source_polled") == polled:
            await asyncio.sleep(0.05)
    daemon.proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        assert await daemon.proc.wait() == 0
    assert "source_poll_crashed" not in daemon.names()
    assert await gone(workers) == []


async def test_sigkill_leaves_no_process_behind(tmp_path: Path, servers: Servers) -> None:
    async with pool_daemon(tmp_path, servers) as (daemon, workers):
        await daemon.kill()
        assert await gone(workers) == []


def test_auto_is_one_worker_per_cpu_and_none_on_one_cpu() -> None:
    assert resolve_workers("auto", cpus=4) == 4
    assert resolve_workers("auto", cpus=1) == 0
    assert resolve_workers(3, cpus=1) == 3
