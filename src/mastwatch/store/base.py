"""The Store Protocol: everything mastwatch persists, behind one small interface.

One implementation per backend: SQLite (embedded, the default) and PostgreSQL (shared by
replicas in HA mode). Time is always passed in, never read
from the clock inside the store, so tests can move it freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from mastwatch.errors import MastwatchError
from mastwatch.model import Alert, Delivery, Item, PollResult, SourceState
from mastwatch.store.migrate import Migration


class StoreError(MastwatchError):
    """The store cannot be used: unreachable, missing, unwritable, corrupt, or not open."""


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""

    async def get_source_state(self, source_id: str) -> SourceState:
        """The stored state, or a fresh ``SourceState`` for a source never polled."""

    async def save_source_state(self, state: SourceState) -> None:
        """Persist state alone (after a failed or not-modified poll); releases the
        source's lease, as ``commit_poll`` does."""

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
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Delivery]:
        """Pending deliveries due at ``now``, leased (to ``owner``, a replica id, when
        given) so no other worker takes them."""

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


# == Coordination of replicas (HA mode) =====================================================
# Replicas share one database and coordinate through it alone: a source is polled only by
# the replica that claimed it (a lease with an expiry, so a dead replica's sources become
# claimable again), deliveries are leased the same way, and every replica heartbeats.


@dataclass(frozen=True, slots=True)
class Replica:
    """A replica as ``mastwatch status`` shows it: identity, liveness and what it holds."""

    replica_id: str
    started_at: datetime
    last_seen: datetime
    info: Mapping[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # source ids whose unexpired lease it holds
    deliveries: int = 0  # pending deliveries whose unexpired lease it holds


class CoordinationStore(Protocol):
    async def claim_source(
        self,
        source_id: str,
        owner: str,
        now: datetime,
        lease_seconds: float,
        due_tolerance: float | None,
    ) -> SourceState | None:
        """Lease the source to ``owner`` until ``now + lease_seconds`` and return its state,
        or None when another owner's lease is unexpired or the source is not due (its
        ``next_check_at`` is later than ``now + due_tolerance``; None tolerance: any time).
        ``commit_poll``, ``save_source_state`` and ``release_source`` end the lease."""

    async def release_source(self, source_id: str, owner: str) -> None:
        """End ``owner``'s lease on the source (a no-op if someone else holds it)."""

    async def heartbeat(self, replica_id: str, now: datetime, info: Mapping[str, str]) -> None:
        """Record that the replica is alive at ``now`` (inserting it on first call)."""

    async def live_replicas(self, now: datetime, ttl: float) -> list[Replica]:
        """Replicas seen within ``ttl`` seconds of ``now``, with the leases each holds."""

    async def forget_replica(self, replica_id: str) -> None:
        """Remove the replica and release every lease it holds (a clean shutdown)."""


# == Inspection: what reports, the web page and tests read ==================================


class InspectableStore(Store, CoordinationStore, Protocol):
    """Everything the daemon, ``mastwatch status``/``alerts``/``replay`` use."""

    applied_migrations: list[Migration]  # what the last open() applied (``migrate``)

    def describe(self) -> str:
        """Where the data lives, safe to print: a file path, or host/database (no password)."""

    async def schema_version(self) -> int: ...
    async def list_source_states(self) -> list[SourceState]: ...
    async def delivery_rows(self) -> list[Delivery]: ...
    async def recent_alerts(self, limit: int = 50) -> list[Alert]: ...
    async def alerts_since(self, since: datetime) -> list[Alert]: ...
    async def items_since(self, since: datetime) -> list[tuple[Item, datetime]]: ...
    async def delivery_states(
        self, alert_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str, str]]]: ...
