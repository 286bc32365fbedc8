"""Time for maild: the one wall clock and the one retry rule.

* :func:`utc_now` is the only place maild reads the wall clock (timezone-aware UTC). The
  composition root hands it (a test hands a fixed clock) to the workers, which read it
  once per unit of work and pass ``now`` down: the stages never read the clock.
* :func:`backoff` is the one exponential backoff: the spool worker's and the senders'
  rounds after a failure, the outbox's retry schedule and the IMAP worker's reconnects
  all double from a base up to a cap. :class:`Backoff` keeps the failure count for a
  worker that retries one thing at a time.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff(failures: int, base: float, cap: float = 60.0) -> float:
    """``base`` doubled per consecutive failure (none: ``base``), at most ``cap`` seconds."""
    return min(cap, base * 2.0 ** max(failures, 0))


class Backoff:
    """Delays for consecutive failures: ``initial``, doubling, capped at ``maximum``;
    :meth:`reset` after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = backoff(self.failures, self.initial, self.maximum)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
