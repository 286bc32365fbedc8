"""Raw mails and attachments by content hash, written durably: on disk or in PostgreSQL.

Every reader and writer goes through :class:`Blobs` (:func:`open_blobs` picks the backend
from ``storage.backend``); nothing else knows where a blob lives. A blob is named by a
:data:`BlobRef`, ``(kind, sha256)`` with kind ``raw`` or ``att``.

Filesystem (:class:`BlobStore`, the default):

``raw/ab/cd/<sha256>.eml.z`` (zlib) and ``att/ab/cd/<sha256>``. A blob is written to a
temporary file and renamed, so a crash leaves either the whole blob or none. Names come
only from hashes: nothing a mail says can choose a path.

Durability is the caller's choice: ``put_*(…, sync=True)`` fsyncs each blob; a batch
writes with ``sync=False`` and then calls ``flush(paths)`` once before it commits rows
that name those blobs — on Linux one ``syncfs`` for the whole batch instead of one fsync
per file, which is what keeps the ingest path fast.

Database (:class:`DbBlobStore`, ``storage.backend: database``): the ``blobs`` table,
zlib-compressed, one row per content (deduplicated), so every node reads every blob.
Unsynced writes wait in memory and are inserted in one transaction at ``flush``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from maild.config import Config
from maild.store.db import Database
from maild.store.models import BlobRow

_counter = itertools.count()
RAW, ATTACHMENT = "raw", "att"
BlobRef = tuple[str, str]  # (kind, sha256)


class BlobMissing(FileNotFoundError):
    """No blob of that kind and digest is stored."""


class Blobs(Protocol):
    def put_raw(self, raw: bytes, digest: str | None = None, sync: bool = True) -> str: ...

    def get_raw(self, digest: str) -> bytes: ...

    def put_attachment(self, payload: bytes, sync: bool = True) -> str: ...

    def get_attachment(self, digest: str) -> bytes: ...

    def flush(self, refs: Iterable[BlobRef]) -> None:
        """Make blobs written with ``sync=False`` durable before rows naming them commit."""
        ...

    def delete(self, refs: Iterable[BlobRef]) -> None:
        """Remove blobs no row names any more (erasure); a missing one is no error."""
        ...


def open_blobs(config: Config, db: Database) -> Blobs:
    if config.storage.backend == "database":
        return DbBlobStore(db)
    return BlobStore(config.path(config.storage.path))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_syncfs() -> object | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, kind: str, digest: str, suffix: str) -> Path:
        return self.root / kind / digest[:2] / digest[2:4] / f"{digest}{suffix}"

    def raw_path(self, digest: str) -> Path:
        return self._path("raw", digest, ".eml.z")

    def attachment_path(self, digest: str) -> Path:
        return self._path("att", digest, "")

    def put_raw(self, raw: bytes, digest: str | None = None, sync: bool = True) -> str:
        digest = digest or sha256(raw)
        path = self.raw_path(digest)
        if not path.exists():
            _write(path, _compressed(raw), sync)
        return digest

    def get_raw(self, digest: str) -> bytes:
        return zlib.decompress(_read(self.raw_path(digest)))

    def put_attachment(self, payload: bytes, sync: bool = True) -> str:
        digest = sha256(payload)
        path = self.attachment_path(digest)
        if not path.exists():
            _write(path, payload, sync)
        return digest

    def get_attachment(self, digest: str) -> bytes:
        return _read(self.attachment_path(digest))

    def path_of(self, ref: BlobRef) -> Path:
        kind, digest = ref
        return self.raw_path(digest) if kind == RAW else self.attachment_path(digest)

    def delete(self, refs: Iterable[BlobRef]) -> None:
        for ref in refs:
            self.path_of(ref).unlink(missing_ok=True)

    def flush(self, refs: Iterable[BlobRef]) -> None:
        """Make blobs written with ``sync=False`` durable (and their directories)."""
        paths = [self.path_of(ref) for ref in refs]
        if _syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if _syncfs(fd) == 0:  # type: ignore[operator]
                    return
            finally:
                os.close(fd)
        for path in set(paths):
            for target in (path, path.parent):
                fd = os.open(target, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)


class DbBlobStore:
    """Blobs in the ``blobs`` table of the shared PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[BlobRef, tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def put_raw(self, raw: bytes, digest: str | None = None, sync: bool = True) -> str:
        digest = digest or sha256(raw)
        self._put((RAW, digest), raw, sync)
        return digest

    def put_attachment(self, payload: bytes, sync: bool = True) -> str:
        digest = sha256(payload)
        self._put((ATTACHMENT, digest), payload, sync)
        return digest

    def get_raw(self, digest: str) -> bytes:
        return self._get((RAW, digest))

    def get_attachment(self, digest: str) -> bytes:
        return self._get((ATTACHMENT, digest))

    def _put(self, ref: BlobRef, data: bytes, sync: bool) -> None:
        with self._lock:
            self._pending[ref] = (len(data), zlib.compress(data, 6))
        if sync:
            self.flush([ref])

    def _get(self, ref: BlobRef) -> bytes:
        with self._lock:
            pending = self._pending.get(ref)
        if pending is not None:
            return zlib.decompress(pending[1])
        with self.db.read() as session:
            data = session.scalar(select(BlobRow.data).where(BlobRow.kind == ref[0], BlobRow.sha256 == ref[1]))
        if data is None:
            raise BlobMissing(2, "no such blob in the database", f"{ref[0]}/{ref[1]}")
        return zlib.decompress(data)

    def flush(self, refs: Iterable[BlobRef]) -> None:
        with self._lock:
            rows = [{"kind": ref[0], "sha256": ref[1], "size": size, "data": data}
                    for ref in dict.fromkeys(refs) if (found := self._pending.get(ref)) is not None
                    for size, data in [found]]
        if not rows:
            return
        now = datetime.now(timezone.utc)
        with self.db.write() as session:
            session.execute(pg_insert(BlobRow).on_conflict_do_nothing(), [{**row, "created_at": now} for row in rows])
        with self._lock:
            for row in rows:
                self._pending.pop((str(row["kind"]), str(row["sha256"])), None)

    def delete(self, refs: Iterable[BlobRef]) -> None:
        refs = list(refs)
        with self._lock:
            for ref in refs:
                self._pending.pop(ref, None)
        with self.db.write() as session:
            for kind, digest in refs:
                session.execute(delete(BlobRow).where(BlobRow.kind == kind, BlobRow.sha256 == digest))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise BlobMissing(exc.errno, exc.strerror, str(path)) from exc


_CHUNK = 1 << 20


def _compressed(data: bytes) -> Iterator[bytes]:
    """zlib (level 6) in slices: ``zlib.compress`` of a big mail holds about twice its
    size while it grows its output buffer; the file is written as the slices come."""
    packer = zlib.compressobj(6)
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield packer.compress(view[start:start + _CHUNK])
    yield packer.flush()


def _write(path: Path, data: bytes | Iterable[bytes], sync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two channels may store the same mail at the same moment.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{next(_counter)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                handle.writelines(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
