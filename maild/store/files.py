"""A ticket's stored files, found by name: what `maild tickets attachment` and the control
address's ``get`` hand back. Takes a session, never commits."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from maild.domain.files import FileRef
from maild.store.apply import StoredAttachment
from maild.store.models import AttachmentRow, Message


def find(session: Session, ticket_id: int, name: str) -> FileRef | None:
    """The ticket's file called ``name``: the exact name first, else the name in any case,
    else the one file whose sha256 starts with ``name`` (as `tickets show --json` lists it);
    of several with that name, the newest."""
    rows = session.execute(
        select(AttachmentRow.filename, AttachmentRow.content_type, AttachmentRow.size, AttachmentRow.sha256)
        .join(Message, Message.id == AttachmentRow.message_id)
        .where(Message.ticket_id == ticket_id)
        .order_by(AttachmentRow.id.desc())).all()
    wanted = name.strip()
    row = next((r for r in rows if r.filename == wanted), None) or \
        next((r for r in rows if r.filename.casefold() == wanted.casefold()), None)
    if row is None and len(wanted) >= 8:
        by_digest = {r.sha256: r for r in rows if r.sha256.startswith(wanted.lower())}
        row = next(iter(by_digest.values())) if len(by_digest) == 1 else None
    return FileRef(row.filename, row.content_type, row.size, row.sha256) if row else None


def names(session: Session, ticket_id: int) -> list[str]:
    """The names of the ticket's files, oldest first, each once (for "not found" answers)."""
    found = session.scalars(select(AttachmentRow.filename).join(Message, Message.id == AttachmentRow.message_id)
                            .where(Message.ticket_id == ticket_id).order_by(AttachmentRow.id))
    return list(dict.fromkeys(found))


def of_message(session: Session, message_pk: int) -> list[StoredAttachment]:
    """The files kept with one message (a saved draft's, sent along with it by ``/send``)."""
    rows = session.execute(
        select(AttachmentRow.filename, AttachmentRow.content_type, AttachmentRow.size, AttachmentRow.sha256,
               AttachmentRow.inline).where(AttachmentRow.message_id == message_pk).order_by(AttachmentRow.id)).all()
    return [StoredAttachment(r.filename, r.content_type, r.size, r.sha256, r.inline) for r in rows]
