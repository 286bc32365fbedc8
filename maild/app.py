"""The composition root: every long-lived object is built here, from the Config."""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from maild.clock import utc_now
from maild.config import Config
from maild.ingest.attempts import AttemptLog
from maild.ingest.limits import SessionLimits
from maild.ingest.processor import Processor
from maild.ingest.smtp import Listener, RecipientTable, SpoolingHandler
from maild.ingest.spool import Spool, SpoolWorker
from maild.outbound.sender import Sender, SmtpTransport, Transport
from maild.store.blobs import BlobStore
from maild.store.db import Database

if TYPE_CHECKING:  # started only when configured: imported where they start
    from maild.ingest.imap import ImapWorker
    from maild.notify.sms import SmsSender
    from maild.scheduler.service import SchedulerService

log = logging.getLogger("maild")


class App:
    def __init__(self, config: Config, migrate: bool | None = None, transport: Transport | None = None) -> None:
        self.config = config
        self.db = Database(config.database_url)
        self.db.ensure_schema(config.database.auto_migrate if migrate is None else migrate)
        self.blobs = BlobStore(config.path(config.storage.path))
        self.spool = Spool(config.path(config.spool.path))
        self.processor = Processor(config, self.db, self.blobs, AttemptLog(self.spool.root / "attempts"))
        self.sender = Sender(self.db, transport or SmtpTransport(config.outbound.smtp), config.outbound.retry,
                             config.helpdesk.address, utc_now)
        self.processor.on_outbound = self.sender.wakeup.set

    def recipients(self) -> RecipientTable:
        helpdesk = self.config.helpdesk
        control = [helpdesk.control_address] if helpdesk.control_address else []
        return RecipientTable([helpdesk.address, *helpdesk.extra_addresses, *control])

    def run(self, stop: threading.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or ``stop`` is set): listener, spool worker, IMAP."""
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            def _on_signal(signum: int, _frame: FrameType | None) -> None:
                log.info("signal %d: stopping", signum)
                stop.set()
            signal.signal(signal.SIGTERM, _on_signal)
            signal.signal(signal.SIGINT, _on_signal)

        self.spool.clean_tmp()
        # The listener opens first: what a crash or a stop left in the spool is drained by
        # the worker thread in the background (oldest first), while new mail is accepted.
        listener = None
        smtp = self.config.smtp_server
        if smtp.enabled:
            handler = SpoolingHandler(self.spool, self.recipients(), "lmtp" if smtp.lmtp else "smtp")
            listener = Listener(handler, smtp.host, smtp.port, smtp.lmtp, smtp.max_message_size,
                                SessionLimits.from_config(smtp))
            listener.start()
            log.info("listening for %s on %s:%d", "LMTP" if smtp.lmtp else "SMTP", smtp.host, smtp.port)
        worker = SpoolWorker(self.spool, self.processor.process_batch, utc_now)
        worker.start()
        imap_workers = self._start_imap()
        if self.config.outbound.enabled:
            self.sender.start()
            smarthost = self.config.outbound.smtp
            log.info("outbox: sending through %s:%d", smarthost.host, smarthost.port)
        sms_sender = self._start_sms()
        scheduler = self._start_scheduler(sms_sender.wakeup.set if sms_sender else None)
        log.info("maild running: %s <%s>", self.config.helpdesk.name, self.config.helpdesk.address)
        try:
            stop.wait()
        finally:
            if listener:
                listener.stop()
            if imap_workers:
                from maild.ingest.imap import stop_workers
                stop_workers(imap_workers, 10)
            worker.stop()
            if scheduler:
                scheduler.stop()
            if sms_sender:
                sms_sender.stop()
            self.sender.stop()
            self.db.dispose()
            log.info("maild stopped")

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
            self.sender.wakeup.set()
            if wake_sms:
                wake_sms()

        service = build(self.config, self.db, self.processor.signer, utc_now, on_queued=wake)
        service.start()
        log.info("scheduler: started (leader election every %g s)", self.config.scheduler.leader_retry_seconds)
        return service

    def _start_imap(self) -> list[ImapWorker]:
        if not self.config.imap:
            return []
        from maild.ingest.imap import start_workers
        from maild.store.checkpoints import DbCheckpoints

        return start_workers(self.config.imap, self.processor, DbCheckpoints(self.db))
