"""The SQLite statements for the alert policy: stories, message kinds, dispositions.

Plain functions of a connection, run on the store's worker thread like ``_sqlite_ops``.
What ``decide`` needs between polls is read back from the tables it writes: who already
has a story is the story's parent/alert deliveries, a rule's last alert on a story and
its count in the last hour are the alerts recorded as ``sent``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from mastwatch.model import AlertRecord, OutboxEntry, PolicyRows, PollResult, Story
from mastwatch.store._sqlite_ops import insert_alert, required_time, to_text
from mastwatch.store.rows import (
    SELECT_STORIES,
    merged_reports_json,
    reports_to_json,
    story_from_row,
)

SUMMARY_ITEMS_MAX = 50  # a flood summary lists this many items, then counts the rest


# -- written inside commit_poll's transaction


def commit_policy(
    conn: sqlite3.Connection, result: PollResult, inserted: set[tuple[str, str]], now: str
) -> int:
    """Record the new items' alerts (with disposition), their stories and messages.
    The caller holds the transaction. Returns the number of deliveries enqueued."""
    new = [r for r in result.records if (r.alert.source_id, r.alert.item_key) in inserted]
    for record in new:
        record_alert(conn, record)
    wanted = {r.story_id for r in new}
    for story in result.stories:
        if story.id in wanted:
            save_story(conn, story)
    enqueued = 0
    for entry in result.entries:
        if (entry.alert.source_id, entry.alert.item_key) in inserted:
            enqueued += enqueue_entry(conn, entry, now)
    return enqueued


def record_alert(conn: sqlite3.Connection, record: AlertRecord) -> None:
    insert_alert(conn, record.alert)
    conn.execute(
        "UPDATE alerts SET story_id = ?, disposition = ? WHERE id = ?",
        (record.story_id, record.disposition, record.alert.id),
    )


def save_story(conn: sqlite3.Connection, story: Story) -> None:
    """Insert the story or merge it into the stored one. The caller holds the write lock
    (BEGIN IMMEDIATE), so a process sharing the file cannot add a report in between; the
    merge keeps a report another process stored since this poll read the story."""
    row = conn.execute(
        "SELECT tier, reports, last_seen_at, escalation FROM stories WHERE id = ?", (story.id,)
    ).fetchone()
    if row is None:
        reports = reports_to_json(story.reports, to_text)
        tier, last_seen, escalation = story.tier, to_text(story.last_seen_at), story.escalation
    else:
        tier, reports, last_seen, escalation = merge_story(row, story)
    conn.execute(
        "INSERT INTO stories (id, title, link, link_key, signature, tier, reports,"
        " first_seen_at, last_seen_at, escalation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET tier = excluded.tier, reports = excluded.reports,"
        " last_seen_at = excluded.last_seen_at, escalation = excluded.escalation",
        (
            story.id,
            story.title,
            story.link,
            story.link_key,
            json.dumps(list(story.signature)),
            tier,
            reports,
            to_text(story.first_seen_at),
            last_seen,
            escalation,
        ),
    )


def merge_story(row: sqlite3.Row, story: Story) -> tuple[str, str, str, str | None]:
    """(tier, reports as JSON, last seen, escalation): the stored story and this poll's
    view of it together. Reports are a union by source; an escalation only ever raises
    the tier."""
    escalated = story.escalation is not None or row["escalation"] is None
    return (
        story.tier if escalated else row["tier"],
        merged_reports_json(row["reports"], story.reports, to_text),
        max(row["last_seen_at"], to_text(story.last_seen_at)),  # fixed-width UTC text
        story.escalation or row["escalation"],
    )


def enqueue_entry(conn: sqlite3.Connection, entry: OutboxEntry, now: str) -> int:
    due = to_text(entry.due_at) if entry.due_at is not None else now
    info: dict[str, Any] = dict(entry.info)
    alert = entry.alert
    if entry.group_key is not None:
        item = {"title": alert.title, "link": alert.link, "source": alert.source_name}
        if _append_to_group(conn, entry, item):
            return 0
        info["items"] = [item]
    cursor = conn.execute(
        "INSERT INTO deliveries (alert_id, channel, target, kind, story_id, info, group_key,"
        " due_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (alert_id, channel, target, kind) DO NOTHING",
        (
            alert.id,
            entry.receiver.channel,
            entry.receiver.target,
            entry.kind.value,
            entry.story_id,
            json.dumps(info, ensure_ascii=False),
            entry.group_key,
            due,
            now,
        ),
    )
    return cursor.rowcount


def _append_to_group(conn: sqlite3.Connection, entry: OutboxEntry, item: dict[str, Any]) -> bool:
    """Add one item to the pending summary of this group and receiver, if there is one."""
    row = conn.execute(
        "SELECT id, info FROM deliveries WHERE group_key = ? AND channel = ? AND target = ?"
        " AND state = 'pending'",
        (entry.group_key, entry.receiver.channel, entry.receiver.target),
    ).fetchone()
    if row is None:
        return False
    info = json.loads(row["info"])
    items = info.setdefault("items", [])
    if len(items) < SUMMARY_ITEMS_MAX:
        items.append(item)
    info["count"] = int(info.get("count", len(items) - 1)) + 1
    conn.execute(
        "UPDATE deliveries SET info = ? WHERE id = ?",
        (json.dumps(info, ensure_ascii=False), row["id"]),
    )
    return True


# -- read before decide


def policy_rows(
    conn: sqlite3.Connection, now: datetime, story_window: float, rule_ids: Iterable[str]
) -> PolicyRows:
    since = to_text(now - timedelta(seconds=story_window))
    stories = tuple(
        story_from_row(row, required_time)
        for row in conn.execute(SELECT_STORIES + " WHERE last_seen_at >= ?", (since,))
    )
    # one query each for every live story's receivers and last alerts, not two per story:
    # the live stories grow through a busy cycle and every poll with a match reads them
    receivers: dict[str, set[tuple[str, str]]] = {story.id: set() for story in stories}
    for story_id, channel, target in conn.execute(
        "SELECT DISTINCT story_id, channel, target FROM deliveries WHERE story_id IN"
        " (SELECT id FROM stories WHERE last_seen_at >= ?) AND kind IN ('alert', 'parent')",
        (since,),
    ):
        receivers.setdefault(story_id, set()).add((channel, target))
    told = {story_id: frozenset(pairs) for story_id, pairs in receivers.items()}
    last = {
        (rule_id, story_id): required_time(at)
        for story_id, rule_id, at in conn.execute(
            "SELECT story_id, rule_id, MAX(created_at) FROM alerts WHERE story_id IN"
            " (SELECT id FROM stories WHERE last_seen_at >= ?) AND disposition = 'sent'"
            " GROUP BY story_id, rule_id",
            (since,),
        )
    }
    hour_ago = to_text(now - timedelta(hours=1))
    sent = {
        rule_id: int(
            conn.execute(
                "SELECT COUNT(*) FROM alerts WHERE rule_id = ? AND created_at >= ?"
                " AND disposition = 'sent'",
                (rule_id, hour_ago),
            ).fetchone()[0]
        )
        for rule_id in set(rule_ids)
    }
    return PolicyRows(stories, told, last, sent)


# -- read by the delivery worker


def story_parent(
    conn: sqlite3.Connection, story_id: str, channel: str, target: str
) -> tuple[str, str | None] | None:
    """The newest parent message of the story for this receiver: (state, ts), or None."""
    row = conn.execute(
        "SELECT state, detail FROM deliveries WHERE story_id = ? AND channel = ?"
        " AND target = ? AND kind = 'parent' ORDER BY (state = 'sent') DESC, id DESC LIMIT 1",
        (story_id, channel, target),
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def defer_delivery(conn: sqlite3.Connection, delivery_id: int, at: datetime) -> bool:
    """Release a claimed delivery until ``at`` without counting an attempt (a thread
    reply waiting for its parent has not failed)."""
    cursor = conn.execute(
        "UPDATE deliveries SET due_at = ?, lease_until = NULL, lease_owner = NULL"
        " WHERE id = ? AND state = 'pending'",
        (to_text(at), delivery_id),
    )
    return cursor.rowcount == 1


def stories_since(conn: sqlite3.Connection, since: datetime) -> list[Story]:
    rows = conn.execute(
        SELECT_STORIES + " WHERE last_seen_at >= ? ORDER BY last_seen_at DESC",
        (to_text(since),),
    )
    return [story_from_row(row, required_time) for row in rows]


def alert_disposition(conn: sqlite3.Connection, alert_id: str) -> tuple[str | None, str] | None:
    row = conn.execute(
        "SELECT story_id, disposition FROM alerts WHERE id = ?", (alert_id,)
    ).fetchone()
    return None if row is None else (row[0], str(row[1]))
