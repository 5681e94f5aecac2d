"""The SQLite store: one file, one connection, one worker thread.

Every statement runs on a single dedicated thread (a one-worker executor), so the event
loop never blocks on disk and the connection is never shared between threads at once.
Writes take ``BEGIN IMMEDIATE`` so two processes on the same file serialise at the start
of a transaction instead of failing halfway with ``SQLITE_BUSY``.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A committed transaction is
in the WAL file (in the OS page cache) before ``COMMIT`` returns, so a process crash or
SIGKILL loses nothing: the kernel still writes those pages out, and the next open replays
the WAL. ``FULL`` would add an fsync per commit, which only matters when the whole machine
loses power or the kernel panics: then the last few commits (since the last checkpoint
fsync) can be rolled back, though the database never corrupts. For an alerting daemon
that re-polls its sources, that rare loss means a re-sent or re-detected alert at worst,
not worth an fsync on every poll.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Concatenate, Final, ParamSpec, Self, TypeVar

import structlog

from mastwatch.model import (
    Alert,
    Delivery,
    DigestEntry,
    Item,
    Message,
    PolicyRows,
    PollResult,
    Silence,
    SourceState,
    Story,
)
from mastwatch.store import _sqlite_digest as dg
from mastwatch.store import _sqlite_ops as ops
from mastwatch.store import _sqlite_policy as policy
from mastwatch.store.base import Replica, StoreError
from mastwatch.store.group_commit import GroupCommit
from mastwatch.store.migrate import Migration, MigrationTarget, load_migrations, migrate

log = structlog.get_logger(__name__)

MIGRATIONS_PACKAGE: Final = "mastwatch.store.migrations.sqlite"
_MEMORY: Final = ":memory:"

_P = ParamSpec("_P")
_T = TypeVar("_T")


__all__ = ["MIGRATIONS_PACKAGE", "SQLiteStore", "StoreError"]


class SQLiteStore:
    """The :class:`~mastwatch.store.base.Store` on an embedded SQLite file.

    Delivery is at least once: ``claim_deliveries`` leases rows for ``lease_seconds``.
    If the worker dies mid-send (or the send outlives the lease) the lease expires and the
    delivery becomes claimable again, so a message that did go out may go out twice. That
    is the one duplicate the outbox allows; losing a message is never allowed.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path if str(path) == _MEMORY else Path(path)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.applied_migrations: list[Migration] = []  # by the last open()
        # polls ending together store their states in one transaction (group commit)
        self._state_writes = GroupCommit(self._save_source_states, self._save_one_source_state)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file (and its directory) if missing, connect, apply migrations."""
        if self._conn is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastwatch-sqlite")
        try:
            self._conn = await self._on_worker(_connect, self.path)
            applied = await migrate(self._migration_target(), load_migrations(MIGRATIONS_PACKAGE))
            self.applied_migrations = applied
        except BaseException as exc:
            await self.close()  # never leave a half-open store or an orphan worker thread
            if isinstance(exc, sqlite3.Error | OSError):
                raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
            raise
        log.info(
            "store_opened",
            backend="sqlite",
            path=str(self.path),
            migrations_applied=[migration.version for migration in applied],
        )

    async def close(self) -> None:
        """Close the connection and stop the worker thread; safe to call twice."""
        if self._executor is not None:
            await self._state_writes.flush()
        conn, executor = self._conn, self._executor
        self._conn, self._executor = None, None
        if executor is None:
            return
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        # The worker is idle now, so joining it returns at once.
        executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> bool:
        """True when the database answers ``SELECT 1``."""
        if self._conn is None:
            return False
        try:
            return await self._call(ops.ping)
        except sqlite3.Error:
            return False

    def describe(self) -> str:
        """The file path (for ``status`` and logs)."""
        return f"sqlite {self.path}"

    async def schema_version(self) -> int:
        """The highest migration version applied to this file (0 for none)."""
        return await self._call(ops.schema_version)

    # -- sources and items -----------------------------------------------------------------

    async def get_source_state(self, source_id: str) -> SourceState:
        """The stored state, or a fresh ``SourceState`` for a source never polled."""
        return await self._call(ops.get_source_state, source_id)

    async def save_source_state(self, state: SourceState) -> None:
        """Persist state alone (after a failed or not-modified poll)."""
        await self._state_writes.write(state)

    async def _save_source_states(self, states: Sequence[SourceState]) -> list[None]:
        await self._call(ops.save_source_states, list(states))
        return [None] * len(states)

    async def _save_one_source_state(self, state: SourceState) -> None:
        await self._call(ops.save_source_state, state)

    async def list_source_states(self) -> list[SourceState]:
        """Every stored source state, ordered by source id (for ``status``)."""
        return await self._call(ops.list_source_states)

    async def unseen_keys(self, source_id: str, keys: Iterable[str]) -> set[str]:
        """The item keys of ``keys`` not yet recorded for this source."""
        return await self._call(ops.unseen_keys, source_id, list(keys))

    async def seen_content_hashes(self, source_id: str, hashes: Iterable[str]) -> set[str]:
        """The content hashes of ``hashes`` some recorded item of this source already has."""
        return await self._call(ops.seen_content_hashes, source_id, list(hashes))

    async def known_items(
        self, source_id: str, keys: Iterable[str], hashes: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        """(unseen keys, seen hashes) in one trip to the store thread: a cold cycle makes
        one per poll, and every hand-off to that thread costs the event loop the GIL."""
        return await self._call(ops.known_items, source_id, list(keys), list(hashes))

    async def commit_poll(self, result: PollResult, now: datetime) -> int:
        """Save state, record items and enqueue the new items' alerts in one transaction.

        Only an outbox entry whose item this very call inserted is enqueued (one delivery
        per receiver, due at ``now``), so a poll repeated after a restart, or raced by a
        second replica, enqueues nothing. Any error rolls back everything, items included,
        so the next poll sees the same items as new and tries again.
        """
        enqueued = await self._call(ops.commit_poll, result, now)
        log.debug(
            "store_poll_committed",
            source_id=result.state.source_id,
            items=len(result.items),
            enqueued=enqueued,
        )
        return enqueued

    async def commit_polls(self, polls: Sequence[tuple[PollResult, datetime]]) -> list[int]:
        """Several polls' ``commit_poll`` in one transaction, one trip to the store thread."""
        enqueued = await self._call(ops.commit_polls, list(polls))
        log.debug("store_polls_committed", polls=len(polls), enqueued=sum(enqueued))
        return enqueued

    # -- outbox ----------------------------------------------------------------------------

    async def claim_deliveries(
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Delivery]:
        """Lease up to ``limit`` pending deliveries due at ``now``, oldest due first.

        A leased row is invisible to other claimers until ``now + lease_seconds``. The
        caller must mark it sent, retry or failed before then; if it crashes instead, the
        lease simply expires and the delivery is claimed again (at-least-once delivery).
        """
        if limit <= 0:
            return []  # SQLite reads LIMIT -1 as "no limit"
        lease_until = now + timedelta(seconds=lease_seconds)
        return await self._call(ops.claim_deliveries, now, limit, lease_until, owner)

    async def mark_sent(self, delivery_id: int, now: datetime, detail: str | None = None) -> None:
        """Record a successful send (counts the attempt, keeps ``detail`` such as a ts)."""
        await self._mark(ops.mark_sent, delivery_id, now, detail)

    async def mark_retry(self, delivery_id: int, at: datetime, error: str) -> None:
        """Count an attempt, release the lease and schedule the next try at ``at``."""
        await self._mark(ops.mark_retry, delivery_id, at, error)

    async def mark_failed(self, delivery_id: int, now: datetime, error: str) -> None:
        """A permanent failure: never retried, kept for operators to see."""
        await self._mark(ops.mark_failed, delivery_id, now, error)

    async def next_delivery_due(self) -> datetime | None:
        """When the earliest pending delivery becomes claimable (a lease counts)."""
        return await self._call(ops.next_delivery_due)

    async def outbox_counts(self) -> dict[str, int]:
        """Number of deliveries per state; every state is present, zero included."""
        return await self._call(ops.outbox_counts)

    async def delivery_rows(self) -> list[Delivery]:
        """Every delivery whatever its state, in id order (for tests and ``status``)."""
        return await self._call(ops.delivery_rows)

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """The ``limit`` most recently created alerts, newest first."""
        return await self._call(ops.recent_alerts, limit)

    async def alerts_since(self, since: datetime) -> list[Alert]:
        """Alerts created at or after ``since``, oldest first (``mastwatch alerts``)."""
        return await self._call(ops.alerts_since, since)

    async def items_since(self, since: datetime) -> list[tuple[Item, datetime]]:
        """Items first seen at or after ``since`` with that time (``mastwatch replay``)."""
        return await self._call(ops.items_since, since)

    async def delivery_states(
        self, alert_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        """Each alert's deliveries as (channel, target, state): what was sent where."""
        return await self._call(ops.delivery_states, list(alert_ids))

    # -- alert policy: stories, thread parents (issue 5, P1) --------------------------------

    async def policy_rows(
        self, now: datetime, story_window: float, rule_ids: Iterable[str]
    ) -> PolicyRows:
        """Live stories, who has each, rules' last alerts per story, hourly counts and
        active silences, in one trip to the store thread (each trip costs the event loop
        the GIL while other threads work)."""
        return await self._call(_read_before_decide, now, story_window, list(rule_ids))

    async def story_parent(
        self, story_id: str, channel: str, target: str
    ) -> tuple[str, str | None] | None:
        """The story's newest parent message for this receiver as (state, ts), or None."""
        return await self._call(policy.story_parent, story_id, channel, target)

    async def defer_delivery(self, delivery_id: int, at: datetime) -> None:
        """Release a claimed delivery until ``at`` without counting an attempt."""
        await self._call(policy.defer_delivery, delivery_id, at)

    @asynccontextmanager
    async def policy_lock(self) -> AsyncIterator[None]:
        """Nothing to take: the daemon's pipeline lock serialises its own decisions, and
        SQLite is one daemon's store (processes sharing a file may race, see docs)."""
        yield

    async def stories_since(self, since: datetime) -> list[Story]:
        """Stories seen at or after ``since``, most recent first."""
        return await self._call(policy.stories_since, since)

    async def alert_disposition(self, alert_id: str) -> tuple[str | None, str] | None:
        """(story id, disposition) of a recorded alert, or None."""
        return await self._call(policy.alert_disposition, alert_id)

    # -- digests, silences, notices, messages outbox (issue 5, P2) ---------------------------

    async def waiting_digest_entries(self, digest_id: str, before: datetime) -> list[DigestEntry]:
        """Entries of ``digest_id`` queued before ``before`` that no digest has taken yet."""
        return await self._call(dg.waiting_digest_entries, digest_id, before)

    async def claim_digest(
        self,
        digest_id: str,
        period: tuple[datetime, datetime],
        alert_ids: Sequence[str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        """Claim the period (unique per digest and start), take the entries, enqueue the
        messages, in one transaction; False (nothing written) if it was claimed before."""
        return await self._call(
            dg.claim_digest, digest_id, period, list(alert_ids), list(messages), now
        )

    async def digest_claims(self, digest_id: str) -> list[tuple[datetime, int]]:
        """(period start, entries) of every period of ``digest_id`` sent so far."""
        return await self._call(dg.digest_claims, digest_id)

    async def add_silence(self, silence: Silence) -> None:
        await self._call(dg.add_silence, silence)

    async def list_silences(self, now: datetime, *, expired: bool = False) -> list[Silence]:
        """Silences not ended at ``now`` (pending ones included), or all with ``expired``."""
        return await self._call(dg.list_silences, now, expired=expired)

    async def active_silences(self, now: datetime) -> list[Silence]:
        return await self._call(dg.active_silences, now)

    async def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence at ``now``; False for an unknown or already ended one."""
        return await self._call(dg.expire_silence, silence_id, now)

    async def set_notice(
        self,
        key: str,
        active: bool,
        text: tuple[str, str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        """Raise or clear notice ``key`` and enqueue ``messages`` only if that changes its
        state (one transaction); True when it did."""
        return await self._call(dg.set_notice, key, active, text, list(messages), now)

    async def active_notices(self) -> list[tuple[str, str, datetime]]:
        """(key, subject, raised at) of every notice currently raised."""
        return await self._call(dg.active_notices)

    async def claim_messages(
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Message]:
        """Lease up to ``limit`` pending messages due at ``now`` (like claim_deliveries)."""
        if limit <= 0:
            return []
        lease_until = now + timedelta(seconds=lease_seconds)
        return await self._call(dg.claim_messages, now, limit, lease_until, owner)

    async def mark_message(
        self, message_id: int, outcome: str, at: datetime, text: str | None = None
    ) -> None:
        """``outcome`` is "sent", "retry" (``at`` = next try) or "failed"."""
        if not await self._call(dg.mark_message, message_id, outcome, at, text):
            log.warning("store_mark_ignored", message_id=message_id, update=outcome)

    async def message_rows(self) -> list[tuple[Message, str]]:
        """Every message with its state, in id order (tests and ``status``)."""
        return await self._call(dg.message_rows)

    async def message_counts(self) -> dict[tuple[str, str], int]:
        """Messages per (kind, state); every pair present, zero included."""
        return await self._call(dg.message_counts)

    # -- coordination of replicas (see store.base.CoordinationStore) -----------------------

    async def claim_source(
        self,
        source_id: str,
        owner: str,
        now: datetime,
        lease_seconds: float,
        due_tolerance: float | None,
    ) -> SourceState | None:
        """Lease the source to ``owner`` if it is due and nobody else holds it."""
        lease_until = now + timedelta(seconds=lease_seconds)
        due_before = None if due_tolerance is None else now + timedelta(seconds=due_tolerance)
        return await self._call(
            ops.claim_source,
            source_id,
            owner,
            now=now,
            lease_until=lease_until,
            due_before=due_before,
        )

    async def release_source(self, source_id: str, owner: str) -> None:
        await self._call(ops.release_source, source_id, owner)

    async def heartbeat(self, replica_id: str, now: datetime, info: Mapping[str, str]) -> None:
        await self._call(ops.heartbeat, replica_id, now, info)

    async def live_replicas(self, now: datetime, ttl: float) -> list[Replica]:
        return await self._call(ops.live_replicas, now, now - timedelta(seconds=ttl))

    async def forget_replica(self, replica_id: str) -> None:
        await self._call(ops.forget_replica, replica_id)

    # -- plumbing --------------------------------------------------------------------------

    async def _mark(
        self,
        update: Callable[[sqlite3.Connection, int, datetime, str | None], bool],
        delivery_id: int,
        at: datetime,
        text: str | None,
    ) -> None:
        if not await self._call(update, delivery_id, at, text):
            # Unknown id, or the row was already settled by another worker whose lease
            # expired on us: the first outcome stands.
            log.warning("store_mark_ignored", delivery_id=delivery_id, update=update.__name__)

    def _migration_target(self) -> MigrationTarget:
        async def applied_versions() -> set[int]:
            return await self._call(ops.applied_versions)

        async def apply(migration: Migration) -> bool:
            # The one clock read in the store: bookkeeping for operators, not data.
            applied_at = ops.to_text(datetime.now(UTC))
            applied = await self._call(ops.apply_migration, migration, applied_at)
            if applied:
                log.info("store_migration_applied", version=migration.version, name=migration.name)
            return applied

        return MigrationTarget(applied_versions=applied_versions, apply=apply)

    async def _call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(connection, *args)`` on the worker thread."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"SQLite store {self.path} is not open")
        return await self._on_worker(fn, conn, *args, **kwargs)

    async def _on_worker(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        executor = self._executor
        if executor is None:
            raise StoreError(f"SQLite store {self.path} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


def _read_before_decide(
    conn: sqlite3.Connection, now: datetime, story_window: float, rule_ids: list[str]
) -> PolicyRows:
    rows = policy.policy_rows(conn, now, story_window, rule_ids)
    return replace(rows, silences=tuple(dg.active_silences(conn, now)))


def _connect(path: Path | str) -> sqlite3.Connection:
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, timeout=ops.BUSY_TIMEOUT_MS / 1000
    )
    try:
        ops.configure(conn, wal=str(path) != _MEMORY)
    except sqlite3.Error:
        conn.close()
        raise
    return conn
