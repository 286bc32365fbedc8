"""One mail never stops the others: long header values, error classes, attempt counts.

The "poison" mail carries a Message-ID of ~990 characters of multibyte UTF-8 (over
2,704 bytes, more than a PostgreSQL btree entry holds) and a References header full of
such ids. It runs through the real processor on SQLite and PostgreSQL.
"""
from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc as sa_exc, select, text

from conftest import PG_ADMIN_URL, Env, mail, make_env
from maild.ingest.attempts import AttemptLog
from maild.ingest.processor import MailFailed, Processor
from maild.ingest.spool import Spool, SpoolWorker
from maild.store.errors import ErrorClass, classify_db_error
from maild.store.keys import header_hash
from maild.store.models import Message, RawMail


def long_id(tag: str) -> str:
    """~990 characters, ~2,900 UTF-8 bytes: within RFC 5322's 998, past PostgreSQL's 2,704.
    Varied characters, as a real one has: a repeated one compresses below the limit."""
    rng = random.Random(tag)
    return f"<{tag}." + "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(955)) + "@cliente.example.com.br>"


POISON_ID = long_id("poison")


def poison_mail(subject: str = "Vazamento na cozinha") -> bytes:
    return mail(subject, message_id=POISON_ID,
                headers={"References": " ".join(long_id(f"old{n}") for n in range(3))})


def test_the_poison_id_is_what_the_issue_describes() -> None:
    assert len(POISON_ID) <= 998 and len(POISON_ID.encode()) > 2704


def test_long_message_id_is_stored_threaded_and_does_not_stop_later_mail(env: Env) -> None:
    first = env.process(poison_mail())
    assert first.status == "created" and first.message_id == POISON_ID
    # A reply naming it only in References (with other long ids around it) threads onto it.
    reply = env.process(mail("Re: Vazamento na cozinha", message_id=long_id("reply"),
                             headers={"In-Reply-To": long_id("unknown"),
                                      "References": f"{long_id('x')} {POISON_ID} {long_id('y')}"}))
    assert reply.status == "appended" and reply.ticket_id == first.ticket_id
    # Redelivered with other bytes (another Received line): the Message-ID says duplicate.
    again = env.process(b"Received: from mx2.example by mx.example; Mon, 2 Nov 2026 10:00:01 +0000\r\n"
                        + poison_mail())
    assert again.status == "duplicate" and again.ticket_id == first.ticket_id
    after = [env.process(mail(f"Normal {n}")) for n in range(20)]
    assert [o.status for o in after] == ["created"] * 20
    shown = env.ticket(first.ticket_id)
    assert [m["message_id"] for m in shown["messages"] if m["direction"] == "in"] == [POISON_ID, long_id("reply")]


def test_a_batch_with_the_poison_mail_commits_every_mail(env: Env) -> None:
    items = [(mail(f"Before {n}"), "smtp") for n in range(3)] + [(poison_mail(), "smtp")]
    items += [(mail(f"After {n}"), "smtp") for n in range(20)]
    env.now += timedelta(seconds=1)
    outcomes = env.app.processor.process_batch(items, env.now)
    assert [o.status for o in outcomes] == ["created"] * 24
    assert len(env.tickets()) == 24


def test_lookups_compare_the_full_value_not_only_the_hash(env: Env) -> None:
    stored = env.process(mail("Original", message_id="<a@x.example>"))
    with env.app.db.write() as session:  # a row whose key matches but whose value differs
        session.execute(Message.__table__.update().where(Message.message_id == "<a@x.example>")
                        .values(message_id="<b@x.example>"))
    reply = env.process(mail("Re: Original", message_id="<r@x.example>", headers={"In-Reply-To": "<a@x.example>"}))
    assert reply.status == "created" and reply.ticket_id != stored.ticket_id


def test_every_indexed_header_column_has_its_hash(env: Env) -> None:
    env.process(poison_mail())
    with env.app.db.read() as session:
        message = session.scalars(select(Message).where(Message.direction == "in")).one()
        raw = session.scalars(select(RawMail)).one()
        outbox = session.execute(text("SELECT message_id, message_id_hash FROM outbox")).all()
    assert message.message_id_hash == header_hash(POISON_ID) == raw.message_id_hash
    assert outbox and all(row.message_id_hash == header_hash(row.message_id) for row in outbox)
    indexed = {ix.name: [c.name for c in ix.columns] for table in (Message, RawMail)
               for ix in table.__table__.indexes}
    assert ["message_id"] not in indexed.values()


# -- error classes ---------------------------------------------------------------------

def _sqlalchemy_error(statement: str, engine_url: str, setup: list[str] | None = None) -> sa_exc.DBAPIError:
    engine = create_engine(engine_url)
    try:
        with engine.connect() as conn:
            for sql in setup or []:
                conn.exec_driver_sql(sql)
            with pytest.raises(sa_exc.DBAPIError) as raised:
                conn.exec_driver_sql(statement)
            return raised.value
    finally:
        engine.dispose()


def test_sqlite_database_is_locked_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with engine.connect() as conn, pytest.raises(sa_exc.OperationalError) as raised:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        engine.dispose()
        holder.close()
    assert "locked" in str(raised.value)
    assert classify_db_error(raised.value) is ErrorClass.TRANSIENT


def test_sqlite_data_errors_are_the_mails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    error = _sqlalchemy_error("INSERT INTO t VALUES (1)", url, ["CREATE TABLE t (x UNIQUE)", "INSERT INTO t VALUES (1)"])
    assert classify_db_error(error) is ErrorClass.MAIL
    assert classify_db_error(ValueError("a bug in one mail")) is ErrorClass.MAIL


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return pg_database


def test_postgres_program_limit_and_data_errors_are_the_mails(pg_url: str) -> None:
    setup = ["CREATE TEMP TABLE t (v varchar(998))", "CREATE INDEX ON t (v)"]
    too_big = _sqlalchemy_error(f"INSERT INTO t VALUES ('{POISON_ID}')", pg_url, setup)
    assert too_big.orig.sqlstate == "54000"  # program_limit_exceeded, an OperationalError
    assert isinstance(too_big, sa_exc.OperationalError)
    assert classify_db_error(too_big) is ErrorClass.MAIL
    too_long = _sqlalchemy_error("INSERT INTO t VALUES (repeat('x', 999))", pg_url, setup[:1])
    assert too_long.orig.sqlstate == "22001" and classify_db_error(too_long) is ErrorClass.MAIL


def test_postgres_lock_timeout_and_lost_server_are_transient(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS lock_probe (x int)")
        with engine.connect() as holder:
            holder.exec_driver_sql("BEGIN")
            holder.exec_driver_sql("LOCK TABLE lock_probe IN ACCESS EXCLUSIVE MODE")
            error = _sqlalchemy_error("SELECT * FROM lock_probe", pg_url, ["SET lock_timeout = '50ms'"])
            holder.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()
    assert error.orig.sqlstate == "55P03" and classify_db_error(error) is ErrorClass.TRANSIENT
    gone = create_engine(PG_ADMIN_URL.replace(":5432/", ":1/"))
    with pytest.raises(sa_exc.OperationalError) as raised:
        gone.connect()
    assert classify_db_error(raised.value) is ErrorClass.TRANSIENT


# -- attempts ---------------------------------------------------------------------------

def _header_unstorable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the poison mail's header fail wherever it is written, as an index too small
    for it did before: even its quarantine row (which names the Message-ID) fails."""
    import maild.ingest.processor as processor

    real = processor.record_raw

    def record_raw(session, **kwargs):  # noqa: ANN001, ANN202
        if kwargs.get("message_id") == POISON_ID:
            raise sa_exc.DataError("INSERT INTO raw_mails", {}, Exception("index row size exceeds maximum"))
        return real(session, **kwargs)

    monkeypatch.setattr(processor, "record_raw", record_raw)


def test_a_mail_failing_every_time_is_quarantined_after_max_attempts_across_restarts(
        sqlite_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _header_unstorable(monkeypatch)
    env = sqlite_env
    for attempt in range(1, 4):
        if attempt == 3:  # a restart: a new processor reads the counts from disk
            env.app.processor = Processor(env.config, env.app.db, env.app.blobs,
                                          AttemptLog(env.app.spool.root / "attempts"))
        outcomes = env.app.processor.process_batch([(poison_mail(), "smtp"), (mail(f"Normal {attempt}"), "smtp")],
                                                   env.now + timedelta(minutes=attempt))
        assert [o.status for o in outcomes] == ["retry", "created"]
    with pytest.raises(MailFailed):  # what `maild ingest` turns into exit 75
        env.app.processor.process(poison_mail(), "pipe", env.now + timedelta(minutes=5))
    last = env.app.processor.process(poison_mail(), "pipe", env.now + timedelta(minutes=6))
    assert last.status == "quarantined" and "failed 5 times" in last.reason and "DataError" in last.reason
    [row] = [r for r in env.raw_rows() if r.status == "quarantined"]
    assert "index row size exceeds maximum" in row.reason
    assert not any((env.app.spool.root / "attempts").iterdir())
    assert len(env.tickets()) == 3


def test_spool_worker_keeps_a_failing_file_and_drains_the_others(sqlite_env: Env,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _header_unstorable(monkeypatch)
    env = sqlite_env
    spool = Spool(env.directory / "spool-test")
    spool.put(poison_mail(), "smtp")
    for n in range(20):
        spool.put(mail(f"Normal {n}"), "smtp")
    worker = SpoolWorker(spool, env.app.processor.process_batch, lambda: env.now, batch=8)
    assert worker.drain() == 20 and len(spool.pending()) == 1 and worker.failures == 1
    rounds = 1
    while spool.pending():
        worker.drain()
        rounds += 1
        assert rounds <= env.config.spool.max_attempts
    assert rounds == env.config.spool.max_attempts and worker.failures == 0
    assert len(env.tickets()) == 20
    assert [r.status for r in env.raw_rows()].count("quarantined") == 1


def test_max_attempts_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _header_unstorable(monkeypatch)
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", spool=f"""
        spool:
          path: {tmp_path / 'spool'}
          max_attempts: 2
        """)
    try:
        assert env.app.processor.process_batch([(poison_mail(), "pipe")], env.now)[0].status == "retry"
        assert env.app.processor.process_batch([(poison_mail(), "pipe")], env.now)[0].status == "quarantined"
    finally:
        env.app.db.dispose()


def test_attempt_log_names_are_digests_only(tmp_path: Path) -> None:
    log = AttemptLog(tmp_path)
    with pytest.raises(ValueError):
        log.failed("../../etc/passwd", "x")
    digest = "a" * 64
    assert log.failed(digest, "one\nreason") == 1 and log.failed(digest, "two") == 2
    assert AttemptLog(tmp_path).count(digest) == 2
    log.clear(digest)
    assert AttemptLog(tmp_path).count(digest) == 0


def test_a_conflict_that_persists_is_quarantined_on_the_third_round(sqlite_env: Env,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.ingest.processor as processor

    real = processor.write_ticket
    calls: list[str] = []

    def write_ticket(session, **kwargs):  # noqa: ANN001, ANN202
        if kwargs["mail"].subject == "Conflito":
            calls.append("conflict")
            raise sa_exc.IntegrityError("INSERT INTO contacts", {}, Exception("UNIQUE constraint failed"))
        return real(session, **kwargs)

    monkeypatch.setattr(processor, "write_ticket", write_ticket)
    outcomes = sqlite_env.app.processor.process_batch([(mail("Conflito"), "smtp"), (mail("Normal"), "smtp")],
                                                      sqlite_env.now)
    assert [o.status for o in outcomes] == ["quarantined", "created"] and len(calls) == 3
    assert "IntegrityError" in outcomes[0].reason
