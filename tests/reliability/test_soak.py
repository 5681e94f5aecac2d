"""Bounded resources: 1,000 sources polled for many cycles in one process.

Most polls are answered 304; a few feeds change every cycle so parsing, matching and the
outbox run too. After a warm-up cycle (connection pool, caches, first parse of each feed)
open file descriptors, asyncio tasks and resident memory must stay flat within the bounds
below; the measured values are recorded in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon_fixtures import Servers, write_config
from mastwatch.app import Daemon
from mastwatch.testing.feeds import rss

SOURCES = 1000
CYCLES = 12
CHANGED_PER_CYCLE = 10
FD_BOUND = 16  # extra descriptors allowed after warm-up (pooled keep-alive sockets come and go)
TASK_BOUND = 4
RSS_BOUND_MIB = 40


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _feed(n: int, cycle: int) -> bytes:
    topic = "tariff" if n % 50 == 0 else "weather"
    return rss([{"title": f"Feed {n} cycle {cycle} {topic}", "guid": f"{n}-{cycle}"}])


async def test_a_thousand_sources_keep_resources_flat(tmp_path: Path, servers: Servers) -> None:
    for n in range(SOURCES):
        servers.feeds.add_feed(f"/f/{n}.xml", _feed(n, 0))
    sources = [{"id": f"s{n}", "url": servers.feeds.url(f"/f/{n}.xml")} for n in range(SOURCES)]
    config = write_config(
        tmp_path, servers, sources, http={"per_host_concurrency": 32}, log={"level": "warning"}
    )
    clock = [datetime(2025, 1, 1, tzinfo=UTC)]
    samples: list[tuple[int, int, float]] = []

    async with Daemon(config, clock=lambda: clock[0]) as daemon:
        for cycle in range(CYCLES):
            for n in range(cycle * CHANGED_PER_CYCLE, (cycle + 1) * CHANGED_PER_CYCLE):
                servers.feeds.update_feed(f"/f/{n}.xml", _feed(n, cycle + 1))
            outcomes = await daemon.poll_all(force=True)
            await daemon.worker.drain(5)
            clock[0] += timedelta(minutes=5)
            statuses = {o.status for o in outcomes}
            assert statuses <= {"ok", "not_modified"}, statuses
            samples.append((_open_fds(), len(asyncio.all_tasks()), _rss_mib()))

    warm_fds, warm_tasks, warm_rss = samples[1]
    print("soak samples (fds, tasks, rss MiB):", samples)  # recorded in docs/reliability.md
    assert max(s[0] for s in samples[1:]) <= warm_fds + FD_BOUND, samples
    assert max(s[1] for s in samples[1:]) <= warm_tasks + TASK_BOUND, samples
    assert max(s[2] for s in samples[1:]) <= warm_rss + RSS_BOUND_MIB, samples
    assert len(servers.slack.messages) >= CYCLES  # the changed tariff feeds alerted
