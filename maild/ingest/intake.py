"""Shared durable intake (``spool.backend: database``): the listener's 250 means "committed
to the inbound queue", which every live node drains.

- :class:`DbIntake` is what the listener hands a mail to: one INSERT committed before the
  answer; when the database cannot take it, the node's own fsync spool does (250 then
  means "on this node's disk") and :meth:`DbIntake.forward` moves the spool into the
  queue once the database is back (the spool worker runs it).
- :class:`QueueWorker` claims queued rows (``FOR UPDATE SKIP LOCKED``; a dead node's
  claims are taken again once it stops beating), runs them through the processor and
  deletes them after the commit. A crash in between re-processes them, which the raw-hash
  and Message-ID dedupe turns into a no-op. A reply whose parent is still in the queue
  (claimed by another node, not yet committed) is put back for a moment, for at most
  ``cluster.reply_wait_seconds`` in all, so it threads onto the parent's ticket. A mail
  that failed before, on any node, or whose node died while processing it, is tried alone
  (the rest of its batch goes on without it); one whose node died with it
  ``spool.max_attempts`` times is quarantined without another try.
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from maild.clock import backoff
from maild.domain.mail import RETRY
from maild.ingest.parse import thread_ids
from maild.ingest.spool import HasStatus, Spool
from maild.loop import Loop
from maild.store import inbound
from maild.store.blobs import sha256
from maild.store.db import Database

log = logging.getLogger("maild.intake")

QUEUED = "queued"
# Smaller than the spool's batches: several nodes' batches touch the same contacts and
# tickets, and the larger a transaction the likelier two of them deadlock.
BATCH = 16
REPLY_RECHECK = timedelta(seconds=0.05)  # how soon a waiting reply looks for its parent again


@dataclass(frozen=True)
class Forwarded:
    """A spooled mail now in the shared queue (what the spool worker's round reports)."""

    status: str = QUEUED


class DbIntake:
    """Accept a mail into the shared queue, or into the local spool while the database is away."""

    def __init__(self, db: Database, spool: Spool, node_id: str, clock: Callable[[], datetime],
                 wakeup: threading.Event) -> None:
        self.db = db
        self.spool = spool
        self.node_id = node_id
        self.clock = clock
        self.wakeup = wakeup  # the local queue worker's: mail this node took is taken at once

    def accept(self, raw: bytes, channel: str) -> str:
        """Make the mail durable; the label the 250 names. Raises only when neither the
        database nor the local disk could keep it (the listener answers 451)."""
        try:
            with self.db.write() as session:
                row_id = self._insert(session, raw, channel, self.clock())
        except Exception as exc:  # noqa: BLE001 - any database failure: the local spool keeps it
            entry = self.spool.put(raw, channel)
            log.warning("database unreachable (%s): %s kept in this node's spool until it returns",
                        type(exc).__name__, entry.path.name)
            return entry.path.stem
        self.wakeup.set()
        return f"q{row_id}"

    def forward(self, items: list[tuple[bytes, str]], now: datetime) -> Sequence[HasStatus]:
        """Move spooled mails into the shared queue in one transaction (raises: they stay)."""
        with self.db.write() as session:
            for raw, channel in items:
                self._insert(session, raw, channel, now)
        log.info("moved %d mails from this node's spool into the shared queue", len(items))
        self.wakeup.set()
        return [Forwarded()] * len(items)

    def _insert(self, session: Session, raw: bytes, channel: str, now: datetime) -> int:
        try:
            message_id, parents = thread_ids(raw)
        except Exception:  # noqa: BLE001 - headers the processor will judge; nothing to wait on
            message_id, parents = None, ()
        return inbound.enqueue(session, raw, channel, sha256(raw), message_id, parents, self.node_id, now)


class GiveUp(Protocol):
    """Quarantine a mail that failed ``count`` times, without processing it again."""

    def __call__(self, raw: bytes, channel: str, now: datetime, count: int, reason: str) -> object: ...


def _keep(raw: bytes, channel: str, now: datetime, count: int, reason: str) -> object:
    raise RuntimeError(f"no quarantine for a mail that failed {count} times: {reason}")


class QueueWorker(Loop):
    """Drains the shared inbound queue on this node, batch by batch."""

    thread_name = "queue-worker"

    def __init__(self, db: Database, process_batch: Callable[[list[tuple[bytes, str]], datetime], Sequence[HasStatus]],
                 clock: Callable[[], datetime], node_id: str, node_timeout: float, reply_wait: float,
                 wakeup: threading.Event | None = None, batch: int = BATCH, idle_poll: float = 0.2,
                 max_attempts: int = 5, give_up: GiveUp | None = None) -> None:
        super().__init__(wakeup)
        self.max_attempts = max_attempts
        self.give_up = give_up or _keep
        self.db = db
        self.process_batch = process_batch
        self.clock = clock
        self.node_id = node_id
        self.node_timeout = timedelta(seconds=node_timeout)
        self.reply_wait = timedelta(seconds=reply_wait)
        self.batch = batch
        self.idle_poll = idle_poll
        self.failures = 0
        self.claimed = 0  # rows this node holds now (the heartbeat reports it)
        self._rounds = itertools.count()
        self._leftover = True  # a previous process with this id cannot exist, but a failed round can

    def step(self) -> float:
        try:
            taken = self.drain_once()
        except Exception:
            self.failures += 1
            self._leftover = True
            log.exception("the shared inbound queue failed; its mails stay queued")
            return backoff(self.failures, 0.5)
        self.failures = 0
        return 0 if taken else self.idle_poll

    def drain_once(self) -> int:
        """Claim one batch, process it, and take it off the queue; how many mails were taken."""
        now = self.clock()
        token = f"{self.node_id}-{next(self._rounds)}"
        with self.db.write() as session:
            if self._leftover:
                inbound.release_own(session, self.node_id)
                self._leftover = False
            rows = inbound.claim(session, token, now, now - self.node_timeout, self.batch)
            claimed = {row.id for row in rows}
            keys = {key for row in rows for key in row.parents.split()}
            waiting_for = inbound.queued_parents(session, keys, claimed)
            wait = []
            for row in rows:  # oldest first: a reply to a mail that waits, waits too
                waited = now - (row.waiting_since or now)  # behind a backlog a reply may be old, not yet waiting
                if waiting_for.intersection(row.parents.split()) and waited < self.reply_wait:
                    wait.append(row.id)
                    if row.message_id_hash:
                        waiting_for.add(row.message_id_hash)
            inbound.release(session, wait, token, now + REPLY_RECHECK, waiting=now)
            ready = [row for row in rows if row.id not in wait]
            suspect = next((row for row in ready if row.failures), None)
            if suspect is not None:  # it failed before (or its node died with it): tried alone
                inbound.release(session, [row.id for row in ready if row is not suspect], token, now)
                ready = [suspect]
            work = [(row.id, row.raw, row.channel) for row in ready]
            spent = suspect is not None and suspect.failures >= self.max_attempts
        if spent and suspect is not None:
            self.give_up(suspect.raw, suspect.channel, now, suspect.failures, suspect.last_error)
            with self.db.write() as session:
                inbound.finish(session, [suspect.id], token)
            return 1
        if not work:
            return 0
        self.claimed = len(work)
        self._leftover = True  # until the round is taken off the queue
        outcomes = self.process_batch([(raw, channel) for _id, raw, channel in work], self.clock())
        done = [row_id for (row_id, _raw, _channel), outcome in zip(work, outcomes) if outcome.status != RETRY]
        retry = [row_id for (row_id, _raw, _channel), outcome in zip(work, outcomes) if outcome.status == RETRY]
        with self.db.write() as session:
            inbound.finish(session, done, token)
            inbound.release(session, retry, token, self.clock() + timedelta(seconds=backoff(1, 0.5)))
        self._leftover = False
        self.claimed = 0
        return len(done)
