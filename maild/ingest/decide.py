"""From a classified, identified, threaded mail to one Decision value.

Pure: everything it needs (the matched ticket's state, the clock, the policy) is passed
in, and the Decision says what the store must do in one transaction.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from maild.ingest.identify import Sender
from maild.mail import Classification, Kind, ParsedMail
from maild.outbound.quotes import latest_reply
from maild.threading.match import Match
from maild.threading.subject import ticket_subject

if TYPE_CHECKING:
    from maild.forms.match import FormOutcome


class Action(enum.Enum):
    CREATE = "created"  # a new ticket with this mail as its first message
    APPEND = "appended"  # a message on an existing ticket
    DUPLICATE = "duplicate"  # seen before: nothing changes
    IGNORE = "ignored"  # kept as raw mail only (auto-reply, bounce, loop, blocked)


@dataclass(frozen=True)
class TicketState:
    id: int
    status: str
    closed_at: datetime | None


@dataclass(frozen=True)
class Policy:
    subject_tag: str
    reopen_days: int
    acknowledge: bool = True
    notify_agents: bool = True
    undeliverable_days: int = 30


@dataclass(frozen=True)
class Bounced:
    """The outbox row a bounce returns (found by the report's inner Message-IDs)."""

    outbox_id: int
    ticket_id: int | None
    to_addr: str


# What to send because of this mail; :mod:`maild.outbound.plan` turns these into outbox rows
# (checking the loop and rate rules) in the same transaction.
ACK = "ack"  # acknowledge a new ticket to the customer
RELAY = "relay"  # an agent's reply, relayed to the customer
NOTIFY_NEW = "notify_new"  # tell agents about a new ticket
NOTIFY_REPLY = "notify_reply"  # tell agents the customer wrote again
FEEDBACK = "feedback"  # tell an agent what was (not) done with their mail


@dataclass(frozen=True)
class Outgoing:
    what: str
    text: str = ""  # RELAY: the agent's new text, quoted history cut off
    applied: tuple[str, ...] = ()  # FEEDBACK lines
    rejected: tuple[str, ...] = ()
    sent: bool = False


@dataclass(frozen=True)
class EventSpec:
    kind: str
    old: str | None = None
    new: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    action: Action
    ticket_id: int | None  # for APPEND/DUPLICATE, the ticket; None for CREATE/IGNORE
    reason: str
    rules: tuple[str, ...]  # which rules fired, kept in the history
    direction: str = "in"  # in | note
    subject: str = ""  # the new ticket's subject
    status: str | None = None  # the ticket's status after this mail
    refers_to: int | None = None  # link the new ticket to this one
    events: tuple[EventSpec, ...] = field(default_factory=tuple)
    outgoing: tuple[Outgoing, ...] = ()  # mails to send because of this one
    body: str | None = None  # what to store instead of the mail's text (a /note without its command)
    undeliverable: tuple[str, ...] = ()  # addresses a permanent bounce names
    bounced: Bounced | None = None
    form: FormOutcome | None = None  # a website form's ticket fields (maild.forms.match.attach)


def decide(
    mail: ParsedMail,
    kind: Classification,
    sender: Sender,
    match: Match,
    ticket: TicketState | None,
    blocked: bool,
    policy: Policy,
    now: datetime,
    bounced: Bounced | None = None,
) -> Decision:
    rules = (f"class:{kind.kind.value}", *kind.reasons, f"thread:{match.rule}")
    if match.rule == "duplicate":
        return Decision(Action.DUPLICATE, match.ticket_id, "message-id already stored", rules)
    if kind.kind is Kind.LOOP:
        return Decision(Action.IGNORE, None, "mail sent by maild itself (loop)", rules)
    if blocked:
        return Decision(Action.IGNORE, match.ticket_id, f"sender {sender.email} is blocked", rules)
    if kind.kind is Kind.BOUNCE:
        return _bounce(kind, match, bounced, rules)
    if kind.kind is Kind.AUTO_REPLY:
        if match.ticket_id is None:
            return Decision(Action.IGNORE, None, "auto-reply opens no ticket", rules)
        return Decision(Action.APPEND, match.ticket_id, "auto-reply recorded", rules,
                        events=(EventSpec("auto_reply"),))
    if ticket is None:
        return _create(mail, sender, match, policy, rules)
    return _append(sender, match, ticket, policy, now, rules, mail)


def _bounce(kind: Classification, match: Match, bounced: Bounced | None, rules: tuple[str, ...]) -> Decision:
    """A bounce is a note on the ticket of the mail it returns; it never reopens or notifies.

    The report's inner Message-ID names the outbox row (most reliable), else the bounce's
    own threading headers name the ticket. A permanent failure marks the addresses
    undeliverable, so no automatic mail goes there for a while.
    """
    ticket_id = bounced.ticket_id if bounced and bounced.ticket_id is not None else match.ticket_id
    if ticket_id is None:
        return Decision(Action.IGNORE, None, "bounce for no known ticket", rules)
    addresses = kind.bounced_addresses or ((bounced.to_addr,) if bounced else ())
    undeliverable = addresses if kind.permanent else ()
    detail = f"{'permanent' if kind.permanent else 'temporary'} failure for {', '.join(addresses) or 'unknown address'}"
    if bounced:
        detail += f" (outbox #{bounced.outbox_id})"
    return Decision(Action.APPEND, ticket_id, "bounce recorded", (*rules, f"bounce:{'outbox' if bounced else 'thread'}"),
                    direction="note", events=(EventSpec("bounce", detail=detail),),
                    undeliverable=undeliverable, bounced=bounced)


def _create(mail: ParsedMail, sender: Sender, match: Match, policy: Policy,
            rules: tuple[str, ...], refers_to: int | None = None) -> Decision:
    events = [EventSpec("created", new="new", detail=f"rules: {' '.join(rules)}")]
    refers = refers_to or match.refers_to
    if refers is not None:
        events.append(EventSpec("linked", new=str(refers), detail=match.detail or "refers to"))
    if not sender.is_known:
        events.append(EventSpec("flagged", detail="no sender address: cannot be answered"))
    subject = ticket_subject(mail.subject, policy.subject_tag) or "(no subject)"
    outgoing = []
    if not sender.is_agent:
        if policy.acknowledge and sender.is_known:
            outgoing.append(Outgoing(ACK))
        if policy.notify_agents:
            outgoing.append(Outgoing(NOTIFY_NEW))
    return Decision(Action.CREATE, None, "new ticket", rules, subject=subject, status="new",
                    refers_to=refers, events=tuple(events), outgoing=tuple(outgoing))


def _append(sender: Sender, match: Match, ticket: TicketState, policy: Policy, now: datetime,
            rules: tuple[str, ...], mail: ParsedMail) -> Decision:
    if sender.is_agent:
        return _agent_mail(mail, ticket, rules)
    notify = (Outgoing(NOTIFY_REPLY),) if policy.notify_agents else ()
    if ticket.status == "closed":
        window = timedelta(days=policy.reopen_days)
        if ticket.closed_at is not None and now - ticket.closed_at > window:
            linked = Match("new", None, refers_to=ticket.id, detail="reply to a ticket closed too long ago")
            return _create(mail, sender, linked, policy, (*rules, "reopen:too-old"))
        return Decision(Action.APPEND, ticket.id, "customer reply reopens", (*rules, "reopen"),
                        status="waiting_agent", outgoing=notify,
                        events=(EventSpec("status", old="closed", new="waiting_agent", detail="reopened by customer mail"),))
    if ticket.status != "waiting_agent":
        return Decision(Action.APPEND, ticket.id, "customer reply", rules, status="waiting_agent", outgoing=notify,
                        events=(EventSpec("status", old=ticket.status, new="waiting_agent", detail="customer replied"),))
    return Decision(Action.APPEND, ticket.id, "customer reply", rules, outgoing=notify)


def _agent_mail(mail: ParsedMail, ticket: TicketState, rules: tuple[str, ...]) -> Decision:
    """An agent's mail on a ticket: ``/note`` → internal note; otherwise a public reply.

    The reply is the agent's new text (quoted history cut, see :mod:`maild.outbound.quotes`)
    relayed to the customer from the helpdesk address, and the ticket waits on the
    customer. A first line with another ``/command`` is not relayed (commands come with
    their own issue): the agent is told, so nothing fails silently. So is an empty reply.
    """
    lines = mail.body_text.replace("\r\n", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    command = lines[first].strip().split()[0].lower() if first is not None and lines[first].strip().startswith("/") else ""
    if command == "/note":
        rest = lines[first].strip()[len("/note"):].strip()
        body = "\n".join(([rest] if rest else []) + lines[first + 1:]).strip("\n") + "\n"
        return Decision(Action.APPEND, ticket.id, "internal note by agent", (*rules, "agent:note"), direction="note",
                        body=latest_reply(body).text, events=(EventSpec("note", detail="internal note, not sent"),))
    if command:
        return Decision(Action.APPEND, ticket.id, f"agent mail with unknown command {command}",
                        (*rules, "agent:unknown-command"), direction="agent",
                        outgoing=(Outgoing(FEEDBACK, rejected=(f"{command}: unknown command; nothing was sent to the "
                                                               "customer",)),))
    reply = latest_reply(mail.body_text)
    if not reply.text.strip():
        return Decision(Action.APPEND, ticket.id, "empty agent reply", (*rules, "agent:empty"), direction="agent",
                        outgoing=(Outgoing(FEEDBACK, rejected=("the reply is empty; nothing was sent",)),))
    events = [EventSpec("reply", detail=f"agent reply relayed to the customer (quotes: {reply.how})")]
    status = None
    if ticket.status != "waiting_customer":
        status = "waiting_customer"
        events.append(EventSpec("status", old=ticket.status, new=status, detail="agent replied"))
    return Decision(Action.APPEND, ticket.id, "agent reply relayed", (*rules, f"agent:reply:{reply.how}"),
                    direction="agent", status=status, events=tuple(events),
                    outgoing=(Outgoing(RELAY, text=reply.text),))
