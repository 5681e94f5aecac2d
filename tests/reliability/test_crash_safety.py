"""SIGKILL the daemon at random points, again and again, then let it finish.

New items keep arriving and Slack answers slowly, so the kills land while polls commit,
while deliveries are claimed and while messages are in flight. Afterwards the local
servers' records must hold every alert at least once; a repeat is allowed only for a
delivery in flight at a kill (at most one per route per kill: deliveries to one target
go out one after another), and the SQLite file must pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path

import pytest
from support import DaemonProcess, integrity_check, outbox_counts

from daemon_fixtures import SLACK_TOKEN, Servers, source, write_config
from mastwatch.testing.feeds import rss

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

KILLS = 22
NEW_ITEMS_PER_RUN = 2
SEED = int(os.environ.get("MASTWATCH_CRASH_SEED", "20240607"))


def _items(count: int) -> list[dict[str, str]]:
    """Alternately a critical (Slack #crit + email) and a high (#high) item, newest first."""
    items = []
    for n in range(count):
        topic = "tariff" if n % 2 == 0 else "Treasuries"
        items.append({"title": f"Item {n:03d} on {topic}", "guid": f"item-{n}"})
    return items[::-1]


def _expected(count: int) -> Counter[tuple[str, str]]:
    expected: Counter[tuple[str, str]] = Counter()
    for item in _items(count):
        routes = ("#crit", "email") if "tariff" in item["title"] else ("#high",)
        for route in routes:
            expected[(route, item["title"])] = 1
    return expected


def _delivered(servers: Servers) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for message in servers.slack.messages:
        header = (message.blocks or [{}])[0].get("text", {}).get("text", "")
        seen[(message.channel, header.split(" ", 1)[1])] += 1
    for mail in servers.smtp.messages:
        seen[("email", str(mail.message["Subject"]).split("] ", 2)[-1])] += 1
    return seen


async def test_sigkill_at_random_points_loses_nothing(tmp_path: Path, servers: Servers) -> None:
    rng = random.Random(SEED)
    servers.slack.response_delay = 0.08  # slow enough that kills catch sends in flight
    count = NEW_ITEMS_PER_RUN
    servers.feeds.add_feed("/wire.xml", rss(_items(count)))
    config = write_config(
        tmp_path,
        servers,
        [{**source(servers, "/wire.xml", "wire"), "interval": 0.3}],
        delivery={"lease": "2s", "batch_size": 4, "retry_initial": 0.2},
        schedule={"default_interval": 0.3, "jitter": 0},
    )
    env = {**os.environ, "MASTWATCH_SLACK_TOKEN": SLACK_TOKEN}
    kill_points = []

    for _ in range(KILLS):
        daemon = DaemonProcess(config, env)
        await daemon.start()
        await daemon.wait_event("daemon_started")
        delay = rng.uniform(0.0, 1.0)
        kill_points.append(round(delay, 3))
        await asyncio.sleep(delay)
        await daemon.kill()
        count += NEW_ITEMS_PER_RUN
        servers.feeds.update_feed("/wire.xml", rss(_items(count)))

    db = tmp_path / "state" / "mastwatch.db"
    last = DaemonProcess(config, env)
    await last.start()
    expected = _expected(count)
    async with asyncio.timeout(60):
        while set(expected) - set(_delivered(servers)) or outbox_counts(db).get("pending"):
            await asyncio.sleep(0.1)
    assert await last.stop() == 0

    delivered = _delivered(servers)
    assert set(delivered) == set(expected), f"kill points {kill_points}"
    duplicates = Counter(route for (route, _), n in delivered.items() for _ in range(n - 1))
    assert all(n <= KILLS for n in duplicates.values()), (duplicates, kill_points)
    assert set(outbox_counts(db)) == {"sent"}
    assert integrity_check(db) == "ok"
    assert len(set(kill_points)) == KILLS  # every run was killed at a different point
