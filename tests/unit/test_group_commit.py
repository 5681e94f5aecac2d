"""Group commit (store.group_commit) on its own and in the SQLite store: writes arriving
together share transactions, every caller returns only once its own write is stored, and a
value that cannot be written fails only its own caller."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from mastwatch.model import SourceState
from mastwatch.store.group_commit import GroupCommit
from mastwatch.store.sqlite import SQLiteStore


class Ledger:
    """A store stand-in: a batch is written only after a hand-off (as to a thread)."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.refuse = refuse
        self.batches: list[list[int]] = []
        self.stored: list[int] = []

    async def write_many(self, values: Sequence[int]) -> list[int]:
        await asyncio.sleep(0.01)
        if self.refuse & set(values):
            raise ValueError("a refused value in the batch: nothing written")
        self.batches.append(list(values))
        self.stored.extend(values)
        return [-value for value in values]  # a result per value: where it was stored

    async def write_one(self, value: int) -> int:
        await asyncio.sleep(0)
        if value in self.refuse:
            raise ValueError(f"cannot write {value}")
        self.stored.append(value)
        return -value


async def test_writes_arriving_together_share_a_few_batches() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write_many, ledger.write_one)
    results = await asyncio.gather(*(commits.write(n) for n in range(300)))
    assert sorted(ledger.stored) == list(range(300))
    assert results == [-n for n in range(300)]  # each caller gets its own value's result
    # the first batch goes out alone, everything arriving meanwhile goes in the next one
    assert len(ledger.batches) <= 3
    assert commits.batches == len(ledger.batches)


async def test_a_caller_returns_only_once_its_value_is_written() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write_many, ledger.write_one)
    await commits.write(7)
    assert ledger.stored == [7]


async def test_a_value_that_cannot_be_written_fails_only_its_own_caller() -> None:
    ledger = Ledger(refuse=frozenset({13}))
    commits = GroupCommit(ledger.write_many, ledger.write_one)
    results = await asyncio.gather(*(commits.write(n) for n in range(20)), return_exceptions=True)
    failed = [n for n, result in enumerate(results) if isinstance(result, Exception)]
    assert failed == [13]
    assert "cannot write 13" in str(results[13])
    assert results[12] == -12  # written alone after the batch failed, with its result
    assert sorted(ledger.stored) == [n for n in range(20) if n != 13]


async def test_a_value_written_alone_that_fails_is_not_tried_again() -> None:
    ledger = Ledger(refuse=frozenset({5}))
    alone: list[int] = []

    async def write_one(value: int) -> int:
        alone.append(value)
        return await ledger.write_one(value)

    commits = GroupCommit(ledger.write_many, write_one)
    with pytest.raises(ValueError, match="a refused value in the batch"):
        await commits.write(5)  # a batch of one, refused: its caller hears at once
    assert alone == []
    assert ledger.stored == []


async def test_flush_waits_for_writes_in_flight() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write_many, ledger.write_one)
    writers = [asyncio.create_task(commits.write(n)) for n in range(5)]
    await asyncio.sleep(0)  # the writes are queued, none is stored yet
    assert ledger.stored == []
    await commits.flush()
    assert sorted(ledger.stored) == list(range(5))
    await asyncio.gather(*writers)


async def test_sqlite_store_saves_states_of_concurrent_polls_in_few_transactions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        states = [SourceState(f"source-{n:03}", etag=f'"{n}"', error_count=n) for n in range(200)]
        await asyncio.gather(*(store.save_source_state(state) for state in states))
        assert store._state_writes.batches < 20
        stored = {s.source_id: s for s in await store.list_source_states()}
    assert [stored[s.source_id].etag for s in states] == [s.etag for s in states]
    conn = sqlite3.connect(path)  # and on disk, for another process
    try:
        assert conn.execute("SELECT count(*) FROM sources").fetchone() == (200,)
    finally:
        conn.close()


async def test_sqlite_store_one_unwritable_state_fails_alone(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        good = [SourceState(f"source-{n}") for n in range(10)]
        # a list cannot be bound as an SQL parameter: this row cannot be written
        bad = SourceState("source-bad", etag=["not", "text"])  # type: ignore[arg-type]
        results = await asyncio.gather(
            *(store.save_source_state(s) for s in [*good[:5], bad, *good[5:]]),
            return_exceptions=True,
        )
        assert [isinstance(r, sqlite3.Error) for r in results] == [False] * 5 + [True] + [False] * 5
        stored = {s.source_id for s in await store.list_source_states()}
    assert stored == {s.source_id for s in good}


@pytest.mark.parametrize("count", [1, 50])
async def test_closing_the_store_waits_for_queued_state_writes(tmp_path: Path, count: int) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    await store.open()
    writers = [
        asyncio.create_task(store.save_source_state(SourceState(f"s{n}"))) for n in range(count)
    ]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*writers)
    async with SQLiteStore(path) as reopened:
        assert len(await reopened.list_source_states()) == count


async def test_a_cancelled_batch_cancels_its_callers_and_flush_still_returns() -> None:
    never = asyncio.Event()

    async def write_many(values: Sequence[int]) -> list[None]:
        await never.wait()
        return []

    async def write_one(value: int) -> None:
        await never.wait()

    commits = GroupCommit(write_many, write_one)
    writers = [asyncio.create_task(commits.write(n)) for n in range(3)]
    await asyncio.sleep(0.01)  # the batch is being written, and hangs
    assert commits._draining is not None
    commits._draining.cancel()  # as when the loop shuts down
    await commits.flush()  # returns: closing the store must not hang or raise
    results = await asyncio.gather(*writers, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
