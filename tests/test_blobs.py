"""Content-addressed storage of raw mails and attachments."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

import maild.store.blobs as blobs
from maild.store.blobs import BlobStore, sha256


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_unsynced_writes_then_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool) -> None:
    if not syncfs:
        monkeypatch.setattr(blobs, "_syncfs", None)
    store = BlobStore(tmp_path)
    digest = store.put_raw(b"From: a@b.example\r\n\r\nbody\r\n", sync=False)
    att = store.put_attachment(b"%PDF-1.4 ...", sync=False)
    store.flush([("raw", digest), ("att", att)])
    assert store.get_raw(digest) == b"From: a@b.example\r\n\r\nbody\r\n"
    assert store.get_attachment(att) == b"%PDF-1.4 ..."
    assert not list(tmp_path.rglob("*.tmp"))


def test_paths_come_from_hashes_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put_attachment(b"../../etc/passwd")
    assert store.attachment_path(digest).resolve().is_relative_to(tmp_path.resolve())
    assert digest == sha256(b"../../etc/passwd")


def test_same_blob_from_many_threads_at_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    raw = b"x" * 200_000
    errors: list[BaseException] = []

    def put() -> None:
        try:
            store.put_raw(raw)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get_raw(sha256(raw)) == raw
