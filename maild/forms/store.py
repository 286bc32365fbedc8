"""Writing a form ticket's extras, inside the mail's transaction (called by store/apply.py).

The ticket gets the form's type, subtype, category, tags, origin ``form:<name>`` and the
catalog reference. The contact (already found or created by address) gets the form's
name and phone only where it has none — unless the form is configured with
``update_contact: true`` — and the form's consent answer, when the form asks for it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from maild.domain.forms import FormOutcome
from maild.store import references
from maild.store.models import Contact, Tag, TicketTag
from maild.store.repo import tickets

contacts, tags, ticket_tags = Contact.__table__, Tag.__table__, TicketTag.__table__
_TICKET_FIELDS = update(tickets).where(tickets.c.id == bindparam("tid")).values(
    type=bindparam("type"), subtype=bindparam("subtype"), category=bindparam("category"), origin=bindparam("origin"))
_CONTACT = select(contacts.c.name, contacts.c.phone).where(contacts.c.id == bindparam("cid"))


def apply_form(session: Session, ticket_id: int, contact_id: int, form: FormOutcome, now: datetime) -> None:
    c = session.connection()
    t = form.spec.ticket
    c.execute(_TICKET_FIELDS, {"tid": ticket_id, "type": t.type, "subtype": t.subtype, "category": t.category,
                               "origin": form.origin[:100]})
    add_tags(session, ticket_id, t.tags)
    if form.data.reference:
        references.link(session, ticket_id, [form.data.reference], form.origin, now)
    if form.sender.is_known:
        update_contact(session, contact_id, name=form.data.name, phone=form.data.phone, consent=form.data.consent,
                       overwrite=form.spec.update_contact, now=now)


def add_tags(session: Session, ticket_id: int, names: list[str]) -> None:
    c = session.connection()
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        tag_id = c.execute(select(tags.c.id).where(tags.c.name == name)).scalar()
        if tag_id is None:
            tag_id = c.execute(insert(tags).returning(tags.c.id), {"name": name[:100], "colour": ""}).scalar_one()
        if c.execute(select(ticket_tags.c.tag_id).where(ticket_tags.c.ticket_id == ticket_id,
                                                        ticket_tags.c.tag_id == tag_id)).first() is None:
            c.execute(insert(ticket_tags), {"ticket_id": ticket_id, "tag_id": tag_id})


def update_contact(session: Session, contact_id: int, *, name: str, phone: str, consent: bool | None,
                   overwrite: bool, now: datetime) -> None:
    """Fill empty name/phone (or replace them with ``overwrite``); set consent when given."""
    c = session.connection()
    row = c.execute(_CONTACT, {"cid": contact_id}).first()
    if row is None:
        return
    values: dict[str, object] = {}
    if name and (overwrite or not row.name) and name != row.name:
        values["name"] = name[:200]
    if phone and (overwrite or not row.phone) and phone != row.phone:
        values["phone"] = phone[:64]
    if consent is not None:
        values["consent"] = consent
    if values:
        c.execute(update(contacts).where(contacts.c.id == contact_id).values(updated_at=now, **values))
