"""The store's part of one Decision, inside the caller's transaction: the raw mail's row,
the ticket (opened or touched), its Cc participants and link, the message and its
attachments. The processor calls these writers, then the history, forms, commands and
outbox writers, in turn (docs/DESIGN.md, "the write path"); none of them calls another.

Plain INSERT/UPDATE statements built once (see :mod:`maild.store.repo`) rather than ORM
objects: this runs once per mail, and the unit-of-work bookkeeping would cost more than
the SQL itself.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from maild.domain.decision import Action, Decision
from maild.domain.events import EventSpec
from maild.domain.mail import Classification, ParsedMail
from maild.domain.sender import Sender
from maild.store.keys import header_hash
from maild.store.locks import hold_until_commit
from maild.store.models import AttachmentRow, AwaitedParent
from maild.store.rows import new_id
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
_NEW_PARTICIPANT = insert(participants)
_NEW_LINK = insert(links)
_ID_LOCK = "message-id:"  # an orphan reply and its parent take turns on the parent's Message-ID


@dataclass(frozen=True)
class StoredAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


def record_raw(session: Session, *, digest: str, size: int, channel: str, now: datetime, status: str,
               reason: str, message_id: str | None) -> int:
    return new_id(conn(session).execute(_NEW_RAW, {
        "sha256": digest, "size": size, "channel": channel, "received_at": now, "status": status,
        "reason": reason, "message_id": message_id[:998] if message_id else None, "ticket_id": None,
    }))


def finish_raw(session: Session, raw_id: int, status: str, reason: str, ticket_id: int | None) -> None:
    conn(session).execute(_RAW_DONE, {"rid": raw_id, "status": status, "reason": reason, "tid": ticket_id})


def write_ticket(session: Session, *, decision: Decision, mail: ParsedMail, sender: Sender,
                 own_addresses: frozenset[str], channel: str, now: datetime) -> tuple[int, int | None]:
    """The ticket a CREATE or APPEND decision names, opened or touched; returns (ticket id,
    the requester's contact id for a new ticket, else None)."""
    c = conn(session)
    if decision.action is Action.CREATE:
        # An agent's /new: the customer whose mail they forwarded is the requester.
        email, name = decision.requester or (sender.email, sender.name)
        requester = contact_id_for(session, email, name, now)
        ticket_id = c.execute(_NEW_TICKET, {
            "subject": decision.subject[:2000], "status": decision.status or "new", "priority": "normal",
            "requester_id": requester, "visible": True, "origin": channel.split(":", 1)[0], "message_count": 1,
            "created_at": now, "updated_at": now, "closed_at": now if decision.status == "closed" else None,
        }).scalar_one()
        _add_cc(session, ticket_id, mail, sender, own_addresses)
        return ticket_id, requester
    assert decision.ticket_id is not None, "an appended mail names its ticket"
    ticket_id = decision.ticket_id
    if not sender.is_agent and sender.is_known:
        contact_id_for(session, sender.email, sender.name, now)
    if decision.status:
        closed_at = now if decision.status == "closed" else None
        c.execute(_TOUCH_STATUS, {"tid": ticket_id, "now": now, "status": decision.status, "closed_at": closed_at})
    else:
        c.execute(_TOUCH, {"tid": ticket_id, "now": now})
    return ticket_id, None


def link_ticket(session: Session, ticket_id: int, other_id: int, kind: str = "refers_to") -> None:
    conn(session).execute(_NEW_LINK, {"ticket_id": ticket_id, "other_id": other_id, "kind": kind})


AWAITED_PER_MAIL = 4  # In-Reply-To and the last References: the parents worth waiting for


def await_parents(session: Session, ticket_id: int, parents: Sequence[str], now: datetime) -> int | None:
    """This ticket was opened by a reply to mail maild has not seen: remember whom it answers.

    Under the lock of each parent's Message-ID (:func:`adopt_orphans` takes it too) the
    messages are looked up once more: a parent another node committed after this mail was
    threaded links the ticket to its own at once (its id is returned); a parent committing
    now waits for this transaction and then finds the reply waiting. Either order links them.
    """
    named = dict.fromkeys(parents[:AWAITED_PER_MAIL])
    keys = dict.fromkeys(key for key in (header_hash(p) for p in named) if key)
    if not keys:
        return None
    hold_until_commit(session, *(_ID_LOCK + key for key in keys))
    parent = session.scalar(select(messages.c.ticket_id).where(
        messages.c.message_id_hash.in_(list(keys)), messages.c.message_id.in_(list(named)),
        messages.c.ticket_id != ticket_id).order_by(messages.c.id).limit(1))
    if parent is not None:
        conn(session).execute(_NEW_LINK, {"ticket_id": ticket_id, "other_id": parent, "kind": "refers_to"})
        return int(parent)
    conn(session).execute(insert(AwaitedParent.__table__), [
        {"parent_hash": key, "ticket_id": ticket_id, "created_at": now} for key in keys])
    return None


def adopt_orphans(session: Session, message_id: str, ticket_id: int) -> list[int]:
    """The tickets opened by replies to ``message_id`` before it arrived, now linked to
    ``ticket_id`` (its ticket); their waiting ends. Under the Message-ID's lock: a reply
    being written on another node is waited for (:func:`await_parents`)."""
    awaited = AwaitedParent.__table__
    key = header_hash(message_id)
    if not key:
        return []
    hold_until_commit(session, _ID_LOCK + key)
    orphans = [t for t in session.scalars(select(awaited.c.ticket_id).where(awaited.c.parent_hash == key))
               if t != ticket_id]
    if orphans:
        conn(session).execute(_NEW_LINK, [{"ticket_id": orphan, "other_id": ticket_id, "kind": "refers_to"}
                                          for orphan in orphans])
        session.execute(delete(awaited).where(awaited.c.ticket_id.in_(orphans)))
    return orphans


def write_message(session: Session, *, ticket_id: int, decision: Decision, mail: ParsedMail, kind: Classification,
                  sender: Sender, raw_id: int, attachments: list[StoredAttachment], channel: str,
                  now: datetime) -> int:
    """The mail as a message of the ticket, with its stored attachments; returns the row id."""
    c = conn(session)
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
        record_attachments(session, message_id, attachments)
    return int(message_id)


def record_attachments(session: Session, message_id: int, attachments: Sequence[StoredAttachment]) -> None:
    """Attachment rows of a message (the files are already in the blob store)."""
    conn(session).execute(_NEW_ATTACHMENT, [
        {"message_id": message_id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
         "sha256": a.sha256, "inline": a.inline} for a in attachments])


def history_of(decision: Decision) -> tuple[EventSpec, ...]:
    """The history lines a decision writes: its own events, and for an appended mail one
    ``message`` line naming the rules that fired (why the mail went there)."""
    if decision.action is not Action.APPEND:
        return decision.events
    return (*decision.events, EventSpec("message", None, decision.direction,
                                        f"{decision.reason}; rules: {' '.join(decision.rules)}"))


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
