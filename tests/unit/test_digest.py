"""Digest periods (cron in a time zone, DST included), grouping and rendering; explicit times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mastwatch.config import DigestConfig
from mastwatch.model import Alert, DigestEntry
from mastwatch.policy.digest import (
    digest_messages,
    group_entries,
    make_trigger,
    period_ending_at,
    render_digest,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


PERIODS = [
    # cron, zone, now (UTC), expected (start, end) in UTC
    (
        "0 7 * * *",
        "Asia/Tokyo",
        utc(2025, 3, 1, 0, 0),
        (utc(2025, 2, 27, 22), utc(2025, 2, 28, 22)),
    ),
    (
        "0 7 * * *",
        "Asia/Tokyo",
        utc(2025, 2, 28, 22, 0),
        (utc(2025, 2, 27, 22), utc(2025, 2, 28, 22)),
    ),
    (
        "0 7 * * *",
        "Asia/Tokyo",
        utc(2025, 2, 28, 21, 59),
        (utc(2025, 2, 26, 22), utc(2025, 2, 27, 22)),
    ),
    # New York springs forward on 2025-03-09: 07:00 EST is 12:00Z, 07:00 EDT is 11:00Z
    (
        "0 7 * * *",
        "America/New_York",
        utc(2025, 3, 9, 12),
        (utc(2025, 3, 8, 12), utc(2025, 3, 9, 11)),
    ),
    (
        "0 7 * * *",
        "America/New_York",
        utc(2025, 3, 10, 11),
        (utc(2025, 3, 9, 11), utc(2025, 3, 10, 11)),
    ),
    # and falls back on 2025-11-02: the period that day lasts 25 hours
    (
        "0 7 * * *",
        "America/New_York",
        utc(2025, 11, 2, 12),
        (utc(2025, 11, 1, 11), utc(2025, 11, 2, 12)),
    ),
    (
        "30 8,18 * * mon-fri",
        "Asia/Tokyo",
        utc(2025, 3, 3, 0),
        (utc(2025, 2, 28, 9, 30), utc(2025, 3, 2, 23, 30)),
    ),
]


@pytest.mark.parametrize(("cron", "zone", "now", "expected"), PERIODS)
def test_period_ending_at(
    cron: str, zone: str, now: datetime, expected: tuple[datetime, datetime]
) -> None:
    digest = DigestConfig(id="d", cron=cron, timezone=zone)
    assert period_ending_at(make_trigger(digest), now) == expected


def alert(n: int, rule: str, source: str, title: str) -> Alert:
    return Alert(
        id=f"a{n}",
        rule_id=rule,
        rule_title=rule.title(),
        tier="digest",
        source_id=source,
        source_name=source.upper(),
        item_key=f"guid:{n}",
        title=title,
        link=f"https://example.org/{n}?a=1&b=2",
        summary="",
        matched=(),
        published=None,
        created_at=utc(2025, 3, 1),
    )


ENTRIES = [
    DigestEntry(alert(1, "tariffs", "mof", "Tariff talks <resume>"), "d", "story-1"),
    DigestEntry(alert(2, "tariffs", "nhk", "Tariff talks resume"), "d", "story-1"),
    DigestEntry(alert(3, "rates", "boj", "BoJ holds rates"), "d", None),
    DigestEntry(alert(4, "ports", "mlit", "Port strike"), "d", None),
]


def test_grouping_by_topic_then_story() -> None:
    groups = group_entries(ENTRIES, {"tariffs": "trade", "ports": "trade"})
    assert [g.name for g in groups] == ["trade", "Rates"]  # no topic label: the rule title
    trade = groups[0]
    assert [(s.title, s.sources, s.count) for s in trade.stories] == [
        ("Tariff talks <resume>", ["MOF", "NHK"], 2),
        ("Port strike", ["MLIT"], 1),
    ]


def test_rendering_escapes_html_but_not_text() -> None:
    digest = DigestConfig(id="d", cron="0 7 * * *", timezone="Asia/Tokyo", title="朝刊")
    rendered = render_digest(digest, (utc(2025, 2, 27, 22), utc(2025, 2, 28, 22)), ENTRIES, {})
    assert "Tariff talks &lt;resume&gt;" in rendered.html
    assert "?a=1&amp;b=2" in rendered.html
    assert "<resume>" not in rendered.html
    assert "Tariff talks <resume>" in rendered.text
    assert "2025-02-28 07:00 \u2013 2025-03-01 07:00 (Asia/Tokyo): 4 alerts" in rendered.text
    assert rendered.subject == "朝刊: 4 alerts, 2025-03-01 07:00"


def test_messages_fall_back_to_the_console_when_a_channel_is_missing() -> None:
    digest = DigestConfig(
        id="d", cron="0 7 * * *", email=("a@example.org", "b@example.org"), slack="#desk"
    )
    rendered = render_digest(digest, (utc(2025, 2, 27), utc(2025, 2, 28)), ENTRIES, {})
    online = digest_messages(digest, utc(2025, 2, 27), rendered, {"email", "slack", "console"})
    assert [(m.channel, m.target, m.html is not None) for m in online] == [
        ("email", "a@example.org", True),
        ("email", "b@example.org", True),
        ("slack", "#desk", False),
    ]
    assert {m.ref for m in online} == {"digest:d:2025-02-27T00:00:00+00:00"}
    offline = digest_messages(digest, utc(2025, 2, 27), rendered, {"console"})
    assert [(m.channel, m.target) for m in offline] == [("console", "stdout")]


@pytest.mark.parametrize(
    ("cron", "zone", "problem"),
    [
        ("0 7 * * 1-5", "UTC", "weekday as names"),
        ("0 7 * *", "UTC", "invalid cron"),
        ("0 7 * * *", "Asia/Tokio", "unknown IANA time zone"),
    ],
)
def test_bad_digest_config_is_refused(cron: str, zone: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DigestConfig(id="d", cron=cron, timezone=zone)
