"""The parse step as a picklable call, and the process pool that may run it.

The pipeline hands a :class:`ParseCall` to an executor: the loop's default thread pool, or
a process pool from :func:`parse_pool` so a cold cycle uses every core. This module is all
a parse worker needs to import (feeds, pages, keys, model), which the pool's fork server
loads once, so each worker starts warm instead of importing the daemon.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import (
    CancelledError,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mastwatch.sources.feed import ParsedFeed, parse_feed
from mastwatch.sources.page import PageSelectors, ParsedPage, parse_page
from mastwatch.sources.worker_rules import ItemMatches, RulesRef, mark_as_worker, match_in_worker

if TYPE_CHECKING:
    from mastwatch.sources.http import Fetched

T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


@dataclass(frozen=True)
class ParseCall:
    """A picklable parse call, so the executor may be a process pool. It carries the body
    and what parsing needs of the response, not the ``Fetched`` itself: unpickling that
    would make every worker import the HTTP client."""

    source_id: str
    body: bytes
    final_url: str
    http_charset: str | None = None
    content_type: str | None = None
    page: PageSelectors | None = None  # set for kind = "page"

    @classmethod
    def of(cls, source_id: str, fetched: Fetched, page: PageSelectors | None) -> ParseCall:
        return cls(
            source_id,
            fetched.body,
            fetched.final_url,
            fetched.http_charset,
            fetched.content_type,
            page,
        )

    def __call__(self) -> ParsedFeed | ParsedPage:
        if self.page is not None:
            return parse_page(
                self.body,
                source_id=self.source_id,
                selectors=self.page,
                http_charset=self.http_charset,
                base_url=self.page.base_url or self.final_url,
            )
        return parse_feed(
            self.body,
            source_id=self.source_id,
            http_charset=self.http_charset,
            content_type=self.content_type,
            base_url=self.final_url,
        )


@dataclass(frozen=True)
class ParseAndMatch:
    """A parse call whose items are matched too when it runs in a parse worker (see
    :mod:`mastwatch.sources.worker_rules`); in a thread it only parses."""

    parse: ParseCall
    rules: RulesRef
    source_tags: tuple[str, ...] = ()

    def __call__(self) -> tuple[ParsedFeed | ParsedPage, ItemMatches | None]:
        parsed = self.parse()
        return parsed, match_in_worker(self.rules, parsed.items, self.source_tags)


def resolve_workers(setting: int | str, cpus: int | None = None) -> int:
    """``parse_workers`` as a number: ``"auto"`` is one per CPU when there are several, and
    0 (parse in a thread) on a single CPU, where processes would only add overhead."""
    if isinstance(setting, int):
        return setting
    count = cpus if cpus is not None else (os.cpu_count() or 1)
    return count if count > 1 else 0


def parse_executor(workers: int) -> Executor | None:
    """Processes for feed parsing (CPU work that would otherwise share one core with the
    event loop), started on first use; ``None`` (0 workers) keeps parsing in the loop's
    default thread pool."""
    if workers <= 0:
        return None
    return StartingPool(parse_pool(workers), workers)


def parse_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool itself (no process starts until work is submitted)."""
    # forkserver, not fork: a forked worker would inherit the daemon's sockets (the web
    # endpoint, client connections), keeping them open after the daemon closes them. The
    # fork server imports this module once (the rules' matcher with it); workers fork from
    # it ready to parse and match.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_bind_worker_to_daemon,
        initargs=(os.getpid(),),
    )


def warm_up(pool: Executor, workers: int) -> None:
    """Start every worker now (in a thread: the first start waits for the fork server)."""
    pending: list[Future[int]] = [pool.submit(os.getpid) for _ in range(workers)]
    for future in pending:
        with contextlib.suppress(Exception):  # a pool shut down meanwhile: nothing to warm
            future.result()


class StartingPool(Executor):
    """The parse executor: the process pool once it has started, threads until then.

    Nothing starts until the first body needs parsing, so a cycle where every feed
    answers 304 pays nothing for the pool. That first parse starts the fork server and
    the workers in a thread (submitting to a pool that is starting would block the event
    loop while the fork server imports). Meanwhile up to ``workers`` parses run in threads
    and the rest wait, to go to the pool as soon as it is up: a cold cycle's hundreds of
    bodies must not all land in the thread queue because they arrived first.
    """

    def __init__(self, pool: ProcessPoolExecutor, workers: int) -> None:
        self._pool = pool
        self._workers = workers
        self._threads = ThreadPoolExecutor(workers + 1, thread_name_prefix="mastwatch-parse")
        self._lock = threading.RLock()  # a done-callback may run at once, in submit
        self._ready = False
        self._starting: Future[None] | None = None
        self._in_threads = 0
        self._waiting: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        call = functools.partial(fn, *args, **kwargs)
        with self._lock:
            if self._ready:
                return self._pool.submit(call)
            if self._starting is None:
                self._starting = self._threads.submit(warm_up, self._pool, self._workers)
                self._starting.add_done_callback(self._started)
            if self._in_threads < self._workers:
                self._in_threads += 1
                future = self._threads.submit(call)
                future.add_done_callback(self._thread_done)
                return future
            waiting: Future[T] = Future()
            self._waiting.append((waiting, call))
            return waiting

    def _thread_done(self, _: Future[Any]) -> None:
        with self._lock:
            self._in_threads -= 1

    def _started(self, _: Future[None]) -> None:
        with self._lock:
            self._ready = True
            waiting, self._waiting = self._waiting, []
        for outer, call in waiting:
            if outer.set_running_or_notify_cancel():
                _chain(self._pool.submit(call), outer)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)  # a start included
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for outer, _ in waiting:
            outer.cancel()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _chain(inner: Future[Any], outer: Future[Any]) -> None:
    def copy(done: Future[Any]) -> None:
        if done.cancelled():
            outer.set_exception(CancelledError())
        elif (error := done.exception()) is not None:
            outer.set_exception(error)
        else:
            outer.set_result(done.result())

    inner.add_done_callback(copy)


def _bind_worker_to_daemon(daemon_pid: int) -> None:
    """Runs in each parse worker, a child of the fork server, not of the daemon.

    A daemon killed with SIGKILL runs no clean-up, and a worker waiting for work would
    wait for ever (and keep the fork server alive through the pipe it shares with it). So
    a thread waits for the daemon's exit and ends the worker then; the fork server, its
    last client gone, exits too, and PDEATHSIG ends a worker whose fork server is killed.
    It is marked as a worker, so that it matches what it parses. Ctrl-C and a stop signal
    sent to the whole process group are the daemon's to handle (it shuts the pool down),
    so workers ignore them rather than die mid-parse. Workers only parse and match, and
    never log, so they are detached from the daemon's output too."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    mark_as_worker()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    threading.Thread(target=_exit_with, args=(daemon_pid,), daemon=True).start()


def _exit_with(daemon_pid: int) -> None:
    """End this process as soon as ``daemon_pid`` has exited."""
    try:
        pidfd = os.pidfd_open(daemon_pid)
    except OSError:  # already gone, or a kernel without pidfd: poll instead
        while _alive(daemon_pid):
            time.sleep(1.0)
    else:
        select.select([pidfd], [], [])  # readable once the process has exited
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: not ours any more
        return False
    return True
