"""Catalog references linked to tickets (``ticket_refs``): by a form, or by an agent's
``/listing REF…``. Functions take a session and never commit."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from maild.store.models import TicketRef

refs = TicketRef.__table__
_OF_TICKET = select(refs.c.ref).where(refs.c.ticket_id == bindparam("tid")).order_by(refs.c.created_at, refs.c.ref)
_INSERT = insert(refs)


def clean(ref: str) -> str:
    """A reference as stored: trimmed, inner spaces collapsed (lookups ignore case)."""
    return " ".join(ref.split())[:200]


def of_ticket(session: Session, ticket_id: int) -> list[str]:
    return list(session.connection().execute(_OF_TICKET, {"tid": ticket_id}).scalars())


def link(session: Session, ticket_id: int, references: Iterable[str], source: str, now: datetime) -> list[str]:
    """Link references to a ticket; returns the ones that were not linked before."""
    have = {r.casefold() for r in of_ticket(session, ticket_id)}
    new = []
    for ref in references:
        ref = clean(ref)
        if ref and ref.casefold() not in have:
            have.add(ref.casefold())
            new.append(ref)
    if new:
        session.connection().execute(_INSERT, [{"ticket_id": ticket_id, "ref": r, "source": source[:100],
                                                "created_at": now} for r in new])
    return new
