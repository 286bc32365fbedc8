"""A running daemon over real SMTP: a stranger's reply on another customer's thread opens
its own ticket, and the agent's answer reaches the stranger, never that customer."""
from __future__ import annotations

from email.utils import parseaddr

import pytest

from conftest import AGENT, mail
from smtpsink import Sink
from daemons import Daemon, deliver, settle, text, wait_for

pytestmark = pytest.mark.slow
MARIA = "maria@cliente.example.com.br"
STRANGER = "joao@outro.example"


def test_a_strangers_reply_is_answered_to_the_stranger_never_the_customer(daemon: Daemon, sink: Sink) -> None:
    daemon.start()
    deliver(daemon.port, mail("=?utf-8?q?Vazamento=1B[2J=07?=", f"Maria <{MARIA}>", message_id="<m-1@cliente.example>",
                              body="Há água no teto.\n"), MARIA)
    sink.wait_for(2)  # Maria's acknowledgement and the agent's notification
    # João has a forwarded copy of Maria's mail and answers it: References name her message.
    deliver(daemon.port, mail("Re: Vazamento", f"João <{STRANGER}>", message_id="<j-1@outro.example>",
                              body="O vazamento vem do meu apartamento?\n",
                              headers={"In-Reply-To": "<m-1@cliente.example>",
                                       "References": "<m-1@cliente.example>"}), STRANGER)
    sink.wait_for(4)
    got = settle(sink, daemon)
    tickets = daemon.tickets()
    assert [(t["id"], t["requester"]) for t in tickets] == [(1, MARIA), (2, STRANGER)]
    [notify] = [r for r in got[2:] if r.rcpt_tos == [AGENT]]
    assert f"New ticket [Support #2] from João <{STRANGER}>" in text(notify) and MARIA not in text(notify)

    # The agent answers the notification the way a mail client does.
    n = notify.message
    reply_to = parseaddr(n["Reply-To"] or n["From"])[1]
    deliver(daemon.port, mail(f"Re: {n['Subject']}", f"Ana <{AGENT}>", message_id="<agent-1@support.example.com>",
                              to=reply_to, body="Vamos verificar seu apartamento, João.\n",
                              headers={"In-Reply-To": n["Message-ID"], "References": n["Message-ID"]}),
            AGENT, to=reply_to)
    sink.wait_for(5)
    got = settle(sink, daemon)
    [relay] = [r for r in got[4:] if "Vamos verificar" in text(r)]
    assert relay.rcpt_tos == [STRANGER]
    assert all(MARIA not in r.rcpt_tos for r in got[2:])  # after her acknowledgement, nothing went to Maria
    assert daemon.cli("tickets", "show", "1", "--json").returncode == 0

    # The admin's terminal: the ESC/BEL of Maria's subject never reaches it.
    listing = daemon.cli("tickets", "list")
    assert listing.returncode == 0 and "Vazamento" in listing.stdout
    assert "\x1b" not in listing.stdout and "\x07" not in listing.stdout
    wait_for(lambda: daemon.tickets()[1]["status"] == "waiting_customer", 20, "the answered ticket")
    assert daemon.stop() == 0
