"""IMAP ingest: one worker thread per account, commit first, then move.

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

Between passes the worker IDLEs when the server offers it (waking every ``idle_tick``
seconds to notice :meth:`stop`), else sleeps ``poll_seconds``. Any connection error drops
the connection and reconnects with exponential backoff (1 s doubling to 60 s). Each account
has its own daemon thread, so a slow or dead server holds up nobody else.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError

from maild.ingest.imap_config import ImapAccount, PasswordUnavailable

__all__ = [
    "Backoff",
    "CheckpointStore",
    "ImapWorker",
    "MailProcessor",
    "ProcessingDeferred",
    "server_folder_name",
    "start_workers",
    "stop_workers",
]

SOCKET_TIMEOUT = SocketTimeout(connect=15.0, read=300.0)  # read: per recv, big mails are fine
IDLE_MAX_SECONDS = 29 * 60  # RFC 2177: re-issue IDLE before the server's 30 min logout
IDLE_TICK_SECONDS = 1.0
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
LOGOUT_TIMEOUT_SECONDS = 5.0
QUARANTINED = "quarantined"
_DELETED = b"\\Deleted"
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(Protocol):
    """What the processor did with one mail (``maild.ingest.processor.Outcome``)."""

    @property
    def status(self) -> str: ...

    @property
    def ticket_id(self) -> int | None: ...


class MailProcessor(Protocol):
    """Synchronous, thread-safe; commits before it returns; raising = nothing committed."""

    def process(self, raw: bytes, channel: str, now: datetime) -> Outcome: ...


class CheckpointStore(Protocol):
    """Per (account, folder): the UIDVALIDITY and the highest UID fully handled."""

    def load(self, account: str, folder: str) -> tuple[int, int] | None: ...

    def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None: ...


class ProcessingDeferred(Exception):
    """The processor raised for a mail: it stays in the folder and is retried later."""

    def __init__(self, account: str, uid: int, message_id: str | None) -> None:
        super().__init__(f"imap {account}: uid {uid} {message_id or '-'} not processed")
        self.account = account
        self.uid = uid
        self.message_id = message_id


class Backoff:
    """Exponential delays: ``initial``, doubling, capped at ``maximum``; ``reset`` on success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def server_folder_name(path: str, prefix: str, delimiter: str | None) -> str:
    """Translate a configured ``a/b`` folder path into the server's own mailbox name.

    ``/`` becomes the server's hierarchy delimiter, and the personal namespace prefix
    (``INBOX.`` on Courier/Cyrus) is prepended unless already there. INBOX stays INBOX.
    """
    if path.upper() == "INBOX":
        return "INBOX"
    parts = [part for part in path.split("/") if part]
    name = delimiter.join(parts) if delimiter else "/".join(parts)
    if prefix and not name.upper().startswith(prefix.upper()):
        name = prefix + name
    return name


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID header for log lines only (parsing proper is ingest/parse.py's job)."""
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return None
    value = b" ".join(match.group(1).split()).decode("ascii", "replace")
    return value or None


@dataclass
class _Session:
    """One logged-in connection and what the server offers."""

    client: IMAPClient
    idle: bool
    move: bool
    uidplus: bool
    folder: str
    processed: str | None
    failed: str | None


class ImapWorker:
    """Ingests one IMAP account; ``start()`` runs it in its own daemon thread."""

    def __init__(
        self,
        account: ImapAccount,
        processor: MailProcessor,
        checkpoints: CheckpointStore,
        clock: Callable[[], datetime] = utc_now,
        logger: logging.Logger | None = None,
        *,
        backoff: Backoff | None = None,
        idle_tick: float = IDLE_TICK_SECONDS,
    ) -> None:
        self.account = account
        self.channel = f"imap:{account.name}"
        self._processor = processor
        self._checkpoints = checkpoints
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        self._backoff = backoff or Backoff(BACKOFF_INITIAL_SECONDS, BACKOFF_MAX_SECONDS)
        self._idle_tick = idle_tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"imap worker {self.account.name} already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"maild-imap-{self.account.name}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the mail in hand; returns at once."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread and log out; True when it ended within ``timeout`` seconds."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            self.close()
            return True
        thread.join(timeout)
        if thread.is_alive():
            self._log.warning("imap %s: worker still busy after %.0fs", self.account.name, timeout)
            return False
        self._thread = None
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
                self._session = self._connect()
            return self._drain(self._session)
        except ProcessingDeferred:
            raise
        except BaseException:
            self._disconnect()
            raise

    def _drain(self, session: _Session) -> int:
        selected = session.client.select_folder(session.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = self._start_uid(uidvalidity)
        # "n:*" always matches the highest UID, even when it is below n: filter it out.
        found = session.client.search(["UID", f"{last_uid + 1}:*"])
        handled = 0
        for uid in sorted(uid for uid in found if uid > last_uid):
            if self._stop.is_set():
                break
            self._handle(session, uidvalidity, uid)
            handled += 1
        return handled

    def _start_uid(self, uidvalidity: int) -> int:
        name, folder = self.account.name, self.account.folder
        saved = self._checkpoints.load(name, folder)
        if saved is None:
            return 0
        saved_validity, last_uid = saved
        if saved_validity == uidvalidity:
            return last_uid
        self._log.warning(
            "imap %s: %s UIDVALIDITY changed %d -> %d; re-offering every mail from UID 1 "
            "(already processed mail is recognized as a duplicate)",
            name, folder, saved_validity, uidvalidity,
        )
        self._checkpoints.save(name, folder, uidvalidity, 0)
        return 0

    def _handle(self, session: _Session, uidvalidity: int, uid: int) -> None:
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

    def _file(self, session: _Session, uid: int, target: str | None) -> None:
        """Move one mail out of the ingest folder (``None``: leave it, the checkpoint guards)."""
        if target is None:
            return
        client = session.client
        if session.move:
            client.move([uid], target)
            return
        client.copy([uid], target)
        client.add_flags([uid], [_DELETED], silent=True)
        if session.uidplus:
            client.uid_expunge([uid])
        else:  # plain EXPUNGE also removes mails someone else flagged \Deleted here
            client.expunge()

    # -- connection --------------------------------------------------------------------
    def _connect(self) -> _Session:
        acc = self.account
        context = ssl.create_default_context() if (acc.ssl or acc.starttls) else None
        client = IMAPClient(
            acc.host, port=acc.port, ssl=acc.ssl, ssl_context=context,
            timeout=SOCKET_TIMEOUT,
        )
        try:
            if acc.starttls:
                client.starttls(context)
            client.login(acc.username, acc.resolve_password())
            prefix, delimiter = _personal_namespace(client)
            session = _Session(
                client=client,
                idle=client.has_capability("IDLE"),
                move=client.has_capability("MOVE"),
                uidplus=client.has_capability("UIDPLUS"),
                folder=server_folder_name(acc.folder, prefix, delimiter),
                processed=_maybe_name(acc.processed_folder, prefix, delimiter),
                failed=_maybe_name(acc.failed_folder, prefix, delimiter),
            )
            for target in (session.processed, session.failed):
                if target is not None and not client.folder_exists(target):
                    client.create_folder(target)
                    self._log.info("imap %s: created folder %s", acc.name, target)
        except BaseException:
            _close_quietly(client)
            raise
        self._log.info(
            "imap %s: connected to %s:%d as %s (%s)", acc.name, acc.host, acc.port,
            acc.username, "IDLE" if session.idle else f"polling every {acc.poll_seconds:g}s",
        )
        return session

    def _disconnect(self, logout: bool = False) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        if logout:
            try:
                session.client.socket().settimeout(LOGOUT_TIMEOUT_SECONDS)
                session.client.logout()
                return
            except Exception:  # already dead: just close the socket
                pass
        _close_quietly(session.client)

    # -- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        name = self.account.name
        self._log.info("imap %s: worker started", name)
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                    self._backoff.reset()
                    self._wait_for_mail()
                except ProcessingDeferred as exc:
                    delay = self._backoff.next_delay()
                    self._log.warning(
                        "imap %s: uid %d %s: processing failed (%s); left in %s, retry in %.0fs",
                        name, exc.uid, exc.message_id or "<no message-id>",
                        _describe(exc.__cause__), self.account.folder, delay,
                    )
                    self._stop.wait(delay)
                except Exception as exc:
                    self._disconnect()
                    delay = self._backoff.next_delay()
                    if isinstance(exc, (IMAPClientError, OSError, PasswordUnavailable)):
                        self._log.warning(
                            "imap %s: %s; reconnecting in %.0fs", name, _describe(exc), delay
                        )
                    else:
                        self._log.exception("imap %s: unexpected error; reconnecting in %.0fs",
                                            name, delay)
                    self._stop.wait(delay)
        finally:
            self._disconnect(logout=True)
            self._log.info("imap %s: worker stopped", name)

    def _wait_for_mail(self) -> None:
        """Return when new mail may be there, after ``poll_seconds``, or on stop."""
        session = self._session
        poll = self.account.poll_seconds
        if session is None or not session.idle:
            self._stop.wait(poll)
            return
        deadline = time.monotonic() + min(poll, IDLE_MAX_SECONDS)
        session.client.idle()
        try:
            while not self._stop.is_set() and not _already_read(session.client):
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


def _already_read(client: IMAPClient) -> bool:
    """True when responses already sit in imaplib's read buffer (so the socket looks idle).

    Dovecot reports mail that arrived between our SEARCH and IDLE right after "+ idling",
    often in the same packet; reading the continuation line buffers it, and idle_check()
    only polls the socket, so without this look it would wait for the next keep-alive.
    Peeks with the socket non-blocking: also true when bytes are waiting on the socket.
    """
    peek = getattr(getattr(client._imap, "file", None), "peek", None)
    if peek is None:
        return False
    sock = client.socket()
    sock.setblocking(False)
    try:
        return bool(peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(SOCKET_TIMEOUT.read)


def _maybe_name(path: str | None, prefix: str, delimiter: str | None) -> str | None:
    return None if path is None else server_folder_name(path, prefix, delimiter)


def _personal_namespace(client: IMAPClient) -> tuple[str, str | None]:
    """(prefix, hierarchy delimiter) of the personal namespace."""
    if client.has_capability("NAMESPACE"):
        personal = client.namespace().personal
        if personal:
            prefix, delimiter = personal[0]
            return _text(prefix) or "", _text(delimiter)
    listed = client.list_folders("", "")
    delimiter = listed[0][1] if listed else None
    return "", _text(delimiter)


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _close_quietly(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def start_workers(
    accounts: Iterable[ImapAccount],
    processor: MailProcessor,
    checkpoints: CheckpointStore,
    clock: Callable[[], datetime] = utc_now,
) -> list[ImapWorker]:
    """One started worker (thread) per account."""
    workers = [ImapWorker(account, processor, checkpoints, clock) for account in accounts]
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
