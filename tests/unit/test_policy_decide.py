"""decide(matches, state, now): table-driven cases with explicit times."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mastwatch.config import Config
from mastwatch.fingerprint import signature
from mastwatch.model import Alert, MessageKind, Silence, Story
from mastwatch.policy.decide import Candidate, Decisions, PolicyState, decide
from mastwatch.policy.routing import build_routing

KYODO_BOJ = "日銀が政策金利を0.5％に引き上げ（共同）"  # noqa: RUF001 (full-width, as published)
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
CONFIG = """
[tiers.critical]
slack = ["#urgent"]
email = ["oncall@example.com"]
[tiers.high]
slack = ["#news"]
email = ["desk@example.com"]
[tiers.normal]
slack = ["#news"]
[tiers.digest]
console = true

[escalation.tiers.high]
sources = 3
window = "1h"
to = "critical"

[escalation.rules.ministry]
source_tags = ["official"]
to = "critical"

[throttle]
realert_interval = "4h"
flood_max_per_hour = 3
"""


def config(extra: str = "") -> Config:
    return Config.model_validate(tomllib.loads(CONFIG + extra))


def cand(
    source: str,
    title: str = "Japan raises tariffs on steel imports",
    *,
    rule: str = "trade",
    tier: str = "high",
    key: str | None = None,
    link: str | None = None,
    tags: tuple[str, ...] = (),
    labels: tuple[tuple[str, str], ...] = (("topic", "trade"),),
) -> Candidate:
    item_key = key or f"guid:{source}-{title}"
    alert = Alert(
        id=Alert.make_id(source, item_key, rule),
        rule_id=rule,
        rule_title=rule.title(),
        tier=tier,
        source_id=source,
        source_name=source.upper(),
        item_key=item_key,
        title=title,
        link=link,
        summary="",
        matched=("tariff",),
        published=None,
        created_at=T0,
    )
    return Candidate(alert, labels, tags)


def state(cfg: Config, **kwargs: object) -> PolicyState:
    return PolicyState(config=cfg, routing=build_routing(cfg), **kwargs)  # type: ignore[arg-type]


def run_sequence(
    cfg: Config, steps: Sequence[tuple[timedelta, list[Candidate]]]
) -> list[Decisions]:
    """Feed decisions back as state, as the store would between polls."""
    stories: dict[str, Story] = {}
    told: dict[str, frozenset[tuple[str, str]]] = {}
    last: dict[tuple[str, str], datetime] = {}
    sent: dict[str, int] = {}
    out = []
    for offset, cands in steps:
        now = T0 + offset
        current = state(
            cfg, stories=tuple(stories.values()), told=told, last_alert=last, sent_last_hour=sent
        )
        decided = decide(cands, current, now)
        out.append(decided)
        for story in decided.stories:
            stories[story.id] = story
        for entry in decided.entries:
            if entry.kind in (MessageKind.PARENT, MessageKind.ALERT) and entry.story_id:
                told[entry.story_id] = told.get(entry.story_id, frozenset()) | {
                    (entry.receiver.channel, entry.receiver.target)
                }
        for record in decided.records:
            if record.disposition == "sent" and record.story_id:
                last[(record.alert.rule_id, record.story_id)] = now
                sent[record.alert.rule_id] = sent.get(record.alert.rule_id, 0) + 1
    return out


def kinds(decided: Decisions) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.receiver.channel, e.receiver.target) for e in decided.entries]


def test_three_sources_one_story_thread_and_escalation() -> None:
    cfg = config()
    a, b, c = (
        cand("nhk"),
        cand("reuters", "Japan raises tariffs on steel imports - Reuters"),
        cand("kyodo", "Japan raises tariffs on steel imports (Kyodo)"),
    )
    first, second, third = run_sequence(
        cfg, [(timedelta(0), [a]), (timedelta(minutes=10), [b]), (timedelta(minutes=20), [c])]
    )
    assert kinds(first) == [("parent", "slack", "#news"), ("alert", "email", "desk@example.com")]
    assert kinds(second) == [("reply", "slack", "#news"), ("update", "slack", "#news")]
    assert second.records[0].disposition == "threaded"
    assert dict(second.entries[1].info)["sources"] == ["NHK", "REUTERS"]
    # the third source corroborates: critical; the new tier's receivers get the story,
    # the old ones a reply, an escalation notice and one update of the parent
    assert third.records[0].alert.tier == "critical"
    assert sorted(kinds(third)) == sorted(
        [
            ("parent", "slack", "#urgent"),
            ("alert", "email", "oncall@example.com"),
            ("reply", "slack", "#news"),
            ("update", "slack", "#news"),
            ("escalation", "email", "desk@example.com"),
            ("escalation", "slack", "#news"),
        ]
    )
    escalation = next(e for e in third.entries if e.kind == MessageKind.ESCALATION)
    assert "reported by 3 sources within 1h" in str(dict(escalation.info)["reason"])
    assert {s.id for s in first.stories} == {s.id for s in third.stories}


@pytest.mark.parametrize(
    ("title_b", "link_a", "link_b", "same"),
    [
        ("Toyota unveils a new electric car", None, None, False),
        ("Completely different", "https://x.jp/a?utm_source=t", "http://www.x.jp/a/", True),
        (KYODO_BOJ, None, None, False),
    ],
)
def test_story_clustering(title_b: str, link_a: str | None, link_b: str | None, same: bool) -> None:
    cfg = config()
    a = cand("nhk", link=link_a)
    b = cand("reuters", title_b, link=link_b)
    first, second = run_sequence(cfg, [(timedelta(0), [a]), (timedelta(minutes=5), [b])])
    assert (first.stories[0].id == second.stories[0].id) is same


def test_japanese_titles_cluster() -> None:
    cfg = config()
    a = cand("nhk", "日銀、政策金利を0.5%に引き上げ")
    b = cand("kyodo", KYODO_BOJ)
    first, second = run_sequence(cfg, [(timedelta(0), [a]), (timedelta(minutes=5), [b])])
    assert first.stories[0].id == second.stories[0].id
    assert second.records[0].disposition == "threaded"


def test_a_fingerprint_made_already_is_the_one_stories_use() -> None:
    """A parse worker sends a matched item's title fingerprint with its matches; decide
    takes it as given (and makes one only when none came)."""
    cfg = config()
    a = cand("nhk")
    unlike = cand("reuters", "Toyota unveils a new electric car")
    same_print = replace(unlike, title_signature=signature(a.alert.title))
    first, second = run_sequence(cfg, [(timedelta(0), [a]), (timedelta(minutes=5), [unlike])])
    assert first.stories[0].id != second.stories[0].id
    first, second = run_sequence(cfg, [(timedelta(0), [a]), (timedelta(minutes=5), [same_print])])
    assert first.stories[0].id == second.stories[0].id
    assert second.stories[0].signature == signature(a.alert.title)


def test_story_window_ends_clustering() -> None:
    cfg = config('[stories]\nwindow = "2h"\n')
    first, second = run_sequence(
        cfg, [(timedelta(0), [cand("nhk")]), (timedelta(hours=3), [cand("reuters")])]
    )
    assert first.stories[0].id != second.stories[0].id
    assert second.records[0].disposition == "sent"


def test_critical_inhibits_high_on_the_same_item() -> None:
    cfg = config()
    item = [cand("nhk", rule="trade", tier="high"), cand("nhk", rule="sanction", tier="critical")]
    (decided,) = run_sequence(cfg, [(timedelta(0), item)])
    dispositions = {r.alert.rule_id: r.disposition for r in decided.records}
    assert dispositions == {"sanction": "sent", "trade": "inhibited"}
    assert kinds(decided) == [
        ("parent", "slack", "#urgent"),
        ("alert", "email", "oncall@example.com"),
    ]


def test_source_tag_escalates_a_rule() -> None:
    cfg = config()
    (decided,) = run_sequence(
        cfg, [(timedelta(0), [cand("mof", rule="ministry", tags=("official",))])]
    )
    assert decided.records[0].alert.tier == "critical"
    assert "tagged official" in str(decided.stories[0].escalation)


NHK_LINK = "https://nhk.example/news/1"


def test_same_source_again_is_throttled_then_realerted_after_interval() -> None:
    cfg = config()
    steps = [
        (timedelta(0), [cand("nhk", key="guid:1", link=NHK_LINK)]),
        (timedelta(hours=1), [cand("nhk", key="guid:2", link=NHK_LINK)]),
        (timedelta(hours=5), [cand("nhk", key="guid:3", link=NHK_LINK)]),
    ]
    first, second, third = run_sequence(cfg, steps)
    assert second.records[0].disposition == "throttled"
    assert second.entries == ()
    assert third.records[0].disposition == "sent"
    assert kinds(third) == kinds(first)


def test_flood_guard_turns_the_rest_into_one_summary() -> None:
    cfg = config()
    titles = ["alpha rises", "beta falls", "gamma merges", "delta quits", "epsilon wins"]
    steps = [(timedelta(minutes=i), [cand("nhk", t)]) for i, t in enumerate(titles)]
    out = run_sequence(cfg, steps)
    assert [d.records[0].disposition for d in out] == ["sent"] * 3 + ["flooded"] * 2
    summary = out[3].entries[0]
    assert summary.kind == MessageKind.SUMMARY
    assert summary.group_key == "flood:trade:2026-11-24T03"
    assert summary.due_at == datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    assert out[4].entries[0].group_key == summary.group_key


def test_silence_records_but_does_not_deliver() -> None:
    cfg = config()
    silence = Silence(
        id="s1",
        matchers=(("rule", "trade"),),
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=1),
        author="ops",
        comment="noisy",
        created_at=T0,
    )
    decided = decide([cand("nhk")], replace(state(cfg), silences=(silence,)), T0)
    assert decided.entries == ()
    assert decided.records[0].disposition == "silenced:s1"
    later = decide([cand("nhk")], replace(state(cfg), silences=(silence,)), T0 + timedelta(hours=2))
    assert later.records[0].disposition == "sent"


ROUTES = """
[receivers.desk]
slack = ["#desk"]
[receivers.trade]
slack = ["#trade"]
email = ["trade@example.com"]
[receivers.oncall]
email = ["oncall@example.com"]

[[digests]]
id = "morning"
cron = "0 7 * * *"
timezone = "Asia/Tokyo"
email = ["desk@example.com"]

[routes]
receivers = ["desk"]

[[routes.routes]]
match = { tier = "critical" }
receivers = ["oncall"]
continue = true

[[routes.routes]]
match = { topic = "trade" }
receivers = ["trade"]
quiet_hours = { start = "22:00", end = "07:00", timezone = "Asia/Tokyo", defer = "end" }

[[routes.routes]]
match = { tier = "digest" }
digest = "morning"

[[routes.routes]]
match = { tag = "wire" }
receivers = ["desk"]
quiet_hours = { start = "22:00", end = "07:00", timezone = "Asia/Tokyo", defer = "digest:morning" }
"""
NIGHT = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo
MORNING_END = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)  # 07:00 in Tokyo


@pytest.mark.parametrize(
    ("candidate", "now", "expected", "due", "digest"),
    [
        (cand("nhk"), T0, {("slack", "#trade"), ("email", "trade@example.com")}, None, None),
        (
            cand("nhk", tier="critical"),
            T0,
            {("email", "oncall@example.com"), ("slack", "#trade"), ("email", "trade@example.com")},
            None,
            None,
        ),
        (cand("nhk", labels=()), T0, {("slack", "#desk")}, None, None),
        (
            cand("nhk"),
            NIGHT,
            {("slack", "#trade"), ("email", "trade@example.com")},
            MORNING_END,
            None,
        ),
        (
            cand("nhk", tier="critical"),
            NIGHT,
            {("email", "oncall@example.com"), ("slack", "#trade"), ("email", "trade@example.com")},
            None,
            None,
        ),
        (cand("nhk", tier="digest", labels=()), T0, set(), None, "morning"),
        (cand("nhk", labels=(), tags=("wire",)), NIGHT, set(), None, "morning"),
        (cand("nhk", labels=(), tags=("wire",)), T0, {("slack", "#desk")}, None, None),
    ],
)
def test_routing_tree_quiet_hours_and_digests(
    candidate: Candidate,
    now: datetime,
    expected: set[tuple[str, str]],
    due: datetime | None,
    digest: str | None,
) -> None:
    cfg = config(ROUTES)
    decided = decide([candidate], state(cfg), now)
    assert {(e.receiver.channel, e.receiver.target) for e in decided.entries} == expected
    assert {e.due_at for e in decided.entries} <= {due}
    assert [d.digest_id for d in decided.digest_entries] == ([digest] if digest else [])


EVENING = datetime(2026, 11, 24, 12, 50, tzinfo=UTC)  # 21:50 in Tokyo, before the quiet hours
LATER = "Japan raises tariffs on steel imports - Reuters"  # the same story, another source


@pytest.mark.parametrize(
    ("labels", "tags", "receiver", "due"),
    [
        ((("topic", "trade"),), (), "#trade", MORNING_END),  # quiet, deferred to the end
        ((), ("wire",), "#desk", MORNING_END),  # quiet, deferred to a digest: held alike
        ((), (), "#desk", None),  # the root route has no quiet hours
    ],
)
def test_a_reply_in_the_night_waits_for_the_end_of_the_routes_quiet_hours(
    labels: tuple[tuple[str, str], ...],
    tags: tuple[str, ...],
    receiver: str,
    due: datetime | None,
) -> None:
    cfg = config(ROUTES)
    first = cand("nhk", labels=labels, tags=tags)
    second = cand("reuters", LATER, labels=labels, tags=tags)
    evening, night = run_sequence(cfg, [(EVENING - T0, [first]), (NIGHT - T0, [second])])
    assert [(e.receiver.target, e.due_at) for e in evening.entries][:1] == [(receiver, None)]
    replies = [(e.receiver.target, e.due_at) for e in night.entries if e.kind == "reply"]
    assert replies == [(receiver, due)]
    # the parent's update edits a message, which notifies nobody: it is not held
    assert {e.due_at for e in night.entries if e.kind == "update"} == {None}


def test_an_escalation_to_critical_in_the_night_goes_at_once_where_critical_passes() -> None:
    cfg = config(ROUTES)
    first = cand("nhk", rule="ministry")
    official = cand("mof", LATER, rule="ministry", tags=("official",))
    _, night = run_sequence(cfg, [(EVENING - T0, [first]), (NIGHT - T0, [official])])
    assert night.records[0].alert.tier == "critical"
    follow_ups = [e for e in night.entries if e.kind in ("reply", "escalation")]
    assert {(e.kind.value, e.receiver.target) for e in follow_ups} == {
        ("reply", "#trade"),
        ("escalation", "#trade"),
        ("escalation", "trade@example.com"),
    }
    assert {e.due_at for e in follow_ups} == {None}  # allow_critical, the default


def test_a_reply_on_a_critical_story_goes_at_once_though_its_own_alert_is_high() -> None:
    cfg = config(ROUTES)
    first = cand("nhk", tier="critical")
    later = cand("reuters", LATER)  # high, so inhibited on the critical story
    _, night = run_sequence(cfg, [(EVENING - T0, [first]), (NIGHT - T0, [later])])
    assert night.records[0].disposition == "inhibited"
    replies = [(e.receiver.target, e.due_at) for e in night.entries if e.kind == "reply"]
    assert replies == [("#trade", None)]  # the thread is critical: allow_critical lets it


def test_a_critical_story_inhibits_later_high_alerts_but_threads_the_source() -> None:
    cfg = config()
    first, second = run_sequence(
        cfg,
        [
            (timedelta(0), [cand("nhk", tier="critical", rule="sanction")]),
            (timedelta(minutes=5), [cand("reuters", tier="high")]),
        ],
    )
    assert first.records[0].disposition == "sent"
    assert second.records[0].disposition == "inhibited"
    assert kinds(second) == [("reply", "slack", "#urgent"), ("update", "slack", "#urgent")]


def test_an_alert_no_route_sends_is_recorded_unrouted() -> None:
    decided = decide([cand("nhk", tier="unknown")], state(config()), T0)
    assert decided.entries == ()
    assert decided.records[0].disposition == "unrouted"


def test_a_source_does_not_join_its_own_story_by_title() -> None:
    cfg = config()
    steps = [
        (timedelta(0), [cand("nhk", "Item 000 on tariff", key="guid:0")]),
        (timedelta(minutes=1), [cand("nhk", "Item 002 on tariff", key="guid:2")]),
        (timedelta(minutes=2), [cand("reuters", "Item 000 on tariff - Reuters")]),
    ]
    first, second, third = run_sequence(cfg, steps)
    assert first.stories[0].id != second.stories[0].id
    assert second.records[0].disposition == "sent"
    assert third.records[0].disposition == "threaded"  # another source: by title
