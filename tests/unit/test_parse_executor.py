"""The parse executor: threads while the process pool starts, the pool once it is up."""

from __future__ import annotations

import os

from mastwatch.sources.parsing import parse_executor


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
