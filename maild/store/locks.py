"""PostgreSQL advisory locks: one holder among several nodes, freed when the holder dies.

The scheduler's leadership and each IMAP account (polled by one node at a time) are held
this way (:class:`AdvisoryLock`). :func:`hold_until_commit` takes one for the rest of a
transaction: two nodes' transactions that read, then write, the same count (the automatic
mails to one address) or the same link (an orphan reply and its parent) take turns.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from maild.store.db import Database

log = logging.getLogger("maild.locks")


def key_of(name: str) -> int:
    """A stable signed 64-bit lock key for a name (e.g. ``imap:support``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def hold_until_commit(session: Session, *names: str) -> None:
    """Wait for, and hold until the transaction ends, the lock of each name (in a fixed
    order, so two transactions taking the same names never wait on each other crosswise).
    On SQLite there is one writer at a time already: nothing to do."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({key_of(name) for name in names}):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock held on a connection of its own: the server
    drops it the moment that connection dies (process killed, network gone), so another
    node's next try takes over. ``acquire`` checks the connection each time it is called."""

    def __init__(self, db: Database, key: int, what: str) -> None:
        self.db = db
        self.key = key
        self.what = what
        self.conn: Connection | None = None

    def acquire(self, now: datetime | None = None) -> bool:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - the connection (and with it the lock) is gone
                log.warning("%s: lost the lock's connection; stepping down", self.what)
                self._drop()
        try:
            conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:  # noqa: BLE001 - the database is away; try again next round
            log.warning("%s: database unreachable; cannot try the lock", self.what)
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except Exception:  # noqa: BLE001
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self.conn = conn
        return True

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.invalidate()
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.conn = None

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            except Exception:  # noqa: BLE001
                pass
            self.conn.close()
            self.conn = None
