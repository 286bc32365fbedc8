"""The durable spool: "accept fast, process later".

A channel writes the raw bytes to ``tmp/``, fsyncs, renames into ``new/`` and fsyncs the
directory; only then does it acknowledge. The spool worker processes ``new/`` in arrival
order and removes a file only after its transaction committed, so a crash at any point
leaves the mail either in ``new/`` (processed again; the dedupe makes that a no-op) or
committed.
"""
from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from maild.loop import Loop

if TYPE_CHECKING:
    import logging
    from datetime import datetime

# `maild ingest` (the MTA's pipe, one process per mail) imports this module for Spool.put:
# what only the worker needs (the clock, the outcome values) is imported where it is used.

_counter = itertools.count()
_clock_lock = threading.Lock()
_last_ns = 0


def _arrival_ns() -> int:
    """Wall-clock nanoseconds, but never smaller than the previous value in this process:
    file names sort in arrival order even when the system clock steps back."""
    global _last_ns
    with _clock_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


class SpoolEntry(NamedTuple):
    path: Path
    channel: str

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.new = root / "new"
        for folder in (self.tmp, self.new):
            folder.mkdir(parents=True, exist_ok=True)
        self.wakeup = threading.Event()

    def put(self, raw: bytes, channel: str) -> SpoolEntry:
        safe_channel = re.sub(r"[^a-z0-9_-]", "_", channel.lower())[:40] or "unknown"
        name = f"{_arrival_ns():020d}-{os.getpid()}-{next(_counter):08d}.{safe_channel}.eml"
        tmp = self.tmp / name
        try:
            with open(tmp, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not also keep half a mail
            raise
        final = self.new / name
        os.rename(tmp, final)
        _fsync_dir(self.new)
        self.wakeup.set()
        return SpoolEntry(final, safe_channel)

    def accept(self, raw: bytes, channel: str) -> str:
        """What the listener calls: spooled and fsynced; the file's name."""
        return self.put(raw, channel).path.stem

    def pending(self) -> list[SpoolEntry]:
        entries = []
        for path in sorted(self.new.glob("*.eml")):
            parts = path.name.split(".")
            entries.append(SpoolEntry(path, parts[1] if len(parts) == 3 else "unknown"))
        return entries

    def done(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)

    def clean_tmp(self) -> int:
        """Remove partial files a dead process left in ``tmp/`` (it never acknowledged
        them); files of a live writer, e.g. another maild on the same spool, stay."""
        removed = 0
        for path in self.tmp.iterdir():
            writer = path.name.split("-", 2)[1] if path.name.count("-") >= 2 else ""
            if writer.isdigit() and (int(writer) == os.getpid() or _alive(int(writer))):
                continue
            path.unlink(missing_ok=True)
            removed += 1
        if removed:
            _log().warning("removed %d partial spool files left by a stopped process", removed)
        return removed


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("maild.spool")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HasStatus(Protocol):
    @property
    def status(self) -> str: ...


class SpoolWorker(Loop):
    """Drains the spool in a thread; a failing batch is retried with backoff, never dropped.

    Mails are committed in batches (one transaction, one fsync for up to ``batch`` mails):
    every one of them was already durable in the spool when it was acknowledged. A mail
    the processor hands back as ``retry`` stays in the spool for the next round (with
    backoff) while the mails after it go on; the processor quarantines it after its
    last attempt.
    """

    thread_name = "spool-worker"

    def __init__(self, spool: Spool, process_batch: Callable[[list[tuple[bytes, str]], datetime], Sequence[HasStatus]],
                 clock: Callable[[], datetime], batch: int = 64, batch_bytes: int = 32 * 1024 * 1024) -> None:
        self.spool = spool
        self.process_batch = process_batch
        self.clock = clock
        self.batch = batch
        self.batch_bytes = batch_bytes
        self.failures = 0
        super().__init__(spool.wakeup)

    def _batches(self) -> Iterator[list[tuple[SpoolEntry, bytes]]]:
        current: list[tuple[SpoolEntry, bytes]] = []
        size = 0
        for entry in self.spool.pending():
            try:
                raw = entry.read()
            except FileNotFoundError:
                continue  # another worker took it
            if current and (len(current) >= self.batch or size + len(raw) > self.batch_bytes):
                yield current
                current, size = [], 0
            current.append((entry, raw))
            size += len(raw)
        if current:
            yield current

    def drain(self) -> int:
        """Process everything pending now; return how many mails were committed."""
        from maild.domain.mail import RETRY

        done = 0
        kept = 0
        for batch in self._batches():
            if self.stopping:
                break
            try:
                outcomes = self.process_batch([(raw, entry.channel) for entry, raw in batch], self.clock())
            except Exception:
                self.failures += 1
                _log().exception("processing %d spooled mails failed; they stay in the spool", len(batch))
                return done
            for (entry, _), outcome in zip(batch, outcomes):
                if outcome.status == RETRY:
                    kept += 1
                    continue
                self.spool.done(entry)
                done += 1
        self.failures = self.failures + 1 if kept else 0
        return done

    def step(self) -> float:
        from maild.clock import backoff

        self.drain()
        return backoff(self.failures, 0.5) if self.failures else 5.0
