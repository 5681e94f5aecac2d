"""Stories, quiet hours, routing and throttling: table-driven, explicit times."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest
from test_policy_decide import cand

from mastwatch.config import Config, QuietHours, ThrottleConfig
from mastwatch.fingerprint import normalise_title, signature
from mastwatch.model import Receiver
from mastwatch.policy.facts import alert_facts, facts_match
from mastwatch.policy.quiet import quiet_until
from mastwatch.policy.routes_cli import explain_lines, parse_facts
from mastwatch.policy.routing import build_routing, describe
from mastwatch.policy.stories import normalise_link, similarity
from mastwatch.policy.throttle import flood_limit, flood_window, may_realert, realert_interval


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://www.example.com/a/b/", "http://example.com/a/b", True),
        ("https://example.com/a?utm_source=x&id=3", "https://example.com/a?id=3", True),
        ("https://example.com/a?id=3#top", "https://example.com/a?id=3", True),
        ("https://example.com/a?id=3", "https://example.com/a?id=4", False),
        ("https://example.com/a", "https://example.org/a", False),
    ],
)
def test_normalise_link(a: str, b: str, same: bool) -> None:
    assert (normalise_link(a) == normalise_link(b)) is same


def test_no_link_has_no_key() -> None:
    assert normalise_link(None) is None
    assert normalise_link("not a url") is None


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ("Japan raises tariffs on steel", "Japan raises tariffs on steel - Reuters", 1.0, 1.0),
        ("Japan raises tariffs on steel", "JAPAN RAISES TARIFFS ON STEEL!", 1.0, 1.0),
        ("Japan raises tariffs on steel imports", "Japan to raise steel import tariffs", 0.2, 0.8),
        ("日銀、政策金利を引き上げ", "日銀が政策金利を引き上げ", 0.5, 1.0),
        ("日銀、政策金利を引き上げ", "トヨタが新型車を発表", 0.0, 0.1),
        ("BOJ raises rates", "Toyota unveils a car", 0.0, 0.1),
        ("", "anything", 0.0, 0.0),
    ],
)
def test_title_similarity(a: str, b: str, low: float, high: float) -> None:
    assert low <= similarity(signature(a), signature(b)) <= high


def test_title_normalisation_keeps_short_titles() -> None:
    assert normalise_title("G7 - Reuters") == "g7 reuters"  # not stripped to nothing
    assert normalise_title("日銀 政策金利") == "日銀政策金利"


def _quiet(start: str, end: str, zone: str, **kw: object) -> QuietHours:
    return QuietHours.model_validate({"start": start, "end": end, "timezone": zone, **kw})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("quiet", "now", "until"),
    [
        # 22:00-07:00 Tokyo (UTC+9): 23:30 local → 07:00 next local day = 22:00 UTC
        (("22:00", "07:00", "Asia/Tokyo"), utc(2026, 11, 24, 14, 30), utc(2026, 11, 24, 22, 0)),
        # 03:00 local, after midnight → 07:00 the same local day
        (("22:00", "07:00", "Asia/Tokyo"), utc(2026, 11, 24, 18, 0), utc(2026, 11, 24, 22, 0)),
        # noon local: not quiet
        (("22:00", "07:00", "Asia/Tokyo"), utc(2026, 11, 24, 3, 0), None),
        # the end itself is no longer quiet
        (("22:00", "07:00", "Asia/Tokyo"), utc(2026, 11, 24, 22, 0), None),
        # a daytime period
        (("12:00", "13:00", "UTC"), utc(2026, 11, 24, 12, 30), utc(2026, 11, 24, 13, 0)),
        # New York across the DST change (2026-03-08): 23:00 EST → 07:00 EDT = 11:00 UTC
        (
            ("20:00", "07:00", "America/New_York"),
            utc(2026, 3, 8, 4, 0),
            utc(2026, 3, 8, 11, 0),
        ),
        # New York in winter: 07:00 EST = 12:00 UTC
        (
            ("20:00", "07:00", "America/New_York"),
            utc(2026, 1, 15, 2, 0),
            utc(2026, 1, 15, 12, 0),
        ),
        # an empty period is never quiet
        (("07:00", "07:00", "UTC"), utc(2026, 1, 15, 7, 0), None),
    ],
)
def test_quiet_until(quiet: tuple[str, str, str], now: datetime, until: datetime | None) -> None:
    assert quiet_until(_quiet(*quiet), now) == until


def test_quiet_hours_reject_bad_zone_and_times() -> None:
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        _quiet("22:00", "07:00", "Mars/Olympus")
    with pytest.raises(ValueError, match="expected a time of day as HH:MM"):
        _quiet("25:00", "07:00", "UTC")
    with pytest.raises(ValueError, match='expected "end" or "digest:<digest id>"'):
        _quiet("22:00", "07:00", "UTC", defer="tomorrow")


def _config(text: str) -> Config:
    return Config.model_validate(tomllib.loads(text))


def test_without_routes_each_tier_is_a_route_with_console_fallback() -> None:
    config = _config(
        '[tiers.high]\nslack = ["#h"]\nemail = ["a@x"]\n[tiers.normal]\nconsole = true'
    )
    online = build_routing(config)
    offline = build_routing(config, slack_ready=False, email_ready=False)
    facts = alert_facts(cand("nhk", tier="high").alert, ())
    (route,) = online.routes_for(facts)
    assert online.targets(route) == (Receiver("slack", "#h"), Receiver("email", "a@x"))
    assert offline.targets(route) == (Receiver("console", "stdout"),)
    unknown = alert_facts(cand("nhk", tier="other").alert, ())
    assert [online.targets(r) for r in online.routes_for(unknown)] == [()]


TREE = """
[receivers.a]
slack = ["#a"]
[receivers.b]
slack = ["#b"]
[receivers.c]
email = ["c@x"]
[routes]
receivers = ["a"]
repeat_interval = "2h"
[[routes.routes]]
match = { tag = "ministry" }
receivers = ["b"]
continue = true
[[routes.routes]]
match = { rule = ["fx", "jgb"] }
receivers = ["c"]
[[routes.routes.routes]]
match = { tier = "critical" }
[[routes.routes]]
match = { topic = "trade" }
receivers = ["b"]
"""


@pytest.mark.parametrize(
    ("facts", "paths"),
    [
        ({"tier": ("high",)}, ["routes"]),
        ({"tag": ("Ministry",)}, ["routes.routes[0]"]),  # continue, then nothing else
        ({"tag": ("ministry",), "rule": ("fx",)}, ["routes.routes[0]", "routes.routes[1]"]),
        ({"rule": ("jgb",), "tier": ("critical",)}, ["routes.routes[1].routes[0]"]),
        ({"rule": ("jgb",), "topic": ("trade",)}, ["routes.routes[1]"]),  # first match wins
        ({"topic": ("trade",)}, ["routes.routes[2]"]),
    ],
)
def test_routing_tree(facts: dict[str, tuple[str, ...]], paths: list[str]) -> None:
    routing = build_routing(_config(TREE))
    assert [r.path for r in routing.routes_for(facts)] == paths


def test_children_inherit_receivers_and_timings() -> None:
    routing = build_routing(_config(TREE))
    (leaf,) = routing.routes_for({"rule": ("jgb",), "tier": ("critical",)})
    assert leaf.receivers == ("c",)
    assert leaf.repeat_interval == 7200.0
    assert describe(routing)[0] == "routes: match (everything) → a"


def test_routes_test_lines_and_fact_parsing() -> None:
    routing = build_routing(_config(TREE))
    facts, problems = parse_facts(["tag=ministry", "rule=fx", "tag=wire"])
    assert problems == []
    assert facts == {"tag": ("ministry", "wire"), "rule": ("fx",)}
    assert explain_lines(routing, facts) == [
        "routes.routes[0] (match tag=ministry)",
        "  b: slack #b",
        "routes.routes[1] (match rule=fx|jgb)",
        "  c: email c@x",
    ]
    assert parse_facts(["nonsense"])[1] == ["expected KEY=VALUE, got 'nonsense'"]
    assert parse_facts([])[1]


def test_config_refuses_unknown_receivers_and_digests(tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    from mastwatch.config import load_config  # noqa: PLC0415
    from mastwatch.errors import ConfigError  # noqa: PLC0415

    path = Path(str(tmp_path)) / "c.toml"
    path.write_text(
        '[routes]\nreceivers = ["nobody"]\n[[routes.routes]]\ndigest = "nightly"\n'
        '[escalation.tiers.high]\nsources = 2\nto = "urgent"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: routes.receivers: unknown receiver 'nobody'",
        f"{path}: routes.routes[0]: unknown digest 'nightly'",
        f"{path}: escalation.tiers.high.to: unknown tier 'urgent'",
    ]


def test_facts_include_labels_and_every_tag() -> None:
    alert = cand("nhk", tags=("ministry", "ja")).alert
    facts = alert_facts(alert, ("ministry", "ja"), (("topic", "trade"), ("tier", "spoof")))
    assert facts["tag"] == ("ministry", "ja")
    assert facts["topic"] == ("trade",)
    assert facts["tier"] == ("high",)  # a label cannot override a built-in fact
    assert facts_match(facts, {"tag": ("JA",), "topic": ("markets", "trade")})
    assert not facts_match(facts, {"topic": ("markets",)})


@pytest.mark.parametrize(
    ("rules", "route", "expected"),
    [
        ({}, None, 14400.0),
        ({}, 3600.0, 3600.0),
        ({"trade": {"realert_interval": "30m"}}, 3600.0, 1800.0),
    ],
)
def test_realert_interval_precedence(
    rules: dict[str, dict[str, str]], route: float | None, expected: float
) -> None:
    settings = ThrottleConfig.model_validate({"rules": rules})
    assert realert_interval(settings, "trade", route) == expected


def test_flood_window_and_limits() -> None:
    settings = ThrottleConfig.model_validate({"rules": {"fx": {"flood_max_per_hour": 2}}})
    assert flood_limit(settings, "fx") == 2
    assert flood_limit(settings, "other") == 30
    assert flood_window(utc(2026, 11, 24, 3, 59, 59)) == ("2026-11-24T03", utc(2026, 11, 24, 4))
    assert may_realert(None, utc(2026, 1, 1), 60)
    assert not may_realert(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0, 59), 60)
    assert may_realert(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 0, 1), 60)
