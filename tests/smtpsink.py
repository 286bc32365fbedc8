"""A real SMTP peer for maild's outbound tests: aiosmtpd's Controller on a loopback port.

It stands in for the smarthost and records every mail it accepted. Behaviour can be
changed while it runs: answer ``451`` (or ``550``) to the next N mails, or hold every
session at RCPT until released (to kill maild between claim and send), refuse some
recipients, answer the final dot late. It counts the sessions it greeted (EHLO) and the
most that were open at once; ``smtputf8=False`` makes it a server without SMTPUTF8.
"""
from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from conftest import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0  # answer the next N mails with fail_code
    fail_code: str = "451 4.3.0 try again later"
    holding: bool = False  # while true, every session waits at RCPT (and is then turned away)
    held: int = 0
    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    data_delay: float = 0.0  # seconds between taking a mail and saying so after the final dot
    sessions: int = 0  # EHLO greetings answered
    open_now: int = 0
    open_most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        if self.holding:
            with self.lock:
                self.held += 1
            while self.holding:
                await _sleep(0.05)
            return "421 4.3.2 shutting down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return self.fail_code
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content),
                                          list(envelope.mail_options)))
        if self.data_delay:  # taken, but the answer is slow (a content scanner at work)
            await _sleep(self.data_delay)
        return "250 2.0.0 queued"


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


class _Counting(SMTP):
    """Counts the sessions open at once (the pool's bound, seen from the server)."""

    def connection_made(self, transport: Any) -> None:
        handler = self.event_handler
        with handler.lock:
            handler.open_now += 1
            handler.open_most = max(handler.open_most, handler.open_now)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        handler = self.event_handler
        with handler.lock:
            handler.open_now -= 1
        super().connection_lost(error)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Counting(self.handler, **self.SMTP_kwargs)


class Sink:
    def __init__(self, port: int | None = None, smtputf8: bool = True) -> None:
        self.port = port or free_port()
        self.handler = SinkHandler()
        self.smtputf8 = smtputf8
        self.controller: Controller | None = None

    def start(self) -> Sink:
        """Answer on ``port`` (again, after ``stop``); a sink already answering stays as it is."""
        if self.controller is not None:
            return self
        self.controller = _Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                      enable_SMTPUTF8=self.smtputf8)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]

    def wait_for(self, count: int, seconds: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return self.received
            time.sleep(0.05)
        raise AssertionError(f"the sink got {len(self.received)} mails, expected {count}")
