"""Agent proof as an attacker and an agent meet it: `maild run` on the shipped configuration
(no security section, no secret), mail in over real SMTP, mail out to a real SMTP sink.

The customer holds the ticket's reply address (the acknowledgement's Reply-To) and writes
to it From the agent's address with commands; nothing runs, nobody outside hears of it,
and the real agent gets one notice. The agent answering her own notification runs them.
"""
from __future__ import annotations

import json
import stat
from email.utils import parseaddr
from pathlib import Path

import pytest
import yaml

from conftest import free_port, mail
from maild.config import DEFAULT_CONFIG
from smtpsink import Received, Sink
from daemons import Daemon, Daemons, deliver, settle, text, wait_for

pytestmark = pytest.mark.slow

AGENT = "agent@localhost.localdomain"
CUSTOMER = "maria@cliente.example.com.br"
EVE = "eve@evil.example"


def shipped_config(directory: Path, port: int, sink_port: int) -> Path:
    """config/maild.yaml as shipped, with this test's ports and directories (and no
    scheduler mail, which would depend on the time of day)."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    assert "security" not in data and "secret" not in data["helpdesk"] and "secret_env" not in data["helpdesk"]
    data["database"]["url"] = f"sqlite:///{directory / 'maild.db'}"
    data["storage"]["path"] = str(directory / "storage")
    data["spool"]["path"] = str(directory / "spool")
    data["smtp_server"]["port"] = port
    data["outbound"]["smtp"].update(port=sink_port, timeout=5)
    data["outbound"]["retry"].update(first_seconds=0.3, max_seconds=1, poll_seconds=0.2)
    data["scheduler"].update(unaccepted_minutes=0, digest={"enabled": False})
    path = directory / "maild.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def daemon(tmp_path: Path, daemons: Daemons, sink: Sink) -> Daemon:
    port = free_port()
    return daemons.new(shipped_config(tmp_path, port, sink.port), port)


def show(daemon: Daemon, ticket: int) -> dict:
    return json.loads(daemon.cli("tickets", "show", str(ticket), "--json").stdout)


def reply_to(received: Received) -> str:
    return parseaddr(str(received.message["Reply-To"]))[1]


def flags(daemon: Daemon, ticket: int) -> list[dict]:
    return [e for e in show(daemon, ticket)["events"] if e["kind"] == "flagged"]


COMMANDS = f"/cc {EVE}\n/assign agent\n/close\nPlease pay the new invoice to account 666.\n"


def test_forged_agent_mail_runs_nothing_and_the_real_agent_replying_does(daemon: Daemon, sink: Sink) -> None:
    daemon.start()
    deliver(daemon.port, mail("Infiltração no teto", f"Maria <{CUSTOMER}>", to="support@localhost.localdomain",
                              body="Há água no teto da sala.\n"), CUSTOMER, to="support@localhost.localdomain")
    wait_for(lambda: len(sink.to(CUSTOMER)) == 1 and len(sink.to(AGENT)) == 1, 30, "acknowledgement and notice")
    settle(sink, daemon)
    # No secret configured: maild made one and keeps it beside the database.
    key = daemon.config.parent / "maild.db.secret"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ticket_address = reply_to(sink.to(CUSTOMER)[0])  # what the customer (the forger) holds
    agent_address = reply_to(sink.to(AGENT)[0])  # what only the agent's mailbox holds
    assert ticket_address.startswith("support+1-") and agent_address.startswith("support+a1-")

    # The forger: the agent's From, the ticket's own reply address, commands and text.
    for n in (1, 2):
        forged = mail("Re: [Support #1] Infiltração no teto", f"Agent <{AGENT}>", to=ticket_address,
                      message_id=f"<forged-{n}@evil.example>", body=COMMANDS)
        deliver(daemon.port, forged, AGENT, to=ticket_address)
        wait_for(lambda: len(flags(daemon, 1)) == n, 30, f"forged mail {n} flagged")
        settle(sink, daemon)
    detail = show(daemon, 1)
    assert detail["status"] != "closed" and detail["assignee"] is None
    # Customer mail moves the ticket to waiting_agent, as any customer's would; no command ran.
    assert [e for e in detail["events"] if e["kind"] in ("cc", "assignee", "reply")] == []
    assert [e["new"] for e in detail["events"] if e["kind"] == "status"] == ["waiting_agent"]
    assert "no proof" in flags(daemon, 1)[0]["detail"] and flags(daemon, 1)[0]["actor"] == AGENT
    assert detail["messages"][-1]["direction"] == "in" and "account 666" in detail["messages"][-1]["body_text"]
    assert sink.to(EVE) == [] and len(sink.to(CUSTOMER)) == 1  # nothing relayed, no copy
    # The real agent: one notice for both forgeries, without the forger's words, whose
    # Reply-To is her own signed address.
    [_notification, notice] = sink.to(AGENT)
    assert notice.message["Auto-Submitted"] == "auto-replied" and "no proof" in notice.message["Subject"]
    assert reply_to(notice) == agent_address and agent_address in text(notice)
    assert "account 666" not in text(notice) and "/cc" not in text(notice)

    # The agent answers her notification: the same mail, now to her signed reply address.
    genuine = mail("Re: [Support #1] Infiltração no teto", f"Agent <{AGENT}>", to=agent_address,
                   message_id="<genuine-1@localhost.localdomain>", body=COMMANDS)
    deliver(daemon.port, genuine, AGENT, to=agent_address)
    wait_for(lambda: show(daemon, 1)["status"] == "closed", 30, "the commands")
    settle(sink, daemon)
    detail = show(daemon, 1)
    assert detail["assignee"] == AGENT and [e["new"] for e in detail["events"] if e["kind"] == "cc"] == [EVE]
    relayed = sink.to(CUSTOMER)[-1]
    assert "account 666" in text(relayed) and AGENT not in relayed.data.decode("utf-8", "replace")
    assert len(sink.to(EVE)) == 1 and len(flags(daemon, 1)) == 2
    assert daemon.stop() == 0
