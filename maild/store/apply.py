"""Carry out one Decision inside the caller's transaction.

Plain INSERT/UPDATE statements built once (see :mod:`maild.store.repo`) rather than ORM
objects: this runs once per mail, and the unit-of-work bookkeeping would cost more than
the SQL itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from maild.domain.decision import Action, Decision
from maild.domain.mail import Classification, ParsedMail
from maild.domain.sender import Sender
from maild.outbound import outbox
from maild.store.models import AttachmentRow, Event
from maild.store.repo import conn, contact_id_for, links, messages, participants, raw_mails, tickets

_NEW_TICKET = insert(tickets).returning(tickets.c.id)
_NEW_MESSAGE = insert(messages).returning(messages.c.id)
_NEW_RAW = insert(raw_mails).returning(raw_mails.c.id)
_RAW_DONE = update(raw_mails).where(raw_mails.c.id == bindparam("rid")).values(
    status=bindparam("status"), reason=bindparam("reason"), ticket_id=bindparam("tid"))
_TOUCH = update(tickets).where(tickets.c.id == bindparam("tid")).values(
    updated_at=bindparam("now"), message_count=tickets.c.message_count + 1)
_TOUCH_STATUS = update(tickets).where(tickets.c.id == bindparam("tid")).values(
    updated_at=bindparam("now"), message_count=tickets.c.message_count + 1, status=bindparam("status"),
    closed_at=bindparam("closed_at"))
_NEW_ATTACHMENT = insert(AttachmentRow.__table__)
_NEW_EVENT = insert(Event.__table__)
_NEW_PARTICIPANT = insert(participants)
_NEW_LINK = insert(links)
COMPLAINT_HOLD = timedelta(days=3650)  # a complaint is an unsubscribe, not a passing failure


@dataclass(frozen=True)
class StoredAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


def record_raw(session: Session, *, digest: str, size: int, channel: str, now: datetime, status: str,
               reason: str, message_id: str | None) -> int:
    return conn(session).execute(_NEW_RAW, {
        "sha256": digest, "size": size, "channel": channel, "received_at": now, "status": status,
        "reason": reason, "message_id": message_id[:998] if message_id else None, "ticket_id": None,
    }).scalar_one()


def finish_raw(session: Session, raw_id: int, status: str, reason: str, ticket_id: int | None) -> None:
    conn(session).execute(_RAW_DONE, {"rid": raw_id, "status": status, "reason": reason, "tid": ticket_id})


def apply_decision(
    session: Session,
    *,
    decision: Decision,
    mail: ParsedMail,
    kind: Classification,
    sender: Sender,
    raw_id: int,
    attachments: list[StoredAttachment],
    own_addresses: frozenset[str],
    channel: str,
    now: datetime,
    undeliverable_days: int = 30,
) -> int | None:
    """Write the ticket, message, participants and history; return the ticket id."""
    if decision.action in (Action.DUPLICATE, Action.IGNORE):
        return decision.ticket_id
    c = conn(session)
    if decision.action is Action.CREATE:
        requester = contact_id_for(session, sender.email, sender.name, now)
        ticket_id = c.execute(_NEW_TICKET, {
            "subject": decision.subject[:2000], "status": decision.status or "new", "priority": "normal",
            "requester_id": requester, "visible": True, "origin": channel.split(":", 1)[0], "message_count": 1,
            "created_at": now, "updated_at": now, "closed_at": now if decision.status == "closed" else None,
        }).scalar_one()
        _add_cc(session, ticket_id, mail, sender, own_addresses)
        if decision.form is not None:
            from maild.forms.store import apply_form

            apply_form(session, ticket_id, requester, decision.form, now)
        if decision.refers_to is not None:
            c.execute(_NEW_LINK, {"ticket_id": ticket_id, "other_id": decision.refers_to, "kind": "refers_to"})
    else:
        ticket_id = decision.ticket_id
        if not sender.is_agent and sender.is_known:
            contact_id_for(session, sender.email, sender.name, now)
        if decision.status:
            closed_at = now if decision.status == "closed" else None
            c.execute(_TOUCH_STATUS, {"tid": ticket_id, "now": now, "status": decision.status, "closed_at": closed_at})
        else:
            c.execute(_TOUCH, {"tid": ticket_id, "now": now})
    message_id = c.execute(_NEW_MESSAGE, {
        "ticket_id": ticket_id, "direction": decision.direction, "message_id": mail.message_id,
        "in_reply_to": " ".join(mail.in_reply_to), "references": " ".join(mail.references),
        "from_addr": sender.email, "from_name": sender.name[:200],
        "to_addrs": ", ".join(a.email for a in mail.to), "cc_addrs": ", ".join(a.email for a in mail.cc),
        "subject": mail.subject, "body_text": mail.body_text if decision.body is None else decision.body,
        "body_html": mail.body_html if decision.body is None else None,
        "kind": kind.kind.value, "channel": channel, "author": sender.email, "raw_id": raw_id,
        "sent_at": mail.date, "created_at": now,
    }).scalar_one()
    if attachments:
        c.execute(_NEW_ATTACHMENT, [
            {"message_id": message_id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
             "sha256": a.sha256, "inline": a.inline} for a in attachments])
    events = [{"kind": e.kind, "old": e.old, "new": e.new, "detail": e.detail} for e in decision.events]
    if decision.action is Action.APPEND:
        events.append({"kind": "message", "old": None, "new": decision.direction,
                       "detail": f"{decision.reason}; rules: {' '.join(decision.rules)}"})
    c.execute(_NEW_EVENT, [
        {"ticket_id": ticket_id, "at": now, "actor": sender.email, "message_id": mail.message_id, **e} for e in events])
    if decision.ops:
        from maild.commands.apply import apply_ops

        apply_ops(session, ticket_id, decision.ops, actor=sender.email, message_id=mail.message_id, now=now)
    if decision.bounced is not None:
        outbox.note_bounce(session, decision.bounced.outbox_id, f"{mail.message_id}: {decision.reason}")
    for address in decision.complaints:  # an unsubscribe: until an admin clears it
        outbox.mark_undeliverable(session, address, now + COMPLAINT_HOLD, f"complaint (feedback report) {mail.message_id}",
                                  now)
    for address in decision.undeliverable:
        outbox.mark_undeliverable(session, address, now + timedelta(days=undeliverable_days),
                                  f"permanent bounce {mail.message_id}", now)
    return ticket_id


def _add_cc(session: Session, ticket_id: int, mail: ParsedMail, sender: Sender, own: frozenset[str]) -> None:
    """Customers in Cc become participants of a new ticket (never maild's own addresses)."""
    seen = {sender.email}
    rows = []
    for address in mail.cc:
        email = address.email.lower()
        if email in seen or email in own or "@" not in email:
            continue
        seen.add(email)
        rows.append({"ticket_id": ticket_id, "email": email, "role": "cc"})
    if rows:
        conn(session).execute(_NEW_PARTICIPANT, rows)
