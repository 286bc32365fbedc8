"""Whether a ``maild run`` is working a spool.

Every daemon holds a shared ``flock`` on ``<spool>/maild.lock`` for as long as it runs
(several daemons may share one spool); the kernel drops it when the process dies, even
by ``kill -9``, so a stale file never counts. ``maild ingest`` only asks — an exclusive
non-blocking try it lets go of at once — so a pipe delivery can say when its mail waits
for a daemon that is not there.
"""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

LOCK_NAME = "maild.lock"


class DaemonLock:
    """Held by a daemon for its lifetime."""

    def __init__(self, spool_root: Path) -> None:
        self.path = spool_root / LOCK_NAME
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "ab")
        try:
            # Blocking: an ingest holds the exclusive lock only for the instant it asks.
            fcntl.flock(handle, fcntl.LOCK_SH)
        except BaseException:
            handle.close()
            raise
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock
            self._handle = None


def daemon_running(spool_root: Path) -> bool:
    """Whether some live daemon holds the lock of this spool right now."""
    try:
        handle = open(spool_root / LOCK_NAME, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
