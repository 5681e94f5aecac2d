"""A throwaway PostgreSQL database per test, on the local server (127.0.0.1:5432).

The server is the real one `.ci/run` starts (trust authentication; the maintenance
database is ``test``). Outside CI a machine without PostgreSQL skips these tests, saying
so; in CI (CI=true) an unreachable server is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

PG_HOST = os.environ.get("MASTWATCH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MASTWATCH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MASTWATCH_TEST_PG_USER", "postgres")
ADMIN_DB = "test"


def pg_url(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(pg_url(ADMIN_DB), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL unreachable at {PG_HOST}:{PG_PORT} (database {ADMIN_DB}): {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it (.ci/run starts it)")
        pytest.skip(f"{reason}; not in CI, so the PostgreSQL tests are skipped")


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create a uniquely named empty database, yield its URL, drop it afterwards."""
    name = f"mastwatch_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield pg_url(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
