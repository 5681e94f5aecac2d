"""Contract tests that every Store backend must pass.

A backend's test module subclasses :class:`StoreContract`, sets the class attributes, and
defines a ``store_factory`` fixture: a callable returning a new, *unopened* store each time
it is called, every store of one test sharing one empty database (two stores on one
database play two processes or two replicas). For example::

    @pytest.fixture
    def store_factory(tmp_path: Path) -> StoreFactory:
        return functools.partial(SQLiteStore, tmp_path / "mastwatch.db")

    class TestSQLiteStore(StoreContract):
        migrations_package = "mastwatch.store.migrations.sqlite"
        integrity_error = sqlite3.IntegrityError

Times are literals: the store never reads the clock, so nothing here waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Protocol

import pytest

from mastwatch.model import (
    Alert,
    Delivery,
    DeliveryState,
    Item,
    PollResult,
    Receiver,
    SourceState,
)
from mastwatch.store.base import CoordinationStore, Store
from mastwatch.store.migrate import load_migrations


class ContractStore(Store, CoordinationStore, Protocol):
    """The Store Protocol, replica coordination, and the inspection methods every backend
    offers."""

    async def schema_version(self) -> int: ...
    async def recent_alerts(self, limit: int = 50) -> list[Alert]: ...
    async def list_source_states(self) -> list[SourceState]: ...
    async def delivery_rows(self) -> list[Delivery]: ...


StoreFactory = Callable[[], ContractStore]
OpenStore = Callable[[], Awaitable[ContractStore]]

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SOURCE = "mof-press"
SLACK = Receiver("slack", "#policy-alerts")
EMAIL = Receiver("email", "desk@example.org")
CONSOLE = Receiver("console", "stdout")


def at(seconds: float) -> datetime:
    """``T0`` plus some seconds: every test speaks in offsets from one instant."""
    return T0 + timedelta(seconds=seconds)


def make_item(name: str, source_id: str = SOURCE) -> Item:
    return Item(
        source_id=source_id,
        key=f"guid:{name}",
        title=f"日米関税協議 {name}",
        link=f"https://example.org/news/{name}",
        guid=name,
        summary="Tariff talks between the US and Japan.",
        published=at(-3600),
    )


def make_alert(item: Item, rule_id: str = "tariffs", **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": Alert.make_id(item.source_id, item.key, rule_id),
        "rule_id": rule_id,
        "rule_title": "US-Japan tariffs",
        "tier": "high",
        "source_id": item.source_id,
        "source_name": "Ministry of Finance",
        "item_key": item.key,
        "title": item.title,
        "link": item.link,
        "summary": item.summary,
        "matched": ("関税", "tariff"),
        "published": item.published,
        "created_at": T0,
    }
    fields.update(changes)
    return Alert(**fields)


def make_poll(
    *items: Item,
    receivers: tuple[Receiver, ...] = (SLACK,),
    state: SourceState | None = None,
) -> PollResult:
    """A poll of ``SOURCE`` where every item fired one rule bound for ``receivers``."""
    return PollResult(
        state=state or SourceState(SOURCE, etag='W/"v1"', baseline_done=True),
        items=items,
        outbox=tuple((make_alert(item), receivers) for item in items),
    )


async def assert_an_old_database_gains_empty_runs(
    store_factory: Callable[[], Any], downgrade: Callable[[], Awaitable[None]], version: int
) -> None:
    """A database written before ``SourceState.empty_runs`` (``downgrade`` drops the column
    and forgets migration ``version``) gains them when opened, and keeps its sources."""
    async with store_factory() as store:
        await store.save_source_state(SourceState("mof-press", etag='"v1"', error_count=1))
    await downgrade()
    async with store_factory() as store:
        assert [m.version for m in store.applied_migrations] == [version]
        state = await store.get_source_state("mof-press")
        assert state == SourceState("mof-press", etag='"v1"', error_count=1)  # no runs yet
        await store.save_source_state(SourceState("mof-press", empty_runs=(("item", 1),)))
        assert (await store.get_source_state("mof-press")).empty_runs == (("item", 1),)


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)


class StoreContract:
    """The behaviour every backend shares; see the module docstring for how to use it."""

    migrations_package: ClassVar[str]
    # what the backend raises when a row breaks a NOT NULL or other integrity constraint
    integrity_error: ClassVar[type[Exception]]

    @pytest.fixture
    async def open_store(self, store_factory: StoreFactory) -> AsyncIterator[OpenStore]:
        """Open stores on the test's database; all are closed when the test ends."""
        opened: list[ContractStore] = []

        async def open_one() -> ContractStore:
            store = store_factory()
            await store.open()
            opened.append(store)
            return store

        yield open_one
        for store in opened:
            await store.close()

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> ContractStore:
        return await open_store()

    async def claim_ids(self, store: ContractStore, now: datetime, limit: int = 100) -> list[int]:
        return [delivery.id for delivery in await store.claim_deliveries(now, limit, 30)]

    # -- migrations and lifecycle ----------------------------------------------------------

    async def test_migrations_recorded_once_and_reopen_is_idempotent(
        self, store_factory: StoreFactory, open_store: OpenStore
    ) -> None:
        latest = load_migrations(self.migrations_package)[-1].version
        first = await open_store()
        assert await first.schema_version() == latest
        await first.open()  # opening an open store changes nothing
        await first.close()
        second = await open_store()
        assert await second.schema_version() == latest
        assert await second.ping()

    async def test_ping_is_false_after_close(self, store_factory: StoreFactory) -> None:
        store = store_factory()
        await store.open()
        assert await store.ping()
        await store.close()
        assert not await store.ping()
        await store.close()  # closing twice is harmless

    # -- source state ----------------------------------------------------------------------

    async def test_unknown_source_gets_default_state(self, store: ContractStore) -> None:
        assert await store.get_source_state("never-polled") == SourceState("never-polled")
        assert await store.list_source_states() == []

    async def test_source_state_round_trips_validators_verbatim(self, store: ContractStore) -> None:
        jst = timezone(timedelta(hours=9))
        state = SourceState(
            source_id=SOURCE,
            etag='W/"abc"',
            last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
            body_hash="sha256:0f1e",
            next_check_at=at(300).astimezone(jst),
            error_count=3,
            last_success_at=at(-60),
            last_error_at=at(-5),
            last_error="HTTP 503 from upstream",
            baseline_done=True,
            disabled=True,
            empty_runs=(("item", 4), ("date", 1)),
        )
        await store.save_source_state(state)
        loaded = await store.get_source_state(SOURCE)
        assert loaded == state  # aware datetimes compare by instant
        assert loaded.etag == 'W/"abc"'
        assert loaded.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
        for moment in (loaded.next_check_at, loaded.last_success_at, loaded.last_error_at):
            assert_utc(moment)

    async def test_saving_state_again_overwrites_every_field(self, store: ContractStore) -> None:
        runs = (("title", 2),)
        first = SourceState("b-source", etag='"x"', error_count=2, empty_runs=runs)
        await store.save_source_state(first)
        await store.save_source_state(SourceState("a-source", baseline_done=True))
        await store.save_source_state(SourceState("b-source", last_modified="Mon, 01 Jan 2024"))
        assert await store.list_source_states() == [
            SourceState("a-source", baseline_done=True),
            SourceState("b-source", last_modified="Mon, 01 Jan 2024"),
        ]

    # -- commit_poll -----------------------------------------------------------------------

    async def test_commit_poll_records_items_and_enqueues_per_receiver(
        self, store: ContractStore
    ) -> None:
        first, second = make_item("a"), make_item("b")
        result = PollResult(
            state=SourceState(SOURCE, etag='W/"abc"', baseline_done=True),
            items=(first, second),
            outbox=(
                (make_alert(first), (SLACK, EMAIL)),
                (make_alert(second, rule_id="g7"), (CONSOLE,)),
            ),
        )
        assert await store.commit_poll(result, T0) == 3
        assert await store.get_source_state(SOURCE) == result.state
        assert await store.unseen_keys(SOURCE, ["guid:a", "guid:b", "guid:c"]) == {"guid:c"}
        assert await store.outbox_counts() == {"pending": 3, "sent": 0, "failed": 0}
        rows = await store.delivery_rows()
        assert [(row.alert, row.channel, row.target) for row in rows] == [
            (make_alert(first), "slack", "#policy-alerts"),
            (make_alert(first), "email", "desk@example.org"),
            (make_alert(second, rule_id="g7"), "console", "stdout"),
        ]
        assert all(row.state is DeliveryState.PENDING and row.attempts == 0 for row in rows)
        assert await store.next_delivery_due() == T0

    async def test_alert_round_trips_every_field(self, store: ContractStore) -> None:
        item = make_item("a")
        alert = make_alert(
            item, matched=("関税", 'say "tariff"', "<b>&"), link=None, published=None
        )
        poll = PollResult(state=SourceState(SOURCE), items=(item,), outbox=((alert, (SLACK,)),))
        await store.commit_poll(poll, T0)
        [loaded] = await store.recent_alerts()
        assert loaded == alert
        assert loaded.matched == ("関税", 'say "tariff"', "<b>&")
        assert_utc(loaded.created_at)

    async def test_same_poll_committed_again_enqueues_nothing(self, store: ContractStore) -> None:
        poll = make_poll(make_item("a"), make_item("b"), receivers=(SLACK, EMAIL))
        assert await store.commit_poll(poll, T0) == 4
        assert await store.commit_poll(poll, at(60)) == 0
        assert await store.outbox_counts() == {"pending": 4, "sent": 0, "failed": 0}
        assert len(await store.recent_alerts()) == 2

    async def test_only_items_new_in_this_call_enqueue(self, store: ContractStore) -> None:
        old, new = make_item("old"), make_item("new")
        await store.commit_poll(PollResult(state=SourceState(SOURCE), items=(old,)), T0)
        assert await store.commit_poll(make_poll(old, new), at(60)) == 1
        [row] = await store.delivery_rows()
        assert row.alert.item_key == "guid:new"

    async def test_outbox_entry_whose_item_is_not_in_the_poll_enqueues_nothing(
        self, store: ContractStore
    ) -> None:
        stray = make_item("stray")
        poll = PollResult(state=SourceState(SOURCE), outbox=((make_alert(stray), (SLACK,)),))
        assert await store.commit_poll(poll, T0) == 0
        assert await store.recent_alerts() == []

    async def test_items_are_kept_per_source(self, store: ContractStore) -> None:
        await store.commit_poll(make_poll(make_item("a")), T0)
        assert await store.unseen_keys("other-source", ["guid:a"]) == {"guid:a"}
        (hash_a,) = await store.seen_content_hashes(SOURCE, [make_item("a").content_hash])
        unseen, seen = await store.known_items(SOURCE, ["guid:a", "guid:z"], [hash_a, "nope"])
        assert (unseen, seen) == ({"guid:z"}, {hash_a})
        assert await store.unseen_keys(SOURCE, []) == set()

    async def test_everything_survives_close_and_reopen(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        poll = make_poll(make_item("a"), receivers=(SLACK, EMAIL))
        await store.commit_poll(poll, T0)
        await store.close()
        reopened = await open_store()
        assert await reopened.get_source_state(SOURCE) == poll.state
        assert await reopened.unseen_keys(SOURCE, ["guid:a"]) == set()
        assert await reopened.outbox_counts() == {"pending": 2, "sent": 0, "failed": 0}
        # a restart that re-polls the same feed must not alert again
        assert await reopened.commit_poll(poll, at(60)) == 0

    async def test_failure_mid_poll_rolls_back_everything(self, store: ContractStore) -> None:
        good, bad = make_item("good"), make_item("bad")
        broken = make_alert(bad, matched=(object(),))  # cannot be serialised
        poll = PollResult(
            state=SourceState(SOURCE, etag='"v2"', baseline_done=True),
            items=(good, bad),
            outbox=((make_alert(good), (SLACK,)), (broken, (SLACK,))),
        )
        with pytest.raises(TypeError):
            await store.commit_poll(poll, T0)
        await self.assert_nothing_recorded(store)
        # the store is still usable and the next poll sees both items as new
        assert await store.commit_poll(make_poll(good, bad), at(60)) == 2

    async def test_constraint_violation_mid_poll_rolls_back_everything(
        self, store: ContractStore
    ) -> None:
        item = make_item("a")
        bad_receiver = Receiver(channel=None, target="#x")  # type: ignore[arg-type]
        poll = make_poll(item, receivers=(SLACK, bad_receiver))
        with pytest.raises(self.integrity_error):
            await store.commit_poll(poll, T0)
        await self.assert_nothing_recorded(store)

    async def test_commit_polls_writes_each_poll_at_its_own_time(
        self, store: ContractStore
    ) -> None:
        other = "nhk-business"
        first = make_poll(make_item("a"), receivers=(SLACK, EMAIL))
        second = replace(
            make_poll(make_item("b", source_id=other)),
            state=SourceState(other, etag='"n1"', baseline_done=True),
            outbox=((make_alert(make_item("b", source_id=other)), (SLACK,)),),
        )
        repeated = make_poll(make_item("a"))  # its item is already in the first poll
        assert await store.commit_polls([(first, at(0)), (second, at(5)), (repeated, at(9))]) == [
            2,
            1,
            0,
        ]
        assert await store.get_source_state(other) == second.state
        assert await store.unseen_keys(other, ["guid:b"]) == set()
        # each poll's deliveries are due at its own time: at 3 s only the first poll's
        early = await store.claim_deliveries(at(3), 10, 30)
        assert sorted(d.alert.item_key for d in early) == ["guid:a", "guid:a"]
        assert [d.alert.item_key for d in await store.claim_deliveries(at(5), 10, 30)] == ["guid:b"]

    async def test_commit_polls_is_all_or_nothing(self, store: ContractStore) -> None:
        good = make_poll(make_item("good"))
        bad_receiver = Receiver(channel=None, target="#x")  # type: ignore[arg-type]
        bad = make_poll(make_item("bad"), receivers=(SLACK, bad_receiver))
        with pytest.raises(self.integrity_error):
            await store.commit_polls([(good, at(0)), (bad, at(1))])
        await self.assert_nothing_recorded(store)

    async def assert_nothing_recorded(self, store: ContractStore) -> None:
        assert await store.unseen_keys(SOURCE, ["guid:good", "guid:bad", "guid:a"]) == {
            "guid:good",
            "guid:bad",
            "guid:a",
        }
        assert await store.get_source_state(SOURCE) == SourceState(SOURCE)
        assert await store.outbox_counts() == {"pending": 0, "sent": 0, "failed": 0}
        assert await store.recent_alerts() == []

    # -- claiming deliveries ---------------------------------------------------------------

    async def enqueue_at(self, store: ContractStore, *due: tuple[str, float]) -> dict[str, int]:
        """One delivery per (name, seconds): its item committed at ``at(seconds)``."""
        for name, seconds in due:
            await store.commit_poll(make_poll(make_item(name)), at(seconds))
        return {
            row.alert.item_key.removeprefix("guid:"): row.id for row in await store.delivery_rows()
        }

    async def test_claim_orders_by_due_time_and_honours_limit(self, store: ContractStore) -> None:
        ids = await self.enqueue_at(store, ("late", 120), ("early", 0), ("middle", 60))
        assert await self.claim_ids(store, at(-1)) == []  # nothing due yet
        assert await self.claim_ids(store, at(300), limit=2) == [ids["early"], ids["middle"]]
        # the first two are leased now, so the next claimer gets only the third
        assert await self.claim_ids(store, at(301)) == [ids["late"]]
        assert await self.claim_ids(store, at(302)) == []
        assert await self.claim_ids(store, at(900), limit=0) == []

    async def test_claimed_delivery_carries_its_alert(self, store: ContractStore) -> None:
        item = make_item("a")
        await store.commit_poll(make_poll(item, receivers=(EMAIL,)), T0)
        [delivery] = await store.claim_deliveries(T0, 10, 30)
        assert delivery.alert == make_alert(item)
        assert (delivery.channel, delivery.target) == ("email", "desk@example.org")
        assert (delivery.state, delivery.attempts, delivery.last_error) == (
            DeliveryState.PENDING,
            0,
            None,
        )

    async def test_concurrent_claimers_never_share_a_delivery(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        items = [make_item(f"n{number}") for number in range(10)]
        await store.commit_poll(make_poll(*items, receivers=(SLACK, EMAIL)), T0)
        other = await open_store()  # a second process on the same database
        claims: Sequence[Sequence[Delivery]] = await asyncio.gather(
            *(claimer.claim_deliveries(at(1), 3, 30) for claimer in [store, other] * 4)
        )
        claimed = [delivery.id for batch in claims for delivery in batch]
        assert len(claimed) == len(set(claimed)) == 20
        assert set(claimed) == {row.id for row in await store.delivery_rows()}

    async def test_expired_lease_makes_delivery_claimable_again(self, store: ContractStore) -> None:
        ids = await self.enqueue_at(store, ("a", 0))
        assert await self.claim_ids(store, T0) == [ids["a"]]  # leased until at(30)
        assert await store.next_delivery_due() == at(30)
        assert await self.claim_ids(store, at(29)) == []
        # the worker crashed mid-send: at-least-once means it is handed out again
        assert await self.claim_ids(store, at(30)) == [ids["a"]]

    async def test_retry_schedules_into_the_future(self, store: ContractStore) -> None:
        ids = await self.enqueue_at(store, ("a", 0))
        await self.claim_ids(store, T0)
        await store.mark_retry(ids["a"], at(90), "Slack 429")
        assert await store.next_delivery_due() == at(90)
        assert await self.claim_ids(store, at(89)) == []
        [delivery] = await store.claim_deliveries(at(90), 10, 30)
        assert (delivery.id, delivery.attempts, delivery.last_error) == (ids["a"], 1, "Slack 429")

    async def test_sent_and_failed_are_never_claimed_again(self, store: ContractStore) -> None:
        ids = await self.enqueue_at(store, ("sent", 0), ("failed", 0))
        await self.claim_ids(store, T0)
        await store.mark_sent(ids["sent"], at(1), detail="ts=1740819600.000100")
        await store.mark_failed(ids["failed"], at(1), "channel_not_found")
        assert await self.claim_ids(store, at(86_400)) == []
        assert await store.next_delivery_due() is None
        assert await store.outbox_counts() == {"pending": 0, "sent": 1, "failed": 1}
        rows = {row.id: row for row in await store.delivery_rows()}
        assert (rows[ids["sent"]].state, rows[ids["sent"]].attempts) == (DeliveryState.SENT, 1)
        failed = rows[ids["failed"]]
        assert (failed.state, failed.attempts, failed.last_error) == (
            DeliveryState.FAILED,
            1,
            "channel_not_found",
        )

    async def test_late_outcome_does_not_undo_a_sent_delivery(self, store: ContractStore) -> None:
        ids = await self.enqueue_at(store, ("a", 0))
        await store.mark_sent(ids["a"], at(1))
        # a second worker whose lease had expired reports back after the first
        await store.mark_retry(ids["a"], at(60), "timeout")
        await store.mark_failed(ids["a"], at(2), "rejected")
        await store.mark_sent(ids["a"], at(3))
        [row] = await store.delivery_rows()
        assert (row.state, row.attempts, row.last_error) == (DeliveryState.SENT, 1, None)

    async def test_next_delivery_due_is_none_on_an_empty_outbox(self, store: ContractStore) -> None:
        assert await store.next_delivery_due() is None
        assert await store.outbox_counts() == {"pending": 0, "sent": 0, "failed": 0}

    # -- coordination of replicas: two stores on one database play two replicas ----------

    async def test_only_one_replica_holds_a_source_lease(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        state = await store.claim_source(SOURCE, "r1", T0, 30, 2)
        assert state == SourceState(SOURCE)
        assert await other.claim_source(SOURCE, "r2", at(1), 30, 2) is None
        # the holder may renew its own lease
        assert await store.claim_source(SOURCE, "r1", at(2), 30, 2) is not None
        assert await other.claim_source(SOURCE, "r2", at(31), 30, 2) is None  # renewed to 32

    async def test_concurrent_claims_have_exactly_one_winner(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        claims = await asyncio.gather(
            *(
                claimer.claim_source(SOURCE, f"r{number}", T0, 30, None)
                for number, claimer in enumerate([store, other] * 4)
            )
        )
        assert len([claim for claim in claims if claim is not None]) == 1

    async def test_stored_outcome_releases_the_lease_and_sets_when_due(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        await store.claim_source(SOURCE, "r1", T0, 30, 2)
        polled = SourceState(SOURCE, etag='"v1"', next_check_at=at(60), baseline_done=True)
        polled.empty_runs = (("item", 2),)  # the next replica to poll goes on counting
        await store.commit_poll(make_poll(make_item("a"), state=polled), at(1))
        # released, but not due before at(60) - tolerance
        assert await other.claim_source(SOURCE, "r2", at(2), 30, 2) is None
        assert await other.claim_source(SOURCE, "r2", at(58), 30, 2) == polled
        # save_source_state (a failed poll) releases too; a forced claim ignores due time
        await other.save_source_state(replace(polled, error_count=1, next_check_at=at(600)))
        assert await store.claim_source(SOURCE, "r1", at(59), 30, 2) is None
        claimed = await store.claim_source(SOURCE, "r1", at(59), 30, None)
        assert claimed is not None and claimed.error_count == 1

    async def test_expired_source_lease_is_taken_over(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        assert await store.claim_source(SOURCE, "dead", T0, 30, 2) is not None
        assert await other.claim_source(SOURCE, "r2", at(29), 30, 2) is None
        assert await other.claim_source(SOURCE, "r2", at(30), 30, 2) is not None

    async def test_release_only_by_the_holder(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        await store.claim_source(SOURCE, "r1", T0, 30, 2)
        await other.release_source(SOURCE, "r2")
        assert await other.claim_source(SOURCE, "r2", at(1), 30, 2) is None
        await store.release_source(SOURCE, "r1")
        assert await other.claim_source(SOURCE, "r2", at(1), 30, 2) is not None

    async def test_live_replicas_show_what_each_holds(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        await store.commit_poll(make_poll(make_item("a"), make_item("b")), T0)
        await store.heartbeat("r1", T0, {"host": "a", "pid": "1"})
        await other.heartbeat("r2", T0, {"host": "b", "pid": "2"})
        await store.heartbeat("old", at(-60), {})
        await store.claim_source("s1", "r1", T0, 30, None)
        await store.claim_source("s2", "r1", T0, 30, None)
        await other.claim_source("s3", "r2", T0, 30, None)
        await other.claim_deliveries(T0, 1, 30, "r2")
        await store.heartbeat("r1", at(5), {"host": "a", "pid": "1"})
        replicas = {r.replica_id: r for r in await other.live_replicas(at(10), 20)}
        assert sorted(replicas) == ["r1", "r2"]  # "old" was last seen 70 s before
        r1, r2 = replicas["r1"], replicas["r2"]
        assert (r1.sources, r1.deliveries, r1.started_at, r1.last_seen) == (
            ("s1", "s2"),
            0,
            T0,
            at(5),
        )
        assert (r2.sources, r2.deliveries, dict(r2.info)) == (("s3",), 1, {"host": "b", "pid": "2"})
        # once the leases expire they are no longer shown as held
        later = {r.replica_id: r for r in await other.live_replicas(at(31), 60)}
        assert (later["r1"].sources, later["r2"].deliveries) == ((), 0)

    async def test_forgotten_replica_hands_back_its_leases(
        self, store: ContractStore, open_store: OpenStore
    ) -> None:
        other = await open_store()
        ids = await self.enqueue_at(store, ("a", 0))
        await store.heartbeat("r1", T0, {})
        await store.claim_source("s1", "r1", T0, 30, None)
        assert await self.claim_ids_as(store, T0, "r1") == [ids["a"]]
        await store.forget_replica("r1")
        assert await other.live_replicas(at(1), 20) == []
        assert await other.claim_source("s1", "r2", at(1), 30, None) is not None
        assert await self.claim_ids_as(other, at(1), "r2") == [ids["a"]]

    async def claim_ids_as(self, store: ContractStore, now: datetime, owner: str) -> list[int]:
        return [d.id for d in await store.claim_deliveries(now, 100, 30, owner)]
