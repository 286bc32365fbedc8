"""Raw mails and attachments on disk, by content hash, written durably.

``raw/ab/cd/<sha256>.eml.z`` (zlib) and ``att/ab/cd/<sha256>``. A blob is written to a
temporary file and renamed, so a crash leaves either the whole blob or none. Names come
only from hashes: nothing a mail says can choose a path.

Durability is the caller's choice: ``put_*(…, sync=True)`` fsyncs each blob; a batch
writes with ``sync=False`` and then calls ``flush(paths)`` once before it commits rows
that name those blobs — on Linux one ``syncfs`` for the whole batch instead of one fsync
per file, which is what keeps the ingest path fast.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

_counter = itertools.count()


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
            _write(path, zlib.compress(raw, 6), sync)
        return digest

    def get_raw(self, digest: str) -> bytes:
        return zlib.decompress(self.raw_path(digest).read_bytes())

    def put_attachment(self, payload: bytes, sync: bool = True) -> str:
        digest = sha256(payload)
        path = self.attachment_path(digest)
        if not path.exists():
            _write(path, payload, sync)
        return digest

    def get_attachment(self, digest: str) -> bytes:
        return self.attachment_path(digest).read_bytes()

    def flush(self, paths: Iterable[Path]) -> None:
        """Make blobs written with ``sync=False`` durable (and their directories)."""
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


def _write(path: Path, data: bytes, sync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two channels may store the same mail at the same moment.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{next(_counter)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
