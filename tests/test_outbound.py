"""Replies out, in process: what maild queues for each mail, and the sender against a real
SMTP peer (aiosmtpd on loopback), on SQLite and PostgreSQL."""
from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import AGENT, AGENT_AR, HELPDESK, TRUSTING_MX, Env, agent_address, make_env, mail
from maild.config import OutboundSmtp, Retry
from maild.outbound.sender import Sender, SmtpTransport
from maild.store.models import AddressStatus, OutboxRow
from smtpsink import Received, Sink

CUSTOMER = "maria@cliente.example.com.br"


def sender_for(env: Env, port: int, **retry: float) -> Sender:
    settings = OutboundSmtp(host="127.0.0.1", port=port, timeout=5)
    retry_settings = Retry(**retry) if retry else env.config.outbound.retry
    return env.sender(Sender(env.app.db, SmtpTransport(settings), retry_settings, HELPDESK, lambda: env.now))


def drain(sender: Sender, rounds: int = 50) -> None:
    """Run sender rounds until one finds nothing due."""
    for _ in range(rounds):
        if sender.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


def rows(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def parsed(received: Received) -> email.message.EmailMessage:
    return received.message


def text_of(received: Received) -> str:
    return received.message.get_content().replace("\r\n", "\n")


def test_new_ticket_queues_one_ack_and_one_agent_notification(env: Env) -> None:
    first = env.process(mail("Vazamento", f"Maria <{CUSTOMER}>", message_id="<m1@cliente.example>"))
    ack, notify = rows(env)
    signer = env.app.processor.signer
    assert (ack.kind, ack.to_addr, ack.state, ack.automatic) == ("ack", CUSTOMER, "queued", True)
    assert signer.ticket_from_message_id(ack.message_id) == first.ticket_id
    assert ack.in_reply_to == "<m1@cliente.example>" and ack.references == "<m1@cliente.example>"
    assert ack.subject == f"Re: [Support #{first.ticket_id}] Vazamento"
    assert signer.ticket_from_address(ack.reply_to.split("<")[1].rstrip(">")) == first.ticket_id
    assert (notify.kind, notify.to_addr) == ("notify", AGENT)
    assert signer.ticket_from_message_id(notify.message_id) == first.ticket_id
    assert "Maria" in notify.from_header and HELPDESK in notify.from_header
    ticket = env.ticket(first.ticket_id)
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out"]
    assert ticket["message_count"] == 1  # automatic mail is not counted as a message


def test_customer_text_is_data_not_template_code(env: Env) -> None:
    env.process(mail("{{ 7*7 }}", body="{{ config }} {% for x in range(3) %}x{% endfor %}\n"))
    notify = [r for r in rows(env) if r.kind == "notify"][0]
    assert "{{ config }} {% for x in range(3) %}x{% endfor %}" in notify.body_text
    assert "{{ 7*7 }}" in notify.subject


@pytest.mark.parametrize("sender,headers", [
    ("noreply@robot.example", {}),
    ("MAILER-DAEMON@mx.example", {}),
    ("postmaster@mx.example", {}),
    ("ooo@cliente.example", {"Auto-Submitted": "auto-replied"}),
    ("news@list.example", {"List-Id": "<news.list.example>", "Precedence": "bulk"}),
    ("maria@cliente.example", {"Return-Path": "<>"}),
    (HELPDESK, {}),
])
def test_no_automatic_mail_to_machines_lists_or_loops(sqlite_env: Env, sender: str, headers: dict[str, str]) -> None:
    sqlite_env.process(mail("Hello", sender, headers=headers))
    assert [r for r in rows(sqlite_env) if r.kind == "ack"] == []


def test_mail_carrying_our_loop_header_is_dropped(sqlite_env: Env) -> None:
    outcome = sqlite_env.process(mail("Re: anything", CUSTOMER, headers={"X-Maild-Loop": HELPDESK}))
    assert outcome.status == "ignored" and rows(sqlite_env) == []


def test_agent_reply_is_relayed_with_the_customers_thread(env: Env, sink: Sink) -> None:
    raw = mail("Chave", f"Maria <{CUSTOMER}>", message_id="<c1@cliente.example>", body="Onde pego a chave?\n")
    raw = raw.replace(b"To: ", b"Cc: Pedro <pedro@cliente.example>\r\nTo: ", 1)
    first = env.process(raw)
    notify = [r for r in rows(env) if r.kind == "notify"][0]
    reply_body = ("Pode retirar na portaria.\n\nEm seg., 2 de nov. de 2026 às 10:00, Maria <maria@x> escreveu:\n"
                  "> Onde pego a chave?\n")
    agent_mail = mail("Re: " + notify.subject, f"Ana <{AGENT}>", body=reply_body,
                      to=notify.reply_to.split("<")[1].rstrip(">"), headers={"In-Reply-To": notify.message_id})
    outcome = env.process(agent_mail)
    assert outcome.ticket_id == first.ticket_id
    [relay] = [r for r in rows(env) if r.kind == "reply"]
    assert relay.automatic is False and relay.recipients == f"{CUSTOMER}, pedro@cliente.example"
    assert relay.in_reply_to == "<c1@cliente.example>"
    ticket = env.ticket(first.ticket_id)
    assert ticket["status"] == "waiting_customer"
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out", "out"]

    drain(sender_for(env, sink.port))
    ack, got = sink.to(CUSTOMER)  # the acknowledgement, then the agent's reply
    msg = parsed(got)
    assert got.rcpt_tos == [CUSTOMER, "pedro@cliente.example"] and got.mail_from == HELPDESK
    assert AGENT not in got.data.decode() and "ana@" not in got.data.decode().lower()
    assert text_of(got) == "Pode retirar na portaria.\n\n-- \nAna, Test Helpdesk\n"
    assert msg["In-Reply-To"] == "<c1@cliente.example>" and msg["Message-ID"] == relay.message_id
    assert f"[Support #{first.ticket_id}]" in msg["Subject"] and msg["Cc"] == "pedro@cliente.example"
    assert msg["Auto-Submitted"] is None and msg["X-Maild-Loop"] == HELPDESK

    # The customer answers the relayed reply: same ticket, waiting on the agent again.
    again = env.process(mail("Re: " + msg["Subject"], CUSTOMER, headers={"In-Reply-To": msg["Message-ID"]}))
    assert again.ticket_id == first.ticket_id
    assert env.ticket(first.ticket_id)["status"] == "waiting_agent"


def test_agent_note_is_never_sent(env: Env) -> None:
    first = env.process(mail("Conta", CUSTOMER))
    env.process(mail(f"Re: [Support #{first.ticket_id}] Conta", AGENT, body="/note\nCliente liga amanhã.\n",
                     to=agent_address(env, first.ticket_id)))
    assert [r.kind for r in rows(env)] == ["ack", "notify"]
    ticket = env.ticket(first.ticket_id)
    assert ticket["messages"][-1]["direction"] == "note"
    assert ticket["messages"][-1]["body_text"] == "Cliente liga amanhã.\n"
    assert ticket["status"] == "new"


def test_unknown_command_and_empty_reply_get_feedback_not_a_relay(env: Env) -> None:
    first = env.process(mail("Conta", CUSTOMER))
    to = agent_address(env, first.ticket_id)
    env.process(mail(f"Re: [Support #{first.ticket_id}] Conta", AGENT, body="/frobnicate now\nhello\n", to=to))
    env.process(mail(f"Re: [Support #{first.ticket_id}] Conta", AGENT, body="\n> only a quote\n", to=to))
    kinds = [r.kind for r in rows(env)]
    assert kinds == ["ack", "notify", "feedback", "feedback"]
    feedback = [r for r in rows(env) if r.kind == "feedback"]
    assert all(r.to_addr == AGENT for r in feedback) and "/frobnicate" in feedback[0].body_text


def test_bounce_of_a_sent_reply_is_a_note_and_stops_automatic_mail(env: Env, sink: Sink) -> None:
    first = env.process(mail("Visita", CUSTOMER))
    [ack] = [r for r in rows(env) if r.kind == "ack"]
    drain(sender_for(env, sink.port))
    dsn = (f"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nTo: {HELPDESK}\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.example>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
           f"Final-Recipient: rfc822; {CUSTOMER}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
           f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ack.message_id}\r\n"
           f"Subject: {ack.subject}\r\n\r\n--B--\r\n").encode()
    outcome = env.process(dsn)
    assert outcome.status == "appended" and outcome.ticket_id == first.ticket_id
    ticket = env.ticket(first.ticket_id)
    assert ticket["status"] == "new" and ticket["messages"][-1]["direction"] == "note"
    assert any(e["kind"] == "bounce" and "permanent" in e["detail"] for e in ticket["events"])
    with env.app.db.read() as session:
        assert session.get(AddressStatus, CUSTOMER).undeliverable_until > env.now
    before = len(rows(env))
    env.process(mail("Outro assunto", CUSTOMER))
    assert [r.kind for r in rows(env)[before:]] == ["notify"]  # no acknowledgement to a dead address
    assert len(sink.to(CUSTOMER)) == 1


def _robot_answer(received: Received, sender: str, n: int, fixed: bool = False) -> bytes:
    """A robot that answers every mail with a fresh message (no threading headers): a
    numbered text, or (``fixed``) always the same one."""
    body = "Received, thanks.\n" if fixed else f"Received, thanks. Your request number is {n}.\n"
    return mail("Your message", sender, message_id=f"<robot-{n}@robot.example>", body=body)


def test_caps_count_per_recipient_so_agent_notices_never_use_up_the_customers(env: Env) -> None:
    from maild.outbound import outbox

    customer = "maria@cliente.example.com.br"
    first = env.process(mail("Chave", customer))
    queued = [(r.kind, r.to_addr) for r in rows(env)]
    assert ("ack", customer) in queued and ("notify", AGENT) in queued
    windows = env.app.processor.planner.windows
    with env.app.db.read() as session:
        for address in (customer, AGENT):
            assert outbox.recent(session, address, first.ticket_id, windows, env.now).on_ticket == 1


def test_an_agent_who_opens_a_ticket_by_mail_gets_no_acknowledgement_of_it(tmp_path: Path, db_url: str) -> None:
    env = make_env(tmp_path, db_url, security=TRUSTING_MX)  # a new mail's proof: the MX's DKIM result
    outcome = env.process(mail("Pedido por telefone do Sr. João", AGENT, headers=AGENT_AR))
    assert outcome.status == "created"
    assert [(r.kind, r.to_addr) for r in rows(env) if r.to_addr == AGENT] == []
    env.app.db.dispose()


def _exchange(env: Env, sink: Sink, robot: str, fixed: bool) -> None:
    sender = sender_for(env, sink.port)
    env.process(mail("Hello", robot, message_id="<robot-0@robot.example>"))
    answered = 0
    for n in range(1, 200):  # drain until idle: deliver, let the robot answer, repeat
        drain(sender)
        pending = sink.to(robot)[answered:]
        if not pending:
            break
        for got in pending:
            env.process(_robot_answer(got, robot, n, fixed), advance=timedelta(seconds=1))
        answered += len(pending)


def test_a_robot_answering_every_mail_is_stopped_by_the_burst_cap(env: Env, sink: Sink) -> None:
    # Each answer a different text, one a second: the burst cap (3 a minute), not the
    # 10-minute one (30), ends the exchange.
    robot = "alerts@monitor.example"
    _exchange(env, sink, robot, fixed=False)
    assert len(sink.to(robot)) == env.config.outbound.limits.per_address_burst.count == 3
    assert len(env.tickets()) == 4
    assert any(e["kind"] == "mail_held" for t in env.tickets()[-1:] for e in env.ticket(t["id"])["events"])


def test_a_robot_answering_with_one_fixed_text_opens_one_ticket_for_it(env: Env, sink: Sink) -> None:
    robot = "alerts@monitor.example"
    _exchange(env, sink, robot, fixed=True)
    # "Hello" opened #1 (acknowledged), the robot's first answer #2 (acknowledged); its
    # second, the same mail again, joined #2: nothing more to answer.
    assert len(sink.to(robot)) == 2
    tickets = sorted(env.tickets(), key=lambda t: t["id"])
    assert [t["message_count"] for t in tickets] == [1, 2]
    events = env.ticket(tickets[1]["id"])["events"]
    assert any("thread:repeat" in str(e) for e in events), events


def test_an_autoresponder_answering_everything_gets_one_ack_only(env: Env, sink: Sink) -> None:
    ooo = "ferias@cliente.example"
    sender = sender_for(env, sink.port)
    env.process(mail("Pergunta", ooo, message_id="<q@cliente.example>"))
    for n in range(20):
        drain(sender)
        pending = sink.to(ooo)[n:]
        if not pending:
            break
        got = parsed(pending[0])
        env.process(mail(f"Resposta automática: {got['Subject']}", ooo, message_id=f"<ooo-{n}@cliente.example>",
                         headers={"In-Reply-To": got["Message-ID"]}))
    assert len(sink.to(ooo)) == 1


def test_sender_retries_4xx_and_refused_connections_then_delivers_once(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    env.process(mail("Oi", CUSTOMER))
    port = sink.port
    sink.stop()  # the smarthost is down: connection refused
    sender = sender_for(env, port, first_seconds=10, max_seconds=40)
    assert sender.run_once() == 2
    assert {r.state for r in rows(env)} == {"queued"} and all(r.attempts == 1 for r in rows(env))
    assert "Connection refused" in rows(env)[0].last_error or "ConnectionRefused" in rows(env)[0].last_error
    assert sender.run_once() == 0  # not due before the backoff
    env.now += timedelta(seconds=11)
    sink.start()
    sink.handler.fail_next = 2  # up, but 451 for both
    assert sender.run_once() == 2
    assert all(r.state == "queued" and r.last_error.startswith("451") for r in rows(env))
    env.now += timedelta(seconds=15)
    assert sender.run_once() == 0  # the second wait is twice as long (20 s)
    env.now += timedelta(seconds=10)
    drain(sender)
    assert {r.state for r in rows(env)} == {"sent"}
    assert len(sink.received) == 2
    ids = [parsed(r)["Message-ID"] for r in sink.received]
    assert sorted(ids) == sorted(r.message_id for r in rows(env))


def test_5xx_fails_the_mail_with_the_reason_on_the_ticket(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    first = env.process(mail("Oi", CUSTOMER))
    sink.handler.fail_next, sink.handler.fail_code = 1, "550 5.1.1 no such user"
    drain(sender_for(env, sink.port))
    ack = [r for r in rows(env) if r.kind == "ack"][0]
    assert ack.state == "failed" and "550 5.1.1 no such user" in ack.last_error
    assert any(e["kind"] == "delivery_failed" for e in env.ticket(first.ticket_id)["events"])


def test_a_stale_claim_is_taken_again_and_sent_once(sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    env.process(mail("Oi", CUSTOMER))
    with env.app.db.write() as session:  # a sender beat, claimed the rows and died
        from maild.outbound import outbox
        outbox.beat(session, "deadsender12", "node-b", 1, env.now)
        outbox.claim(session, "deadsender12-round", env.now, env.now, 10)
    sender = sender_for(env, sink.port, heartbeat_timeout_seconds=10)
    assert sender.run_once() == 0  # its heartbeat is still fresh
    env.now += timedelta(seconds=11)
    drain(sender)
    assert len(sink.received) == 2 and {r.state for r in rows(env)} == {"sent"}
    assert all(r.maybe_delivered and r.last_error == outbox.RETAKEN for r in rows(env))
    drain(sender)
    assert len(sink.received) == 2


def test_outbox_cli_lists_and_retries(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    env.process(mail("Oi", CUSTOMER))
    with env.app.db.write() as session:
        for row in session.scalars(select(OutboxRow)):
            row.state, row.last_error = "failed", "550 nope"
    cli = [sys.executable, "-m", "maild", "--config", str(tmp_path / "maild.yaml"), "outbox"]
    listed = subprocess.run([*cli, "list", "--state", "failed"], capture_output=True, text=True)
    assert listed.returncode == 0 and "550 nope" in listed.stdout and CUSTOMER in listed.stdout
    retried = subprocess.run([*cli, "retry"], capture_output=True, text=True)
    assert retried.returncode == 0 and retried.stdout.startswith("2 mail(s) queued again")
    assert {r.state for r in rows(env)} == {"queued"}


def test_a_mail_that_cannot_be_encoded_fails_alone(sqlite_env: Env) -> None:
    env = sqlite_env
    env.process(mail("Olá", "Jöse <jöse@exämple.com>"))
    env.process(mail("Oi", CUSTOMER))
    sink = Sink(smtputf8=False).start()  # a UTF-8 address travels only with SMTPUTF8
    try:
        drain(sender_for(env, sink.port))
    finally:
        sink.stop()
    states = {r.to_addr: r.state for r in rows(env) if r.kind == "ack"}
    assert states[CUSTOMER] == "sent" and states["jöse@exämple.com"] == "failed"
