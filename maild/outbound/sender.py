"""Deliver the outbox through the smarthost: a thread in ``maild run``, never in ingest's way.

Each round claims due rows (one short transaction), sends them over sessions taken from
a bounded pool (:mod:`maild.outbound.pool`, reused across rounds), and records the results
of a session's mails together, in one transaction per ``batch`` mails or per
``flush_seconds`` (whichever comes first): one fsync for many mails instead of one each.
A crash after the server's 250 and before that commit sends those mails again when
their claims are retaken (at most one batch, or ``flush_seconds`` of sending); the retry
reuses the Message-ID, which receivers deduplicate on.

- 2xx → ``sent``.
- 4xx, refused or dropped connection, timeouts before the final dot → back to ``queued``
  with exponential backoff (``outbound.retry``), until ``expires_at``; then ``failed``.
- 5xx, or a mail this server cannot take (a UTF-8 address without SMTPUTF8) → ``failed``
  with the reason, recorded on the ticket's history.
- No reply to the final dot → ``sent`` with an "unconfirmed" note: never retried, since
  the server may have taken it.

One mail's failure never touches the next: the session is reset (RSET) or replaced.

The SMTP conversation is behind the :class:`Transport` protocol (``SmtpTransport`` in
production); the clock is injected.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from sqlalchemy.orm import Session

from maild.config import Retry
from maild.domain.events import EventSpec
from maild.clock import backoff as delay_after
from maild.loop import Loop
from maild.outbound import outbox
from maild.outbound.compose import OutboundMail, attachments_of, to_bytes
from maild.outbound.pool import Pool
from maild.outbound.transport import PermanentFailure, SmtpTransport, TransientFailure, Unconfirmed
from maild.store import history
from maild.store.db import Database
from maild.store.models import OutboxRow
from maild.logmask import mask, mask_text

__all__ = ["PermanentFailure", "Sender", "SmtpTransport", "TransientFailure", "Unconfirmed", "backoff"]

log = logging.getLogger("maild.outbound")

NODE = socket.gethostname()[:255]


class Connection(Protocol):
    broken: bool
    sent: int

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> dict[str, str]:
        """Send one mail; return the recipients refused (address → reason) when others were taken."""
        ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class Transport(Protocol):
    def connect(self) -> Connection: ...


class BounceAddresses(Protocol):
    def bounce_address(self, outbox_id: int) -> str: ...


def backoff(attempts: int, retry: Retry) -> timedelta:
    """The wait after the ``attempts``-th failed try: first, 2×first, 4×first … up to max."""
    return timedelta(seconds=delay_after(attempts - 1, retry.first_seconds, retry.max_seconds))


def mail_of(row: OutboxRow) -> OutboundMail:
    return OutboundMail(
        kind=row.kind, automatic=row.automatic, ticket_id=row.ticket_id, message_id=row.message_id,
        envelope_from=row.envelope_from, recipients=tuple(r for r in row.recipients.split(", ") if r),
        from_header=row.from_header, to_header=row.to_header, cc_header=row.cc_header, reply_to=row.reply_to,
        subject=row.subject, in_reply_to=row.in_reply_to, references=row.references,
        auto_submitted=row.auto_submitted, language=row.language, body_text=row.body_text, date=row.created_at,
        attachments=attachments_of(row.attachments))


@dataclass(frozen=True)
class Due:
    """A claimed row, as the round sends it."""

    row_id: int
    attempts: int
    expires_at: datetime
    mail: OutboundMail


class Outcome(Enum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


SENT, RETRY, FAILED = Outcome.SENT, Outcome.RETRY, Outcome.FAILED


@dataclass(frozen=True)
class Result:
    """What became of one mail, until its batch is written."""

    item: Due
    state: Outcome
    note: str  # the refused recipients, the error, or the "unconfirmed" reason
    retry_at: datetime | None = None
    unconfirmed: bool = False


class Sender(Loop):
    """Delivers due outbox rows; ``run_once`` is one round, ``start`` runs rounds in a thread."""

    thread_name = "outbox-sender"

    def __init__(self, db: Database, transport: Transport, retry: Retry, loop_value: str,
                 clock: Callable[[], datetime], batch: int = 100, pool: Pool | None = None,
                 bounces: BounceAddresses | None = None, sign: Callable[[bytes], bytes] | None = None,
                 flush_seconds: float = 0.5, blob: Callable[[str], bytes] | None = None) -> None:
        self.db = db
        self.transport = transport
        self.retry = retry
        self.loop_value = loop_value
        self.clock = clock
        self.batch = batch  # rows claimed per round, and results written per transaction
        self.flush_seconds = flush_seconds
        self.pool = pool or Pool(transport)
        self.bounces = bounces  # VERP: each mail's own signed envelope sender
        self.sign = sign  # DKIM, when configured
        self.blob = blob  # a stored attachment's bytes by hash (relayed replies, notifications)
        self.failures = 0
        # Told each attempt's result (sent, unconfirmed, deferred, failed): the metrics' counter.
        self.on_result: Callable[[str], None] = lambda result: None
        super().__init__()
        self.token_prefix = uuid.uuid4().hex[:outbox.SENDER_ID_LENGTH]  # this sender's id
        self.heartbeat = Heartbeat(self)

    def run_once(self) -> int:
        """Claim due rows and try each once; return how many were tried."""
        now = self.clock()
        token = f"{self.token_prefix}-{uuid.uuid4().hex[:12]}"
        alive_since = now - timedelta(seconds=self.retry.heartbeat_timeout_seconds)
        with self.db.write() as session:
            # A claim always comes with a fresh heartbeat, also when no heartbeat thread runs.
            outbox.beat(session, self.token_prefix, NODE, os.getpid(), now)
            rows = outbox.claim(session, token, now, alive_since, self.batch)
            due = [Due(row.id, row.attempts, row.expires_at, mail_of(row)) for row in rows]
        if not due:
            self.pool.close_idle()
            return 0
        # One share per session of the pool, each sent in turn over its own session.
        shares = [due[i::self.pool.size] for i in range(min(self.pool.size, len(due)))]
        if len(shares) == 1:
            self._deliver(shares[0], token)
        else:
            with ThreadPoolExecutor(len(shares), thread_name_prefix="outbox-session") as workers:
                for _ in workers.map(lambda share: self._deliver(share, token), shares):
                    pass
        return len(due)

    def _deliver(self, share: list[Due], token: str) -> None:
        """Send ``share`` over one pooled session; a broken session is replaced for the next mail.

        Results are written in batches (:meth:`_record`): when ``batch`` of them wait, when
        the oldest has waited ``flush_seconds``, and at the end of the share.
        """
        connection: Connection | None = None
        results: list[Result] = []
        since = 0.0
        try:
            for i, item in enumerate(share):
                if connection is None:
                    try:
                        connection = self.pool.acquire()
                    except TransientFailure as exc:  # no session at all: these mails wait
                        results.extend(self._retry_or_fail(rest, str(exc)) for rest in share[i:])
                        return
                if not results:
                    since = time.monotonic()
                results.append(self._send_one(connection, item))
                if connection.broken:
                    self.pool.release(connection)
                    connection = None
                if len(results) >= self.batch or time.monotonic() - since >= self.flush_seconds:
                    self._record(results, token)
                    results = []
        finally:
            if connection is not None:
                self.pool.release(connection)
            if results:
                self._record(results, token)

    def _send_one(self, connection: Connection, item: Due) -> Result:
        mail = item.mail
        try:
            data = to_bytes(mail, self.loop_value, self.blob)
            if self.sign is not None:
                data = self.sign(data)
            refused = connection.send(self.envelope_from(item), list(mail.recipients), data)
        except TransientFailure as exc:
            return self._retry_or_fail(item, str(exc))
        except PermanentFailure as exc:
            return Result(item, FAILED, str(exc))
        except Unconfirmed as exc:
            # The server may have taken it: a retry could deliver it twice, so it is not retried.
            return Result(item, SENT, f"unconfirmed: {exc}", unconfirmed=True)
        except Exception as exc:  # noqa: BLE001 - a mail that cannot be built must not block the rest
            return Result(item, FAILED, f"cannot send: {type(exc).__name__}: {exc}")
        return Result(item, SENT, "; ".join(f"{a} refused: {r}" for a, r in refused.items()))

    def _retry_or_fail(self, item: Due, error: str) -> Result:
        at = self.clock() + backoff(item.attempts, self.retry)
        if at > item.expires_at:
            return Result(item, FAILED, f"gave up after {item.attempts} attempts: {error}")
        return Result(item, RETRY, error, retry_at=at)

    def _record(self, results: list[Result], token: str) -> None:
        """Write a batch of results in one transaction, then log them."""
        now = self.clock()
        with self.db.write() as session:
            outbox.mark_sent_many(session, [(r.item.row_id, r.note) for r in results if r.state is SENT], token, now)
            for r in results:
                if r.state is RETRY:
                    assert r.retry_at is not None
                    outbox.mark_retry(session, r.item.row_id, token, r.retry_at, r.note)
                elif r.state is FAILED:
                    self._fail(session, r, token, now)
        for r in results:
            self._log(r)

    def _fail(self, session: Session, result: Result, token: str, now: datetime) -> None:
        mail = result.item.mail
        if outbox.mark_failed(session, result.item.row_id, token, result.note) and mail.ticket_id is not None:
            history.record(session, mail.ticket_id, [EventSpec(
                "delivery_failed", None, mail.kind, f"to {', '.join(mail.recipients)}: {result.note}")],
                at=now, actor="maild", message_id=mail.message_id)

    def _log(self, result: Result) -> None:
        item, mail, note = result.item, result.item.mail, result.note
        self.on_result("unconfirmed" if result.unconfirmed else "sent" if result.state is SENT
                       else "deferred" if result.state is RETRY else "failed")
        if result.state is SENT and result.unconfirmed:
            log.warning("%s may have been delivered, not retried: %s", mail.message_id, mask_text(note))
        elif result.state is SENT:
            log.info("%s sent to %s (%s, ticket %s)%s", mail.message_id, ", ".join(map(mask, mail.recipients)),
                     mail.kind, mail.ticket_id, f"; {note}" if note else "")
        elif result.state is RETRY:
            assert result.retry_at is not None
            log.warning("%s not delivered (attempt %d), retry at %s: %s", mail.message_id, item.attempts,
                        result.retry_at.isoformat(timespec="seconds"), mask_text(note))
        else:
            log.error("%s failed permanently (%s to %s): %s", mail.message_id, mail.kind,
                      ", ".join(map(mask, mail.recipients)), mask_text(note))

    def envelope_from(self, item: Due) -> str:
        """The row's signed bounce address (VERP), or the stored sender; a null sender stays null."""
        if self.bounces is None or not item.mail.envelope_from:
            return item.mail.envelope_from
        return self.bounces.bounce_address(item.row_id)

    # -- the thread ------------------------------------------------------------------
    def step(self) -> float:
        try:
            tried = self.run_once()
            self.failures = 0
        except Exception:  # the database may be away; the outbox keeps everything
            self.failures += 1
            log.exception("outbox round failed")
            tried = 0
        if tried:
            return 0
        return delay_after(self.failures, self.retry.poll_seconds) if self.failures else self.retry.poll_seconds

    def start(self) -> None:
        self.heartbeat.start()
        super().start()

    def stop(self, timeout: float = 10.0) -> bool:
        ended = super().stop(timeout)
        self.heartbeat.stop(timeout)
        self.pool.close()
        try:
            with self.db.write() as session:
                outbox.retire(session, self.token_prefix)
        except Exception:  # noqa: BLE001 - the row then simply ages out
            log.warning("could not retire outbox sender %s", self.token_prefix, exc_info=True)
        return ended


class Heartbeat(Loop):
    """Keeps a sender's claims its own while it lives, in a thread of its own: a send may
    wait ten minutes for the reply to the final dot, and its claims must not look dead."""

    thread_name = "outbox-heartbeat"

    def __init__(self, sender: Sender) -> None:
        super().__init__()
        self.sender = sender

    def step(self) -> float:
        sender = self.sender
        try:
            with sender.db.write() as session:
                outbox.beat(session, sender.token_prefix, NODE, os.getpid(), sender.clock())
        except Exception:  # noqa: BLE001 - the database may be away; try again at the next beat
            log.warning("outbox heartbeat failed", exc_info=True)
        return sender.retry.heartbeat_seconds
