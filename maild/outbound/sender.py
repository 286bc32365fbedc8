"""Deliver the outbox through the smarthost: a thread in ``maild run``, never in ingest's way.

Each round claims a few due rows (one short transaction), sends them over one SMTP
connection, and records each result in its own transaction right after the server
answered, so the window in which a crash could make a mail go out twice is one commit
wide (and even then the retry reuses the Message-ID, which receivers deduplicate on).

- 2xx → ``sent``.
- 4xx, refused or dropped connection, timeouts → back to ``queued`` with exponential
  backoff (``outbound.retry``), until ``expires_at``; then ``failed``.
- 5xx → ``failed`` with the server's reason, recorded on the ticket's history.

The SMTP conversation is behind the :class:`Transport` protocol (``SmtpTransport`` in
production); the clock is injected.
"""
from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import insert

from maild.config import OutboundSmtp, Retry
from maild.clock import backoff as delay_after
from maild.loop import Loop
from maild.outbound import outbox
from maild.outbound.compose import OutboundMail, attachments_of, to_bytes
from maild.store.db import Database
from maild.store.models import Event, OutboxRow
from maild.logmask import mask, mask_text

log = logging.getLogger("maild.outbound")


class TransientFailure(Exception):
    """Try again later: 4xx, connection refused or lost, timeout."""

    def __init__(self, reason: str, connection_lost: bool = False) -> None:
        super().__init__(reason)
        self.connection_lost = connection_lost


class PermanentFailure(Exception):
    """The server refused the mail for good (5xx)."""


class Connection(Protocol):
    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> dict[str, str]:
        """Send one mail; return the recipients refused (address → reason) when others were taken."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    def connect(self) -> Connection: ...


def _reason(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


class _SmtpConnection:
    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> dict[str, str]:
        try:
            refused = self.smtp.sendmail(envelope_from, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {addr: _reason(code, msg) for addr, (code, msg) in exc.recipients.items()}
            if any(c.startswith("4") for c in codes.values()):
                raise TransientFailure("; ".join(f"{a}: {r}" for a, r in codes.items())) from exc
            raise PermanentFailure("; ".join(f"{a}: {r}" for a, r in codes.items())) from exc
        except smtplib.SMTPResponseException as exc:
            reason = _reason(exc.smtp_code, exc.smtp_error)
            if 400 <= exc.smtp_code < 500 or exc.smtp_code < 200:
                raise TransientFailure(reason) from exc
            raise PermanentFailure(reason) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientFailure(f"{type(exc).__name__}: {exc}", connection_lost=True) from exc
        return {addr: _reason(code, msg) for addr, (code, msg) in refused.items()}

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


@dataclass(frozen=True)
class SmtpTransport:
    """smtplib against the configured smarthost: plain, STARTTLS or implicit TLS, optional AUTH."""

    settings: OutboundSmtp
    local_hostname: str | None = None

    def connect(self) -> Connection:
        s = self.settings
        try:
            if s.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      local_hostname=self.local_hostname,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout, local_hostname=self.local_hostname)
            smtp.ehlo_or_helo_if_needed()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password() or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientFailure(f"smarthost refused the login: {_reason(exc.smtp_code, exc.smtp_error)}") from exc
        except smtplib.SMTPResponseException as exc:
            raise TransientFailure(f"smarthost {s.host}:{s.port}: {_reason(exc.smtp_code, exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TransientFailure(f"smarthost {s.host}:{s.port}: {type(exc).__name__}: {exc}") from exc
        return _SmtpConnection(smtp)


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


class Sender(Loop):
    thread_name = "outbox-sender"

    """Delivers due outbox rows; ``run_once`` is one round, ``start`` runs rounds in a thread."""

    def __init__(self, db: Database, transport: Transport, retry: Retry, loop_value: str,
                 clock: Callable[[], datetime], batch: int = 20) -> None:
        self.db = db
        self.transport = transport
        self.retry = retry
        self.loop_value = loop_value
        self.clock = clock
        self.batch = batch
        self.failures = 0
        super().__init__()
        self.token_prefix = uuid.uuid4().hex[:12]

    def run_once(self) -> int:
        """Claim due rows and try each once; return how many were tried."""
        now = self.clock()
        token = f"{self.token_prefix}-{uuid.uuid4().hex[:12]}"
        stale = now - timedelta(seconds=self.retry.claim_timeout_seconds)
        with self.db.write() as session:
            rows = outbox.claim(session, token, now, stale, self.batch)
            mails = [(row.id, row.attempts, row.expires_at, mail_of(row)) for row in rows]
        if not mails:
            return 0
        try:
            connection = self.transport.connect()
        except TransientFailure as exc:
            for row_id, attempts, expires_at, mail in mails:
                self._retry_or_fail(row_id, token, attempts, expires_at, mail, str(exc))
            return len(mails)
        try:
            for i, (row_id, attempts, expires_at, mail) in enumerate(mails):
                try:
                    refused = connection.send(mail.envelope_from, list(mail.recipients), to_bytes(mail, self.loop_value))
                except TransientFailure as exc:
                    self._retry_or_fail(row_id, token, attempts, expires_at, mail, str(exc))
                    if exc.connection_lost:
                        for rest in mails[i + 1:]:  # the connection is gone: the others wait too
                            self._retry_or_fail(rest[0], token, rest[1], rest[2], rest[3], str(exc))
                        return len(mails)
                    continue
                except PermanentFailure as exc:
                    self._fail(row_id, token, mail, str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a mail that cannot be built or encoded
                    # (e.g. a non-ASCII address the server cannot take) must not block the rest.
                    self._fail(row_id, token, mail, f"cannot send: {type(exc).__name__}: {exc}")
                    continue
                note = "; ".join(f"{a} refused: {r}" for a, r in refused.items())
                with self.db.write() as session:
                    outbox.mark_sent(session, row_id, token, self.clock(), note)
                log.info("%s sent to %s (%s, ticket %s)%s", mail.message_id, ", ".join(map(mask, mail.recipients)), mail.kind,
                         mail.ticket_id, f"; {note}" if note else "")
        finally:
            connection.close()
        return len(mails)

    def _retry_or_fail(self, row_id: int, token: str, attempts: int, expires_at: datetime, mail: OutboundMail,
                       error: str) -> None:
        at = self.clock() + backoff(attempts, self.retry)
        if at > expires_at:
            self._fail(row_id, token, mail, f"gave up after {attempts} attempts: {error}")
            return
        with self.db.write() as session:
            outbox.mark_retry(session, row_id, token, at, error)
        log.warning("%s not delivered (attempt %d), retry at %s: %s", mail.message_id, attempts,
                    at.isoformat(timespec="seconds"), mask_text(error))

    def _fail(self, row_id: int, token: str, mail: OutboundMail, error: str) -> None:
        with self.db.write() as session:
            if outbox.mark_failed(session, row_id, token, error) and mail.ticket_id is not None:
                session.execute(insert(Event), [{
                    "ticket_id": mail.ticket_id, "at": self.clock(), "actor": "maild", "kind": "delivery_failed",
                    "old": None, "new": mail.kind, "message_id": mail.message_id,
                    "detail": f"to {', '.join(mail.recipients)}: {error}"[:2000]}])
        log.error("%s failed permanently (%s to %s): %s", mail.message_id, mail.kind, ", ".join(map(mask, mail.recipients)),
                  mask_text(error))

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
