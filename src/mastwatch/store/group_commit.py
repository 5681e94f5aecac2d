"""Group commit: writes that arrive together go to the store in one transaction.

Hundreds of polls can finish within a few milliseconds of each other (every `run --once`,
every interval in which nothing changed), each storing its source's state. One write each
is one hand-off to the store's thread and one transaction each; the loop spends its time
waiting for the GIL that thread holds. Here each caller still returns only once its own
write is committed, but while one batch is being written the next gathers, so a burst
costs a handful of transactions instead of one per poll. The pipeline commits whole polls
(items, alerts, stories) the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


class GroupCommit(Generic[_T, _R]):
    """Batches ``write`` calls. ``write_many`` writes a batch in one transaction and
    returns one result per value, in order; if it fails, each value is retried alone with
    ``write_one``, so a value that cannot be written fails only its own caller."""

    def __init__(
        self,
        write_many: Callable[[Sequence[_T]], Awaitable[Sequence[_R]]],
        write_one: Callable[[_T], Awaitable[_R]],
    ) -> None:
        self._write_many = write_many
        self._write_one = write_one
        self._pending: list[tuple[_T, asyncio.Future[_R]]] = []
        self._draining: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (for tests and curiosity)

    async def write(self, value: _T) -> _R:
        """Return ``value``'s result once it is committed (or raise what writing it
        raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_R] = loop.create_future()
        self._pending.append((value, done))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await done

    async def flush(self) -> None:
        """Wait until every write asked for so far is done (before closing the store)."""
        while (draining := self._draining) is not None:
            # however the batch ends, its callers hear of it; closing goes on
            await asyncio.wait([draining])

    async def _drain(self) -> None:
        batch: list[tuple[_T, asyncio.Future[_R]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
                batch = []
        except BaseException:  # cancelled with the loop: no caller may wait for ever
            for _value, done in (*batch, *self._pending):
                done.cancel()
            self._pending = []
            raise
        finally:
            self._draining = None

    async def _write_batch(self, batch: list[tuple[_T, asyncio.Future[_R]]]) -> None:
        self.batches += 1
        try:
            results = await self._write_many([value for value, _done in batch])
        except Exception as exc:  # each value is tried alone below, which reports
            if len(batch) == 1:  # it was alone already: trying again would fail again
                _fail(batch[0][1], exc)
                return
            for value, done in batch:
                await self._write_alone(value, done)
            return
        for (_value, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)

    async def _write_alone(self, value: _T, done: asyncio.Future[_R]) -> None:
        try:
            result = await self._write_one(value)
        except Exception as exc:  # handed to the caller who asked
            _fail(done, exc)
        else:
            if not done.done():
                done.set_result(result)


def _fail(done: asyncio.Future[Any], exc: Exception) -> None:
    if not done.done():
        done.set_exception(exc)
