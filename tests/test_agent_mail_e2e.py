"""Agents working from their mail client, as they meet it: `maild run` in a subprocess, mail
in over SMTP, mail out to a real SMTP peer (aiosmtpd), tickets read back with the CLI.

Atomic commands, feedback past the automatic-mail caps, replying takes the ticket, one thread
per ticket, one signature, a trigger rule with several events, tickets opened on behalf of a
customer (hidden and visible), clones, and no digest with nothing to report."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import AGENT, free_port, mail, write_config
from smtpsink import Received, Sink
from test_commands import BRUNO, CUSTOMER, TRUSTED_AR, commands_config
from test_e2e import Daemon, wait_for
from test_outbound_e2e import deliver, outbound_section, outbox, settle, sink, text  # noqa: F401 (sink: a fixture)

from maild.notify.rules import DEFAULT_TRIGGERS_DATA

pytestmark = pytest.mark.slow
ROOT = "<c-1@cliente.example>"
AR = {"Authentication-Results": TRUSTED_AR}
# One rule for new tickets and customer replies, naming the new-ticket template.
RULES = [r for r in DEFAULT_TRIGGERS_DATA if r["name"] not in ("agents_new_ticket", "customer_replied")] + [
    {"name": "agents_news", "on": ["ticket_created", "customer_replied"], "when": {"visible": True},
     "to": ["assignee"], "fallback": ["agents"], "template": "notify_new_ticket"}]


@pytest.fixture
def start(tmp_path: Path, sink: Sink) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def run(**changes: Any) -> Daemon:
        port = free_port()
        config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                              outbound=outbound_section(sink.port))
        commands_config(config, security={"agent_auth": {"trusted_authserv_ids": ["mx.support.example.com"]}},
                        triggers=RULES)
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        for key, value in changes.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        daemon = Daemon(config, port, tmp_path / "maild.log")
        sink.start()
        daemon.start()
        started.append(daemon)
        return daemon

    yield run
    for d in started:
        if d.proc and d.proc.poll() is None:
            d.kill()


def show(daemon: Daemon, ticket: int) -> dict[str, Any]:
    result = daemon.cli("tickets", "show", str(ticket), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def answer(daemon: Daemon, received: Received, sender: str, body: str, message_id: str) -> None:
    """The agent answers a mail from maild with their mail client: to its Reply-To."""
    to = received.message["Reply-To"].addresses[0].addr_spec
    deliver(daemon.port, mail(f"Re: {received.message['Subject']}", sender, body=body, message_id=message_id, to=to,
                              headers={"In-Reply-To": received.message["Message-ID"]}), sender, to=to)


def one(sink: Sink, daemon: Daemon, count: int, where: Callable[[Received], bool]) -> Received:
    sink.wait_for(count, 60)
    found = [r for r in settle(sink, daemon, 60) if where(r)]
    assert len(found) == 1, [(r.rcpt_tos, r.message["Subject"]) for r in sink.received]
    return found[0]


def test_an_agents_day_in_the_mail_client(start: Callable[..., Daemon], sink: Sink) -> None:
    daemon = start()
    deliver(daemon.port, mail("Vazamento no banheiro", f"Maria <{CUSTOMER}>", message_id=ROOT,
                              body="Há água no chão.\n"), CUSTOMER)
    sink.wait_for(3, 60)  # the acknowledgement, a notice to each agent
    to_ana = one(sink, daemon, 3, lambda r: r.rcpt_tos == [AGENT])
    to_bruno = one(sink, daemon, 3, lambda r: r.rcpt_tos == [BRUNO])

    # 1. A valid /close with a rejected /cc: nothing happens, the feedback says what would have.
    answer(daemon, to_ana, AGENT, "/close\n/cc not-an-address\n\nOlá Maria, resolvido.\n", "<a-1@support.example.com>")
    fb = one(sink, daemon, 4, lambda r: r.rcpt_tos == [AGENT] and "not-an-address" in text(r))
    assert "'not-an-address' is not an e-mail address" in text(fb)
    assert "/close: status → closed" in text(fb).split("Would have been done (not done):")[1]
    ticket = show(daemon, 1)
    assert ticket["status"] == "new" and ticket["assignee"] is None and sink.to(CUSTOMER)[1:] == []

    # 3 and 6. Bruno answers first: the customer gets his words signed once, and he takes the ticket.
    answer(daemon, to_bruno, BRUNO, "Olá Maria, o técnico passa amanhã às 9h.\n\nAbraço,\nBruno\n",
           "<b-1@support.example.com>")
    relay = one(sink, daemon, 5, lambda r: r.rcpt_tos == [CUSTOMER] and "técnico" in text(r))
    assert text(relay).count("Bruno") == 1
    assert show(daemon, 1)["assignee"] == BRUNO and show(daemon, 1)["status"] == "waiting_customer"

    # 7. The customer answers: Bruno hears of a reply, not of a "new ticket".
    deliver(daemon.port, mail(f"Re: {relay.message['Subject']}", CUSTOMER, body="Combinado, obrigada!\n",
                              message_id="<c-2@cliente.example>", to=relay.message["Reply-To"].addresses[0].addr_spec,
                              headers={"In-Reply-To": relay.message["Message-ID"]}), CUSTOMER)
    news = one(sink, daemon, 6, lambda r: r.rcpt_tos == [BRUNO] and "Combinado" in text(r))
    assert news.message["Subject"] == "Re: [Support #1] Vazamento no banheiro"
    assert to_bruno.message["Subject"] == "[Support #1] Vazamento no banheiro"

    # 4. Every mail maild sent about the ticket threads under its first message, for everyone.
    assert len(sink.received) == 6
    for got in sink.received:
        assert got.message["References"].split()[0] == ROOT, (got.rcpt_tos, got.message["Subject"])
        assert got.message["In-Reply-To"], got.message["Subject"]
    assert to_ana.message["In-Reply-To"] == ROOT and to_bruno.message["In-Reply-To"] == ROOT
    assert daemon.stop() == 0


FORWARDED = """\
/new
{commands}
---------- Forwarded message ---------
From: Maria Souza <{customer}>
Date: Mon, 2 Nov 2026 at 09:12
Subject: Vazamento no banheiro
To: Ana <{agent}>

Há água no chão do banheiro desde ontem.
"""


def test_tickets_on_behalf_of_a_customer_hidden_visible_and_cloned(start: Callable[..., Daemon], sink: Sink) -> None:
    daemon = start()
    # 5. Ana forwards Maria's mail with /new and /visible no: Maria's ticket, and Maria hears nothing.
    deliver(daemon.port, mail("Fwd: Vazamento no banheiro", f"Ana <{AGENT}>", message_id="<fwd-1@support.example.com>",
                              body=FORWARDED.format(commands="/visible no\n", customer=CUSTOMER, agent=AGENT),
                              headers=AR), AGENT)
    wait_for(lambda: daemon.tickets() != [], 60, "the forwarded ticket")
    ticket = show(daemon, 1)
    assert ticket["requester"] == CUSTOMER and ticket["visible"] is False
    assert ticket["messages"][0]["body_text"].startswith("---------- Forwarded message")
    settle(sink, daemon, 60)
    assert sink.to(CUSTOMER) == []

    # Her reply on the hidden ticket stays internal; /visible yes sends it.
    subject = "Re: [Support #1] Vazamento no banheiro"
    deliver(daemon.port, mail(subject, AGENT, body="Olá Maria, o técnico passa amanhã.\n", headers=AR,
                              message_id="<a-2@support.example.com>"), AGENT)
    fb = one(sink, daemon, 1, lambda r: r.rcpt_tos == [AGENT] and "hidden from the customer" in text(r))
    assert "/visible yes" in text(fb) and sink.to(CUSTOMER) == []
    deliver(daemon.port, mail(subject, AGENT, body="/visible yes\nOlá Maria, o técnico passa amanhã.\n", headers=AR,
                              message_id="<a-3@support.example.com>"), AGENT)
    relay = one(sink, daemon, 2, lambda r: r.rcpt_tos == [CUSTOMER])
    assert text(relay).startswith("Olá Maria, o técnico passa amanhã.")
    assert relay.message["References"].split()[0] == "<fwd-1@support.example.com>"

    # /clone: a copy with the conversation and an owner.
    deliver(daemon.port, mail(subject, AGENT, body="/clone\n", headers=AR, message_id="<a-4@support.example.com>"), AGENT)
    wait_for(lambda: len(daemon.tickets()) == 2, 60, "the clone")
    clone = show(daemon, 2)
    assert clone["assignee"] == AGENT and clone["requester"] == CUSTOMER
    assert [m["direction"] for m in clone["messages"]] == [m["direction"] for m in show(daemon, 1)["messages"]]

    # A visible ticket opened on her behalf: Maria hears that it was opened.
    before = len(sink.received)
    deliver(daemon.port, mail("Fwd: Outra coisa", f"Ana <{AGENT}>", message_id="<fwd-2@support.example.com>",
                              body=FORWARDED.format(commands="", customer=CUSTOMER, agent=AGENT), headers=AR), AGENT)
    notice = one(sink, daemon, before + 1, lambda r: r.rcpt_tos == [CUSTOMER] and "[Support #3]" in r.message["Subject"])
    assert "Forwarded message" not in text(notice) and AGENT not in text(notice)
    assert daemon.stop() == 0


def test_feedback_arrives_past_the_automatic_mail_caps(start: Callable[..., Daemon], sink: Sink) -> None:
    # 2. Ana's day cap on automatic mail is used up by notifications; her feedback still comes.
    daemon = start(outbound={"limits": {"per_address_day": {"count": 2, "minutes": 1440}}})
    for n in range(3):
        deliver(daemon.port, mail(f"Pedido {n}", f"cliente{n}@cliente.example", message_id=f"<p-{n}@cliente.example>"),
                f"cliente{n}@cliente.example")
    sink.wait_for(9, 60)  # three acknowledgements, three notices to each agent
    settle(sink, daemon, 60)
    assert len(sink.to(AGENT)) == 3
    [first] = [r for r in sink.to(AGENT) if "Pedido 0" in r.message["Subject"]]
    answer(daemon, first, AGENT, "/status nonsense\n", "<a-1@support.example.com>")
    fb = one(sink, daemon, 10, lambda r: r.rcpt_tos == [AGENT] and "nonsense" in text(r))
    assert "unknown status 'nonsense'" in text(fb)
    assert [r for r in outbox(daemon) if r["state"] != "sent"] == []
    assert daemon.stop() == 0


def test_no_digest_with_nothing_to_report(start: Callable[..., Daemon], sink: Sink, tmp_path: Path) -> None:
    # 8. The digest is due from 00:00; the helpdesk has no ticket: nobody gets one.
    daemon = start(scheduler={"poll_seconds": 0.5, "digest": {"enabled": True, "time": "00:00"}})
    log = tmp_path / "maild.log"
    wait_for(lambda: log.read_text().count("nothing to report") == 2, 60, "the digest run")
    assert outbox(daemon) == [] and sink.received == []
    assert daemon.stop() == 0
