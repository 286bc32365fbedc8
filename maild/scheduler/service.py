"""APScheduler inside ``maild run``: thin jobs around :class:`~maild.scheduler.jobs.Jobs`.

Three APScheduler jobs, each a one-line call with the injected clock:

- ``leader`` (every ``scheduler.leader_retry_seconds``): take or keep the leader lock;
  on gaining it, start the work jobs; on losing it, remove them.
- ``poll`` (every ``scheduler.poll_seconds``, leader only, first run at once — that is
  where a reminder missed while maild was down fires): run every job, then plan ``wake``.
- ``wake`` (a date job, leader only): the earliest next-action time (or digest time)
  the database knows of, so a reminder fires at its minute rather than at the next poll.

APScheduler's own store is memory: the schedule is rebuilt from the ticket table at every
run, so nothing in it needs to survive a restart — the tickets and the marks do.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from maild.clock import utc_now
from maild.config import Config
from maild.scheduler.jobs import Jobs, RunResult
from maild.scheduler.leader import LeaderLock, lock_for
from maild.store.db import Database
from maild.threading.signing import Signer

log = logging.getLogger("maild.scheduler")


class SchedulerService:
    def __init__(self, jobs: Jobs, lock: LeaderLock, clock: Callable[[], datetime],
                 on_queued: Callable[[], None] = lambda: None) -> None:
        self.jobs = jobs
        self.lock = lock
        self.clock = clock
        self.on_queued = on_queued
        self.settings = jobs.settings
        self.leading = False
        self.last_run: datetime | None = None  # when this instance last ran the jobs (metrics)
        self._run_lock = threading.Lock()  # poll and wake never overlap, nor a run and a reload
        self._scheduler: BackgroundScheduler | None = None
        # APScheduler's shutdown(wait=True) holds its job-store lock while it joins a
        # running job; a job adding a job then waits for that lock forever. Jobs change
        # the schedule under this lock, and not at all once stop() has begun.
        self._jobs_lock = threading.Lock()
        self._stopping = False

    # -- what the APScheduler jobs call ------------------------------------------------------
    def leader_round(self) -> bool:
        """Take or keep the lock; start or stop the work jobs accordingly."""
        leading = self.lock.acquire(self.clock())
        if leading and not self.leading:
            log.info("scheduler: this instance is the leader")
            self._add_work_jobs()
        elif not leading and self.leading:
            log.warning("scheduler: no longer the leader")
            self._remove_work_jobs()
        self.leading = leading
        return leading

    def run_once(self) -> RunResult:
        """Every job once at the clock's now (the leader's poll; tests call it directly)."""
        with self._run_lock:
            now = self.clock()
            result = self.jobs.run(now)
            self.last_run = now
            if result.queued:
                self.on_queued()
            if any((result.reminders, result.unaccepted, result.autoclosed, result.digests)):
                log.info("scheduler: %d reminders, %d re-announcements, %d auto-closed, %d digests; %d queued",
                         result.reminders, result.unaccepted, result.autoclosed, result.digests, result.queued)
            return result

    def replace_jobs(self, jobs: Jobs) -> list[str]:
        """Run from now on with ``jobs`` (a reloaded configuration): a run under way finishes
        with the old ones. The poll interval follows; returns the settings that do not
        change while running (the leader election's timings, switching the scheduler off)."""
        with self._run_lock:
            old, self.jobs = self.settings, jobs
            self.settings = jobs.settings
        if self.settings.poll_seconds != old.poll_seconds:
            with self._jobs_lock:
                if self._scheduler is not None and not self._stopping and self._scheduler.get_job("poll"):
                    self._scheduler.reschedule_job("poll", trigger="interval", seconds=self.settings.poll_seconds)
        self._plan_wake()  # a reminder's or the digest's new time may now come before the next poll
        return [f"scheduler.{key}" for key in ("enabled", "lease_seconds", "leader_retry_seconds")
                if getattr(old, key) != getattr(self.settings, key)]

    def _poll(self) -> None:
        if not self.leading:
            return
        try:
            self.run_once()
        finally:
            self._plan_wake()

    def _plan_wake(self) -> None:
        if self._scheduler is None or not self.leading:
            return
        now = self.clock()
        at = self.jobs.next_due(now)
        if at is None or at - now > timedelta(seconds=self.settings.poll_seconds):
            return  # the next poll comes first
        # The wall clock decides when APScheduler wakes; a second late is harmless.
        with self._jobs_lock:
            if not self._stopping:
                self._scheduler.add_job(self._poll, "date", run_date=at + timedelta(seconds=0.5), id="wake",
                                        replace_existing=True, misfire_grace_time=None)

    # -- APScheduler ---------------------------------------------------------------------
    def start(self) -> None:
        # APScheduler runs on the wall clock (not the injected one): "first run now" is utc_now.
        self._scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self._scheduler.add_job(self.leader_round, "interval", seconds=self.settings.leader_retry_seconds,
                                id="leader", next_run_time=utc_now())
        self._scheduler.start()

    def _add_work_jobs(self) -> None:
        with self._jobs_lock:
            if self._scheduler is None or self._stopping:
                return
            self._scheduler.add_job(self._poll, "interval", seconds=self.settings.poll_seconds, id="poll",
                                    replace_existing=True, next_run_time=utc_now())

    def _remove_work_jobs(self) -> None:
        with self._jobs_lock:
            if self._scheduler is None or self._stopping:
                return
            for job_id in ("poll", "wake"):
                try:
                    self._scheduler.remove_job(job_id)
                except Exception:  # noqa: BLE001 - JobLookupError: not scheduled
                    pass

    def stop(self) -> None:
        with self._jobs_lock:
            self._stopping = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.lock.release()
        self.leading = False


def build(config: Config, db: Database, signer: Signer, clock: Callable[[], datetime],
          on_queued: Callable[[], None] = lambda: None,
          on_cap: Callable[[str], None] | None = None) -> SchedulerService:
    """The service for ``maild run``, with the lock that fits the database."""
    return SchedulerService(Jobs(config, db, signer, on_cap), lock_for(db, config.scheduler.lease_seconds), clock,
                            on_queued)
