"""From a classified, identified, threaded mail to one Decision value.

Pure: everything it needs (the matched ticket's state, the clock, the policy) is passed
in, and the Decision says what the store must do in one transaction.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from maild.ingest.identify import Sender
from maild.mail import Classification, Kind, ParsedMail
from maild.threading.match import Match
from maild.threading.subject import ticket_subject


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


def decide(
    mail: ParsedMail,
    kind: Classification,
    sender: Sender,
    match: Match,
    ticket: TicketState | None,
    blocked: bool,
    policy: Policy,
    now: datetime,
) -> Decision:
    rules = (f"class:{kind.kind.value}", *kind.reasons, f"thread:{match.rule}")
    if match.rule == "duplicate":
        return Decision(Action.DUPLICATE, match.ticket_id, "message-id already stored", rules)
    if kind.kind is Kind.LOOP:
        return Decision(Action.IGNORE, None, "mail sent by maild itself (loop)", rules)
    if blocked:
        return Decision(Action.IGNORE, match.ticket_id, f"sender {sender.email} is blocked", rules)
    if kind.kind is Kind.BOUNCE:
        if match.ticket_id is None:
            return Decision(Action.IGNORE, None, "bounce for no known ticket", rules)
        return Decision(Action.APPEND, match.ticket_id, "bounce recorded", rules, direction="note",
                        events=(EventSpec("bounce", detail=", ".join(kind.bounced_addresses)),))
    if kind.kind is Kind.AUTO_REPLY:
        if match.ticket_id is None:
            return Decision(Action.IGNORE, None, "auto-reply opens no ticket", rules)
        return Decision(Action.APPEND, match.ticket_id, "auto-reply recorded", rules,
                        events=(EventSpec("auto_reply"),))
    if ticket is None:
        return _create(mail, sender, match, policy, rules)
    return _append(sender, match, ticket, policy, now, rules, mail)


def _create(mail: ParsedMail, sender: Sender, match: Match, policy: Policy,
            rules: tuple[str, ...], refers_to: int | None = None) -> Decision:
    events = [EventSpec("created", new="new", detail=f"rules: {' '.join(rules)}")]
    refers = refers_to or match.refers_to
    if refers is not None:
        events.append(EventSpec("linked", new=str(refers), detail=match.detail or "refers to"))
    if not sender.is_known:
        events.append(EventSpec("flagged", detail="no sender address: cannot be answered"))
    subject = ticket_subject(mail.subject, policy.subject_tag) or "(no subject)"
    return Decision(Action.CREATE, None, "new ticket", rules, subject=subject, status="new",
                    refers_to=refers, events=tuple(events))


def _append(sender: Sender, match: Match, ticket: TicketState, policy: Policy, now: datetime,
            rules: tuple[str, ...], mail: ParsedMail) -> Decision:
    if sender.is_agent:
        # Relaying agents' replies and their commands come with the outbound issue;
        # until then an agent's mail is kept on the ticket and changes nothing.
        return Decision(Action.APPEND, ticket.id, "agent mail", rules)
    if ticket.status == "closed":
        window = timedelta(days=policy.reopen_days)
        if ticket.closed_at is not None and now - ticket.closed_at > window:
            linked = Match("new", None, refers_to=ticket.id, detail="reply to a ticket closed too long ago")
            return _create(mail, sender, linked, policy, (*rules, "reopen:too-old"))
        return Decision(Action.APPEND, ticket.id, "customer reply reopens", (*rules, "reopen"),
                        status="waiting_agent",
                        events=(EventSpec("status", old="closed", new="waiting_agent", detail="reopened by customer mail"),))
    if ticket.status != "waiting_agent":
        return Decision(Action.APPEND, ticket.id, "customer reply", rules, status="waiting_agent",
                        events=(EventSpec("status", old=ticket.status, new="waiting_agent", detail="customer replied"),))
    return Decision(Action.APPEND, ticket.id, "customer reply", rules)
