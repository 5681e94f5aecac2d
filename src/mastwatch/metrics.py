"""Prometheus metrics: one registry per daemon, counters moved by one-line calls.

The pipeline and the delivery worker call the small methods here as things happen;
gauges that describe stored state (outbox depth, per-source health) are refreshed from
the store when ``/metrics`` is scraped, so they are right whichever replica wrote it.
A registry of its own per :class:`Metrics` keeps tests (and two daemons in one process)
from colliding in prometheus-client's global registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mastwatch import __version__

if TYPE_CHECKING:
    from mastwatch.model import Alert, Delivery, SourceState
    from mastwatch.pipeline import PollOutcome

# Feed polls take tens of milliseconds to tens of seconds (the total timeout is 30 s).
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# From the alert's creation to the receiver's acknowledgement, retries included.
DELIVERY_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Metrics:
    """Every mastwatch metric, registered in ``self.registry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter(
            "mastwatch_polls", "Polls of a source, by outcome", ["source", "outcome"], registry=r
        )
        self.poll_failures = Counter(
            "mastwatch_poll_failures",
            "Failed polls, by source and failure class (timeout, connect, http_status, parse…)",
            ["source", "failure_class"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "mastwatch_poll_duration_seconds",
            "Time to fetch, parse, match and commit one poll",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.items_seen = Counter(
            "mastwatch_items_seen", "Items read from sources", ["source"], registry=r
        )
        self.items_new = Counter(
            "mastwatch_items_new", "Items never seen before, by source", ["source"], registry=r
        )
        self.matches = Counter(
            "mastwatch_rule_matches", "Rule matches on new items", ["rule", "tier"], registry=r
        )
        self.alerts = Counter("mastwatch_alerts", "Alerts raised, by tier", ["tier"], registry=r)
        self.deliveries = Counter(
            "mastwatch_deliveries",
            "Delivery attempts, by channel and outcome (sent, retry, failed)",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "mastwatch_delivery_latency_seconds",
            "From an alert's creation to its delivery being acknowledged",
            ["channel"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.outbox = Gauge(
            "mastwatch_outbox_deliveries",
            "Deliveries in the outbox, by state",
            ["state"],
            registry=r,
        )
        self.message_outbox = Gauge(
            "mastwatch_outbox_messages",
            "Digests and operator notices in the messages outbox, by kind and state",
            ["kind", "state"],
            registry=r,
        )
        self.source_last_success = Gauge(
            "mastwatch_source_last_success_timestamp_seconds",
            "Unix time of a source's last successful poll",
            ["source"],
            registry=r,
        )
        self.source_errors = Gauge(
            "mastwatch_source_errors_in_row",
            "Consecutive failed polls of a source (0 when healthy)",
            ["source"],
            registry=r,
        )
        self.ruleset = Gauge(
            "mastwatch_ruleset_info",
            "The loaded rule set: value is its rule count, the label its content hash",
            ["hash"],
            registry=r,
        )
        build = Gauge("mastwatch_build_info", "mastwatch version", ["version"], registry=r)
        build.labels(version=__version__).set(1)
        self.replica = Gauge(
            "mastwatch_replica_info", "This process's replica id (HA mode)", ["replica"], registry=r
        )

    def set_replica(self, replica_id: str) -> None:
        self.replica.clear()
        self.replica.labels(replica=replica_id).set(1)

    # -- polls -----------------------------------------------------------------------------

    def poll_finished(self, outcome: PollOutcome, seconds: float) -> None:
        """A poll ended (skipped polls are not counted: nothing was fetched)."""
        if outcome.status == "skipped":
            return
        source = outcome.source_id
        self.polls.labels(source=source, outcome=outcome.status).inc()
        self.poll_duration.labels(source=source).observe(seconds)
        self.items_seen.labels(source=source).inc(outcome.items_seen)
        self.items_new.labels(source=source).inc(outcome.new_items)

    def poll_failed(self, source: str, failure_class: str) -> None:
        self.poll_failures.labels(source=source, failure_class=failure_class).inc()

    def alert_raised(self, alert: Alert) -> None:
        """One rule matched one new item: a match for the rule and an alert for the tier."""
        self.matches.labels(rule=alert.rule_id, tier=alert.tier).inc()
        self.alerts.labels(tier=alert.tier).inc()

    # -- deliveries ------------------------------------------------------------------------

    def delivery_done(self, delivery: Delivery, outcome: str, now: datetime | None = None) -> None:
        """Count an attempt; a send (``now`` given) also records the alert-to-send latency."""
        self.deliveries.labels(channel=delivery.channel, outcome=outcome).inc()
        if now is not None:
            latency = (now - delivery.alert.created_at).total_seconds()
            self.delivery_latency.labels(channel=delivery.channel).observe(max(0.0, latency))

    # -- state gauges, refreshed on scrape -------------------------------------------------

    def set_ruleset(self, content_hash: str, rules: int) -> None:
        self.ruleset.clear()  # one series: the set now loaded
        self.ruleset.labels(hash=content_hash[:12]).set(rules)

    def set_outbox(self, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.outbox.labels(state=state).set(count)

    def set_message_outbox(self, counts: dict[tuple[str, str], int]) -> None:
        for (kind, state), count in counts.items():
            self.message_outbox.labels(kind=kind, state=state).set(count)

    def set_sources(self, states: Iterable[SourceState]) -> None:
        for state in states:
            self.source_errors.labels(source=state.source_id).set(state.error_count)
            if state.last_success_at is not None:
                stamp = state.last_success_at.timestamp()
                self.source_last_success.labels(source=state.source_id).set(stamp)

    def exposition(self) -> bytes:
        """The text exposition format of every metric in this registry."""
        return generate_latest(self.registry)


class UnservedMetrics(Metrics):
    """For ``run --once``: nothing serves /metrics, so nothing is counted.

    Counting is not free in a fresh process: the first count of each source creates its
    labelled series (a histogram's buckets, three counters), about an eighth of a steady
    ``--once`` cycle of 500 sources in a profile, for numbers no one could read.
    """

    def poll_finished(self, outcome: PollOutcome, seconds: float) -> None:
        pass

    def poll_failed(self, source: str, failure_class: str) -> None:
        pass

    def alert_raised(self, alert: Alert) -> None:
        pass

    def delivery_done(self, delivery: Delivery, outcome: str, now: datetime | None = None) -> None:
        pass
