"""Tickets as plain dicts: the JSON contract of `maild tickets list|show --json`."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maild.domain.outcome import DELETED
from maild.domain.tags import TagLook, looks
from maild.store import references
from maild.store.models import (
    Contact,
    Event,
    Message,
    Participant,
    Tag,
    Ticket,
    TicketLink,
    TicketTag,
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "requester": ticket.requester.email,
        "assignee": ticket.assignee,
        "tags": [tag.name for tag in ticket.tags],
        "priority": ticket.priority,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "message_count": ticket.message_count,
        "type": ticket.type,
        "next_action_at": _iso(ticket.next_action_at),
    }


@dataclass(frozen=True)
class TicketFilter:
    """What ``maild tickets list`` narrows to (seed 000's filters); every given one must hold."""

    status: str | None = None
    tag: str | None = None
    requester: str | None = None
    assignee: str | None = None  # an address; "" = nobody
    type: str | None = None
    since: datetime | None = None  # created at or after
    overdue_at: datetime | None = None  # open, next action before this time
    limit: int | None = None


def list_tickets(session: Session, status: str | None = None, tag: str | None = None,
                 requester: str | None = None, limit: int | None = None, *,
                 where: TicketFilter | None = None) -> list[dict[str, Any]]:
    f = where or TicketFilter(status=status, tag=tag, requester=requester, limit=limit)
    query = select(Ticket).where(Ticket.status != DELETED).order_by(Ticket.id)
    if f.status:
        query = query.where(Ticket.status == f.status)
    if f.tag:
        query = query.join(TicketTag).join(Tag).where(Tag.name == f.tag)
    if f.requester:
        query = query.join(Contact, Ticket.requester_id == Contact.id).where(Contact.email == f.requester.lower())
    if f.assignee is not None:
        query = query.where(Ticket.assignee == f.assignee if f.assignee else Ticket.assignee.is_(None))
    if f.type:
        query = query.where(func.lower(Ticket.type) == f.type.lower())
    if f.since is not None:
        query = query.where(Ticket.created_at >= f.since)
    if f.overdue_at is not None:
        query = query.where(Ticket.status != "closed", Ticket.next_action_at < f.overdue_at)
    if f.limit:
        query = query.limit(f.limit)
    return [ticket_summary(t) for t in session.scalars(query).unique()]


def status_counts(session: Session, statuses: list[str]) -> dict[str, int]:
    """Tickets per status (seed 000's tabs): every status of the workflow, in its order, zero
    ones too; a stored status the workflow no longer has comes last."""
    found = dict(session.execute(select(Ticket.status, func.count()).where(Ticket.status != DELETED)
                                 .group_by(Ticket.status)).all())
    return {**{s: found.get(s, 0) for s in statuses}, **{s: n for s, n in sorted(found.items()) if s not in statuses}}


def ticket_detail(session: Session, ticket_id: int,
                  tag_looks: Mapping[str, TagLook] | None = None) -> dict[str, Any] | None:
    """One ticket in full; ``tag_looks``: the tags the configuration gives a label and colour."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    data = ticket_summary(ticket)
    data["tag_details"] = [look.as_dict() for look in looks(data["tags"], tag_looks or {})]
    # The customer-visible conversation: what came in, what went out, and internal notes.
    # An agent's own mail (direction "agent") is kept for the record but is not part of it:
    # what the customer got from it is the "out" message that follows.
    messages = session.scalars(select(Message).where(Message.ticket_id == ticket_id,
                                                     Message.direction.in_(("in", "out", "note", "draft")))
                               .order_by(Message.id))
    events = session.scalars(select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id))
    links = session.execute(select(TicketLink.other_id, TicketLink.kind).where(TicketLink.ticket_id == ticket_id))
    data.update({
        "subtype": ticket.subtype,
        "category": ticket.category,
        "origin": ticket.origin,
        "visible": ticket.visible,
        "draft_pending": ticket.draft_pending,  # a /draft reply waits for /send
        "closed_at": _iso(ticket.closed_at),
        "participants": [
            {"email": p.email, "role": p.role}
            for p in session.scalars(select(Participant).where(Participant.ticket_id == ticket_id))
        ],
        "links": [{"ticket": other, "kind": kind} for other, kind in links],
        "references": references.of_ticket(session, ticket_id),  # catalog refs, e.g. property codes
        "messages": [
            {
                "direction": m.direction,
                "from": m.from_addr,
                "from_name": m.from_name,
                "to": [a for a in m.to_addrs.split(", ") if a],
                "cc": [a for a in m.cc_addrs.split(", ") if a],
                "subject": m.subject,
                "message_id": m.message_id,
                "kind": m.kind,
                "channel": m.channel,
                "body_text": m.body_text,
                "created_at": _iso(m.created_at),
                "attachments": [
                    {"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256}
                    for a in m.attachments
                ],
            }
            for m in messages
        ],
        "events": [
            {"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "old": e.old, "new": e.new,
             "message_id": e.message_id, "detail": e.detail}
            for e in events
        ],
    })
    return data
