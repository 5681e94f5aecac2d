"""The one wiring point: builds the store, HTTP session, notifiers, pipeline and scheduler.

``Daemon.run_forever`` is the long-running service; ``Daemon.run_once`` is the burst mode
that tests and cron share. Side tasks are supervised: one that crashes stops the daemon
loudly, with a non-zero exit code, instead of leaving half a service running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from mastwatch import __version__
from mastwatch.config import (
    Config,
    DigestConfig,
    Secrets,
    SourceConfig,
    load_config,
    resolve_secrets,
    store_url,
)
from mastwatch.delivery import DeliveryWorker, utc_now
from mastwatch.errors import MastwatchError
from mastwatch.log import redactor, set_replica
from mastwatch.messages import MessageWorker, make_senders
from mastwatch.metrics import Metrics, UnservedMetrics
from mastwatch.model import Delivery, SourceState
from mastwatch.notify.base import Notifier
from mastwatch.notify.console import ConsoleNotifier
from mastwatch.notify.email import EmailNotifier
from mastwatch.notify.slack import SlackNotifier
from mastwatch.pipeline import Pipeline, PollOutcome
from mastwatch.policy.digest import make_trigger, run_digest
from mastwatch.policy.notices import Notices
from mastwatch.policy.routing import build_routing, describe
from mastwatch.replica import SourceLeases, heartbeat_loop, replica_id
from mastwatch.rules import RuleSet, diff_rulesets, load_rules
from mastwatch.rules.watch import watch_rules
from mastwatch.sources.http import Fetcher, FetchSettings, make_session
from mastwatch.sources.parsing import parse_executor, resolve_workers
from mastwatch.sources.worker_rules import SharedRules
from mastwatch.store.factory import make_store
from mastwatch.store.postgres import describe_url
from mastwatch.systemd import SystemdNotifier, watchdog_interval
from mastwatch.web import WebServer

log = structlog.get_logger(__name__)
FIRST_POLL_SPREAD = 2.0  # seconds over which the first polls of all sources are spread


def load_everything(path: Path) -> tuple[Config, RuleSet]:
    """Config and rules together, so a reload swaps both or neither."""
    config = load_config(path)
    rules = load_rules(config.resolve(config.rules.dir), config.tier_names)
    return config, rules


# Sections read once, at start-up (they build the store, sessions, notifiers, worker pool,
# web server and logging): a reload keeps their running values and says so.
RESTART_ONLY_SECTIONS = (
    "store",
    "ha",
    "web",
    "performance",
    "http",
    "slack",
    "email",
    "delivery",
    "log",
)


def keep_restart_only(new: Config, running: Config) -> Config:
    """``new`` with the running values of every restart-only section it changes."""
    changed = [
        name for name in RESTART_ONLY_SECTIONS if getattr(new, name) != getattr(running, name)
    ]
    if not changed:
        return new
    log.warning(
        "reload_restart_needed",
        sections=changed,
        hint="these sections apply at the next start; their running values are kept",
    )
    return new.model_copy(update={name: getattr(running, name) for name in changed})


def fetch_settings(config: Config) -> FetchSettings:
    http = config.http
    settings = FetchSettings(
        connect_timeout=http.connect_timeout,
        total_timeout=http.total_timeout,
        max_body_bytes=http.max_body_bytes,
        max_redirects=http.max_redirects,
    )
    if http.user_agent:
        settings = FetchSettings(**{**settings.__dict__, "user_agent": http.user_agent})
    return settings


def build_notifiers(config: Config, secrets: Secrets) -> dict[str, Notifier]:
    """The notifiers whose secrets and servers are configured, plus the console."""
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier()}
    slack = config.slack
    if secrets.slack_token or secrets.slack_webhook_url:
        notifiers["slack"] = SlackNotifier(
            token=secrets.slack_token,
            webhook_url=None if secrets.slack_token else secrets.slack_webhook_url,
            base_url=slack.base_url,
            mention_tiers=frozenset(slack.mention_tiers),
            min_interval=slack.min_interval,
            burst=slack.burst,
        )
    email = config.email
    if email.host:
        notifiers["email"] = EmailNotifier(
            host=email.host,
            port=email.port,
            sender=email.sender,
            tls=email.tls,
            username=secrets.smtp_username,
            password=secrets.smtp_password,
            timeout=email.timeout,
        )
    return notifiers


class PhaseSpreadTrigger(IntervalTrigger):  # type: ignore[misc]  # apscheduler 3 is untyped
    """An interval trigger that spreads sources over the interval and never lengthens a
    period in steady state.

    Every source's first poll comes within ``FIRST_POLL_SPREAD`` of the start; with plain
    interval jobs they would then all poll in the same second of every interval, new items
    found together would queue behind Slack's one-message-a-second per channel, and the
    load would come in bursts. So the second period alone is longer by a random part of
    the interval, which spreads the polls evenly over the interval for good (the shift is
    never negative: a tick before the stored next-check time would be skipped as not due).

    Jitter is taken off a period, never added: APScheduler's own jitter adds up to
    ``jitter`` to every period, so an item could wait longer than the interval for its
    poll. Here every later period is ``interval - U(0, jitter)``; the phases still drift
    apart at random, and the wait for a poll stays within the interval.

    APScheduler asks for the next fire time more than once with the same previous one
    (``Job._get_run_times`` and then ``_process_jobs``), so the answer for the first
    period is the same every time: the shift belongs to the first fire time, not to the
    first call.
    """

    def __init__(self, *, seconds: float, jitter: float) -> None:
        super().__init__(seconds=seconds)
        self.period_jitter = min(jitter, seconds)
        self._shift = random.uniform(0, seconds)
        self._first: datetime | None = None

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is None:
            return super().get_next_fire_time(None, now)  # type: ignore[no-any-return]
        if self._first is None:
            self._first = previous_fire_time
        period = self.interval_length - random.uniform(0, self.period_jitter)
        if previous_fire_time <= self._first:
            period += self._shift
        return previous_fire_time + timedelta(seconds=period)

    def same_schedule(self, seconds: float, jitter: float) -> bool:
        return bool(self.interval_length == seconds and self.period_jitter == min(jitter, seconds))


@dataclass
class Daemon:
    config_path: Path
    clock: Callable[[], datetime] = utc_now
    config: Config = field(init=False)
    ruleset: RuleSet = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _exit_code: int = 0
    _polls: set[asyncio.Task[object]] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    sd: SystemdNotifier = field(default_factory=SystemdNotifier.from_environ)
    web: WebServer | None = field(default=None, init=False)  # while run_forever runs
    ha: bool = field(default=False, init=False)  # PostgreSQL store: replicas (set on entry)
    # config and rules the caller already loaded from config_path (the CLI does, to set up
    # logging), so a start does not read and compile them twice; reloads read the files
    _loaded: tuple[Config, RuleSet] | None = None

    async def __aenter__(self) -> Daemon:
        loaded, self._loaded = self._loaded, None
        self.config, self.ruleset = loaded or load_everything(self.config_path)
        secrets = resolve_secrets(self.config)
        redactor.register(secrets.values())
        self._web_token = secrets.web_token
        self.replica_id = replica_id(self.config)
        set_replica(self.replica_id)
        self.metrics.set_replica(self.replica_id)
        url = store_url(self.config)
        if url is not None:
            redactor.register([url])  # it may hold a password; describe_url() is safe to log
            log.info("store_postgresql", database=describe_url(url))
        self.store = make_store(self.config)
        await self.store.open()
        # HA mode: replicas on one PostgreSQL claim each source before polling it
        self.ha = self.config.store.is_postgres
        leases = (
            SourceLeases(self.store, self.replica_id, self.config.ha.source_lease)
            if self.ha
            else None
        )
        self.session = make_session(fetch_settings(self.config))
        # for sources with allow_private only; the guarded session serves all others
        self.private_session = make_session(fetch_settings(self.config), allow_private=True)
        self.notifiers = build_notifiers(self.config, secrets)
        self._parse_pool = parse_executor(resolve_workers(self.config.performance.parse_workers))
        self.worker = DeliveryWorker(
            self.store,
            self.notifiers,
            self.config.delivery,
            self.clock,
            metrics=self.metrics,
            owner=self.replica_id,
        )
        self.pipeline = Pipeline(
            config=self.config,
            store=self.store,
            fetcher=Fetcher(
                self.session, fetch_settings(self.config), private_session=self.private_session
            ),
            rules=lambda: self.ruleset,
            executor=self._parse_pool,
            on_enqueued=self.worker.wake,
            metrics=self.metrics,
            leases=leases,
            shared_rules=SharedRules() if self._parse_pool is not None else None,
        )
        self._set_receivers()
        # digests and operator notices (issue 5, P2): pre-rendered messages, own outbox
        self.messages = MessageWorker(
            self.store,
            make_senders(self.notifiers),
            self.config.delivery,
            self.clock,
            owner=self.replica_id,
        )
        self.notices = Notices(self.store, self.config.notices, frozenset(self.notifiers))
        await self.notices.prime(self.clock())
        self.worker.on_settled = self._delivery_notice
        log.info(
            "daemon_started",
            version=__version__,
            sources=len(self.config.sources),
            rules=len(self.ruleset),
            ruleset_hash=self.ruleset.content_hash[:12],
            channels=sorted(self.notifiers),
            ha=self.ha,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for notifier in self.notifiers.values():
            with contextlib.suppress(Exception):
                await notifier.close()
        await self.session.close()
        await self.private_session.close()
        if self.ha:
            # a clean stop hands its leases back at once instead of letting them expire
            with contextlib.suppress(Exception):
                await self.store.forget_replica(self.replica_id)
        await self.store.close()
        if self._parse_pool is not None:
            self._parse_pool.shutdown(wait=True, cancel_futures=True)
        if self.pipeline.shared_rules is not None:
            self.pipeline.shared_rules.close()
        log.info("daemon_stopped", exit_code=self._exit_code)

    def _set_receivers(self) -> None:
        self.pipeline.routing = build_routing(
            self.config,
            slack_ready="slack" in self.notifiers,
            email_ready="email" in self.notifiers,
        )
        for line in describe(self.pipeline.routing):
            log.debug("route", route=line)

    @property
    def sources(self) -> list[SourceConfig]:
        return [s for s in self.config.sources if s.enabled]

    async def poll_all(self, *, force: bool) -> list[PollOutcome]:
        now = self.clock()
        states = await self._states_for_poll_all()
        polls = [
            self._poll_safely(s, now, force=force, state=states.get(s.id)) for s in self.sources
        ]
        return list(await asyncio.gather(*polls))

    async def _states_for_poll_all(self) -> dict[str, SourceState]:
        """Every stored source state in one query, so polling them all at once does not
        make one store round trip per source just to read it (HA mode claims each source
        instead, and the claim returns its state)."""
        if self.ha:
            return {}
        return {state.source_id: state for state in await self.store.list_source_states()}

    async def _poll_safely(
        self,
        source: SourceConfig,
        now: datetime,
        *,
        force: bool,
        state: SourceState | None = None,
    ) -> PollOutcome:
        """One bad source must never stop the others: any escape is logged and contained."""
        started = time.monotonic()
        try:
            outcome = await self.pipeline.poll(source, now, force=force, state=state)
        except Exception as exc:
            log.exception("source_poll_crashed", source=source.id)
            self.metrics.poll_failed(source.id, "crash")
            outcome = PollOutcome(source.id, "failed", error=f"{type(exc).__name__}: {exc}")
        self.metrics.poll_finished(outcome, time.monotonic() - started)
        await self._source_notice(outcome, now)
        return outcome

    async def _source_notice(self, outcome: PollOutcome, now: datetime) -> None:
        """Raise or clear the "source failing" notice from what the poll did."""
        source_id = outcome.source_id
        try:
            if outcome.status in ("ok", "not_modified"):
                await self.notices.source_polled(source_id, 0, None, now)
            elif outcome.failures_in_a_row:
                await self.notices.source_polled(
                    source_id, outcome.failures_in_a_row, outcome.error, now
                )
            elif outcome.status == "failed":  # a crashed poll stored nothing: read it back
                state = await self.store.get_source_state(source_id)
                await self.notices.source_polled(
                    source_id, state.error_count, state.last_error, now
                )
            # a page poll's selectors: a run long enough raises, all matching clears
            if outcome.page_selectors in ("empty", "ok"):
                empty = outcome.page_selectors == "empty"
                await self.notices.selector_empty(source_id, empty=empty, now=now)
        except Exception:  # a notice must never break polling
            log.exception("notice_error", source=source_id)
        self.messages.wake()

    async def run_once(self) -> int:
        """Poll every source once, deliver what that produced, and return an exit code."""
        outcomes = await self.poll_all(force=True)
        await self.worker.drain(self.config.delivery.once_wait)
        await self.messages.drain(self.config.delivery.once_wait)
        failed = [o.source_id for o in outcomes if o.status in {"failed", "disabled"}]
        counts = await self.store.outbox_counts()
        log.info("once_finished", sources=len(outcomes), failed_sources=failed, outbox=counts)
        return 0

    async def run_forever(self) -> int:
        """Run until SIGTERM/SIGINT; SIGHUP reloads config and rules."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        web = await self._start_web()  # first: a port in use fails before anything runs
        scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        self._sync_jobs(scheduler)
        self._catch_up_digests(scheduler)
        scheduler.start()
        worker = asyncio.create_task(self.worker.run(self._stop), name="delivery-worker")
        worker.add_done_callback(self._supervise)
        messages = asyncio.create_task(self.messages.run(self._stop), name="message-worker")
        messages.add_done_callback(self._supervise)
        watchdog = self._start_watchdog()
        rules_watch = asyncio.create_task(
            watch_rules(
                lambda: self.config.resolve(self.config.rules.dir),
                self._rules_changed,
                lambda: self.config.rules.watch_interval,
            ),
            name="rules-watcher",
        )
        rules_watch.add_done_callback(self._supervise)
        heartbeat = self._start_heartbeat()
        log.info("daemon_ready", sources=len(self.sources))
        self.sd.ready(status=f"polling {len(self.sources)} sources")
        await self._stop.wait()
        log.info("daemon_stopping")
        self.sd.stopping()
        scheduler.shutdown(wait=False)
        await self._cancel_polls()
        await self._finish_worker(worker)
        await self._finish_worker(messages)
        if watchdog is not None:
            watchdog.cancel()
        rules_watch.cancel()
        if heartbeat is not None:
            heartbeat.cancel()
        if web is not None:
            await web.stop()
        return self._exit_code

    async def _cancel_polls(self) -> None:
        """Polls in flight at shutdown are abandoned: nothing of a poll is stored before
        its single commit, so the next start simply polls again."""
        for task in list(self._polls):
            task.cancel()
        await asyncio.gather(*self._polls, return_exceptions=True)

    async def _finish_worker(self, worker: asyncio.Task[None]) -> None:
        """Let in-flight deliveries finish within the grace period, then hand them back."""
        self.worker.wake()
        done, _ = await asyncio.wait({worker}, timeout=self.config.delivery.shutdown_grace)
        if not done:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def _supervise(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        error = task.exception()
        log.critical("side_task_died", task=task.get_name(), error=repr(error))
        self._exit_code = 1
        self._stop.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)

    def _request_stop(self, name: str) -> None:
        log.info("signal_received", signal=name)
        self._stop.set()

    def _request_reload(self) -> None:
        self.sd.reloading()
        task = asyncio.ensure_future(self.reload())
        task.add_done_callback(self._reload_done)

    async def _rules_changed(self) -> None:
        """A rule file changed on disk: the same all-or-nothing reload as SIGHUP."""
        self.sd.reloading()
        await self.reload()
        self.sd.ready()

    def _reload_done(self, task: asyncio.Task[bool]) -> None:
        task.exception()  # errors are logged inside reload
        self.sd.ready()  # applied or rejected, the daemon runs on

    async def _start_web(self) -> WebServer | None:
        if not self.config.web.enabled:
            return None
        self.web = WebServer(self, self.config.web, self._web_token)
        await self.web.start()
        return self.web

    def _start_heartbeat(self) -> asyncio.Task[None] | None:
        if not self.ha:
            return None
        beat = heartbeat_loop(
            self.store, self.replica_id, self.config.ha.heartbeat_interval, self.clock
        )
        return asyncio.create_task(beat, name="replica-heartbeat")

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        interval = watchdog_interval(os.environ)
        if interval is None or not self.sd.enabled:
            return None
        log.info("watchdog_enabled", interval=interval)
        return asyncio.create_task(self._watchdog(interval), name="sd-watchdog")

    async def _watchdog(self, interval: float) -> None:
        """Pings from the event loop itself: a loop blocked past WATCHDOG_USEC stops them,
        and systemd kills and restarts the service."""
        while True:
            self.sd.watchdog()
            await asyncio.sleep(interval)

    # -- what the web endpoint reads (mastwatch.web.DaemonView)

    def is_scheduling(self) -> bool:
        scheduler = self._scheduler
        return scheduler is not None and scheduler.running and not self._stop.is_set()

    def next_polls(self) -> dict[str, datetime | None]:
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def now(self) -> datetime:
        return self.clock()

    async def reload(self, scheduler: AsyncIOScheduler | None = None) -> bool:
        """Swap in a new config and rule set only if all of it is valid."""
        try:
            config, ruleset = await asyncio.to_thread(load_everything, self.config_path)
        except MastwatchError as exc:
            problems = getattr(exc, "problems", [str(exc)])
            log.error(
                "reload_rejected",
                problems=problems,
                running_ruleset_hash=self.ruleset.content_hash[:12],
            )
            await self._reload_notice(list(problems))
            return False
        config = keep_restart_only(config, self.config)
        old_hash = self.ruleset.content_hash
        changes = diff_rulesets(self.ruleset, ruleset)
        self.config, self.ruleset = config, ruleset
        self.pipeline.config = config
        self.notices.config = config.notices
        self._set_receivers()
        if self._scheduler is not None:
            self._sync_jobs(self._scheduler)
        log.info(
            "reload_applied",
            ruleset_hash=ruleset.content_hash[:12],
            previous_hash=old_hash[:12],
            rules=len(ruleset),
            rules_added=list(changes.added),
            rules_removed=list(changes.removed),
            rules_changed=list(changes.changed),
            sources=len(self.sources),
        )
        await self._reload_notice([])
        return True

    async def _delivery_notice(self, delivery: Delivery, error: str | None) -> None:
        """A receiver failing for good (``error``) raises a notice; a success clears it."""
        now = self.clock()
        try:
            if error is None:
                await self.notices.delivery_sent(delivery.channel, delivery.target, now)
            else:
                await self.notices.delivery_failed(delivery.channel, delivery.target, error, now)
        except Exception:  # a notice must never break delivery
            log.exception("notice_error", notice="delivery_failed")
        self.messages.wake()

    async def _reload_notice(self, problems: list[str]) -> None:
        try:
            await self.notices.reload_result(problems, self.clock())
        except Exception:  # a notice must never break a reload
            log.exception("notice_error", notice="reload_failed")
        self.messages.wake()

    def _sync_digest_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """One cron job per ``[[digests]]`` entry, in the digest's own time zone."""
        for digest in self.config.digests:
            scheduler.add_job(
                self.send_digest,
                make_trigger(digest),
                args=[digest.id],
                id=f"digest:{digest.id}",
                name=f"digest {digest.id}",
                misfire_grace_time=3600,  # a late digest beats a lost one (claimed once)
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )

    def _catch_up_digests(self, scheduler: AsyncIOScheduler) -> None:
        """At start, send each digest whose last period went unsent (the daemon was down at
        its fire time): the scheduler keeps no jobs across restarts, and the claim makes
        this a no-op when the period was sent."""
        for digest in self.config.digests:
            scheduler.add_job(
                self.send_digest,
                args=[digest.id],
                id=f"digest-catch-up:{digest.id}",
                name=f"digest {digest.id} (catch-up)",
                misfire_grace_time=None,
            )

    def rule_topics(self) -> dict[str, str]:
        """Rule id → its ``topic`` label, which digests group by."""
        return {
            rule.id: value
            for rule in self.ruleset.rules
            for key, value in rule.labels
            if key == "topic"
        }

    async def send_digest(self, digest_id: str, now: datetime | None = None) -> int:
        """Enqueue the digest of the period just closed (once per period, see digest.py)."""
        digest: DigestConfig | None = next(
            (d for d in self.config.digests if d.id == digest_id), None
        )
        if digest is None:
            return 0
        sent = await run_digest(
            self.store,
            digest,
            now=now or self.clock(),
            topics=self.rule_topics(),
            available=frozenset(self.notifiers),
        )
        self.messages.wake()
        return sent

    _scheduler: AsyncIOScheduler | None = None

    def _sync_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """One interval job per enabled source; removed sources lose their job. A source
        whose schedule a reload leaves as it was keeps its job and its phase: restarting it
        would poll it at once and then wait up to two intervals (the phase shift)."""
        self._scheduler = scheduler
        wanted = {s.id: s for s in self.sources}
        for job in scheduler.get_jobs():
            source = wanted.get(job.id)
            if source is None:
                job.remove()
            elif isinstance(job.trigger, PhaseSpreadTrigger) and job.trigger.same_schedule(
                self.config.interval_of(source), self.config.jitter_of(source)
            ):
                del wanted[job.id]
        now = self.clock()
        schedule = self.config.schedule
        for source in wanted.values():
            first = now + timedelta(seconds=random.uniform(0, FIRST_POLL_SPREAD))
            scheduler.add_job(
                self._scheduled_poll,
                PhaseSpreadTrigger(
                    seconds=self._tick(source), jitter=self.config.jitter_of(source)
                ),
                args=[source.id],
                id=source.id,
                name=f"poll {source.id}",
                next_run_time=first,
                misfire_grace_time=int(schedule.misfire_grace_time),
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )
        self._sync_digest_jobs(scheduler)

    def _tick(self, source: SourceConfig) -> float:
        """How often this process asks to poll a source. In HA mode every replica asks
        twice per interval and the store's lease lets one poll when it is due, so a source
        whose poller died waits at most half an interval past its due time (or lease)."""
        interval = self.config.interval_of(source)
        return interval / 2 if self.ha else interval

    async def _scheduled_poll(self, source_id: str) -> None:
        source = next((s for s in self.sources if s.id == source_id), None)
        task = asyncio.current_task()
        if source is None or task is None or self._stop.is_set():
            return
        self._polls.add(task)
        try:
            await self._poll_safely(source, self.clock(), force=False)
        finally:
            self._polls.discard(task)


async def run_daemon(
    config_path: Path, *, once: bool, loaded: tuple[Config, RuleSet] | None = None
) -> int:
    metrics = UnservedMetrics() if once else Metrics()
    async with Daemon(config_path, metrics=metrics, _loaded=loaded) as daemon:
        return await (daemon.run_once() if once else daemon.run_forever())
