"""Table tests for ``decide()``: classified, identified, threaded mail in, Decision out.

A fixed clock, hand-built values, no database: each row names what the store is told to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from maild.domain.commands import Interpretation, Mode, Plan
from maild.domain.decision import Action, Bounced, Decision, OutgoingKind, Policy, TicketState
from maild.domain.mail import Address, Classification, Kind, ParsedMail
from maild.domain.match import Match, MatchRule
from maild.domain.outcome import Direction
from maild.domain.sender import UNKNOWN_SENDER, Sender
from maild.ingest.decide import decide

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = Policy(subject_tag="Support", reopen_days=30)


@dataclass(frozen=True)
class Agent:
    email: str = "bruno@support.example.com"
    name: str = "Bruno"
    role: str = "agent"


CUSTOMER = Sender("maria@cliente.example", "Maria")
AGENT = Sender("bruno@support.example.com", "Bruno", Agent())
NOBODY = Sender(UNKNOWN_SENDER, "")
NORMAL = Classification(Kind.NORMAL)
NEW = Match(MatchRule.NEW, None)
ON_1 = Match(MatchRule.HEADERS, 1)
OPEN = TicketState(1, "waiting_customer", None)
CLOSED_RECENTLY = TicketState(1, "closed", NOW - timedelta(days=3))
CLOSED_LONG_AGO = TicketState(1, "closed", NOW - timedelta(days=31))


def mail(subject: str = "Infiltração", body: str = "Há água no teto.\n") -> ParsedMail:
    return ParsedMail(
        message_id="<m1@cliente.example>", synthetic_message_id=False, subject=subject,
        from_=Address("Maria", "maria@cliente.example"), reply_to=(),
        to=(Address("", "support@support.example.com"),), cc=(), delivered_to=(), in_reply_to=(),
        references=(), date=NOW, headers={}, body_text=body, body_html=None, attachments=())


@dataclass(frozen=True)
class Row:
    """One case: the inputs that differ from a customer's plain new mail, and what must come out."""

    name: str
    action: Action
    ticket_id: int | None = None
    status: str | None = None
    outgoing: tuple[OutgoingKind, ...] = ()
    events: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # among the rules that fired
    kind: Classification = NORMAL
    sender: Sender = CUSTOMER
    match: Match = NEW
    ticket: TicketState | None = None
    blocked: bool = False
    policy: Policy = POLICY
    bounced: Bounced | None = None
    interp: Interpretation | None = None
    forged: str = ""
    body: str = "Há água no teto.\n"
    direction: Direction = Direction.IN


ACK, RELAY, NOTIFY_NEW, NOTIFY_REPLY, FEEDBACK = (OutgoingKind.ACK, OutgoingKind.RELAY, OutgoingKind.NOTIFY_NEW,
                                                  OutgoingKind.NOTIFY_REPLY, OutgoingKind.FEEDBACK)
ROWS = [
    Row("a customer's new mail opens a ticket, acknowledged, agents told", Action.CREATE, status="new",
        outgoing=(ACK, NOTIFY_NEW), events=("created",), rules=("class:normal", "thread:new")),
    Row("no acknowledgement when switched off", Action.CREATE, status="new", outgoing=(NOTIFY_NEW,),
        events=("created",), policy=Policy("Support", 30, acknowledge=False)),
    Row("no sender address: a ticket nobody can answer, flagged", Action.CREATE, status="new",
        outgoing=(NOTIFY_NEW,), events=("created", "flagged"), sender=NOBODY),
    Row("a stored Message-ID is a duplicate", Action.DUPLICATE, ticket_id=1,
        match=Match(MatchRule.DUPLICATE, 1), rules=("thread:duplicate",)),
    Row("maild's own mail coming back is a loop", Action.IGNORE, kind=Classification(Kind.LOOP),
        rules=("class:loop",)),
    Row("a blocked sender is kept, nothing else", Action.IGNORE, ticket_id=1, blocked=True, match=ON_1, ticket=OPEN),
    Row("an auto-reply opens no ticket", Action.IGNORE, kind=Classification(Kind.AUTO_REPLY)),
    Row("an auto-reply on a ticket is recorded, never answered", Action.APPEND, ticket_id=1,
        kind=Classification(Kind.AUTO_REPLY), match=ON_1, ticket=OPEN, events=("auto_reply",)),
    Row("a bounce for no ticket is kept", Action.IGNORE, kind=Classification(Kind.BOUNCE)),
    Row("a permanent bounce of an outbox row is a note on its ticket", Action.APPEND, ticket_id=7,
        kind=Classification(Kind.BOUNCE, permanent=True, bounced_addresses=("x@cliente.example",)),
        bounced=Bounced(3, 7, "x@cliente.example"), events=("bounce",), rules=("bounce:outbox",),
        direction=Direction.NOTE),
    Row("a report is kept without a ticket", Action.IGNORE, kind=Classification(Kind.REPORT, ("report:dmarc",))),
    Row("a complaint about maild's mail is a note, no more mail to it", Action.APPEND, ticket_id=7,
        kind=Classification(Kind.REPORT, ("report:arf",)), bounced=Bounced(3, 7, "x@cliente.example"),
        events=("complaint",), rules=("report:outbox",), direction=Direction.NOTE),
    Row("a customer's reply moves the ticket to waiting_agent, agents told", Action.APPEND, ticket_id=1,
        status="waiting_agent", outgoing=(NOTIFY_REPLY,), events=("status",), match=ON_1, ticket=OPEN),
    Row("a reply on a recently closed ticket reopens it", Action.APPEND, ticket_id=1, status="waiting_agent",
        outgoing=(NOTIFY_REPLY,), events=("status",), rules=("reopen",), match=ON_1, ticket=CLOSED_RECENTLY),
    Row("a reply on a ticket closed too long ago opens a linked one", Action.CREATE, status="new",
        outgoing=(ACK, NOTIFY_NEW), events=("created", "linked"), rules=("reopen:too-old",),
        match=ON_1, ticket=CLOSED_LONG_AGO),
    Row("an agent's reply is relayed, the ticket waits for the customer", Action.APPEND, ticket_id=1,
        status="waiting_customer", outgoing=(RELAY,), events=("reply", "status"), rules=("agent:reply:whole",),
        sender=AGENT, match=ON_1, ticket=TicketState(1, "waiting_agent", None), direction=Direction.AGENT),
    Row("an agent's empty reply sends only feedback", Action.APPEND, ticket_id=1, outgoing=(FEEDBACK,),
        rules=("agent:empty",), sender=AGENT, match=ON_1, ticket=OPEN, body="", direction=Direction.AGENT),
    Row("a /note is stored, never sent", Action.APPEND, ticket_id=1, events=("note",), rules=("agent:note",),
        sender=AGENT, match=ON_1, ticket=OPEN, interp=Interpretation(Plan(mode=Mode.NOTE), ""), direction=Direction.NOTE),
    Row("a rejected command holds the reply and tells the agent", Action.APPEND, ticket_id=1,
        outgoing=(FEEDBACK,), rules=("agent:held",), sender=AGENT, match=ON_1, ticket=OPEN,
        interp=Interpretation(Plan(rejected=("/foo: unknown command",)), ""), direction=Direction.AGENT),
    Row("unproven mail from an agent's address is customer mail, flagged", Action.APPEND, ticket_id=1,
        status="waiting_agent", outgoing=(NOTIFY_REPLY,), events=("status", "flagged"), rules=("agent:forged",),
        match=ON_1, ticket=OPEN, forged="no proof"),
    Row("someone the thread addressed joins as a Cc participant", Action.APPEND, ticket_id=1,
        status="waiting_agent", outgoing=(NOTIFY_REPLY,), events=("status",), rules=("joins:addressed",),
        match=Match(MatchRule.HEADERS, 1, joins="addressed"), ticket=OPEN),
]


def run(row: Row) -> Decision:
    return decide(mail(body=row.body), row.kind, row.sender, row.match, row.ticket, row.blocked, row.policy, NOW,
                  bounced=row.bounced, interp=row.interp, forged=row.forged)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decide(row: Row) -> None:
    decision = run(row)
    assert decision.action is row.action, decision.reason
    assert decision.ticket_id == row.ticket_id
    assert decision.status == row.status
    assert tuple(o.what for o in decision.outgoing) == row.outgoing
    assert tuple(e.kind for e in decision.events) == row.events
    assert set(row.rules) <= set(decision.rules), decision.rules
    assert decision.direction == row.direction


def test_an_ignored_mail_says_its_rules_in_the_reason() -> None:
    decision = run(Row("", Action.IGNORE, kind=Classification(Kind.LOOP, ("header:x-maild-loop",))))
    assert decision.reason == "mail sent by maild itself (loop); rules: class:loop header:x-maild-loop thread:new"


def test_the_reopen_window_is_measured_from_the_clock_given() -> None:
    row = Row("", Action.APPEND, match=ON_1, ticket=TicketState(1, "closed", NOW - timedelta(days=30)))
    assert run(row).action is Action.APPEND
    later = decide(mail(), NORMAL, CUSTOMER, ON_1, row.ticket, False, POLICY, NOW + timedelta(seconds=1))
    assert later.action is Action.CREATE and later.refers_to == 1
