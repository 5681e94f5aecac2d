"""Silences: an operator's "deliver nothing matching this until then".

A silence holds matchers (``rule=tariffs``, ``source=mof-press``, ``topic=trade`` …) that
must all hold against an alert's facts (:func:`mastwatch.policy.facts.alert_facts`). It is
stored in the database, so every replica honours it; a silenced alert is still recorded
(the ``alerts`` command shows which silence held it) but not delivered.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from mastwatch.model import Silence
from mastwatch.policy.facts import Facts, facts_match

__all__ = ["Silence", "SilenceError", "new_silence", "parse_matchers", "silenced_by"]

_MATCHER = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*=\s*(\S.*?)\s*$")


class SilenceError(ValueError):
    """A silence that cannot be created (bad matcher, non-positive duration)."""


def parse_matchers(texts: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``["rule=tariffs", "source=mof-press"]`` → pairs; at least one is needed."""
    pairs: list[tuple[str, str]] = []
    for text in texts:
        found = _MATCHER.match(text)
        if found is None:
            raise SilenceError(f"--match {text!r}: expected KEY=VALUE, e.g. rule=tariffs")
        pairs.append((found[1], found[2]))
    if not pairs:
        raise SilenceError("a silence needs at least one --match KEY=VALUE")
    return tuple(pairs)


def new_silence(
    *,
    matchers: tuple[tuple[str, str], ...],
    duration: timedelta,
    comment: str,
    author: str,
    now: datetime,
    silence_id: str | None = None,
) -> Silence:
    """A silence starting ``now`` and lasting ``duration``."""
    if duration <= timedelta(0):
        raise SilenceError("--for must be a positive duration, e.g. 4h")
    if not comment.strip():
        raise SilenceError("--comment must say why (it is shown to everyone)")
    return Silence(
        id=silence_id or uuid.uuid4().hex[:12],
        matchers=matchers,
        starts_at=now,
        ends_at=now + duration,
        author=author,
        comment=comment.strip(),
        created_at=now,
    )


def matches(silence: Silence, facts: Facts) -> bool:
    """Every matcher holds (a key given twice must hold for both values)."""
    return all(facts_match(facts, {key: (value,)}) for key, value in silence.matchers)


def silenced_by(silences: Sequence[Silence], facts: Facts, now: datetime) -> Silence | None:
    """The first silence in force at ``now`` that matches ``facts``, or None."""
    for silence in silences:
        if silence.is_active(now) and matches(silence, facts):
            return silence
    return None
