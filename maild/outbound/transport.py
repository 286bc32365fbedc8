"""The SMTP conversation with the smarthost, one mail at a time over a reusable session.

What it decides for each mail:

- **SMTPUTF8** when an envelope address is not ASCII and the server offers the extension
  (RFC 6531); when it does not, that mail fails alone with a clear reason before a single
  command is sent, and the session stays clean for the next mail.
- **RSET after any per-message error** (a refused MAIL/RCPT/DATA, a mail that cannot be
  encoded): the next mail never meets a half-open transaction ("503 nested MAIL"). A
  session whose RSET fails is marked broken and the pool opens a new one.
- **RFC 5321 client timeouts** (4.5.3.2): ``timeout`` for every command reply (5 minutes
  by default), ``data_timeout`` for the reply to the final dot (10 minutes).
- **After the final dot** a lost reply (timeout, dropped connection) leaves the outcome
  unknown: the server may have accepted the mail. That is :class:`Unconfirmed`, which the
  sender never retries, so a slow server cannot receive the same mail twice.
"""
from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass

from maild.config import OutboundSmtp

CRLF = b"\r\n"
DATA_GO_AHEAD = 354
MAIL_OK = (250,)
RCPT_OK = (250, 251)


class TransientFailure(Exception):
    """Try again later: 4xx, connection refused or lost before the final dot, timeout."""

    def __init__(self, reason: str, connection_lost: bool = False) -> None:
        super().__init__(reason)
        self.connection_lost = connection_lost


class PermanentFailure(Exception):
    """The server refused the mail for good (5xx), or the mail cannot travel this way."""


class Unconfirmed(Exception):
    """The final dot was sent and no reply came: the mail may have been delivered."""


def reason_of(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


def _failure(code: int, message: bytes | str) -> Exception:
    reason = reason_of(code, message)
    if 400 <= code < 500 or code < 200:
        return TransientFailure(reason, connection_lost=code in (421, -1))
    return PermanentFailure(reason)


def dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ending in CRLF (RFC 5321 4.5.2)."""
    data = re.sub(rb"\r\n|\n|\r(?!\n)", CRLF, data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(CRLF) else data + CRLF


class SmtpConnection:
    """One SMTP session; ``send`` runs one mail transaction and leaves the session reusable."""

    def __init__(self, smtp: smtplib.SMTP, timeout: float, data_timeout: float) -> None:
        self.smtp = smtp
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.broken = False
        self.sent = 0  # mails this session carried

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> dict[str, str]:
        """Send one mail; return the recipients refused (address → reason) when others were taken."""
        options = self._options(envelope_from, recipients, data)
        try:
            refused = self._transaction(envelope_from, recipients, data, options)
        except Unconfirmed:
            self.broken = True  # the session is in an unknown state: never reused
            raise
        except TransientFailure as exc:
            if exc.connection_lost:
                self.broken = True
            else:
                self.reset()
            raise
        except PermanentFailure:
            self.reset()
            raise
        except (smtplib.SMTPException, OSError) as exc:
            self.broken = True
            raise TransientFailure(f"{type(exc).__name__}: {exc}", connection_lost=True) from exc
        except Exception as exc:  # noqa: BLE001 - a mail that cannot be encoded must not poison the session
            self.reset()
            raise PermanentFailure(f"cannot send: {type(exc).__name__}: {exc}") from exc
        self.sent += 1
        return refused

    def _options(self, envelope_from: str, recipients: list[str], data: bytes) -> list[str]:
        options: list[str] = []
        wide = [a for a in (envelope_from, *recipients) if not a.isascii()]
        if wide:
            if not self.smtp.has_extn("smtputf8"):
                # Decided before MAIL: nothing of this mail reaches the server.
                raise PermanentFailure(f"the address {wide[0]} needs SMTPUTF8, which the smarthost does not offer")
            options.append("SMTPUTF8")
        if not data.isascii() and self.smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        return options

    def _transaction(self, envelope_from: str, recipients: list[str], data: bytes,
                     options: list[str]) -> dict[str, str]:
        smtp = self.smtp
        smtp.command_encoding = "ascii"  # smtplib keeps "utf-8" after an SMTPUTF8 transaction
        code, reply = smtp.mail(envelope_from, options)
        if code not in MAIL_OK:
            raise _failure(code, reply)
        refused: dict[str, str] = {}
        codes: list[int] = []
        for rcpt in recipients:
            code, reply = smtp.rcpt(rcpt)
            if code not in RCPT_OK:
                refused[rcpt] = reason_of(code, reply)
                codes.append(code)
        if len(refused) == len(recipients):
            text = "; ".join(f"{a}: {r}" for a, r in refused.items())
            if any(400 <= c < 500 for c in codes):
                raise TransientFailure(text)
            raise PermanentFailure(text)
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != DATA_GO_AHEAD:
            raise _failure(code, reply)
        smtp.send(dot_stuffed(data) + b"." + CRLF)
        # From here the server may take the mail at any moment: no reply is not "not sent".
        sock = smtp.sock
        try:
            if sock is not None:
                sock.settimeout(self.data_timeout)
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise Unconfirmed(f"no reply to the end of DATA: {type(exc).__name__}: {exc}") from exc
        finally:
            if smtp.sock is not None:
                smtp.sock.settimeout(self.timeout)
        if code != 250:
            raise _failure(code, reply)
        return refused

    def reset(self) -> None:
        """RSET, so the next mail starts a clean transaction; a session that cannot is broken."""
        try:
            code, _ = self.smtp.rset()
            self.broken = code != 250
        except (smtplib.SMTPException, OSError):
            self.broken = True

    def alive(self) -> bool:
        """NOOP on a session that sat idle (servers drop idle clients)."""
        try:
            return self.smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

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

    def connect(self) -> SmtpConnection:
        s = self.settings
        try:
            if s.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      local_hostname=self.local_hostname,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout, local_hostname=self.local_hostname)
            try:
                smtp.ehlo_or_helo_if_needed()
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password() or "")
            except BaseException:
                smtp.close()  # a session that never became usable leaves no socket behind
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientFailure(f"smarthost refused the login: {reason_of(exc.smtp_code, exc.smtp_error)}") from exc
        except smtplib.SMTPResponseException as exc:
            raise TransientFailure(f"smarthost {s.host}:{s.port}: {reason_of(exc.smtp_code, exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TransientFailure(f"smarthost {s.host}:{s.port}: {type(exc).__name__}: {exc}") from exc
        return SmtpConnection(smtp, s.timeout, s.data_timeout)
