"""The texts an agent's reply is compared with: what maild sent, and to whom, on a ticket.

* the mail the reply answers — the first of its In-Reply-To, then its References newest
  first, that maild sent (an outbox row): its copy is cut from the reply exactly;
* what maild sent only to agents on the ticket (notifications, re-announcements,
  reminders, feedback: outbox rows none of whose recipients is the customer or a Cc
  participant): the last guard never relays it;
* what the customer wrote or received (``in`` and ``out`` messages): no secret, so the
  guard never removes it even when a notification carried it too.

Takes a session, never commits; runs only for agent mail on an existing ticket.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from maild.domain.mail import ParsedMail
from maild.domain.texts import KnownTexts
from maild.store.models import Contact, Message, OutboxRow, Participant, Ticket

outbox, messages = OutboxRow.__table__, Message.__table__
tickets, contacts, participants = Ticket.__table__, Contact.__table__, Participant.__table__

# Enough history for any real ticket; a ticket re-announced every few minutes for weeks
# repeats the same few texts, which are deduplicated.
_LIMIT = 500
_ANSWERED = select(outbox.c.message_id, outbox.c.body_text).where(
    outbox.c.message_id.in_(bindparam("mids", expanding=True)))
_SENT = (select(outbox.c.recipients, outbox.c.body_text).where(outbox.c.ticket_id == bindparam("tid"))
         .order_by(outbox.c.id.desc()).limit(_LIMIT))
_PUBLIC_ADDRESSES = select(contacts.c.email).select_from(
    tickets.join(contacts, tickets.c.requester_id == contacts.c.id)).where(tickets.c.id == bindparam("tid")).union(
    select(participants.c.email).where(participants.c.ticket_id == bindparam("tid"), participants.c.role == "cc"))
_SEEN_BY_CUSTOMER = (select(messages.c.body_text).where(messages.c.ticket_id == bindparam("tid"),
                                                        messages.c.direction.in_(("in", "out")))
                     .order_by(messages.c.id.desc()).limit(_LIMIT))


def answered_ids(mail: ParsedMail) -> list[str]:
    """The mails a reply answers, most likely first: In-Reply-To, then References newest first."""
    return list(dict.fromkeys([*mail.in_reply_to, *reversed(mail.references)]))[:50]


def known_texts(session: Session, ticket_id: int, answered: Sequence[str]) -> KnownTexts:
    c = session.connection()
    found = dict(c.execute(_ANSWERED, {"mids": list(answered)}).all()) if answered else {}
    public_addresses = set(c.execute(_PUBLIC_ADDRESSES, {"tid": ticket_id}).scalars())
    internal: dict[str, None] = {}
    for recipients, body in c.execute(_SENT, {"tid": ticket_id}).all():
        if not public_addresses.intersection(r.strip() for r in recipients.split(",")):
            internal[body] = None
    public = dict.fromkeys(c.execute(_SEEN_BY_CUSTOMER, {"tid": ticket_id}).scalars())
    return KnownTexts(answered=tuple(dict.fromkeys(found[m] for m in answered if m in found)),
                      internal=tuple(internal), public=tuple(t for t in public if t))
