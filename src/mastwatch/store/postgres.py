"""The PostgreSQL store: several replicas share one database (HA mode).

asyncpg, through a small connection pool. Every method is one statement or one
transaction (:meth:`PostgresStore._tx`), so adding a method means writing its SQL and a
few lines around :meth:`_fetch`/:meth:`_execute`. Times are ``TIMESTAMPTZ`` and come back
aware UTC. Concurrency comes from the database, never from the replicas talking:

- migrations run under ``pg_advisory_xact_lock``, so replicas starting at once apply each
  version exactly once;
- a source is polled only by the replica whose lease on it (``claim_source``, one
  conditional ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING``) is unexpired;
- deliveries are claimed with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never
  wait for nor share a row; a lease that expires makes the delivery claimable again.

The connection URL may hold a password: it is a secret, never logged. Logs and
``status`` show only :meth:`describe` (host, port and database).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self, TypeAlias
from urllib.parse import urlsplit

import asyncpg
import structlog

from mastwatch.model import (
    Alert,
    Delivery,
    DeliveryState,
    DigestEntry,
    Item,
    Message,
    PolicyRows,
    PollResult,
    Receiver,
    Silence,
    SourceState,
    Story,
)
from mastwatch.store import _pg_policy as pgp
from mastwatch.store import rows
from mastwatch.store.base import Replica, StoreError
from mastwatch.store.migrate import Migration, MigrationTarget, load_migrations, migrate

log = structlog.get_logger(__name__)

ACTIVE_SILENCES: Final = (
    pgp.SELECT_SILENCE + " WHERE starts_at <= $1 AND ends_at > $1 ORDER BY created_at, id"
)

MIGRATIONS_PACKAGE: Final = "mastwatch.store.migrations.postgres"
# pg_advisory_xact_lock key for schema changes: any constant every replica agrees on
MIGRATION_LOCK_KEY: Final = 0x6D61_7374_7761_7463  # "mastwatc"
# pg_advisory_lock key held across decide-and-commit of a poll with matches (policy_lock)
POLICY_LOCK_KEY: Final = 0x6D61_7374_706F_6C69  # "mastpoli"
POLICY_LOCK_WAIT: Final = 5.0  # seconds; then a poll decides without it (and logs so)
POOL_MAX_SIZE: Final = 8
CONNECT_TIMEOUT: Final = 10.0

# asyncpg.Record reads like a mapping; asyncpg ships no type hints
Row: TypeAlias = Mapping[str, Any]


def describe_url(url: str) -> str:
    """``postgresql host:port/db``: what a URL points at, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    database = parts.path.lstrip("/") or "(default)"
    return f"postgresql {host}{port}/{database}"


def _utc(moment: datetime) -> datetime:
    """A naive datetime is taken to be UTC already (as the SQLite store does)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _opt_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


class PostgresStore:
    """The :class:`~mastwatch.store.base.Store` on a PostgreSQL database (asyncpg).

    Delivery is at least once, as with SQLite: a worker that dies mid-send leaves its lease
    to expire, and the delivery is then claimed again, possibly by another replica.
    """

    def __init__(self, url: str, *, pool_max_size: int = POOL_MAX_SIZE) -> None:
        self._url = url  # a secret: never logged, never in an exception message
        self._pool_max_size = pool_max_size
        self._pool: asyncpg.Pool | None = None
        self.applied_migrations: list[Migration] = []  # by the last open()

    def __repr__(self) -> str:
        return f"PostgresStore({self.describe()!r})"

    def describe(self) -> str:
        return describe_url(self._url)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a small pool) and apply pending migrations."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self._url, min_size=1, max_size=self._pool_max_size, timeout=CONNECT_TIMEOUT
            )
            applied = await migrate(self._migration_target(), load_migrations(MIGRATIONS_PACKAGE))
            self.applied_migrations = applied
        except BaseException as exc:
            await self.close()
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                # the message of a connection error never holds the password
                raise StoreError(f"cannot open {self.describe()}: {exc}") from None
            raise
        log.info(
            "store_opened",
            backend="postgresql",
            database=self.describe(),
            migrations_applied=[migration.version for migration in applied],
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

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
        if self._pool is None:
            return False
        try:
            return bool(await self._fetchval("SELECT 1") == 1)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return False

    async def schema_version(self) -> int:
        return int(await self._fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    # -- sources and items -----------------------------------------------------------------

    async def get_source_state(self, source_id: str) -> SourceState:
        row = await self._fetchrow(SELECT_STATE + " WHERE source_id = $1", source_id)
        return SourceState(source_id) if row is None else state_from_row(row)

    async def save_source_state(self, state: SourceState) -> None:
        await self._execute(UPSERT_STATE, *state_args(state))

    async def list_source_states(self) -> list[SourceState]:
        return [state_from_row(row) for row in await self._fetch(SELECT_STATE + " ORDER BY 1")]

    async def unseen_keys(self, source_id: str, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        rows = await self._fetch(
            "SELECT item_key FROM items WHERE source_id = $1 AND item_key = ANY($2::text[])",
            source_id,
            list(wanted),
        )
        return wanted - {row["item_key"] for row in rows}

    async def seen_content_hashes(self, source_id: str, hashes: Iterable[str]) -> set[str]:
        rows = await self._fetch(
            "SELECT DISTINCT content_hash FROM items"
            " WHERE source_id = $1 AND content_hash = ANY($2::text[])",
            source_id,
            list(set(hashes)),
        )
        return {row["content_hash"] for row in rows}

    async def known_items(
        self, source_id: str, keys: Iterable[str], hashes: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        return await self.unseen_keys(source_id, keys), await self.seen_content_hashes(
            source_id, hashes
        )

    async def commit_poll(self, result: PollResult, now: datetime) -> int:
        """State, new items and their alerts' deliveries in one transaction (see Store)."""
        async with self._tx() as conn:
            enqueued = await _write_poll(conn, result, _utc(now))
        log.debug(
            "store_poll_committed",
            source_id=result.state.source_id,
            items=len(result.items),
            enqueued=enqueued,
        )
        return enqueued

    async def commit_polls(self, polls: Sequence[tuple[PollResult, datetime]]) -> list[int]:
        """Several polls' ``commit_poll`` in one transaction (see Store)."""
        async with self._tx() as conn:
            enqueued = [await _write_poll(conn, result, _utc(now)) for result, now in polls]
        log.debug("store_polls_committed", polls=len(polls), enqueued=sum(enqueued))
        return enqueued

    # -- outbox ----------------------------------------------------------------------------

    async def claim_deliveries(
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Delivery]:
        """Lease up to ``limit`` due deliveries; rows another claimer has locked are skipped."""
        if limit <= 0:
            return []
        now = _utc(now)
        async with self._tx() as conn:
            ids = await conn.fetch(
                CLAIM_DELIVERIES, now, limit, now + timedelta(seconds=lease_seconds), owner
            )
            rows = await conn.fetch(
                DELIVERY_SELECT + " WHERE d.id = ANY($1::bigint[]) ORDER BY d.due_at, d.id",
                [row["id"] for row in ids],
            )
        return [delivery_from_row(row) for row in rows]

    async def mark_sent(self, delivery_id: int, now: datetime, detail: str | None = None) -> None:
        await self._mark(
            "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = $2,"
            " detail = $3, lease_until = NULL, lease_owner = NULL"
            " WHERE id = $1 AND state != 'sent'",
            delivery_id,
            _utc(now),
            detail,
        )

    async def mark_retry(self, delivery_id: int, at: datetime, error: str) -> None:
        await self._mark(
            "UPDATE deliveries SET attempts = attempts + 1, due_at = $2, lease_until = NULL,"
            " lease_owner = NULL, last_error = $3 WHERE id = $1 AND state = 'pending'",
            delivery_id,
            _utc(at),
            error,
        )

    async def mark_failed(self, delivery_id: int, now: datetime, error: str) -> None:
        await self._mark(
            "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, lease_until = NULL,"
            " lease_owner = NULL, failed_at = $2, last_error = $3"
            " WHERE id = $1 AND state = 'pending'",
            delivery_id,
            _utc(now),
            error,
        )

    async def next_delivery_due(self) -> datetime | None:
        value: datetime | None = await self._fetchval(
            "SELECT MIN(GREATEST(due_at, COALESCE(lease_until, due_at)))"
            " FROM deliveries WHERE state = 'pending'"
        )
        return value

    async def outbox_counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in DeliveryState}
        for row in await self._fetch("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY 1"):
            counts[row["state"]] = int(row["n"])
        return counts

    async def delivery_rows(self) -> list[Delivery]:
        return [
            delivery_from_row(row) for row in await self._fetch(DELIVERY_SELECT + " ORDER BY 1")
        ]

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        rows = await self._fetch(SELECT_ALERT + " ORDER BY created_at DESC, id LIMIT $1", limit)
        return [alert_from_row(row) for row in rows]

    async def alerts_since(self, since: datetime) -> list[Alert]:
        rows = await self._fetch(
            SELECT_ALERT + " WHERE created_at >= $1 ORDER BY created_at, id", _utc(since)
        )
        return [alert_from_row(row) for row in rows]

    async def items_since(self, since: datetime) -> list[tuple[Item, datetime]]:
        rows = await self._fetch(
            "SELECT source_id, item_key, title, link, guid, published, first_seen_at, summary,"
            " content FROM items WHERE first_seen_at >= $1"
            " ORDER BY first_seen_at, source_id, item_key",
            _utc(since),
        )
        return [(item_from_row(row), row["first_seen_at"]) for row in rows]

    async def delivery_states(
        self, alert_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        found: dict[str, list[tuple[str, str, str]]] = {alert_id: [] for alert_id in alert_ids}
        rows = await self._fetch(
            "SELECT alert_id, channel, target, state FROM deliveries"
            " WHERE alert_id = ANY($1::text[]) ORDER BY id",
            list(alert_ids),
        )
        for row in rows:
            found[row["alert_id"]].append((row["channel"], row["target"], row["state"]))
        return found

    # -- coordination of replicas (see store.base.CoordinationStore) -----------------------

    async def claim_source(
        self,
        source_id: str,
        owner: str,
        now: datetime,
        lease_seconds: float,
        due_tolerance: float | None,
    ) -> SourceState | None:
        """One conditional upsert: it takes the row lock, so two claimers cannot both win."""
        now = _utc(now)
        due_before = None if due_tolerance is None else now + timedelta(seconds=due_tolerance)
        row = await self._fetchrow(
            CLAIM_SOURCE,
            source_id,
            owner,
            now + timedelta(seconds=lease_seconds),
            now,
            due_before,
        )
        return None if row is None else state_from_row(row)

    async def release_source(self, source_id: str, owner: str) -> None:
        await self._execute(
            "UPDATE sources SET lease_owner = NULL, lease_until = NULL"
            " WHERE source_id = $1 AND lease_owner = $2",
            source_id,
            owner,
        )

    async def heartbeat(self, replica_id: str, now: datetime, info: Mapping[str, str]) -> None:
        await self._execute(
            "INSERT INTO replicas (replica_id, started_at, last_seen, info) VALUES ($1, $2, $2, $3)"
            " ON CONFLICT (replica_id) DO UPDATE SET last_seen = excluded.last_seen,"
            " info = excluded.info",
            replica_id,
            _utc(now),
            json.dumps(dict(info), sort_keys=True),
        )

    async def live_replicas(self, now: datetime, ttl: float) -> list[Replica]:
        now = _utc(now)
        rows = await self._fetch(LIVE_REPLICAS, now, now - timedelta(seconds=ttl))
        return [
            Replica(
                replica_id=row["replica_id"],
                started_at=row["started_at"],
                last_seen=row["last_seen"],
                info={str(k): str(v) for k, v in json.loads(row["info"]).items()},
                sources=tuple(row["sources"]),
                deliveries=int(row["deliveries"]),
            )
            for row in rows
        ]

    async def forget_replica(self, replica_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM replicas WHERE replica_id = $1", replica_id)
            await conn.execute(
                "UPDATE sources SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
                replica_id,
            )
            for table in ("deliveries", "messages"):
                await conn.execute(
                    f"UPDATE {table} SET lease_owner = NULL, lease_until = NULL"  # noqa: S608
                    " WHERE lease_owner = $1 AND state = 'pending'",
                    replica_id,
                )

    # -- alert policy: stories, thread parents (see store.base.Store; SQL in _pg_policy) ---

    async def policy_rows(
        self, now: datetime, story_window: float, rule_ids: Iterable[str]
    ) -> PolicyRows:
        """Live stories, who has each, rules' last alerts per story and hourly counts:
        one snapshot, so the four parts agree however other replicas write meanwhile."""
        async with (
            self._require_pool().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await pgp.policy_rows(conn, _utc(now), story_window, rule_ids)
            silences = await conn.fetch(ACTIVE_SILENCES, _utc(now))
            return replace(rows, silences=tuple(pgp.silence_from_row(row) for row in silences))

    async def story_parent(
        self, story_id: str, channel: str, target: str
    ) -> tuple[str, str | None] | None:
        """The story's newest parent message for this receiver as (state, ts), or None."""
        row = await self._fetchrow(
            "SELECT state, detail FROM deliveries WHERE story_id = $1 AND channel = $2"
            " AND target = $3 AND kind = 'parent'"
            " ORDER BY (state = 'sent') DESC, id DESC LIMIT 1",
            story_id,
            channel,
            target,
        )
        return None if row is None else (str(row["state"]), row["detail"])

    async def defer_delivery(self, delivery_id: int, at: datetime) -> None:
        """Release a claimed delivery until ``at`` without counting an attempt."""
        await self._mark(
            "UPDATE deliveries SET due_at = $2, lease_until = NULL, lease_owner = NULL"
            " WHERE id = $1 AND state = 'pending'",
            delivery_id,
            _utc(at),
        )

    @asynccontextmanager
    async def policy_lock(self) -> AsyncIterator[None]:
        """A session advisory lock on a pooled connection, so replicas decide on stories
        one at a time. A replica that dies holding it drops its session and the lock with
        it; returning the connection to the pool resets it (``pg_advisory_unlock_all``)
        even when the poll was cancelled. Waiting is bounded by ``lock_timeout``."""
        async with self._require_pool().acquire() as conn:
            try:
                wait = f"{int(POLICY_LOCK_WAIT * 1000)}ms"
                await conn.execute("SELECT set_config('lock_timeout', $1, false)", wait)
                await conn.execute("SELECT pg_advisory_lock($1)", POLICY_LOCK_KEY)
            except asyncpg.LockNotAvailableError:
                # a stuck holder must not stop polling: decide without the lock (the worst
                # case is the documented corner, a story opened twice)
                log.warning("store_policy_lock_timeout", waited=POLICY_LOCK_WAIT)
                yield
                return
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", POLICY_LOCK_KEY)

    async def stories_since(self, since: datetime) -> list[Story]:
        found = await self._fetch(
            rows.SELECT_STORIES + " WHERE last_seen_at >= $1 ORDER BY last_seen_at DESC",
            _utc(since),
        )
        return [rows.story_from_row(row) for row in found]

    async def alert_disposition(self, alert_id: str) -> tuple[str | None, str] | None:
        row = await self._fetchrow(
            "SELECT story_id, disposition FROM alerts WHERE id = $1", alert_id
        )
        return None if row is None else (row["story_id"], str(row["disposition"]))

    # -- digests, silences, notices, messages outbox -----------------------------------------

    async def waiting_digest_entries(self, digest_id: str, before: datetime) -> list[DigestEntry]:
        """Entries of ``digest_id`` queued before ``before`` that no digest has taken yet."""
        rows = await self._fetch(
            "SELECT a.*, e.story_id AS e_story_id FROM digest_entries AS e"
            " JOIN alerts AS a ON a.id = e.alert_id"
            " WHERE e.digest_id = $1 AND e.claim_id IS NULL AND e.queued_at < $2"
            " ORDER BY e.queued_at, e.id",
            digest_id,
            _utc(before),
        )
        return [
            DigestEntry(alert_from_row(row), digest_id=digest_id, story_id=row["e_story_id"])
            for row in rows
        ]

    async def claim_digest(
        self,
        digest_id: str,
        period: tuple[datetime, datetime],
        alert_ids: Sequence[str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        """Claim the period (unique per digest and start, across replicas), take the
        entries, enqueue the messages, in one transaction; False if claimed before."""
        async with self._tx() as conn:
            return await pgp.claim_digest(
                conn, digest_id, period, list(alert_ids), list(messages), _utc(now)
            )

    async def digest_claims(self, digest_id: str) -> list[tuple[datetime, int]]:
        rows = await self._fetch(
            "SELECT period_start, entries FROM digest_claims WHERE digest_id = $1 ORDER BY id",
            digest_id,
        )
        return [(row["period_start"], int(row["entries"])) for row in rows]

    async def add_silence(self, silence: Silence) -> None:
        await self._execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, author, comment,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *pgp.silence_args(silence),
        )

    async def list_silences(self, now: datetime, *, expired: bool = False) -> list[Silence]:
        """Silences not ended at ``now`` (pending ones included), or all with ``expired``."""
        where = " WHERE $1::timestamptz IS NULL OR ends_at > $1"
        rows = await self._fetch(
            pgp.SELECT_SILENCE + where + " ORDER BY created_at, id",
            None if expired else _utc(now),
        )
        return [pgp.silence_from_row(row) for row in rows]

    async def active_silences(self, now: datetime) -> list[Silence]:
        rows = await self._fetch(ACTIVE_SILENCES, _utc(now))
        return [pgp.silence_from_row(row) for row in rows]

    async def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence at ``now``; False for an unknown or already ended one."""
        status = await self._execute(
            "UPDATE silences SET ends_at = $2 WHERE id = $1 AND ends_at > $2",
            silence_id,
            _utc(now),
        )
        return status == "UPDATE 1"

    async def set_notice(
        self,
        key: str,
        active: bool,
        text: tuple[str, str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        """Raise or clear notice ``key`` and enqueue ``messages`` only if that changes its
        state (one transaction, under a lock per key); True when it did."""
        if await pgp.notice_active(self._require_pool(), key) == active:
            return False  # the common case (a success clearing nothing) writes nothing
        async with self._tx() as conn:
            return await pgp.set_notice(conn, key, active, text, list(messages), _utc(now))

    async def active_notices(self) -> list[tuple[str, str, datetime]]:
        rows = await self._fetch(
            "SELECT key, subject, raised_at FROM notices WHERE active ORDER BY key"
        )
        return [(row["key"], row["subject"], row["raised_at"]) for row in rows]

    async def claim_messages(
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Message]:
        """Lease up to ``limit`` due messages; rows another replica has locked are skipped."""
        if limit <= 0:
            return []
        now = _utc(now)
        rows = await self._fetch(
            pgp.CLAIM_MESSAGES, now, limit, now + timedelta(seconds=lease_seconds), owner
        )
        rows = sorted(rows, key=lambda row: (row["due_at"], row["id"]))
        return [pgp.message_from_row(row) for row in rows]

    async def mark_message(
        self, message_id: int, outcome: str, at: datetime, text: str | None = None
    ) -> None:
        """``outcome`` is "sent", "retry" (``at`` = next try) or "failed"."""
        if await self._execute(pgp.MARK_MESSAGE[outcome], message_id, _utc(at), text) == (
            "UPDATE 0"
        ):
            log.warning("store_mark_ignored", message_id=message_id, update=outcome)

    async def message_rows(self) -> list[tuple[Message, str]]:
        """Every message with its state, in id order (tests and ``status``)."""
        rows = await self._fetch(
            f"SELECT {pgp.MESSAGE_COLUMNS}, state FROM messages ORDER BY id"  # noqa: S608
        )
        return [(pgp.message_from_row(row), str(row["state"])) for row in rows]

    async def message_counts(self) -> dict[tuple[str, str], int]:
        """Messages per (kind, state); every pair present, zero included."""
        counts = dict.fromkeys(rows.MESSAGE_COUNT_KEYS, 0)
        query = "SELECT kind, state, COUNT(*) AS n FROM messages GROUP BY 1, 2"
        for row in await self._fetch(query):
            counts[row["kind"], row["state"]] = int(row["n"])
        return counts

    # -- plumbing: small helpers every method goes through ---------------------------------

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self.describe()} store is not open")
        return self._pool

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one transaction: commit on success, else roll back."""
        async with self._require_pool().acquire() as conn, conn.transaction():
            yield conn

    async def _fetch(self, query: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._require_pool().fetch(query, *args)
        return rows

    async def _fetchrow(self, query: str, *args: Any) -> Row | None:
        row: Row | None = await self._require_pool().fetchrow(query, *args)
        return row

    async def _fetchval(self, query: str, *args: Any) -> Any:
        return await self._require_pool().fetchval(query, *args)

    async def _execute(self, query: str, *args: Any) -> str:
        status: str = await self._require_pool().execute(query, *args)
        return status

    async def _mark(self, query: str, delivery_id: int, *args: Any) -> None:
        if await self._execute(query, delivery_id, *args) == "UPDATE 0":
            # Unknown id, or the row was already settled by another worker whose lease
            # expired on us: the first outcome stands.
            log.warning("store_mark_ignored", delivery_id=delivery_id)

    def _migration_target(self) -> MigrationTarget:
        async def applied_versions() -> set[int]:
            async with self._tx() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                rows = await conn.fetch("SELECT version FROM schema_migrations")
            return {int(row["version"]) for row in rows}

        async def apply(migration: Migration) -> bool:
            async with self._tx() as conn:
                # Replicas starting together queue here; the one after the first finds the
                # version recorded and changes nothing.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                if await conn.fetchval(
                    "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
                ):
                    return False
                await conn.execute(migration.sql)  # no arguments: a multi-statement script
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())",
                    migration.version,
                )
            log.info("store_migration_applied", version=migration.version, name=migration.name)
            return True

        return MigrationTarget(applied_versions=applied_versions, apply=apply)


# -- statements and row mapping ------------------------------------------------------------

STATE_COLUMNS: Final = (
    "source_id, etag, last_modified, body_hash, next_check_at, error_count,"
    " last_success_at, last_error_at, last_error, baseline_done, disabled, empty_runs"
)
SELECT_STATE: Final = f"SELECT {STATE_COLUMNS} FROM sources"  # noqa: S608 (constants only)

UPSERT_STATE: Final = (
    f"INSERT INTO sources ({STATE_COLUMNS})"  # noqa: S608 (constants only)
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    " ON CONFLICT (source_id) DO UPDATE SET"
    " etag = excluded.etag, last_modified = excluded.last_modified,"
    " body_hash = excluded.body_hash, next_check_at = excluded.next_check_at,"
    " error_count = excluded.error_count, last_success_at = excluded.last_success_at,"
    " last_error_at = excluded.last_error_at, last_error = excluded.last_error,"
    " baseline_done = excluded.baseline_done, disabled = excluded.disabled,"
    " empty_runs = excluded.empty_runs,"
    " lease_owner = NULL, lease_until = NULL"  # a stored outcome ends the poll's lease
)

# $1 source, $2 owner, $3 lease until, $4 now, $5 due-before (NULL: any time)
CLAIM_SOURCE: Final = (
    "INSERT INTO sources (source_id, lease_owner, lease_until) VALUES ($1, $2, $3)"  # noqa: S608
    " ON CONFLICT (source_id) DO UPDATE"
    " SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until"
    " WHERE (sources.lease_owner IS NULL OR sources.lease_owner = $2"
    "        OR sources.lease_until <= $4)"
    " AND ($5::timestamptz IS NULL OR sources.next_check_at IS NULL"
    "      OR sources.next_check_at <= $5)"
    f" RETURNING {STATE_COLUMNS}"
)

# $1 now, $2 limit, $3 lease until, $4 owner
CLAIM_DELIVERIES: Final = (
    "WITH picked AS ("
    " SELECT id FROM deliveries WHERE state = 'pending' AND due_at <= $1"
    " AND (lease_until IS NULL OR lease_until <= $1)"
    " ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries AS d SET lease_until = $3, lease_owner = $4"
    " FROM picked WHERE d.id = picked.id RETURNING d.id"
)

LIVE_REPLICAS: Final = (
    "SELECT r.replica_id, r.started_at, r.last_seen, r.info,"
    " COALESCE((SELECT array_agg(s.source_id ORDER BY s.source_id) FROM sources AS s"
    "  WHERE s.lease_owner = r.replica_id AND s.lease_until > $1), '{}') AS sources,"
    " (SELECT COUNT(*) FROM deliveries AS d WHERE d.state = 'pending'"
    "  AND d.lease_owner = r.replica_id AND d.lease_until > $1) AS deliveries"
    " FROM replicas AS r WHERE r.last_seen >= $2 ORDER BY r.replica_id"
)

SELECT_ALERT: Final = (
    "SELECT id, rule_id, rule_title, tier, source_id, source_name, item_key, title, link,"
    " summary, matched, published, created_at FROM alerts"
)

DELIVERY_SELECT: Final = (
    "SELECT d.id AS d_id, d.channel AS d_channel, d.target AS d_target,"
    " d.attempts AS d_attempts, d.state AS d_state, d.last_error AS d_last_error,"
    " d.kind AS d_kind, d.story_id AS d_story_id, d.info AS d_info,"
    " a.id, a.rule_id, a.rule_title, a.tier, a.source_id, a.source_name, a.item_key,"
    " a.title, a.link, a.summary, a.matched, a.published, a.created_at"
    " FROM deliveries AS d JOIN alerts AS a ON a.id = d.alert_id"
)


def state_args(state: SourceState) -> tuple[object, ...]:
    return (
        state.source_id,
        state.etag,
        state.last_modified,
        state.body_hash,
        _opt_utc(state.next_check_at),
        state.error_count,
        _opt_utc(state.last_success_at),
        _opt_utc(state.last_error_at),
        state.last_error,
        state.baseline_done,
        state.disabled,
        rows.runs_to_json(state.empty_runs),
    )


def state_from_row(row: Row) -> SourceState:
    return SourceState(
        source_id=row["source_id"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        next_check_at=row["next_check_at"],
        error_count=row["error_count"],
        last_success_at=row["last_success_at"],
        last_error_at=row["last_error_at"],
        last_error=row["last_error"],
        baseline_done=row["baseline_done"],
        disabled=row["disabled"],
        empty_runs=rows.runs_from_json(row["empty_runs"]),
    )


async def _write_poll(conn: asyncpg.Connection, result: PollResult, now: datetime) -> int:
    """One poll's rows (``now`` in UTC); the caller holds the transaction."""
    await conn.execute(UPSERT_STATE, *state_args(result.state))
    inserted = await _insert_items(conn, result.items, now)
    enqueued = await _enqueue(conn, result.outbox, inserted, now)
    # the alert policy's records, stories and messages, then digest entries (as SQLite's
    # commit_poll: an alert held for a digest keeps its disposition)
    enqueued += await pgp.commit_policy(conn, result, inserted, now)
    await pgp.queue_digest_entries(conn, result.digest_entries, inserted, now)
    return enqueued


async def _insert_items(
    conn: asyncpg.Connection, items: Iterable[Item], now: datetime
) -> set[tuple[str, str]]:
    """Insert every item not yet recorded; return the (source_id, key) pairs inserted."""
    inserted: set[tuple[str, str]] = set()
    for item in items:
        key = await conn.fetchval(
            "INSERT INTO items (source_id, item_key, content_hash, title, link, guid,"
            " published, first_seen_at, summary, content)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (source_id, item_key) DO NOTHING RETURNING item_key",
            item.source_id,
            item.key,
            item.content_hash,
            item.title,
            item.link,
            item.guid,
            _opt_utc(item.published),
            now,
            item.summary,
            item.content,
        )
        if key is not None:
            inserted.add((item.source_id, item.key))
    return inserted


async def _enqueue(
    conn: asyncpg.Connection,
    outbox: Iterable[tuple[Alert, tuple[Receiver, ...]]],
    inserted: set[tuple[str, str]],
    now: datetime,
) -> int:
    enqueued = 0
    for alert, receivers in outbox:
        if (alert.source_id, alert.item_key) not in inserted:
            continue  # the item was known before this call: its alerts went out then
        await conn.execute(INSERT_ALERT, *alert_args(alert))
        for receiver in receivers:
            status = await conn.execute(
                "INSERT INTO deliveries (alert_id, channel, target, due_at, created_at)"
                " VALUES ($1, $2, $3, $4, $4)"
                " ON CONFLICT (alert_id, channel, target, kind) DO NOTHING",
                alert.id,
                receiver.channel,
                receiver.target,
                now,
            )
            enqueued += int(status.rsplit(" ", 1)[-1])
    return enqueued


INSERT_ALERT: Final = (
    "INSERT INTO alerts (id, rule_id, rule_title, tier, source_id, source_name,"
    " item_key, title, link, summary, matched, published, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    " ON CONFLICT (id) DO NOTHING"
)


def alert_args(alert: Alert) -> tuple[object, ...]:
    return (
        alert.id,
        alert.rule_id,
        alert.rule_title,
        alert.tier,
        alert.source_id,
        alert.source_name,
        alert.item_key,
        alert.title,
        alert.link,
        alert.summary,
        json.dumps(list(alert.matched), ensure_ascii=False),
        _opt_utc(alert.published),
        _utc(alert.created_at),
    )


def alert_from_row(row: Row) -> Alert:
    return rows.alert_from_row(row)


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(
        id=row["d_id"],
        alert=alert_from_row(row),
        channel=row["d_channel"],
        target=row["d_target"],
        attempts=row["d_attempts"],
        state=DeliveryState(row["d_state"]),
        last_error=row["d_last_error"],
        kind=row["d_kind"],
        story_id=row["d_story_id"],
        info=json.loads(row["d_info"]),
    )


def item_from_row(row: Row) -> Item:
    return Item(
        source_id=row["source_id"],
        key=row["item_key"],
        title=row["title"],
        link=row["link"],
        guid=row["guid"],
        summary=row["summary"],
        content=row["content"],
        published=row["published"],
    )
