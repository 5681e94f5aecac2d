"""The PostgreSQL statements for the alert policy (issue 5): stories, message kinds,
dispositions, digests, silences, operator notices and the messages outbox.

The port of ``_sqlite_policy`` and ``_sqlite_digest``: plain async functions of an asyncpg
connection, called by :class:`~mastwatch.store.postgres.PostgresStore` inside its
transactions. Where SQLite relies on having one writer at a time, replicas sharing the
database need the database to serialise them, so this module differs from SQLite in four
places:

- a story written by two replicas at once is merged under a row lock (the union of its
  reports; an escalation is never lost), not overwritten by the last writer;
- a flood summary is appended to under an advisory lock per (group, receiver), so two
  replicas cannot open two summaries for one group;
- a notice changes state under an advisory lock per key, so it is raised (and notified)
  once however many replicas see the failure;
- messages are claimed with ``FOR UPDATE SKIP LOCKED``, leased and named by replica, like
  deliveries. A digest period is claimed once by its UNIQUE (digest, period start).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

import asyncpg

from mastwatch.model import (
    AlertRecord,
    DigestEntry,
    Message,
    OutboxEntry,
    PolicyRows,
    PollResult,
    Silence,
    Story,
)
from mastwatch.store import postgres as pg
from mastwatch.store.rows import (
    SELECT_STORIES,
    merged_reports_json,
    reports_to_json,
    story_from_row,
)

Row: TypeAlias = Mapping[str, Any]

SUMMARY_ITEMS_MAX: Final = 50  # a flood summary lists this many items, then counts the rest
# pg_advisory_xact_lock(class, hashtext(key)): the two-key form, a namespace apart from
# the one-key migration lock
GROUP_LOCK: Final = 1
NOTICE_LOCK: Final = 2


def _count(status: str) -> int:
    """Rows touched, from an asyncpg command status such as ``INSERT 0 1``."""
    return int(status.rsplit(" ", 1)[-1])


# -- written inside commit_poll's transaction -----------------------------------------------


async def commit_policy(
    conn: asyncpg.Connection, result: PollResult, inserted: set[tuple[str, str]], now: datetime
) -> int:
    """Record the new items' alerts (with disposition), their stories and messages.
    The caller holds the transaction. Returns the number of deliveries enqueued."""
    new = [r for r in result.records if (r.alert.source_id, r.alert.item_key) in inserted]
    for record in new:
        await record_alert(conn, record)
    wanted = {r.story_id for r in new}
    for story in result.stories:
        if story.id in wanted:
            await save_story(conn, story)
    enqueued = 0
    for entry in result.entries:
        if (entry.alert.source_id, entry.alert.item_key) in inserted:
            enqueued += await enqueue_entry(conn, entry, now)
    return enqueued


async def record_alert(conn: asyncpg.Connection, record: AlertRecord) -> None:
    await conn.execute(pg.INSERT_ALERT, *pg.alert_args(record.alert))
    await conn.execute(
        "UPDATE alerts SET story_id = $1, disposition = $2 WHERE id = $3",
        record.story_id,
        record.disposition,
        record.alert.id,
    )


async def save_story(conn: asyncpg.Connection, story: Story) -> None:
    """Insert the story, or merge it into the stored one under its row lock: another
    replica may have added a report meanwhile, and neither report may be lost."""
    inserted = await conn.fetchval(
        "INSERT INTO stories (id, title, link, link_key, signature, tier, reports,"
        " first_seen_at, last_seen_at, escalation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
        " $10) ON CONFLICT (id) DO NOTHING RETURNING id",
        story.id,
        story.title,
        story.link,
        story.link_key,
        json.dumps(list(story.signature)),
        story.tier,
        reports_to_json(story.reports, datetime.isoformat),
        pg._utc(story.first_seen_at),
        pg._utc(story.last_seen_at),
        story.escalation,
    )
    if inserted is not None:
        return
    row = await conn.fetchrow(
        "SELECT tier, reports, last_seen_at, escalation FROM stories WHERE id = $1 FOR UPDATE",
        story.id,
    )
    if row is None:  # deleted meanwhile: nothing to merge into (no code path deletes one)
        return
    await conn.execute(
        "UPDATE stories SET tier = $2, reports = $3, last_seen_at = $4, escalation = $5"
        " WHERE id = $1",
        story.id,
        *_merged(row, story),
    )


def _merged(row: Row, story: Story) -> tuple[object, ...]:
    """(tier, reports, last seen, escalation) of the stored story and this poll's view."""
    escalated = story.escalation is not None or row["escalation"] is None
    return (
        story.tier if escalated else row["tier"],  # an escalation only ever raises the tier
        merged_reports_json(row["reports"], story.reports, datetime.isoformat),
        max(row["last_seen_at"], pg._utc(story.last_seen_at)),
        story.escalation or row["escalation"],
    )


async def enqueue_entry(conn: asyncpg.Connection, entry: OutboxEntry, now: datetime) -> int:
    due = pg._utc(entry.due_at) if entry.due_at is not None else now
    info: dict[str, Any] = dict(entry.info)
    alert = entry.alert
    if entry.group_key is not None:
        item = {"title": alert.title, "link": alert.link, "source": alert.source_name}
        if await _append_to_group(conn, entry, item):
            return 0
        info["items"] = [item]
    status = await conn.execute(
        "INSERT INTO deliveries (alert_id, channel, target, kind, story_id, info, group_key,"
        " due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (alert_id, channel, target, kind) DO NOTHING",
        alert.id,
        entry.receiver.channel,
        entry.receiver.target,
        entry.kind.value,
        entry.story_id,
        json.dumps(info, ensure_ascii=False),
        entry.group_key,
        due,
        now,
    )
    return _count(status)


async def _append_to_group(
    conn: asyncpg.Connection, entry: OutboxEntry, item: dict[str, Any]
) -> bool:
    """Add one item to the pending summary of this group and receiver, if there is one.
    The advisory lock (held to the end of the transaction) makes the look-up and the
    insert that may follow one step for every replica."""
    receiver = entry.receiver
    lock_key = json.dumps([entry.group_key, receiver.channel, receiver.target])
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", GROUP_LOCK, lock_key)
    row = await conn.fetchrow(
        "SELECT id, info FROM deliveries WHERE group_key = $1 AND channel = $2 AND target = $3"
        " AND state = 'pending' ORDER BY id LIMIT 1 FOR UPDATE",
        entry.group_key,
        receiver.channel,
        receiver.target,
    )
    if row is None:
        return False
    info = json.loads(row["info"])
    items = info.setdefault("items", [])
    if len(items) < SUMMARY_ITEMS_MAX:
        items.append(item)
    info["count"] = int(info.get("count", len(items) - 1)) + 1
    await conn.execute(
        "UPDATE deliveries SET info = $1 WHERE id = $2",
        json.dumps(info, ensure_ascii=False),
        row["id"],
    )
    return True


async def queue_digest_entries(
    conn: asyncpg.Connection,
    entries: Iterable[DigestEntry],
    inserted: set[tuple[str, str]],
    now: datetime,
) -> int:
    """Queue each entry whose item this poll inserted; the caller holds the transaction."""
    queued = 0
    for entry in entries:
        alert = entry.alert
        if (alert.source_id, alert.item_key) not in inserted:
            continue  # a known item: its alerts were decided when it was first seen
        await conn.execute(pg.INSERT_ALERT, *pg.alert_args(alert))  # no-op if recorded
        status = await conn.execute(
            "INSERT INTO digest_entries (digest_id, alert_id, story_id, queued_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (digest_id, alert_id) DO NOTHING",
            entry.digest_id,
            alert.id,
            entry.story_id,
            now,
        )
        queued += _count(status)
    return queued


# -- read before decide ---------------------------------------------------------------------


async def policy_rows(
    conn: asyncpg.Connection, now: datetime, story_window: float, rule_ids: Iterable[str]
) -> PolicyRows:
    since = now - timedelta(seconds=story_window)
    rows = await conn.fetch(SELECT_STORIES + " WHERE last_seen_at >= $1", since)
    stories = tuple(story_from_row(row) for row in rows)
    ids = [story.id for story in stories]
    told: dict[str, frozenset[tuple[str, str]]] = {story_id: frozenset() for story_id in ids}
    receivers: dict[str, set[tuple[str, str]]] = {}
    for row in await conn.fetch(
        "SELECT DISTINCT story_id, channel, target FROM deliveries"
        " WHERE story_id = ANY($1::text[]) AND kind IN ('alert', 'parent')",
        ids,
    ):
        receivers.setdefault(row["story_id"], set()).add((row["channel"], row["target"]))
    told.update((story_id, frozenset(pairs)) for story_id, pairs in receivers.items())
    last = {
        (row["rule_id"], row["story_id"]): row["at"]
        for row in await conn.fetch(
            "SELECT rule_id, story_id, MAX(created_at) AS at FROM alerts"
            " WHERE story_id = ANY($1::text[]) AND disposition = 'sent'"
            " GROUP BY rule_id, story_id",
            ids,
        )
    }
    wanted = sorted(set(rule_ids))
    sent = dict.fromkeys(wanted, 0)
    for row in await conn.fetch(
        "SELECT rule_id, COUNT(*) AS n FROM alerts WHERE rule_id = ANY($1::text[])"
        " AND created_at >= $2 AND disposition = 'sent' GROUP BY rule_id",
        wanted,
        now - timedelta(hours=1),
    ):
        sent[row["rule_id"]] = int(row["n"])
    return PolicyRows(stories, told, last, sent)


# -- digests ----------------------------------------------------------------------------


async def claim_digest(  # noqa: PLR0917 (one transaction's inputs)
    conn: asyncpg.Connection,
    digest_id: str,
    period: tuple[datetime, datetime],
    alert_ids: Sequence[str],
    messages: Sequence[Message],
    now: datetime,
) -> bool:
    """Claim (digest, period start), take the entries and enqueue the messages; the caller
    holds the transaction. False, writing nothing, when the period was claimed before: a
    replica that loses the race waits on the winner's insert and then finds it."""
    start, end = period
    claim_id = await conn.fetchval(
        "INSERT INTO digest_claims (digest_id, period_start, period_end, claimed_at, entries)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest_id, period_start) DO NOTHING"
        " RETURNING id",
        digest_id,
        pg._utc(start),
        pg._utc(end),
        now,
        len(alert_ids),
    )
    if claim_id is None:
        return False
    await conn.execute(
        "UPDATE digest_entries SET claim_id = $1"
        " WHERE digest_id = $2 AND alert_id = ANY($3::text[]) AND claim_id IS NULL",
        claim_id,
        digest_id,
        list(alert_ids),
    )
    await insert_messages(conn, messages, now)
    return True


# -- silences ----------------------------------------------------------------------------

SELECT_SILENCE: Final = (
    "SELECT id, matchers, starts_at, ends_at, author, comment, created_at FROM silences"
)


def silence_from_row(row: Row) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple((str(k), str(v)) for k, v in json.loads(row["matchers"])),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        author=row["author"],
        comment=row["comment"],
        created_at=row["created_at"],
    )


def silence_args(silence: Silence) -> tuple[object, ...]:
    return (
        silence.id,
        json.dumps([list(pair) for pair in silence.matchers], ensure_ascii=False),
        pg._utc(silence.starts_at),
        pg._utc(silence.ends_at),
        silence.author,
        silence.comment,
        pg._utc(silence.created_at),
    )


# -- operator notices ---------------------------------------------------------------------


async def set_notice(  # noqa: PLR0917 (one transaction's inputs)
    conn: asyncpg.Connection,
    key: str,
    active: bool,
    text: tuple[str, str],
    messages: Sequence[Message],
    now: datetime,
) -> bool:
    """Raise or clear a notice and enqueue its messages if that changes its state; the
    caller holds the transaction. The lock per key makes check-and-change one step."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", NOTICE_LOCK, key)
    if await notice_active(conn, key) == active:
        return False  # changed by another replica meanwhile
    subject, detail = text
    if active:
        await conn.execute(
            "INSERT INTO notices (key, active, subject, detail, raised_at, updated_at)"
            " VALUES ($1, TRUE, $2, $3, $4, $4) ON CONFLICT (key) DO UPDATE SET active = TRUE,"
            " subject = excluded.subject, detail = excluded.detail,"
            " raised_at = excluded.raised_at, cleared_at = NULL,"
            " updated_at = excluded.updated_at",
            key,
            subject,
            detail,
            now,
        )
    else:
        await conn.execute(
            "UPDATE notices SET active = FALSE, cleared_at = $2, updated_at = $2 WHERE key = $1",
            key,
            now,
        )
    await insert_messages(conn, messages, now)
    return True


async def notice_active(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> bool:
    return bool(await conn.fetchval("SELECT active FROM notices WHERE key = $1", key))


# -- the messages outbox --------------------------------------------------------------------


async def insert_messages(
    conn: asyncpg.Connection, messages: Iterable[Message], now: datetime
) -> int:
    inserted = 0
    for message in messages:
        status = await conn.execute(
            "INSERT INTO messages (kind, ref, channel, target, subject, body_text, body_html,"
            " due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
            " ON CONFLICT (ref, channel, target) DO NOTHING",
            message.kind,
            message.ref,
            message.channel,
            message.target,
            message.subject,
            message.text,
            message.html,
            now,
        )
        inserted += _count(status)
    return inserted


MESSAGE_COLUMNS: Final = "id, kind, ref, channel, target, subject, body_text, body_html, attempts"

# $1 now, $2 limit, $3 lease until, $4 owner
CLAIM_MESSAGES: Final = (
    "WITH picked AS ("
    " SELECT id FROM messages WHERE state = 'pending' AND due_at <= $1"
    " AND (lease_until IS NULL OR lease_until <= $1)"
    " ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE messages AS m SET lease_until = $3, lease_owner = $4"
    " FROM picked WHERE m.id = picked.id"
    " RETURNING m.due_at, m.id, m.kind, m.ref, m.channel, m.target, m.subject, m.body_text,"
    " m.body_html, m.attempts"
)

# $1 id, $2 at, $3 text (detail when sent, the error otherwise)
MARK_MESSAGE: Final = {
    "sent": "UPDATE messages SET state = 'sent', attempts = attempts + 1, sent_at = $2,"
    " detail = $3, lease_until = NULL, lease_owner = NULL WHERE id = $1 AND state != 'sent'",
    "retry": "UPDATE messages SET attempts = attempts + 1, due_at = $2, lease_until = NULL,"
    " lease_owner = NULL, last_error = $3 WHERE id = $1 AND state = 'pending'",
    "failed": "UPDATE messages SET state = 'failed', attempts = attempts + 1,"
    " lease_until = NULL, lease_owner = NULL, failed_at = $2, last_error = $3"
    " WHERE id = $1 AND state = 'pending'",
}


def message_from_row(row: Row) -> Message:
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
