"""The sender's SMTP sessions against real aiosmtpd peers on loopback: SMTPUTF8 when the
server offers it and a clean failure of that mail alone when it does not, RSET after a
per-message error, sessions reused across mails and rounds within a bounded pool, and
the RFC 5321 timeouts (a slow reply to the final dot is waited for, never retried)."""
from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from conftest import HELPDESK, Env, mail
from maild.config import OutboundSmtp, Retry
from maild.outbound import outbox
from maild.outbound.compose import OutboundMail
from maild.outbound.pool import Pool
from maild.outbound.sender import Sender, SmtpTransport
from maild.outbound.transport import TransientFailure, dot_stuffed
from maild.store.models import OutboxRow
from daemons import Daemons, deliver, wait_for
from daemons import outbox as listed
from smtpsink import Sink

UTF8_CUSTOMER = "joão@clientes.test"
CUSTOMER = "maria@cliente.example.com.br"


@pytest.fixture
def plain_sink() -> Iterator[Sink]:
    """A server that does not offer SMTPUTF8."""
    s = Sink(smtputf8=False).start()
    yield s
    s.stop()


def sender_for(env: Env, port: int, connections: int = 1, max_messages: int = 100, **smtp: float) -> Sender:
    settings = OutboundSmtp(host="127.0.0.1", port=port, **{"timeout": 5, **smtp})
    transport = SmtpTransport(settings)
    return env.sender(Sender(env.app.db, transport, Retry(first_seconds=10, max_seconds=40), HELPDESK,
                             lambda: env.now, pool=Pool(transport, connections, 30, max_messages)))


def drain(sender: Sender, rounds: int = 200) -> None:
    for _ in range(rounds):
        if sender.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


def rows(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def queue(env: Env, count: int, to: str = CUSTOMER) -> None:
    """``count`` due mails in the outbox, as the planner leaves them."""
    with env.app.db.write() as session:
        for i in range(count):
            outbox.enqueue(session, OutboundMail(
                kind="notify", automatic=True, ticket_id=None, message_id=f"<queued.{i}.{time.time_ns()}@support.example.com>",
                envelope_from=HELPDESK, recipients=(to,), from_header=f"Support <{HELPDESK}>", to_header=to,
                subject=f"Mail {i}", body_text=f"Text {i}\n", date=env.now), env.now, env.now + timedelta(days=5))


# -- SMTPUTF8 and the session after an error -------------------------------------------------

def test_a_utf8_address_goes_out_with_smtputf8_when_the_server_offers_it(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    env.process(mail("Olá", f"João <{UTF8_CUSTOMER}>"))
    drain(sender_for(env, sink.port))
    assert {r.kind: r.state for r in rows(env)} == {"ack": "sent", "notify": "sent"}
    (ack,) = sink.to(UTF8_CUSTOMER)
    assert "SMTPUTF8" in ack.mail_options
    assert ack.message["To"].addresses[0].addr_spec == UTF8_CUSTOMER


def test_without_smtputf8_the_utf8_mail_fails_alone_and_the_next_goes_out(sqlite_env: Env, plain_sink: Sink) -> None:
    env = sqlite_env
    env.process(mail("Olá", f"João <{UTF8_CUSTOMER}>"))
    env.process(mail("Oi", CUSTOMER))
    drain(sender_for(env, plain_sink.port))
    by_addr = {(r.kind, r.to_addr): r for r in rows(env)}
    failed = by_addr[("ack", UTF8_CUSTOMER)]
    assert failed.state == "failed" and "SMTPUTF8" in failed.last_error and UTF8_CUSTOMER in failed.last_error
    assert by_addr[("ack", CUSTOMER)].state == "sent"
    assert [r.state for r in rows(env) if r.kind == "notify"] == ["sent", "sent"]
    assert len(plain_sink.received) == 3 and not plain_sink.to(UTF8_CUSTOMER)
    assert plain_sink.handler.sessions == 1  # the failure did not cost the session
    ticket = env.ticket(failed.ticket_id)
    assert any(h["kind"] == "delivery_failed" and "SMTPUTF8" in h["detail"] for h in ticket["events"])


def test_a_refused_recipient_is_reset_so_the_next_mail_in_the_session_goes_out(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    queue(env, 1, to="gone@cliente.example.com.br")
    queue(env, 2)
    sink.handler.refuse = {"gone@cliente.example.com.br"}
    drain(sender_for(env, sink.port))
    assert [r.state for r in rows(env)] == ["failed", "sent", "sent"]
    assert rows(env)[0].last_error.startswith("gone@cliente.example.com.br: 550")
    assert "503" not in " ".join(r.last_error for r in rows(env))  # never "nested MAIL"
    assert len(sink.received) == 2 and sink.handler.sessions == 1


def test_a_dropped_session_is_replaced_for_the_next_mail(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    queue(env, 2)
    sender = sender_for(env, sink.port)
    drain(sender)
    sink.stop()
    sink.start()  # the idle session the pool kept is gone with the old server
    queue(env, 2)
    env.now += timedelta(seconds=5)
    drain(sender)
    assert [r.state for r in rows(env)] == ["sent"] * 4
    assert sender.pool.opened == 2


# -- reuse and the pool's bound --------------------------------------------------------------

def test_queued_mail_goes_out_over_a_handful_of_sessions(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    queue(env, 300)
    sender = sender_for(env, sink.port, max_messages=100)
    drain(sender)
    assert len(sink.received) == 300 and {r.state for r in rows(env)} == {"sent"}
    ids = [r.message["Message-ID"] for r in sink.received]
    assert len(set(ids)) == 300
    assert sink.handler.sessions == 3 == sender.pool.opened  # 100 mails a session, across 15 rounds


def test_the_pool_sends_in_parallel_within_its_bound(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    queue(env, 60)
    sink.handler.data_delay = 0.05  # keeps sessions busy long enough to overlap
    drain(sender_for(env, sink.port, connections=3))
    assert len({r.message["Message-ID"] for r in sink.received}) == 60 == len(sink.received)
    assert sink.handler.open_most == 3 and sink.handler.sessions == 3


# -- RFC 5321 timeouts -----------------------------------------------------------------------

def test_a_slow_reply_to_the_final_dot_is_waited_for_and_each_mail_goes_once(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    queue(env, 2)
    sink.handler.data_delay = 2.5  # longer than the command timeout, within the DATA one
    sender = sender_for(env, sink.port, timeout=1, data_timeout=10)
    drain(sender)
    assert [r.state for r in rows(env)] == ["sent", "sent"] and all(r.last_error == "" for r in rows(env))
    assert len(sink.received) == 2


def test_no_reply_to_the_final_dot_is_never_retried(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    queue(env, 1)
    sink.handler.data_delay = 3  # the server takes the mail after the client stopped waiting
    sender = sender_for(env, sink.port, timeout=1, data_timeout=1)
    assert sender.run_once() == 1
    (row,) = rows(env)
    assert row.state == "sent" and row.last_error.startswith("unconfirmed: no reply to the end of DATA")
    sink.wait_for(1)
    for _ in range(3):  # later rounds, long after any backoff: nothing to resend
        env.now += timedelta(hours=1)
        assert sender.run_once() == 0
    assert len(sink.received) == 1


def test_a_smarthost_that_refuses_the_greeting_leaves_no_socket_open() -> None:
    # It answers 220, then 554 to EHLO and HELO: the session never becomes usable. An unclosed
    # socket would be a ResourceWarning, which the test configuration makes an error.
    with socket.create_server(("127.0.0.1", 0)) as server:
        def refuse() -> None:
            peer, _ = server.accept()
            with peer, peer.makefile("rwb") as stream:
                stream.write(b"220 smarthost ready\r\n")
                stream.flush()
                while stream.readline():
                    stream.write(b"554 5.7.1 not you\r\n")
                    stream.flush()

        answering = threading.Thread(target=refuse)
        answering.start()
        transport = SmtpTransport(OutboundSmtp(host="127.0.0.1", port=server.getsockname()[1], timeout=5))
        with pytest.raises(TransientFailure, match="554"):
            transport.connect()
        gc.collect()
        answering.join(10)


def test_the_rfc_5321_timeouts_are_the_defaults() -> None:
    settings = OutboundSmtp()
    assert (settings.timeout, settings.data_timeout) == (300, 600)


def test_dot_stuffing_and_line_ends() -> None:
    assert dot_stuffed(b"a\n.b\r\n..c\rd") == b"a\r\n..b\r\n...c\r\nd\r\n"


# -- through a running daemon ----------------------------------------------------------------

@pytest.mark.slow
def test_a_running_daemon_waits_for_a_slow_final_reply_and_sends_each_mail_once(sink: Sink,
                                                                                daemons: Daemons) -> None:
    sink.handler.data_delay = 3  # each mail's final dot answered after 3 s, past the 1 s command timeout
    daemon = daemons.new(outbound=f"""\
        outbound:
          smtp: {{host: 127.0.0.1, port: {sink.port}, timeout: 1, data_timeout: 10}}
          retry: {{first_seconds: 0.3, max_seconds: 1, poll_seconds: 0.2}}
        """)
    port = daemon.port
    daemon.start()
    try:
        deliver(port, mail("Devagar", CUSTOMER, message_id="<slow@cliente.example>"), CUSTOMER)
        wait_for(lambda: len(listed(daemon)) == 2 and {r["state"] for r in listed(daemon)} == {"sent"}, 60,
                 "both mails sent")
        assert all(r["attempts"] == 1 and r["last_error"] == "" for r in listed(daemon))
        sink.handler.data_delay = 0
        deliver(port, mail("Depois", "pedro@cliente.example", message_id="<after@cliente.example>"),
                "pedro@cliente.example")
        sink.wait_for(4, 30)  # later mail flows; the slow ones were not sent again
        ids = [r.message["Message-ID"] for r in sink.received]
        assert len(ids) == len(set(ids)) == 4
    finally:
        assert daemon.stop() == 0
