"""Row → model conversions that both backends share; each passes its own time reader
(SQLite stores ISO text, PostgreSQL returns ``datetime``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mastwatch.model import Alert

TimeReader = Callable[[Any], datetime | None]


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
