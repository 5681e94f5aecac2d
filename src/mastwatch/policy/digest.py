"""Digests: alerts held back (the ``digest`` tier, routes to a digest, quiet hours) and sent
together on a cron schedule in a time zone.

A digest's *period* is the time between two of its cron fire times; the digest sent at a
fire time covers every entry queued before it and not taken by an earlier digest (so an
entry is never dropped, even when a period was missed while the daemon was down). The
store's claim of (digest id, period start) is unique and is written in the same transaction
as the digest's outbox messages: a restart or a second replica running the same job finds
the period claimed and sends nothing. A period with no entries sends nothing at all.

Everything here but :func:`run_digest` is pure and takes the time as an argument.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog
from apscheduler.triggers.cron import CronTrigger
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mastwatch.config import DigestConfig
from mastwatch.model import DigestEntry, Message

log = structlog.get_logger(__name__)

# How far back to look for the previous fire time: widening windows keep a minutely cron
# cheap while a monthly or yearly one is still found.
_LOOKBACKS = tuple(timedelta(days=d) for d in (1 / 24, 1, 8, 32, 367, 367 * 4))
_ONE_US = timedelta(microseconds=1)
SLACK_TEXT_LIMIT = 2900  # characters: under the 3000 of one Block Kit section


def make_trigger(digest: DigestConfig) -> CronTrigger:
    """The APScheduler trigger of a digest: its cron fields read in its time zone."""
    return CronTrigger.from_crontab(digest.cron, timezone=ZoneInfo(digest.timezone))


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in ``[start, end]``, oldest first."""
    found: list[datetime] = []
    moment = trigger.get_next_fire_time(None, start)
    while moment is not None and moment <= end:
        found.append(moment)
        moment = trigger.get_next_fire_time(moment, moment + _ONE_US)
    return found


def period_ending_at(trigger: CronTrigger, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the period that the latest fire time at or before ``now`` closes."""
    for lookback in _LOOKBACKS:
        fires = fire_times(trigger, now - lookback, now)
        if len(fires) >= 2:
            return fires[-2], fires[-1]
    raise ValueError(f"cron {trigger} fired fewer than twice in four years before {now}")


# -- grouping


@dataclass(slots=True)
class StoryGroup:
    title: str
    link: str | None
    tier: str
    sources: list[str] = field(default_factory=list)
    count: int = 0


@dataclass(slots=True)
class TopicGroup:
    name: str
    stories: list[StoryGroup] = field(default_factory=list)


def group_entries(entries: Sequence[DigestEntry], topics: Mapping[str, str]) -> list[TopicGroup]:
    """Topic (the rule's ``topic`` label, else its title) → story (``story_id``, else the
    alert itself), in the order first seen; each story lists its distinct sources."""
    by_topic: dict[str, TopicGroup] = {}
    stories: dict[tuple[str, str], StoryGroup] = {}
    for entry in entries:
        alert = entry.alert
        topic_name = topics.get(alert.rule_id) or alert.rule_title
        topic = by_topic.setdefault(topic_name, TopicGroup(topic_name))
        key = (topic_name, entry.story_id or alert.id)
        story = stories.get(key)
        if story is None:
            story = stories[key] = StoryGroup(alert.title, alert.link, alert.tier)
            topic.stories.append(story)
        if alert.source_name not in story.sources:
            story.sources.append(alert.source_name)
        story.count += 1
    return list(by_topic.values())


# -- rendering

_ENV = Environment(
    loader=PackageLoader("mastwatch", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    text: str
    html: str


def render_digest(
    digest: DigestConfig,
    period: tuple[datetime, datetime],
    entries: Sequence[DigestEntry],
    topics: Mapping[str, str],
) -> RenderedDigest:
    zone = ZoneInfo(digest.timezone)
    start, end = (moment.astimezone(zone) for moment in period)
    context = {
        "title": digest.display_title,
        "digest_id": digest.id,
        "timezone": digest.timezone,
        "period_start": start.strftime("%Y-%m-%d %H:%M"),
        "period_end": end.strftime("%Y-%m-%d %H:%M"),
        "count": len(entries),
        "topics": group_entries(entries, topics),
    }
    subject = f"{digest.display_title}: {len(entries)} alerts, {end:%Y-%m-%d %H:%M}"
    return RenderedDigest(
        subject=subject,
        text=_ENV.get_template("digest.txt.j2").render(context),
        html=_ENV.get_template("digest.html.j2").render(context),
    )


def digest_messages(
    digest: DigestConfig,
    period_start: datetime,
    rendered: RenderedDigest,
    available: Collection[str],
) -> list[Message]:
    """One message per receiver. A receiver whose channel is not configured (no Slack
    token, no SMTP host) becomes the console, as alert receivers do (``make run``)."""
    ref = f"digest:{digest.id}:{period_start.astimezone(UTC).isoformat()}"
    wanted = [("email", address) for address in digest.email]
    if digest.slack:
        wanted.append(("slack", digest.slack))
    if digest.console:
        wanted.append(("console", "stdout"))
    messages: list[Message] = []
    for channel, target in wanted:
        real = (channel, target) if channel in available else ("console", "stdout")
        text = rendered.text
        if real[0] == "slack" and len(text) > SLACK_TEXT_LIMIT:
            text = text[: SLACK_TEXT_LIMIT - 1] + "…"
        message = Message(
            kind="digest",
            ref=ref,
            channel=real[0],
            target=real[1],
            subject=rendered.subject,
            text=text,
            html=rendered.html if real[0] == "email" else None,
        )
        if all((m.channel, m.target) != real for m in messages):
            messages.append(message)
    return messages


# -- the effect


class DigestStore(Protocol):
    async def waiting_digest_entries(
        self, digest_id: str, before: datetime
    ) -> list[DigestEntry]: ...

    async def claim_digest(
        self,
        digest_id: str,
        period: tuple[datetime, datetime],
        alert_ids: Sequence[str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool: ...


async def run_digest(
    store: DigestStore,
    digest: DigestConfig,
    *,
    now: datetime,
    topics: Mapping[str, str],
    available: Collection[str],
) -> int:
    """Send the digest of the period closed by the latest fire time at or before ``now``:
    enqueue its messages unless the period is empty or already claimed. Returns the
    number of entries sent (0 for an empty or already sent period)."""
    period = period_ending_at(make_trigger(digest), now)
    entries = await store.waiting_digest_entries(digest.id, period[1])
    if not entries:
        log.info("digest_empty", digest_id=digest.id, period_start=period[0].isoformat())
        return 0
    rendered = render_digest(digest, period, entries, topics)
    messages = digest_messages(digest, period[0], rendered, available)
    alert_ids = [entry.alert.id for entry in entries]
    if not await store.claim_digest(digest.id, period, alert_ids, messages, now):
        log.info("digest_already_sent", digest_id=digest.id, period_start=period[0].isoformat())
        return 0
    log.info(
        "digest_enqueued",
        digest_id=digest.id,
        period_start=period[0].isoformat(),
        entries=len(entries),
        messages=len(messages),
    )
    return len(entries)
