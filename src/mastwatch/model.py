"""Plain data passed between the stages of the pipeline.

Every arrow in the data flow (see docs/architecture.md) carries one of these frozen
dataclasses (or named tuples), so each stage can be tested with literal values and no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any, NamedTuple

DEFAULT_TIERS: tuple[str, ...] = ("critical", "high", "normal", "digest")


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a feed or page, as the source published it (text not yet normalised)."""

    source_id: str
    key: str  # layered dedup key: "guid:…", "link:…" or "hash:…"
    title: str
    link: str | None = None
    guid: str | None = None
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    tags: tuple[str, ...] = ()
    author: str | None = None
    # A digest of what a reader sees, so an edited item can be told from a repeat. Computed
    # once, when the item is made (in the parse worker), not on each of its several uses.
    content_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for part in (self.title, self.link or "", self.summary, self.content):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        object.__setattr__(self, "content_hash", digest.hexdigest())

    # Pickled by a parse worker, unpickled by the daemon's pool thread, which needs the GIL
    # the event loop holds: 15,000 of them in a cold cycle. The dataclass default walks
    # ``fields()`` for each; one attrgetter call and the slots' own setters take half the
    # time both ways (130 -> 66 us to unpickle a 30-item feed, bench/changes.md).
    def __getstate__(self) -> tuple[object, ...]:
        return _item_state(self)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for set_slot, value in zip(_ITEM_SLOT_SETTERS, state, strict=True):
            set_slot(self, value)


_ITEM_FIELDS = tuple(f.name for f in fields(Item))  # content_hash included, not recomputed
_item_state = attrgetter(*_ITEM_FIELDS)
_ITEM_SLOT_SETTERS = tuple(getattr(Item, name).__set__ for name in _ITEM_FIELDS)


@dataclass(frozen=True, slots=True)
class Document:
    """An item's text normalised once (NFKC, case-folded, plain text) for matching."""

    item: Item
    title: str
    summary: str
    content: str
    source_id: str
    source_tags: tuple[str, ...] = ()


# Evidence and Match are named tuples rather than frozen dataclasses: as immutable, but made
# in a quarter of the time or less (a frozen dataclass sets each field through
# object.__setattr__), and the matcher makes one Match and a few Evidence for every rule
# that fires.
class Evidence(NamedTuple):
    """One place a rule's term was found: ``Document.<field>[start:end]`` (normalised text)."""

    term: str  # as the rule wrote it
    field: str  # title, summary, content, source, tags or link
    start: int
    end: int


class Match(NamedTuple):
    """A rule that fired on a document, with the evidence that made it fire."""

    rule_id: str
    rule_title: str
    tier: str
    matched: tuple[str, ...]  # the terms (as the rule wrote them) found in the text
    labels: tuple[tuple[str, str], ...] = ()
    evidence: tuple[Evidence, ...] = ()  # where each matched term was found


@dataclass(frozen=True, slots=True)
class Alert:
    """What a subscriber is told: an item, the rule that fired and why."""

    id: str  # stable: derived from source, item key and rule, so a replay cannot duplicate it
    rule_id: str
    rule_title: str
    tier: str
    source_id: str
    source_name: str
    item_key: str
    title: str
    link: str | None
    summary: str
    matched: tuple[str, ...]
    published: datetime | None
    created_at: datetime

    @staticmethod
    def make_id(source_id: str, item_key: str, rule_id: str) -> str:
        raw = f"{source_id}\x00{item_key}\x00{rule_id}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert bound for one receiver, as a row of the outbox."""

    id: int
    alert: Alert
    channel: str  # notifier kind: "slack", "email" or "console"
    target: str  # a Slack channel, an email address, or "stdout"
    attempts: int = 0
    state: DeliveryState = DeliveryState.PENDING
    last_error: str | None = None
    kind: str = "alert"  # a MessageKind value
    story_id: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    thread_ts: str | None = None  # set by the worker for a story's Slack thread


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where a delivery goes: a notifier kind and its target."""

    channel: str
    target: str


@dataclass(slots=True)
class SourceState:
    """What the store remembers about a source between polls (and across restarts)."""

    source_id: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    next_check_at: datetime | None = None
    error_count: int = 0
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    baseline_done: bool = False
    disabled: bool = False
    # a page source: each selector (setting name) that found nothing on the last polls,
    # with how many polls in a row (sources.page.count_empty_runs); () for a feed
    empty_runs: tuple[tuple[str, int], ...] = ()


# -- digests and silences (issue 5, helper P2) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """An alert held for a digest (the ``digest`` tier, a route to a digest, or deferred by
    quiet hours) instead of being delivered at once. Stored with the poll's transaction."""

    alert: Alert
    digest_id: str  # a ``[[digests]]`` id
    story_id: str | None = None  # groups the entries of one story in the digest


@dataclass(frozen=True, slots=True)
class Silence:
    """An operator's "do not deliver alerts matching this until then" (``mastwatch silence``).

    Every matcher must hold (``key=value`` against the alert's facts); a silence is active
    from ``starts_at`` until ``ends_at`` (expiring one sets ``ends_at`` to now).
    """

    id: str
    matchers: tuple[tuple[str, str], ...]
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    created_at: datetime

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


# -- alert policy: stories and outbox entries (issue 5, helper P1) -------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """One source reporting a story, and when it was first seen doing so."""

    source_id: str
    source_name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Story:
    """A cluster of items about one piece of news (see ``policy/stories.py``).

    ``tier`` is the highest tier raised on it, after escalation."""

    id: str
    title: str
    link: str | None
    link_key: str | None
    signature: tuple[int, ...]
    tier: str
    reports: tuple[Report, ...]
    first_seen_at: datetime
    last_seen_at: datetime
    escalation: str | None = None  # the reason, once escalated

    @property
    def source_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.source_id for r in self.reports))

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.source_name for r in self.reports))

    def sources_since(self, since: datetime) -> int:
        return len({r.source_id for r in self.reports if r.at >= since})


class MessageKind(StrEnum):
    """What an outbox row sends (the ``deliveries.kind`` column)."""

    ALERT = "alert"  # a message of its own (email, console, Slack without a story)
    PARENT = "parent"  # a Slack message that opens a story's thread
    REPLY = "reply"  # "also reported by …" in the story's thread
    UPDATE = "update"  # chat.update of the parent: source count, tier
    ESCALATION = "escalation"  # the tier was raised, and why
    SUMMARY = "summary"  # the flood guard's one message for the alerts past the limit


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message for one receiver, as decided by ``policy.decide``."""

    alert: Alert
    receiver: Receiver
    kind: MessageKind = MessageKind.ALERT
    story_id: str | None = None
    due_at: datetime | None = None  # None: at once
    info: tuple[tuple[str, object], ...] = ()  # JSON-able extras for the renderer
    group_key: str | None = None  # summaries: one row per key and receiver, appended to


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as recorded, with its story and what became of it: ``sent``,
    ``threaded``, ``digest``, ``silenced:<id>``, ``inhibited``, ``throttled``, ``flooded``,
    ``unrouted``."""

    alert: Alert
    story_id: str | None
    disposition: str


@dataclass(frozen=True, slots=True)
class PolicyRows:
    """The policy state as stored (see ``policy.decide.PolicyState``), read
    before each decide."""

    stories: tuple[Story, ...]
    told: dict[str, frozenset[tuple[str, str]]]
    last_alert: dict[tuple[str, str], datetime]
    sent_last_hour: dict[str, int]
    silences: tuple[Silence, ...] = ()  # active at the time asked


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a source leaves to persist, written in one transaction."""

    state: SourceState
    items: tuple[Item, ...] = ()
    # each alert with the receivers it goes to; enqueued only if its item is new
    outbox: tuple[tuple[Alert, tuple[Receiver, ...]], ...] = ()
    # alerts held for a digest; like the outbox, queued only if the alert's item is new
    digest_entries: tuple[DigestEntry, ...] = ()
    # the alert policy's decisions (P1): every alert with its disposition, the messages,
    # and the stories created or changed; like the outbox, only for items new to the store
    records: tuple[AlertRecord, ...] = ()
    entries: tuple[OutboxEntry, ...] = ()
    stories: tuple[Story, ...] = ()


@dataclass(frozen=True, slots=True)
class Message:
    """A pre-rendered message for one receiver (a digest, an operator notice), sent through
    the ``messages`` outbox rather than the per-alert ``deliveries`` one."""

    kind: str  # "digest" or "notice"
    ref: str  # what it is about: "digest:<id>:<period start>", "notice:<key>:<event>"
    channel: str  # "slack", "email" or "console"
    target: str
    subject: str
    text: str
    html: str | None = None
    id: int = 0  # set once stored
    attempts: int = 0
