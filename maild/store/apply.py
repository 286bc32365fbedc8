"""Carry out one Decision inside the caller's transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from maild.ingest.decide import Action, Decision
from maild.ingest.identify import Sender
from maild.mail import Classification, ParsedMail
from maild.store.models import AttachmentRow, Event, Message, Participant, RawMail, Ticket, TicketLink
from maild.store.repo import contact_for


@dataclass(frozen=True)
class StoredAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


def apply_decision(
    session: Session,
    *,
    decision: Decision,
    mail: ParsedMail,
    kind: Classification,
    sender: Sender,
    raw: RawMail,
    attachments: list[StoredAttachment],
    own_addresses: frozenset[str],
    channel: str,
    now: datetime,
) -> int | None:
    """Write the ticket, message, participants and history; return the ticket id."""
    if decision.action in (Action.DUPLICATE, Action.IGNORE):
        return decision.ticket_id
    if decision.action is Action.CREATE:
        contact = contact_for(session, sender.email, sender.name, now)
        ticket = Ticket(subject=decision.subject[:2000], status=decision.status or "new", requester_id=contact.id,
                        origin=channel.split(":", 1)[0] if channel else "", created_at=now, updated_at=now)
        session.add(ticket)
        session.flush()
        _add_cc(session, ticket.id, mail, sender, own_addresses)
        if decision.refers_to is not None:
            session.add(TicketLink(ticket_id=ticket.id, other_id=decision.refers_to, kind="refers_to"))
    else:
        ticket = session.get_one(Ticket, decision.ticket_id)
        if not sender.is_agent and sender.is_known:
            contact_for(session, sender.email, sender.name, now)
        if decision.status and decision.status != ticket.status:
            ticket.status = decision.status
            if decision.status != "closed":
                ticket.closed_at = None
        ticket.updated_at = now
    message = Message(
        ticket_id=ticket.id, direction=decision.direction, message_id=mail.message_id,
        in_reply_to=" ".join(mail.in_reply_to), references=" ".join(mail.references),
        from_addr=sender.email, from_name=sender.name[:200],
        to_addrs=", ".join(a.email for a in mail.to), cc_addrs=", ".join(a.email for a in mail.cc),
        subject=mail.subject, body_text=mail.body_text, body_html=mail.body_html,
        kind=kind.kind.value, channel=channel, author=sender.email, raw_id=raw.id,
        sent_at=mail.date, created_at=now,
    )
    session.add(message)
    session.flush()
    for att in attachments:
        session.add(AttachmentRow(message_id=message.id, filename=att.filename, content_type=att.content_type,
                                  size=att.size, sha256=att.sha256, inline=att.inline))
    ticket.message_count += 1
    for spec in decision.events:
        session.add(Event(ticket_id=ticket.id, at=now, actor=sender.email, kind=spec.kind, old=spec.old,
                          new=spec.new, message_id=mail.message_id, detail=spec.detail))
    if decision.action is Action.APPEND:
        session.add(Event(ticket_id=ticket.id, at=now, actor=sender.email, kind="message", new=decision.direction,
                          message_id=mail.message_id, detail=f"{decision.reason}; rules: {' '.join(decision.rules)}"))
    return ticket.id


def _add_cc(session: Session, ticket_id: int, mail: ParsedMail, sender: Sender, own: frozenset[str]) -> None:
    """Customers in Cc become participants of a new ticket (never maild's own addresses)."""
    seen = {sender.email}
    for address in mail.cc:
        email = address.email.lower()
        if email in seen or email in own or "@" not in email:
            continue
        seen.add(email)
        session.add(Participant(ticket_id=ticket_id, email=email, role="cc"))

