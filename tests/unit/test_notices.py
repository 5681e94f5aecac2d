"""Operator notices: when a notice is raised or cleared, and where it goes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from mastwatch.config import NoticesConfig
from mastwatch.model import Message
from mastwatch.policy.notices import (
    KNOWN_CLEAR_SECONDS,
    Notice,
    Notices,
    notice_messages,
    source_transition,
)
from mastwatch.sources.page import PageSelectors, count_empty_runs, selector_verdict

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("errors", "threshold", "expected"),
    [
        (0, 3, "clear"),
        (1, 3, None),
        (2, 3, None),
        (3, 3, "raise"),
        (7, 3, "raise"),
        (1, 1, "raise"),
    ],
)
def test_source_transition(errors: int, threshold: int, expected: str | None) -> None:
    assert source_transition(errors, threshold) == expected


def test_messages_go_to_every_operations_receiver_or_the_console() -> None:
    config = NoticesConfig(slack=("#ops",), email=("ops@example.org",), console=False)
    notice = Notice("reload_failed", "reload failed", "rules/a.yaml:3: bad")
    online = notice_messages(config, notice, recovered=False, now=T0, available={"slack", "email"})
    assert [(m.channel, m.target) for m in online] == [
        ("slack", "#ops"),
        ("email", "ops@example.org"),
    ]
    assert online[0].subject == "[mastwatch NOTICE] reload failed"
    offline = notice_messages(config, notice, recovered=True, now=T0, available={"console"})
    assert [(m.channel, m.subject) for m in offline] == [
        ("console", "[mastwatch RECOVERED] reload failed")
    ]


class FakeNoticeStore:
    """The store's set_notice semantics in memory (the real one is contract-tested)."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.sent: list[str] = []
        self.writes = 0

    async def set_notice(
        self,
        key: str,
        active: bool,
        text: tuple[str, str],
        messages: Sequence[Message],
        now: datetime,
    ) -> bool:
        self.writes += 1
        if (key in self.active) == active:
            return False
        (self.active.add if active else self.active.discard)(key)
        self.sent += [m.subject for m in messages]
        return True

    async def active_notices(self) -> list[tuple[str, str, datetime]]:
        return [(key, key, T0) for key in sorted(self.active)]


async def test_a_failing_source_is_noticed_once_and_its_recovery_once() -> None:
    store = FakeNoticeStore()
    notices = Notices(store, NoticesConfig(source_failures=3), {"console"})
    for minute, errors in enumerate([1, 2, 3, 4, 5, 0, 0, 1]):
        await notices.source_polled("mof", errors, "HTTP 503", T0 + timedelta(minutes=minute))
    assert store.sent == [
        "[mastwatch NOTICE] source mof is failing",
        "[mastwatch RECOVERED] source mof is failing",
    ]


async def test_healthy_polls_do_not_write_to_the_store_each_time() -> None:
    store = FakeNoticeStore()
    notices = Notices(store, NoticesConfig(source_failures=1), {"console"})
    for second in range(10):  # ten healthy polls within the known-clear time: one write
        await notices.source_polled("mof", 0, None, T0 + timedelta(seconds=second))
    assert store.writes == 1
    # another replica raised it meanwhile: once the belief expires, this one clears it
    store.active.add("source_failing:mof")
    await notices.source_polled("mof", 0, None, T0 + timedelta(seconds=KNOWN_CLEAR_SECONDS + 1))
    assert store.active == set()
    # a failure here forgets the belief at once: failing, then healthy, clears
    await notices.source_polled("mof", 1, "HTTP 503", T0 + timedelta(seconds=400))
    await notices.source_polled("mof", 0, None, T0 + timedelta(seconds=401))
    assert store.sent[-2:] == [
        "[mastwatch NOTICE] source mof is failing",
        "[mastwatch RECOVERED] source mof is failing",
    ]


async def test_a_primed_process_writes_only_to_clear_what_is_raised() -> None:
    store = FakeNoticeStore()
    store.active.add("source_failing:mof")
    notices = Notices(store, NoticesConfig(source_failures=1), {"console"})
    await notices.prime(T0)
    for source in ("mof", "meti", "ustr"):  # the first healthy poll of each, fresh process
        await notices.source_polled(source, 0, None, T0 + timedelta(seconds=1))
    assert store.writes == 1  # only the raised one was cleared
    assert store.sent == ["[mastwatch RECOVERED] source mof is failing"]
    # raised here after priming: its clear must reach the store
    await notices.source_polled("meti", 1, "HTTP 503", T0 + timedelta(seconds=2))
    await notices.source_polled("meti", 0, None, T0 + timedelta(seconds=3))
    assert store.sent[-1] == "[mastwatch RECOVERED] source meti is failing"
    # raised by another replica after priming: asked again once the belief expires
    store.active.add("source_failing:ustr")
    late = T0 + timedelta(seconds=KNOWN_CLEAR_SECONDS + 1)
    await notices.source_polled("ustr", 0, None, late)
    assert store.active == set()


def test_selector_verdict_for_the_notice() -> None:
    selectors = PageSelectors(item="li.news", title="a", link="a", date=".date")
    runs: tuple[tuple[str, int], ...] = ()
    verdicts = []
    for empty in [(), ("date",), ("date",), ("date",), ("date",), (), ("date",)]:
        runs = count_empty_runs("mof", selectors, runs, empty, threshold=3)
        verdicts.append(selector_verdict(runs, threshold=3))
    # "ok" clears, "empty" raises, "short" (a run not yet long enough) changes nothing
    assert verdicts == ["ok", "short", "short", "empty", "empty", "ok", "short"]
