"""The outbox worker: claim due deliveries, send them, mark each sent / retry / failed.

Deliveries to one target go out one after another (the notifier paces them); different
targets go out concurrently. A temporary failure is retried with capped exponential
backoff for as long as it takes; a permanent one is marked failed, logged as an operator
notice and never blocks the rest of the queue.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from mastwatch.config import DeliveryConfig
from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.metrics import Metrics
from mastwatch.model import Delivery
from mastwatch.notify.base import Notifier
from mastwatch.notify.render import plain_alert
from mastwatch.store.base import Store

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
IDLE_RECHECK_SECONDS = 5.0  # also the longest a pending retry waits past its due time
PARENT_WAIT_SECONDS = 1.0  # a thread reply whose parent is not yet posted looks again then


def utc_now() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int, settings: DeliveryConfig, retry_after: float | None) -> float:
    """Capped exponential backoff with jitter; a server's Retry-After wins when longer."""
    delay = min(settings.retry_max, settings.retry_initial * 2.0 ** min(attempts, 20))
    delay *= random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass
class DeliveryWorker:
    store: Store
    notifiers: Mapping[str, Notifier]
    settings: DeliveryConfig
    clock: Clock = utc_now
    metrics: Metrics = field(default_factory=Metrics)
    # told each settled delivery: None when sent, the error when it failed for good (the
    # daemon raises / clears an operator notice with it)
    on_settled: Callable[[Delivery, str | None], Awaitable[None]] | None = None
    owner: str | None = None  # the replica id its delivery leases carry (status shows them)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: set[int] = field(default_factory=set)

    def wake(self) -> None:
        """Called after new deliveries are enqueued, so they go out at once."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; in-flight sends finish or are released on cancel."""
        log.info("delivery_worker_started")
        while not stop.is_set():
            sent = await self.deliver_due()
            if sent:
                continue
            await self._sleep_until_due(stop)

    async def deliver_due(self) -> int:
        """Claim every delivery due now and attempt it; returns how many were attempted."""
        now = self.clock()
        claimed = await self.store.claim_deliveries(
            now, self.settings.batch_size, self.settings.lease, self.owner
        )
        if not claimed:
            return 0
        by_target: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
        for delivery in claimed:
            by_target[(delivery.channel, delivery.target)].append(delivery)
        async with asyncio.TaskGroup() as group:
            for batch in by_target.values():
                group.create_task(self._send_in_order(batch))
        return len(claimed)

    async def drain(self, wait: float) -> None:
        """Deliver what is due, waiting up to ``wait`` seconds for retries (``--once``)."""
        deadline = self.clock() + timedelta(seconds=wait)
        while True:
            await self.deliver_due()
            due = await self.store.next_delivery_due()
            if due is None or due > deadline:
                return
            await asyncio.sleep(max(0.0, (due - self.clock()).total_seconds()) + 0.01)

    async def _sleep_until_due(self, stop: asyncio.Event) -> None:
        # Cleared before the store is asked, not after: a wake() while the query runs (an
        # enqueue it did not see) must end this sleep, or that alert waits for the recheck.
        self._wake.clear()
        due = await self.store.next_delivery_due()
        timeout = IDLE_RECHECK_SECONDS
        if due is not None:
            timeout = min(timeout, max(0.0, (due - self.clock()).total_seconds()))
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send_in_order(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            await self._attempt(delivery)

    async def _attempt(self, delivery: Delivery) -> None:
        notifier = self.notifiers.get(delivery.channel)
        if notifier is None:
            await self._fail(delivery, f"no notifier for channel {delivery.channel!r}")
            return
        self._in_flight.add(delivery.id)
        try:
            prepared = await self._prepare(delivery)
            if prepared is None:
                return
            detail = await notifier.send(prepared)
        except RetryableDeliveryError as exc:
            await self._retry(delivery, str(exc), exc.retry_after)
        except PermanentDeliveryError as exc:
            await self._fail(delivery, str(exc))
        except asyncio.CancelledError:
            # shutting down mid-send: hand the delivery back so the next start sends it
            await asyncio.shield(self.store.mark_retry(delivery.id, self.clock(), "interrupted"))
            raise
        except Exception as exc:  # an unknown failure is treated as temporary, and logged
            log.exception("delivery_error", delivery=delivery.id, channel=delivery.channel)
            await self._retry(delivery, f"{type(exc).__name__}: {exc}", None)
        else:
            await self.store.mark_sent(delivery.id, self.clock(), detail)
            self.metrics.delivery_done(delivery, "sent", self.clock())
            await self._settled(delivery, None)
            log.info(
                "alert_sent",
                delivery=delivery.id,
                alert=delivery.alert.id,
                rule=delivery.alert.rule_id,
                tier=delivery.alert.tier,
                channel=delivery.channel,
                target=delivery.target,
            )
        finally:
            self._in_flight.discard(delivery.id)

    async def _prepare(self, delivery: Delivery) -> Delivery | None:
        """Give a story's follow-up its Slack thread, or its plain form elsewhere.

        A reply, update or escalation for Slack needs the ts of the story's parent in that
        channel: while the parent is still pending the follow-up waits (``None``: it was
        put back); if the parent failed for good, the follow-up posts on its own."""
        if delivery.kind in ("alert", "parent"):
            return delivery
        if delivery.channel != "slack" or delivery.story_id is None:
            alert = plain_alert(delivery.alert, delivery.kind, delivery.info)
            return replace(delivery, alert=alert)
        parent = await self.store.story_parent(delivery.story_id, delivery.channel, delivery.target)
        if parent is not None and parent[0] == "pending":
            at = self.clock() + timedelta(seconds=PARENT_WAIT_SECONDS)
            await self.store.defer_delivery(delivery.id, at)
            return None
        if parent is None or not parent[1]:
            return delivery  # no parent to thread on: posted on its own (an update: skipped)
        ts, _, channel = parent[1].partition(" ")
        info = {**delivery.info, "parent_channel": channel or delivery.target}
        return replace(delivery, thread_ts=ts, info=info)

    async def _retry(self, delivery: Delivery, error: str, retry_after: float | None) -> None:
        delay = retry_delay(delivery.attempts, self.settings, retry_after)
        at = self.clock() + timedelta(seconds=delay)
        await self.store.mark_retry(delivery.id, at, error[:500])
        self.metrics.delivery_done(delivery, "retry")
        log.warning(
            "delivery_retry",
            delivery=delivery.id,
            channel=delivery.channel,
            target=delivery.target,
            attempts=delivery.attempts + 1,
            retry_in=round(delay, 1),
            error=error[:300],
        )

    async def _settled(self, delivery: Delivery, error: str | None) -> None:
        if self.on_settled is None:
            return
        try:
            await self.on_settled(delivery, error)
        except Exception:  # a notice must never stop deliveries
            log.exception("delivery_settled_hook_failed", delivery=delivery.id)

    async def _fail(self, delivery: Delivery, error: str) -> None:
        await self.store.mark_failed(delivery.id, self.clock(), error[:500])
        self.metrics.delivery_done(delivery, "failed")
        await self._settled(delivery, error[:500])
        # an operator notice: this alert will not arrive at this receiver without a fix
        log.error(
            "delivery_failed",
            delivery=delivery.id,
            alert=delivery.alert.id,
            channel=delivery.channel,
            target=delivery.target,
            error=error[:300],
        )
