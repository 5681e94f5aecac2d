"""The poll schedule: phases spread once, and no period ever longer than the interval after.

APScheduler's ``_process_jobs`` asks a job's trigger for the next fire time twice with the
same previous one (``Job._get_run_times``, then again for the job's next run), so these
tests step the schedule exactly that way, on a real (not started) scheduler's job.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mastwatch.app import Daemon, PhaseSpreadTrigger
from mastwatch.config import load_config

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _job(trigger: PhaseSpreadTrigger) -> Job:
    scheduler = AsyncIOScheduler(timezone="UTC")
    return scheduler.add_job(lambda: None, trigger, next_run_time=START)


def _fire_times(job: Job, count: int) -> list[datetime]:
    """``count`` fire times, each step as ``BaseScheduler._process_jobs`` takes it."""
    times = [job.next_run_time]
    for _ in range(count - 1):
        now = job.next_run_time
        run_times = job._get_run_times(now)
        job.next_run_time = job.trigger.get_next_fire_time(run_times[-1], now)
        times.append(job.next_run_time)
    return times


def _gaps(times: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def test_the_phase_shift_survives_apscheduler_asking_twice() -> None:
    # seeds where the shift is well past the jitter, so an unshifted period would show
    shifted = 0
    for seed in range(20):
        random.seed(seed)
        trigger = PhaseSpreadTrigger(seconds=10, jitter=0.5)
        first_gap = _gaps(_fire_times(_job(trigger), 2))[0]
        assert 9.5 <= first_gap <= 20
        shifted += first_gap > 10.5
    assert shifted >= 15  # the shift is uniform over the interval: most are far from 0


def test_every_later_period_is_at_most_the_interval() -> None:
    random.seed(9)
    gaps = _gaps(_fire_times(_job(PhaseSpreadTrigger(seconds=10, jitter=0.5)), 200))[1:]
    assert all(9.5 <= gap <= 10 for gap in gaps)
    assert max(gaps) - min(gaps) > 0.3  # jitter still varies the periods


def test_no_jitter_means_exact_periods() -> None:
    random.seed(1)
    gaps = _gaps(_fire_times(_job(PhaseSpreadTrigger(seconds=5, jitter=0)), 20))[1:]
    assert gaps == [5.0] * len(gaps)


def test_sources_end_up_spread_over_the_interval() -> None:
    random.seed(3)
    phases = []
    for _ in range(100):
        times = _fire_times(_job(PhaseSpreadTrigger(seconds=10, jitter=0)), 3)
        phases.append((times[-1] - START).total_seconds() % 10)
    # all first polls were at START; the third is spread over the whole interval
    assert min(phases) < 1 and max(phases) > 9
    assert len({int(p) for p in phases}) == 10


def test_same_schedule_compares_interval_and_jitter() -> None:
    trigger = PhaseSpreadTrigger(seconds=10, jitter=0.5)
    assert trigger.same_schedule(10, 0.5)
    assert not trigger.same_schedule(20, 0.5)
    assert not trigger.same_schedule(10, 0.0)
    assert trigger.get_next_fire_time(None, START + timedelta(seconds=1)) is not None


def _config(tmp_path: Path, wire_interval: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        "[schedule]\ndefault_interval = 60\njitter = 1\n"
        '[[sources]]\nid = "wire"\nurl = "https://example.org/a.xml"\n'
        f'interval = "{wire_interval}"\n'
        '[[sources]]\nid = "desk"\nurl = "https://example.org/b.xml"\n',
        encoding="utf-8",
    )
    return path


def test_a_reload_keeps_the_jobs_whose_schedule_did_not_change(tmp_path: Path) -> None:
    daemon = Daemon(_config(tmp_path, "30s"))
    daemon.config = load_config(daemon.config_path)
    scheduler = AsyncIOScheduler(timezone="UTC")
    daemon._sync_jobs(scheduler)
    before = {job.id: (job.trigger, job.next_run_time) for job in scheduler.get_jobs()}

    daemon.config = load_config(_config(tmp_path, "45s"))  # wire changes, desk does not
    daemon._sync_jobs(scheduler)
    after = {job.id: (job.trigger, job.next_run_time) for job in scheduler.get_jobs()}

    assert after["desk"] == before["desk"]  # the same job: its phase is kept
    assert after["wire"][0] is not before["wire"][0]
    assert after["wire"][0].interval_length == 45
