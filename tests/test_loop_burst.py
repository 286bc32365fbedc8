"""Loop bursts: the short per-address cap and the repeat rule (the same mail again joins
one ticket), pure and against a running daemon exchanging mail with a responder."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import AGENT, mail
from maild.ingest.parse import parse
from maild.outbound.policy import Caps, RecentMail, within_caps
from maild.threading.match import ThreadContext, thread
from maild.threading.repeat import Recent, repeated
from maild.threading.signing import Signer
from smtpsink import Sink
from daemons import Daemon, deliver, outbox, wait_for

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
CAPS = Caps((10, 10), (30, 10), (40, 1440), (3, 1))
ROBOT = "robot@responder.example"


# -- the burst cap ----------------------------------------------------------------------------
def test_the_burst_cap_stops_the_fourth_automatic_mail_in_a_minute() -> None:
    assert within_caps(ROBOT, RecentMail(to_address_burst=2, to_address=2, to_address_day=2), CAPS, NOW).ok
    held = within_caps(ROBOT, RecentMail(to_address_burst=3, to_address=3, to_address_day=3), CAPS, NOW)
    assert not held.ok and "in 1 min (limit 3)" in held.reason
    # A minute later the burst window is empty again; the longer caps still count.
    assert within_caps(ROBOT, RecentMail(to_address_burst=0, to_address=29, to_address_day=29), CAPS, NOW).ok
    assert not within_caps(ROBOT, RecentMail(to_address_burst=0, to_address=30, to_address_day=30), CAPS, NOW).ok


def test_caps_built_without_a_burst_window_get_the_default() -> None:
    assert Caps((10, 10), (30, 10), (40, 1440)).per_address_burst == (3, 1)


# -- the repeat rule --------------------------------------------------------------------------
def test_the_same_mail_again_is_a_repeat_whitespace_case_and_reply_prefixes_aside() -> None:
    recent = [Recent(9, "Outro assunto", "outro texto"), Recent(7, "Mensagem recebida", "Obrigado,\nrecebemos.")]
    assert repeated("RE: mensagem  recebida", "obrigado, recebemos.\n\n", recent) == 7
    assert repeated("Mensagem recebida", "Obrigado, recebemos. Protocolo 2.", recent) is None
    assert repeated("Outra coisa", "Obrigado,\nrecebemos.", recent) is None
    assert repeated("", "", [Recent(3, "", "")]) is None  # empty mails are not one request


class _Lookup:
    """Ticket 5 was merged into 6; nothing else is stored."""

    def ticket_of_message(self, message_id: str) -> int | None:
        return None

    def ticket_of_any(self, message_ids: object) -> int | None:
        return None

    def resolve_ticket(self, ticket_id: int) -> int | None:
        return 6 if ticket_id == 5 else ticket_id

    def is_participant(self, ticket_id: int, email: str) -> bool:
        return False

    def requester_of(self, ticket_id: int) -> str | None:
        return None

    def addressed_in(self, ticket_id: int, email: str, message_ids: object) -> bool:
        return False


def _thread(recent: list[Recent], **kw: bool) -> object:
    raw = mail("Mensagem recebida", ROBOT, body="Obrigado, recebemos.\n")
    return thread(ThreadContext(parse(raw), ROBOT, kw.pop("agent", False), _Lookup(), Signer("s" * 32, "support", "x"),
                                "Support", recent=recent, **kw))


def test_the_repeat_rule_joins_the_live_ticket_and_skips_machines_and_agents() -> None:
    recent = [Recent(5, "Mensagem recebida", "Obrigado, recebemos.")]
    match = _thread(recent)
    assert (match.rule, match.ticket_id) == ("repeat", 6)  # followed the merge
    assert _thread([]).rule == "new"
    assert _thread(recent, machine=True).rule == "new"
    assert _thread(recent, agent=True).rule == "new"
    answering = mail("Mensagem recebida", ROBOT, body="Obrigado, recebemos.\n", headers={"In-Reply-To": "<u@x>"})
    assert thread(ThreadContext(parse(answering), ROBOT, False, _Lookup(), Signer("s" * 32, "support", "x"),
                                "Support", recent=recent)).rule == "new"  # a reply to something is a reply


# -- a running daemon and a responder -----------------------------------------------------
class Responder:
    """Answers every mail maild sends it, at once, with one fixed text: no Auto-Submitted,
    no In-Reply-To, a fresh Message-ID (what the issue's responder did)."""

    def __init__(self, sink: Sink, port: int) -> None:
        self.sink, self.port = sink, port
        self.answered = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            pending = self.sink.to(ROBOT)[self.answered:]
            for _ in pending:
                deliver(self.port, mail("Mensagem recebida", ROBOT, message_id=f"<{uuid.uuid4().hex}@responder.example>",
                                        body="Obrigado, sua mensagem foi recebida.\n"), ROBOT)
                self.answered += 1  # after the 250: the mail is in maild's spool
            self.stop.wait(0.05)

    def caught_up(self) -> bool:
        return self.answered == len(self.sink.to(ROBOT))


@pytest.mark.slow
def test_a_responder_with_a_fixed_text_gets_bounded_tickets_and_acknowledgements(
        daemon: Daemon, sink: Sink, tmp_path: Path) -> None:
    daemon.start()
    responder = Responder(sink, daemon.port)
    responder.thread.start()
    try:
        deliver(daemon.port, mail("Pedido de orçamento", ROBOT, message_id="<start@responder.example>"), ROBOT)

        def idle() -> bool:  # nothing in flight anywhere: spool empty, outbox idle, responder caught up
            return (not list((tmp_path / "spool" / "new").glob("*.eml")) and responder.caught_up()
                    and all(r["state"] in ("sent", "failed") for r in outbox(daemon)) and responder.answered >= 1)

        wait_for(idle, 60, "the exchange to stop")
    finally:
        responder.stop.set()
        responder.thread.join(10)
    tickets = daemon.tickets()
    # The first mail and the responder's first answer open a ticket each; every later
    # answer is the same mail again and joins the second: no more acknowledgements.
    assert len(tickets) == 2, tickets
    assert len(sink.to(ROBOT)) == 2
    assert sorted(t["message_count"] for t in tickets)[0] == 1
    assert len(sink.to(AGENT)) <= 4
    shown = json.loads(daemon.cli("tickets", "show", str(max(t["id"] for t in tickets)), "--json").stdout)
    assert any("thread:repeat" in json.dumps(e) for e in shown["events"])
    assert daemon.stop() == 0
