"""The PostgreSQL store: the shared Store contract, plus what only PostgreSQL has."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from mastwatch.store import postgres
from mastwatch.store.base import StoreError
from mastwatch.store.migrate import load_migrations
from mastwatch.store.postgres import MIGRATIONS_PACKAGE, PostgresStore, describe_url
from pg_fixtures import fresh_database
from store_contract import StoreContract, StoreFactory, assert_an_old_database_gains_empty_runs
from store_contract_policy import (
    DigestStoreContract,
    ReplicaPolicyContract,
    SilenceStoreContract,
    StoryStoreContract,
)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


@pytest.fixture
def store_factory(pg_url: str) -> StoreFactory:
    return functools.partial(PostgresStore, pg_url)


class TestPostgresStoreContract(
    StoreContract,
    DigestStoreContract,
    SilenceStoreContract,
    StoryStoreContract,
    ReplicaPolicyContract,
):
    migrations_package = MIGRATIONS_PACKAGE
    integrity_error = asyncpg.IntegrityConstraintViolationError


async def test_replicas_starting_together_apply_each_migration_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            versions = [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")]
        finally:
            await conn.close()
        assert sorted(versions) == [m.version for m in load_migrations(MIGRATIONS_PACKAGE)]
    finally:
        for store in stores:
            await store.close()


async def test_a_database_from_before_empty_runs_gains_them_and_keeps_its_sources(
    pg_url: str,
) -> None:
    async def downgrade() -> None:  # as a database written before schema version 5
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("ALTER TABLE sources DROP COLUMN empty_runs")
            await conn.execute("DELETE FROM schema_migrations WHERE version = 5")
        finally:
            await conn.close()

    await assert_an_old_database_gains_empty_runs(lambda: PostgresStore(pg_url), downgrade, 5)


def test_description_never_shows_the_password() -> None:
    url = "postgresql://mastwatch:s3cret-pw@db.internal:5433/alerts?sslmode=require"
    assert describe_url(url) == "postgresql db.internal:5433/alerts"
    assert "s3cret" not in repr(PostgresStore(url))


async def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    store = PostgresStore("postgresql://u:s3cret-pw@127.0.0.1:1/nothing")
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1/nothing" in str(caught.value)


async def _lock_waiters(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        )
    finally:
        await conn.close()


async def _hold(store: PostgresStore, name: str, log: list[str], until: asyncio.Event) -> None:
    async with store.policy_lock():
        log.append(f"{name} in")
        await until.wait()
        log.append(f"{name} out")


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(10):
        while not await condition():
            await asyncio.sleep(0.01)


async def test_the_policy_lock_lets_one_replica_decide_at_a_time(pg_url: str) -> None:
    async with PostgresStore(pg_url) as first, PostgresStore(pg_url) as second:
        log: list[str] = []
        release = asyncio.Event()
        holder = asyncio.create_task(_hold(first, "a", log, release))

        async def entered() -> bool:
            return log == ["a in"]

        await _until(entered)
        go = asyncio.Event()
        go.set()
        waiter = asyncio.create_task(_hold(second, "b", log, go))

        async def waiting() -> bool:
            return await _lock_waiters(pg_url) == 1

        await _until(waiting)  # the second replica waits in PostgreSQL, not beside it
        assert log == ["a in"]
        release.set()
        await asyncio.gather(holder, waiter)
        assert log == ["a in", "a out", "b in", "b out"]


async def test_a_cancelled_holder_releases_the_policy_lock(pg_url: str) -> None:
    async with PostgresStore(pg_url) as first, PostgresStore(pg_url) as second:
        log: list[str] = []
        holder = asyncio.create_task(_hold(first, "a", log, asyncio.Event()))

        async def entered() -> bool:
            return log == ["a in"]

        await _until(entered)
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        go = asyncio.Event()
        go.set()
        await _hold(second, "b", log, go)
        assert log == ["a in", "b in", "b out"]


async def test_a_stuck_policy_lock_is_given_up_not_waited_on(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "POLICY_LOCK_WAIT", 0.2)
    async with PostgresStore(pg_url) as first, PostgresStore(pg_url) as second:
        log: list[str] = []
        release = asyncio.Event()
        holder = asyncio.create_task(_hold(first, "a", log, release))

        async def entered() -> bool:
            return log == ["a in"]

        await _until(entered)
        go = asyncio.Event()
        go.set()
        await _hold(second, "b", log, go)  # decides without the lock after lock_timeout
        release.set()
        await holder
        assert log == ["a in", "b in", "b out", "a out"]
