"""``maild tickets delete ID…`` (seeds 000 and 004: delete, bulk delete): a ticket's content
erased, its audit line kept.

In one transaction, for each ticket: its messages and their attachments are deleted, its
raw mails replaced by the erasure stub (:func:`maild.contacts.redact.stub`; the rows stay,
so a redelivered copy is still a duplicate and never brings the text back), its outbox
mails erased and failed if still queued, its queued SMS failed and erased, participants
and catalog references removed, the subject erased and the history lines' values blanked.
The ticket row stays with status ``deleted`` and one new history line saying who deleted
it and what was erased. Deleted tickets are never listed or counted; a reply on one opens
a new ticket. The caller commits, then deletes ``blobs_to_delete``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from maild.contacts.forget import drop_attachments, erase_outbox
from maild.contacts.redact import ERASED, stub
from maild.domain.events import EventSpec
from maild.domain.outcome import DELETED
from maild.store import history
from maild.store.blobs import RAW, BlobRef, Blobs, sha256
from maild.store.models import (
    Event,
    Message,
    Participant,
    RawMail,
    SmsRow,
    Ticket,
    TicketRef,
)

tickets, messages, raw_mails = Ticket.__table__, Message.__table__, RawMail.__table__
events, sms = Event.__table__, SmsRow.__table__


@dataclass
class DeleteReport:
    deleted: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # no such ticket, or deleted before
    messages: int = 0
    attachments: int = 0
    raw_mails: int = 0
    outbox: int = 0
    blobs_to_delete: list[BlobRef] = field(default_factory=list)  # deleted after the commit

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "missing": self.missing, "messages": self.messages,
                "attachments": self.attachments, "raw_mails": self.raw_mails, "outbox": self.outbox}


def delete_tickets(session: Session, blobs: Blobs, ids: list[int], *, now: datetime, actor: str) -> DeleteReport:
    report = DeleteReport()
    live = set(session.scalars(select(tickets.c.id).where(tickets.c.id.in_(ids), tickets.c.status != DELETED)))
    report.deleted = [i for i in dict.fromkeys(ids) if i in live]
    report.missing = [i for i in dict.fromkeys(ids) if i not in live]
    if not report.deleted:
        return report
    for ticket_id in report.deleted:
        _delete_one(session, blobs, ticket_id, now, actor, report)
    return report


def _delete_one(session: Session, blobs: Blobs, ticket_id: int, now: datetime, actor: str,
                report: DeleteReport) -> None:
    rows = session.execute(select(messages.c.id, messages.c.raw_id).where(messages.c.ticket_id == ticket_id)).all()
    message_ids = [r.id for r in rows]
    raw_ids = {r.raw_id for r in rows if r.raw_id is not None}
    raw_ids |= set(session.scalars(select(raw_mails.c.id).where(raw_mails.c.ticket_id == ticket_id)))
    attachments = drop_attachments(session, message_ids, report.blobs_to_delete)
    session.execute(delete(messages).where(messages.c.ticket_id == ticket_id))
    erased_raw = _stub_raw(session, blobs, sorted(raw_ids), now, report.blobs_to_delete)
    outbox = erase_outbox(session, [ticket_id])
    session.execute(update(sms).where(sms.c.ticket_id == ticket_id, sms.c.state.in_(("queued", "claimed")))
                    .values(state="failed", last_error="ticket deleted before it was sent", claim_token=None))
    session.execute(update(sms).where(sms.c.ticket_id == ticket_id).values(text=ERASED, phone=""))
    session.execute(delete(Participant.__table__).where(Participant.__table__.c.ticket_id == ticket_id))
    session.execute(delete(TicketRef.__table__).where(TicketRef.__table__.c.ticket_id == ticket_id))
    old_status = session.scalar(select(tickets.c.status).where(tickets.c.id == ticket_id))
    session.execute(update(tickets).where(tickets.c.id == ticket_id).values(
        subject=ERASED, status=DELETED, next_action_at=None, draft_pending=False, message_count=0, updated_at=now))
    session.execute(update(events).where(events.c.ticket_id == ticket_id).values(old=None, new=None, detail=""))
    history.record(session, ticket_id, [EventSpec(
        "deleted", old=old_status, new=DELETED,
        detail=f"ticket deleted: {len(message_ids)} message(s), {attachments} attachment(s), {erased_raw} raw "
               f"mail(s) and {outbox} outbound mail(s) erased")], at=now, actor=actor)
    report.messages += len(message_ids)
    report.attachments += attachments
    report.raw_mails += erased_raw
    report.outbox += outbox


def _stub_raw(session: Session, blobs: Blobs, raw_ids: list[int], now: datetime, to_delete: list[BlobRef]) -> int:
    """Each raw mail replaced by the erasure stub (written under its own hash); the old file
    goes when no other row names it."""
    for raw_id in raw_ids:
        old = session.scalar(select(raw_mails.c.sha256).where(raw_mails.c.id == raw_id))
        new = stub(f"raw mail {raw_id} erased with its ticket at {now:%Y-%m-%dT%H:%M:%SZ}")
        digest = sha256(new)
        blobs.put_raw(new, digest)
        session.execute(update(raw_mails).where(raw_mails.c.id == raw_id).values(sha256=digest, size=len(new)))
        if old and old != digest and session.scalar(select(raw_mails.c.id).where(raw_mails.c.sha256 == old)
                                                    .limit(1)) is None:
            to_delete.append((RAW, old))
    return len(raw_ids)
