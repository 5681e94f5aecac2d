"""The SQLite statements for digests, silences, operator notices and the messages outbox.

Plain functions of a connection, run on the store's worker thread like ``_sqlite_ops``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from mastwatch.model import DigestEntry, Message, Silence
from mastwatch.store._sqlite_ops import (
    alert_from_row,
    insert_alert,
    required_time,
    to_text,
    transaction,
)
from mastwatch.store.rows import MESSAGE_COUNT_KEYS

# -- digest queue (written inside commit_poll's transaction)


def queue_digest_entries(
    conn: sqlite3.Connection,
    entries: Iterable[DigestEntry],
    inserted: set[tuple[str, str]],
    now: str,
) -> int:
    """Queue each entry whose item this poll inserted; the caller holds the transaction."""
    queued = 0
    for entry in entries:
        alert = entry.alert
        if (alert.source_id, alert.item_key) not in inserted:
            continue  # a known item: its alerts were decided when it was first seen
        insert_alert(conn, alert)  # no-op when the outbox part already recorded it
        cursor = conn.execute(
            "INSERT INTO digest_entries (digest_id, alert_id, story_id, queued_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (digest_id, alert_id) DO NOTHING",
            (entry.digest_id, alert.id, entry.story_id, now),
        )
        queued += cursor.rowcount
    return queued


def waiting_digest_entries(
    conn: sqlite3.Connection, digest_id: str, before: datetime
) -> list[DigestEntry]:
    rows = conn.execute(
        "SELECT a.*, e.story_id AS e_story_id FROM digest_entries AS e"
        " JOIN alerts AS a ON a.id = e.alert_id"
        " WHERE e.digest_id = ? AND e.claim_id IS NULL AND e.queued_at < ?"
        " ORDER BY e.queued_at, e.id",
        (digest_id, to_text(before)),
    )
    return [
        DigestEntry(alert=alert_from_row(row), digest_id=digest_id, story_id=row["e_story_id"])
        for row in rows
    ]


def claim_digest(  # noqa: PLR0917 (one transaction's inputs)
    conn: sqlite3.Connection,
    digest_id: str,
    period: tuple[datetime, datetime],
    alert_ids: Sequence[str],
    messages: Sequence[Message],
    now: datetime,
) -> bool:
    """Claim (digest, period start), take the entries and enqueue the messages, atomically.

    False, with nothing written, when the period was claimed before (a restart, a replica).
    """
    start, end = period
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO digest_claims (digest_id, period_start, period_end, claimed_at, entries)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest_id, period_start) DO NOTHING",
            (digest_id, to_text(start), to_text(end), to_text(now), len(alert_ids)),
        )
        if cursor.rowcount != 1:
            return False
        claim_id = cursor.lastrowid
        conn.executemany(
            "UPDATE digest_entries SET claim_id = ?"
            " WHERE digest_id = ? AND alert_id = ? AND claim_id IS NULL",
            [(claim_id, digest_id, alert_id) for alert_id in alert_ids],
        )
        insert_messages(conn, messages, to_text(now))
    return True


def digest_claims(conn: sqlite3.Connection, digest_id: str) -> list[tuple[datetime, int]]:
    rows = conn.execute(
        "SELECT period_start, entries FROM digest_claims WHERE digest_id = ? ORDER BY id",
        (digest_id,),
    )
    return [(required_time(row[0]), int(row[1])) for row in rows]


# -- silences

SELECT_SILENCE: Final = (
    "SELECT id, matchers, starts_at, ends_at, author, comment, created_at FROM silences"
)


def silence_from_row(row: sqlite3.Row) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple((str(k), str(v)) for k, v in json.loads(row["matchers"])),
        starts_at=required_time(row["starts_at"]),
        ends_at=required_time(row["ends_at"]),
        author=row["author"],
        comment=row["comment"],
        created_at=required_time(row["created_at"]),
    )


def add_silence(conn: sqlite3.Connection, silence: Silence) -> None:
    conn.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, author, comment, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            silence.id,
            json.dumps([list(pair) for pair in silence.matchers], ensure_ascii=False),
            to_text(silence.starts_at),
            to_text(silence.ends_at),
            silence.author,
            silence.comment,
            to_text(silence.created_at),
        ),
    )


def list_silences(conn: sqlite3.Connection, now: datetime, *, expired: bool) -> list[Silence]:
    """Silences not yet ended at ``now`` (all of them with ``expired``), oldest first."""
    where = "" if expired else " WHERE ends_at > :now"
    rows = conn.execute(SELECT_SILENCE + where + " ORDER BY created_at, id", {"now": to_text(now)})
    return [silence_from_row(row) for row in rows]


def active_silences(conn: sqlite3.Connection, now: datetime) -> list[Silence]:
    rows = conn.execute(
        SELECT_SILENCE + " WHERE starts_at <= :now AND ends_at > :now ORDER BY created_at, id",
        {"now": to_text(now)},
    )
    return [silence_from_row(row) for row in rows]


def expire_silence(conn: sqlite3.Connection, silence_id: str, now: datetime) -> bool:
    """End a silence now; False for an unknown id or one already ended."""
    cursor = conn.execute(
        "UPDATE silences SET ends_at = :now WHERE id = :id AND ends_at > :now",
        {"id": silence_id, "now": to_text(now)},
    )
    return cursor.rowcount == 1


# -- operator notices


def set_notice(  # noqa: PLR0917 (one transaction's inputs)
    conn: sqlite3.Connection,
    key: str,
    active: bool,
    text: tuple[str, str],
    messages: Sequence[Message],
    now: datetime,
) -> bool:
    """Raise (``active``) or clear a notice and enqueue its messages, only if that changes
    its state; True when it did. One transaction, so two replicas cannot both notify."""
    subject, detail = text
    if _notice_active(conn, key) == active:
        return False  # the common case (a success clearing nothing) takes no write lock
    with transaction(conn):
        if _notice_active(conn, key) == active:
            return False  # changed by another process meanwhile
        stamp = to_text(now)
        if active:
            conn.execute(
                "INSERT INTO notices (key, active, subject, detail, raised_at, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET active = 1,"
                " subject = excluded.subject, detail = excluded.detail,"
                " raised_at = excluded.raised_at, cleared_at = NULL,"
                " updated_at = excluded.updated_at",
                (key, subject, detail, stamp, stamp),
            )
        else:
            conn.execute(
                "UPDATE notices SET active = 0, cleared_at = ?, updated_at = ? WHERE key = ?",
                (stamp, stamp, key),
            )
        insert_messages(conn, messages, stamp)
    return True


def _notice_active(conn: sqlite3.Connection, key: str) -> bool:
    row = conn.execute("SELECT active FROM notices WHERE key = ?", (key,)).fetchone()
    return row is not None and bool(row[0])


def active_notices(conn: sqlite3.Connection) -> list[tuple[str, str, datetime]]:
    rows = conn.execute("SELECT key, subject, raised_at FROM notices WHERE active = 1 ORDER BY key")
    return [(row[0], row[1], required_time(row[2])) for row in rows]


# -- the messages outbox


def insert_messages(conn: sqlite3.Connection, messages: Iterable[Message], now: str) -> int:
    inserted = 0
    for message in messages:
        cursor = conn.execute(
            "INSERT INTO messages (kind, ref, channel, target, subject, body_text, body_html,"
            " due_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (ref, channel, target) DO NOTHING",
            (
                message.kind,
                message.ref,
                message.channel,
                message.target,
                message.subject,
                message.text,
                message.html,
                now,
                now,
            ),
        )
        inserted += cursor.rowcount
    return inserted


SELECT_MESSAGE: Final = (
    "SELECT id, kind, ref, channel, target, subject, body_text, body_html, attempts FROM messages"
)


def message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        kind=row["kind"],
        ref=row["ref"],
        channel=row["channel"],
        target=row["target"],
        subject=row["subject"],
        text=row["body_text"],
        html=row["body_html"],
        id=row["id"],
        attempts=row["attempts"],
    )


def claim_messages(
    conn: sqlite3.Connection, now: datetime, limit: int, lease_until: datetime, owner: str | None
) -> list[Message]:
    with transaction(conn):
        rows = conn.execute(
            SELECT_MESSAGE + " WHERE state = 'pending' AND due_at <= :now"
            " AND (lease_until IS NULL OR lease_until <= :now) ORDER BY due_at, id LIMIT :limit",
            {"now": to_text(now), "limit": limit},
        ).fetchall()
        conn.executemany(
            "UPDATE messages SET lease_until = ?, lease_owner = ? WHERE id = ?",
            [(to_text(lease_until), owner, row["id"]) for row in rows],
        )
    return [message_from_row(row) for row in rows]


def mark_message(
    conn: sqlite3.Connection, message_id: int, outcome: str, at: datetime, text: str | None
) -> bool:
    """``outcome`` "sent" (text: detail), "retry" (at: next try) or "failed" (text: error)."""
    statements = {
        "sent": "UPDATE messages SET state = 'sent', attempts = attempts + 1, sent_at = :at,"
        " detail = :text, lease_until = NULL, lease_owner = NULL"
        " WHERE id = :id AND state != 'sent'",
        "retry": "UPDATE messages SET attempts = attempts + 1, due_at = :at, lease_until = NULL,"
        " lease_owner = NULL,"
        " last_error = :text WHERE id = :id AND state = 'pending'",
        "failed": "UPDATE messages SET state = 'failed', attempts = attempts + 1,"
        " lease_until = NULL, lease_owner = NULL, failed_at = :at, last_error = :text"
        " WHERE id = :id AND state = 'pending'",
    }
    cursor = conn.execute(statements[outcome], {"id": message_id, "at": to_text(at), "text": text})
    return cursor.rowcount == 1


def message_counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    counts = dict.fromkeys(MESSAGE_COUNT_KEYS, 0)
    for kind, state, count in conn.execute(
        "SELECT kind, state, COUNT(*) FROM messages GROUP BY kind, state"
    ):
        counts[kind, state] = count
    return counts


def message_rows(conn: sqlite3.Connection) -> list[tuple[Message, str]]:
    """Every message with its state, in id order (tests, ``status``)."""
    rows = conn.execute(SELECT_MESSAGE.replace(" FROM", ", state FROM") + " ORDER BY id")
    return [(message_from_row(row), str(row["state"])) for row in rows]
