"""How many times each mail has made processing fail, on disk so restarts do not reset it.

Keyed by the raw mail's SHA-256, so the count follows the mail whatever channel brought
it (a spool file, a pipe redelivery by the MTA, an IMAP message). One small file per
failing mail, ``<sha256>`` holding ``<count> <last reason>``, written with fsync: the
count must survive the crash that a poison mail may itself cause. A mail that succeeds
or is quarantined has its file removed. The names are listed once at start, so the
common case (a mail that never failed) costs no file-system call.

With ``spool.backend: database`` a mail taken from the shared inbound queue is counted on
its queue row instead (:class:`QueueAttempts`): every node that tries it adds to one count,
so ``spool.max_attempts`` holds for the cluster, not per node.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from maild.store import inbound
from maild.store.db import Database

_DIGEST = re.compile(r"[0-9a-f]{64}")


class Attempts(Protocol):
    """Where a mail's failures are counted (what the processor needs)."""

    def failed(self, digest: str, reason: str) -> int: ...

    def clear(self, digest: str) -> None: ...


class AttemptLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._known = {p.name for p in root.iterdir() if _DIGEST.fullmatch(p.name)}

    def _path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest

    def count(self, digest: str) -> int:
        if digest not in self._known:
            return 0
        try:
            return int(self._path(digest).read_text(encoding="utf-8").split(" ", 1)[0])
        except (FileNotFoundError, ValueError):
            return 0

    def failed(self, digest: str, reason: str) -> int:
        """Record one more failure; return the count including it."""
        count = self.count(digest) + 1
        path = self._path(digest)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(f"{count} {' '.join(reason.split())[:1000]}")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self._known.add(digest)
        return count

    def clear(self, digest: str) -> None:
        if digest in self._known:
            self._known.discard(digest)
            self._path(digest).unlink(missing_ok=True)


class QueueAttempts:
    """Failures of a mail in the shared inbound queue, counted on its row whichever node
    tried it; mail that is not in the queue (the pipe's, IMAP's) on this node's disk."""

    def __init__(self, db: Database, local: AttemptLog) -> None:
        self.db = db
        self.local = local

    def failed(self, digest: str, reason: str) -> int:
        with self.db.write() as session:
            count = inbound.count_failure(session, digest, " ".join(reason.split())[:1000])
        return self.local.failed(digest, reason) if count is None else count

    def clear(self, digest: str) -> None:
        self.local.clear(digest)  # a queue row leaves the queue with its mail
