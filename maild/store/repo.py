"""Queries and writes over one session; these functions never commit."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maild.ingest.decide import TicketState
from maild.store.models import Contact, Message, Participant, RawMail, Ticket, TicketLink


class SessionLookup:
    """The threading stage's view of the database (``ThreadLookup``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ticket_of_message(self, message_id: str) -> int | None:
        return self.session.scalar(select(Message.ticket_id).where(Message.message_id == message_id))

    def ticket_of_any(self, message_ids: Sequence[str]) -> int | None:
        rows = self.session.execute(
            select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(list(message_ids)[:100]))
        ).all()
        by_id = dict(rows)
        for message_id in message_ids:  # the caller's order: most recent first
            if message_id in by_id:
                return by_id[message_id]
        return None

    def resolve_ticket(self, ticket_id: int) -> int | None:
        seen: set[int] = set()
        while ticket_id not in seen:
            seen.add(ticket_id)
            if self.session.get(Ticket, ticket_id) is None:
                return None
            merged = self.session.scalar(
                select(TicketLink.other_id).where(TicketLink.ticket_id == ticket_id, TicketLink.kind == "merged_into")
            )
            if merged is None:
                return ticket_id
            ticket_id = merged
        return None

    def is_participant(self, ticket_id: int, email: str) -> bool:
        ticket = self.session.get(Ticket, ticket_id)
        if ticket is not None and ticket.requester.email == email:
            return True
        return self.session.scalar(
            select(Participant.id).where(Participant.ticket_id == ticket_id, Participant.email == email)
        ) is not None


def raw_seen(session: Session, digest: str) -> RawMail | None:
    return session.scalar(select(RawMail).where(RawMail.sha256 == digest))


def ticket_state(session: Session, ticket_id: int | None) -> TicketState | None:
    if ticket_id is None:
        return None
    ticket = session.get(Ticket, ticket_id)
    return TicketState(ticket.id, ticket.status, ticket.closed_at) if ticket else None


def contact_for(session: Session, email: str, name: str, now: datetime) -> Contact:
    """Find a contact by normalized address, or create it; fill a missing name."""
    contact = session.scalar(select(Contact).where(Contact.email == email))
    if contact is None:
        contact = Contact(email=email, name=name[:200], created_at=now, updated_at=now)
        session.add(contact)
        session.flush()
    elif name and not contact.name:
        contact.name = name[:200]
        contact.updated_at = now
    return contact


def is_blocked(session: Session, email: str) -> bool:
    return bool(session.scalar(select(Contact.blocked).where(Contact.email == email)))


def status_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
