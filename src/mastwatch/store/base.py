"""The Store Protocol: everything mastwatch persists, behind one small interface.

One implementation per backend (SQLite today). Time is always passed in, never read
from the clock inside the store, so tests can move it freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from mastwatch.model import (
    Delivery,
    DigestEntry,
    Message,
    PolicyRows,
    PollResult,
    Silence,
    SourceState,
)


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""

    async def get_source_state(self, source_id: str) -> SourceState:
        """The stored state, or a fresh ``SourceState`` for a source never polled."""

    async def save_source_state(self, state: SourceState) -> None:
        """Persist state alone (after a failed or not-modified poll)."""

    async def unseen_keys(self, source_id: str, keys: Iterable[str]) -> set[str]:
        """The item keys of ``keys`` not yet recorded for this source."""

    async def seen_content_hashes(self, source_id: str, hashes: Iterable[str]) -> set[str]:
        """The ``Item.content_hash`` values of ``hashes`` that an item already recorded for
        this source has (the same text under a new key is no news)."""

    async def commit_poll(self, result: PollResult, now: datetime) -> int:
        """In one transaction: save state, record items, and enqueue every outbox
        entry whose item was recorded by this call (an item already present enqueues
        nothing, so a repeated or concurrent poll cannot duplicate alerts).
        Returns the number of deliveries enqueued."""

    async def claim_deliveries(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> Sequence[Delivery]:
        """Pending deliveries due at ``now``, leased so no other worker takes them."""

    async def mark_sent(
        self, delivery_id: int, now: datetime, detail: str | None = None
    ) -> None: ...

    async def mark_retry(self, delivery_id: int, at: datetime, error: str) -> None:
        """Count an attempt, release the lease and schedule the next try at ``at``."""

    async def mark_failed(self, delivery_id: int, now: datetime, error: str) -> None:
        """A permanent failure: never retried, kept for operators to see."""

    async def next_delivery_due(self) -> datetime | None:
        """When the earliest pending delivery becomes due (None if there is none)."""

    async def outbox_counts(self) -> dict[str, int]:
        """Number of deliveries per state ("pending", "sent", "failed")."""

    # -- alert policy: stories, thread parents (issue 5, P1) --------------------------------

    async def policy_rows(
        self, now: datetime, story_window: float, rule_ids: Iterable[str]
    ) -> PolicyRows:
        """What ``policy.decide`` needs from before this poll: the stories seen within
        ``story_window``, the receivers that have each, each rule's last sent alert per
        story, and the alerts each of ``rule_ids`` sent in the hour before ``now``."""

    async def story_parent(
        self, story_id: str, channel: str, target: str
    ) -> tuple[str, str | None] | None:
        """The story's newest parent message for this receiver: (state, Slack ts)."""

    async def defer_delivery(self, delivery_id: int, at: datetime) -> None:
        """Release a claimed delivery until ``at`` without counting an attempt."""

    # -- digests, silences, operator notices, messages outbox (issue 5, P2) ----------------

    async def waiting_digest_entries(self, digest_id: str, before: datetime) -> list[DigestEntry]:
        """Entries of ``digest_id`` queued before ``before`` that no digest has taken yet."""

    async def claim_digest(
        self,
        digest_id: str,
        period: tuple[datetime, datetime],
        alert_ids: Sequence[str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        """In one transaction: claim (digest_id, period start) — unique —, mark the entries
        of ``alert_ids`` as taken and enqueue ``messages``. False, writing nothing, when the
        period was claimed before (by a replica, or before a restart)."""

    async def add_silence(self, silence: Silence) -> None: ...

    async def list_silences(self, now: datetime, *, expired: bool = False) -> list[Silence]:
        """Silences not ended at ``now``, or every silence with ``expired``."""

    async def active_silences(self, now: datetime) -> list[Silence]:
        """Silences in force at ``now`` (started and not ended)."""

    async def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence at ``now``; False for an unknown or already ended one."""

    async def set_notice(
        self,
        key: str,
        active: bool,
        text: tuple[str, str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        """Raise or clear a notice, enqueueing ``messages`` only when its state changes."""

    async def claim_messages(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> Sequence[Message]:
        """Pending messages due at ``now``, leased so no other worker takes them."""

    async def mark_message(
        self, message_id: int, outcome: str, at: datetime, text: str | None = None
    ) -> None:
        """Settle a claimed message: "sent", "retry" (due again at ``at``) or "failed"."""
