"""Write a command mail's ticket changes (:mod:`maild.domain.ops`) in the caller's
transaction, with one history event per actual change: who, when, old → new, and the
Message-ID of the mail that asked for it. Never commits.

Runs only for mails that carry commands; ordinary mail never reaches this module.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from maild.domain import ops
from maild.domain.events import EventSpec
from maild.store import history
from maild.store import rows as stored
from maild.store.models import AttachmentRow, Contact, Message, Participant, Tag, Ticket, TicketLink, TicketTag

tickets, tags, ticket_tags = Ticket.__table__, Tag.__table__, TicketTag.__table__
participants, links, contacts, messages = (Participant.__table__, TicketLink.__table__, Contact.__table__,
                                           Message.__table__)
attachments = AttachmentRow.__table__


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass
class Applied:
    """What :func:`apply_ops` did: notes for feedback (e.g. a clone's id), and the history
    entries it wrote as (ticket id, kind, old, new) — what trigger rules hear about."""

    notes: list[str] = field(default_factory=list)
    changes: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)


class _Writer:
    def __init__(self, session: Session, actor: str, message_id: str | None, now: datetime) -> None:
        self.session = session
        self.c = session.connection()
        self.actor, self.message_id, self.now = actor, message_id, now
        self.done = Applied()

    def event(self, ticket_id: int, kind: str, old: Any = None, new: Any = None, detail: str = "") -> None:
        history.record(self.session, ticket_id, [EventSpec(kind, _text(old), _text(new), detail)], at=self.now,
                       actor=self.actor, message_id=self.message_id)
        self.done.changes.append((ticket_id, kind, _text(old), _text(new)))

    def touch(self, ticket_id: int, **values: Any) -> None:
        self.c.execute(update(tickets).where(tickets.c.id == ticket_id).values(updated_at=self.now, **values))

    # -- one op each -------------------------------------------------------------------
    def fields(self, ticket_id: int, changes: Sequence[ops.SetField]) -> None:
        wanted = {op.field: op.value for op in changes}
        row = self.c.execute(select(*[tickets.c[f] for f in wanted]).where(tickets.c.id == ticket_id)).first()
        if row is None:
            return
        changed = {f: v for f, v in wanted.items() if getattr(row, f) != v}
        if not changed:
            return
        self.touch(ticket_id, **changed)
        for name, value in changed.items():
            self.event(ticket_id, name, getattr(row, name), value)

    def status(self, ticket_id: int, op: ops.SetStatus) -> None:
        old = self.c.execute(select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar()
        if old is None or old == op.status:
            return
        self.touch(ticket_id, status=op.status, closed_at=self.now if op.status == "closed" else None)
        self.event(ticket_id, "status", old, op.status, op.detail)

    def tag(self, ticket_id: int, op: ops.TagOp) -> None:
        tag_id = self.c.execute(select(tags.c.id).where(tags.c.name == op.name)).scalar()
        if tag_id is None:
            if not op.add:
                return
            tag_id = self.c.execute(insert(tags).returning(tags.c.id), {"name": op.name, "colour": ""}).scalar_one()
        where = and_(ticket_tags.c.ticket_id == ticket_id, ticket_tags.c.tag_id == tag_id)
        present = self.c.execute(select(ticket_tags.c.tag_id).where(where)).first() is not None
        if op.add and not present:
            self.c.execute(insert(ticket_tags), {"ticket_id": ticket_id, "tag_id": tag_id})
        elif not op.add and present:
            self.c.execute(delete(ticket_tags).where(where))
        else:
            return
        self.touch(ticket_id)
        self.event(ticket_id, "tag", None, ("+" if op.add else "-") + op.name)

    def participant(self, ticket_id: int, email: str, role: str) -> bool:
        requester = self.c.execute(select(contacts.c.email).select_from(
            tickets.join(contacts, tickets.c.requester_id == contacts.c.id)).where(tickets.c.id == ticket_id)).scalar()
        exists = self.c.execute(select(participants.c.role).where(
            participants.c.ticket_id == ticket_id, participants.c.email == email)).first()
        if requester == email or exists is not None:
            return False
        self.c.execute(insert(participants), {"ticket_id": ticket_id, "email": email, "role": role})
        self.event(ticket_id, "participant", None, f"{role} {email}")
        return True

    def _link_row(self, a: int, b: int, kind: str) -> bool:
        exists = self.c.execute(select(links.c.kind).where(links.c.ticket_id == a, links.c.other_id == b,
                                                           links.c.kind == kind)).first()
        if exists is None:
            self.c.execute(insert(links), {"ticket_id": a, "other_id": b, "kind": kind})
        return exists is None

    def link(self, ticket_id: int, op: ops.Link) -> None:
        if op.kind == "merged_into":
            if self._link_row(ticket_id, op.other, "merged_into"):
                self._link_row(op.other, ticket_id, "merged_from")
                self.event(ticket_id, "merged", None, f"#{op.other}", f"merged into #{op.other}")
                self.event(op.other, "merged", None, f"#{ticket_id}", f"ticket #{ticket_id} was merged into this one")
                requester = self.c.execute(select(contacts.c.email).select_from(
                    tickets.join(contacts, tickets.c.requester_id == contacts.c.id))
                    .where(tickets.c.id == ticket_id)).scalar()
                if requester:
                    self.participant(op.other, requester, "cc")
                self.touch(op.other)
            return
        if self._link_row(ticket_id, op.other, op.kind):
            self._link_row(op.other, ticket_id, op.kind)
            self.event(ticket_id, "linked", None, f"#{op.other}", op.kind)
            self.event(op.other, "linked", None, f"#{ticket_id}", op.kind)

    def block(self, ticket_id: int, op: ops.Block) -> None:
        done = self.c.execute(update(contacts).where(contacts.c.email == op.email, contacts.c.blocked.is_(False))
                              .values(blocked=True, updated_at=self.now))
        if done.rowcount:
            self.event(ticket_id, "blocked", None, op.email, "later mail from this address is kept but ignored")

    def clone(self, ticket_id: int) -> None:
        """A working copy: the fields, tags, the conversation (every message but drafts, with
        its attachments, under new Message-IDs) and an owner — the original's assignee, else the
        agent who cloned it — so the copy is not an unowned empty ticket announced again and again."""
        row = self.c.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            return
        copy = {k: getattr(row, k) for k in ("subject", "priority", "type", "subtype", "category", "assignee",
                                             "requester_id", "visible")}
        copy["assignee"] = copy["assignee"] or self.actor
        new_id = self.c.execute(insert(tickets).returning(tickets.c.id), {
            **copy, "status": "new", "origin": "clone", "message_count": 0, "created_at": self.now,
            "updated_at": self.now}).scalar_one()
        self._copy_messages(ticket_id, new_id)
        tag_ids = self.c.execute(select(ticket_tags.c.tag_id).where(ticket_tags.c.ticket_id == ticket_id)).scalars()
        rows = [{"ticket_id": new_id, "tag_id": t} for t in tag_ids]
        if rows:
            self.c.execute(insert(ticket_tags), rows)
        self._link_row(new_id, ticket_id, "cloned_from")
        self._link_row(ticket_id, new_id, "cloned_to")
        self.event(new_id, "created", None, "new", f"clone of #{ticket_id}")
        self.event(ticket_id, "cloned", None, f"#{new_id}", f"cloned as #{new_id}")
        self.done.notes.append(f"cloned as #{new_id}")

    def _copy_messages(self, source: int, target: int) -> None:
        found = self.c.execute(select(messages).where(messages.c.ticket_id == source,
                                                      messages.c.direction != "draft").order_by(messages.c.id)).all()
        for m in found:
            values = {k: v for k, v in m._mapping.items() if k not in ("id", "ticket_id", "message_id_hash")}
            values["message_id"] = f"<clone.{target}.{m.message_id.strip('<>')}>"[:998]
            new_pk = stored.new_id(self.c.execute(insert(messages).returning(messages.c.id),
                                                  {**values, "ticket_id": target}))
            files = self.c.execute(select(attachments).where(attachments.c.message_id == m.id)).all()
            if files:
                self.c.execute(insert(attachments), [
                    {**{k: v for k, v in f._mapping.items() if k != "id"}, "message_id": new_pk} for f in files])
        self.touch(target, message_count=len(found))

    def new_ticket(self, op: ops.NewTicket, requester_id: int, origin: str) -> int:
        return stored.new_id(self.c.execute(insert(tickets).returning(tickets.c.id), {
            "subject": op.subject[:2000], "status": "new", "priority": "normal", "requester_id": requester_id,
            "visible": True, "origin": origin, "message_count": 0, "created_at": self.now,
            "updated_at": self.now}))


def apply_ops(session: Session, ticket_id: int, changes: Sequence[ops.Op], *, actor: str,
              message_id: str | None, now: datetime) -> Applied:
    """Carry out ``changes`` on ticket ``ticket_id``; return the notes and history entries."""
    w = _Writer(session, actor, message_id, now)
    fields = [op for op in changes if isinstance(op, ops.SetField)]
    if fields:
        w.fields(ticket_id, fields)
    for op in changes:
        if isinstance(op, ops.SetStatus):
            w.status(ticket_id, op)
        elif isinstance(op, ops.TagOp):
            w.tag(ticket_id, op)
        elif isinstance(op, ops.AddParticipant):
            w.participant(ticket_id, op.email, op.role)
        elif isinstance(op, ops.Link):
            w.link(ticket_id, op)
        elif isinstance(op, ops.Block):
            w.block(ticket_id, op)
        elif isinstance(op, ops.Clone):
            w.clone(ticket_id)
        elif isinstance(op, ops.DraftPending):
            w.touch(ticket_id, draft_pending=op.pending)
        elif isinstance(op, ops.AttachRefs):
            from maild.store import references

            added = references.link(session, ticket_id, op.refs, actor, now)
            if added:
                w.event(ticket_id, "listing", None, " ".join(added), "catalog items linked (/listing)")
        elif isinstance(op, ops.ReleaseDraft):
            w.c.execute(update(messages).where(messages.c.id == op.message_pk, messages.c.direction == "draft")
                        .values(direction="drafted"))
    return w.done


def open_ticket(session: Session, op: ops.NewTicket, requester_id: int, *, actor: str, message_id: str | None,
                now: datetime, origin: str = "control") -> int:
    """A ticket opened by an agent for a customer (``new`` at the control address)."""
    w = _Writer(session, actor, message_id, now)
    ticket_id = w.new_ticket(op, requester_id, origin)
    w.event(ticket_id, "created", None, "new", f"opened by {actor} at the control address")
    return ticket_id
