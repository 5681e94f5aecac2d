"""The worker of the ``messages`` outbox: digests and operator notices, pre-rendered.

Same guarantees as the alert outbox (:mod:`mastwatch.delivery`): a message is leased while
being sent, retried with backoff on a temporary failure, kept as failed on a permanent one,
so a notice or a digest is never lost to a crash or an SMTP hiccup.
"""

from __future__ import annotations

import asyncio
import email.policy
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

import structlog

from mastwatch.config import DeliveryConfig
from mastwatch.delivery import retry_delay
from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.log import redactor
from mastwatch.model import Message
from mastwatch.notify.email import EmailNotifier
from mastwatch.notify.render import SlackMessage
from mastwatch.notify.slack import SlackNotifier

log = structlog.get_logger(__name__)

IDLE_SECONDS = 5.0
LEASE_SECONDS = 120.0
MESSAGE_HEADER = "X-Mastwatch-Message"

Sender = Callable[[Message], Awaitable[None]]


class MessageStore(Protocol):
    async def claim_messages(
        self, now: datetime, limit: int, lease_seconds: float, owner: str | None = None
    ) -> Sequence[Message]: ...

    async def mark_message(
        self, message_id: int, outcome: str, at: datetime, text: str | None = None
    ) -> None: ...


def email_message(message: Message, sender: str) -> EmailMessage:
    mail = EmailMessage(policy=email.policy.SMTP)
    try:
        mail["Subject"] = message.subject
        mail["From"] = sender
        mail["To"] = message.target
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = make_msgid(domain="mastwatch")
        mail[MESSAGE_HEADER] = message.ref
    except ValueError as err:
        raise PermanentDeliveryError(f"email: invalid header: {err}") from err
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    return mail


def scrubbed(message: Message) -> Message:
    """The message with any known secret hidden, a last step before it leaves (a digest
    quotes feed text, a notice quotes errors), as rendered log lines are scrubbed."""
    html = None if message.html is None else redactor.scrub(message.html)
    return replace(
        message,
        subject=redactor.scrub(message.subject),
        text=redactor.scrub(message.text),
        html=html,
    )


def slack_text(text: str) -> str:
    """Slack's three control characters escaped, so a title cannot ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(message: Message) -> SlackMessage:
    """A digest or notice for Slack: its subject as a header and its text as a section,
    both ``plain_text``, so feed titles and error texts inside them stay inert (no
    mention, link or emphasis comes alive); the notification fallback is escaped."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}}
    ]
    blocks += [
        {"type": "section", "text": {"type": "plain_text", "text": chunk}}
        for chunk in _chunks(message.text or "-", SLACK_SECTION_MAX, SLACK_MAX_BLOCKS - 1)
    ]
    fallback = slack_text(f"{message.subject}\n{message.text}")[:SLACK_SECTION_MAX]
    return SlackMessage(text=fallback, blocks=blocks)


SLACK_SECTION_MAX = 3000  # characters of one section's text
SLACK_MAX_BLOCKS = 50  # blocks in one message


def _chunks(text: str, size: int, limit: int) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, cut at line ends where possible;
    at most ``limit`` pieces (a longer text is cut, with a marker, rather than refused)."""
    pieces: list[str] = []
    rest = text
    while rest and len(pieces) < limit:
        cut = len(rest) if len(rest) <= size else (rest.rfind("\n", 0, size) + 1 or size)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        pieces[-1] = pieces[-1][: size - 1] + "…"
    return pieces


def make_senders(notifiers: Mapping[str, object]) -> dict[str, Sender]:
    """A sender per configured channel, reusing the alert notifiers' connections."""
    senders: dict[str, Sender] = {"console": _console}
    mailer = notifiers.get("email")
    if isinstance(mailer, EmailNotifier):

        async def send_email(message: Message) -> None:
            await mailer.send_email(email_message(message, mailer.sender))

        senders["email"] = send_email
    slack = notifiers.get("slack")
    if isinstance(slack, SlackNotifier):

        async def send_slack(message: Message) -> None:
            await slack.post(message.target, slack_blocks(message))

        senders["slack"] = send_slack
    return senders


async def _console(message: Message) -> None:
    sys.stdout.write(f"{message.subject}\n{message.text}\n{'-' * 60}\n")
    sys.stdout.flush()


@dataclass
class MessageWorker:
    store: MessageStore
    senders: Mapping[str, Sender]
    settings: DeliveryConfig
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    owner: str | None = None  # the replica id its leases carry (HA mode)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.deliver_due()
            self._wake.clear()
            waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
            await asyncio.wait(waiters, timeout=IDLE_SECONDS, return_when="FIRST_COMPLETED")
            for waiter in waiters:
                waiter.cancel()

    async def deliver_due(self) -> int:
        """Send every message due now; returns how many were attempted."""
        batch = await self.store.claim_messages(
            self.clock(), self.settings.batch_size, LEASE_SECONDS, self.owner
        )
        for message in batch:
            await self._attempt(message)
        return len(batch)

    async def drain(self, wait: float) -> None:
        """Send what is due until nothing is left or ``wait`` seconds passed (``--once``)."""
        deadline = asyncio.get_running_loop().time() + wait
        while await self.deliver_due() and asyncio.get_running_loop().time() < deadline:
            pass

    async def _attempt(self, message: Message) -> None:
        send = self.senders.get(message.channel)
        try:
            if send is None:
                raise PermanentDeliveryError(f"no sender for channel {message.channel!r}")
            await send(scrubbed(message))
        except RetryableDeliveryError as exc:
            delay = retry_delay(message.attempts, self.settings, exc.retry_after)
            at = self.clock() + timedelta(seconds=delay)
            await self.store.mark_message(message.id, "retry", at, str(exc)[:500])
            log.warning("message_retry", ref=message.ref, channel=message.channel, error=str(exc))
        except PermanentDeliveryError as exc:
            await self.store.mark_message(message.id, "failed", self.clock(), str(exc)[:500])
            log.error("message_failed", ref=message.ref, channel=message.channel, error=str(exc))
        except asyncio.CancelledError:
            await asyncio.shield(
                self.store.mark_message(message.id, "retry", self.clock(), "interrupted")
            )
            raise
        except Exception as exc:  # unknown: temporary, and logged with its traceback
            log.exception("message_error", ref=message.ref, channel=message.channel)
            at = self.clock() + timedelta(
                seconds=retry_delay(message.attempts, self.settings, None)
            )
            await self.store.mark_message(message.id, "retry", at, f"{type(exc).__name__}: {exc}")
        else:
            await self.store.mark_message(message.id, "sent", self.clock())
            log.info(
                "message_sent",
                kind=message.kind,
                ref=message.ref,
                channel=message.channel,
                target=message.target,
            )
