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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from mastwatch.config import DeliveryConfig
from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.metrics import Metrics
from mastwatch.model import Delivery
from mastwatch.notify.base import Notifier
from mastwatch.store.base import Store

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
IDLE_RECHECK_SECONDS = 5.0  # also the longest a pending retry waits past its due time


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
            now, self.settings.batch_size, self.settings.lease
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
            detail = await notifier.send(delivery)
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

    async def _fail(self, delivery: Delivery, error: str) -> None:
        await self.store.mark_failed(delivery.id, self.clock(), error[:500])
        self.metrics.delivery_done(delivery, "failed")
        # an operator notice: this alert will not arrive at this receiver without a fix
        log.error(
            "delivery_failed",
            delivery=delivery.id,
            alert=delivery.alert.id,
            channel=delivery.channel,
            target=delivery.target,
            error=error[:300],
        )
