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

The person is their address, and also the name and phone the contact book had for them
(:mod:`maild.contacts.redact` says how each is matched). The name and phone are erased
from every text column of every table (messages, history, outbox, SMS queue, raw-mail
reasons, catalog-reference sources, …), not only from the contact row: a new table is
reached without being listed here. Queued SMS to their phone are failed, never sent.

Raw mails on disk are zlib-compressed and content-addressed, and every one is searched
decoded (base64, quoted-printable, encoded words, RFC 2231 parameters, charsets). A raw
mail of the person (on their tickets, or From/Reply-To/Sender them) is replaced by a short
stub; any other raw mail that mentions them is redacted part by part (the structure stays
valid, other people's words stay), or replaced by the stub when it cannot be cleaned.
Attachment files that mention them are rewritten the same way. Either way the file is
written under its new hash, the rows naming it updated and the old file deleted — after
the commit, so a crash leaves at worst an orphan file to delete again, never a row without
its file. Attachments only the erased messages used are deleted. On SQLite the database
is vacuumed afterwards so no freed page keeps the old text; on PostgreSQL the old row
versions stay in the table files until ``VACUUM`` (``maild contacts forget --vacuum``).

The address is kept only as a keyed hash (``erasures.subject_hmac``): later mail from it
is handled as ``contacts.forgotten`` says (:mod:`maild.contacts.tombstone`).

The erasure itself is recorded (``erasures``) with an HMAC of the address, counts and who
ran it, and an ``erased`` event on each affected ticket — never the address.
"""
from __future__ import annotations

import email
import email.policy
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import String, Table, Text, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from maild.contacts import book
from maild.contacts.redact import ERASED, Person, mentions, redact, stub
from maild.contacts.tombstone import address_hash as subject_hmac
from maild.domain.events import EventSpec
from maild.store import history
from maild.store.blobs import ATTACHMENT, RAW, BlobRef, Blobs, sha256
from maild.store.keys import header_hash
from maild.store.rows import rowcount
from maild.store.models import (
    AddressStatus,
    AttachmentRow,
    Base,
    Erasure,
    Message,
    OutboxRow,
    Participant,
    RawMail,
    SmsRow,
    Ticket,
)

T = TypeVar("T")
Progress = Callable[[Iterable[T], int, str], Iterator[T]]

messages, outbox, raw_mails = Message.__table__, OutboxRow.__table__, RawMail.__table__
tickets, attachments, participants = Ticket.__table__, AttachmentRow.__table__, Participant.__table__
sms_outbox = SmsRow.__table__

# Columns that cannot hold personal data (hashes, keys of other things): never rewritten.
# Every other text column of every table is searched, so a new table is covered as added.
NOT_PERSONAL = {("raw_mails", "sha256"), ("attachments", "sha256"), ("erasures", "subject_hmac"),
                ("alembic_version", "version_num")}
# The contact book is handled row by row: other contacts' names are their own data.
OWN_HANDLING = {"contacts"}


@dataclass
class ForgetReport:
    contact: bool = False
    tickets: int = 0
    messages: int = 0
    mentions: int = 0  # rows elsewhere with the address, name or phone scrubbed
    outbox: int = 0
    raw_erased: int = 0
    raw_rewritten: int = 0
    attachments: int = 0
    sms: int = 0
    erasure_id: int | None = None
    tables: list[str] = field(default_factory=list)  # tables with rows changed (dead tuples on PostgreSQL)
    blobs_to_delete: list[BlobRef] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"contact": self.contact, "tickets": self.tickets, "messages": self.messages,
                "mentions": self.mentions, "outbox": self.outbox, "raw_erased": self.raw_erased,
                "raw_rewritten": self.raw_rewritten, "attachments": self.attachments, "sms": self.sms,
                "erasure": self.erasure_id, "tables": sorted(self.tables)}


def _no_progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    yield from items


def forget(session: Session, blobs: Blobs, email_address: str, *, secret: bytes, now: datetime, actor: str,
           progress: Progress[Any] = _no_progress) -> ForgetReport:
    """Erase everything about ``email_address`` (normalized) inside the caller's transaction.

    The caller commits, then deletes ``report.blobs_to_delete``.
    """
    report = ForgetReport()
    contact = book.find(session, email_address)
    person = Person.of(email_address, contact.name if contact else "", contact.phone if contact else "")
    own: list[int] = []
    if contact is not None:
        own = list(session.scalars(select(tickets.c.id).where(tickets.c.requester_id == contact.id)))
    report.tickets = len(own)
    touched: set[str] = set()

    # Messages to erase whole: everything on the person's tickets, and what they wrote elsewhere.
    whole = or_(messages.c.ticket_id.in_(own), messages.c.from_addr == email_address,
                messages.c.author == email_address)
    erased_messages = session.execute(select(messages.c.id, messages.c.raw_id).where(whole)).all()
    message_ids = [m.id for m in erased_messages]
    report.messages = len(message_ids)
    raw_ids = {m.raw_id for m in erased_messages if m.raw_id is not None}
    raw_ids |= set(session.scalars(select(raw_mails.c.id).where(raw_mails.c.ticket_id.in_(own))))
    if message_ids:
        session.execute(update(messages).where(messages.c.id.in_(message_ids)).values(
            subject=ERASED, body_text=ERASED + "\n", body_html=None, from_name=""))
        report.attachments = drop_attachments(session, message_ids, report.blobs_to_delete)
        touched |= {"messages", "attachments"}
    if own:
        session.execute(update(tickets).where(tickets.c.id.in_(own)).values(subject=ERASED))
        report.outbox = erase_outbox(session, own)
        touched |= {"tickets", "outbox"}
    # Outbox mail to the person on no ticket, or on someone else's ticket: never send it.
    session.execute(update(outbox).where(func.lower(outbox.c.recipients).contains(email_address, autoescape=True),
                                         outbox.c.state.in_(("queued", "claimed")))
                    .values(state="failed", last_error="erased on request before it was sent", claim_token=None))
    report.sms = _fail_sms(session, person)
    if rowcount(session.execute(delete(participants).where(participants.c.email == email_address))):
        touched.add("participants")
    if rowcount(session.execute(delete(AddressStatus.__table__)
                                .where(AddressStatus.__table__.c.email == email_address))):
        touched.add("address_status")

    report.mentions = _scrub_everywhere(session, person, touched)
    _rewrite_raw(session, blobs, person, raw_ids, now, report, progress)
    _rewrite_attachments(session, blobs, person, report)
    if report.raw_erased or report.raw_rewritten:
        touched.add("raw_mails")
    if report.sms:
        touched.add("sms_outbox")

    if contact is not None:
        book.remove_groups(session, contact.id)
        session.execute(update(book.contacts).where(book.contacts.c.id == contact.id).values(
            email=f"erased-{contact.id}@maild.invalid", name="", phone="", consent=False, blocked=False,
            updated_at=now))
        report.contact = True
        touched |= {"contacts", "contact_groups"}
    report.erasure_id = session.execute(insert(Erasure.__table__).returning(Erasure.__table__.c.id).values(
        at=now, subject_hmac=subject_hmac(secret, email_address), actor=actor[:320],
        detail=" ".join(f"{k}={v}" for k, v in report.as_dict().items()
                        if k not in ("erasure", "tables")))).scalar_one()
    if own:
        for t in own:
            history.record(session, t, [EventSpec(
                "erased", detail=f"personal data erased on request (erasure #{report.erasure_id})")], at=now,
                actor=actor)
    report.tables = sorted(touched)
    return report


def erase_outbox(session: Session, ticket_ids: list[int]) -> int:
    """The outbox mails of these tickets: text and headers erased; queued ones failed, never sent."""
    done = session.execute(update(outbox).where(outbox.c.ticket_id.in_(ticket_ids)).values(
        subject=ERASED, body_text=ERASED + "\n", from_header=ERASED, to_header=ERASED, cc_header=""))
    session.execute(update(outbox).where(outbox.c.ticket_id.in_(ticket_ids), outbox.c.state.in_(("queued", "claimed")))
                    .values(state="failed", last_error="erased on request before it was sent", claim_token=None))
    return rowcount(done)


def drop_attachments(session: Session, message_ids: list[int], to_delete: list[BlobRef]) -> int:
    """The attachment rows of these messages; a blob no other row uses goes in ``to_delete``."""
    rows = session.execute(select(attachments.c.id, attachments.c.sha256)
                           .where(attachments.c.message_id.in_(message_ids))).all()
    if not rows:
        return 0
    session.execute(delete(attachments).where(attachments.c.id.in_([r.id for r in rows])))
    for digest in {r.sha256 for r in rows}:
        still_used = session.execute(select(attachments.c.id).where(attachments.c.sha256 == digest).limit(1)).first()
        if still_used is None:
            to_delete.append((ATTACHMENT, digest))
    return len(rows)


def _fail_sms(session: Session, person: Person) -> int:
    """SMS to the person's phone are never sent; the text columns are scrubbed like the rest."""
    if len(person.others) == 0:
        return 0
    ids = [r.id for r in session.execute(select(sms_outbox.c.id, sms_outbox.c.phone)).all()
           if person.found_in(r.phone)]
    if ids:
        session.execute(update(sms_outbox).where(sms_outbox.c.id.in_(ids), sms_outbox.c.state.in_(("queued", "claimed")))
                        .values(state="failed", last_error="erased on request before it was sent", claim_token=None))
    return len(ids)


def personal_columns() -> list[tuple[Table, list[str]]]:
    """Every text column of every table that may hold a name, address or phone."""
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name in OWN_HANDLING:
            continue
        names = [c.name for c in table.columns if isinstance(c.type, (String, Text))
                 and (table.name, c.name) not in NOT_PERSONAL]
        if names:
            found.append((table, names))
    return found


def _scrub_everywhere(session: Session, person: Person, touched: set[str]) -> int:
    """Replace the address, name and phone wherever a text column holds them (any case).

    Rows are read in full and matched here rather than with SQL ``LIKE``: the name's case
    and the phone's separators vary, and SQLite's ``lower()`` does not fold accents.
    """
    changed = 0
    for table, columns in personal_columns():
        keys = list(table.primary_key.columns)
        cols = [table.c[name] for name in columns]
        for row in session.execute(select(*keys, *cols)).all():
            key, values_in = row[:len(keys)], row[len(keys):]
            values: dict[str, str | None] = {name: person.erase(value) for name, value in zip(columns, values_in)
                      if isinstance(value, str) and person.found_in(value)}
            if values:
                if "message_id" in values and "message_id_hash" in table.c:
                    values["message_id_hash"] = header_hash(values["message_id"])  # the lookup key follows
                session.execute(update(table).where(*(k == v for k, v in zip(keys, key))).values(**values))
                touched.add(table.name)
                changed += 1
    return changed


_SENDER_HEADERS = ("from", "reply-to", "sender", "return-path")


def _is_from(raw: bytes, person: Person) -> bool:
    """Did the person send this mail (their address in a sender header, decoded)?"""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        msg = email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.default)
        values = [str(v) for name in _SENDER_HEADERS for v in (msg.get_all(name) or [])]
    except Exception:  # noqa: BLE001 - an unparseable header block is searched as bytes
        values = [head.decode("latin-1")]
    return any(person.address.search(v) for v in values)


def _rewrite_raw(session: Session, blobs: Blobs, person: Person, erase_ids: set[int],
                 now: datetime, report: ForgetReport, progress: Progress[Any]) -> None:
    """Stub the person's raw mails; redact the others that mention them."""
    total = session.scalar(select(func.count()).select_from(raw_mails)) or 0
    rows = session.execute(select(raw_mails.c.id, raw_mails.c.sha256).order_by(raw_mails.c.id)).all()
    for row in progress(rows, total, "raw mails"):
        try:
            raw: bytes | None = blobs.get_raw(row.sha256)
        except (OSError, zlib.error):
            raw = None
        note = f"raw mail {row.id} erased on request at {now:%Y-%m-%dT%H:%M:%SZ}"
        whole = row.id in erase_ids or (raw is not None and _is_from(raw, person))
        if whole:
            new = stub(note)
            report.raw_erased += 1
        elif raw is not None and mentions(raw, person):
            cleaned = redact(raw, person)
            new = cleaned if cleaned is not None else stub(note)
            if cleaned is None:
                report.raw_erased += 1
            else:
                report.raw_rewritten += 1
        else:
            continue
        digest = sha256(new)
        blobs.put_raw(new, digest)
        session.execute(update(raw_mails).where(raw_mails.c.id == row.id).values(
            sha256=digest, size=len(new), **({"message_id": None, "message_id_hash": None} if whole else {})))
        if digest != row.sha256:
            report.blobs_to_delete.append((RAW, row.sha256))


def _rewrite_attachments(session: Session, blobs: Blobs, person: Person, report: ForgetReport) -> None:
    """Attachment files (other people's) that mention the person: rewritten without them."""
    kinds = dict(session.execute(select(attachments.c.sha256, func.max(attachments.c.content_type))
                                 .group_by(attachments.c.sha256)).all())
    for digest, content_type in kinds.items():
        try:
            data = blobs.get_attachment(digest)
        except OSError:
            continue
        if content_type.lower().startswith("message/"):
            # A forwarded mail: its own encodings hide the person from a byte search.
            cleaned = data if not mentions(data, person) else (redact(data, person) or stub("attachment erased"))
        else:
            cleaned = person.erase_bytes(data)
        if cleaned == data:
            continue
        new = blobs.put_attachment(cleaned)
        session.execute(update(attachments).where(attachments.c.sha256 == digest).values(
            sha256=new, size=len(cleaned)))
        report.blobs_to_delete.append((ATTACHMENT, digest))
        report.attachments += 1


def delete_blobs(blobs: Blobs, refs: Iterable[BlobRef]) -> None:
    """After the commit: the blobs that only the erased rows named."""
    blobs.delete(refs)
