"""What the SMTP/LMTP listener allows at once, as a real MTA does.

- ``ConnectionGate``: sessions open at once, in all and per client IP; beyond either,
  the new session is greeted with ``421`` and closed.
- ``InflightBudget``: bytes of DATA held in memory across all sessions. A session takes
  its declared ``SIZE`` (or a first slice) when DATA starts and more slices as bytes
  arrive; a DATA that cannot start gets ``452`` (the client retries later), one that
  runs out mid-transfer ``421`` and the connection closes.

Both are used from the listener's event loop thread only; the lock keeps them correct
should that ever change.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
INSUFFICIENT_STORAGE = "452 4.3.1 Insufficient system storage, try again later"
STORAGE_EXHAUSTED = "421 4.3.1 Insufficient system storage, closing connection"
LINE_TOO_LONG = "500 5.5.2 Line too long"

# DATA bytes are reserved in slices of this size (at most the message size limit).
SLICE = 1024 * 1024


class _SmtpLimitsConfig(Protocol):
    max_message_size: int
    max_connections: int
    max_connections_per_ip: int

    @property
    def inflight_budget(self) -> int: ...


@dataclass(frozen=True)
class SessionLimits:
    max_connections: int = 100
    max_connections_per_ip: int = 20
    max_inflight_bytes: int = 4 * 50 * 1024 * 1024

    @classmethod
    def from_config(cls, smtp: _SmtpLimitsConfig) -> SessionLimits:
        return cls(smtp.max_connections, smtp.max_connections_per_ip, smtp.inflight_budget)


class ConnectionGate:
    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def enter(self, ip: str) -> bool:
        """Admit one more session from ``ip``, or say no (the caller answers 421)."""
        with self._lock:
            if sum(self._open.values()) >= self.total or self._open[ip] >= self.per_ip:
                return False
            self._open[ip] += 1
            return True

    def leave(self, ip: str) -> None:
        with self._lock:
            self._open[ip] -= 1
            if self._open[ip] <= 0:
                del self._open[ip]

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._open.values())


class InflightBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


def declared_size(mail_options: list[str]) -> int | None:
    """The ``SIZE=`` a client declared in MAIL FROM (RFC 1870), if any."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None
