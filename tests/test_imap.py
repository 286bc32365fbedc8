"""IMAP ingest: config model, pure helpers, and ImapWorker against a real Dovecot.

The processor here is a fake that records raw mails and dedupes by Message-ID, like the
real one does, so these tests depend only on the processor contract in docs/DESIGN.md.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from daemons import wait_for
from maild.ingest.imap import (
    IDLE_TICK_SECONDS,
    Backoff,
    ImapWorker,
    ProcessingDeferred,
    message_id_of,
    server_folder_name,
    start_workers,
    stop_workers,
)
from maild.ingest.imap_config import ImapAccount, PasswordUnavailable
from tests.dovecot import DovecotServer, free_port, running_dovecot

SUPPORT = "support@example.com"
SALES = "sales@example.com"
PROCESSED = "maild.processed"  # "maild/processed" as Dovecot's Maildir++ names it
FAILED = "maild.failed"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# -- fakes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeOutcome:
    status: str
    ticket_id: int | None


@dataclass
class FakeProcessor:
    """Thread-safe; one "ticket" per Message-ID; can quarantine or fail on demand."""

    quarantine: Callable[[bytes], bool] = lambda raw: b"QUARANTINE" in raw
    failures_left: int = 0
    records: list[tuple[bytes, str, datetime]] = field(default_factory=list)
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (channel, status)
    _keys: dict[bytes, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def process(self, raw: bytes, channel: str, now: datetime) -> FakeOutcome:
        with self._lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                raise ConnectionError("database is down")
            key = (message_id_of(raw) or "").encode() or hashlib.sha256(raw).digest()
            if key in self._keys:
                outcome = FakeOutcome("duplicate", self._keys[key])
            else:
                self.records.append((raw, channel, now))
                ticket = len(self.records)
                self._keys[key] = ticket
                status = "quarantined" if self.quarantine(raw) else "created"
                outcome = FakeOutcome(status, None if status == "quarantined" else ticket)
            self.outcomes.append((channel, outcome.status))
            return outcome

    @property
    def raws(self) -> list[bytes]:
        with self._lock:
            return [raw for raw, _channel, _now in self.records]


class MemoryCheckpoints:
    """In-memory CheckpointStore."""

    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def load(self, account: str, folder: str) -> tuple[int, int] | None:
        with self._lock:
            return self.saved.get((account, folder))

    def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self._lock:
            self.saved[(account, folder)] = (uidvalidity, last_uid)


# -- helpers -----------------------------------------------------------------------------
def mail(n: int | str, *, to: str = SUPPORT, body: str = "Hello", subject: str = "") -> bytes:
    return (
        f"From: Customer <customer@example.org>\r\nTo: {to}\r\n"
        f"Subject: {subject or f'Question {n}'}\r\nMessage-ID: <q{n}@example.org>\r\n"
        f"Date: Wed, 01 May 2024 12:00:00 +0000\r\n\r\n{body} {n}\r\n"
    ).encode()


def account(server: DovecotServer, user: str = SUPPORT, **overrides: object) -> ImapAccount:
    fields: dict[str, object] = {
        "name": user.split("@")[0], "host": server.host, "port": server.port,
        "ssl": False, "username": user, "password": server.password, "poll_seconds": 5,
    }
    fields.update(overrides)
    return ImapAccount.model_validate(fields)


def worker_for(acc: ImapAccount, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
               idle_tick: float = 0.2) -> ImapWorker:
    """A worker with a fixed clock, a fast backoff and a short IDLE tick (quick teardown)."""
    return ImapWorker(acc, processor, checkpoints, clock=lambda: NOW,
                      backoff=Backoff(0.05, 0.5), idle_tick=idle_tick)


@pytest.fixture
def processor() -> FakeProcessor:
    return FakeProcessor()


@pytest.fixture
def checkpoints() -> MemoryCheckpoints:
    return MemoryCheckpoints()


@pytest.fixture
def running() -> Iterator[list[ImapWorker]]:
    """Workers a test starts; stopped even when the test fails."""
    workers: list[ImapWorker] = []
    yield workers
    stop_workers(workers, timeout=10)


# -- config and pure helpers -------------------------------------------------------------
def test_account_defaults_and_password_sources(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    acc = ImapAccount.model_validate(  # as YAML gives it: the password is a plain string
        {"name": "support", "host": "imap.example.com", "username": "u", "password": "hunter2"})
    assert (acc.folder, acc.processed_folder, acc.failed_folder) == (
        "INBOX", "maild/processed", "maild/failed")
    assert (acc.ssl, acc.port, acc.poll_seconds) == (True, 993, 60)
    plain = {"name": "a", "host": "h", "username": "u", "password": "p", "ssl": False}
    assert ImapAccount.model_validate(plain).port == 143
    assert ImapAccount.model_validate({**plain, "starttls": True, "port": 1143}).port == 1143
    assert "hunter2" not in repr(acc) and acc.resolve_password() == "hunter2"

    monkeypatch.setenv("MAILD_TEST_IMAP_PW", "from-env")
    assert ImapAccount(name="a", host="h", username="u", password_env="MAILD_TEST_IMAP_PW",
                       ssl=False, starttls=True).resolve_password() == "from-env"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert ImapAccount(name="a", host="h", username="u",
                       password_file=secret).resolve_password() == "from-file"
    with pytest.raises(PasswordUnavailable, match="MAILD_TEST_UNSET"):
        ImapAccount(name="a", host="h", username="u",
                    password_env="MAILD_TEST_UNSET").resolve_password()


@pytest.mark.parametrize("fields, message", [
    ({}, "exactly one of password"),
    ({"password": "p", "password_env": "X"}, "exactly one of password"),
    ({"password": "p", "ssl": True, "starttls": True}, "exclusive"),
    ({"password": "p", "processed_folder": "inbox"}, "must differ"),
    ({"password": "p", "pasword": "typo"}, "pasword"),
    ({"password": "p", "poll_seconds": 0}, "poll_seconds"),
])
def test_account_rejects(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ImapAccount.model_validate({"name": "a", "host": "h", "username": "u", **fields})


@pytest.mark.parametrize("path, prefix, delimiter, expected", [
    ("maild/processed", "", ".", "maild.processed"),
    ("maild/processed", "", "/", "maild/processed"),
    ("maild/processed", "INBOX.", ".", "INBOX.maild.processed"),
    ("INBOX/maild/failed", "INBOX.", ".", "INBOX.maild.failed"),
    ("inbox", "INBOX.", ".", "INBOX"),
    ("Helpdesk", "", None, "Helpdesk"),
])
def test_server_folder_name(path: str, prefix: str, delimiter: str | None,
                            expected: str) -> None:
    assert server_folder_name(path, prefix, delimiter) == expected


def test_backoff_doubles_to_cap_and_resets() -> None:
    backoff = Backoff(1, 60)
    assert [backoff.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_message_id_of_reads_headers_only() -> None:
    assert message_id_of(b"Subject: x\r\nMessage-Id:\r\n <a@b>\r\n\r\nx") == "<a@b>"
    assert message_id_of(b"Subject: x\r\n\r\nMessage-ID: <body@b>\r\n") is None


# -- against Dovecot ---------------------------------------------------------------------
def test_mail_before_and_during_run_is_ingested_then_moved(
    dovecot: DovecotServer, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
    running: list[ImapWorker], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="maild.ingest.imap")
    before = [mail(1), mail(2)]
    uids = [dovecot.append(SUPPORT, raw) for raw in before]
    worker = worker_for(account(dovecot, poll_seconds=600), processor, checkpoints)
    running.append(worker)
    worker.start()
    wait_for(lambda: len(processor.records) == 2, what="the two waiting mails")

    uids.append(dovecot.append(SUPPORT, mail(3)))  # arrives while the worker IDLEs (poll is 600 s)
    wait_for(lambda: len(processor.records) == 3, what="the mail sent during IDLE")
    wait_for(lambda: len(dovecot.folder_uids(SUPPORT, PROCESSED)) == 3, what="moves")

    assert processor.raws == [*before, mail(3)]
    assert {(channel, now) for _raw, channel, now in processor.records} == {("imap:support", NOW)}
    assert dovecot.folder_uids(SUPPORT) == []
    moved = dovecot.folder_messages(SUPPORT, PROCESSED)
    assert not any(b"\\Seen" in flags for _raw, flags in moved.values()), "maild set \\Seen"
    assert f"uid {uids[0]} <q1@example.org>" in caplog.text
    assert "created ticket 1" in caplog.text
    assert checkpoints.saved[("support", "INBOX")][1] == uids[-1]


def test_seen_mail_is_still_ingested(dovecot: DovecotServer, processor: FakeProcessor,
                                     checkpoints: MemoryCheckpoints) -> None:
    dovecot.append(SUPPORT, mail(1), flags=[b"\\Seen"])
    worker = worker_for(account(dovecot), processor, checkpoints)
    try:
        assert worker.run_once() == 1
        assert worker.run_once() == 0
    finally:
        worker.close()
    assert processor.raws == [mail(1)]
    [(_raw, flags)] = dovecot.folder_messages(SUPPORT, PROCESSED).values()
    assert b"\\Seen" in flags


def test_quarantined_mail_goes_to_failed_folder(dovecot: DovecotServer,
                                                processor: FakeProcessor,
                                                checkpoints: MemoryCheckpoints) -> None:
    dovecot.append(SUPPORT, mail(1, body="QUARANTINE me"))
    dovecot.append(SUPPORT, mail(2))
    worker = worker_for(account(dovecot), processor, checkpoints)
    try:
        assert worker.run_once() == 2
    finally:
        worker.close()
    assert [raw for raw, _f in dovecot.folder_messages(SUPPORT, FAILED).values()] == [
        mail(1, body="QUARANTINE me")]
    assert [raw for raw, _f in dovecot.folder_messages(SUPPORT, PROCESSED).values()] == [mail(2)]
    assert dovecot.folder_uids(SUPPORT) == []


def test_processor_failure_leaves_mail_and_retries(dovecot: DovecotServer,
                                                   checkpoints: MemoryCheckpoints) -> None:
    processor = FakeProcessor(failures_left=1)
    uids = [dovecot.append(SUPPORT, mail(1)), dovecot.append(SUPPORT, mail(2))]
    worker = worker_for(account(dovecot), processor, checkpoints)
    try:
        with pytest.raises(ProcessingDeferred) as raised:
            worker.run_once()
        assert (raised.value.uid, raised.value.message_id) == (uids[0], "<q1@example.org>")
        assert dovecot.folder_uids(SUPPORT) == uids  # nothing moved, order kept
        assert checkpoints.load("support", "INBOX") is None
        assert worker.run_once() == 2  # same connection, next pass
    finally:
        worker.close()
    assert processor.raws == [mail(1), mail(2)]
    assert len(dovecot.folder_uids(SUPPORT, PROCESSED)) == 2


def test_worker_thread_backs_off_and_retries_after_processor_failure(
    dovecot: DovecotServer, checkpoints: MemoryCheckpoints, running: list[ImapWorker],
) -> None:
    processor = FakeProcessor(failures_left=3)
    dovecot.append(SUPPORT, mail(1))
    worker = worker_for(account(dovecot, poll_seconds=600), processor, checkpoints)
    running.append(worker)
    worker.start()
    wait_for(lambda: len(processor.records) == 1, what="retry after 3 failures")
    wait_for(lambda: dovecot.folder_uids(SUPPORT) == [], what="move after retry")


def test_reconnects_after_server_restart(dovecot: DovecotServer, processor: FakeProcessor,
                                         checkpoints: MemoryCheckpoints,
                                         running: list[ImapWorker], caplog: pytest.LogCaptureFixture) -> None:
    worker = worker_for(account(dovecot, poll_seconds=600), processor, checkpoints)
    running.append(worker)
    worker.start()
    dovecot.append(SUPPORT, mail(1))
    wait_for(lambda: len(processor.records) == 1, what="first mail")

    dovecot.stop()  # drops the IDLE connection; reconnects are refused for a while
    wait_for(lambda: "reconnecting in" in caplog.text, what="the dropped connection noticed")
    dovecot.start()
    dovecot.append(SUPPORT, mail(2))
    dovecot.append(SUPPORT, mail(3))
    wait_for(lambda: len(processor.records) == 3, what="mail after the restart")
    wait_for(lambda: dovecot.folder_uids(SUPPORT) == [], what="moves after the restart")
    assert processor.raws == [mail(1), mail(2), mail(3)]
    assert len(dovecot.folder_uids(SUPPORT, PROCESSED)) == 3
    assert worker.running


def test_uidvalidity_change_reoffers_everything_without_duplicates(
    dovecot: DovecotServer, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
) -> None:
    # Mail left in place: only the checkpoint keeps it from being read twice.
    acc = account(dovecot, folder="Helpdesk", processed_folder=None)
    for n in (1, 2, 3):
        dovecot.append(SUPPORT, mail(n), folder="Helpdesk")
    worker = worker_for(acc, processor, checkpoints)
    try:
        assert worker.run_once() == 3
        assert worker.run_once() == 0
        before = dovecot.uidvalidity(SUPPORT, "Helpdesk")

        dovecot.recreate_folder(SUPPORT, "Helpdesk")  # same mails, UIDs 1..3 again
        assert dovecot.uidvalidity(SUPPORT, "Helpdesk") != before
        assert worker.run_once() == 3  # "4:*" would have matched only UID 3, filtered out
        assert worker.run_once() == 0
    finally:
        worker.close()
    assert processor.raws == [mail(1), mail(2), mail(3)]
    assert [status for _c, status in processor.outcomes] == ["created"] * 3 + ["duplicate"] * 3
    assert dovecot.folder_uids(SUPPORT, "Helpdesk") == [1, 2, 3]


def test_twenty_megabyte_attachment(dovecot: DovecotServer, processor: FakeProcessor,
                                    checkpoints: MemoryCheckpoints) -> None:
    message = EmailMessage()
    message["From"], message["To"] = "customer@example.org", SUPPORT
    message["Subject"], message["Message-ID"] = "Plans", "<big@example.org>"
    message.set_content("See the attached plans.")
    payload = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="plans.bin")
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert len(raw) > 27_000_000
    dovecot.append(SUPPORT, raw)
    worker = worker_for(account(dovecot), processor, checkpoints)
    try:
        assert worker.run_once() == 1
    finally:
        worker.close()
    assert processor.raws == [raw]
    assert len(dovecot.folder_uids(SUPPORT, PROCESSED)) == 1


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs (not an Exception, nothing catches it)."""


class _DiesBeforeMove(ImapWorker):
    def _file(self, session, uid, target):  # type: ignore[no-untyped-def]
        raise _Killed


def test_kill_between_commit_and_move_gives_exactly_one_record(
    dovecot: DovecotServer, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
) -> None:
    acc = account(dovecot)
    uid = dovecot.append(SUPPORT, mail(1))
    doomed = _DiesBeforeMove(acc, processor, checkpoints, clock=lambda: NOW)
    with pytest.raises(_Killed):
        doomed.run_once()
    assert len(processor.records) == 1  # committed ...
    assert dovecot.folder_uids(SUPPORT) == [uid]  # ... but not moved, no checkpoint
    assert checkpoints.load("support", "INBOX") is None

    fresh = worker_for(acc, processor, checkpoints)
    try:
        assert fresh.run_once() == 1
    finally:
        fresh.close()
    assert [status for _c, status in processor.outcomes] == ["created", "duplicate"]
    assert len(processor.records) == 1
    assert dovecot.folder_uids(SUPPORT) == []
    assert len(dovecot.folder_uids(SUPPORT, PROCESSED)) == 1


def test_one_mail_to_two_helpdesk_addresses_makes_one_ticket(
    dovecot: DovecotServer, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
    running: list[ImapWorker],
) -> None:
    raw = mail(1, to=f"{SUPPORT}, {SALES}")
    dovecot.append(SUPPORT, raw)
    dovecot.append(SALES, raw)
    accounts = [account(dovecot, SUPPORT, poll_seconds=600),
                account(dovecot, SALES, poll_seconds=600)]
    running.extend(start_workers(accounts, processor, checkpoints, clock=lambda: NOW))
    wait_for(lambda: len(processor.outcomes) == 2, what="both accounts")
    wait_for(lambda: not dovecot.folder_uids(SUPPORT) and not dovecot.folder_uids(SALES),
             what="both moved")
    assert len(processor.records) == 1
    assert sorted(status for _channel, status in processor.outcomes) == ["created", "duplicate"]
    assert {channel for channel, _status in processor.outcomes} == {"imap:support", "imap:sales"}


def test_stop_interrupts_idle_promptly(dovecot: DovecotServer, processor: FakeProcessor,
                                       checkpoints: MemoryCheckpoints, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="maild.ingest.imap")
    worker = worker_for(account(dovecot, poll_seconds=3600), processor, checkpoints,
                        idle_tick=IDLE_TICK_SECONDS)
    worker.start()
    wait_for(lambda: "imap support: idling" in caplog.text, what="the worker in IDLE")
    started = time.monotonic()
    assert worker.stop(timeout=10)
    assert time.monotonic() - started < 3
    assert not worker.running


def test_unreachable_server_keeps_retrying_and_stops_promptly(
    processor: FakeProcessor, checkpoints: MemoryCheckpoints,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acc = ImapAccount.model_validate({"name": "dead", "host": "127.0.0.1", "port": free_port(),
                                      "ssl": False, "username": "u", "password": "p"})
    worker = worker_for(acc, processor, checkpoints)
    worker.start()
    wait_for(lambda: caplog.text.count("reconnecting in") >= 3, seconds=5,
             what="three refused connections")
    assert worker.stop(timeout=5)


# -- servers without IDLE / MOVE / UIDPLUS -----------------------------------------------
@pytest.fixture(scope="module", params=[
    "IMAP4rev1 LITERAL+ NAMESPACE UIDPLUS",  # polling, COPY + \Deleted + UID EXPUNGE
    "IMAP4rev1 LITERAL+",  # polling, COPY + \Deleted + EXPUNGE, LIST for the delimiter
], ids=["uidplus", "bare"])
def basic_dovecot(request: pytest.FixtureRequest) -> Iterator[DovecotServer]:
    with running_dovecot(f"imap_capability = {request.param}\n") as server:
        yield server


def test_polling_and_copy_expunge_without_idle_or_move(
    basic_dovecot: DovecotServer, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
    running: list[ImapWorker], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="maild.ingest.imap")
    basic_dovecot.reset()
    basic_dovecot.append(SUPPORT, mail(1))
    worker = worker_for(account(basic_dovecot, poll_seconds=0.2), processor, checkpoints)
    running.append(worker)
    worker.start()
    wait_for(lambda: len(processor.records) == 1, what="first mail")
    basic_dovecot.append(SUPPORT, mail(2, body="QUARANTINE"))
    wait_for(lambda: len(processor.records) == 2, what="polled mail")
    wait_for(lambda: basic_dovecot.folder_uids(SUPPORT) == [], what="expunged")
    assert "polling every 0.2s" in caplog.text
    processed = basic_dovecot.folder_messages(SUPPORT, PROCESSED)
    failed = basic_dovecot.folder_messages(SUPPORT, FAILED)
    assert [raw for raw, _flags in processed.values()] == [mail(1)]
    assert [raw for raw, _flags in failed.values()] == [mail(2, body="QUARANTINE")]
    assert not any(b"\\Deleted" in flags for _r, flags in [*processed.values(), *failed.values()])


def test_mail_arriving_between_search_and_idle_is_not_missed(
    dovecot: DovecotServer, processor: FakeProcessor, checkpoints: MemoryCheckpoints,
    running: list[ImapWorker],
) -> None:
    # Dovecot reports it right after "+ idling", often in the same packet: it sits in
    # imaplib's read buffer where idle_check()'s socket poll cannot see it.
    class AppendsAfterSearch(ImapWorker):
        appended = False

        def _drain(self, session):  # type: ignore[no-untyped-def]
            handled = super()._drain(session)
            if not self.appended:
                self.appended = True
                dovecot.append(SUPPORT, mail(2))
            return handled

    dovecot.append(SUPPORT, mail(1))
    worker = AppendsAfterSearch(account(dovecot, poll_seconds=600), processor, checkpoints,
                                idle_tick=0.2)
    running.append(worker)
    worker.start()
    wait_for(lambda: len(processor.records) == 2, seconds=10, what="the racing mail")


# -- with the real processor and checkpoint table (conftest's sqlite_env) ----------------
def test_real_processor_two_accounts_one_ticket_and_replay_is_duplicate(
    dovecot: DovecotServer, sqlite_env: Any, running: list[ImapWorker],
) -> None:
    from maild.store.checkpoints import DbCheckpoints

    raw = mail(1, to="support@support.example.com, sales@support.example.com")
    dovecot.append(SUPPORT, raw)
    dovecot.append(SALES, raw)
    checkpoints = DbCheckpoints(sqlite_env.app.db)
    accounts = [account(dovecot, SUPPORT, poll_seconds=600),
                account(dovecot, SALES, poll_seconds=600)]
    # Fast backoff: the two threads race on the same mail, and a transient processor
    # error (e.g. two writers of one blob) must only cost a quick retry here.
    for acc in accounts:
        running.append(ImapWorker(acc, sqlite_env.app.processor, checkpoints,
                                  backoff=Backoff(0.05, 0.5), idle_tick=0.2))
        running[-1].start()
    wait_for(lambda: not dovecot.folder_uids(SUPPORT) and not dovecot.folder_uids(SALES),
             seconds=30, what="both accounts drained")
    assert len(sqlite_env.tickets()) == 1
    assert len(dovecot.folder_uids(SUPPORT, PROCESSED)) == 1
    assert len(dovecot.folder_uids(SALES, PROCESSED)) == 1
    assert checkpoints.load("support", "INBOX") is not None

    # The same mail offered again (as after a kill between commit and move): a no-op.
    stop_workers(running)
    statuses: list[str] = []

    class Recording:
        def process(self, raw: bytes, channel: str, now: datetime) -> Any:
            outcome = sqlite_env.app.processor.process(raw, channel, now)
            statuses.append(outcome.status)
            return outcome

    dovecot.append(SUPPORT, raw)
    replay = ImapWorker(accounts[0], Recording(), checkpoints)
    try:
        assert replay.run_once() == 1
    finally:
        replay.close()
    assert statuses == ["duplicate"]
    assert len(sqlite_env.tickets()) == 1


def test_implicit_tls_and_starttls_verify_the_certificate(
    processor: FakeProcessor, checkpoints: MemoryCheckpoints, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_dovecot(tls=True) as server:
        assert server.ca_file is not None
        implicit = account(server, name="tls", ssl=True, port=server.tls_port)
        starttls = account(server, name="starttls", ssl=False, starttls=True)
        for acc in (implicit, starttls):  # a self-signed certificate is refused ...
            with pytest.raises(ssl.SSLCertVerificationError):
                worker_for(acc, processor, checkpoints).run_once()

        real_context = ssl.create_default_context  # ... until its CA is trusted
        monkeypatch.setattr(ssl, "create_default_context",
                            lambda: real_context(cafile=str(server.ca_file)))
        for acc, n in ((implicit, 1), (starttls, 2)):
            server.append(SUPPORT, mail(n))
            worker = worker_for(acc, processor, checkpoints)
            try:
                assert worker.run_once() == 1
            finally:
                worker.close()
    assert processor.raws == [mail(1), mail(2)]
