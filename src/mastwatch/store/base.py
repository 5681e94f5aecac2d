"""The Store Protocol: everything mastwatch persists, behind one small interface.

One implementation per backend: SQLite (embedded, the default) and PostgreSQL (shared by
replicas in HA mode). Time is always passed in, never read
from the clock inside the store, so tests can move it freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from mastwatch.errors import MastwatchError
from mastwatch.model import (
    Alert,
    Delivery,
    DigestEntry,
    Item,
    Message,
    PolicyRows,
    PollResult,
    Silence,
    SourceState,
    Story,
)
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

    async def known_items(
        self, source_id: str, keys: Iterable[str], hashes: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        """``unseen_keys`` and ``seen_content_hashes`` in one round trip, as a poll asks."""

    async def commit_poll(self, result: PollResult, now: datetime) -> int:
        """In one transaction: save state, record items, and enqueue every outbox
        entry whose item was recorded by this call (an item already present enqueues
        nothing, so a repeated or concurrent poll cannot duplicate alerts).
        Returns the number of deliveries enqueued."""

    async def commit_polls(self, polls: Sequence[tuple[PollResult, datetime]]) -> list[int]:
        """Several polls' ``commit_poll`` in one transaction (all of them or none), each
        at its own time; the deliveries each enqueued, in order."""

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

    # -- alert policy: stories, thread parents (issue 5, P1) --------------------------------

    async def policy_rows(
        self, now: datetime, story_window: float, rule_ids: Iterable[str]
    ) -> PolicyRows:
        """What ``policy.decide`` needs from before this poll: the stories seen within
        ``story_window``, the receivers that have each, each rule's last sent alert per
        story, the alerts each of ``rule_ids`` sent in the hour before ``now``, and the
        silences active at ``now``: one store call, as every poll with a match makes it."""

    async def story_parent(
        self, story_id: str, channel: str, target: str
    ) -> tuple[str, str | None] | None:
        """The story's newest parent message for this receiver: (state, Slack ts)."""

    async def defer_delivery(self, delivery_id: int, at: datetime) -> None:
        """Release a claimed delivery until ``at`` without counting an attempt."""

    def policy_lock(self) -> AbstractAsyncContextManager[None]:
        """Held from ``policy_rows`` to ``commit_poll`` of a poll with matches, so that
        pollers sharing the store decide on stories one at a time (no-op where one process's
        own lock suffices). Never held for long: a waiter gives up after a few seconds and
        decides without it rather than stop polling."""

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
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Message]:
        """Pending messages due at ``now``, leased so no other worker takes them."""

    async def mark_message(
        self, message_id: int, outcome: str, at: datetime, text: str | None = None
    ) -> None:
        """Settle a claimed message: "sent", "retry" (due again at ``at``) or "failed"."""


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

    # the alert policy's state, as ``status``, ``alerts`` and tests read it
    async def stories_since(self, since: datetime) -> list[Story]: ...
    async def alert_disposition(self, alert_id: str) -> tuple[str | None, str] | None: ...
    async def digest_claims(self, digest_id: str) -> list[tuple[datetime, int]]: ...
    async def active_notices(self) -> list[tuple[str, str, datetime]]: ...
    async def message_rows(self) -> list[tuple[Message, str]]: ...
    async def message_counts(self) -> dict[tuple[str, str], int]:
        """Messages (digests, notices) per (kind, state); every pair present, zero included."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...
