"""Every real-world mail of ../shared/corpus through the whole pipeline.

No exception may escape, every raw mail must be kept byte for byte, and only mails with
no usable headers at all may be quarantined. Run with ``-s`` to see the summary.
"""
from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from conftest import CORPUS, Env
from maild.store.blobs import sha256

BODY_ONLY = {"github-email_reply_parser", "crisp-oss-email-reply-parser"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    return sorted(
        p for p in CORPUS.rglob("*")
        if p.is_file() and p.parts[len(CORPUS.parts)] not in BODY_ONLY | {"_meta", "_licenses"}
        and not p.name.startswith("README")
    )


def test_whole_corpus_goes_through_the_pipeline(env: Env) -> None:
    files = corpus_files()
    statuses: collections.Counter[str] = collections.Counter()
    quarantined: list[tuple[str, str]] = []
    start = time.perf_counter()
    for path in files:
        raw = path.read_bytes()
        outcome = env.process(raw, channel="pipe")
        statuses[outcome.status] += 1
        if outcome.status == "quarantined":
            quarantined.append((str(path.relative_to(CORPUS)), outcome.reason))
    elapsed = time.perf_counter() - start

    rows = env.raw_rows()
    kept = {row.sha256 for row in rows}
    for path in files[:: max(1, len(files) // 200)]:  # a sample, byte for byte
        raw = path.read_bytes()
        assert sha256(raw) in kept
        assert env.app.blobs.get_raw(sha256(raw)) == raw

    print(f"\ncorpus: {len(files)} files in {elapsed:.1f} s: {dict(statuses)}")
    for name, reason in quarantined:
        print(f"  quarantined {name}: {reason}")
    assert len(files) > 1000
    assert all("no usable headers" in reason or "empty" in reason for _, reason in quarantined), quarantined
    assert len(quarantined) <= len(files) * 0.02
