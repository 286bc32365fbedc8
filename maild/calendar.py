"""Next actions as an iCalendar file (seed 004's "Calendário de Atendimento").

One ``VEVENT`` per open ticket with a next-action time: the digest attaches the coming
ones, ``maild calendar export`` writes them for any calendar program. The UID names the
ticket, so a calendar that imports a newer file moves the event instead of adding one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from maild.store.models import Contact, Ticket

DURATION = timedelta(minutes=30)


@dataclass(frozen=True)
class Item:
    ticket_id: int
    subject: str
    status: str
    at: datetime
    assignee: str | None
    requester: str


def upcoming(session: Session, start: datetime | None, end: datetime | None, *, assignee: str | None = None,
             include_unassigned: bool = False) -> list[Item]:
    """Open tickets whose next action falls in [start, end) (either bound may be open)."""
    query = (select(Ticket.id, Ticket.subject, Ticket.status, Ticket.next_action_at, Ticket.assignee, Contact.email)
             .join(Contact, Ticket.requester_id == Contact.id)
             .where(Ticket.next_action_at.is_not(None), Ticket.status != "closed")
             .order_by(Ticket.next_action_at, Ticket.id))
    if start is not None:
        query = query.where(Ticket.next_action_at >= start)
    if end is not None:
        query = query.where(Ticket.next_action_at < end)
    if assignee is not None:
        who = Ticket.assignee == assignee
        query = query.where(who | Ticket.assignee.is_(None) if include_unassigned else who)
    return [Item(r.id, r.subject, r.status, r.next_action_at, r.assignee, r.email) for r in session.execute(query)]


# The calendar's own words, per ``helpdesk.language``.
TEXTS = {
    "en": {"calname": "{name}: next actions",
           "description": "Ticket #{id}, status {status}, customer {requester}, assignee {assignee}.\n"
                          "Answer by mail to {address} with [{tag} #{id}] in the subject."},
    "pt-BR": {"calname": "{name}: próximas ações",
              "description": "Chamado #{id}, situação {status}, cliente {requester}, responsável {assignee}.\n"
                             "Responda por e-mail para {address} com [{tag} #{id}] no assunto."},
}


def to_ics(items: list[Item], helpdesk: Any, now: datetime, tag: str, labels: Mapping[str, str] | None = None) -> str:
    """The items as iCalendar text, in the helpdesk's language; ``labels`` names each status."""
    words = TEXTS.get(helpdesk.language, TEXTS["en"])
    labels = labels or {}
    cal = icalendar.Calendar()
    cal.add("prodid", "-//maild//next actions//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", words["calname"].format(name=helpdesk.name))
    for item in items:
        status = labels.get(item.status, item.status)
        event = icalendar.Event()
        event.add("uid", f"ticket-{item.ticket_id}-next-action@{helpdesk.domain}")
        event.add("dtstamp", now)
        event.add("dtstart", item.at)
        event.add("dtend", item.at + DURATION)
        event.add("summary", f"[{tag} #{item.ticket_id}] {item.subject}")
        event.add("description", words["description"].format(
            id=item.ticket_id, status=status, requester=item.requester, assignee=item.assignee or "-",
            address=helpdesk.address, tag=tag))
        event.add("status", "CONFIRMED")
        event.add("categories", [status])
        cal.add_component(event)
    ical: bytes = cal.to_ical()
    return ical.decode("utf-8")
