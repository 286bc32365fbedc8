"""Commands as a user meets them: `maild run` in a subprocess, agent mail in over SMTP, mail
out to a real SMTP peer (aiosmtpd) standing in for the smarthost."""
from __future__ import annotations

import json
from email.utils import parseaddr

import pytest

from conftest import AGENT, HELPDESK, mail
from smtpsink import Received, Sink
from test_commands import CONTROL, CUSTOMER, commands_config
from daemons import Daemon, deliver, settle, text, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(daemon: Daemon) -> Daemon:
    """The shared daemon, with the control address and commands configured."""
    commands_config(daemon.config)
    return daemon


def show(daemon: Daemon, ticket: int) -> dict:
    return json.loads(daemon.cli("tickets", "show", str(ticket), "--json").stdout)


def reply_to(received: Received) -> str:
    """Where a mail client sends the answer to this mail."""
    return parseaddr(str(received.message["Reply-To"]))[1]


def test_draft_send_and_control_address_over_real_smtp(daemon: Daemon, sink: Sink) -> None:
    daemon.start()
    deliver(daemon.port, mail("#urgente Infiltração no teto", f"Maria <{CUSTOMER}>", message_id="<c-1@cliente.example>",
                              body="Há água no teto da sala.\n"), CUSTOMER)
    wait_for(lambda: daemon.tickets() != [], 30, "the customer's ticket")
    [ticket] = daemon.tickets()
    assert ticket["subject"] == "Infiltração no teto" and ticket["tags"] == ["urgente"] and ticket["priority"] == "high"
    settle(sink, daemon)
    before = len(sink.to(CUSTOMER))
    # Ana answers the notification she got: to its Reply-To, her own signed address.
    [notice] = sink.to(AGENT)
    mine = reply_to(notice)
    assert mine.startswith("support+a1-")

    # The agent saves a draft: nothing reaches the customer.
    deliver(daemon.port, mail("Re: [Support #1] Infiltração no teto", f"Ana <{AGENT}>", message_id="<a-1@s.example>",
                              to=mine, body="/draft\n/tag +orcamento\nOlá Maria, o orçamento é R$ 800.\n"), AGENT,
            to=mine)
    wait_for(lambda: show(daemon, 1)["draft_pending"], 30, "the draft")
    settle(sink, daemon)
    assert len(sink.to(CUSTOMER)) == before

    # /send releases it: the customer gets it once, from the helpdesk, with no command in it.
    deliver(daemon.port, mail("Re: [Support #1] Infiltração no teto", f"Ana <{AGENT}>", message_id="<a-2@s.example>",
                              to=mine, body="/send\n"), AGENT, to=mine)
    wait_for(lambda: len(sink.to(CUSTOMER)) > before, 30, "the released draft")
    settle(sink, daemon)
    [draft] = sink.to(CUSTOMER)[before:]
    assert text(draft).startswith("Olá Maria, o orçamento é R$ 800.\n") and "/draft" not in text(draft)
    assert AGENT not in draft.data.decode("utf-8", "replace") and "[Support #1]" in draft.message["Subject"]
    detail = show(daemon, 1)
    assert detail["status"] == "waiting_customer" and detail["draft_pending"] is False
    assert detail["tags"] == ["orcamento", "urgente"]

    # The control address: Ana's first mail there proves nothing, so it runs nothing and she
    # is told how to prove it; she answers that notice, and the commands run.
    told = len(sink.to(AGENT))
    deliver(daemon.port, mail("ops", f"Ana <{AGENT}>", to=CONTROL, body="close 1\nstats\n"), AGENT, to=CONTROL)
    wait_for(lambda: len(sink.to(AGENT)) > told, 30, "the notice")
    proof = sink.to(AGENT)[-1]
    assert "no proof" in proof.message["Subject"] and show(daemon, 1)["status"] == "waiting_customer"
    signed = reply_to(proof)
    assert signed.startswith("control+") and signed in text(proof)
    deliver(daemon.port, mail("Re: ops", f"Ana <{AGENT}>", to=signed, body="close 1\nstats\n"), AGENT, to=signed)
    wait_for(lambda: sink.to(AGENT) and "Closed (closed): 1" in text(sink.to(AGENT)[-1]), 30, "the report")
    report = sink.to(AGENT)[-1]
    assert report.message["Auto-Submitted"] == "auto-replied" and report.message["X-Maild-Loop"] == HELPDESK
    assert show(daemon, 1)["status"] == "closed" and len(daemon.tickets()) == 1
    assert daemon.stop() == 0
