"""Quiet hours: a daily period, in an IANA time zone, during which a route defers alerts.

``22:00`` to ``07:00`` wraps midnight. The end is computed in the route's zone on the local
calendar, so daylight-saving changes move it with the wall clock as people expect.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mastwatch.config import QuietHours


def _at(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """The end (UTC) of the quiet period ``now`` falls in, or ``None`` outside one."""
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    start, end = _at(quiet.start), _at(quiet.end)
    if start == end:
        return None  # an empty period, not a whole day
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:  # wraps midnight
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)
