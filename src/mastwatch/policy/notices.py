"""Operator notices: things an operator must fix, told once, and told again when they clear.

A notice has a key (``source_failing:<source id>``, ``selector_empty:<source id>``,
``reload_failed``, ``delivery_failed:<channel>:<target>``). Raising a notice that is already
raised, or clearing one that is not, does nothing: the state is in the store and changes in
the same transaction that enqueues the messages, so restarts and replicas do not repeat a
notice, and the messages go through the ``messages`` outbox, so a notice is never lost.

:func:`source_transition` and :func:`notice_messages` are pure; :class:`Notices` is the
small effectful front the daemon calls.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

import structlog

from mastwatch.config import NoticesConfig
from mastwatch.log import redactor
from mastwatch.model import Message

log = structlog.get_logger(__name__)

Transition = Literal["raise", "clear"] | None


@dataclass(frozen=True, slots=True)
class Notice:
    key: str
    subject: str
    detail: str

    def __post_init__(self) -> None:
        # The detail quotes errors (an SMTP server may echo the password it refused): a
        # notice is stored and sent to people, so it carries no secret the log would hide.
        object.__setattr__(self, "subject", redactor.scrub(self.subject))
        object.__setattr__(self, "detail", redactor.scrub(self.detail))


def source_transition(error_count: int, threshold: int) -> Transition:
    """A source failing ``threshold`` polls in a row raises; a success (count 0) clears."""
    if error_count >= threshold:
        return "raise"
    if error_count == 0:
        return "clear"
    return None


def notice_messages(
    config: NoticesConfig,
    notice: Notice,
    *,
    recovered: bool,
    now: datetime,
    available: Collection[str],
) -> list[Message]:
    """One message per operations receiver; an unconfigured channel falls back to the
    console (as alert receivers do), so a notice is never addressed to nowhere."""
    event = "recovered" if recovered else "raised"
    subject = f"[mastwatch {'RECOVERED' if recovered else 'NOTICE'}] {notice.subject}"
    ref = f"notice:{notice.key}:{event}:{now.isoformat()}"
    wanted = [("slack", channel) for channel in config.slack]
    wanted += [("email", address) for address in config.email]
    if config.console:
        wanted.append(("console", "stdout"))
    messages: list[Message] = []
    seen: set[tuple[str, str]] = set()
    for channel, target in wanted:
        real = (channel, target) if channel in available else ("console", "stdout")
        if real in seen:
            continue
        seen.add(real)
        messages.append(Message("notice", ref, real[0], real[1], subject, notice.detail))
    return messages


class NoticeStore(Protocol):
    async def set_notice(
        self,
        key: str,
        active: bool,
        text: tuple[str, str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool: ...

    async def active_notices(self) -> list[tuple[str, str, datetime]]: ...


# How long this process trusts that a notice it saw clear is still clear. Every healthy poll
# would otherwise write to the store to "clear" a notice that is not raised; another replica
# may raise it meanwhile, so the belief expires and the store is asked again.
KNOWN_CLEAR_SECONDS = 300.0


@dataclass
class Notices:
    store: NoticeStore
    config: NoticesConfig
    available: Collection[str]
    _known_clear: dict[str, datetime] = field(default_factory=dict)
    # From prime(): the notices raised at start-up, and until when every other key may be
    # taken as clear (the same trust as _known_clear, for keys not yet seen in this process)
    _raised_at_prime: set[str] = field(default_factory=set)
    _primed_until: datetime | None = None

    async def prime(self, now: datetime) -> None:
        """Read which notices are raised, once, so the first healthy poll of each source in
        a fresh process (every poll of ``run --once``) writes nothing to "clear" a notice
        that is not raised: one query instead of a write per source."""
        self._raised_at_prime = {key for key, _, _ in await self.store.active_notices()}
        self._primed_until = now + timedelta(seconds=KNOWN_CLEAR_SECONDS)

    async def raise_(self, notice: Notice, now: datetime) -> bool:
        """Raise ``notice`` unless it is raised already; True when messages were enqueued."""
        self._known_clear.pop(notice.key, None)
        self._raised_at_prime.add(notice.key)  # from now on its clear must reach the store
        messages = notice_messages(
            self.config, notice, recovered=False, now=now, available=self.available
        )
        changed = await self.store.set_notice(
            notice.key, True, (notice.subject, notice.detail), messages, now
        )
        if changed:
            log.warning("notice_raised", key=notice.key, subject=notice.subject)
        return changed

    async def clear(self, notice: Notice, now: datetime) -> bool:
        """Clear ``notice`` if it is raised, telling the receivers it recovered."""
        if self._believed_clear(notice.key, now):
            return False
        messages = notice_messages(
            self.config, notice, recovered=True, now=now, available=self.available
        )
        changed = await self.store.set_notice(
            notice.key, False, (notice.subject, notice.detail), messages, now
        )
        self._known_clear[notice.key] = now + timedelta(seconds=KNOWN_CLEAR_SECONDS)
        if changed:
            log.info("notice_cleared", key=notice.key)
        return changed

    def _believed_clear(self, key: str, now: datetime) -> bool:
        until = self._known_clear.get(key)
        if until is not None:
            return now < until
        primed = self._primed_until is not None and now < self._primed_until
        return primed and key not in self._raised_at_prime

    async def source_polled(
        self, source_id: str, error_count: int, last_error: str | None, now: datetime
    ) -> None:
        transition = source_transition(error_count, self.config.source_failures)
        if transition == "raise":
            detail = f"{error_count} polls in a row failed; last error: {last_error or '?'}"
            await self.raise_(
                Notice(f"source_failing:{source_id}", f"source {source_id} is failing", detail), now
            )
        elif transition == "clear":
            detail = f"source {source_id} was polled successfully again"
            await self.clear(
                Notice(f"source_failing:{source_id}", f"source {source_id} is failing", detail), now
            )

    async def selector_empty(self, source_id: str, *, empty: bool, now: datetime) -> None:
        key = f"selector_empty:{source_id}"
        subject = f"page source {source_id}: a selector matches nothing"
        if empty:
            detail = "the page layout may have changed; check [sources.page] selectors"
            await self.raise_(Notice(key, subject, detail), now)
        else:
            await self.clear(Notice(key, subject, "the selectors match again"), now)

    async def reload_result(self, problems: Sequence[str], now: datetime) -> None:
        subject = "reload of config and rules failed; the previous set is still running"
        if problems:
            await self.raise_(Notice("reload_failed", subject, "\n".join(problems)), now)
        else:
            await self.clear(Notice("reload_failed", subject, "a reload succeeded"), now)

    async def delivery_failed(self, channel: str, target: str, error: str, now: datetime) -> None:
        subject = f"deliveries to {channel}:{target} fail permanently"
        await self.raise_(Notice(f"delivery_failed:{channel}:{target}", subject, error), now)

    async def delivery_sent(self, channel: str, target: str, now: datetime) -> None:
        subject = f"deliveries to {channel}:{target} fail permanently"
        detail = f"a delivery to {channel}:{target} succeeded again"
        await self.clear(Notice(f"delivery_failed:{channel}:{target}", subject, detail), now)
