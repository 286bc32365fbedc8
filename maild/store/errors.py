"""Whose fault is a database error: the database's (retry later) or this one mail's?

``classify_db_error`` decides, from the exception alone, whether processing should be
retried as a whole (``TRANSIENT``: the connection dropped, a lock or busy timeout, a
serialization failure or deadlock, too many connections, a full disk) or whether the mail
being processed caused it (``MAIL``: a data exception, a program limit such as an index
entry too large, a constraint that keeps failing, or any other error). A transient
error retried forever only delays mail; a mail error retried forever stops every mail
behind it, so anything not known to be transient counts as the mail's.

PostgreSQL errors are read by SQLSTATE class (``exc.orig.sqlstate``), SQLite errors by
their result code (``sqlite_errorcode``), never by message text.
"""
from __future__ import annotations

import enum
import sqlite3

from sqlalchemy import exc as sa_exc


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"  # retry the whole unit of work later
    MAIL = "mail"  # quarantine this mail, let the others through


# SQLSTATE classes (first two characters) and codes that say "the database, not the data".
_TRANSIENT_CLASSES = frozenset({
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: shutdown, cannot connect now, query canceled
    "58",  # system error (I/O)
})
_TRANSIENT_CODES = frozenset({
    "55P03",  # lock_not_available (lock_timeout, NOWAIT)
    "55006",  # object_in_use
    "25P03",  # idle_in_transaction_session_timeout
    "HV00R",  # fdw unable to establish connection
})

# SQLite primary result codes that say "the database file, not the data".
_SQLITE_TRANSIENT = frozenset({
    5,  # SQLITE_BUSY ("database is locked")
    6,  # SQLITE_LOCKED
    7,  # SQLITE_NOMEM
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
})


def classify_db_error(exc: BaseException) -> ErrorClass:
    """TRANSIENT when the database is unwell; MAIL for everything else."""
    orig: BaseException | None
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return ErrorClass.TRANSIENT
        orig = exc.orig
    else:
        orig = exc
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return ErrorClass.TRANSIENT  # pool checkout: the server is gone or the pool is exhausted
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_CODES:
            return ErrorClass.TRANSIENT
        return ErrorClass.MAIL
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_TRANSIENT:
            return ErrorClass.TRANSIENT
        return ErrorClass.MAIL
    if _is_connection_failure(orig):
        return ErrorClass.TRANSIENT
    return ErrorClass.MAIL


def _is_connection_failure(orig: BaseException | None) -> bool:
    """A driver error raised with no SQLSTATE because no server answered (psycopg's
    ``OperationalError: connection failed``, ``InterfaceError``, a closed socket)."""
    if orig is None:
        return False
    if isinstance(orig, (ConnectionError, TimeoutError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        return False
    return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) and not getattr(orig, "sqlstate", None)
