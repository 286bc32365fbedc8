"""Queries and writes over one session; these functions never commit.

They run for every mail, so the statements are built once, here, with bound parameters:
SQLAlchemy then reuses their compiled form instead of rebuilding SQL per mail.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from maild.domain.decision import TicketState
from maild.domain.outcome import DELETED
from maild.store.keys import header_hash
from maild.store.models import Contact, Message, Participant, RawMail, Tag, Ticket, TicketLink, TicketTag
from maild.threading.repeat import Recent
from maild.store.rows import new_id

contacts, tickets, messages = Contact.__table__, Ticket.__table__, Message.__table__
participants, raw_mails, links = Participant.__table__, RawMail.__table__, TicketLink.__table__

# Header values are found by their hash (the indexed column), then compared in full.
_TICKET_OF_MESSAGE = select(messages.c.ticket_id).where(messages.c.message_id_hash == bindparam("mid_hash"),
                                                        messages.c.message_id == bindparam("mid"))
_TICKETS_OF_MESSAGES = select(messages.c.message_id, messages.c.ticket_id).where(
    messages.c.message_id_hash.in_(bindparam("mid_hashes", expanding=True)))
_TICKET_AND_MERGE = (
    select(tickets.c.id, links.c.other_id)
    .select_from(tickets.outerjoin(links, and_(links.c.ticket_id == tickets.c.id, links.c.kind == "merged_into")))
    .where(tickets.c.id == bindparam("tid"), tickets.c.status != DELETED)  # a deleted ticket is gone
)
_REQUESTER_EMAIL = (select(contacts.c.email).select_from(tickets.join(contacts, tickets.c.requester_id == contacts.c.id))
                    .where(tickets.c.id == bindparam("tid")))
_PARTICIPANT = select(participants.c.id).where(participants.c.ticket_id == bindparam("tid"),
                                               participants.c.email == bindparam("email"))
_ADDRESSEES = select(messages.c.to_addrs, messages.c.cc_addrs).where(
    messages.c.ticket_id == bindparam("tid"), messages.c.message_id.in_(bindparam("mids", expanding=True)))
_RAW_SEEN = select(raw_mails.c.ticket_id, raw_mails.c.message_id).where(raw_mails.c.sha256 == bindparam("sha"))
_TICKET_STATE = select(tickets.c.status, tickets.c.closed_at, tickets.c.assignee, tickets.c.visible).where(tickets.c.id == bindparam("tid"))
_CONTACT = select(contacts.c.id, contacts.c.name, contacts.c.blocked).where(contacts.c.email == bindparam("email"))
_NEW_CONTACT = insert(contacts).returning(contacts.c.id)
_CONTACT_NAME = update(contacts).where(contacts.c.id == bindparam("cid")).values(
    name=bindparam("name"), updated_at=bindparam("now"))


def conn(session: Session) -> Connection:
    return session.connection()


class SessionLookup:
    """The threading stage's view of the database (``ThreadLookup``)."""

    def __init__(self, session: Session) -> None:
        self.conn = conn(session)

    def ticket_of_message(self, message_id: str) -> int | None:
        return self.conn.execute(_TICKET_OF_MESSAGE, {"mid_hash": header_hash(message_id), "mid": message_id}).scalar()

    def ticket_of_any(self, message_ids: Sequence[str]) -> int | None:
        hashes = [header_hash(m) for m in list(message_ids)[:100]]
        # The hash found the rows; the dict below keeps only full-value matches.
        by_id: dict[str, int] = dict(self.conn.execute(_TICKETS_OF_MESSAGES, {"mid_hashes": hashes}).all())
        for message_id in message_ids:  # the caller's order: most recent first
            if message_id in by_id:
                return by_id[message_id]
        return None

    def resolve_ticket(self, ticket_id: int) -> int | None:
        seen: set[int] = set()
        while ticket_id not in seen:
            seen.add(ticket_id)
            row = self.conn.execute(_TICKET_AND_MERGE, {"tid": ticket_id}).first()
            if row is None:
                return None
            if row.other_id is None:
                return ticket_id
            ticket_id = row.other_id
        return None

    def is_participant(self, ticket_id: int, email: str) -> bool:
        if self.conn.execute(_REQUESTER_EMAIL, {"tid": ticket_id}).scalar() == email:
            return True
        return self.conn.execute(_PARTICIPANT, {"tid": ticket_id, "email": email}).first() is not None

    def requester_of(self, ticket_id: int) -> str | None:
        return self.conn.execute(_REQUESTER_EMAIL, {"tid": ticket_id}).scalar()

    def addressed_in(self, ticket_id: int, email: str, message_ids: Sequence[str]) -> bool:
        if not message_ids:
            return False
        rows = self.conn.execute(_ADDRESSEES, {"tid": ticket_id, "mids": list(message_ids)[:100]}).all()
        return any(email in (a.strip().lower() for a in f"{r.to_addrs},{r.cc_addrs}".split(",")) for r in rows)


# Through the requester's tickets (indexed by requester) rather than messages.from_addr
# (not indexed): a repeat joins a ticket the same sender opened.
_RECENT_FROM = (
    select(messages.c.ticket_id, messages.c.subject, messages.c.body_text)
    .select_from(messages.join(tickets, messages.c.ticket_id == tickets.c.id)
                 .join(contacts, tickets.c.requester_id == contacts.c.id))
    .where(contacts.c.email == bindparam("email"), messages.c.from_addr == bindparam("email"),
           messages.c.direction == "in", messages.c.created_at > bindparam("since"))
    .order_by(messages.c.id.desc()).limit(20))


def recent_from(session: Session, email: str, since: datetime) -> list[Recent]:
    """What ``email`` wrote since ``since`` on tickets they requested, newest first."""
    return [Recent(r.ticket_id, r.subject, r.body_text)
            for r in conn(session).execute(_RECENT_FROM, {"email": email, "since": since})]


def raw_seen(session: Session, digest: str) -> tuple[int | None, str | None] | None:
    """(ticket id, message id) of an identical raw mail already received, if any."""
    row = conn(session).execute(_RAW_SEEN, {"sha": digest}).first()
    return (row.ticket_id, row.message_id) if row else None


def drop_quarantined(session: Session, digest: str) -> None:
    """Forget a quarantine row, so its raw mail can go through the pipeline again."""
    conn(session).execute(delete(raw_mails).where(raw_mails.c.sha256 == digest, raw_mails.c.status == "quarantined"))


def ticket_state(session: Session, ticket_id: int | None) -> TicketState | None:
    if ticket_id is None:
        return None
    row = conn(session).execute(_TICKET_STATE, {"tid": ticket_id}).first()
    return TicketState(ticket_id, row.status, row.closed_at, row.assignee, bool(row.visible)) if row else None


def contact_id_for(session: Session, email: str, name: str, now: datetime) -> int:
    """Find a contact by normalized address, or create it; fill a missing name."""
    c = conn(session)
    row = c.execute(_CONTACT, {"email": email}).first()
    if row is None:
        return new_id(c.execute(_NEW_CONTACT, {"email": email, "name": name[:200], "phone": "", "consent": True,
                                               "blocked": False, "created_at": now, "updated_at": now}))
    if name and not row.name:
        c.execute(_CONTACT_NAME, {"cid": row.id, "name": name[:200], "now": now})
    return int(row.id)


def is_blocked(session: Session, email: str) -> bool:
    row = conn(session).execute(_CONTACT, {"email": email}).first()
    return bool(row and row.blocked)


def tag_names(session: Session, ticket_ids: list[int]) -> dict[int, list[str]]:
    """The tags of these tickets, by ticket, each list in name order."""
    found: dict[int, list[str]] = {}
    if ticket_ids:
        for tid, name in session.execute(select(TicketTag.ticket_id, Tag.name).join(Tag, Tag.id == TicketTag.tag_id)
                                         .where(TicketTag.ticket_id.in_(ticket_ids)).order_by(Tag.name)):
            found.setdefault(tid, []).append(name)
    return found


def status_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Ticket.status, func.count()).where(Ticket.status != DELETED)
                                .group_by(Ticket.status)).all())
