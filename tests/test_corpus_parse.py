"""Every real-world mail in ../shared/corpus goes through parse and classify.

Only :class:`QuarantineError` may come out, and only for files without a usable header.
One test that loops (not one test per file) keeps the suite fast; run with ``-s`` to see
the summary: file count, quarantines with their reasons, kinds and time.
"""
from __future__ import annotations

import collections
import logging
import time
import traceback
from pathlib import Path

import pytest

from maild.domain.mail import QuarantineError
from maild.ingest.classify import classify
from maild.ingest.parse import parse

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
# Not mails: metadata, licences, and the body-only snippets meant for the quote stripper.
SKIP_DIRS = {"_meta", "_licenses", "github-email_reply_parser", "crisp-oss-email-reply-parser"}


def corpus_files() -> list[Path]:
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file()
        and p.relative_to(CORPUS).parts[0] not in SKIP_DIRS
        and not p.name.lower().startswith("readme")
    )


def test_corpus_parses_and_classifies() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS} (it lives next to the project, not in it)")
    logging.disable(logging.CRITICAL)  # flufl.bounce and mail-parser log loudly on bad mail
    try:
        files = corpus_files()
        quarantined: list[tuple[str, str]] = []
        crashes: list[str] = []
        kinds: collections.Counter[str] = collections.Counter()
        start = time.perf_counter()
        for path in files:
            name = str(path.relative_to(CORPUS))
            try:
                mail = parse(path.read_bytes())
                kinds[classify(mail, frozenset({"support@support.example.com"}), "maild").kind.value] += 1
            except QuarantineError as exc:
                quarantined.append((name, str(exc)))
            except Exception:
                crashes.append(f"{name}\n{traceback.format_exc(limit=-3)}")
        elapsed = time.perf_counter() - start
    finally:
        logging.disable(logging.NOTSET)

    reasons = collections.Counter(reason for _, reason in quarantined)
    print(f"\ncorpus: {len(files)} files in {elapsed:.1f}s; kinds {dict(kinds)}")
    print(f"quarantined {len(quarantined)}: {dict(reasons)}")
    for name, reason in quarantined:
        print(f"  {name}: {reason}")
    assert not crashes, "\n\n".join(crashes[:5])
    assert len(files) > 1000
    assert len(quarantined) <= len(files) // 50, "more than 2% quarantined"
