"""The composition root: every long-lived object is built here, from the Config."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from maild.clock import utc_now
from maild.config import Config
from maild.ingest.attempts import AttemptLog, Attempts, QueueAttempts
from maild.ingest.daemonlock import DaemonLock
from maild.ingest.intake import DbIntake, QueueWorker
from maild.ingest.limits import SessionLimits
from maild.ingest.envelope import RecipientTable, helpdesk_recipients
from maild.ingest.processor import Outcome, Processor
from maild.ingest.smtp import Listener, SpoolingHandler
from maild.ingest.spool import Spool, SpoolWorker
from maild.outbound.sender import Transport
from maild.service.health import Health, check
from maild.service.metrics import Metrics, MetricsServer, Snapshot
from maild.service.cluster import NodeHeartbeat, this_node
from maild.service.notify import Notifier, Watchdog
from maild.store.blobs import open_blobs
from maild.store.db import Database
from maild.workers import SenderProcesses, build_sender

if TYPE_CHECKING:  # started only when configured: imported where they start
    from maild.ingest.imap import ImapWorker
    from maild.ingest.imap_config import ImapAccount
    from maild.notify.sms import SmsSender
    from maild.scheduler.jobs import Jobs
    from maild.scheduler.service import SchedulerService

log = logging.getLogger("maild")


class App:
    def __init__(self, config: Config, migrate: bool | None = None, transport: Transport | None = None) -> None:
        self.config = config
        self.db = Database(config.database_url)
        self.db.ensure_schema(config.database.auto_migrate if migrate is None else migrate)
        self.blobs = open_blobs(config, self.db)
        self.spool = Spool(config.path(config.spool.path))
        self.metrics = Metrics(self._snapshot)
        self.processor = self._processor(config)
        self.sender = build_sender(config, self.db, self.processor.signer, transport, self.blobs)  # when run in this process
        self.sender.on_result = self._sent
        self._sender_processes: SenderProcesses | None = None  # `--workers` ≥ 2: the senders run there
        self.processor.on_outbound = self.wake_senders
        self.node = this_node()
        self.config_file: Path | None = None
        self._reload_requested = threading.Event()
        self._handler: SpoolingHandler | None = None
        self._listener: Listener | None = None
        self._worker: SpoolWorker | None = None
        self._queue_worker: QueueWorker | None = None
        self._imap_workers: list[ImapWorker] = []
        self._scheduler: Any = None
        self._sender_started = False

    def _processor(self, config: Config) -> Processor:
        return Processor(config, self.db, self.blobs, self._attempts(config), on_cap=self._cap_hit)

    def _attempts(self, config: Config) -> Attempts:
        """Where failures are counted: the shared queue's rows with ``spool.backend: database``
        (so the limit holds across nodes), else this node's disk."""
        local = AttemptLog(self.spool.root / "attempts")
        return QueueAttempts(self.db, local) if config.spool.backend == "database" else local

    def _cap_hit(self, cap: str) -> None:
        self.metrics.caps.labels(cap).inc()

    def wake_senders(self) -> None:
        """Mail was queued: the sender (thread or processes) looks at once."""
        self.sender.wakeup.set()
        if self._sender_processes is not None:
            self._sender_processes.wakeup()

    def _sent(self, result: str) -> None:
        """One outbound attempt's result (sent, deferred, failed, unconfirmed), from any sender."""
        self.metrics.outbound.labels(result).inc()

    def recipients(self) -> RecipientTable:
        helpdesk = self.config.helpdesk
        return helpdesk_recipients(helpdesk.address, helpdesk.extra_addresses, helpdesk.control_address,
                                   bounces=self.processor.signer)

    def run(self, stop: threading.Event | None = None, config_file: Path | None = None,
            notifier: Notifier | None = None, workers: int = 1) -> None:
        """Run until SIGTERM/SIGINT (or ``stop`` is set): listener, spool worker, IMAP.

        ``workers`` ≥ 2 delivers the outbox from ``workers - 1`` processes of their own
        (:mod:`maild.workers`); 1 runs the sender as a thread of this process.

        SIGHUP (or :meth:`request_reload`) re-reads ``config_file``; the service manager
        hears READY, RELOADING and STOPPING through ``notifier`` ($NOTIFY_SOCKET).
        Raises :class:`StartError` when a port cannot be opened.
        """
        stop = stop or threading.Event()
        notifier = notifier or Notifier()
        self.config_file = config_file
        if threading.current_thread() is threading.main_thread():
            def _on_signal(signum: int, _frame: FrameType | None) -> None:
                log.info("signal %d: stopping", signum)
                stop.set()
            signal.signal(signal.SIGTERM, _on_signal)
            signal.signal(signal.SIGINT, _on_signal)
            signal.signal(signal.SIGHUP, lambda _signum, _frame: self.request_reload())

        self.spool.clean_tmp()
        # `maild ingest` (the MTA's pipe) asks this lock whether anyone will take its mail.
        lock = DaemonLock(self.spool.root)
        lock.acquire()
        # The listener opens first: what a crash or a stop left in the spool is drained by
        # the worker thread in the background (oldest first), while new mail is accepted.
        heartbeat = NodeHeartbeat(self.db, self.node, utc_now, self.config.cluster.heartbeat_seconds,
                                  self._local_depth, self._holds)
        heartbeat.beat()  # in the table before this node claims anything
        heartbeat.start()
        intake = self._shared_intake()
        listener = None
        smtp = self.config.smtp_server
        if smtp.enabled:
            self._handler = SpoolingHandler(intake or self.spool, self.recipients(), "lmtp" if smtp.lmtp else "smtp")
            self._handler.on_accept = lambda channel: self.metrics.received.labels(channel).inc()
            listener = Listener(self._handler, smtp.host, smtp.port, smtp.lmtp, smtp.max_message_size,
                                SessionLimits.from_config(smtp), smtp.hostname or self.config.helpdesk.domain)
            _open(listener.start, "the SMTP listener", smtp.host, smtp.port)
            self._listener = listener
            log.info("listening for %s on %s:%d", "LMTP" if smtp.lmtp else "SMTP", smtp.host, smtp.port)
        metrics_server = None
        try:
            metrics_server = self._start_metrics()
        except StartError:
            if listener:
                listener.stop()
            raise
        # With the shared queue, this node's spool (the pipe's mail, mail taken while the
        # database was away) is moved into the queue; otherwise it is processed here.
        worker = SpoolWorker(self.spool, intake.forward if intake else self._process_batch, utc_now)
        worker.start()
        self._worker = worker
        if intake:
            self._queue_worker = self._start_queue_worker(intake)
        imap_workers = self._imap_workers = self._start_imap()
        if self.config.outbound.enabled:
            if workers >= 2:
                self._sender_processes = SenderProcesses(self.config, workers - 1, self._sent)
                self._sender_processes.start()
            else:
                self.sender.start()
            self._sender_started = True
            smarthost = self.config.outbound.smtp
            log.info("outbox: sending through %s:%d", smarthost.host, smarthost.port)
        sms_sender = self._start_sms()
        scheduler = self._start_scheduler(sms_sender.wakeup.set if sms_sender else None)
        self._scheduler = scheduler
        watchdog = Watchdog(notifier, lambda: self.health().ok)
        watchdog.start()
        pidfile = _PidFile(self.spool.root / "maild.pid")
        status = f"{self.config.helpdesk.name} <{self.config.helpdesk.address}>"
        log.info("maild running: %s", status)
        notifier.ready(f"running: {status}")
        try:
            # Reloads run here, in the main thread, never inside the signal handler.
            while not stop.wait(0.2):
                if self._sender_processes is not None:
                    self._sender_processes.check()
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    notifier.reloading()
                    self.reload()
                    notifier.ready(f"running: {status}")
        finally:
            notifier.stopping()
            watchdog.stop()
            pidfile.remove()
            if listener:
                listener.stop()
            if imap_workers:
                from maild.ingest.imap import stop_workers
                stop_workers(imap_workers, 10)
            worker.stop()
            if self._queue_worker:
                self._queue_worker.stop()
            if scheduler:
                scheduler.stop()
            if sms_sender:
                sms_sender.stop()
            if self._sender_processes is not None:
                self._sender_processes.stop()
            self.sender.stop()
            if metrics_server:
                metrics_server.stop()
            heartbeat.stop()
            self.db.dispose()
            lock.release()
            log.info("maild stopped")

    # -- several nodes on one database --------------------------------------------------------
    def _shared_intake(self) -> DbIntake | None:
        if self.config.spool.backend != "database":
            return None
        return DbIntake(self.db, self.spool, self.node.id, utc_now, threading.Event())

    def _start_queue_worker(self, intake: DbIntake) -> QueueWorker:
        cluster = self.config.cluster
        worker = QueueWorker(self.db, self._process_batch, utc_now, self.node.id, cluster.node_timeout_seconds,
                             cluster.reply_wait_seconds, wakeup=intake.wakeup,
                             max_attempts=self.config.spool.max_attempts,
                             give_up=lambda *args: self.processor.give_up(*args))
        worker.start()
        log.info("inbound: the shared queue in the database (node %s)", self.node.id)
        return worker

    def _local_depth(self) -> int:
        """Acknowledged mail on this node's own disk: it waits for this node."""
        return len(self.spool.pending())

    def _holds(self) -> dict[str, Any]:
        return {"scheduler": bool(self._scheduler is not None and self._scheduler.leading),
                "imap": sorted(w.account.name for w in self._imap_workers if w.polling),
                "claims": self._queue_worker.claimed if self._queue_worker else 0}

    # -- reload --------------------------------------------------------------------------------
    def request_reload(self) -> None:
        """Ask the running daemon to re-read its file (what SIGHUP does); safe from any thread."""
        self._reload_requested.set()

    def reload(self) -> bool:
        """Re-read the file; swap in a processor built from it, or keep the old one on error.

        Mails already in a batch finish under the processor they started with: the spool
        worker and IMAP look ``self.processor`` up afresh for each batch.
        """
        from maild.config import ConfigError, load_config
        from maild.service.reload import restart_only_changes

        path = self.config_file
        if path is None:
            log.warning("reload: maild was started without a configuration file; nothing to re-read")
            return False
        try:
            new = load_config(path, self.config.base_dir)
            processor = self._processor(new)
            jobs = self._scheduler_jobs(new, processor)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                log.error("reload refused, still running on the previous configuration: %s", line)
            self.metrics.reloads.labels("refused").inc()
            return False
        except Exception as exc:  # e.g. a template that does not compile: the old config goes on
            log.error("reload refused, still running on the previous configuration: %s: %s", path, exc)
            self.metrics.reloads.labels("refused").inc()
            return False
        processor.on_outbound = self.wake_senders
        pending = restart_only_changes(self.config, new)
        self.processor, self.config = processor, new
        if self._handler is not None:
            self._handler.recipients = self.recipients()
        if jobs is not None:  # reminders, re-announcements, digests and their times: from the new file too
            pending = [key for key in pending if key != "scheduler"]
            pending += self._scheduler.replace_jobs(jobs)
        self.metrics.reloads.labels("done").inc()
        log.info("reload: %s re-read; agents, keywords, triggers, templates, forms, workflow and limits "
                 "now in effect%s", path, " (the scheduler's jobs too)" if jobs is not None else "")
        if pending:
            log.warning("reload: changed settings that take effect only after a restart: %s", ", ".join(pending))
        return True

    # -- health and metrics -------------------------------------------------------------------
    def health(self) -> Health:
        """Alive or not, per part: the listener, the database, the spool worker, the sender, IMAP."""
        probes: dict[str, Callable[[], bool]] = {"database": self._database_alive}
        if self._listener is not None:
            listener = self._listener
            probes["listener"] = lambda: listener.controller.loop.is_running()
        if self._worker is not None:
            worker = self._worker
            probes["spool_worker"] = lambda: worker.alive
        if self._queue_worker is not None:
            queue_worker = self._queue_worker
            probes["queue_worker"] = lambda: queue_worker.alive
        if self._sender_started:  # as started, not as a reload may since have said
            processes = self._sender_processes
            probes["sender"] = (lambda: processes.alive) if processes is not None else (lambda: self.sender.alive)
        return check(probes)

    def _database_alive(self) -> bool:
        from sqlalchemy import text

        with self.db.read() as session:
            session.execute(text("SELECT 1"))
        return True

    def _scheduler_jobs(self, config: Config, processor: Processor) -> Jobs | None:
        """The running scheduler's jobs rebuilt from a reloaded file (None: no scheduler runs
        here, or the new file switches it off, which takes a restart)."""
        if self._scheduler is None or not config.scheduler.enabled:
            return None
        from maild.scheduler.jobs import Jobs

        return Jobs(config, self.db, processor.signer, self._cap_hit)

    def _process_batch(self, items: list[tuple[bytes, str]], now: datetime) -> Sequence[Outcome]:
        for _raw, channel in items:
            if channel == "pipe":  # the pipe's only way in is the spool: counted as it is taken
                self.metrics.received.labels(channel).inc()
        started = time.monotonic()
        outcomes = self.processor.process_batch(items, now)
        elapsed = time.monotonic() - started
        for (_raw, channel), outcome in zip(items, outcomes):
            self.metrics.observe(channel, [outcome.status], elapsed)
        return outcomes

    def _start_metrics(self) -> MetricsServer | None:
        settings = self.config.metrics
        if settings is None:
            return None
        server = _open(lambda: MetricsServer(settings.host, settings.port, self.metrics, self.health),
                       "the metrics port", settings.host, settings.port)
        server.start()
        log.info("metrics: http://%s:%d/metrics and /healthz", settings.host, server.port)
        return server

    def _snapshot(self) -> Snapshot:
        from maild.service.queues import read_snapshot

        scheduler = self._scheduler
        leader = scheduler.leading if scheduler is not None else None
        last_run = scheduler.last_run if scheduler is not None else None
        imap = {worker.account.name: worker.last_pass for worker in self._imap_workers}
        return read_snapshot(self.db, self.spool, utc_now(), leader, last_run, imap,
                             shared=self.config.spool.backend == "database")

    def _start_sms(self) -> SmsSender | None:
        if self.config.sms is None or not self.config.outbound.enabled:
            return None
        from maild.notify.sms import HttpGateway, SmsSender

        sender = SmsSender(self.db, HttpGateway(self.config.sms), self.config.outbound.retry, utc_now)
        sender.start()
        return sender

    def _start_scheduler(self, wake_sms: Callable[[], None] | None) -> SchedulerService | None:
        """Reminders, re-announcements, auto-close, digests (maild/scheduler/), leader only."""
        if not self.config.scheduler.enabled:
            return None
        from maild.scheduler.service import build

        def wake() -> None:  # what a run queued leaves at once, not at the senders' next poll
            self.wake_senders()
            if wake_sms:
                wake_sms()

        service = build(self.config, self.db, self.processor.signer, utc_now, on_queued=wake, on_cap=self._cap_hit)
        service.start()
        log.info("scheduler: started (leader election every %g s)", self.config.scheduler.leader_retry_seconds)
        return service

    def _start_imap(self) -> list[ImapWorker]:
        if not self.config.imap:
            return []
        from maild.ingest.imap import start_workers
        from maild.store.checkpoints import DbCheckpoints

        gate = None
        if not self.db.is_sqlite:  # one node at a time per account, taken over when it dies
            from maild.store.locks import AdvisoryLock, key_of

            def gate(account: ImapAccount) -> AdvisoryLock:
                return AdvisoryLock(self.db, key_of(f"imap:{account.name}"), f"imap {account.name}")
        return start_workers(self.config.imap, _CurrentProcessor(self), DbCheckpoints(self.db), gate=gate)


class StartError(Exception):
    """A port or path maild needs at start is not available; the message is one line for the admin."""


T = TypeVar("T")


def _open(start: Callable[[], T], what: str, host: str, port: int) -> T:
    """Run ``start``; a bind failure becomes a one-line StartError naming the port."""
    try:
        return start()
    except OSError as exc:
        raise StartError(f"cannot open {what} on {host}:{port}: {exc.strerror or exc}") from exc
    except RuntimeError as exc:  # aiosmtpd wraps a failed bind in its own error
        cause = exc.__cause__ or exc.__context__
        detail = getattr(cause, "strerror", None) or str(cause or exc)
        raise StartError(f"cannot open {what} on {host}:{port}: {detail}") from exc


class _CurrentProcessor:
    """What IMAP workers call: always the processor of the current configuration, counted."""

    def __init__(self, app: App) -> None:
        self.app = app

    def process(self, raw: bytes, channel: str, now: datetime) -> Outcome:
        self.app.metrics.received.labels(channel).inc()
        started = time.monotonic()
        outcome = self.app.processor.process(raw, channel, now)
        self.app.metrics.observe(channel, [outcome.status], time.monotonic() - started)
        return outcome


class _PidFile:
    """``maild.pid`` in the spool directory, for ``maild reload``; removed on a clean stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text(f"{os.getpid()}\n", encoding="ascii")

    def remove(self) -> None:
        try:
            if self.path.read_text(encoding="ascii").strip() == str(os.getpid()):
                self.path.unlink()
        except OSError:
            pass
