"""The SQLite store: the shared Store contract plus what only SQLite has (files, PRAGMAs)."""

from __future__ import annotations

import asyncio
import functools
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from mastwatch.errors import MastwatchError
from mastwatch.model import SourceState
from mastwatch.store.migrate import (
    Migration,
    MigrationError,
    MigrationTarget,
    load_migrations,
    migrate,
    pending,
)
from mastwatch.store.sqlite import MIGRATIONS_PACKAGE, SQLiteStore, StoreError
from store_contract import (
    T0,
    StoreContract,
    StoreFactory,
    assert_an_old_database_gains_empty_runs,
    at,
    make_item,
    make_poll,
)
from store_contract_policy import (
    DigestStoreContract,
    ReplicaPolicyContract,
    SilenceStoreContract,
    StoryStoreContract,
)

TESTS_DIR = Path(__file__).resolve().parents[1]
LATEST = len(load_migrations(MIGRATIONS_PACKAGE))  # the schema version a fresh file reaches


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "mastwatch.db"  # parent directories do not exist yet


@pytest.fixture
def store_factory(db_path: Path) -> StoreFactory:
    return functools.partial(SQLiteStore, db_path)


class TestSQLiteStoreContract(
    StoreContract,
    DigestStoreContract,
    SilenceStoreContract,
    StoryStoreContract,
    ReplicaPolicyContract,
):
    migrations_package = MIGRATIONS_PACKAGE
    integrity_error = sqlite3.IntegrityError


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the file with a separate plain connection, as an operator's sqlite3 shell would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def exercise(store: SQLiteStore) -> None:
    """A bit of every kind of write, so the file has something to check."""
    await store.commit_poll(make_poll(make_item("a"), make_item("b")), T0)
    await store.save_source_state(SourceState("other", etag='W/"x"'))
    first, second = await store.claim_deliveries(T0, 10, 30)
    await store.mark_sent(first.id, at(1), "ts=1")
    await store.mark_retry(second.id, at(60), "timeout")


# -- files, PRAGMAs, migrations ------------------------------------------------------------


async def test_open_creates_directory_and_records_each_migration_once(db_path: Path) -> None:
    async with SQLiteStore(db_path):
        pass
    recorded = query(db_path, "SELECT version, applied_at FROM schema_migrations ORDER BY 1")
    assert [version for version, _ in recorded] == [
        migration.version for migration in load_migrations(MIGRATIONS_PACKAGE)
    ]
    async with SQLiteStore(db_path):
        pass
    assert query(db_path, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") == (
        recorded
    )


async def test_file_is_in_wal_mode(db_path: Path) -> None:
    async with SQLiteStore(db_path):
        pass
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_two_processes_opening_a_new_file_at_once_both_succeed(db_path: Path) -> None:
    first, second = SQLiteStore(db_path), SQLiteStore(db_path)
    try:
        await asyncio.gather(first.open(), second.open())
        assert await first.schema_version() == await second.schema_version() == LATEST
    finally:
        await first.close()
        await second.close()
    assert query(db_path, "SELECT COUNT(*) FROM schema_migrations") == [(LATEST,)]


async def test_integrity_and_foreign_keys_hold_after_operations(db_path: Path) -> None:
    async with SQLiteStore(db_path) as store:
        await exercise(store)
        assert await store.outbox_counts() == {"pending": 1, "sent": 1, "failed": 0}
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert query(db_path, "PRAGMA foreign_key_check") == []


CRASHING_WRITER = """
import asyncio, os, signal, sys
sys.path.insert(0, sys.argv[2])
from store_contract import T0, make_item, make_poll
from mastwatch.store.sqlite import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1])
    await store.open()
    await store.commit_poll(make_poll(make_item("a")), T0)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint

asyncio.run(main())
"""


async def test_committed_poll_survives_sigkill(db_path: Path) -> None:
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_WRITER,
        str(db_path),
        str(TESTS_DIR),
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await writer.wait() == -signal.SIGKILL
    async with SQLiteStore(db_path) as store:
        assert await store.unseen_keys("mof-press", ["guid:a"]) == set()
        assert await store.outbox_counts() == {"pending": 1, "sent": 0, "failed": 0}
        assert await store.commit_poll(make_poll(make_item("a")), at(60)) == 0


async def test_times_are_stored_as_fixed_width_utc_text(db_path: Path) -> None:
    async with SQLiteStore(db_path) as store:
        await exercise(store)
    [(due_at, created_at)] = query(
        db_path, "SELECT due_at, created_at FROM deliveries WHERE state = 'pending'"
    )
    assert (due_at, created_at) == ("2025-03-01T09:01:00.000000Z", "2025-03-01T09:00:00.000000Z")


async def test_naive_datetimes_are_taken_as_utc(db_path: Path) -> None:
    async with SQLiteStore(db_path) as store:
        await store.save_source_state(
            SourceState("s", next_check_at=T0.replace(tzinfo=None))  # naive on purpose
        )
        assert (await store.get_source_state("s")).next_check_at == T0


@pytest.fixture
def corrupt_db(db_path: Path) -> Path:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database, just some text " * 200)
    return db_path


async def test_corrupt_file_fails_open_with_the_path(corrupt_db: Path) -> None:
    store = SQLiteStore(corrupt_db)
    with pytest.raises(StoreError, match=r"mastwatch\.db") as caught:
        await store.open()
    assert isinstance(caught.value, MastwatchError)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert not await store.ping()


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-dir"
    path.write_text("a file where the directory should be")
    return path


async def test_unusable_directory_fails_open_with_the_path(blocker: Path) -> None:
    with pytest.raises(StoreError, match="not-a-dir"):
        await SQLiteStore(blocker / "mastwatch.db").open()


async def test_using_a_store_that_is_not_open_is_a_store_error(db_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await SQLiteStore(db_path).get_source_state("s")


async def test_in_memory_store_works_for_quick_experiments() -> None:
    async with SQLiteStore(":memory:") as store:
        assert await store.commit_poll(make_poll(make_item("a")), T0) == 1
        assert await store.ping()


# -- the migration runner -------------------------------------------------------------------


def write_package(root: Path, name: str, files: dict[str, str]) -> str:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for file_name, text in files.items():
        (package / file_name).write_text(text, encoding="utf-8")
    return name


def test_load_migrations_orders_files_and_ignores_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = write_package(
        tmp_path,
        "migrations_ok",
        {"0002_more.sql": "SELECT 2;", "0001_first.sql": "SELECT 1;", "README.txt": "notes"},
    )
    assert load_migrations(package) == [
        Migration(1, "first", "SELECT 1;"),
        Migration(2, "more", "SELECT 2;"),
    ]


@pytest.mark.parametrize(
    ("package", "files", "message"),
    [
        ("migrations_gap", {"0001_a.sql": "", "0003_c.sql": ""}, "expected migration 0002"),
        ("migrations_twice", {"0001_a.sql": "", "0001_b.sql": ""}, "expected migration 0002"),
        ("migrations_bad_name", {"1_a.sql": ""}, "not NNNN_name.sql"),
    ],
)
def test_load_migrations_rejects_gaps_duplicates_and_bad_names(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    package: str,
    files: dict[str, str],
    message: str,
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    write_package(tmp_path, package, files)
    with pytest.raises(MigrationError, match=message):
        load_migrations(package)


async def test_migrate_applies_only_pending_versions_in_order() -> None:
    applied: list[int] = []
    steps = [Migration(3, "c", ""), Migration(1, "a", ""), Migration(2, "b", "")]

    async def applied_versions() -> set[int]:
        return {1}

    async def apply(migration: Migration) -> bool:
        applied.append(migration.version)
        return migration.version != 3  # version 3 "was applied by another process"

    done = await migrate(MigrationTarget(applied_versions, apply), steps)
    assert applied == [2, 3]
    assert [migration.version for migration in done] == [2]
    assert pending(steps, [1, 2, 3]) == []


async def test_a_database_from_before_empty_runs_gains_them_and_keeps_its_sources(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"

    async def downgrade() -> None:  # as a database written before schema version 7
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE sources DROP COLUMN empty_runs")
            conn.execute("DELETE FROM schema_migrations WHERE version = 7")

    await assert_an_old_database_gains_empty_runs(lambda: SQLiteStore(path), downgrade, 7)
