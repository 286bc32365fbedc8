"""Sessions to the smarthost, reused across mails and rounds, and bounded in number.

As Postfix's connection cache does: due mail goes over a session that is already open
(RSET between mails, see :mod:`maild.outbound.transport`), at most ``size`` sessions are
open at once, a session carries at most ``max_messages`` mails (some servers limit mails
per session) and one idle longer than ``idle_seconds`` is closed (servers drop idle
clients; an idle one is checked with NOOP before a round uses it again).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Session(Protocol):
    broken: bool
    sent: int

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> dict[str, str]: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class Transport(Protocol):
    def connect(self) -> Session: ...


class Pool:
    """``acquire`` a session (an idle one, else a new one; waits while ``size`` are busy), ``release`` it."""

    def __init__(self, transport: Transport, size: int = 1, idle_seconds: float = 10.0, max_messages: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.transport = transport
        self.size = size
        self.idle_seconds = idle_seconds
        self.max_messages = max_messages
        self.clock = clock
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[tuple[float, Session]] = []  # (released at, session)
        self._lock = threading.Lock()
        self.opened = 0  # sessions opened so far (what reuse saves is visible here)

    def acquire(self) -> Session:
        """A usable session; the transport's TransientFailure when none can be opened."""
        self._slots.acquire()
        try:
            while True:
                with self._lock:
                    idle = self._idle.pop() if self._idle else None
                if idle is None:
                    break
                _, session = idle
                if session.alive():  # one NOOP per round, not per mail
                    return session
                session.close()
            session = self.transport.connect()
            with self._lock:
                self.opened += 1
            return session
        except BaseException:
            self._slots.release()
            raise

    def release(self, session: Session) -> None:
        """Give a session back: kept for the next mail unless broken or used up."""
        try:
            if session.broken or session.sent >= self.max_messages:
                session.close()
            else:
                with self._lock:
                    self._idle.append((self.clock(), session))
        finally:
            self._slots.release()

    def close_idle(self) -> None:
        """Close sessions idle longer than ``idle_seconds`` (called between rounds)."""
        now = self.clock()
        with self._lock:
            old = [s for at, s in self._idle if now - at > self.idle_seconds]
            self._idle = [(at, s) for at, s in self._idle if now - at <= self.idle_seconds]
        for session in old:
            session.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, session in idle:
            session.close()
