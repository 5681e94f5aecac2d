"""Operator reports read from the store: ``status``, ``alerts --since`` and ``replay``.

All three read the state file the daemon writes (safe while it runs: SQLite WAL lets
readers and the writer proceed together) and send nothing. ``replay`` runs a rule set
over the items already stored and compares what it would have alerted with what was
alerted, per day and rule, so an operator sees the volume of a rule change before
deploying it. Feed text printed to a terminal is stripped of control characters first.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

from mastwatch.config import Config, parse_duration
from mastwatch.errors import ConfigError
from mastwatch.model import Alert, Item, SourceState
from mastwatch.rules import RuleSet, match
from mastwatch.sources.page import describe_empty_runs
from mastwatch.store.base import InspectableStore, Replica, StoreError
from mastwatch.store.factory import make_store
from mastwatch.text import make_document

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # ANSI escapes start with \x1b
RECENT = 10


def clean(text: str | None) -> str:
    """Untrusted feed text made safe for a terminal: no escapes, no line breaks."""
    return _CONTROL.sub(" ", (text or "").replace("\n", " "))


def since_delta(text: str) -> timedelta:
    """``--since`` as a duration back from now ("24h", "7d", "90m", or seconds)."""
    try:
        seconds = parse_duration(text)
        value = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(
            [f"--since: expected a duration such as 24h or 7d, got {text!r}"]
        ) from None
    if value <= 0:
        raise ConfigError([f"--since: must be more than zero, got {text!r}"])
    return timedelta(seconds=value)


async def open_existing_store(config: Config) -> InspectableStore:
    """The daemon's store, opened only if it exists (a report never creates a SQLite file;
    a PostgreSQL database is the operator's to create, and opening it migrates it)."""
    if not config.store.is_postgres:
        path = config.resolve(config.store.path)
        if not path.is_file():
            raise StoreError(f"no store at {path}: has the daemon run with this config?")
    store = make_store(config)
    await store.open()
    return store


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


# -- status ------------------------------------------------------------------------------------


def _health(state: SourceState, enabled: bool) -> str:
    if not enabled:
        return "paused"
    if state.disabled:
        return "disabled"
    if state.error_count:
        return f"failing:{state.error_count}"
    return "ok" if state.last_success_at else "never"


async def print_status(config: Config, store: InspectableStore, out: TextIO) -> None:
    """Sources with their health, both outboxes by state, and the latest alerts."""
    states = {s.source_id: s for s in await store.list_source_states()}
    configured = {s.id: s.enabled for s in config.sources}
    ids = list(configured) + sorted(set(states) - set(configured))
    print(f"store {store.describe()} (schema {await store.schema_version()})", file=out)
    if config.store.is_postgres:
        now = datetime.now(UTC)
        _print_replicas(await store.live_replicas(now, config.ha.replica_ttl), now, out)
    print(f"sources ({len(ids)}):", file=out)
    for source_id in ids:
        state = states.get(source_id, SourceState(source_id=source_id))
        health = _health(state, configured.get(source_id, True))
        if source_id not in configured:
            health = "removed"
        print(
            f"  {source_id:24} {health:12} last ok {_when(state.last_success_at):21}"
            f" next {_when(state.next_check_at)}",
            file=out,
        )
        if state.last_error:
            print(
                f"      last error {_when(state.last_error_at)}: {clean(state.last_error)}",
                file=out,
            )
        if state.empty_runs:
            print(f"      {describe_empty_runs(state.empty_runs)}", file=out)
    counts = await store.outbox_counts()
    print("outbox: " + " · ".join(f"{k} {v}" for k, v in counts.items()), file=out)
    messages = await store.message_counts()
    listed = " · ".join(f"{kind} {state} {n}" for (kind, state), n in messages.items())
    print(f"messages outbox (digests, notices): {listed}", file=out)
    await _print_policy_state(store, out)
    alerts = await store.recent_alerts(RECENT)
    print(f"recent alerts ({len(alerts)}):", file=out)
    await _print_alerts(store, alerts, out)


async def _print_policy_state(store: InspectableStore, out: TextIO) -> None:
    """Operator notices raised and silences in force (docs/alerting.md)."""
    notices = await store.active_notices()
    print(f"operator notices raised ({len(notices)}):", file=out)
    for key, subject, raised_at in notices:
        print(f"  {_when(raised_at)}  {key}: {clean(subject)}", file=out)
    silences = await store.active_silences(datetime.now(UTC))  # a report may read the clock
    print(f"silences in force ({len(silences)}):", file=out)
    for silence in silences:
        matchers = ",".join(f"{k}={v}" for k, v in silence.matchers)
        print(f"  {silence.id}  until {_when(silence.ends_at)}  {matchers}", file=out)


def _print_replicas(replicas: Sequence[Replica], now: datetime, out: TextIO) -> None:
    """HA mode: who is alive and which leases each holds right now."""
    print(f"replicas ({len(replicas)} live):", file=out)
    for replica in replicas:
        age = (now - replica.last_seen).total_seconds()
        print(
            f"  {replica.replica_id:32} seen {age:4.0f}s ago  since {_when(replica.started_at)}"
            f"  sources leased {len(replica.sources)}  deliveries leased {replica.deliveries}",
            file=out,
        )
        if replica.sources:
            print(f"      sources: {', '.join(replica.sources)}", file=out)


# -- alerts ------------------------------------------------------------------------------------


async def _print_alerts(store: InspectableStore, alerts: Sequence[Alert], out: TextIO) -> None:
    deliveries = await store.delivery_states([a.id for a in alerts])
    for alert in alerts:
        print(
            f"  {_when(alert.created_at)}  {alert.tier.upper():8} {alert.rule_id}"
            f"  [{alert.source_id}] {clean(alert.title)}",
            file=out,
        )
        sent = " · ".join(f"{c} {t}: {s}" for c, t, s in deliveries.get(alert.id, ()))
        held = await _disposition(store, alert.id)  # e.g. silenced:<id>, digest, throttled
        where = " · ".join(part for part in (sent, "" if held == "sent" else held) if part)
        print(f"      {clean(alert.link) or alert.item_key}  {where or 'no receivers'}", file=out)


async def _disposition(store: InspectableStore, alert_id: str) -> str:
    """What the alert policy did with an alert ("sent", "silenced:<silence id>", …)."""
    found = await store.alert_disposition(alert_id)
    return "sent" if found is None else found[1]


async def print_alerts(
    store: InspectableStore, since: datetime, out: TextIO, *, as_json: bool = False
) -> int:
    """Alerts created since ``since`` with where each went; returns how many."""
    alerts = await store.alerts_since(since)
    if as_json:
        deliveries = await store.delivery_states([a.id for a in alerts])
        for alert in alerts:
            record = {
                "created_at": alert.created_at.isoformat(),
                "tier": alert.tier,
                "rule": alert.rule_id,
                "source": alert.source_id,
                "item": alert.item_key,
                "title": alert.title,
                "link": alert.link,
                "disposition": await _disposition(store, alert.id),
                "deliveries": [
                    {"channel": c, "target": t, "state": s} for c, t, s in deliveries[alert.id]
                ],
            }
            print(json.dumps(record, ensure_ascii=False), file=out)
        return len(alerts)
    await _print_alerts(store, alerts, out)
    print(f"{len(alerts)} alerts since {_when(since)}", file=out)
    return len(alerts)


# -- replay ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One alert the replayed rule set would raise."""

    day: str
    rule: str
    tier: str
    item: Item
    alerted: bool  # the running daemon did alert this item for this rule


def replay_hits(
    ruleset: RuleSet,
    items: Iterable[tuple[Item, datetime]],
    source_tags: Mapping[str, tuple[str, ...]],
    alerted_ids: set[str],
) -> list[Hit]:
    """Match every stored item, as the pipeline would have when it was first seen."""
    hits = []
    for item, seen in items:
        document = make_document(item, source_tags.get(item.source_id, ()))
        for found in match(ruleset, document):
            alert_id = Alert.make_id(item.source_id, item.key, found.rule_id)
            day = seen.date().isoformat()
            hits.append(Hit(day, found.rule_id, found.tier, item, alert_id in alerted_ids))
    return hits


def replay_table(hits: Sequence[Hit], alerts: Sequence[Alert]) -> list[tuple[str, str, int, int]]:
    """(day, rule, would alert, did alert) rows, sorted; a rule that alerted but would not
    (dropped or narrowed) appears too, with 0 in the first count."""
    would = Counter((h.day, h.rule) for h in hits)
    did = Counter((a.created_at.date().isoformat(), a.rule_id) for a in alerts)
    keys = sorted(set(would) | set(did))
    return [(day, rule, would[(day, rule)], did[(day, rule)]) for day, rule in keys]


async def print_replay(
    config: Config,
    store: InspectableStore,
    ruleset: RuleSet,
    since: datetime,
    out: TextIO,
    *,
    as_json: bool = False,
) -> list[Hit]:
    """Run ``ruleset`` over items first seen since ``since``; print; send and store nothing."""
    items = await store.items_since(since)
    alerts = await store.alerts_since(since)
    tags = {s.id: s.tags for s in config.sources}
    hits = replay_hits(ruleset, items, tags, {a.id for a in alerts})
    if as_json:
        for hit in hits:
            record = {
                "day": hit.day,
                "rule": hit.rule,
                "tier": hit.tier,
                "source": hit.item.source_id,
                "item": hit.item.key,
                "title": hit.item.title,
                "link": hit.item.link,
                "alerted": hit.alerted,
            }
            print(json.dumps(record, ensure_ascii=False), file=out)
        return hits
    print(
        f"replay of rule set {ruleset.content_hash[:12]} ({len(ruleset)} rules) over"
        f" {len(items)} items first seen since {_when(since)}; nothing is sent or stored",
        file=out,
    )
    tiers = {rule.id: rule.tier for rule in ruleset.rules} | {a.rule_id: a.tier for a in alerts}
    print(f"{'day':10}  {'rule':28} {'tier':9} {'would alert':>11} {'alerted':>8}", file=out)
    for day, rule, would, did in replay_table(hits, alerts):
        print(f"{day:10}  {rule:28} {tiers.get(rule, '?'):9} {would:>11} {did:>8}", file=out)
    print(f"{'total':50} {len(hits):>11} {len(alerts):>8}", file=out)
    silent = sorted({r.id for r in ruleset.rules} - {h.rule for h in hits})
    if silent:
        print("rules with no match: " + ", ".join(silent), file=out)
    return hits
