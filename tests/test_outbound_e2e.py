"""Replies out, as a user meets them: `maild run` in a subprocess, mail in over SMTP, mail out
to a real SMTP peer (aiosmtpd on loopback) standing in for the smarthost."""
from __future__ import annotations

import json
from email.utils import parseaddr

import pytest

from conftest import AGENT, HELPDESK, mail
from daemons import (Daemon, daemon, deliver, drain, outbound_section, outbox, settle, sink,
                     text, wait_for)
from smtpsink import Sink

# shared with other tests
__all__ = ["daemon", "deliver", "outbound_section", "outbox", "settle", "sink", "text"]

pytestmark = pytest.mark.slow
CUSTOMER = "maria@cliente.example.com.br"


def test_customer_agent_customer_over_real_smtp(daemon: Daemon, sink: Sink) -> None:
    daemon.start()
    deliver(daemon.port, mail("Infiltração no teto", f"Maria <{CUSTOMER}>", message_id="<c-1@cliente.example>",
                              body="Há água no teto da sala.\n"), CUSTOMER)
    sink.wait_for(2)
    got = settle(sink, daemon)
    [ack] = [r for r in got if r.rcpt_tos == [CUSTOMER]]
    [notify] = [r for r in got if r.rcpt_tos == [AGENT]]
    a = ack.message
    # The envelope sender is the ack's own signed bounce address (VERP).
    assert parseaddr(a["From"])[1] == HELPDESK and ack.mail_from.startswith("support+bounce-")
    assert a["In-Reply-To"] == "<c-1@cliente.example>" and a["References"] == "<c-1@cliente.example>"
    assert a["Subject"] == "Re: [Support #1] Infiltração no teto"
    assert a["Auto-Submitted"] == "auto-replied" and a["X-Auto-Response-Suppress"] == "All"
    assert a["X-Maild-Loop"] == HELPDESK
    assert parseaddr(a["Reply-To"])[1].startswith("support+1-")
    assert a["Message-ID"].startswith("<maild.1.")

    # The agent answers the notification from their own mail client and address.
    n = notify.message
    assert n["Auto-Submitted"] == "auto-generated" and "Há água no teto" in text(notify)
    reply_to = parseaddr(n["Reply-To"])[1]
    agent_reply = mail(f"Re: {n['Subject']}", f"Ana <{AGENT}>", message_id="<agent-1@support.example.com>",
                       to=reply_to, body=("Vamos enviar um técnico amanhã às 9h.\n\n"
                                          f"Em seg., 2 de nov. de 2026 às 10:00, Maria via Test Helpdesk "
                                          f"<{HELPDESK}> escreveu:\n> Há água no teto da sala.\n"),
                       headers={"In-Reply-To": n["Message-ID"], "References": n["Message-ID"]})
    deliver(daemon.port, agent_reply, AGENT, to=reply_to)
    sink.wait_for(3)
    got = settle(sink, daemon)
    [relay] = [r for r in got[2:] if r.rcpt_tos == [CUSTOMER]]
    r = relay.message
    assert text(relay).startswith("Vamos enviar um técnico amanhã às 9h.\n") and "escreveu" not in text(relay)
    assert AGENT not in relay.data.decode("utf-8", "replace") and parseaddr(r["From"])[1] == HELPDESK
    assert r["In-Reply-To"] == "<c-1@cliente.example>" and "<c-1@cliente.example>" in r["References"]
    assert "[Support #1]" in r["Subject"] and r["Auto-Submitted"] is None
    assert len(got) == 3  # the agent got no copy of their own reply

    # The customer answers the agent's reply: the same ticket, back to waiting_agent.
    deliver(daemon.port, mail(f"Re: {r['Subject']}", CUSTOMER, message_id="<c-2@cliente.example>",
                              body="Combinado, obrigada!\n", to=parseaddr(r["Reply-To"])[1],
                              headers={"In-Reply-To": r["Message-ID"], "References": r["References"] + " " + r["Message-ID"]}),
            CUSTOMER)
    wait_for(lambda: daemon.tickets()[0]["status"] == "waiting_agent", 20, "the customer's answer")
    [ticket] = daemon.tickets()
    shown = json.loads(daemon.cli("tickets", "show", "1", "--json").stdout)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out", "out", "in"]
    assert shown["messages"][2]["message_id"] == r["Message-ID"]
    sink.wait_for(4)
    assert [x.rcpt_tos for x in settle(sink, daemon)[3:]] == [[AGENT]]  # only the agent hears of it
    assert daemon.stop() == 0


def test_outbox_survives_a_smarthost_that_is_down_then_answers_451(daemon: Daemon, sink: Sink) -> None:
    sink.stop()  # the smarthost is down: connection refused
    daemon.start()
    for n in range(3):
        deliver(daemon.port, mail(f"Pedido {n}", f"cliente{n}@cliente.example", message_id=f"<down-{n}@x.example>"),
                f"cliente{n}@cliente.example")
    wait_for(lambda: len(outbox(daemon)) == 6 and all(r["attempts"] >= 2 for r in outbox(daemon)), 30,
             "retries against a dead smarthost")
    assert all(r["state"] in ("queued", "claimed") for r in outbox(daemon))
    sink.handler.fail_next = 4  # up again, but "451 try again later" for a while
    sink.start()
    sink.wait_for(6, 40)
    got = settle(sink, daemon)
    drain(daemon)  # nothing left that could still come
    assert len(sink.received) == 6
    ids = [g.message["Message-ID"] for g in got]
    assert len(set(ids)) == 6 and set(ids) == {r["message_id"] for r in outbox(daemon)}
    assert daemon.stop() == 0


def test_sigkill_between_claim_and_send_delivers_each_mail_once(daemon: Daemon, sink: Sink) -> None:
    sink.handler.holding = True  # every SMTP session waits at RCPT: claimed, not sent
    # ... until the kill, however slow the machine: no client timeout in between.
    config = daemon.config.read_text()
    assert "timeout: 5}" in config
    daemon.config.write_text(config.replace("timeout: 5}", "timeout: 60}"))
    daemon.start()
    deliver(daemon.port, mail("Kill me", CUSTOMER, message_id="<kill@cliente.example>"), CUSTOMER)
    wait_for(lambda: sink.handler.held >= 1, 20, "the sender inside an SMTP session")
    assert {r["state"] for r in outbox(daemon)} == {"claimed"}
    daemon.kill()
    sink.handler.holding = False
    daemon.start()
    sink.wait_for(2, 30)
    got = settle(sink, daemon)
    drain(daemon)
    assert len(sink.received) == 2
    assert sorted(g.rcpt_tos[0] for g in got) == sorted([CUSTOMER, AGENT])
    rows = outbox(daemon)
    assert {r["state"] for r in rows} == {"sent"} and all(r["attempts"] == 2 for r in rows)
    assert {g.message["Message-ID"] for g in got} == {r["message_id"] for r in rows}  # the same Message-IDs
    assert daemon.stop() == 0
