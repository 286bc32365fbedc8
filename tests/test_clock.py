"""maild.clock: the one wall clock and the one doubling backoff every retry uses."""
from __future__ import annotations

from datetime import UTC, timedelta

from maild.clock import Backoff, backoff, utc_now
from maild.config import Retry
from maild.outbound.sender import backoff as outbox_retry


def test_utc_now_is_timezone_aware_utc() -> None:
    assert utc_now().tzinfo is UTC


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(n, 0.5, 5.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff(0, 3.0) == 3.0 and backoff(10, 1.0) == 60.0


def test_backoff_keeps_count_and_resets_after_a_success() -> None:
    delays = Backoff(1.0, 8.0)
    assert [delays.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    delays.reset()
    assert delays.next_delay() == 1.0


def test_the_outbox_retry_schedule_is_the_same_rule_counted_from_the_first_failure() -> None:
    retry = Retry(first_seconds=30, max_seconds=3600)
    assert [outbox_retry(n, retry) for n in (1, 2, 3, 9)] == [timedelta(seconds=s) for s in (30, 60, 120, 3600)]
