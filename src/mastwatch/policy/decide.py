"""``decide(matches, state, now)``: what the matches of one poll become.

Pure: every input is an argument (the live stories, who already has each story, the
rules' recent counts, the active silences, the routing tree) and the output is data
(alert records, outbox entries, digest entries, changed stories) that ``commit_poll``
writes in one transaction. The steps, per item:

1. the item joins a live story (same link or similar title) or opens one;
2. corroboration or a source tag may raise the story's tier (escalation);
3. a critical alert on the story inhibits the lower-tier matches of the item;
4. silences, then routes; a receiver that never had the story gets the alert (on Slack
   as the parent of a thread), one that has it gets "also reported by …" in the thread
   and an update of the parent (email never repeats a story);
5. the re-alert interval (per rule and story) and the flood guard (per rule and hour,
   past it one summary message) throttle; quiet hours defer to their end or a digest
   (replies and escalation notices to their end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from mastwatch.config import Config, EscalationConfig
from mastwatch.fingerprint import signature
from mastwatch.model import (
    Alert,
    AlertRecord,
    DigestEntry,
    MessageKind,
    OutboxEntry,
    Receiver,
    Silence,
    Story,
)
from mastwatch.policy.facts import alert_facts
from mastwatch.policy.quiet import quiet_until
from mastwatch.policy.routing import Route, Routing
from mastwatch.policy.silences import silenced_by
from mastwatch.policy.stories import find_story, normalise_link, reported_by, story_id
from mastwatch.policy.throttle import flood_limit, flood_window, may_realert, realert_interval

Target = tuple[str, str]  # (channel, target) of a receiver


@dataclass(frozen=True, slots=True)
class Candidate:
    """A rule match on a new item, made into an alert, with what routes match on."""

    alert: Alert
    labels: tuple[tuple[str, str], ...] = ()
    source_tags: tuple[str, ...] = ()
    # the title's fingerprint (fingerprint.signature), when made already (by the parse worker
    # that matched the item); else decide makes it
    title_signature: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PolicyState:
    """What decide needs to know besides the matches (loaded from the store per poll)."""

    config: Config
    routing: Routing
    stories: tuple[Story, ...] = ()
    # story id → receivers that already got a message of their own about it
    told: Mapping[str, frozenset[Target]] = field(default_factory=dict)
    # (rule id, story id) → when that rule last alerted on that story
    last_alert: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # rule id → alerts it sent in the last hour (the flood guard's count)
    sent_last_hour: Mapping[str, int] = field(default_factory=dict)
    silences: tuple[Silence, ...] = ()


@dataclass(frozen=True, slots=True)
class Decisions:
    records: tuple[AlertRecord, ...] = ()
    entries: tuple[OutboxEntry, ...] = ()
    digest_entries: tuple[DigestEntry, ...] = ()
    stories: tuple[Story, ...] = ()


@dataclass
class _Work:
    """decide's scratch state for one call (mutable, never escapes)."""

    state: PolicyState
    now: datetime
    stories: dict[str, Story]
    told: dict[str, set[Target]]
    last_alert: dict[tuple[str, str], datetime]
    sent: dict[str, int]
    changed: dict[str, Story] = field(default_factory=dict)
    records: list[AlertRecord] = field(default_factory=list)
    entries: list[OutboxEntry] = field(default_factory=list)
    digests: list[DigestEntry] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.state.config

    def rank(self, tier: str) -> int:
        """0 for the most severe tier; unknown tiers rank last."""
        tiers = list(self.config.tiers)
        return tiers.index(tier) if tier in tiers else len(tiers)

    def top_tier(self) -> str:
        return "critical" if "critical" in self.config.tiers else next(iter(self.config.tiers))

    def save(self, story: Story) -> None:
        self.stories[story.id] = story
        self.changed[story.id] = story

    def add(self, alert: Alert, receiver: Receiver, kind: MessageKind, **extra: object) -> None:
        self.entries.append(OutboxEntry(alert, receiver, kind, **extra))  # type: ignore[arg-type]


def decide(matches: Sequence[Candidate], state: PolicyState, now: datetime) -> Decisions:
    """Turn one poll's matches into records, messages, digest entries and stories."""
    work = _Work(
        state=state,
        now=now,
        stories={s.id: s for s in state.stories},
        told={k: set(v) for k, v in state.told.items()},
        last_alert=dict(state.last_alert),
        sent=dict(state.sent_last_hour),
    )
    for group in _by_item(matches):
        _decide_item(work, group)
    return Decisions(
        records=tuple(work.records),
        entries=tuple(work.entries),
        digest_entries=tuple(work.digests),
        stories=tuple(work.changed.values()),
    )


def _by_item(matches: Sequence[Candidate]) -> list[list[Candidate]]:
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for candidate in matches:
        key = (candidate.alert.source_id, candidate.alert.item_key)
        groups.setdefault(key, []).append(candidate)
    return list(groups.values())


def _decide_item(work: _Work, group: list[Candidate]) -> None:
    group = sorted(group, key=lambda c: work.rank(c.alert.tier))
    first = group[0]
    story, known_before, new_source = _join_story(work, first)
    told_before = frozenset(work.told.get(story.id, set()))
    story, escalation = _escalate(work, story, group)
    work.save(story)
    # the first record, and the routes of its alert: it speaks for the item
    lead: tuple[AlertRecord, tuple[Route, ...]] | None = None
    for candidate in group:
        alert = _effective(work, candidate.alert, story)
        facts = alert_facts(alert, candidate.source_tags, candidate.labels)
        routes = work.state.routing.routes_for(facts)
        if work.rank(story.tier) == work.rank(work.top_tier()) and work.rank(
            alert.tier
        ) > work.rank(story.tier):
            # inhibited, but its new source still replies in the threads
            work.records.append(AlertRecord(alert, story.id, "inhibited"))
        elif (silence := silenced_by(work.state.silences, facts, work.now)) is not None:
            work.records.append(AlertRecord(alert, story.id, f"silenced:{silence.id}"))
        else:
            _route_alert(work, alert, routes, story, known=known_before)
        lead = lead or (work.records[-1], routes)
    if lead is None or lead[0].disposition.startswith("silenced:"):
        return
    record, routes = lead
    if _follow_up(
        work,
        record,
        routes,
        story,
        told_before,
        new_source=known_before and new_source,
        escalation=escalation,
    ) and record.disposition in ("throttled", "unrouted"):
        work.records[work.records.index(record)] = replace(record, disposition="threaded")


def _follow_up(
    work: _Work,
    lead: AlertRecord,
    routes: Sequence[Route],
    story: Story,
    told: frozenset[Target],
    *,
    new_source: bool,
    escalation: tuple[str, str, str] | None,
) -> bool:
    """Receivers that already have the story hear of a new source in its Slack thread
    ("also reported by …") and of an escalation (and why), each when quiet hours let it
    (:func:`_held_until`); each Slack parent is updated once, at once (an edit notifies
    nobody). Email never repeats a story, but an escalation is news. True if any was sent."""
    alert, receivers = lead.alert, _receivers_of(work, told)
    slack = [r for r in receivers if r.channel == "slack"]
    # a follow-up belongs to the story's thread: the story's tier, if more severe than the
    # lead's (an inhibited high alert on a critical story), is what quiet hours weigh
    tier = min(alert.tier, story.tier, key=work.rank)
    if new_source:
        for receiver in slack:
            said = (("source", alert.source_name),)
            due = _held_until(work, tier, routes, receiver)
            work.add(alert, receiver, MessageKind.REPLY, story_id=story.id, info=said, due_at=due)
    if escalation is not None:
        before, after, reason = escalation
        info = (("from", before), ("to", after), ("reason", reason), *_info(story))
        for receiver in receivers:
            due = _held_until(work, tier, routes, receiver)
            kind = MessageKind.ESCALATION
            work.add(alert, receiver, kind, story_id=story.id, info=info, due_at=due)
    if new_source or escalation is not None:
        for receiver in slack:
            work.add(alert, receiver, MessageKind.UPDATE, story_id=story.id, info=_info(story))
    return bool(slack and new_source) or bool(receivers and escalation)


def _join_story(work: _Work, candidate: Candidate) -> tuple[Story, bool, bool]:
    """The story the item belongs to (created if none), whether it existed, and whether
    this source is new to it."""
    alert = candidate.alert
    stories = work.config.stories
    sig = candidate.title_signature
    if sig is None:
        sig = signature(alert.title)
    found = None
    if stories.enabled:
        found = find_story(
            work.stories.values(),
            link=alert.link,
            sig=sig,
            source_id=alert.source_id,
            now=work.now,
            window=stories.window,
            threshold=stories.title_similarity,
        )
    if found is None:
        created = Story(
            id=story_id(alert.source_id, alert.item_key),
            title=alert.title,
            link=alert.link,
            link_key=normalise_link(alert.link),
            signature=sig,
            tier=alert.tier,
            reports=(),
            first_seen_at=work.now,
            last_seen_at=work.now,
        )
        return reported_by(created, alert.source_id, alert.source_name, work.now), False, True
    new_source = alert.source_id not in found.source_ids
    return reported_by(found, alert.source_id, alert.source_name, work.now), True, new_source


def _escalation_policy(work: _Work, candidate: Candidate) -> EscalationConfig | None:
    settings = work.config.escalation
    return settings.rules.get(candidate.alert.rule_id) or settings.tiers.get(candidate.alert.tier)


def _escalate(
    work: _Work, story: Story, group: list[Candidate]
) -> tuple[Story, tuple[str, str, str] | None]:
    """Raise the story's tier to the most severe of the item's tiers, and to an
    escalation's target when corroborated or tagged. Returns (from, to, reason) when an
    escalation raised it."""
    tier = min((story.tier, group[0].alert.tier), key=work.rank)
    story = replace(story, tier=tier)
    for candidate in group:
        policy = _escalation_policy(work, candidate)
        if policy is None or work.rank(policy.to) >= work.rank(story.tier):
            continue
        reason = _escalation_reason(work, story, candidate, policy)
        if reason is not None:
            raised = replace(story, tier=policy.to, escalation=reason)
            return raised, (story.tier, policy.to, reason)
    return story, None


def _escalation_reason(
    work: _Work, story: Story, candidate: Candidate, policy: EscalationConfig
) -> str | None:
    tagged = sorted(set(policy.source_tags) & set(candidate.source_tags))
    if tagged:
        return f"{candidate.alert.source_name} is tagged {tagged[0]}"
    if policy.sources is None:
        return None
    count = story.sources_since(work.now - timedelta(seconds=policy.window))
    if count < policy.sources:
        return None
    names = ", ".join(story.source_names)
    return f"reported by {count} sources within {_duration(policy.window)}: {names}"


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds)}s"


def _effective(work: _Work, alert: Alert, story: Story) -> Alert:
    """An alert on an escalated story takes the story's tier (if more severe)."""
    if story.escalation is not None and work.rank(story.tier) < work.rank(alert.tier):
        return replace(alert, tier=story.tier)
    return alert


def _route_alert(
    work: _Work,
    alert: Alert,
    routes: Sequence[Route],
    story: Story,
    *,
    known: bool,
) -> None:
    """Deliver one alert through every route it matches; record what became of it.

    ``fresh``: the rule alerted on this story before and its re-alert interval has passed,
    so receivers that have the story get a message of their own again."""
    repeat = min((r.repeat_interval for r in routes if r.repeat_interval), default=None)
    interval = realert_interval(work.config.throttle, alert.rule_id, repeat)
    key = (alert.rule_id, story.id)
    last = work.last_alert.get(key)
    fresh = last is not None and may_realert(last, work.now, interval)
    limit = flood_limit(work.config.throttle, alert.rule_id)
    if (fresh or not known) and work.sent.get(alert.rule_id, 0) >= limit:
        _flooded(work, alert, story, routes)
        return
    outcome = "unrouted"
    for route in routes:
        outcome = _better(outcome, _deliver_route(work, alert, story, route, fresh=fresh))
    if outcome == "sent":
        work.last_alert[key] = work.now
        work.sent[alert.rule_id] = work.sent.get(alert.rule_id, 0) + 1
    work.records.append(AlertRecord(alert, story.id, outcome))


_OUTCOME_ORDER = ("sent", "digest", "threaded", "throttled", "unrouted")


def _better(a: str, b: str) -> str:
    return min(a, b, key=_OUTCOME_ORDER.index)


def _deliver_route(
    work: _Work,
    alert: Alert,
    story: Story,
    route: Route,
    *,
    fresh: bool,
) -> str:
    digest, due = _timing(work, alert, route)
    if digest is not None:
        work.digests.append(DigestEntry(alert=alert, digest_id=digest, story_id=story.id))
        return "digest"
    told = work.told.setdefault(story.id, set())
    targets = work.state.routing.targets(route)
    outcome = "throttled" if targets else "unrouted"
    for receiver in targets:
        target = (receiver.channel, receiver.target)
        if target not in told or fresh:
            kind = MessageKind.PARENT if receiver.channel == "slack" else MessageKind.ALERT
            work.add(alert, receiver, kind, story_id=story.id, due_at=due)
            told.add(target)
            outcome = "sent"
    return outcome


def _timing(work: _Work, alert: Alert, route: Route) -> tuple[str | None, datetime | None]:
    """(digest id, None) to hold it for a digest, else (None, due time or None for now)."""
    if route.digest is not None:
        return route.digest, None
    due = work.now + timedelta(seconds=route.group_wait) if route.group_wait else None
    quiet, until = route.quiet_hours, _quiet_end(work, alert.tier, route)
    if quiet is None or until is None:
        return None, due
    if quiet.defer.startswith("digest:"):
        return quiet.defer.removeprefix("digest:"), None
    return None, max(until, due or until)


def _quiet_end(work: _Work, tier: str, route: Route) -> datetime | None:
    """The end of the route's quiet period if now falls in one that holds a message of
    ``tier`` (it does not let that tier through), else None."""
    quiet = route.quiet_hours
    if quiet is None or (quiet.allow_critical and tier == work.top_tier()):
        return None
    return quiet_until(quiet, work.now)


def _held_until(
    work: _Work, tier: str, routes: Sequence[Route], receiver: Receiver
) -> datetime | None:
    """When a follow-up (a reply, an escalation notice) of ``tier`` may reach ``receiver``:
    None for at once. Held to the end of the quiet hours when every route of the alert that
    reaches the receiver is in its quiet hours now and does not let that tier through, as an
    alert would be (a route that defers to a digest holds it to the same end: a
    digest collects alerts, not replies). A receiver none of these routes reaches has the
    story from another rule's route: it hears at once."""
    ends = []
    for route in routes:
        if receiver in work.state.routing.targets(route):
            until = _quiet_end(work, tier, route)
            if until is None:  # this route lets it through now
                return None
            ends.append(until)
    return min(ends, default=None)


def _info(story: Story) -> tuple[tuple[str, object], ...]:
    """What an update of the parent shows: the story's title, link, tier and sources."""
    return (
        ("title", story.title),
        ("link", story.link),
        ("tier", story.tier),
        ("sources", list(story.source_names)),
        ("escalation", story.escalation),
    )


def _receivers_of(work: _Work, told: frozenset[Target]) -> list[Receiver]:
    return [Receiver(channel, target) for channel, target in sorted(told)]


def _flooded(work: _Work, alert: Alert, story: Story, routes: Sequence[Route]) -> None:
    """Past the rule's hourly limit: one summary per receiver at the end of the hour."""
    hour, ends = flood_window(work.now)
    for route in routes:
        for receiver in work.state.routing.targets(route):
            work.add(
                alert,
                receiver,
                MessageKind.SUMMARY,
                story_id=story.id,
                due_at=ends,
                info=(("rule", alert.rule_title), ("hour", hour)),
                group_key=f"flood:{alert.rule_id}:{hour}",
            )
    work.records.append(AlertRecord(alert, story.id, "flooded"))


Decider = Callable[[Sequence[Candidate], PolicyState, datetime], Decisions]
