"""Plain data passed between the stages of the pipeline.

Every arrow in the data flow (see docs/architecture.md) carries one of these frozen
dataclasses, so each stage can be tested with literal values and no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

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


@dataclass(frozen=True, slots=True)
class Document:
    """An item's text normalised once (NFKC, case-folded, plain text) for matching."""

    item: Item
    title: str
    summary: str
    content: str
    source_id: str
    source_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    """One place a rule's term was found: ``Document.<field>[start:end]`` (normalised text)."""

    term: str  # as the rule wrote it
    field: str  # title, summary, content, source, tags or link
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Match:
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


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a source leaves to persist, written in one transaction."""

    state: SourceState
    items: tuple[Item, ...] = ()
    # each alert with the receivers it goes to; enqueued only if its item is new
    outbox: tuple[tuple[Alert, tuple[Receiver, ...]], ...] = ()
