"""``maild run --workers N``: the outbound sender in processes of its own.

With one worker everything runs in one process (SMTP intake, the spool worker, the
scheduler and the sender share one interpreter lock). With N ≥ 2 the main process keeps
intake, the pipeline and the scheduler, and N - 1 sender processes deliver the outbox,
each with its own database connection, SMTP sessions and heartbeat row: the claims
(``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) already let
several senders share the queue, so nothing else changes about exactly-once.

- The main process wakes the senders when the pipeline queued mail (an event per child);
  they also poll every ``outbound.retry.poll_seconds``.
- Children die with the main process: each holds the reading end of a pipe whose only
  writer is the main process, and leaves at once (no clean-up, as a killed daemon would)
  when it reads end-of-file. Their claims are then retaken like any dead sender's.
- A clean stop (SIGTERM or SIGINT to the main process) asks each child to stop: it ends its
  round, records its results, retires its heartbeat row and exits. A child that stops
  on its own is started again by the main process.
- SIGINT and SIGHUP are the main process's business (a terminal's Ctrl-C reaches the
  whole process group); a SIGTERM sent to a child (``KillMode=control-group``) stops it
  cleanly like the "stop" message.
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.queues
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as ProcessEvent
from types import FrameType

from maild.clock import utc_now
from maild.config import Config
from maild.outbound.pool import Pool
from maild.outbound.sender import Sender, SmtpTransport, Transport
from maild.store.blobs import Blobs, open_blobs
from maild.store.db import Database
from maild.threading.signing import Signer

log = logging.getLogger("maild")

STOP = "stop"
# Exit status of a child that saw its main process go away.
ORPHANED = 70


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def build_sender(config: Config, db: Database, signer: Signer, transport: Transport | None = None,
                 blobs: Blobs | None = None) -> Sender:
    """The outbox sender of ``config``: pooled sessions, VERP and DKIM as configured; stored
    attachments (relayed replies, notifications) read from ``blobs``."""
    blobs = blobs or open_blobs(config, db)
    smtp = config.outbound.smtp
    transport = transport or SmtpTransport(smtp)
    pool = Pool(transport, smtp.connections, smtp.idle_seconds, smtp.max_messages_per_connection)
    return Sender(db, transport, config.outbound.retry, config.helpdesk.address, utc_now, pool=pool,
                  bounces=signer if config.outbound.verp else None, sign=dkim_signer(config),
                  blob=blobs.get_attachment)


def dkim_signer(config: Config) -> Callable[[bytes], bytes] | None:
    settings = config.outbound.dkim
    if settings is None:
        return None
    from maild.outbound.dkim_sign import DkimSigner

    key_file = config.path(settings.private_key_file)
    return DkimSigner.from_file(settings.selector, settings.domain, key_file).sign


class _Child:
    def __init__(self, process: SpawnProcess, stop: Connection, wake: ProcessEvent) -> None:
        self.process = process
        self.stop = stop
        self.wake = wake


class SenderProcesses:
    """``count`` sender processes: started, woken, restarted when one ends, stopped."""

    def __init__(self, config: Config, count: int, on_result: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.count = count
        self._context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self.restarts = 0
        # Each attempt's result comes back here (the metrics live in the main process).
        self.on_result = on_result
        self._results: multiprocessing.queues.Queue[str] = self._context.Queue()

    def start(self) -> None:
        threading.Thread(target=self._relay_results, name="sender-results", daemon=True).start()
        for _ in range(self.count):
            self._children.append(self._spawn())
        log.info("outbox: %d sender process(es): %s", self.count,
                 ", ".join(str(c.process.pid) for c in self._children))

    def _spawn(self) -> _Child:
        reader, writer = self._context.Pipe(duplex=False)
        wake = self._context.Event()
        process = self._context.Process(target=_child_main, args=(self.config, reader, wake, self._results),
                                        name="maild-sender", daemon=True)
        process.start()
        reader.close()  # the child holds the only reading end: end-of-file there means we are gone
        return _Child(process, writer, wake)

    def _relay_results(self) -> None:
        while True:
            result = self._results.get()
            if result == STOP:
                return
            if self.on_result is not None:
                self.on_result(result)

    def wakeup(self) -> None:
        """New mail in the outbox: every sender looks at once."""
        for child in self._children:
            child.wake.set()

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children if c.process.pid is not None]

    @property
    def alive(self) -> bool:
        return bool(self._children) and all(c.process.is_alive() for c in self._children)

    def check(self) -> None:
        """Start a sender again that ended while maild runs (its claims are retaken)."""
        with self._lock:
            for i, child in enumerate(self._children):
                if child.process.is_alive():
                    continue
                log.error("outbox sender process %s ended (exit status %s); starting another",
                          child.process.pid, child.process.exitcode)
                child.stop.close()
                self._children[i] = self._spawn()
                self.restarts += 1

    def stop(self, timeout: float = 15.0) -> None:
        with self._lock:
            for child in self._children:
                try:
                    child.stop.send(STOP)
                except OSError:
                    pass
            for child in self._children:
                child.process.join(timeout)
                if child.process.is_alive():
                    log.warning("outbox sender process %s did not stop within %g s; killed", child.process.pid, timeout)
                    child.process.kill()
                    child.process.join(5)
                child.stop.close()
            self._children = []
            self._results.put(STOP)


def _child_main(config: Config, parent: Connection, wake: ProcessEvent, results: multiprocessing.queues.Queue[str]) -> None:
    """A sender process: runs until the main process says stop, or goes away."""
    stop = threading.Event()

    def _on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    from maild.service.logs import configure

    configure(config)
    db = Database(config.database_url)
    helpdesk = config.helpdesk
    sender = build_sender(config, db, Signer(config.signing_secret(), helpdesk.local_part, helpdesk.domain))
    sender.on_result = results.put

    def watch_parent() -> None:
        try:
            parent.recv()
        except (EOFError, OSError):
            os._exit(ORPHANED)  # the main process is gone: so is this one, as if killed with it
        stop.set()

    def relay_wakeups() -> None:
        while not stop.is_set():
            if wake.wait(1.0):
                wake.clear()
                sender.wakeup.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    threading.Thread(target=relay_wakeups, name="wakeups", daemon=True).start()
    sender.start()
    log.info("outbox sender process %d: sending through %s:%d", os.getpid(), config.outbound.smtp.host,
             config.outbound.smtp.port)
    while not stop.wait(0.5):  # a timed wait: the SIGTERM handler runs between two
        pass
    sender.stop()
    db.dispose()
