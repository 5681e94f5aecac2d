"""The SQLite store's statements: plain functions of a connection.

:class:`mastwatch.store.sqlite.SQLiteStore` runs each of these on its one worker thread.
Keeping them free of asyncio lets every transaction read top to bottom. Times are stored
as fixed-width ISO-8601 UTC text (see :func:`to_text`) and always come back aware UTC.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

import structlog

from mastwatch.model import Alert, Delivery, DeliveryState, Item, PollResult, Receiver, SourceState
from mastwatch.store import rows
from mastwatch.store.base import Replica
from mastwatch.store.migrate import Migration

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS: Final = 5000  # how long a writer waits for another's lock before failing


def configure(conn: sqlite3.Connection, *, wal: bool) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    conn.execute("PRAGMA foreign_keys = ON")
    if wal:
        # Reading the mode back also proves the file is a database (a corrupt or foreign
        # file fails here, inside open(), rather than on the first poll).
        mode = enable_wal(conn)
        if mode.lower() != "wal":
            log.warning("store_wal_unavailable", journal_mode=mode)
    # NORMAL is durable across a process crash in WAL mode; see sqlite.py's docstring.
    conn.execute("PRAGMA synchronous = NORMAL")


def enable_wal(conn: sqlite3.Connection) -> str:
    """Switch the file to WAL, waiting up to the busy timeout for other openers.

    Turning a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
    once instead of calling the busy handler, so two processes opening one fresh file at
    the same moment would fail without this loop. Once the file is WAL it is a no-op.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.02)  # on the store's worker thread, never on the event loop


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def to_text(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, so comparing the text compares the times.

    A naive datetime is taken to be UTC already.
    """
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def opt_text(moment: datetime | None) -> str | None:
    return None if moment is None else to_text(moment)


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def required_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- migrations


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def apply_migration(conn: sqlite3.Connection, migration: Migration, applied_at: str) -> bool:
    """Run one migration and record it, all in one transaction.

    ``executescript`` would COMMIT an open transaction before running, so the script
    itself starts it; the version row is then added before the explicit COMMIT. If a
    second process applied the same version meanwhile, our copy fails (table exists or
    duplicate version), rolls back, and the version is found applied: not an error.
    """
    try:
        conn.executescript("BEGIN IMMEDIATE;\n" + migration.sql)
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            (migration.version, applied_at),
        )
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if migration.version in applied_versions(conn):
            return False
        raise
    return True


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def ping(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1").fetchone()[0] == 1)


# -- sources and items

# Every query is a constant (or constants joined): values only ever travel as parameters.
SELECT_STATE: Final = (
    "SELECT source_id, etag, last_modified, body_hash, next_check_at, error_count,"
    " last_success_at, last_error_at, last_error, baseline_done, disabled, empty_runs"
    " FROM sources"
)


def state_from_row(row: sqlite3.Row) -> SourceState:
    return SourceState(
        source_id=row["source_id"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        next_check_at=from_text(row["next_check_at"]),
        error_count=row["error_count"],
        last_success_at=from_text(row["last_success_at"]),
        last_error_at=from_text(row["last_error_at"]),
        last_error=row["last_error"],
        baseline_done=bool(row["baseline_done"]),
        disabled=bool(row["disabled"]),
        empty_runs=rows.runs_from_json(row["empty_runs"]),
    )


def get_source_state(conn: sqlite3.Connection, source_id: str) -> SourceState:
    row = conn.execute(SELECT_STATE + " WHERE source_id = ?", (source_id,)).fetchone()
    return SourceState(source_id=source_id) if row is None else state_from_row(row)


def list_source_states(conn: sqlite3.Connection) -> list[SourceState]:
    rows = conn.execute(SELECT_STATE + " ORDER BY source_id")
    return [state_from_row(row) for row in rows]


def save_source_state(conn: sqlite3.Connection, state: SourceState) -> None:
    conn.execute(
        "INSERT INTO sources (source_id, etag, last_modified, body_hash, next_check_at,"
        " error_count, last_success_at, last_error_at, last_error, baseline_done, disabled,"
        " empty_runs)"
        " VALUES (:source_id, :etag, :last_modified, :body_hash, :next_check_at, :error_count,"
        " :last_success_at, :last_error_at, :last_error, :baseline_done, :disabled,"
        " :empty_runs)"
        " ON CONFLICT (source_id) DO UPDATE SET"
        " etag = excluded.etag, last_modified = excluded.last_modified,"
        " body_hash = excluded.body_hash, next_check_at = excluded.next_check_at,"
        " error_count = excluded.error_count, last_success_at = excluded.last_success_at,"
        " last_error_at = excluded.last_error_at, last_error = excluded.last_error,"
        " baseline_done = excluded.baseline_done, disabled = excluded.disabled,"
        " empty_runs = excluded.empty_runs,"
        " lease_owner = NULL, lease_until = NULL",  # a stored outcome ends the poll's lease
        {
            "source_id": state.source_id,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "body_hash": state.body_hash,
            "next_check_at": opt_text(state.next_check_at),
            "error_count": state.error_count,
            "last_success_at": opt_text(state.last_success_at),
            "last_error_at": opt_text(state.last_error_at),
            "last_error": state.last_error,
            "baseline_done": int(state.baseline_done),
            "disabled": int(state.disabled),
            "empty_runs": rows.runs_to_json(state.empty_runs),
        },
    )


def save_source_states(conn: sqlite3.Connection, states: list[SourceState]) -> None:
    """Several sources' states in one transaction (see store.group_commit)."""
    with transaction(conn):
        for state in states:
            save_source_state(conn, state)


# Values per IN (...) list: well under SQLite's limit of host parameters (32,766).
IN_CHUNK: Final = 500


def _present(conn: sqlite3.Connection, column: str, source_id: str, values: list[str]) -> set[str]:
    """Which of ``values`` some item of the source has in ``column`` (item_key or
    content_hash, both indexed with source_id): one query per chunk, not one per value."""
    found: set[str] = set()
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        query = (  # column is one of two constants; the values travel as parameters
            f"SELECT {column} FROM items WHERE source_id = ? AND {column} IN ({marks})"  # noqa: S608
        )
        found.update(row[0] for row in conn.execute(query, (source_id, *chunk)))
    return found


def unseen_keys(conn: sqlite3.Connection, source_id: str, keys: list[str]) -> set[str]:
    return set(keys) - _present(conn, "item_key", source_id, keys)


def seen_content_hashes(conn: sqlite3.Connection, source_id: str, hashes: list[str]) -> set[str]:
    return _present(conn, "content_hash", source_id, hashes)


def known_items(
    conn: sqlite3.Connection, source_id: str, keys: list[str], hashes: list[str]
) -> tuple[set[str], set[str]]:
    return unseen_keys(conn, source_id, keys), seen_content_hashes(conn, source_id, hashes)


def commit_poll(conn: sqlite3.Connection, result: PollResult, now: datetime) -> int:
    with transaction(conn):
        return _write_poll(conn, result, now)


def commit_polls(conn: sqlite3.Connection, polls: list[tuple[PollResult, datetime]]) -> list[int]:
    """Several polls in one transaction (see ``Store.commit_polls``)."""
    with transaction(conn):
        return [_write_poll(conn, result, now) for result, now in polls]


def _write_poll(conn: sqlite3.Connection, result: PollResult, now: datetime) -> int:
    """One poll's rows; the caller holds the transaction."""
    save_source_state(conn, result.state)
    inserted = insert_items(conn, result.items, to_text(now))
    enqueued = enqueue(conn, result.outbox, inserted, to_text(now))
    # the alert policy's records, stories and messages (P1); before the digest part,
    # so an alert held for a digest is recorded with its disposition
    from mastwatch.store._sqlite_policy import commit_policy  # noqa: PLC0415

    enqueued += commit_policy(conn, result, inserted, to_text(now))
    # digest entries (P2): imported here because that module builds on this one
    from mastwatch.store._sqlite_digest import queue_digest_entries  # noqa: PLC0415

    queue_digest_entries(conn, result.digest_entries, inserted, to_text(now))
    return enqueued


def insert_items(conn: sqlite3.Connection, items: Iterable[Item], now: str) -> set[tuple[str, str]]:
    """Insert every item not yet recorded; return the (source_id, key) pairs inserted.

    ``ON CONFLICT … DO NOTHING`` rather than ``INSERT OR IGNORE``: OR IGNORE would also
    skip rows that break NOT NULL, silently losing them instead of rolling back.
    """
    inserted: set[tuple[str, str]] = set()
    for item in items:
        cursor = conn.execute(
            "INSERT INTO items (source_id, item_key, content_hash, title, link, guid,"
            " published, first_seen_at, summary, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source_id, item_key) DO NOTHING",
            (
                item.source_id,
                item.key,
                item.content_hash,
                item.title,
                item.link,
                item.guid,
                opt_text(item.published),
                now,
                item.summary,  # kept for `mastwatch replay` (migration 0002)
                item.content,
            ),
        )
        if cursor.rowcount == 1:
            inserted.add((item.source_id, item.key))
    return inserted


def enqueue(
    conn: sqlite3.Connection,
    outbox: Iterable[tuple[Alert, tuple[Receiver, ...]]],
    inserted: set[tuple[str, str]],
    now: str,
) -> int:
    enqueued = 0
    for alert, receivers in outbox:
        if (alert.source_id, alert.item_key) not in inserted:
            continue  # the item was known before this call: its alerts went out then
        insert_alert(conn, alert)
        for receiver in receivers:
            cursor = conn.execute(
                "INSERT INTO deliveries (alert_id, channel, target, due_at, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (alert_id, channel, target, kind) DO NOTHING",
                (alert.id, receiver.channel, receiver.target, now, now),
            )
            enqueued += cursor.rowcount
    return enqueued


# -- alerts

SELECT_ALERT: Final = (
    "SELECT id, rule_id, rule_title, tier, source_id, source_name, item_key, title, link,"
    " summary, matched, published, created_at FROM alerts"
)


def insert_alert(conn: sqlite3.Connection, alert: Alert) -> None:
    """Insert unless present: an alert id is derived from source, item and rule, so a row
    with the same id is the same alert."""
    conn.execute(
        "INSERT INTO alerts (id, rule_id, rule_title, tier, source_id, source_name,"
        " item_key, title, link, summary, matched, published, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (
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
            opt_text(alert.published),
            to_text(alert.created_at),
        ),
    )


def alert_from_row(row: sqlite3.Row) -> Alert:
    return rows.alert_from_row(row, from_text)  # type: ignore[arg-type]


def recent_alerts(conn: sqlite3.Connection, limit: int) -> list[Alert]:
    rows = conn.execute(
        SELECT_ALERT + " ORDER BY created_at DESC, id LIMIT ?",
        (limit,),
    )
    return [alert_from_row(row) for row in rows]


def alerts_since(conn: sqlite3.Connection, since: datetime) -> list[Alert]:
    rows = conn.execute(
        SELECT_ALERT + " WHERE created_at >= ? ORDER BY created_at, id", (to_text(since),)
    )
    return [alert_from_row(row) for row in rows]


def items_since(conn: sqlite3.Connection, since: datetime) -> list[tuple[Item, datetime]]:
    """Stored items first seen at or after ``since``, with that time, oldest first."""
    rows = conn.execute(
        "SELECT source_id, item_key, title, link, guid, published, first_seen_at, summary,"
        " content FROM items WHERE first_seen_at >= ? ORDER BY first_seen_at, source_id,"
        " item_key",
        (to_text(since),),
    )
    return [
        (
            Item(
                source_id=row["source_id"],
                key=row["item_key"],
                title=row["title"],
                link=row["link"],
                guid=row["guid"],
                summary=row["summary"],
                content=row["content"],
                published=from_text(row["published"]),
            ),
            required_time(row["first_seen_at"]),
        )
        for row in rows
    ]


def delivery_states(
    conn: sqlite3.Connection, alert_ids: list[str]
) -> dict[str, list[tuple[str, str, str]]]:
    """Each alert's deliveries as (channel, target, state), in id order."""
    found: dict[str, list[tuple[str, str, str]]] = {alert_id: [] for alert_id in alert_ids}
    query = "SELECT channel, target, state FROM deliveries WHERE alert_id = ? ORDER BY id"
    for alert_id in alert_ids:
        found[alert_id] = [tuple(row) for row in conn.execute(query, (alert_id,))]
    return found


# -- deliveries

# Alert columns keep their names; the delivery's own columns get a d_ prefix.
DELIVERY_SELECT: Final = (
    "SELECT d.id AS d_id, d.channel AS d_channel, d.target AS d_target,"
    " d.attempts AS d_attempts, d.state AS d_state, d.last_error AS d_last_error,"
    " d.kind AS d_kind, d.story_id AS d_story_id, d.info AS d_info,"
    " a.id, a.rule_id, a.rule_title, a.tier, a.source_id, a.source_name, a.item_key,"
    " a.title, a.link, a.summary, a.matched, a.published, a.created_at"
    " FROM deliveries AS d JOIN alerts AS a ON a.id = d.alert_id"
)


def delivery_from_row(row: sqlite3.Row) -> Delivery:
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


def claim_deliveries(
    conn: sqlite3.Connection, now: datetime, limit: int, lease_until: datetime, owner: str | None
) -> list[Delivery]:
    """Select and lease in one IMMEDIATE transaction: no other claimer can slip between."""
    with transaction(conn):
        rows = conn.execute(
            DELIVERY_SELECT + " WHERE d.state = 'pending' AND d.due_at <= :now"
            " AND (d.lease_until IS NULL OR d.lease_until <= :now)"
            " ORDER BY d.due_at, d.id LIMIT :limit",
            {"now": to_text(now), "limit": limit},
        ).fetchall()
        conn.executemany(
            "UPDATE deliveries SET lease_until = ?, lease_owner = ? WHERE id = ?",
            [(to_text(lease_until), owner, row["d_id"]) for row in rows],
        )
    return [delivery_from_row(row) for row in rows]


def mark_sent(
    conn: sqlite3.Connection, delivery_id: int, now: datetime, detail: str | None
) -> bool:
    # A late success still wins over "failed": the message did reach its receiver.
    cursor = conn.execute(
        "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = ?,"
        " detail = ?, lease_until = NULL, lease_owner = NULL WHERE id = ? AND state != 'sent'",
        (to_text(now), detail, delivery_id),
    )
    return cursor.rowcount == 1


def mark_retry(conn: sqlite3.Connection, delivery_id: int, at: datetime, error: str | None) -> bool:
    cursor = conn.execute(
        "UPDATE deliveries SET attempts = attempts + 1, due_at = ?, lease_until = NULL,"
        " lease_owner = NULL,"
        " last_error = ? WHERE id = ? AND state = 'pending'",
        (to_text(at), error, delivery_id),
    )
    return cursor.rowcount == 1


def mark_failed(
    conn: sqlite3.Connection, delivery_id: int, now: datetime, error: str | None
) -> bool:
    cursor = conn.execute(
        "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, lease_until = NULL,"
        " lease_owner = NULL,"
        " failed_at = ?, last_error = ? WHERE id = ? AND state = 'pending'",
        (to_text(now), error, delivery_id),
    )
    return cursor.rowcount == 1


def next_delivery_due(conn: sqlite3.Connection) -> datetime | None:
    # A leased row becomes claimable when both its due time and its lease have passed.
    row = conn.execute(
        "SELECT MIN(MAX(due_at, COALESCE(lease_until, due_at)))"
        " FROM deliveries WHERE state = 'pending'"
    ).fetchone()
    return from_text(row[0])


def outbox_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {state.value: 0 for state in DeliveryState}
    for row in conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"):
        counts[row[0]] = row[1]
    return counts


def delivery_rows(conn: sqlite3.Connection) -> list[Delivery]:
    return [delivery_from_row(row) for row in conn.execute(DELIVERY_SELECT + " ORDER BY d.id")]


# -- coordination of replicas (HA mode; see store.base)


def claim_source(
    conn: sqlite3.Connection,
    source_id: str,
    owner: str,
    *,
    now: datetime,
    lease_until: datetime,
    due_before: datetime | None,
) -> SourceState | None:
    """Lease the source if nobody else holds an unexpired lease and it is due."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO sources (source_id) VALUES (?) ON CONFLICT (source_id) DO NOTHING",
            (source_id,),
        )
        cursor = conn.execute(
            "UPDATE sources SET lease_owner = :owner, lease_until = :until"
            " WHERE source_id = :id"
            " AND (lease_owner IS NULL OR lease_owner = :owner OR lease_until <= :now)"
            " AND (:due IS NULL OR next_check_at IS NULL OR next_check_at <= :due)",
            {
                "owner": owner,
                "until": to_text(lease_until),
                "id": source_id,
                "now": to_text(now),
                "due": opt_text(due_before),
            },
        )
        if cursor.rowcount != 1:
            return None
        return get_source_state(conn, source_id)


def release_source(conn: sqlite3.Connection, source_id: str, owner: str) -> None:
    conn.execute(
        "UPDATE sources SET lease_owner = NULL, lease_until = NULL"
        " WHERE source_id = ? AND lease_owner = ?",
        (source_id, owner),
    )


def heartbeat(
    conn: sqlite3.Connection, replica_id: str, now: datetime, info: Mapping[str, str]
) -> None:
    conn.execute(
        "INSERT INTO replicas (replica_id, started_at, last_seen, info) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (replica_id) DO UPDATE SET last_seen = excluded.last_seen,"
        " info = excluded.info",
        (replica_id, to_text(now), to_text(now), json.dumps(dict(info), sort_keys=True)),
    )


def live_replicas(conn: sqlite3.Connection, now: datetime, since: datetime) -> list[Replica]:
    rows = conn.execute(
        "SELECT replica_id, started_at, last_seen, info FROM replicas WHERE last_seen >= ?"
        " ORDER BY replica_id",
        (to_text(since),),
    ).fetchall()
    return [replica_from_row(conn, row, to_text(now)) for row in rows]


def replica_from_row(conn: sqlite3.Connection, row: sqlite3.Row, now: str) -> Replica:
    replica_id = row["replica_id"]
    sources = conn.execute(
        "SELECT source_id FROM sources WHERE lease_owner = ? AND lease_until > ?"
        " ORDER BY source_id",
        (replica_id, now),
    )
    deliveries = conn.execute(
        "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND lease_owner = ?"
        " AND lease_until > ?",
        (replica_id, now),
    ).fetchone()[0]
    return Replica(
        replica_id=replica_id,
        started_at=required_time(row["started_at"]),
        last_seen=required_time(row["last_seen"]),
        info={str(k): str(v) for k, v in json.loads(row["info"]).items()},
        sources=tuple(source[0] for source in sources),
        deliveries=int(deliveries),
    )


def forget_replica(conn: sqlite3.Connection, replica_id: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM replicas WHERE replica_id = ?", (replica_id,))
        conn.execute(
            "UPDATE sources SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
            (replica_id,),
        )
        conn.execute(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ? AND state = 'pending'",
            (replica_id,),
        )
        conn.execute(
            "UPDATE messages SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ? AND state = 'pending'",
            (replica_id,),
        )
