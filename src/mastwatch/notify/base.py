"""The Notifier Protocol and the limits each notifier declares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mastwatch.model import Delivery


@dataclass(frozen=True, slots=True)
class NotifierLimits:
    """Limits of the receiving service, declared once on the notifier, not in sending code."""

    min_interval_per_target: float = 0.0  # seconds between two messages to one target
    max_text: int = 40_000  # characters of the main text


class Notifier(Protocol):
    """Sends one delivery. Raises ``RetryableDeliveryError`` for temporary failures and
    ``PermanentDeliveryError`` for ones that will never succeed. Returns an optional
    detail to store with the sent delivery (e.g. the Slack message ``ts``)."""

    channel: str
    limits: NotifierLimits

    async def send(self, delivery: Delivery) -> str | None: ...

    async def close(self) -> None: ...
