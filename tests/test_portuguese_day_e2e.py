"""A whole agent day with ``helpdesk.language: pt-BR``, as the people meet it: `maild run` in a
subprocess, mail in over SMTP, every mail out caught by a real aiosmtpd sink, the CLI's human
output. No English phrase of maild's own may reach a customer, an agent or the terminal."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import AGENT, mail
from smtpsink import Received, Sink
from test_commands import CUSTOMER
from test_commands_e2e import daemon, reply_to, show  # noqa: F401 (daemon: a fixture, the commands config)
from test_e2e import MAILD, Daemon, wait_for
from test_outbound_e2e import deliver, settle, sink  # noqa: F401 (sink: a fixture)
from test_seed_screens_e2e import control, portuguese

pytestmark = pytest.mark.slow

# Words and phrases of maild's own English lines (history kinds and details, feedback,
# reports, table headings, states): none may show in the Portuguese output. Whole words,
# any case.
ENGLISH = ("status", "waiting", "closed", "history", "attachment", "next action", "failed", "would have been",
           "priority", "assignee", "requester", "assigned", "reminder", "rejected", "not done", "applied",
           "ticket", "tickets", "subject", "unknown", "customer", "agent reply", "internal note", "draft",
           "reply", "rules", "queued", "sent", "received", "reason", "state", "error", "messages",
           "opened", "new ticket", "no such", "which", "visible", "nobody", "shown", "best match", "held")


def english_in(output: str) -> list[str]:
    """maild's English words in ``output`` (addresses, the subject tag, iCalendar's own
    property names and values, and the rule ids a history line names, ``agent:reply:whole``,
    left out: identifiers, not text)."""
    cleaned = re.sub(r"(?m)^[A-Z-]+[:;](?=[A-Z]*$)|^[A-Z-]+(?=[:;])|^PRODID:.*$", " ", output)
    cleaned = re.sub(r"\S+@\S+|\[Support #\d+\]|X-Maild-\S+|https?://\S+", " ", cleaned)
    cleaned = re.sub(r"\b[\w-]+(?::[\w-]+)+", " ", cleaned)
    return [w for w in ENGLISH if re.search(rf"(?<![\w/-]){re.escape(w)}(?![\w-])", cleaned, re.IGNORECASE)]


def body(received: Received) -> str:
    """The subject, the text and any calendar the mail carries."""
    part = received.message.get_body(("plain",))
    assert part is not None
    calendars = [str(p.get_content()) for p in received.message.iter_attachments()
                 if p.get_content_type() == "text/calendar"]
    return "\n".join([str(received.message["Subject"]), str(part.get_content()), *calendars])


def test_a_whole_agent_day_in_portuguese_shows_no_english(daemon: Daemon, sink: Sink,  # noqa: F811
                                                          tmp_path: Path) -> None:
    portuguese(daemon.config)
    sink.start()
    daemon.start()
    seen: dict[str, str] = {}
    deliver(daemon.port, mail("Vazamento no banheiro", f"Maria <{CUSTOMER}>", message_id="<d-1@cliente.example>",
                              body="Há água no chão do banheiro.\n"), CUSTOMER)
    wait_for(lambda: daemon.tickets() != [], 60, "the ticket")
    settle(sink, daemon, 60)
    [notice] = sink.to(AGENT)
    seen["new ticket notice"] = body(notice)
    seen["acknowledgement"] = body(sink.to(CUSTOMER)[-1])
    mine = reply_to(notice)

    # a reply with commands, relayed to the customer
    deliver(daemon.port, mail("Re: [Support #1] Vazamento no banheiro", f"Ana <{AGENT}>", to=mine,
                              message_id="<a-1@s.example>",
                              body="/tag +hidraulica\n/priority high\n/next 2020-01-01 10:00\n"
                                   "Olá Maria, vamos enviar um técnico.\n"), AGENT, to=mine)
    wait_for(lambda: len(sink.to(CUSTOMER)) >= 2, 60, "the relayed reply")
    settle(sink, daemon, 60)
    seen["relayed reply"] = body(sink.to(CUSTOMER)[-1])

    # a rejected command: the reply is held and the agent told what would have happened
    told = len(sink.to(AGENT))
    deliver(daemon.port, mail("Re: [Support #1] Vazamento no banheiro", f"Ana <{AGENT}>", to=mine,
                              message_id="<a-2@s.example>", body="/close\n/cc nao-e-endereco\nTchau.\n"),
            AGENT, to=mine)
    wait_for(lambda: len(sink.to(AGENT)) > told, 60, "the feedback")
    seen["feedback of a rejected command"] = body(sink.to(AGENT)[-1])

    # the reminder (the next action is past) and the digest, made by the scheduler
    once_config = tmp_path / "once.yaml"
    once_config.write_text(daemon.config.read_text(encoding="utf-8"), encoding="utf-8")
    portuguese(once_config, unaccepted_minutes=0, digest={"enabled": True, "time": "00:00"})
    told = len(sink.to(AGENT))
    once = subprocess.run([*MAILD, "--config", str(once_config), "scheduler", "run-once"], capture_output=True,
                          text=True, timeout=120)
    assert once.returncode == 0, once.stderr
    wait_for(lambda: len(sink.to(AGENT)) >= told + 2, 60, "the reminder and the digest")
    settle(sink, daemon, 60)
    for n, received in enumerate(sink.to(AGENT)[told:]):
        seen[f"scheduler mail {n}"] = body(received)

    # the control address: list, show, search, stats, a rejected line
    seen["control report"] = body(control(daemon, sink, "list\nshow 1\nsearch vazamento\nstats\nshow 99\n"))

    # the CLI's human output
    for args in (("tickets", "show", "1"), ("tickets", "list"), ("tickets", "counts"), ("outbox", "list"),
                 ("quarantine", "list"), ("calendar", "export")):
        result = daemon.cli(*args)
        assert result.returncode == 0, result.stderr
        seen[" ".join(args)] = result.stdout
    assert daemon.stop() == 0
    leaks = {where: found for where, output in seen.items() if (found := english_in(output))}
    assert leaks == {}, "\n\n".join(f"{w}: {leaks[w]}\n{seen[w]}" for w in leaks)
