"""Raw mails and attachments on disk, by content hash, written durably.

``raw/ab/cd/<sha256>.eml.z`` (zlib) and ``att/ab/cd/<sha256>``. A blob is written to a
temporary file, fsynced and renamed, so a crash leaves either the whole blob or none.
Names come only from hashes: nothing a mail says can choose a path.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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

    def put_raw(self, raw: bytes, digest: str | None = None) -> str:
        digest = digest or sha256(raw)
        path = self.raw_path(digest)
        if not path.exists():
            _write_durably(path, zlib.compress(raw, 6))
        return digest

    def get_raw(self, digest: str) -> bytes:
        return zlib.decompress(self.raw_path(digest).read_bytes())

    def put_attachment(self, payload: bytes) -> str:
        digest = sha256(payload)
        path = self.attachment_path(digest)
        if not path.exists():
            _write_durably(path, payload)
        return digest

    def get_attachment(self, digest: str) -> bytes:
        return self.attachment_path(digest).read_bytes()

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two channels may store the same mail at the same moment.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
