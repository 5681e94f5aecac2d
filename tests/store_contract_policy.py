"""Contract tests of the alert-policy store methods (issue 5), as mixins of StoreContract.

A backend's test class lists these next to :class:`store_contract.StoreContract`, whose
``store`` and ``open_store`` fixtures they use. Times are literals.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from mastwatch.model import DigestEntry, Message, Silence
from store_contract import T0, at, make_alert, make_item, make_poll

STATES = ("pending", "sent", "failed")  # of a messages row, as of a delivery

# -- P2: digests, silences, notices, messages ---------------------------------------------


def digest_poll(*names: str, digest_id: str = "morning") -> Any:
    items = [make_item(name) for name in names]
    entries = tuple(DigestEntry(make_alert(item, tier="digest"), digest_id) for item in items)
    poll = make_poll(*items, receivers=())
    return type(poll)(state=poll.state, items=poll.items, digest_entries=entries)


def mail(ref: str, target: str = "desk@example.org") -> Message:
    return Message("digest", ref, "email", target, "Morning digest", "text", "<p>html</p>")


class DigestStoreContract:
    async def test_digest_entries_are_queued_once_with_their_new_item(self, store: Any) -> None:
        await store.commit_poll(digest_poll("a", "b"), at(0))
        await store.commit_poll(digest_poll("a", "b"), at(10))  # the same items again
        waiting = await store.waiting_digest_entries("morning", at(60))
        assert [e.alert.title for e in waiting] == ["日米関税協議 a", "日米関税協議 b"]
        assert await store.waiting_digest_entries("morning", at(0)) == []  # before: none
        assert await store.waiting_digest_entries("evening", at(60)) == []

    async def test_a_period_is_claimed_once_even_by_two_stores(self, open_store: Any) -> None:
        first, second = await open_store(), await open_store()
        await first.commit_poll(digest_poll("a"), at(0))
        waiting = await first.waiting_digest_entries("morning", at(60))
        ids = [e.alert.id for e in waiting]
        period = (at(-3600), at(60))
        assert await first.claim_digest("morning", period, ids, [mail("d:1")], at(61))
        assert not await second.claim_digest("morning", period, ids, [mail("d:1b")], at(62))
        assert await second.waiting_digest_entries("morning", at(60)) == []  # taken
        rows = await second.message_rows()
        assert [(m.ref, state) for m, state in rows] == [("d:1", "pending")]

    async def test_messages_are_claimed_leased_and_settled(self, store: Any) -> None:
        await store.claim_digest("morning", (at(0), at(60)), [], [mail("d:1"), mail("d:2")], at(60))
        claimed = await store.claim_messages(at(60), 10, 30)
        assert [m.ref for m in claimed] == ["d:1", "d:2"]
        assert await store.claim_messages(at(70), 10, 30) == []  # leased
        await store.mark_message(claimed[0].id, "sent", at(71))
        await store.mark_message(claimed[1].id, "retry", at(200), "421 busy")
        assert await store.claim_messages(at(199), 10, 30) == []
        again = await store.claim_messages(at(200), 10, 30)
        assert [(m.ref, m.attempts) for m in again] == [("d:2", 1)]
        await store.mark_message(again[0].id, "failed", at(201), "550 no such user")
        states = [state for _, state in await store.message_rows()]
        assert states == ["sent", "failed"]
        counts = await store.message_counts()
        assert counts[("digest", "sent")] == counts[("digest", "failed")] == 1
        assert sum(counts.values()) == 2  # the notice and pending pairs are there, at zero
        assert set(counts) == {(k, s) for k in ("digest", "notice") for s in STATES}

    async def test_a_notice_changes_state_once(self, open_store: Any) -> None:
        first, second = await open_store(), await open_store()
        note = Message("notice", "n:1", "console", "stdout", "source failing", "3 errors")
        text = ("source failing", "3 errors")
        assert await first.set_notice("source_failing:x", True, text, [note], at(0))
        assert not await second.set_notice("source_failing:x", True, text, [note], at(5))
        cleared = Message("notice", "n:2", "console", "stdout", "recovered", "ok")
        assert await second.set_notice("source_failing:x", False, text, [cleared], at(9))
        assert not await first.set_notice("source_failing:x", False, text, [cleared], at(10))
        assert not await first.set_notice("other", False, text, [cleared], at(10))
        assert [m.ref for m, _ in await first.message_rows()] == ["n:1", "n:2"]
        assert (await second.message_counts())[("notice", "pending")] == 2


def silence(silence_id: str, start: float, hours: float, **matchers: str) -> Silence:
    return Silence(
        id=silence_id,
        matchers=tuple(matchers.items()),
        starts_at=at(start),
        ends_at=at(start) + timedelta(hours=hours),
        author="aiko",
        comment="関税の誤報",
        created_at=at(start),
    )


class SilenceStoreContract:
    async def test_silences_round_trip_and_expire(self, store: Any) -> None:
        first = silence("s1", 0, 4, rule="tariffs", source="mof-press")
        later = silence("s2", 3600, 1, topic="trade")
        await store.add_silence(first)
        await store.add_silence(later)
        assert await store.list_silences(at(0)) == [first, later]
        assert await store.active_silences(at(0)) == [first]
        assert await store.active_silences(at(3600)) == [first, later]
        # decide reads them with the rest of the policy state, in one call
        assert (await store.policy_rows(at(3600), 60.0, [])).silences == (first, later)
        assert await store.expire_silence("s1", at(7200))
        assert not await store.expire_silence("s1", at(7300))  # already ended
        assert not await store.expire_silence("nope", at(7300))
        assert await store.active_silences(at(7200)) == []  # s2 ended at 7200 too
        assert [s.id for s in await store.list_silences(at(7200), expired=True)] == ["s1", "s2"]
        assert (await store.list_silences(at(7200), expired=True))[0].ends_at == at(7200)
        assert at(0) == T0


# -- P1: stories, message kinds, dispositions ----------------------------------------------


def story_poll(*names: str, at_seconds: float = 0, **entry: Any) -> Any:
    """A poll whose items open / join one story, each alert sent as a Slack parent."""
    from mastwatch.model import (  # noqa: PLC0415
        AlertRecord,
        MessageKind,
        OutboxEntry,
        Receiver,
        Report,
        Story,
    )

    items = [make_item(name) for name in names]
    alerts = [make_alert(item, created_at=at(at_seconds)) for item in items]
    story = Story(
        id="story-1",
        title="日米関税協議",
        link="https://example.go.jp/a",
        link_key="example.go.jp/a",
        signature=(1, 2**60, 3),
        tier="high",
        reports=(Report("mof", "Ministry of Finance", at(0)), Report("nhk", "NHK", at(5))),
        first_seen_at=at(0),
        last_seen_at=at(at_seconds),
    )
    kind = entry.pop("kind", MessageKind.PARENT)
    entries = tuple(
        OutboxEntry(alert, Receiver("slack", "#desk"), kind, story_id="story-1", **entry)
        for alert in alerts
    )
    records = tuple(AlertRecord(alert, "story-1", "sent") for alert in alerts)
    poll = make_poll(*items, receivers=())
    return type(poll)(
        state=poll.state, items=poll.items, records=records, entries=entries, stories=(story,)
    )


class StoryStoreContract:
    async def test_stories_and_what_was_sent_come_back_for_decide(self, store: Any) -> None:
        assert await store.commit_poll(story_poll("a"), at(0)) == 1
        rows = await store.policy_rows(at(60), 3600.0, ["tariffs", "other"])
        (story,) = rows.stories
        assert story.signature == (1, 2**60, 3)
        assert story.source_names == ("Ministry of Finance", "NHK")
        assert story.reports[1].at == at(5)
        assert rows.told == {"story-1": frozenset({("slack", "#desk")})}
        assert rows.last_alert == {("tariffs", "story-1"): at(0)}
        assert rows.sent_last_hour == {"tariffs": 1, "other": 0}
        later = await store.policy_rows(at(7200), 3600.0, ["tariffs"])
        assert later.stories == ()  # the story window has passed
        assert later.sent_last_hour == {"tariffs": 0}

    async def test_a_story_read_again_after_it_changed_comes_back_changed(self, store: Any) -> None:
        from dataclasses import replace  # noqa: PLC0415

        from mastwatch.model import Report  # noqa: PLC0415

        await store.commit_poll(story_poll("a"), at(0))
        (first,) = (await store.policy_rows(at(10), 3600.0, [])).stories
        later = story_poll("b", at_seconds=30)
        (story,) = later.stories
        grown = replace(story, reports=(*story.reports, Report("kyodo", "Kyodo", at(30))))
        await store.commit_poll(replace(later, stories=(grown,)), at(30))
        (again,) = (await store.policy_rows(at(40), 3600.0, [])).stories
        assert first.source_names == ("Ministry of Finance", "NHK")
        assert again.source_names == ("Ministry of Finance", "NHK", "Kyodo")
        assert again.last_seen_at == at(30)

    async def test_a_known_item_records_and_enqueues_nothing(self, store: Any) -> None:
        await store.commit_poll(story_poll("a"), at(0))
        assert await store.commit_poll(story_poll("a"), at(10)) == 0
        assert len(await store.delivery_rows()) == 1

    async def test_deliveries_carry_kind_story_and_the_parent_ts(self, store: Any) -> None:
        from mastwatch.model import MessageKind  # noqa: PLC0415

        await store.commit_poll(story_poll("a"), at(0))
        reply = story_poll("b", kind=MessageKind.REPLY, info=(("source", "NHK"),))
        await store.commit_poll(reply, at(1))
        parent, follow = await store.delivery_rows()
        assert (parent.kind, follow.kind) == ("parent", "reply")
        assert follow.story_id == "story-1"
        assert follow.info == {"source": "NHK"}
        assert await store.story_parent("story-1", "slack", "#desk") == ("pending", None)
        await store.mark_sent(parent.id, at(2), "1700000000.000100 C123")
        assert await store.story_parent("story-1", "slack", "#desk") == (
            "sent",
            "1700000000.000100 C123",
        )
        assert await store.story_parent("story-1", "slack", "#other") is None

    async def test_a_deferred_delivery_waits_without_an_attempt(self, store: Any) -> None:
        await store.commit_poll(story_poll("a"), at(0))
        (claimed,) = await store.claim_deliveries(at(0), 10, 30)
        await store.defer_delivery(claimed.id, at(5))
        assert await store.claim_deliveries(at(4), 10, 30) == []
        (again,) = await store.claim_deliveries(at(5), 10, 30)
        assert again.attempts == 0

    async def test_flood_summaries_gather_in_one_row(self, store: Any) -> None:
        from mastwatch.model import MessageKind  # noqa: PLC0415

        due = at(3600)
        summary = {"kind": MessageKind.SUMMARY, "due_at": due, "group_key": "flood:tariffs:h"}
        await store.commit_poll(story_poll("a", "b", **summary), at(0))
        await store.commit_poll(story_poll("c", **summary), at(10))
        (row,) = await store.delivery_rows()
        assert row.kind == "summary"
        assert [i["title"] for i in row.info["items"]] == [
            "日米関税協議 a",
            "日米関税協議 b",
            "日米関税協議 c",
        ]
        assert row.info["count"] == 3
        assert await store.claim_deliveries(at(60), 10, 30) == []  # due at the hour's end
        assert len(await store.claim_deliveries(due, 10, 30)) == 1


# -- HA: replicas sharing the policy's state (issue 8) ------------------------------------
# Several stores on one database play several replicas (the SQLite file works the same
# way: its write lock serialises them as PostgreSQL's row and advisory locks do).


def shared_story(
    *reports: tuple[str, float], tier: str = "high", escalation: str | None = None
) -> Any:
    from mastwatch.model import Report, Story  # noqa: PLC0415

    return Story(
        id="story-1",
        title="日米関税協議",
        link="https://example.go.jp/a",
        link_key="example.go.jp/a",
        signature=(1, 2, 3),
        tier=tier,
        reports=tuple(Report(source, source.upper(), at(when)) for source, when in reports),
        first_seen_at=at(0),
        last_seen_at=at(max(when for _, when in reports)),
        escalation=escalation,
    )


def with_story(poll: Any, story: Any) -> Any:
    return type(poll)(
        state=poll.state,
        items=poll.items,
        records=poll.records,
        entries=poll.entries,
        stories=(story,),
    )


class ReplicaPolicyContract:
    async def test_story_state_is_shared_and_merged_across_replicas(self, open_store: Any) -> None:
        first, second = await open_store(), await open_store()
        await first.commit_poll(with_story(story_poll("a"), shared_story(("mof", 0))), at(0))
        (seen,) = (await second.policy_rows(at(10), 3600.0, [])).stories
        assert [r.source_id for r in seen.reports] == ["mof"]
        # two replicas each add a report to the story as they read it before the other wrote
        nhk = shared_story(("mof", 0), ("nhk", 20), tier="critical", escalation="2 sources")
        kyodo = shared_story(("mof", 0), ("kyodo", 30))  # has not seen NHK nor the escalation
        await second.commit_poll(with_story(story_poll("b", at_seconds=20), nhk), at(20))
        await first.commit_poll(with_story(story_poll("c", at_seconds=30), kyodo), at(30))
        (story,) = (await first.policy_rows(at(40), 3600.0, [])).stories
        assert [r.source_id for r in story.reports] == ["mof", "nhk", "kyodo"]
        assert (story.tier, story.escalation) == ("critical", "2 sources")
        assert story.last_seen_at == at(30)
        assert (await second.policy_rows(at(40), 3600.0, [])).told == {
            "story-1": frozenset({("slack", "#desk")})
        }

    async def test_concurrent_digest_claims_have_one_winner(self, open_store: Any) -> None:
        stores = [await open_store() for _ in range(3)]
        await stores[0].commit_poll(digest_poll("a", "b"), at(0))
        ids = [e.alert.id for e in await stores[1].waiting_digest_entries("morning", at(60))]
        period = (at(-3600), at(60))
        won = await asyncio.gather(
            *(
                store.claim_digest("morning", period, ids, [mail(f"d:{n}")], at(61))
                for n, store in enumerate(stores)
            )
        )
        assert sorted(won) == [False, False, True]
        rows = await stores[2].message_rows()
        assert [m.ref for m, _ in rows] == [f"d:{won.index(True)}"]
        assert await stores[2].digest_claims("morning") == [(at(-3600), 2)]

    async def test_concurrent_notices_notify_once(self, open_store: Any) -> None:
        stores = [await open_store() for _ in range(3)]
        text = ("source failing", "3 errors")
        raised = await asyncio.gather(
            *(
                store.set_notice(
                    "source_failing:x",
                    True,
                    text,
                    [Message("notice", f"n:{n}", "console", "stdout", "failing", "3 errors")],
                    at(n),
                )
                for n, store in enumerate(stores)
            )
        )
        assert sorted(raised) == [False, False, True]
        assert len(await stores[0].message_rows()) == 1
        assert [key for key, _, _ in await stores[1].active_notices()] == ["source_failing:x"]

    async def test_replicas_never_share_a_message(self, open_store: Any) -> None:
        first, second = await open_store(), await open_store()
        notes = [mail(f"d:{n}", target=f"desk{n}@example.org") for n in range(12)]
        await first.claim_digest("morning", (at(0), at(60)), [], notes, at(60))
        claims = await asyncio.gather(
            *(
                store.claim_messages(at(60), 2, 30, owner)
                for store, owner in [(first, "r1"), (second, "r2")] * 3
            )
        )
        claimed = [m.id for batch in claims for m in batch]
        assert len(claimed) == len(set(claimed)) == 12
        assert await second.claim_messages(at(61), 100, 30, "r2") == []  # all leased

    async def test_a_forgotten_replica_hands_back_its_messages(self, open_store: Any) -> None:
        first, second = await open_store(), await open_store()
        await first.claim_digest("morning", (at(0), at(60)), [], [mail("d:1")], at(60))
        (taken,) = await first.claim_messages(at(60), 10, 300, "r1")
        assert await second.claim_messages(at(61), 10, 300, "r2") == []
        await first.forget_replica("r1")  # a clean stop: no waiting for the lease
        assert [m.id for m in await second.claim_messages(at(62), 10, 300, "r2")] == [taken.id]

    async def test_a_silence_added_on_one_replica_holds_on_all(self, open_store: Any) -> None:
        first, second = await open_store(), await open_store()
        await first.add_silence(silence("s1", 0, 4, rule="tariffs"))
        assert [s.id for s in await second.active_silences(at(60))] == ["s1"]
        assert await second.expire_silence("s1", at(120))
        assert await first.active_silences(at(121)) == []

    async def test_concurrent_flood_guards_fill_one_summary(self, open_store: Any) -> None:
        from mastwatch.model import MessageKind  # noqa: PLC0415

        stores = [await open_store() for _ in range(3)]
        summary = {"kind": MessageKind.SUMMARY, "due_at": at(3600), "group_key": "flood:t:h"}
        await asyncio.gather(
            *(
                store.commit_poll(story_poll(f"i{n}", **summary), at(n))
                for n, store in enumerate(stores)
            )
        )
        (row,) = await stores[0].delivery_rows()
        assert row.info["count"] == 3
        assert sorted(i["title"] for i in row.info["items"]) == [
            f"日米関税協議 i{n}" for n in range(3)
        ]
