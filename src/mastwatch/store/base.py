"""The Store Protocol: everything mastwatch persists, behind one small interface.

One implementation per backend (SQLite today). Time is always passed in, never read
from the clock inside the store, so tests can move it freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from mastwatch.model import Delivery, PollResult, SourceState


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
