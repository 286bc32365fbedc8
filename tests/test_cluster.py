"""Several nodes on one PostgreSQL: the shared inbound queue, blobs in the database, config."""
from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from conftest import Env, free_port, mail, write_config
from maild.config import ConfigError, load_config
from maild.ingest.intake import DbIntake, QueueWorker
from maild.ingest.parse import thread_ids
from maild.ingest.spool import Spool, SpoolWorker
from maild.store import inbound, nodes
from maild.store.blobs import BlobMissing, DbBlobStore
from maild.store.db import Database
from maild.store.models import BlobRow, InboundRow
from maild.store.nodes import NodeInfo

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
PG = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def node(db: Database, node_id: str, now: datetime) -> NodeInfo:
    info = NodeInfo(node_id, "host", 1, "test")
    with db.write() as session:
        nodes.beat(session, info, now, 0, {})
    return info


def enqueue(db: Database, raw: bytes, now: datetime = T0) -> int:
    message_id, parents = thread_ids(raw)
    with db.write() as session:
        return inbound.enqueue(session, raw, "smtp", "0" * 64, message_id, parents, "n", now)


@pytest.mark.parametrize("section", ["spool", "storage"])
def test_database_backends_need_postgresql(tmp_path: Path, section: str) -> None:
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", cluster=f"{section}:\n  backend: database\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = path.read_text().splitlines().index("  backend: database")  # the last of the section's lines
    assert f"{path}:{line + 1}: {section}.backend: 'database' needs a PostgreSQL" in str(caught.value)


def test_thread_ids_read_the_header_block_only() -> None:
    raw = mail("Re: x", message_id="<b@x>", headers={"In-Reply-To": "<a@x>", "References": "<z@x>\r\n <a@x>"})
    assert thread_ids(raw + b"\r\nMessage-ID: <body@x>\r\n") == ("<b@x>", ("<a@x>", "<z@x>"))


@PG
def test_blobs_in_the_database_are_shared_deduplicated_and_compressed(db: Database) -> None:
    one, two = DbBlobStore(db), DbBlobStore(db)  # two nodes
    raw = b"From: a@b.example\r\n\r\n" + b"the same line again\r\n" * 2000
    digest = one.put_raw(raw, sync=False)
    with pytest.raises(BlobMissing):
        two.get_raw(digest)  # not durable before the flush
    one.flush([("raw", digest)])
    assert two.get_raw(digest) == raw
    assert two.put_raw(raw) == digest  # the same content again: still one row
    att = two.put_attachment(b"%PDF-1.4 ...")
    assert one.get_attachment(att) == b"%PDF-1.4 ..."
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(BlobRow)) == 2
        stored = session.scalar(select(func.length(BlobRow.data)).where(BlobRow.sha256 == digest))
    assert stored is not None and stored < len(raw) / 10
    one.delete([("att", att)])
    with pytest.raises(BlobMissing):
        two.get_attachment(att)


@PG
def test_a_dead_nodes_claims_are_taken_by_a_live_one(db: Database) -> None:
    node(db, "aaaaaaaaaaaa", T0)
    node(db, "bbbbbbbbbbbb", T0)
    first, second = enqueue(db, mail("one")), enqueue(db, mail("two"))
    with db.write() as session:
        taken = inbound.claim(session, "aaaaaaaaaaaa-0", T0, T0 - timedelta(seconds=5), 10)
    assert [row.id for row in taken] == [first, second]
    with db.write() as session:  # a beat later, A still beats: nothing for B
        assert inbound.claim(session, "bbbbbbbbbbbb-0", T0 + timedelta(seconds=1), T0 - timedelta(seconds=4), 10) == []
    later = T0 + timedelta(seconds=6)
    node(db, "bbbbbbbbbbbb", later)  # A stopped beating at T0
    with db.write() as session:
        retaken = inbound.claim(session, "bbbbbbbbbbbb-1", later, later - timedelta(seconds=5), 10)
    assert [row.id for row in retaken] == [first, second]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, items: list[tuple[bytes, str]], now: datetime) -> list[object]:
        self.seen += [raw for raw, _channel in items]
        return [type("Done", (), {"status": "created"})()] * len(items)


@PG
def test_a_reply_waits_while_its_parent_is_queued_on_another_node(db: Database) -> None:
    now = datetime.now(timezone.utc)
    node(db, "aaaaaaaaaaaa", now)
    node(db, "bbbbbbbbbbbb", now)
    parent = mail("Vazamento", message_id="<parent@x>")
    reply = mail("Re: Vazamento", message_id="<reply@x>", headers={"In-Reply-To": "<parent@x>"})
    enqueue(db, parent, now)
    with db.write() as session:  # node A holds the parent, not yet committed
        [held] = inbound.claim(session, "aaaaaaaaaaaa-0", now, now - timedelta(seconds=5), 1)
    enqueue(db, reply, now)
    recorder = Recorder()
    worker = QueueWorker(db, recorder, lambda: datetime.now(timezone.utc), "bbbbbbbbbbbb", 5.0, 10.0)
    assert worker.drain_once() == 0 and recorder.seen == []  # the reply was put back
    with db.write() as session:
        inbound.finish(session, [held.id], "aaaaaaaaaaaa-0")  # A committed the parent
    deadline = datetime.now(timezone.utc) + timedelta(seconds=10)
    while not recorder.seen and datetime.now(timezone.utc) < deadline:
        worker.drain_once()
    assert recorder.seen == [reply]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(InboundRow)) == 0


@PG
def test_a_reply_whose_parent_never_comes_waits_only_so_long(db: Database) -> None:
    now = datetime.now(timezone.utc)
    node(db, "aaaaaaaaaaaa", now)
    enqueue(db, mail("Vazamento", message_id="<parent@x>"), now)
    with db.write() as session:
        inbound.claim(session, "aaaaaaaaaaaa-0", now, now - timedelta(seconds=5), 1)
    reply = mail("Re: Vazamento", headers={"In-Reply-To": "<parent@x>"})
    enqueue(db, reply, now - timedelta(minutes=5))  # behind a backlog: old, but it has not waited yet
    recorder = Recorder()
    worker = QueueWorker(db, recorder, lambda: datetime.now(timezone.utc), "bbbbbbbbbbbb", 5.0, 10.0)
    worker.drain_once()
    assert recorder.seen == []
    with db.write() as session:  # it has waited 11 s
        session.execute(update(InboundRow).where(InboundRow.waiting_since.is_not(None))
                        .values(waiting_since=now - timedelta(seconds=11), next_attempt_at=now))
    worker.drain_once()
    assert recorder.seen == [reply]


@PG
def test_without_the_database_the_node_spools_locally_then_moves_the_mail_into_the_queue(
        db: Database, tmp_path: Path) -> None:
    away = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")
    spool = Spool(tmp_path / "spool")
    raw = mail("Oi")
    label = DbIntake(away, spool, "aaaaaaaaaaaa", lambda: T0, threading.Event()).accept(raw, "smtp")
    away.dispose()
    [entry] = spool.pending()
    assert entry.path.stem == label and entry.read() == raw
    intake = DbIntake(db, spool, "aaaaaaaaaaaa", lambda: T0, threading.Event())
    assert SpoolWorker(spool, intake.forward, lambda: T0).drain() == 1
    assert spool.pending() == [] and intake.wakeup.is_set()
    with db.read() as session:
        assert [row.channel for row in session.scalars(select(InboundRow))] == ["smtp"]


def test_a_reply_processed_before_its_parent_is_linked_when_the_parent_arrives(env: Env) -> None:
    # A colleague's answer (Cc) arrives before the customer's mail it answers.
    reply = env.process(mail("Re: Vazamento", "joao@cliente.example.com.br", message_id="<r@x>",
                             headers={"In-Reply-To": "<p@x>"}))
    unrelated = env.process(mail("Outra coisa", message_id="<o@x>", headers={"In-Reply-To": "<elsewhere@x>"}))
    parent = env.process(mail("Vazamento", message_id="<p@x>"))
    assert reply.status == parent.status == "created" and reply.ticket_id != parent.ticket_id
    assert reply.ticket_id is not None and unrelated.ticket_id is not None
    orphan = env.ticket(reply.ticket_id)
    assert orphan["links"] == [{"ticket": parent.ticket_id, "kind": "refers_to"}]
    assert [e["detail"] for e in orphan["events"] if e["kind"] == "linked"] == [
        "answers <p@x>, which arrived after it"]
    assert env.ticket(unrelated.ticket_id)["links"] == []
    again = env.process(mail("Vazamento", message_id="<p2@x>", headers={"References": "<x@x>"}))
    assert env.ticket(reply.ticket_id)["links"] == [{"ticket": parent.ticket_id, "kind": "refers_to"}]
    assert again.ticket_id != parent.ticket_id


@pytest.mark.parametrize("migrate", [True, False])
def test_a_node_of_the_previous_version_starts_on_a_schema_a_newer_node_migrated(
        db_url: str, migrate: bool, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy import text

    database = Database(db_url)
    database.ensure_schema(True)
    with database.engine.begin() as conn:  # what the next release's `maild db upgrade` leaves
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        database.ensure_schema(migrate)
        assert "newer than this maild's" in caplog.text
    finally:
        with database.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": database.head_revision()})
        database.dispose()


@PG
def test_an_advisory_lock_per_name_has_one_holder_and_frees_when_its_connection_dies(db_url: str) -> None:
    from maild.store.locks import AdvisoryLock, key_of

    one, two = Database(db_url), Database(db_url)
    try:
        a, b = (AdvisoryLock(d, key_of("imap:support"), "imap support") for d in (one, two))
        other = AdvisoryLock(two, key_of("imap:vendas"), "imap vendas")
        assert a.acquire() and a.acquire()  # held, and still held
        assert not b.acquire() and other.acquire()  # another account is another lock
        one.dispose()  # the holder's connections go (a killed node)
        assert a.conn is not None
        a.conn.invalidate()
        assert b.acquire()
        assert not a.acquire()
        for lock in (b, other):
            lock.release()
    finally:
        one.dispose()
        two.dispose()


class _Deadlock(Exception):
    sqlstate = "40P01"  # what PostgreSQL says when two nodes' batches lock rows in crossed order


def test_rounds_lost_to_deadlocks_do_not_use_up_a_mails_conflict_retries(
        sqlite_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes' batches deadlock, then the contact the other node just committed conflicts
    once: the mail is retried and threads, it is not quarantined."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    processor = sqlite_env.app.processor
    real = processor._decide_and_apply
    failures = [OperationalError("INSERT", {}, _Deadlock()), OperationalError("INSERT", {}, _Deadlock()),
                IntegrityError("INSERT INTO contacts", {}, Exception("duplicate key contacts_email_key"))]

    def flaky(session, item, now):  # noqa: ANN001, ANN202 - the processor's own signature
        if failures:
            raise failures.pop(0)
        return real(session, item, now)

    monkeypatch.setattr(processor, "_decide_and_apply", flaky)
    assert sqlite_env.process(mail("Vazamento")).status == "created"


def test_a_reply_in_the_same_batch_waits_for_its_parents_conflict_to_clear(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent loses a round to a contact another node just wrote: the reply after it in
    the batch waits for the next round instead of opening a ticket of its own."""
    from sqlalchemy.exc import IntegrityError

    processor = env.app.processor
    real = processor._decide_and_apply
    failures = [IntegrityError("INSERT INTO contacts", {}, Exception("duplicate key contacts_email_key"))]

    def flaky(session, item, now):  # noqa: ANN001, ANN202 - the processor's own signature
        if failures:
            raise failures.pop(0)
        return real(session, item, now)

    monkeypatch.setattr(processor, "_decide_and_apply", flaky)
    parent = mail("Vazamento", message_id="<p@x>")
    reply = mail("Re: Vazamento", message_id="<r@x>", headers={"In-Reply-To": "<p@x>"})
    first, second = processor.process_batch([(parent, "smtp"), (reply, "smtp")], T0)
    assert (first.status, second.status) == ("created", "appended") and first.ticket_id == second.ticket_id


@PG
def test_a_reply_to_a_waiting_reply_in_the_same_claim_waits_too(db: Database) -> None:
    now = datetime.now(timezone.utc)
    node(db, "aaaaaaaaaaaa", now)
    node(db, "bbbbbbbbbbbb", now)
    enqueue(db, mail("Vazamento", message_id="<g@x>"), now)
    with db.write() as session:  # node A holds the first mail
        inbound.claim(session, "aaaaaaaaaaaa-0", now, now - timedelta(seconds=5), 1)
    enqueue(db, mail("Re: Vazamento", message_id="<p@x>", headers={"In-Reply-To": "<g@x>"}), now)
    enqueue(db, mail("Re: Re: Vazamento", message_id="<r@x>", headers={"In-Reply-To": "<p@x>"}), now)
    recorder = Recorder()
    QueueWorker(db, recorder, lambda: datetime.now(timezone.utc), "bbbbbbbbbbbb", 5.0, 10.0).drain_once()
    assert recorder.seen == []


@PG
def test_the_shared_queue_depth_is_a_metric(db: Database, tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from maild.service.metrics import Metrics
    from maild.service.queues import read_snapshot

    enqueue(db, mail("Um"))
    enqueue(db, mail("Dois"))
    spool = Spool(tmp_path / "spool")
    assert read_snapshot(db, spool, T0, None).inbound_queue is None  # spool.backend: filesystem
    snapshot = read_snapshot(db, spool, T0, None, shared=True)
    assert snapshot.inbound_queue == 2
    assert b"maild_inbound_queue_depth 2.0" in generate_latest(Metrics(lambda: snapshot).registry)


@PG
def test_forget_reaches_the_blobs_in_the_database(db_url: str, tmp_path: Path) -> None:
    from maild.app import App
    from test_contacts import cli
    from test_forget import MARIA, maria_everywhere, traces

    path = write_config(tmp_path, db_url)
    path.write_text(path.read_text().replace("storage:\n", "storage:\n  backend: database\n", 1))
    config = load_config(path, base_dir=tmp_path)
    env = Env(App(config), config, tmp_path)
    try:
        maria_everywhere(env)

        def blobs() -> bytes:
            with env.app.db.read() as session:
                return b"".join(zlib.decompress(data) for data in session.scalars(select(BlobRow.data)))

        assert traces(blobs())  # raw mails and attachments, in the database
        assert not (tmp_path / "storage" / "raw").exists()
        done = cli(path, "contacts", "forget", MARIA)
        assert done.returncode == 0, done.stderr
        assert traces(blobs()) == []
    finally:
        env.app.db.dispose()
