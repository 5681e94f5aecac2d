"""Shared set-up for tests that run the real daemon against real loopback servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mastwatch.app import Daemon
from mastwatch.model import Alert, Delivery, DigestEntry, Item, PollResult, SourceState
from mastwatch.testing.feeds import FeedServer
from mastwatch.testing.slack import LocalSlackServer
from mastwatch.testing.smtp import LocalSMTPServer

SLACK_TOKEN = "xoxb-test-0000-secret-token"

RULES = """\
- id: trade-tariffs
  title: Tariffs on autos
  tier: critical
  match:
    any: [tariff]
- id: us-treasuries
  title: US Treasuries
  tier: high
  match:
    any: [treasuries, 米国債]
"""


@dataclass
class Servers:
    feeds: FeedServer
    slack: LocalSlackServer
    smtp: LocalSMTPServer


def write_rules(directory: Path, text: str = RULES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(text, encoding="utf-8")
    return directory


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _section(name: str, values: Mapping[str, Any]) -> str:
    # a None value drops a default key (e.g. store.path when a test sets store.url)
    lines = [f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def write_config(
    tmp_path: Path,
    servers: Servers,
    sources: Sequence[Mapping[str, Any]],
    **overrides: Mapping[str, Any],
) -> Path:
    """A config that sends critical to Slack #crit + email, high to Slack #high."""
    sections: dict[str, dict[str, Any]] = {
        "store": {"path": str(tmp_path / "state" / "mastwatch.db")},
        "rules": {"dir": str(write_rules(tmp_path / "rules"))},
        "http": {"total_timeout": "5s", "connect_timeout": "2s"},
        "schedule": {"default_interval": "1s", "jitter": 0, "baseline_new_sources": False},
        "delivery": {"retry_initial": 0.2, "retry_max": 2, "once_wait": 15, "lease": "30s"},
        "log": {"format": "json", "level": "info"},
        "web": {"port": 0},  # any free port: daemons of parallel tests must not collide
        "slack": {"base_url": servers.slack.base_url, "min_interval": 0.05},
        "email": {"host": "127.0.0.1", "port": servers.smtp.port, "tls": "none"},
        "tiers.critical": {"slack": ["#crit"], "email": ["desk@example.com"]},
        "tiers.high": {"slack": ["#high"]},
        "tiers.normal": {"slack": ["#news"]},
    }
    for name, values in overrides.items():
        sections[name.replace("__", ".")] = {**sections.get(name, {}), **values}
    text = "".join(_section(name, values) for name, values in sections.items())
    for given in sources:
        source = {"allow_private": True, **given}  # the test servers listen on loopback
        text += "[[sources]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in source.items())
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def source(servers: Servers, path: str, source_id: str = "wire", **extra: Any) -> dict[str, Any]:
    return {"id": source_id, "name": f"Feed {source_id}", "url": servers.feeds.url(path), **extra}


async def run_once(config: Path) -> Daemon:
    async with Daemon(config) as daemon:
        assert await daemon.run_once() == 0
    return daemon


async def source_states(daemon: Daemon) -> dict[str, SourceState]:
    await daemon.store.open()
    try:
        return {s.source_id: s for s in await daemon.store.list_source_states()}
    finally:
        await daemon.store.close()


async def delivery_rows(daemon: Daemon) -> list[Delivery]:
    await daemon.store.open()
    try:
        return list(await daemon.store.delivery_rows())
    finally:
        await daemon.store.close()


QUEUED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # inside the 2 March morning digest's period


def digest_poll(source_id: str, *titles: str, at: datetime = QUEUED) -> PollResult:
    """A poll result that queues one `tariffs` alert per title for the "morning" digest."""
    items = tuple(
        Item(source_id=source_id, key=f"guid:{t}", title=t, link=f"https://ex.org/{n}")
        for n, t in enumerate(titles)
    )
    entries = tuple(
        DigestEntry(
            Alert(
                id=Alert.make_id(source_id, item.key, "tariffs"),
                rule_id="tariffs",
                rule_title="Tariffs",
                tier="digest",
                source_id=source_id,
                source_name=f"Feed {source_id}",
                item_key=item.key,
                title=item.title,
                link=item.link,
                summary="",
                matched=("tariff",),
                published=None,
                created_at=at,
            ),
            "morning",
        )
        for item in items
    )
    return PollResult(state=SourceState(source_id), items=items, digest_entries=entries)
