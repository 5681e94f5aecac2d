"""Contract tests of the alert-policy store methods (issue 5), as mixins of StoreContract.

A backend's test class lists these next to :class:`store_contract.StoreContract`, whose
``store`` and ``open_store`` fixtures they use. Times are literals.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mastwatch.model import DigestEntry, Message, Silence
from store_contract import T0, at, make_alert, make_item, make_poll

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
        assert await store.expire_silence("s1", at(7200))
        assert not await store.expire_silence("s1", at(7300))  # already ended
        assert not await store.expire_silence("nope", at(7300))
        assert await store.active_silences(at(7200)) == []  # s2 ended at 7200 too
        assert [s.id for s in await store.list_silences(at(7200), expired=True)] == ["s1", "s2"]
        assert (await store.list_silences(at(7200), expired=True))[0].ends_at == at(7200)
        assert at(0) == T0
