"""Metrics: what the long-running daemon counts, and that ``run --once`` counts nothing."""

from __future__ import annotations

from mastwatch.metrics import Metrics, UnservedMetrics
from mastwatch.pipeline import PollOutcome


def _polls_of(metrics: Metrics, source: str) -> list[str]:
    text = metrics.exposition().decode()
    return [line for line in text.splitlines() if f'source="{source}"' in line]


def test_a_served_registry_counts_each_poll_by_source() -> None:
    metrics = Metrics()
    metrics.poll_finished(PollOutcome("mof", "not_modified"), 0.01)
    metrics.poll_failed("mof", "timeout")
    lines = _polls_of(metrics, "mof")
    assert 'mastwatch_polls_total{outcome="not_modified",source="mof"} 1.0' in lines
    assert any(line.startswith("mastwatch_poll_failures_total") for line in lines)


def test_once_mode_creates_no_series_for_its_polls() -> None:
    metrics = UnservedMetrics()
    metrics.poll_finished(PollOutcome("mof", "ok", items_seen=3, new_items=1), 0.01)
    metrics.poll_failed("mof", "timeout")
    assert _polls_of(metrics, "mof") == []
