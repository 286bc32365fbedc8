"""The SMTP/LMTP listener: accept mail for the helpdesk's addresses, spool it, say 250.

Never an open relay: RCPT is checked against a routing table compiled from the config
(the helpdesk addresses and their ``+`` forms). The 250 after DATA is sent only once the
spool file is fsynced; a failure to spool answers 451 so the MTA retries. Oversize mail
gets 552 from aiosmtpd's ``data_size_limit``. Sessions are bounded as an MTA bounds them
(:mod:`maild.ingest.limits`): connections in all and per IP, command line length, and
the bytes of DATA in memory across sessions.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from maild.ingest.limits import (
    INSUFFICIENT_STORAGE,
    LINE_TOO_LONG,
    SLICE,
    STORAGE_EXHAUSTED,
    TOO_MANY_CONNECTIONS,
    ConnectionGate,
    InflightBudget,
    SessionLimits,
    declared_size,
)
from maild.ingest.envelope import RecipientTable, envelope_trace
from maild.logmask import mask

__all__ = ["Listener", "RecipientTable", "SpoolingHandler", "envelope_trace"]

log = logging.getLogger("maild.smtp")

OK = "250 2.0.0 OK"
RCPT_OK = "250 2.1.5 OK"
UNKNOWN_RECIPIENT = "550 5.1.1 No such mailbox here"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"


class Intake(Protocol):
    def accept(self, raw: bytes, channel: str) -> str:
        """Make the mail durable (fsync spool, or the shared queue); the label the 250 names."""
        ...


class SpoolingHandler:
    def __init__(self, spool: Intake, recipients: RecipientTable, channel: str) -> None:
        self.spool = spool
        self.recipients = recipients
        self.channel = channel
        self.on_accept: Callable[[str], None] = lambda channel: None  # told of each mail spooled (metrics)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.recipients.accepts(address):
            log.info("refused recipient %s from %s", mask(address), session.peer)
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # As an MTA's local delivery does, record the envelope recipients: a Bcc to the
        # control address or to a signed reply address then reaches the pipeline too.
        trace = envelope_trace(envelope.rcpt_tos, envelope.mail_from or "")
        if isinstance(raw, bytearray):
            raw[:0] = trace  # in place: a big mail is not copied once more
        else:
            raw = trace + raw
        replies = len(envelope.rcpt_tos) if isinstance(server, LMTP) else 1
        try:
            loop = asyncio.get_running_loop()
            label = await loop.run_in_executor(None, self.spool.accept, raw, self.channel)
        except Exception:
            log.exception("could not spool a mail from %s", session.peer)
            return "\r\n".join([TEMPORARY_FAILURE] * replies)
        log.info("spooled %s (%d bytes) from %s", label, len(raw), session.peer)
        self.on_accept(self.channel)
        return "\r\n".join([f"{OK} queued as {label}"] * replies)


class Listener:
    """An aiosmtpd Controller running in its own thread."""

    def __init__(self, handler: SpoolingHandler, host: str, port: int, lmtp: bool, max_size: int,
                 limits: SessionLimits | None = None, server_name: str = "localhost") -> None:
        self.lmtp = lmtp
        limits = limits or SessionLimits()
        # The greeting and EHLO name the configured host, and no software or version
        # (aiosmtpd's default is "<fqdn> Python SMTP 1.4.6"): nothing for a scanner to match.
        kwargs: dict[str, Any] = {"data_size_limit": max_size, "decode_data": False, "enable_SMTPUTF8": True,
                                  "ident": "LMTP" if lmtp else "ESMTP"}
        self.gate = ConnectionGate(limits.max_connections, limits.max_connections_per_ip)
        self.budget = InflightBudget(limits.max_inflight_bytes)
        self.controller = _Controller(handler, lmtp=lmtp, gate=self.gate, budget=self.budget, hostname=host,
                                      port=port, server_hostname=server_name, **kwargs)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# RFC 5321 caps lines at 1000 octets, but real mail breaks that (one-line HTML, 200 KB
# Subject headers) and MTAs pass it on; refusing it would bounce customers' mail. This
# applies to DATA only.
LINE_LENGTH_LIMIT = 1024 * 1024
# Command lines: 512 octets (RFC 5321 4.5.3.1.4) plus the extension allowances are
# enforced per command by aiosmtpd (500 and the session goes on); a line past the
# 1,000-octet text line limit is no SMTP command at all: it is refused and the
# connection closed without reading the rest of it into memory.
COMMAND_LINE_LIMIT = 1000


class _Guard:
    """The session's stream reader, as aiosmtpd sees it: stops over-long command lines
    and counts DATA bytes against the listener's in-flight budget."""

    def __init__(self, server: _Limited) -> None:
        self._server = server
        self._reader: asyncio.StreamReader = server._reader
        self.in_data = False
        self.held = 0  # budget bytes this session holds
        self.read_bytes = 0  # DATA bytes read in this transaction

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        try:
            line = await self._reader.readuntil(separator)
        except asyncio.LimitOverrunError:
            if self.in_data:
                raise  # aiosmtpd discards the line and answers after the final dot
            await self._server.refuse(LINE_TOO_LONG, "command line too long")
            raise ConnectionResetError("command line too long") from None
        return await self._count(line)

    async def read(self, n: int = -1) -> bytes:
        return await self._count(await self._reader.read(n))

    async def _count(self, chunk: bytes) -> bytes:
        if self.in_data:
            self.read_bytes += len(chunk)
            while self.read_bytes > self.held:
                if not self._server.budget.take(SLICE):
                    await self._server.refuse(STORAGE_EXHAUSTED, "in-flight DATA budget exhausted")
                    raise ConnectionResetError("in-flight DATA budget exhausted")
                self.held += SLICE
        return chunk


class _Limited(SMTP):
    """Session limits over aiosmtpd's SMTP/LMTP (maild/ingest/limits.py)."""

    line_length_limit = LINE_LENGTH_LIMIT
    gate: ConnectionGate
    budget: InflightBudget
    _guard: _Guard

    async def _handle_client(self) -> None:
        assert self.session is not None
        peer = self.session.peer
        ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if not self.gate.enter(ip):
            await self.refuse(TOO_MANY_CONNECTIONS, "too many connections")
            return
        try:
            self._reader._limit = COMMAND_LINE_LIMIT  # type: ignore[attr-defined]
            self._guard = _Guard(self)
            self._reader = self._guard  # type: ignore[assignment]
            await super()._handle_client()
        finally:
            self.gate.leave(ip)

    async def refuse(self, reply: str, why: str) -> None:
        assert self.session is not None
        log.warning("%s: %s", self.session.peer, why)
        await self.push(reply)
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: Any) -> None:
        # aiosmtpd's own words for a command over its per-command size: the RFC 3463 code.
        await super().push(LINE_TOO_LONG if status == "500 Command line too long" else status)

    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos or arg:
            await super().smtp_DATA(arg)  # aiosmtpd's own 503 / 501 answers
            return
        limit = self.data_size_limit or LINE_LENGTH_LIMIT
        first = min(declared_size(self.envelope.mail_options) or SLICE, limit)
        if not self.budget.take(first):
            log.warning("%s: DATA refused, %d bytes in flight", self.session and self.session.peer,
                        self.budget.used)
            await self.push(INSUFFICIENT_STORAGE)
            # The transaction is refused: a new MAIL may follow at once (aiosmtpd's own
            # reset, which it leaves unannotated).
            self._set_rset_state()  # type: ignore[no-untyped-call]
            return
        guard = self._guard
        guard.held, guard.read_bytes, guard.in_data = first, 0, True
        reader: Any = guard._reader
        reader._limit = LINE_LENGTH_LIMIT
        try:
            await self._data()
        finally:
            reader._limit = COMMAND_LINE_LIMIT
            guard.in_data = False
            self.budget.give(guard.held)
            guard.held = 0


    async def _data(self) -> None:
        """DATA as aiosmtpd reads it (dot-unstuffing, 552 past the size limit, 500 for a
        line past the stream limit, both after the final dot), but into one buffer:
        aiosmtpd keeps a bytearray per line and then joins them, three times a big mail."""
        assert self.envelope is not None
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        buffer = bytearray()
        limit = self.data_size_limit
        size = 0
        error = ""
        partial = False  # the last read ended inside an over-long line
        while self.transport is not None:
            try:
                line: bytes = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                log.info("connection lost during DATA")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as exc:
                error = error or "500 Line too long (see RFC5321 4.5.3.1.6)"
                line = await self._reader.read(exc.consumed)
            if not partial and line == b".\r\n":
                break
            size += len(line)
            if limit and size > limit:
                error = error or "552 Error: Too much mail data"
            if error:
                buffer.clear()  # nothing of a refused mail stays in memory
            else:
                buffer += memoryview(line)[1:] if line.startswith(b".") and not partial else line
            partial = not line.endswith(b"\r\n")
        else:
            return  # the connection is gone
        if error:
            await self.push(error)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = self.envelope.original_content = buffer  # type: ignore[assignment]
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)


class _SMTP(_Limited):
    pass


class _LMTP(_Limited, LMTP):
    pass


class _Controller(Controller):
    def __init__(self, handler: SpoolingHandler, *, lmtp: bool, gate: ConnectionGate, budget: InflightBudget,
                 **kwargs: Any) -> None:
        self._lmtp = lmtp
        self._gate, self._budget = gate, budget
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        cls = _LMTP if self._lmtp else _SMTP
        server = cls(self.handler, **self.SMTP_kwargs)
        server.gate, server.budget = self._gate, self._budget
        return server
