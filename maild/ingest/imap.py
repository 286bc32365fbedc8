"""IMAP ingest: one worker (a :class:`~maild.loop.Loop`) per account, commit first, then move.

A pass (:meth:`ImapWorker.run_once`) selects the account's folder, loads the checkpoint
(UIDVALIDITY, last UID) and takes every mail with UID > last UID — never ``UNSEEN``, so mail
a person already read is ingested too — fetched with ``BODY.PEEK[]`` so maild never sets
``\\Seen``. For each mail, in UID order:

1. ``Processor.process(raw)`` commits it (raising means nothing was committed: the mail
   stays where it is, the pass stops and the worker retries after a backoff);
2. the mail is moved to ``processed_folder`` (``failed_folder`` when quarantined) with MOVE,
   or COPY + ``\\Deleted`` + (UID) EXPUNGE where MOVE is missing;
3. the checkpoint is saved.

A crash between 1 and 2 re-offers the mail on the next pass; the processor's Message-ID /
raw-hash dedupe answers ``duplicate`` and the mail is moved then. A changed UIDVALIDITY
restarts from UID 1 for the same reason: re-processing is a no-op, skipping would lose mail.

Each step of the loop is a pass; then the worker IDLEs when the server offers it (waking
every ``idle_tick`` seconds to notice :meth:`stop`), else waits ``poll_seconds``. Any
connection error drops the connection and reconnects with exponential backoff (1 s
doubling to 60 s, :mod:`maild.clock`). Each account has its own daemon thread, so a slow
or dead server holds up nobody else. The connection, the folders, the moves and the
checkpoint are :mod:`maild.ingest.imap_session`'s.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from imapclient.exceptions import IMAPClientError

from maild.clock import Backoff, Clock, utc_now
from maild.ingest.imap_config import ImapAccount, PasswordUnavailable
from maild.ingest.imap_session import (
    CheckpointStore,
    ImapSession,
    already_read,
    connect,
    disconnect,
    file_mail,
    server_folder_name,
    start_uid,
)
from maild.loop import Loop

__all__ = [
    "Backoff",
    "CheckpointStore",
    "ImapWorker",
    "MailProcessor",
    "ProcessingDeferred",
    "message_id_of",
    "server_folder_name",
    "start_workers",
    "stop_workers",
]

IDLE_MAX_SECONDS = 29 * 60  # RFC 2177: re-issue IDLE before the server's 30 min logout
IDLE_TICK_SECONDS = 1.0
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
QUARANTINED = "quarantined"
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


GATE_RETRY_SECONDS = 1.0  # how often a node that does not hold an account asks again


class AccountGate(Protocol):
    """Who polls an account when several nodes share the database (an advisory lock)."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class Outcome(Protocol):
    """What the processor did with one mail (``maild.ingest.processor.Outcome``)."""

    @property
    def status(self) -> str: ...

    @property
    def ticket_id(self) -> int | None: ...


class MailProcessor(Protocol):
    """Synchronous, thread-safe; commits before it returns; raising = nothing committed."""

    def process(self, raw: bytes, channel: str, now: datetime) -> Outcome: ...


class ProcessingDeferred(Exception):
    """The processor raised for a mail: it stays in the folder and is retried later."""

    def __init__(self, account: str, uid: int, message_id: str | None) -> None:
        super().__init__(f"imap {account}: uid {uid} {message_id or '-'} not processed")
        self.account = account
        self.uid = uid
        self.message_id = message_id


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID header for log lines only (parsing proper is ingest/parse.py's job)."""
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return None
    value = b" ".join(match.group(1).split()).decode("ascii", "replace")
    return value or None


class ImapWorker(Loop):
    """Ingests one IMAP account; ``start()`` runs it in its own daemon thread."""

    def __init__(
        self,
        account: ImapAccount,
        processor: MailProcessor,
        checkpoints: CheckpointStore,
        clock: Clock = utc_now,
        logger: logging.Logger | None = None,
        *,
        backoff: Backoff | None = None,
        idle_tick: float = IDLE_TICK_SECONDS,
        gate: AccountGate | None = None,
    ) -> None:
        super().__init__()
        # Several nodes on one database: the account is polled by the gate's holder only.
        self._gate = gate
        self.polling = gate is None
        self.thread_name = f"maild-imap-{account.name}"
        self.account = account
        self.channel = f"imap:{account.name}"
        self._processor = processor
        self._checkpoints = checkpoints
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        self._backoff = backoff or Backoff(BACKOFF_INITIAL_SECONDS, BACKOFF_MAX_SECONDS)
        self._idle_tick = idle_tick
        self.last_pass: float | None = None  # Unix time of the last complete look at the folder (metrics)
        self._session: ImapSession | None = None

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread and log out; True when it ended within ``timeout`` seconds."""
        if self._thread is None:
            self.request_stop()
            self.close()
            return True
        stopped = super().stop(timeout)
        if not stopped:
            self._log.warning("imap %s: worker still busy after %.0fs", self.account.name, timeout)
        return stopped

    def close(self) -> None:
        """Log out and drop the connection (for callers that used ``run_once`` directly)."""
        self._disconnect(logout=True)

    # -- one pass ----------------------------------------------------------------------
    def run_once(self) -> int:
        """Connect if needed and hand every pending mail to the processor; return how many.

        Raises ProcessingDeferred when the processor failed (the connection is kept), and
        IMAP/socket errors otherwise (the connection is dropped; the next call reconnects).
        """
        try:
            if self._session is None:
                self._session = connect(self.account, self._log)
            return self._drain(self._session)
        except ProcessingDeferred:
            raise
        except BaseException:
            self._disconnect()
            raise

    def _drain(self, session: ImapSession) -> int:
        selected = session.client.select_folder(session.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = start_uid(self._checkpoints, self.account, uidvalidity, self._log)
        # "n:*" always matches the highest UID, even when it is below n: filter it out.
        found = session.client.search(["UID", f"{last_uid + 1}:*"])
        handled = 0
        for uid in sorted(uid for uid in found if uid > last_uid):
            if self.stopping:
                break
            self._handle(session, uidvalidity, uid)
            handled += 1
        return handled

    def _handle(self, session: ImapSession, uidvalidity: int, uid: int) -> None:
        name = self.account.name
        item = session.client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
        raw = item.get(b"BODY[]")
        if not isinstance(raw, bytes):
            self._log.info("imap %s: uid %d vanished before it was fetched", name, uid)
            self._checkpoints.save(name, self.account.folder, uidvalidity, uid)
            return
        message_id = message_id_of(raw)
        try:
            outcome = self._processor.process(raw, self.channel, self._clock())
        except Exception as exc:
            raise ProcessingDeferred(name, uid, message_id) from exc
        target = session.failed if outcome.status == QUARANTINED else session.processed
        self._file(session, uid, target)
        self._checkpoints.save(name, self.account.folder, uidvalidity, uid)
        self._log.info(
            "imap %s: uid %d %s (%d bytes) %s ticket %s, %s",
            name, uid, message_id or "<no message-id>", len(raw), outcome.status,
            outcome.ticket_id if outcome.ticket_id is not None else "-",
            f"moved to {target}" if target else "left in place",
        )

    def _file(self, session: ImapSession, uid: int, target: str | None) -> None:
        """Move the committed mail out of the ingest folder; the checkpoint is saved after."""
        file_mail(session, uid, target)

    def _disconnect(self, logout: bool = False) -> None:
        session, self._session = self._session, None
        if session is not None:
            disconnect(session, logout)

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        self._log.info("imap %s: worker started", self.account.name)
        try:
            super()._run()
        finally:
            self._disconnect(logout=True)
            if self._gate is not None:
                self._gate.release()
            self._log.info("imap %s: worker stopped", self.account.name)

    def step(self) -> float:
        """One pass, then wait for mail; after a failure, the backoff's delay."""
        name = self.account.name
        if self._gate is not None:
            holding = self._gate.acquire()
            if holding != self.polling:
                self._log.info("imap %s: %s", name, "this node polls the account now" if holding
                               else "another node polls the account")
            self.polling = holding
            if not holding:
                self._disconnect(logout=True)
                return GATE_RETRY_SECONDS
        try:
            self.run_once()
            self.last_pass = time.time()
            self._backoff.reset()
            return self._wait_for_mail()
        except ProcessingDeferred as exc:
            delay = self._backoff.next_delay()
            self._log.warning(
                "imap %s: uid %d %s: processing failed (%s); left in %s, retry in %.0fs",
                name, exc.uid, exc.message_id or "<no message-id>",
                _describe(exc.__cause__), self.account.folder, delay,
            )
            return delay
        except Exception as exc:
            self._disconnect()
            delay = self._backoff.next_delay()
            if isinstance(exc, (IMAPClientError, OSError, PasswordUnavailable)):
                self._log.warning("imap %s: %s; reconnecting in %.0fs", name, _describe(exc), delay)
            else:
                self._log.exception("imap %s: unexpected error; reconnecting in %.0fs", name, delay)
            return delay

    def _wait_for_mail(self) -> float:
        """IDLE until new mail may be there, ``poll_seconds`` pass, or stop (then 0: look
        at once); without IDLE, the loop waits ``poll_seconds``."""
        session = self._session
        poll = self.account.poll_seconds
        if session is None or not session.idle:
            return poll
        deadline = time.monotonic() + min(poll, IDLE_MAX_SECONDS)
        session.client.idle()
        self._log.debug("imap %s: idling", self.account.name)
        try:
            while not self.stopping and not already_read(session.client):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                tick = min(self._idle_tick, remaining)
                started = time.monotonic()
                if session.client.idle_check(timeout=tick):
                    break  # EXISTS, EXPUNGE, BYE, keep-alive: a pass is cheap, just look
                if time.monotonic() - started < tick / 2:
                    break  # readable but nothing parsed: EOF; idle_done() will raise
        finally:
            session.client.idle_done()
        return 0


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def start_workers(
    accounts: Iterable[ImapAccount],
    processor: MailProcessor,
    checkpoints: CheckpointStore,
    clock: Clock = utc_now,
    gate: Callable[[ImapAccount], AccountGate] | None = None,
) -> list[ImapWorker]:
    """One started worker (thread) per account; with ``gate``, each polls only while it
    holds its account's gate."""
    workers = [ImapWorker(account, processor, checkpoints, clock, gate=gate(account) if gate else None)
               for account in accounts]
    for worker in workers:
        worker.start()
    return workers


def stop_workers(workers: Iterable[ImapWorker], timeout: float = 10.0) -> None:
    """Signal every worker first, then wait for each, so shutdown takes one timeout."""
    workers = list(workers)
    for worker in workers:
        worker.request_stop()
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.stop(max(0.0, deadline - time.monotonic()))
