"""The parse executor: threads while the process pool starts, the pool once it is up."""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from mastwatch.sources.parsing import MAX_BATCH, Batcher, parse_executor

T = TypeVar("T")


def test_no_executor_for_zero_workers() -> None:
    assert parse_executor(0) is None


def test_backlog_waits_for_the_pool_instead_of_filling_the_threads() -> None:
    executor = parse_executor(2)
    assert executor is not None
    try:
        futures = [executor.submit(os.getpid) for _ in range(20)]
        pids = [future.result(timeout=30) for future in futures]
        later = executor.submit(os.getpid).result(timeout=30)
    finally:
        executor.shutdown()
    here = os.getpid()
    assert set(pids) - {here}  # the backlog went to the worker processes
    assert later != here  # once up, everything goes to the pool


def test_shutdown_before_the_pool_is_up_leaves_nothing_waiting() -> None:
    executor = parse_executor(1)
    assert executor is not None
    futures = [executor.submit(os.getpid) for _ in range(5)]
    executor.shutdown(wait=True, cancel_futures=True)
    assert all(future.done() for future in futures)


class CountingPool(ThreadPoolExecutor):
    """One worker thread that counts the tasks it was given."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.tasks = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.tasks += 1
        return super().submit(fn, *args, **kwargs)


def _fail() -> int:
    raise ValueError("bad body")


def test_calls_that_wait_for_a_busy_pool_go_out_together_in_order() -> None:
    pool = CountingPool()
    batcher = Batcher(pool, workers=1)  # two tasks in flight at most
    release = threading.Event()
    try:
        blocked = [batcher.submit(functools.partial(release.wait, 30)) for _ in range(2)]
        waiting = [batcher.submit(functools.partial(int, str(n))) for n in range(20)]
        failing = batcher.submit(_fail)
        assert pool.tasks == 2  # the rest wait for a task to finish
        release.set()
        assert [f.result(timeout=30) for f in waiting] == list(range(20))
        assert all(f.result(timeout=30) for f in blocked)
        with pytest.raises(ValueError, match="bad body"):
            failing.result(timeout=30)
    finally:
        pool.shutdown()
    assert pool.tasks == 2 + math.ceil(21 / MAX_BATCH)


def test_a_lone_call_to_an_idle_pool_goes_at_once_and_pending_ones_can_be_cancelled() -> None:
    pool = CountingPool()
    batcher = Batcher(pool, workers=1)
    release = threading.Event()
    try:
        assert batcher.submit(functools.partial(int, "7")).result(timeout=30) == 7
        busy = [batcher.submit(functools.partial(release.wait, 30)) for _ in range(2)]
        pending = batcher.submit(functools.partial(int, "8"))
        batcher.cancel_pending()
        release.set()
        assert all(f.result(timeout=30) for f in busy)
        assert pending.cancelled()
    finally:
        pool.shutdown()
