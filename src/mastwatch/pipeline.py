"""One poll's journey: fetch → items → new items → matches → alerts → outbox.

Each step is a small function; the only state that survives a poll is what
``Store.commit_poll`` writes in one transaction, so a crash anywhere before it simply
means the next poll does the same work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import structlog

from mastwatch.config import Config, SourceConfig
from mastwatch.errors import FetchError
from mastwatch.metrics import Metrics
from mastwatch.model import Alert, Item, Match, PollResult, SourceState
from mastwatch.policy.decide import Candidate, Decisions, PolicyState, decide
from mastwatch.policy.routing import Routing, build_routing
from mastwatch.replica import SourceLeases
from mastwatch.rules import RuleSet, match
from mastwatch.sources.feed import ParsedFeed
from mastwatch.sources.http import Fetched, FetchFailed, NotModified
from mastwatch.sources.page import (
    ParsedPage,
    count_empty_runs,
    page_selectors_of,
    repeat_empty_runs,
    selector_verdict,
)
from mastwatch.sources.parsing import ParseAndMatch, ParseCall
from mastwatch.sources.worker_rules import ItemMatches, SharedRules
from mastwatch.store.base import Store
from mastwatch.store.group_commit import GroupCommit
from mastwatch.text import html_to_text, make_document

log = structlog.get_logger(__name__)
TICK_TOLERANCE_SECONDS = 2.0

FetchResult = Fetched | NotModified | FetchFailed


class FetchesUrls(Protocol):
    async def fetch(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        previous_body_hash: str | None,
        allow_private: bool,
    ) -> FetchResult: ...


@dataclass(frozen=True)
class PollOutcome:
    """What a poll did, for logs, metrics and tests."""

    source_id: str
    status: str  # "ok", "not_modified", "failed", "skipped", "disabled"
    items_seen: int = 0
    new_items: int = 0
    alerts: int = 0
    deliveries: int = 0
    error: str | None = None
    failures_in_a_row: int = 0  # after this poll (0 for a success)
    # a page source's poll that read the page (or found it unchanged): "empty", "ok" or
    # "short" (sources.page.selector_verdict), for the selector_empty notice; else None
    page_selectors: str | None = None


@dataclass(frozen=True)
class _PollToCommit:
    """A poll's rows waiting for their turn, its matches still to be decided."""

    candidates: tuple[Candidate, ...]
    state: SourceState
    items: tuple[Item, ...]
    now: datetime

    def result(self, decided: Decisions) -> PollResult:
        return PollResult(
            state=self.state,
            items=self.items,
            digest_entries=decided.digest_entries,
            records=decided.records,
            entries=decided.entries,
            stories=decided.stories,
        )


def _share_out(decided: Decisions, polls: Sequence[_PollToCommit]) -> list[Decisions]:
    """Decisions made for several polls at once, each poll given those about its own items
    (so each commits exactly what it would have alone) and every changed story (the
    store saves the ones its records name)."""
    owner = {
        (c.alert.source_id, c.alert.item_key): index
        for index, poll in enumerate(polls)
        for c in poll.candidates
    }
    records = _bucket(decided.records, owner, len(polls))
    entries = _bucket(decided.entries, owner, len(polls))
    digests = _bucket(decided.digest_entries, owner, len(polls))
    return [
        Decisions(tuple(records[i]), tuple(entries[i]), tuple(digests[i]), decided.stories)
        for i in range(len(polls))
    ]


class _AboutAnAlert(Protocol):
    @property
    def alert(self) -> Alert: ...


_Decision = TypeVar("_Decision", bound=_AboutAnAlert)


def _bucket(
    decisions: Sequence[_Decision], owner: dict[tuple[str, str], int], polls: int
) -> list[list[_Decision]]:
    """``decisions`` by the poll whose item each is about (a KeyError, failing the batch,
    should one be about no poll's item)."""
    buckets: list[list[_Decision]] = [[] for _ in range(polls)]
    for decision in decisions:
        buckets[owner[decision.alert.source_id, decision.alert.item_key]].append(decision)
    return buckets


@dataclass
class Pipeline:
    """Everything a poll needs, passed in once (the procrastinate habit)."""

    config: Config
    store: Store
    fetcher: FetchesUrls
    rules: Callable[[], RuleSet]
    executor: Executor | None = None
    routing: Routing | None = None  # None: built from the config (console fallbacks off)
    on_enqueued: Callable[[], None] = lambda: None
    metrics: Metrics = field(default_factory=Metrics)
    leases: SourceLeases | None = None  # HA mode: claim each source before polling it
    # set when ``executor`` is a process pool: its workers match what they parse
    shared_rules: SharedRules | None = None
    _host_limits: dict[str, asyncio.Semaphore] | None = None
    # polls' decisions and commits, one batch at a time (see _commit_together)
    _commits: GroupCommit[_PollToCommit, int] | None = None

    def _host_limit(self, url: str) -> asyncio.Semaphore:
        if self._host_limits is None:
            self._host_limits = {}
        host = urlsplit(url).netloc or "file"
        limit = self.config.http.per_host_concurrency
        return self._host_limits.setdefault(host, asyncio.Semaphore(limit))

    async def poll(
        self,
        source: SourceConfig,
        now: datetime,
        *,
        force: bool = False,
        state: SourceState | None = None,
    ) -> PollOutcome:
        """Poll one source unless its stored next-check time is still ahead (backoff).

        ``state`` is the source's stored state when the caller has just read it (for many
        sources in one query); a source never stored has none and is read (as fresh) here.
        """
        if self.leases is not None:
            return await self._poll_leased(self.leases, source, now, force=force)
        if state is None:
            state = await self.store.get_source_state(source.id)
        if state.disabled:
            return PollOutcome(source.id, "disabled")
        if not force and not self._due(state, now):
            return PollOutcome(source.id, "skipped")
        return await self._fetch_and_handle(source, state, now)

    async def _poll_leased(
        self, leases: SourceLeases, source: SourceConfig, now: datetime, *, force: bool
    ) -> PollOutcome:
        """HA mode: poll only if this replica wins the source's lease (it is due and no
        other replica holds it); storing the outcome ends the lease."""
        # Several replicas tick for every source: a tolerance near the interval would let
        # each of them poll it, so here it is at most a quarter of the interval.
        tolerance = min(self._tolerance(), self.config.interval_of(source) / 4)
        state = await leases.claim(source.id, now, None if force else tolerance)
        if state is None:
            return PollOutcome(source.id, "skipped")
        try:
            if state.disabled:
                await leases.release(source.id)
                return PollOutcome(source.id, "disabled")
            return await self._fetch_and_handle(source, state, now)
        except Exception:
            await leases.release(source.id)  # let the next tick (any replica) try again
            raise

    async def _fetch_and_handle(
        self, source: SourceConfig, state: SourceState, now: datetime
    ) -> PollOutcome:
        url = self.config.source_url(source)
        async with self._host_limit(url):
            fetched = await self.fetcher.fetch(
                url,
                etag=state.etag,
                last_modified=state.last_modified,
                previous_body_hash=state.body_hash,
                allow_private=source.allow_private,
            )
        return await self._handle(source, state, fetched, now)

    def _due(self, state: SourceState, now: datetime) -> bool:
        """Due when the stored next-check time has come. The scheduler's ticks wander by
        up to the jitter, so a tick that slightly precedes the stored time still counts;
        otherwise a healthy source would be polled every other interval."""
        if state.next_check_at is None:
            return True
        return state.next_check_at <= now + timedelta(seconds=self._tolerance())

    def _tolerance(self) -> float:
        return self.config.schedule.jitter + TICK_TOLERANCE_SECONDS

    async def _handle(
        self, source: SourceConfig, state: SourceState, fetched: FetchResult, now: datetime
    ) -> PollOutcome:
        if isinstance(fetched, FetchFailed):
            return await self._record_failure(source, state, fetched, now)
        if isinstance(fetched, NotModified):
            new_state = self._succeeded(source, state, now, fetched)
            verdict = _count_empty_selectors(source, new_state, None)
            await self.store.save_source_state(new_state)
            log.debug("source_not_modified", source=source.id, reason=fetched.reason)
            return PollOutcome(source.id, "not_modified", page_selectors=verdict)
        # a source's baseline poll raises no alerts: nothing for its worker to match
        baseline = not state.baseline_done and self.config.baseline_of(source)
        try:
            parsed, premade = await self._parse(source, fetched, matching=not baseline)
        except FetchError as exc:
            failure = FetchFailed(reason=str(exc), failure_class="parse")
            return await self._record_failure(source, state, failure, now)
        return await self._record_items(
            source, state, fetched, parsed, now, premade=premade, baseline=baseline
        )

    async def _parse(
        self, source: SourceConfig, fetched: Fetched, *, matching: bool
    ) -> tuple[ParsedFeed | ParsedPage, ItemMatches | None]:
        """Parse off the event loop: feedparser is CPU work and must not stall polling. If
        ``matching``, a parse worker also matches the items (with the rules in force now)."""
        loop = asyncio.get_running_loop()
        call = ParseCall.of(source.id, fetched, page_selectors_of(source))
        shared = self.shared_rules if matching else None
        ref = shared.ref(self.rules()) if shared is not None else None
        premade: ItemMatches | None = None
        if ref is None:
            parsed = await loop.run_in_executor(self.executor, call)
        else:
            both = ParseAndMatch(call, ref, tuple(source.tags))
            parsed, premade = await loop.run_in_executor(self.executor, both)
        if parsed.warning:
            log.info("feed_parse_warning", source=source.id, warning=parsed.warning)
        return parsed, premade

    async def _record_items(
        self,
        source: SourceConfig,
        state: SourceState,
        fetched: Fetched,
        parsed: ParsedFeed | ParsedPage,
        now: datetime,
        *,
        premade: ItemMatches | None,
        baseline: bool,
    ) -> PollOutcome:
        """``baseline``: the source's baseline poll, which records items and raises no
        alerts; ``premade``: the items' matches, if its parse worker made them."""
        new_items = await self._new_items(source, parsed.items)
        candidates = () if baseline else self._alerts_for(source, new_items, now, premade)
        new_state = self._succeeded(source, state, now, fetched)
        new_state.baseline_done = True
        empty = parsed.empty_selectors if isinstance(parsed, ParsedPage) else ()
        verdict = _count_empty_selectors(source, new_state, empty)
        poll = _PollToCommit(candidates, new_state, new_items, now)
        enqueued = await self._commit_queue().write(poll)
        if enqueued:
            self.on_enqueued()
        outcome = PollOutcome(
            source.id,
            "ok",
            len(parsed.items),
            len(new_items),
            len(candidates),
            enqueued,
            page_selectors=verdict,
        )
        log.info("source_polled", **_fields(outcome), baseline=baseline)
        return outcome

    async def _new_items(self, source: SourceConfig, items: tuple[Item, ...]) -> tuple[Item, ...]:
        """Items whose key is new, minus those whose text this source already showed (under
        another key, or twice in this document): a feed that mints a new GUID on every fetch
        for an unchanged item must not raise an alert each time."""
        # one store call for both: the hashes of every item, though only those of unseen
        # keys can matter below (a hash is looked at only through ``by_content``)
        unseen, seen = await self.store.known_items(
            source.id, (i.key for i in items), (i.content_hash for i in items)
        )
        by_content = {i.content_hash: i for i in reversed(items) if i.key in unseen}
        return tuple(
            i for i in items if by_content.get(i.content_hash) is i and i.content_hash not in seen
        )

    def _alerts_for(
        self,
        source: SourceConfig,
        items: tuple[Item, ...],
        now: datetime,
        premade: ItemMatches | None = None,
    ) -> tuple[Candidate, ...]:
        ruleset = self.rules()
        matches_of = self._matcher(ruleset, source, premade)
        found_all: list[Candidate] = []
        for item in items:
            matches, title_signature = matches_of(item)
            for found in matches:
                alert = make_alert(source, item, found, now)
                self.metrics.alert_raised(alert)
                found_all.append(Candidate(alert, found.labels, source.tags, title_signature))
                log.info(
                    "rule_matched",
                    source=source.id,
                    rule=found.rule_id,
                    tier=found.tier,
                    item=item.key,
                    matched=list(found.matched),
                )
        return tuple(found_all)

    def _matcher(
        self, ruleset: RuleSet, source: SourceConfig, premade: ItemMatches | None
    ) -> Callable[[Item], tuple[Sequence[Match], tuple[int, ...] | None]]:
        """An item's matches and, if made already, its title's fingerprint: those its parse
        worker made, if it made them with ``ruleset`` (not with the rules before a reload),
        else matched here (the fingerprint left to the policy)."""
        ref = self.shared_rules.ref(ruleset) if self.shared_rules is not None else None
        if premade is not None and ref is not None and premade.rules_key == ref.key:
            by_item, signatures = premade.by_item, premade.title_signatures
            return lambda item: (by_item.get(item.key, ()), signatures.get(item.key))
        return lambda item: (match(ruleset, make_document(item, source.tags)), None)

    def _commit_queue(self) -> GroupCommit[_PollToCommit, int]:
        """Decide-and-commit one batch at a time: two sources polled together with the
        same story must see each other's story, or each would open a thread of its own."""
        if self._commits is None:
            self._commits = GroupCommit(self._commit_together, self._commit_alone)
        return self._commits

    async def _commit_together(self, polls: Sequence[_PollToCommit]) -> list[int]:
        """The polls that finished while the previous batch was written: their matches
        decided in one go, in the order the polls finished (as if one poll after another:
        each sees the stories the earlier ones opened or joined), and every poll's rows
        committed in one transaction. In a cold cycle hundreds of polls finish together,
        and one at a time each cost two trips to the store; should the batch fail, each
        poll is decided and committed alone (``_commit_alone``), so one bad poll fails
        only itself."""
        if len(polls) == 1 or len({poll.state.source_id for poll in polls}) < len(polls):
            # alone, or one source twice (never in the daemon, whose polls of a source do
            # not overlap: its decisions could not be told apart by item): poll by poll
            return [await self._commit_alone(poll) for poll in polls]
        candidates = tuple(c for poll in polls for c in poll.candidates)
        async with self._store_lock(candidates):
            decided = await self._decide(candidates, max(poll.now for poll in polls))
            shares = _share_out(decided, polls)
            return await self.store.commit_polls(
                [(poll.result(share), poll.now) for poll, share in zip(polls, shares, strict=True)]
            )

    async def _commit_alone(self, poll: _PollToCommit) -> int:
        async with self._store_lock(poll.candidates):
            decided = await self._decide(poll.candidates, poll.now)
            return await self.store.commit_poll(poll.result(decided), poll.now)

    def _store_lock(
        self, candidates: tuple[Candidate, ...]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """The store's policy lock, which extends one-batch-at-a-time to the replicas
        sharing it, for polls with matches (only they decide)."""
        return self.store.policy_lock() if candidates else contextlib.nullcontext()

    async def _decide(self, candidates: tuple[Candidate, ...], now: datetime) -> Decisions:
        """The alert policy (stories, escalation, routes, throttling, silences) on this
        poll's matches, with what the store remembers from earlier polls."""
        if not candidates:
            return Decisions()
        rules = {c.alert.rule_id for c in candidates}
        rows = await self.store.policy_rows(now, self.config.stories.window, rules)
        state = PolicyState(
            config=self.config,
            routing=self.routing or build_routing(self.config),
            stories=rows.stories,
            told=rows.told,
            last_alert=rows.last_alert,
            sent_last_hour=rows.sent_last_hour,
            silences=rows.silences,
        )
        decided = decide(candidates, state, now)
        for record in decided.records:
            if record.disposition != "sent":
                log.info(
                    "alert_held",
                    alert=record.alert.id,
                    rule=record.alert.rule_id,
                    story=record.story_id,
                    disposition=record.disposition,
                )
        return decided

    def _succeeded(
        self,
        source: SourceConfig,
        state: SourceState,
        now: datetime,
        fetched: Fetched | NotModified,
    ) -> SourceState:
        interval = self.config.interval_of(source)
        return replace(
            state,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            body_hash=fetched.body_hash if isinstance(fetched, Fetched) else state.body_hash,
            next_check_at=now + timedelta(seconds=interval),
            error_count=0,
            last_success_at=now,
        )

    async def _record_failure(
        self, source: SourceConfig, state: SourceState, failure: FetchFailed, now: datetime
    ) -> PollOutcome:
        errors = state.error_count + 1
        delay = backoff_delay(
            errors,
            self.config.interval_of(source),
            self.config.schedule.max_backoff,
            failure.retry_after,
        )
        new_state = replace(
            state,
            error_count=errors,
            last_error_at=now,
            last_error=f"{failure.failure_class}: {failure.reason}"[:500],
            next_check_at=now + timedelta(seconds=delay),
            disabled=failure.permanent,
        )
        await self.store.save_source_state(new_state)
        self.metrics.poll_failed(source.id, failure.failure_class)
        event = "source_disabled" if failure.permanent else "source_poll_failed"
        log.warning(
            event,
            source=source.id,
            failure_class=failure.failure_class,
            reason=failure.reason,
            status=failure.status,
            errors=errors,
            retry_in=round(delay, 1),
        )
        status = "disabled" if failure.permanent else "failed"
        return PollOutcome(source.id, status, error=new_state.last_error, failures_in_a_row=errors)


def backoff_delay(
    errors: int, interval: float, cap: float, retry_after: float | None = None
) -> float:
    """Exponential backoff from the source's interval, capped, never giving up.

    A server's ``Retry-After`` is honoured when it asks for longer than we would wait.
    Jitter (±10 %) keeps many failing sources from retrying in lockstep.
    """
    delay = min(cap, interval * 2.0 ** min(errors - 1, 20))
    delay *= random.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return max(1.0, delay)


def make_alert(source: SourceConfig, item: Item, found: Match, now: datetime) -> Alert:
    return Alert(
        id=Alert.make_id(source.id, item.key, found.rule_id),
        rule_id=found.rule_id,
        rule_title=found.rule_title,
        tier=found.tier,
        source_id=source.id,
        source_name=source.display_name,
        item_key=item.key,
        title=item.title,
        link=item.link,
        summary=html_to_text(item.summary or item.content),
        matched=found.matched,
        published=item.published,
        created_at=now,
    )


def _count_empty_selectors(
    source: SourceConfig, state: SourceState, empty: tuple[str, ...] | None
) -> str | None:
    """A page source's runs of empty selectors after this poll, set in ``state`` (which
    still holds the runs before it); ``empty`` None: the page was unchanged, so the last
    result stands. Returns the verdict for the selector_empty notice, None for a feed."""
    selectors = page_selectors_of(source)
    if selectors is None:
        return None
    if empty is None:
        state.empty_runs = repeat_empty_runs(source.id, selectors, state.empty_runs)
    else:
        state.empty_runs = count_empty_runs(source.id, selectors, state.empty_runs, empty)
    return selector_verdict(state.empty_runs)


def _fields(outcome: PollOutcome) -> dict[str, object]:
    return {
        "source": outcome.source_id,
        "items": outcome.items_seen,
        "new_items": outcome.new_items,
        "alerts": outcome.alerts,
        "deliveries": outcome.deliveries,
    }
