"""What the decide stage (:mod:`maild.ingest.decide`) says the store must do with one mail.

A :class:`Decision` is a value: the processor writes it in one transaction, the outbound
planner turns its :class:`Outgoing` mails (a relayed reply, command feedback) into outbox
rows, and its ``triggers`` (the events trigger rules listen to) become notifications
through :func:`maild.notify.engine.deliveries`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from maild.domain import ops as command_ops
from maild.domain.events import EventSpec, TriggerEvent
from maild.domain.forms import FormOutcome
from maild.domain.outcome import Direction

__all__ = ["FEEDBACK", "RELAY", "Action", "Bounced", "Decision", "EventSpec", "Outgoing", "OutgoingKind", "Policy",
           "TicketState", "TriggerEvent"]


class Action(enum.StrEnum):
    CREATE = "created"  # a new ticket with this mail as its first message
    APPEND = "appended"  # a message on an existing ticket
    DUPLICATE = "duplicate"  # seen before: nothing changes
    IGNORE = "ignored"  # kept as raw mail only (auto-reply, bounce, loop, blocked)


@dataclass(frozen=True)
class TicketState:
    id: int
    status: str
    closed_at: datetime | None
    assignee: str | None = None
    visible: bool = True  # False: the customer sees nothing of the ticket (/visible no)


@dataclass(frozen=True)
class Policy:
    subject_tag: str
    reopen_days: int
    undeliverable_days: int = 30
    # Automatic transitions (workflow.transitions); None: no automatic change.
    on_customer_mail: str | None = "waiting_agent"
    on_agent_reply: str | None = "waiting_customer"
    reopen_status: str = "waiting_agent"
    assign_on_reply: bool = True  # the first agent who replies to an unassigned ticket takes it
    on_draft: str | None = None  # /draft saved a reply, not sent (seed 004's "Respondido pendente")


@dataclass(frozen=True)
class Bounced:
    """The outbox row a bounce returns (found by the report's inner Message-IDs)."""

    outbox_id: int
    ticket_id: int | None
    to_addr: str


class OutgoingKind(enum.StrEnum):
    """A mail a person's mail asks for; :mod:`maild.outbound.plan` turns these into outbox
    rows in the same transaction. Acknowledgements and notifications are not intents:
    they follow from the decision's ``triggers`` (:func:`maild.notify.engine.deliveries`)."""

    RELAY = "relay"  # an agent's reply, relayed to the customer
    FEEDBACK = "feedback"  # tell an agent what was (not) done with their mail


RELAY, FEEDBACK = OutgoingKind.RELAY, OutgoingKind.FEEDBACK


@dataclass(frozen=True)
class Outgoing:
    what: OutgoingKind
    text: str = ""  # RELAY: the agent's new text, quoted history cut off
    applied: tuple[str, ...] = ()  # FEEDBACK lines
    rejected: tuple[str, ...] = ()  # FEEDBACK: any rejected line means nothing in ``applied`` was done
    sent: bool = False
    notes: tuple[str, ...] = ()  # FEEDBACK: what else the agent should know (a reply kept internal)
    cc: tuple[str, ...] = ()  # RELAY: a one-off copy to these addresses (/cc)
    canned: str | None = None  # RELAY: the standard answer to send (/canned NAME)
    draft: int | None = None  # RELAY: the saved draft's message row, whose files travel too (/send)


@dataclass(frozen=True)
class Decision:
    action: Action
    ticket_id: int | None  # for APPEND/DUPLICATE, the ticket; None for CREATE/IGNORE
    reason: str
    rules: tuple[str, ...]  # which rules fired, kept in the history
    direction: Direction = Direction.IN  # in | note | agent | draft
    subject: str = ""  # the new ticket's subject
    status: str | None = None  # the ticket's status after this mail
    refers_to: int | None = None  # link the new ticket to this one
    events: tuple[EventSpec, ...] = field(default_factory=tuple)
    outgoing: tuple[Outgoing, ...] = ()  # mails to send because of this one
    body: str | None = None  # what to store instead of the mail's text (a /note without its command)
    undeliverable: tuple[str, ...] = ()  # addresses a permanent bounce names
    complaints: tuple[str, ...] = ()  # addresses that reported maild's mail as abuse: no more automatic mail
    bounced: Bounced | None = None
    form: FormOutcome | None = None  # a website form's ticket fields (maild.forms.match.attach)
    ops: tuple[command_ops.Op, ...] = ()  # ticket changes from commands (maild.commands.apply)
    triggers: tuple[TriggerEvent, ...] = ()  # what trigger rules hear of this mail, in order
    requester: tuple[str, str] | None = None  # CREATE by an agent with /new: (address, name) of the customer
