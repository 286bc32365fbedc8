"""``maild contacts forget ADDRESS``: erase a person's data (LGPD / GDPR), keep the statistics.

What is erased, in one transaction:
  * the contact: address, name, phone and groups (the row stays as ``erased-<id>@maild.invalid``
    so the person's tickets keep a requester and the statistics stay whole);
  * on the person's own tickets: subjects, every message's text, HTML and attachments,
    the outbox mails (ones still queued are failed, never sent), the raw mails;
  * anywhere else: messages the person wrote (text erased, raw mail erased), and every
    mention of the address in messages, history, outbox and raw-mail rows;
  * participants and bounce records naming the address.
Kept: ticket ids, status, type/subtype/category, origin, tags, catalog references, dates
and message counts — the anonymized statistics.

Raw mails on disk are zlib-compressed and content-addressed. A raw mail of the person
(on their tickets, or From/Reply-To/Sender them) is replaced by a short tombstone; any other
raw mail whose decompressed bytes mention the address is rewritten with the address
removed. Either way the file is written under its new hash, the ``raw_mails.sha256`` row
updated and the old file deleted — after the commit, so a crash leaves at worst an orphan
file to delete again, never a row without its file. Attachments only the erased messages
used are deleted. On SQLite the database is vacuumed afterwards so no freed page keeps the
old text (PostgreSQL: run ``VACUUM FULL`` for the same guarantee on disk).

The erasure itself is recorded (``erasures``) with an HMAC of the address, counts and who
ran it, and an ``erased`` event on each affected ticket — never the address.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from maild.contacts import book
from maild.store.blobs import BlobStore, sha256
from maild.store.keys import header_hash
from maild.store.models import (
    AddressStatus,
    AttachmentRow,
    Erasure,
    Event,
    Message,
    OutboxRow,
    Participant,
    RawMail,
    Ticket,
)

ERASED = "[erased]"
T = TypeVar("T")
Progress = Callable[[Iterable[T], int, str], Iterator[T]]

messages, events, outbox, raw_mails = Message.__table__, Event.__table__, OutboxRow.__table__, RawMail.__table__
tickets, attachments, participants = Ticket.__table__, AttachmentRow.__table__, Participant.__table__

# Every text column that can mention an address. A module adding a table with personal
# data (e.g. command mails) adds it here, so ``forget`` reaches it.
SCRUB: list[tuple[Table, tuple[str, ...]]] = [
    (messages, ("subject", "body_text", "body_html", "from_addr", "from_name", "to_addrs", "cc_addrs", "author",
                "in_reply_to", "references", "message_id")),
    (events, ("actor", "old", "new", "detail", "message_id")),
    (outbox, ("recipients", "to_addr", "to_header", "cc_header", "from_header", "reply_to", "subject", "body_text",
              "in_reply_to", "references", "message_id", "last_error")),
    (raw_mails, ("message_id", "reason")),
    (tickets, ("subject",)),
]


@dataclass
class ForgetReport:
    contact: bool = False
    tickets: int = 0
    messages: int = 0
    mentions: int = 0  # rows elsewhere with the address scrubbed
    outbox: int = 0
    raw_erased: int = 0
    raw_rewritten: int = 0
    attachments: int = 0
    erasure_id: int | None = None
    files_to_delete: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"contact": self.contact, "tickets": self.tickets, "messages": self.messages,
                "mentions": self.mentions, "outbox": self.outbox, "raw_erased": self.raw_erased,
                "raw_rewritten": self.raw_rewritten, "attachments": self.attachments, "erasure": self.erasure_id}


def subject_hmac(secret: bytes, email: str) -> str:
    return hmac.new(secret, email.encode(), hashlib.sha256).hexdigest()


def _no_progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    yield from items


def forget(session: Session, blobs: BlobStore, email: str, *, secret: bytes, now: datetime, actor: str,
           progress: Progress = _no_progress) -> ForgetReport:
    """Erase everything about ``email`` (normalized) inside the caller's transaction.

    The caller commits, then deletes ``report.files_to_delete``.
    """
    report = ForgetReport()
    pattern = re.compile(re.escape(email), re.I)
    contact = book.find(session, email)
    own: list[int] = []
    if contact is not None:
        own = list(session.scalars(select(tickets.c.id).where(tickets.c.requester_id == contact.id)))
    report.tickets = len(own)

    # Messages to erase whole: everything on the person's tickets, and what they wrote elsewhere.
    whole = or_(messages.c.ticket_id.in_(own), messages.c.from_addr == email, messages.c.author == email)
    erased_messages = session.execute(select(messages.c.id, messages.c.raw_id).where(whole)).all()
    message_ids = [m.id for m in erased_messages]
    report.messages = len(message_ids)
    raw_ids = {m.raw_id for m in erased_messages if m.raw_id is not None}
    raw_ids |= set(session.scalars(select(raw_mails.c.id).where(raw_mails.c.ticket_id.in_(own))))
    if message_ids:
        session.execute(update(messages).where(messages.c.id.in_(message_ids)).values(
            subject=ERASED, body_text=ERASED + "\n", body_html=None, from_name=""))
        report.attachments = _drop_attachments(session, blobs, message_ids, report)
    if own:
        session.execute(update(tickets).where(tickets.c.id.in_(own)).values(subject=ERASED))
        done = session.execute(update(outbox).where(outbox.c.ticket_id.in_(own)).values(
            subject=ERASED, body_text=ERASED + "\n", from_header=ERASED, to_header=ERASED, cc_header=""))
        report.outbox = done.rowcount or 0
        session.execute(update(outbox).where(outbox.c.ticket_id.in_(own), outbox.c.state.in_(("queued", "claimed")))
                        .values(state="failed", last_error="erased on request before it was sent", claim_token=None))
    # Outbox mail to the person on no ticket, or on someone else's ticket: never send it.
    session.execute(update(outbox).where(func.lower(outbox.c.recipients).contains(email, autoescape=True),
                                         outbox.c.state.in_(("queued", "claimed")))
                    .values(state="failed", last_error="erased on request before it was sent", claim_token=None))

    report.mentions = _scrub_everywhere(session, email, pattern)
    session.execute(delete(participants).where(participants.c.email == email))
    session.execute(delete(AddressStatus.__table__).where(AddressStatus.__table__.c.email == email))
    _rewrite_raw(session, blobs, email, pattern, raw_ids, now, report, progress)

    if contact is not None:
        book.remove_groups(session, contact.id)
        session.execute(update(book.contacts).where(book.contacts.c.id == contact.id).values(
            email=f"erased-{contact.id}@maild.invalid", name="", phone="", consent=False, blocked=False,
            updated_at=now))
        report.contact = True
    report.erasure_id = session.execute(insert(Erasure.__table__).returning(Erasure.__table__.c.id).values(
        at=now, subject_hmac=subject_hmac(secret, email), actor=actor[:320],
        detail=" ".join(f"{k}={v}" for k, v in report.as_dict().items() if k != "erasure"))).scalar_one()
    if own:
        session.execute(insert(events), [
            {"ticket_id": t, "at": now, "actor": actor[:320], "kind": "erased", "old": None, "new": None,
             "message_id": None, "detail": f"personal data erased on request (erasure #{report.erasure_id})"}
            for t in own])
    return report


def _drop_attachments(session: Session, blobs: BlobStore, message_ids: list[int], report: ForgetReport) -> int:
    rows = session.execute(select(attachments.c.id, attachments.c.sha256)
                           .where(attachments.c.message_id.in_(message_ids))).all()
    if not rows:
        return 0
    session.execute(delete(attachments).where(attachments.c.id.in_([r.id for r in rows])))
    for digest in {r.sha256 for r in rows}:
        still_used = session.execute(select(attachments.c.id).where(attachments.c.sha256 == digest).limit(1)).first()
        if still_used is None:
            report.files_to_delete.append(blobs.attachment_path(digest))
    return len(rows)


def _scrub_everywhere(session: Session, email: str, pattern: re.Pattern[str]) -> int:
    """Replace the address wherever a text column mentions it (any case)."""
    changed = 0
    for table, columns in SCRUB:
        pk = table.primary_key.columns.values()[0]
        cols = [table.c[name] for name in columns]
        where = or_(*(func.lower(col).contains(email, autoescape=True) for col in cols))
        for row in session.execute(select(pk, *cols).where(where)).all():
            values = {name: pattern.sub(ERASED, value) for name, value in zip(columns, row[1:])
                      if isinstance(value, str) and pattern.search(value)}
            if values:
                if "message_id" in values and "message_id_hash" in table.c:
                    values["message_id_hash"] = header_hash(values["message_id"])  # the lookup key follows
                session.execute(update(table).where(pk == row[0]).values(**values))
                changed += 1
    return changed


_SENDER_HEADER = re.compile(rb"^(from|reply-to|sender|return-path)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


def _is_from(raw: bytes, address: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return any(address in m.group(2).lower() for m in _SENDER_HEADER.finditer(head))


def _rewrite_raw(session: Session, blobs: BlobStore, email: str, pattern: re.Pattern[str], erase_ids: set[int],
                 now: datetime, report: ForgetReport, progress: Progress) -> None:
    """Tombstone the person's raw mails; rewrite others that mention the address."""
    address = email.encode()
    bytes_pattern = re.compile(re.escape(address), re.I)
    total = session.scalar(select(func.count()).select_from(raw_mails)) or 0
    rows = session.execute(select(raw_mails.c.id, raw_mails.c.sha256).order_by(raw_mails.c.id)).all()
    for row in progress(rows, total, "raw mails"):
        path = blobs.raw_path(row.sha256)
        try:
            raw = zlib.decompress(path.read_bytes())
        except (OSError, zlib.error):
            raw = None
        if row.id in erase_ids or (raw is not None and _is_from(raw.lower(), address)):
            new = (f"X-Maild-Erased: raw mail {row.id} erased on request at {now:%Y-%m-%dT%H:%M:%SZ}\r\n"
                   f"Subject: {ERASED}\r\n\r\nThis mail was erased on request (LGPD).\r\n").encode()
            report.raw_erased += 1
        elif raw is not None and address in raw.lower():
            new = bytes_pattern.sub(ERASED.encode(), raw)
            report.raw_rewritten += 1
        else:
            continue
        digest = sha256(new)
        blobs.put_raw(new, digest)
        session.execute(update(raw_mails).where(raw_mails.c.id == row.id).values(
            sha256=digest, size=len(new), **({"message_id": None, "message_id_hash": None} if row.id in erase_ids else {})))
        if digest != row.sha256:
            report.files_to_delete.append(path)


def delete_files(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
