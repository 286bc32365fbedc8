"""What an agent did not write never reaches a customer, as users meet it: `maild run` in a
subprocess, mail in over SMTP, maild's mail out to a real SMTP peer (aiosmtpd on loopback).

The agent's replies are built the way their mail client builds them, from the real text of
the notification the sink received: To its Reply-To, In-Reply-To its Message-ID.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr

import pytest
import yaml
from sqlalchemy import create_engine, select, update

from conftest import AGENT, mail
from maild.outbound.copies import norm
from maild.store.models import Ticket
from smtpsink import Received, Sink
from test_commands_e2e import show
from daemons import Daemon, Daemons, deliver, outbound_section, settle, text, wait_for

pytestmark = pytest.mark.slow
CUSTOMERS = ["maria@cliente.example.com.br", "joao@cliente.example.com.br", "lia@cliente.example.com.br"]
GMAIL_ATTRIBUTION = "Em seg., 2 de nov. de 2026 às 10:00, Test Helpdesk <support@support.example.com> escreveu:"


@pytest.fixture
def daemon(daemons: Daemons, sink: Sink) -> Daemon:
    d = daemons.new(outbound=outbound_section(sink.port),
                    scheduler="scheduler: {unaccepted_minutes: 60, poll_seconds: 0.3, digest: {enabled: false}}\n")
    data = yaml.safe_load(d.config.read_text(encoding="utf-8"))
    data["helpdesk"]["language"] = "pt-BR"
    d.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return d


# -- the agent's mail client -------------------------------------------------------------
def quoted(body: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in body.strip("\n").split("\n"))


def gmail(top: str, got: Received) -> str:
    return f"{top}\n\n{GMAIL_ATTRIBUTION}\n\n{quoted(text(got))}\n"


def outlook(top: str, got: Received) -> str:
    m = got.message
    return (f"{top}\n\n________________________________\nDe: {m['From']}\nEnviado: segunda-feira, 2 de novembro de "
            f"2026 10:00\nPara: {m['To']}\nAssunto: {m['Subject']}\n\n{text(got)}")


def thunderbird(top: str, got: Received) -> str:
    return f"{top}\n\nOn 11/2/26 10:00, Test Helpdesk wrote:\n{quoted(text(got))}\n"


def reply(got: Received, body: str, message_id: str, html_only: bool = False) -> bytes:
    """The agent answers ``got``: To its Reply-To, threaded on it, as plain text or HTML only."""
    m = got.message
    headers = {"In-Reply-To": m["Message-ID"], "References": f"{m['References'] or ''} {m['Message-ID']}".strip()}
    to = parseaddr(m["Reply-To"] or m["From"])[1]
    if not html_only:
        return mail(f"Re: {m['Subject']}", f"Ana <{AGENT}>", body=body, message_id=message_id, to=to, headers=headers)
    top, _, _ = body.partition("\n\n" + GMAIL_ATTRIBUTION)
    out = EmailMessage()
    out["From"], out["To"], out["Subject"], out["Message-ID"] = f"Ana <{AGENT}>", to, f"Re: {m['Subject']}", message_id
    for name, value in headers.items():
        out[name] = value
    lines = "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in top.split("\n"))
    quote = "<br>".join(html.escape(line) for line in text(got).strip("\n").split("\n"))
    out.set_content(f'<div dir="ltr">{lines}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
                    f"{html.escape(GMAIL_ATTRIBUTION)}<br></div><blockquote class=\"gmail_quote\">{quote}"
                    "</blockquote></div>", subtype="html")
    return out.as_bytes(policy=SMTP)


def customer_opens(daemon: Daemon, sink: Sink, n: int, body: str) -> Received:
    """Customer n writes in; returns the notification the agent received for the new ticket."""
    before = len(sink.to(AGENT))
    deliver(daemon.port, mail(f"Pedido {n + 1}", CUSTOMERS[n], message_id=f"<c-{n}@cliente.example>", body=body),
            CUSTOMERS[n])
    wait_for(lambda: len(sink.to(AGENT)) > before and len(sink.to(CUSTOMERS[n])) == 1, 30, "ack and notification")
    return sink.to(AGENT)[-1]


def answer(daemon: Daemon, got: Received, raw: bytes) -> None:
    deliver(daemon.port, raw, AGENT, to=parseaddr(got.message["Reply-To"])[1])


def agent_commands(daemon: Daemon, sink: Sink, ticket: int, got: Received, raw: bytes,
                   applied: Callable[[dict], bool]) -> None:
    answer(daemon, got, raw)
    wait_for(lambda: applied(show(daemon, ticket)), 30, f"the commands on ticket {ticket}")
    settle(sink, daemon)


def lines_of(body: str) -> set[str]:
    return {n for line in body.split("\n") if (n := norm(line))}


def test_commands_over_quoted_notifications_reach_no_customer_and_real_text_arrives_alone(
        daemon: Daemon, sink: Sink) -> None:
    daemon.start()
    customer_text = "Há água no teto da sala desde ontem.\nO apartamento é o 42.\n"
    notice = customer_opens(daemon, sink, 0, customer_text)
    assert "Novo chamado" in text(notice)

    # Nobody took ticket 1 for an hour: the scheduler announces it again to the agents.
    engine = create_engine(f"sqlite:///{daemon.config.parent / 'maild.db'}")
    with engine.begin() as c:
        created = c.execute(select(Ticket.created_at).where(Ticket.id == 1)).scalar_one()
        c.execute(update(Ticket).where(Ticket.id == 1).values(created_at=created - timedelta(minutes=61)))
    engine.dispose()
    wait_for(lambda: any("Ninguém assumiu" in text(r) for r in sink.to(AGENT)), 30, "the re-announcement")
    [again] = [r for r in sink.to(AGENT) if "Ninguém assumiu" in text(r)]

    # Gmail: /take and /status on top of the quoted re-announcement.
    to_agent = len(sink.to(AGENT))
    agent_commands(daemon, sink, 1, again, reply(again, gmail("/take\n/status aguardando resposta", again), "<a-1@s.example>"),
                   lambda t: t["assignee"] == AGENT)
    assert len(sink.to(CUSTOMERS[0])) == 1  # the acknowledgement only
    assert show(daemon, 1)["status"] == "waiting_agent"
    assert len(sink.to(AGENT)) == to_agent  # no "empty reply" feedback for a command mail

    # Outlook: /take above an unquoted header block and the notification.
    second = customer_opens(daemon, sink, 1, "Preciso da segunda via do boleto.\n")
    agent_commands(daemon, sink, 2, second, reply(second, outlook("/take", second), "<a-2@s.example>"),
                   lambda t: t["assignee"] == AGENT)
    assert len(sink.to(CUSTOMERS[1])) == 1 and show(daemon, 2)["status"] != "waiting_customer"

    # Gmail, HTML only: the quote is a <blockquote>.
    third = customer_opens(daemon, sink, 2, "Quero agendar uma visita ao imóvel.\n")
    agent_commands(daemon, sink, 3, third, reply(third, gmail("/take\n/priority high", third), "<a-3@s.example>",
                                          html_only=True),
                   lambda t: t["assignee"] == AGENT and t["priority"] == "high")
    assert len(sink.to(CUSTOMERS[2])) == 1 and show(daemon, 3)["status"] != "waiting_customer"

    # Thunderbird: real text on top of the first notification reaches customer 1, alone.
    words = "Olá Maria, o técnico passa amanhã às 9h.\nAna"
    answer(daemon, notice, reply(notice, thunderbird(words, notice), "<a-4@s.example>"))
    wait_for(lambda: len(sink.to(CUSTOMERS[0])) == 2, 30, "the relayed reply")
    settle(sink, daemon)
    relayed = text(sink.to(CUSTOMERS[0])[-1])
    assert relayed.startswith(words + "\n")
    leaked = lines_of(relayed) & (lines_of(text(notice)) | lines_of(text(again)))
    assert not leaked, leaked
    assert show(daemon, 1)["status"] == "waiting_customer"
    assert daemon.stop() == 0
