"""Silences: matching against alert facts and time limits, with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mastwatch.model import Silence
from mastwatch.policy.silences import SilenceError, new_silence, parse_matchers, silenced_by

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FACTS = {
    "rule": ("tariffs",),
    "tier": ("high",),
    "source": ("mof-press",),
    "tag": ("ministry", "jp"),
    "topic": ("trade",),
}


def make(*pairs: str, start: float = 0, hours: float = 4) -> Silence:
    return new_silence(
        matchers=parse_matchers(pairs),
        duration=timedelta(hours=hours),
        comment="false report",
        author="aiko",
        now=T0 + timedelta(hours=start),
        silence_id="s-" + "-".join(pairs),
    )


CASES = [
    # matchers, silence start (h), check at (h), silenced?
    (("rule=tariffs",), 0, 1, True),
    (("rule=TARIFFS",), 0, 1, True),  # case-folded, as routes match
    (("rule=tariffs", "source=mof-press"), 0, 1, True),
    (("rule=tariffs", "source=nhk"), 0, 1, False),  # every matcher must hold
    (("tag=jp",), 0, 1, True),  # one of a multi-valued fact
    (("topic=trade",), 0, 1, True),  # a rule label
    (("topic=rates",), 0, 1, False),
    (("rule=tariffs", "rule=rates"), 0, 1, False),  # a key twice: both must hold
    (("rule=tariffs",), 0, 4, False),  # ended (end is exclusive)
    (("rule=tariffs",), 0, 3.99, True),
    (("rule=tariffs",), 2, 1, False),  # not started yet
]


@pytest.mark.parametrize(("pairs", "start", "check", "silenced"), CASES)
def test_silenced_by(pairs: tuple[str, ...], start: float, check: float, silenced: bool) -> None:
    silence = make(*pairs, start=start)
    found = silenced_by([silence], FACTS, T0 + timedelta(hours=check))
    assert (found == silence) is silenced


def test_the_first_matching_silence_is_named() -> None:
    other, hit = make("rule=rates"), make("source=mof-press")
    assert silenced_by([other, hit], FACTS, T0) == hit
    assert silenced_by([], FACTS, T0) is None


@pytest.mark.parametrize(
    ("pairs", "hours", "comment", "problem"),
    [
        ((), 4, "why", "at least one --match"),
        (("rule",), 4, "why", "expected KEY=VALUE"),
        (("=x",), 4, "why", "expected KEY=VALUE"),
        (("rule=x",), 0, "why", "positive duration"),
        (("rule=x",), 4, "  ", "must say why"),
    ],
)
def test_bad_silences_are_refused(
    pairs: tuple[str, ...], hours: float, comment: str, problem: str
) -> None:
    with pytest.raises(SilenceError, match=problem):
        new_silence(
            matchers=parse_matchers(pairs),
            duration=timedelta(hours=hours),
            comment=comment,
            author="a",
            now=T0,
        )
