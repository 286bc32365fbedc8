"""The contact book: find, show, block and upsert contacts. Functions take a session and
never commit (the CLI owns the transaction).

A contact is keyed by its normalized address (:class:`maild.contacts.normalize.AddressKey`).
Name and phone are filled when missing and replaced only when the caller says so
(``overwrite``): a form or an import never silently rewrites what an agent knows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from maild.store.models import Contact, ContactGroup, Ticket

contacts, groups = Contact.__table__, ContactGroup.__table__


@dataclass(frozen=True)
class ContactData:
    """One contact as an import gives it; None means "the file says nothing"."""

    email: str
    name: str | None = None
    phone: str | None = None
    groups: tuple[str, ...] | None = None
    consent: bool | None = None
    blocked: bool | None = None


def find(session: Session, email: str) -> Contact | None:
    return session.scalars(select(Contact).where(Contact.email == email)).first()


def groups_of(session: Session, contact_id: int) -> list[str]:
    return list(session.scalars(select(ContactGroup.name).where(ContactGroup.contact_id == contact_id)
                                .order_by(ContactGroup.name)))


def set_blocked(session: Session, email: str, blocked: bool, now: datetime) -> bool:
    """Block (creating the contact if needed) or unblock; returns whether anything changed."""
    row = find(session, email)
    if row is None:
        if not blocked:
            return False
        session.execute(insert(contacts).values(email=email, name="", phone="", consent=True, blocked=True,
                                                created_at=now, updated_at=now))
        return True
    if row.blocked == blocked:
        return False
    session.execute(update(contacts).where(contacts.c.id == row.id).values(blocked=blocked, updated_at=now))
    return True


def upsert(session: Session, data: ContactData, now: datetime, overwrite: bool = False) -> str:
    """Create or update a contact; returns ``created``, ``updated`` or ``unchanged``."""
    row = find(session, data.email)
    if row is None:
        contact_id = session.execute(insert(contacts).returning(contacts.c.id).values(
            email=data.email, name=(data.name or "")[:200], phone=(data.phone or "")[:64],
            consent=True if data.consent is None else data.consent, blocked=bool(data.blocked),
            created_at=now, updated_at=now)).scalar_one()
        _add_groups(session, contact_id, data.groups or ())
        return "created"
    values: dict[str, Any] = {}
    for column, value, limit in (("name", data.name, 200), ("phone", data.phone, 64)):
        if value and (overwrite or not getattr(row, column)) and value != getattr(row, column):
            values[column] = value[:limit]
    for column, flag in (("consent", data.consent), ("blocked", data.blocked)):
        if flag is not None and flag != getattr(row, column):
            values[column] = flag
    added = _add_groups(session, row.id, data.groups or ())
    if values:
        session.execute(update(contacts).where(contacts.c.id == row.id).values(updated_at=now, **values))
    return "updated" if values or added else "unchanged"


def _add_groups(session: Session, contact_id: int, names: tuple[str, ...]) -> int:
    have = set(groups_of(session, contact_id))
    new = [n[:100] for n in dict.fromkeys(n.strip() for n in names) if n and n[:100] not in have]
    if new:
        session.execute(insert(groups), [{"contact_id": contact_id, "name": n} for n in new])
    return len(new)


def all_contacts(session: Session, group: str | None = None) -> list[dict[str, Any]]:
    """Every contact as a dict (for export), with groups and ticket counts."""
    query = select(Contact).order_by(Contact.email)
    if group:
        query = query.join(ContactGroup, ContactGroup.contact_id == Contact.id).where(ContactGroup.name == group)
    by_contact: dict[int, list[str]] = {}
    for contact_id, name in session.execute(select(groups.c.contact_id, groups.c.name).order_by(groups.c.name)):
        by_contact.setdefault(contact_id, []).append(name)
    counts = dict(session.execute(select(Ticket.requester_id, func.count()).group_by(Ticket.requester_id)).all())
    return [_as_dict(c, by_contact.get(c.id, []), counts.get(c.id, 0)) for c in session.scalars(query)
            if not c.email.endswith("@maild.invalid")]


def _as_dict(c: Contact, names: list[str], tickets: int) -> dict[str, Any]:
    return {"email": c.email, "name": c.name, "phone": c.phone, "groups": names, "consent": c.consent,
            "blocked": c.blocked, "tickets": tickets, "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat()}


def detail(session: Session, email: str) -> dict[str, Any] | None:
    """A contact and its tickets: the seeds' "filter by contact"."""
    from maild.views import list_tickets

    row = find(session, email)
    if row is None:
        return None
    tickets = list_tickets(session, requester=email)
    data = _as_dict(row, groups_of(session, row.id), len(tickets))
    data["ticket_list"] = tickets
    return data


def remove_groups(session: Session, contact_id: int) -> None:
    session.execute(delete(groups).where(groups.c.contact_id == contact_id))
