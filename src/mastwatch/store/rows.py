"""Row → model conversions that both backends share; each passes its own time reader
(SQLite stores ISO text, PostgreSQL returns ``datetime``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mastwatch.model import Alert, DeliveryState, Report, Story

TimeReader = Callable[[Any], datetime | None]
# what ``message_counts`` counts: every (kind, state) a ``messages`` row can have
MESSAGE_COUNT_KEYS = tuple(
    (kind, state.value) for kind in ("digest", "notice") for state in DeliveryState
)


def runs_to_json(runs: tuple[tuple[str, int], ...]) -> str:
    """``SourceState.empty_runs`` as its column holds it."""
    return json.dumps([[name, run] for name, run in runs])


def runs_from_json(text: str | None) -> tuple[tuple[str, int], ...]:
    return tuple((str(name), int(run)) for name, run in json.loads(text or "[]"))


def _as_is(value: Any) -> datetime | None:
    return value  # type: ignore[no-any-return]


def alert_from_row(row: Mapping[str, Any], read_time: TimeReader = _as_is) -> Alert:
    """An ``alerts`` row (columns by name) as an :class:`Alert`."""
    created_at = read_time(row["created_at"])
    if created_at is None:  # NOT NULL in both schemas
        raise ValueError(f"alert {row['id']} has no created_at")
    return Alert(
        id=row["id"],
        rule_id=row["rule_id"],
        rule_title=row["rule_title"],
        tier=row["tier"],
        source_id=row["source_id"],
        source_name=row["source_name"],
        item_key=row["item_key"],
        title=row["title"],
        link=row["link"],
        summary=row["summary"],
        matched=tuple(str(term) for term in json.loads(row["matched"])),
        published=read_time(row["published"]),
        created_at=created_at,
    )


_STORY_COLUMNS = (
    "id",
    "title",
    "link",
    "link_key",
    "signature",
    "tier",
    "reports",
    "first_seen_at",
    "last_seen_at",
    "escalation",
)
SELECT_STORIES = "SELECT " + ", ".join(_STORY_COLUMNS) + " FROM stories"  # noqa: S608 (constants)


def story_from_row(row: Mapping[str, Any], read_time: TimeReader = _as_is) -> Story:
    """A ``stories`` row (columns by name, as ``SELECT_STORIES`` reads them) as a Story."""
    values = tuple(row[name] for name in _STORY_COLUMNS)
    return _story_from_values(values, read_time)


# Every poll with a match reads every live story (a new title is compared with all of
# them), so through a busy cycle the same rows are decoded again and again: remembered by
# their whole content (a row that changed is a new key), about 4 kB each.
@functools.lru_cache(maxsize=2048)
def _story_from_values(values: tuple[Any, ...], read_time: TimeReader) -> Story:
    story_id, title, link, link_key, signature, tier, reports, first, last, escalation = values
    first_seen, last_seen = read_time(first), read_time(last)
    if first_seen is None or last_seen is None:  # NOT NULL in both schemas
        raise ValueError(f"story {story_id} has no first or last seen time")
    return Story(
        id=story_id,
        title=title,
        link=link,
        link_key=link_key,
        signature=tuple(int(v) for v in json.loads(signature)),
        tier=tier,
        reports=tuple(_report(s, n, at) for s, n, at in json.loads(reports)),
        first_seen_at=first_seen,
        last_seen_at=last_seen,
        escalation=escalation,
    )


# A story reported by many sources is decoded again each time it gains a report, and
# each time all its earlier reports with it: each (immutable) report is made once.
@functools.lru_cache(maxsize=16384)
def _report(source_id: str, source_name: str, at: str) -> Report:
    return Report(source_id, source_name, _utc_from_text(at))


def reports_to_json(reports: Iterable[Report], write_time: Callable[[datetime], str]) -> str:
    """A story's ``reports`` column: ``[source id, source name, time]`` per report."""
    return merged_reports_json("[]", reports, write_time)


def merged_reports_json(
    stored: str, reports: Iterable[Report], write_time: Callable[[datetime], str]
) -> str:
    """The stored ``reports`` column with the reports of sources it does not hold yet
    appended (a union by source). The stored entries are kept as written, not decoded
    and written again: a story is saved once per report it gains, so with a hundred
    sources on one story re-encoding every report at each save made a cycle quadratic."""
    entries = json.loads(stored)
    known = {entry[0] for entry in entries}
    fresh = [r for r in reports if r.source_id not in known]
    if not fresh:
        return stored
    entries += [[r.source_id, r.source_name, write_time(r.at)] for r in fresh]
    return json.dumps(entries, ensure_ascii=False)


def _utc_from_text(text: str) -> datetime:
    """Report times are ISO text in both backends, always written with their offset."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
