"""The PostgreSQL store: the shared Store contract, plus what only PostgreSQL has."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import asyncpg
import pytest

from mastwatch.store.base import StoreError
from mastwatch.store.migrate import load_migrations
from mastwatch.store.postgres import MIGRATIONS_PACKAGE, PostgresStore, describe_url
from pg_fixtures import fresh_database
from store_contract import StoreContract, StoreFactory
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
