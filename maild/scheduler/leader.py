"""One scheduler among several maild instances on one database.

- PostgreSQL: ``pg_try_advisory_lock`` held on a dedicated connection. The server drops
  the lock the moment that connection dies (process killed, network gone), so a follower's
  next try takes over. The leader checks its connection at every round and steps down
  when it is gone.
- SQLite: a lease row (``scheduler_lease``) renewed at every round; a follower takes it
  once it has expired (the leader died without releasing it).

Either way the jobs themselves are safe against two leaders at once (their marks'
primary key): the lock keeps the work in one place, it does not carry correctness alone.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import insert, select, text, update

from maild.store.db import Database
from maild.store.locks import AdvisoryLock as StoreAdvisoryLock
from maild.store.models import SchedulerLease

log = logging.getLogger("maild.scheduler")
LOCK_KEY = 0x6D61696C64  # "maild", the advisory lock's key
NAME = "scheduler"


class LeaderLock(Protocol):
    def acquire(self, now: datetime) -> bool:
        """Become or stay the leader; whether this instance leads now."""
        ...

    def release(self) -> None: ...


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class AdvisoryLock(StoreAdvisoryLock):
    def __init__(self, db: Database) -> None:
        super().__init__(db, LOCK_KEY, "scheduler")


class LeaseLock:
    def __init__(self, db: Database, lease_seconds: float, holder: str | None = None) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.holder = holder or holder_id()
        self.leading = False

    def acquire(self, now: datetime) -> bool:
        table = SchedulerLease.__table__
        try:
            with self.db.write() as session:
                row = session.execute(select(table).where(table.c.name == NAME)).first()
                if row is None:
                    session.execute(insert(table).values(name=NAME, holder=self.holder, expires_at=now + self.lease))
                elif row.holder == self.holder or row.expires_at <= now:
                    session.execute(update(table).where(table.c.name == NAME).values(
                        holder=self.holder, expires_at=now + self.lease))
                else:
                    self.leading = False
                    return False
        except Exception:  # noqa: BLE001 - e.g. two first inserts at once; try again next round
            log.warning("scheduler: could not take the lease this round", exc_info=True)
            self.leading = False
            return False
        self.leading = True
        return True

    def release(self) -> None:
        if not self.leading:
            return
        table = SchedulerLease.__table__
        try:
            with self.db.write() as session:
                session.execute(update(table).where(table.c.name == NAME, table.c.holder == self.holder).values(
                    expires_at=datetime(1970, 1, 1, tzinfo=timezone.utc)))
        except Exception:  # noqa: BLE001
            pass
        self.leading = False


def lock_for(db: Database, lease_seconds: float) -> LeaderLock:
    return LeaseLock(db, lease_seconds) if db.is_sqlite else AdvisoryLock(db)


def current_leader(db: Database, now: datetime) -> str | None:
    """Who holds the leader lock now, as a line for an admin (None: nobody)."""
    if db.is_sqlite:
        table = SchedulerLease.__table__
        with db.read() as session:
            row = session.execute(select(table).where(table.c.name == NAME)).first()
        if row is None:
            return None
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=timezone.utc)
        return str(row.holder) if expires > now else None
    # A bigint advisory key shows in pg_locks as its high and low 32 bits.
    with db.read() as session:
        row = session.execute(text(
            "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"),
            {"hi": LOCK_KEY >> 32, "lo": LOCK_KEY & 0xFFFFFFFF}).first()
    if row is None:
        return None
    return f"database session {row.pid} from {row.client_addr or 'a local socket'}"
