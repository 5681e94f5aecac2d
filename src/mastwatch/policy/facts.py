"""The facts of an alert that routes and silences match on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mastwatch.model import Alert

Facts = Mapping[str, tuple[str, ...]]


def alert_facts(
    alert: Alert, source_tags: Iterable[str], labels: Iterable[tuple[str, str]] = ()
) -> Facts:
    """``rule``, ``tier``, ``source``, ``tag`` (one value per source tag) and every rule
    label (``topic`` …). Values are tuples because a key may hold several (tags)."""
    facts: dict[str, tuple[str, ...]] = {
        "rule": (alert.rule_id,),
        "tier": (alert.tier,),
        "source": (alert.source_id,),
        "tag": tuple(source_tags),
    }
    for key, value in labels:
        if key not in ("rule", "tier", "source", "tag"):  # the built-in facts win
            facts[key] = (*facts.get(key, ()), value)
    return facts


def facts_match(facts: Facts, wanted: Mapping[str, tuple[str, ...]]) -> bool:
    """True when for every key some wanted value is among the alert's values (case-folded)."""
    for key, values in wanted.items():
        have = {v.casefold() for v in facts.get(key, ())}
        if not any(v.casefold() in have for v in values):
            return False
    return True
