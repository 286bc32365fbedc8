"""The reads commands need: drafts for ``/send``, requesters for ``/block``, and the
ticket lists, details and counts the control address reports. Take a session, never commit."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from maild.domain.outcome import DELETED
from maild.domain.files import FileRef
from maild.domain.tags import TagLook, looks
from maild.store import files, search
from maild.store.models import Contact, Message, Tag, Ticket, TicketTag
from maild.store.repo import SessionLookup

_DRAFT = (select(Message.id, Message.body_text).where(Message.ticket_id == bindparam("tid"),
                                                      Message.direction == "draft")
          .order_by(Message.id.desc()).limit(1))
_REQUESTER = (select(Contact.email).select_from(Ticket).join(Contact, Ticket.requester_id == Contact.id)
              .where(Ticket.id == bindparam("tid")))


@dataclass(frozen=True)
class TicketLine:
    id: int
    status: str
    priority: str
    assignee: str | None
    requester: str
    subject: str
    updated_at: datetime
    next_action_at: datetime | None


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    tag: str | None = None
    assignee: str | None = None  # an address; "" = unassigned
    priority: str | None = None
    requester: str | None = None
    open_only: bool = False  # no explicit status: leave closed tickets out


class CommandReads(SessionLookup):
    """``CommandLookup`` and the control address's ``ControlLookup`` over one session."""

    def __init__(self, session: Session, tag_looks: Mapping[str, TagLook] | None = None) -> None:
        super().__init__(session)
        self.session = session
        self.tag_looks = tag_looks or {}  # labels and colours of the configured tags

    def draft_of(self, ticket_id: int) -> tuple[int, str] | None:
        row = self.conn.execute(_DRAFT, {"tid": ticket_id}).first()
        return (row.id, row.body_text) if row else None

    def requester_of(self, ticket_id: int) -> str:
        return self.conn.execute(_REQUESTER, {"tid": ticket_id}).scalar() or ""

    def status_of(self, ticket_id: int) -> str:
        return self.session.scalar(select(Ticket.status).where(Ticket.id == ticket_id)) or ""

    def find(self, filters: Filters, limit: int) -> tuple[list[TicketLine], int]:
        query = (select(Ticket.id, Ticket.status, Ticket.priority, Ticket.assignee, Contact.email, Ticket.subject,
                        Ticket.updated_at, Ticket.next_action_at)
                 .join(Contact, Ticket.requester_id == Contact.id))
        query = query.where(Ticket.status != DELETED)
        if filters.status:
            query = query.where(Ticket.status == filters.status)
        elif filters.open_only:
            query = query.where(Ticket.status != "closed")
        if filters.tag:
            query = query.join(TicketTag, TicketTag.ticket_id == Ticket.id).join(Tag, Tag.id == TicketTag.tag_id) \
                .where(Tag.name == filters.tag)
        if filters.assignee is not None:
            query = query.where(Ticket.assignee == filters.assignee if filters.assignee else Ticket.assignee.is_(None))
        if filters.priority:
            query = query.where(Ticket.priority == filters.priority)
        if filters.requester:
            query = query.where(Contact.email == filters.requester)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.execute(query.order_by(Ticket.id).limit(limit)).all()
        return [TicketLine(*row) for row in rows], total

    def detail(self, ticket_id: int) -> dict[str, Any] | None:
        from maild.views import ticket_detail

        return ticket_detail(self.session, ticket_id, self.tag_looks)

    def file(self, ticket_id: int, name: str) -> FileRef | None:
        return files.find(self.session, ticket_id, name)

    def file_names(self, ticket_id: int) -> list[str]:
        return files.names(self.session, ticket_id)

    def search(self, query: str, limit: int) -> list[tuple[TicketLine, tuple[str, ...]]]:
        """Tickets matching every word, best first, each with its tags as shown (label, colour)."""
        return [(TicketLine(h.ticket_id, h.status, h.priority, h.assignee, h.requester, h.subject, h.updated_at, None),
                 tuple(look.text() for look in looks(h.tags, self.tag_looks)))
                for h in search.search(self.session, query, limit)]

    def counts(self) -> dict[str, int]:
        return dict(self.session.execute(select(Ticket.status, func.count()).where(Ticket.status != DELETED)
                                         .group_by(Ticket.status)).all())

    def counts_by_assignee(self) -> dict[str | None, int]:
        return dict(self.session.execute(select(Ticket.assignee, func.count()).where(Ticket.status.not_in(("closed", DELETED)))
                                         .group_by(Ticket.assignee)).all())
