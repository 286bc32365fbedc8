"""The ticket as trigger rules see it: one query (tags and watchers as aggregated strings).

It stands in for the planner's own ticket query, so triggers add no round trip per mail.
"""
from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from maild.notify.engine import TicketFacts
from maild.store.models import Tag, TicketTag
from maild.store.repo import contacts, participants, tickets

_SEP = "\n"
tags, ticket_tags = Tag.__table__, TicketTag.__table__

_WATCHERS = (select(func.aggregate_strings(participants.c.email, _SEP))
             .where(participants.c.ticket_id == tickets.c.id, participants.c.role == "watcher")
             .scalar_subquery())
_TAGS = (select(func.aggregate_strings(tags.c.name, _SEP))
         .select_from(ticket_tags.join(tags, ticket_tags.c.tag_id == tags.c.id))
         .where(ticket_tags.c.ticket_id == tickets.c.id)
         .scalar_subquery())
COLUMNS = (tickets.c.id, tickets.c.subject, tickets.c.status, tickets.c.priority, tickets.c.type, tickets.c.subtype,
           tickets.c.category, tickets.c.assignee, tickets.c.visible, tickets.c.origin, tickets.c.next_action_at,
           tickets.c.created_at, contacts.c.email, contacts.c.name, contacts.c.phone, contacts.c.consent,
           contacts.c.blocked, _WATCHERS.label("watchers"), _TAGS.label("tags"))
FROM = tickets.join(contacts, tickets.c.requester_id == contacts.c.id)
_ONE = select(*COLUMNS).select_from(FROM).where(tickets.c.id == bindparam("tid"))


def of_row(row: object) -> TicketFacts:
    r = row  # a Row with COLUMNS
    return TicketFacts(
        id=r.id, subject=r.subject, status=r.status, priority=r.priority, type=r.type,  # type: ignore[attr-defined]
        subtype=r.subtype, category=r.category, assignee=r.assignee, visible=bool(r.visible),  # type: ignore[attr-defined]
        origin=r.origin or "", next_action_at=r.next_action_at, created_at=r.created_at,  # type: ignore[attr-defined]
        requester=r.email, requester_name=r.name or "", requester_phone=r.phone or "",  # type: ignore[attr-defined]
        consent=r.consent is not False, blocked=bool(r.blocked),  # type: ignore[attr-defined]
        watchers=tuple(sorted(set(filter(None, (r.watchers or "").split(_SEP))))),  # type: ignore[attr-defined]
        tags=tuple(sorted(filter(None, (r.tags or "").split(_SEP)))))  # type: ignore[attr-defined]


def ticket_facts(session: Session, ticket_id: int) -> TicketFacts | None:
    row = session.connection().execute(_ONE, {"tid": ticket_id}).first()
    return of_row(row) if row is not None else None
