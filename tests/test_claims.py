"""Outbox claims held by a heartbeat: a live sender keeps its claims however long a send
takes; a dead sender's (or node's) claims are taken again within seconds and marked as
possibly delivered already."""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import AGENT, HELPDESK, Env, free_port, mail, write_config
from maild.config import OutboundSmtp, Retry
from maild.outbound import outbox
from maild.outbound.sender import Sender, SmtpTransport
from maild.store.models import OutboxRow, OutboxSender
from smtpsink import Sink
from test_e2e import Daemon, wait_for
from test_outbound_e2e import deliver
from test_outbound_e2e import outbox as outbox_rows

CUSTOMER = "maria@cliente.example.com.br"


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


def rows(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def sender_for(env: Env, port: int, clock=None) -> Sender:  # noqa: ANN001
    return Sender(env.app.db, SmtpTransport(OutboundSmtp(host="127.0.0.1", port=port, timeout=5)),
                  Retry(heartbeat_seconds=0.1, heartbeat_timeout_seconds=10), HELPDESK, clock or (lambda: env.now))


def test_a_beating_sender_keeps_its_claims_however_long_then_they_are_retaken(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    sink.start()
    env.process(mail("Oi", CUSTOMER))
    with env.app.db.write() as session:  # sender A: claimed, now in a long send
        outbox.beat(session, "senderaaaaaa", "node-a", 10, env.now)
        outbox.claim(session, "senderaaaaaa-1", env.now, env.now, 10)
    other = sender_for(env, sink.port)
    for _ in range(4):  # 20 minutes, A beating all along: never taken
        env.now += timedelta(minutes=5)
        with env.app.db.write() as session:
            outbox.beat(session, "senderaaaaaa", "node-a", 10, env.now)
        assert other.run_once() == 0
    assert {r.state for r in rows(env)} == {"claimed"} and not any(r.maybe_delivered for r in rows(env))
    env.now += timedelta(seconds=9)  # A's last beat is 9 s old: alive
    assert other.run_once() == 0
    env.now += timedelta(seconds=2)  # 11 s: A is dead
    assert other.run_once() == 2
    assert all(r.state == "sent" and r.maybe_delivered and r.last_error == outbox.RETAKEN for r in rows(env))
    assert len(sink.received) == 2


def test_the_heartbeat_runs_beside_the_sender_and_goes_when_it_stops(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    sender = sender_for(env, free_port(), clock=lambda: datetime.now(timezone.utc))
    sender.start()
    try:
        def beats() -> list[datetime]:
            with env.app.db.read() as session:
                return [s.heartbeat_at for s in session.scalars(select(OutboxSender))]
        wait_for(lambda: len(beats()) == 1, 10, "the first heartbeat")
        first = beats()[0]
        wait_for(lambda: beats() and beats()[0] > first, 10, "a later heartbeat")
    finally:
        sender.stop()
    with env.app.db.read() as session:
        assert session.scalars(select(OutboxSender)).all() == []


def config_for(directory: Path, db: Path, port: int, sink_port: int) -> Path:
    directory.mkdir()
    return write_config(directory, f"sqlite:///{db}", smtp_port=str(port), outbound=f"""\
        outbound:
          smtp: {{host: 127.0.0.1, port: {sink_port}, timeout: 60}}
          retry: {{first_seconds: 0.3, max_seconds: 1, poll_seconds: 0.2, heartbeat_seconds: 0.3,
                   heartbeat_timeout_seconds: 2}}
        """)


@pytest.mark.slow
def test_a_killed_senders_claims_are_sent_by_another_within_seconds(tmp_path: Path, sink: Sink) -> None:
    db = tmp_path / "shared.db"
    a_port, b_port = free_port(), free_port()
    a = Daemon(config_for(tmp_path / "a", db, a_port, sink.port), a_port, tmp_path / "a.log")
    b = Daemon(config_for(tmp_path / "b", db, b_port, sink.port), b_port, tmp_path / "b.log")
    # A's session waits at RCPT (its reply timeout is long: the claims stay A's until A dies).
    sink.handler.holding = True
    sink.start()
    a.start()
    b.start()
    try:
        deliver(a_port, mail("Kill me", CUSTOMER, message_id="<kill-a@cliente.example>"), CUSTOMER)
        wait_for(lambda: sink.handler.held >= 1, 20, "A inside an SMTP session")
        wait_for(lambda: len(outbox_rows(b)) == 2 and {r["state"] for r in outbox_rows(b)} == {"claimed"}, 20,
                 "A's claims")
        a.kill()
        killed = time.monotonic()
        sink.handler.holding = False
        sink.wait_for(2, 20)
        taken = time.monotonic() - killed
        assert taken < 10, f"B took {taken:.1f} s to retake A's claims"
        wait_for(lambda: {r["state"] for r in outbox_rows(b)} == {"sent"}, 20, "sent by B")
        got = sink.received
        assert sorted(g.rcpt_tos[0] for g in got) == sorted([CUSTOMER, AGENT])
        listed = outbox_rows(b)
        assert {g.message["Message-ID"] for g in got} == {r["message_id"] for r in listed}
        assert all(r["last_error"] == outbox.RETAKEN for r in listed)  # may have gone out twice: said so
        # The normal case: B's own mail goes once, with no such mark.
        deliver(b_port, mail("Normal", "pedro@cliente.example", message_id="<normal-b@cliente.example>"),
                "pedro@cliente.example")
        sink.wait_for(4, 30)
        wait_for(lambda: {r["state"] for r in outbox_rows(b)} == {"sent"}, 20, "B's own mail sent")
        ids = [g.message["Message-ID"] for g in sink.received]
        assert len(ids) == len(set(ids)) == 4
        assert [r["last_error"] for r in outbox_rows(b) if r["to"] == "pedro@cliente.example"] == [""]
    finally:
        assert b.stop() == 0
