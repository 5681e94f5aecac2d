"""Three replicas on one PostgreSQL behave as one daemon, even when one is SIGKILLed.

100 sources on the local feed server, which keeps publishing new items (matching and not)
while the replicas run; every request is slowed a little so polls are in flight at the
kill. One replica is killed mid-run. Afterwards:

- every matching item was alerted once per receiver (Slack channel or mailbox). The one
  allowed exception is the documented at-least-once corner: a delivery the killed replica
  had in flight may go out again once its lease expires, at most one per route (a
  replica sends to one target one message at a time);
- no source went unpolled for more than two intervals (the feed server's request log);
- the sources the killed replica held leases on were taken over and polled again by the
  survivors, and it drops out of the live replicas while they stay.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from support import DaemonProcess

from daemon_fixtures import SLACK_TOKEN, Servers, write_config
from mastwatch.store.postgres import PostgresStore
from mastwatch.testing.feeds import Handler, rss
from pg_fixtures import fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SOURCES = 100
# seconds between polls of one source: four times the source lease (1 s, below), as
# docs/operations.md asks for the two-interval promise (a poller dying mid-poll leaves
# up to 1.75 intervals plus the lease between two polls of its source)
INTERVAL = 4.0
REPLICAS = 3
PUBLISH_SECONDS = 14.0
KILL_AFTER = 5.0  # seconds into publishing
PUBLISH_EVERY = 0.1  # seconds between new items (on random feeds)
REQUEST_DELAY = 0.15  # every feed answer is this slow, so polls are in flight at the kill
SEED = int(os.environ.get("MASTWATCH_HA_SEED", "20261124"))


class PublishingFeeds:
    """One RSS feed per source, each request logged with its monotonic time."""

    def __init__(self, servers: Servers) -> None:
        self.items: dict[int, list[dict[str, str]]] = {n: [] for n in range(SOURCES)}
        self.requests: dict[int, list[float]] = defaultdict(list)
        self.in_flight: set[int] = set()  # sources whose request is being answered now
        self.counter = itertools.count()
        for n in range(SOURCES):
            servers.feeds.add_handler(f"/feed/{n}.xml", self._handler(n))

    def _handler(self, n: int) -> Handler:
        async def handler(_request: web.Request) -> web.StreamResponse:
            self.requests[n].append(time.monotonic())
            body = rss(list(reversed(self.items[n])))  # read before the delay, as a server would
            self.in_flight.add(n)
            try:
                await asyncio.sleep(REQUEST_DELAY)
            finally:
                self.in_flight.discard(n)
            return web.Response(body=body, content_type="application/rss+xml")

        return handler

    def publish(self, rng: random.Random) -> None:
        """A new item on a random feed: a third critical, a third high, a third neither."""
        n, k = rng.randrange(SOURCES), next(self.counter)
        topic = ("tariff", "Treasuries", "weather")[k % 3]
        self.items[n].append({"title": f"Item {k:04d} on {topic}", "guid": f"item-{k}"})

    def expected(self) -> Counter[tuple[str, str]]:
        expected: Counter[tuple[str, str]] = Counter()
        for item in itertools.chain.from_iterable(self.items.values()):
            title = item["title"]
            routes = ("#crit", "email") if "tariff" in title else ()
            routes += ("#high",) if "Treasuries" in title else ()
            for route in routes:
                expected[(route, title)] = 1
        return expected


def delivered(servers: Servers) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for message in servers.slack.messages:
        header = (message.blocks or [{}])[0].get("text", {}).get("text", "")
        seen[(message.channel, header.split(" ", 1)[1])] += 1
    for mail in servers.smtp.messages:
        seen[("email", str(mail.message["Subject"]).split("] ", 2)[-1])] += 1
    return seen


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


Spawned = Callable[[DaemonProcess], DaemonProcess]


@pytest.fixture
async def spawned() -> AsyncIterator[Spawned]:
    """Remember each replica; whatever the test's outcome, none outlives it."""
    processes: list[DaemonProcess] = []

    def remember(process: DaemonProcess) -> DaemonProcess:
        processes.append(process)
        return process

    yield remember
    for process in processes:
        await process.kill()


async def polling(url: str, replica: str, feeds: PublishingFeeds) -> bool:
    return any(
        int(source_id[1:]) in feeds.in_flight for source_id in await held_leases(url, replica)
    )


async def held_leases(url: str, replica: str) -> dict[str, datetime]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT source_id, lease_until FROM sources"
            " WHERE lease_owner = $1 AND lease_until > now()",
            replica,
        )
    finally:
        await conn.close()
    return {row["source_id"]: row["lease_until"] for row in rows}


async def test_three_replicas_one_killed_alert_exactly_once(
    tmp_path: Path, servers: Servers, pg_url: str, spawned: Spawned
) -> None:
    rng = random.Random(SEED)
    feeds = PublishingFeeds(servers)
    config = write_config(
        tmp_path,
        servers,
        [
            {"id": f"s{n:03d}", "url": servers.feeds.url(f"/feed/{n}.xml"), "interval": INTERVAL}
            for n in range(SOURCES)
        ],
        store={"path": None, "url": pg_url},
        schedule={"default_interval": INTERVAL, "jitter": 0, "baseline_new_sources": False},
        delivery={"lease": "3s", "batch_size": 10, "retry_initial": 0.2},
        ha={"source_lease": "1s", "heartbeat_interval": "0.5s", "replica_ttl": "3s"},
        log={"format": "json", "level": "info"},
        # all 100 feeds share one host; the default two fetches per host would queue polls
        http={"per_host_concurrency": 32},
        # this test counts top-level alerts: its generated titles ("Item 0001 on tariff")
        # would cluster into stories and its ~100 alerts an hour trip the flood guard.
        # The policy state replicas share is tested in test_policy_postgres.py.
        stories={"enabled": False},
        throttle={"flood_max_per_hour": 100_000},
    )
    replicas = [
        spawned(
            DaemonProcess(
                config,
                {
                    **os.environ,
                    "MASTWATCH_SLACK_TOKEN": SLACK_TOKEN,
                    "MASTWATCH_REPLICA_ID": f"r{i}",
                },
            )
        )
        for i in range(REPLICAS)
    ]
    # the migrations run once, whichever replica gets the advisory lock first
    await asyncio.gather(*(replica.start() for replica in replicas))
    await asyncio.gather(*(replica.wait_event("daemon_ready", timeout=30) for replica in replicas))

    start = time.monotonic()
    killed_leases: dict[str, datetime] = {}
    killed_at: float | None = None
    next_publish = start
    while (now := time.monotonic()) - start < PUBLISH_SECONDS:
        if now >= next_publish:
            feeds.publish(rng)
            next_publish += PUBLISH_EVERY
        # kill mid-poll: r0 holds a source's lease and its request is being answered
        if killed_at is None and now - start > KILL_AFTER and await polling(pg_url, "r0", feeds):
            await replicas[0].kill()
            killed_at = time.monotonic()
            killed_leases = await held_leases(pg_url, "r0")  # frozen: r0 is gone
        await asyncio.sleep(0.02)
    published_until = time.monotonic()
    assert killed_at is not None and killed_leases, "r0 was not killed while holding a lease"

    expected = feeds.expected()
    async with asyncio.timeout(30):
        while set(expected) - set(delivered(servers)):
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # room for a late duplicate to show up before we count

    async with PostgresStore(pg_url) as store:
        live = {r.replica_id for r in await store.live_replicas(datetime.now(UTC), 3)}
        states = {s.source_id: s for s in await store.list_source_states()}
        outbox = await store.outbox_counts()
    for replica in replicas[1:]:
        assert await replica.stop() == 0

    # every matching item once per receiver; a repeat only for the kill's in-flight sends
    got = delivered(servers)
    assert set(got) == set(expected)
    duplicates = Counter(route for (route, _), n in got.items() for _ in range(n - 1))
    assert all(n <= 1 for n in duplicates.values()), duplicates
    assert outbox["pending"] == outbox["failed"] == 0

    # no source went unpolled for more than two intervals while the replicas ran
    worst_gap = 0.0
    for n in range(SOURCES):
        times = [t for t in feeds.requests[n] if t <= published_until] + [published_until]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        worst_gap = max(worst_gap, *gaps)
        assert max(gaps) <= 2 * INTERVAL, (
            f"s{n:03d}",
            f"s{n:03d}" in killed_leases,
            [round(t - killed_at, 2) for t in times],
        )

    # the killed replica's leases were taken over: polled again, by someone else
    for source_id, lease_until in killed_leases.items():
        state = states[source_id]
        assert state.last_success_at is not None and state.last_success_at > lease_until
        n = int(source_id[1:])
        assert any(t > killed_at for t in feeds.requests[n])
    assert live == {"r1", "r2"}
    polls = sum(len(times) for times in feeds.requests.values())
    per_interval = polls / SOURCES / ((published_until - start) / INTERVAL)
    print(
        f"worst gap {worst_gap:.2f}s; {per_interval:.2f} polls per source per interval;"
        f" killed replica held {len(killed_leases)} leases"
    )

    # every log line of every replica names the replica that wrote it
    for index, replica in enumerate(replicas):
        records = [json.loads(line) for line in replica.lines if line.startswith("{")]
        assert records and {record.get("replica") for record in records} == {f"r{index}"}
