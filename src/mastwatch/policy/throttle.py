"""Throttling: a re-alert interval per rule and story, and a per-rule flood guard.

Both are pure functions of what the store counted; the flood guard never silences: the
alerts past the limit go into one summary message per rule and clock hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mastwatch.config import ThrottleConfig


def realert_interval(settings: ThrottleConfig, rule_id: str, route_repeat: float | None) -> float:
    """The rule's own interval, else the route's ``repeat_interval``, else the default."""
    own = settings.rules.get(rule_id)
    if own is not None and own.realert_interval is not None:
        return own.realert_interval
    return route_repeat or settings.realert_interval


def flood_limit(settings: ThrottleConfig, rule_id: str) -> int:
    own = settings.rules.get(rule_id)
    if own is not None and own.flood_max_per_hour is not None:
        return own.flood_max_per_hour
    return settings.flood_max_per_hour


def may_realert(last: datetime | None, now: datetime, interval: float) -> bool:
    return last is None or now - last >= timedelta(seconds=interval)


def flood_window(now: datetime) -> tuple[str, datetime]:
    """The clock hour ``now`` falls in, as a key, and when its summary goes out."""
    start = now.replace(minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%dT%H"), start + timedelta(hours=1)
