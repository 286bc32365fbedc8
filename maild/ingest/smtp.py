"""The SMTP/LMTP listener: accept mail for the helpdesk's addresses, spool it, say 250.

Never an open relay: RCPT is checked against a routing table compiled from the config
(the helpdesk addresses and their ``+`` forms). The 250 after DATA is sent only once the
spool file is fsynced; a failure to spool answers 451 so the MTA retries. Oversize mail
gets 552 from aiosmtpd's ``data_size_limit``.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from maild.ingest.spool import Spool

log = logging.getLogger("maild.smtp")

OK = "250 2.0.0 OK"
RCPT_OK = "250 2.1.5 OK"
UNKNOWN_RECIPIENT = "550 5.1.1 No such mailbox here"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"


class RecipientTable:
    """Which envelope recipients this helpdesk takes, compiled once at start."""

    def __init__(self, addresses: Iterable[str]) -> None:
        patterns = []
        for address in addresses:
            local, _, domain = address.lower().rpartition("@")
            patterns.append(rf"{re.escape(local)}(?:\+[^@\s]+)?@{re.escape(domain)}")
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def accepts(self, address: str) -> bool:
        return bool(self._pattern and self._pattern.fullmatch(address.strip().strip("<>").lower()))


def envelope_trace(recipients: list[str], mail_from: str | None = None) -> bytes:
    """``Return-Path:`` (the envelope sender, ``<>`` when empty) and ``X-Original-To:`` lines.

    Written above the mail's own headers: the first occurrence is what the pipeline reads,
    so a ``Return-Path`` the sender wrote into the mail cannot stand in for the envelope.
    """
    sender = b"" if mail_from is None else b"Return-Path: <" + re.sub(
        r"[\x00-\x20<>]", "", mail_from).encode("utf-8", "replace") + b">\r\n"
    return sender + b"".join(b"X-Original-To: " + r.strip().strip("<>").encode("utf-8", "replace") + b"\r\n"
                             for r in recipients)


class SpoolingHandler:
    def __init__(self, spool: Spool, recipients: RecipientTable, channel: str) -> None:
        self.spool = spool
        self.recipients = recipients
        self.channel = channel

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.recipients.accepts(address):
            log.info("refused recipient %s from %s", address, session.peer)
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # As an MTA's local delivery does, record the envelope recipients: a Bcc to the
        # control address or to a signed reply address then reaches the pipeline too.
        raw = envelope_trace(envelope.rcpt_tos, envelope.mail_from or "") + raw
        replies = len(envelope.rcpt_tos) if isinstance(server, LMTP) else 1
        try:
            loop = asyncio.get_running_loop()
            entry = await loop.run_in_executor(None, self.spool.put, raw, self.channel)
        except Exception:
            log.exception("could not spool a mail from %s", session.peer)
            return "\r\n".join([TEMPORARY_FAILURE] * replies)
        log.info("spooled %s (%d bytes) from %s", entry.path.name, len(raw), session.peer)
        return "\r\n".join([f"{OK} queued as {entry.path.stem}"] * replies)


class Listener:
    """An aiosmtpd Controller running in its own thread."""

    def __init__(self, handler: SpoolingHandler, host: str, port: int, lmtp: bool, max_size: int) -> None:
        self.lmtp = lmtp
        kwargs: dict[str, Any] = {"data_size_limit": max_size, "decode_data": False, "enable_SMTPUTF8": True}
        self.controller = _Controller(handler, hostname=host, port=port, lmtp=lmtp, **kwargs)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# RFC 5321 caps lines at 1000 octets, but real mail breaks that (one-line HTML, 200 KB
# Subject headers) and MTAs pass it on; refusing it would bounce customers' mail.
LINE_LENGTH_LIMIT = 1024 * 1024


class _SMTP(SMTP):
    line_length_limit = LINE_LENGTH_LIMIT


class _LMTP(LMTP):
    line_length_limit = LINE_LENGTH_LIMIT


class _Controller(Controller):
    def __init__(self, handler: SpoolingHandler, *, lmtp: bool, **kwargs: Any) -> None:
        self._lmtp = lmtp
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        cls = _LMTP if self._lmtp else _SMTP
        return cls(self.handler, **self.SMTP_kwargs)

