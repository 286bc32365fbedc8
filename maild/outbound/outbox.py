"""The outbox table: enqueue inside the caller's transaction, claim, and record results.

Functions take a session and never commit. Claiming works the same on both databases:
``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (several maild instances share the
work without waiting on each other), and on SQLite, which ignores the clause, the
``BEGIN IMMEDIATE`` of every write transaction makes the select-then-update atomic.

States: ``queued`` → ``claimed`` → ``sent`` | ``queued`` (retry later) | ``failed``.
A ``claimed`` row whose claim is older than the claim timeout belonged to a sender that
died between claim and send; it is claimed again and sent with the same Message-ID.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from maild.outbound.compose import OutboundMail, attachments_json
from maild.outbound.policy import RecentMail
from maild.store.keys import header_hash
from maild.store.models import AddressStatus, Contact, Message, OutboxRow
from maild.store.queue import claim_due
from maild.store.rows import new_id, rowcount

outbox, statuses, contacts, messages = (OutboxRow.__table__, AddressStatus.__table__, Contact.__table__,
                                        Message.__table__)

_INSERT = insert(outbox)
# One round trip for everything the rules need about an address (this runs for every
# acknowledgement): the caps' counts, the bounce record, the contact's flags.
_RECENT = select(
    select(func.count()).where(outbox.c.to_addr == bindparam("addr"), outbox.c.automatic.is_(True),
                               outbox.c.created_at > bindparam("short")).scalar_subquery().label("short"),
    select(func.count()).where(outbox.c.to_addr == bindparam("addr"), outbox.c.automatic.is_(True),
                               outbox.c.created_at > bindparam("day")).scalar_subquery().label("day"),
    # Per recipient, as the other caps: mail to the agents never uses up the customer's.
    select(func.count()).where(outbox.c.ticket_id == bindparam("tid"), outbox.c.to_addr == bindparam("addr"),
                               outbox.c.automatic.is_(True),
                               outbox.c.created_at > bindparam("since")).scalar_subquery().label("on_ticket"),
    select(statuses.c.undeliverable_until).where(statuses.c.email == bindparam("addr"))
    .scalar_subquery().label("undeliverable_until"),
    select(contacts.c.consent).where(contacts.c.email == bindparam("addr")).scalar_subquery().label("consent"),
    select(contacts.c.blocked).where(contacts.c.email == bindparam("addr")).scalar_subquery().label("blocked"),
)


@dataclass(frozen=True)
class Windows:
    """The caps' windows in minutes (from the config)."""

    per_ticket: int
    per_address: int
    per_address_day: int


# For an agent the per-address caps do not apply (``notify_counters`` caps them in O(1)):
# only the bounce record and the per-ticket count, which the ticket's index bounds.
_AGENT_RECENT = select(
    select(func.count()).where(outbox.c.ticket_id == bindparam("tid"), outbox.c.to_addr == bindparam("addr"),
                               outbox.c.automatic.is_(True),
                               outbox.c.created_at > bindparam("since")).scalar_subquery().label("on_ticket"),
    select(statuses.c.undeliverable_until).where(statuses.c.email == bindparam("addr"))
    .scalar_subquery().label("undeliverable_until"),
)


def enqueue(session: Session, mail: OutboundMail, now: datetime, expires_at: datetime) -> None:
    session.connection().execute(_INSERT, _row(mail, now, expires_at))


def enqueue_at(session: Session, mail: OutboundMail, now: datetime, send_at: datetime, expires_at: datetime) -> int:
    """A row the sender takes only from ``send_at`` on (a summary due at its window's end)."""
    values = {**_row(mail, now, expires_at), "next_attempt_at": send_at}
    return new_id(session.connection().execute(insert(outbox).returning(outbox.c.id), values))


def update_queued(session: Session, row_id: int, subject: str, body_text: str) -> bool:
    """Rewrite a mail not yet taken by the sender (a summary growing during its window)."""
    done = session.execute(update(OutboxRow).where(OutboxRow.id == row_id, OutboxRow.state == "queued")
                           .values(subject=subject, body_text=body_text))
    return bool(rowcount(done))


def _row(mail: OutboundMail, now: datetime, expires_at: datetime) -> dict[str, object]:
    return {
        "ticket_id": mail.ticket_id, "kind": mail.kind, "automatic": mail.automatic, "state": "queued",
        "message_id": mail.message_id, "envelope_from": mail.envelope_from,
        "recipients": ", ".join(mail.recipients), "to_addr": mail.recipients[0],
        "from_header": mail.from_header, "to_header": mail.to_header, "cc_header": mail.cc_header,
        "reply_to": mail.reply_to, "subject": mail.subject, "in_reply_to": mail.in_reply_to,
        "references": mail.references, "auto_submitted": mail.auto_submitted, "language": mail.language,
        "body_text": mail.body_text, "attachments": attachments_json(mail.attachments), "attempts": 0, "next_attempt_at": now, "expires_at": expires_at,
        "claim_token": None, "claimed_at": None, "sent_at": None, "last_error": "", "created_at": now,
    }


def agent_recent(session: Session, address: str, ticket_id: int | None, windows: Windows,
                 now: datetime) -> RecentMail:
    """What the per-ticket cap and the bounce record say about notifications to an agent."""
    row = session.connection().execute(_AGENT_RECENT, {
        "addr": address, "tid": ticket_id if ticket_id is not None else -1,
        "since": now - timedelta(minutes=windows.per_ticket)}).one()
    return RecentMail(on_ticket=row.on_ticket, undeliverable_until=row.undeliverable_until)


def recent(session: Session, address: str, ticket_id: int | None, windows: Windows, now: datetime) -> RecentMail:
    """What the caps and the bounce record say about automatic mail to ``address``."""
    row = session.connection().execute(_RECENT, {
        "addr": address, "tid": ticket_id if ticket_id is not None else -1,
        "short": now - timedelta(minutes=windows.per_address), "day": now - timedelta(minutes=windows.per_address_day),
        "since": now - timedelta(minutes=windows.per_ticket)}).one()
    return RecentMail(to_address=row.short, to_address_day=row.day, on_ticket=row.on_ticket,
                      undeliverable_until=row.undeliverable_until,
                      consent=row.consent if row.consent is not None else True, blocked=bool(row.blocked))


def claim(session: Session, token: str, now: datetime, stale_before: datetime, limit: int) -> list[OutboxRow]:
    """Take up to ``limit`` due rows for this sender; a stale claim counts as due."""
    return claim_due(session, OutboxRow, token, now, stale_before, limit)


def _mine(row_id: int, token: str) -> ColumnElement[bool]:
    return and_(OutboxRow.id == row_id, OutboxRow.state == "claimed", OutboxRow.claim_token == token)


def mark_sent(session: Session, row_id: int, token: str, now: datetime, note: str = "") -> bool:
    done = session.execute(update(OutboxRow).where(_mine(row_id, token)).values(
        state="sent", sent_at=now, claim_token=None, last_error=note))
    if rowcount(done):
        message_id = session.scalar(select(OutboxRow.message_id).where(OutboxRow.id == row_id))
        session.execute(update(Message).where(Message.message_id_hash == header_hash(message_id),
                                              Message.message_id == message_id).values(sent_at=now))
    return bool(rowcount(done))


def mark_retry(session: Session, row_id: int, token: str, at: datetime, error: str) -> bool:
    done = session.execute(update(OutboxRow).where(_mine(row_id, token)).values(
        state="queued", next_attempt_at=at, claim_token=None, last_error=error[:2000]))
    return bool(rowcount(done))


def mark_failed(session: Session, row_id: int, token: str, error: str) -> bool:
    done = session.execute(update(OutboxRow).where(_mine(row_id, token)).values(
        state="failed", claim_token=None, last_error=error[:2000]))
    return bool(rowcount(done))


def requeue(session: Session, ids: Sequence[int] | None, now: datetime, expires_at: datetime) -> int:
    """``maild outbox retry``: failed rows (all, or these ids) go back to the queue."""
    where = OutboxRow.state == "failed"
    if ids:
        where = and_(where, OutboxRow.id.in_(list(ids)))
    return rowcount(session.execute(update(OutboxRow).where(where).values(
        state="queued", next_attempt_at=now, expires_at=expires_at, attempts=0)))


def sent_for(session: Session, message_ids: Sequence[str]) -> OutboxRow | None:
    """The outbox row of the first of these Message-IDs that maild sent (for bounces)."""
    if not message_ids:
        return None
    hashes = [header_hash(m) for m in list(message_ids)[:50]]
    # Found by the indexed hash; the dict lookup below compares the full value.
    rows = {r.message_id: r for r in session.scalars(select(OutboxRow).where(OutboxRow.message_id_hash.in_(hashes)))}
    return next((rows[m] for m in message_ids if m in rows), None)


def note_bounce(session: Session, row_id: int, detail: str) -> None:
    session.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(last_error=f"bounced: {detail}"[:2000]))


def mark_undeliverable(session: Session, address: str, until: datetime, reason: str, now: datetime) -> None:
    done = session.execute(update(AddressStatus).where(AddressStatus.email == address).values(
        undeliverable_until=until, reason=reason[:2000], updated_at=now))
    if not rowcount(done):
        session.execute(insert(AddressStatus).values(email=address, undeliverable_until=until,
                                                     reason=reason[:2000], updated_at=now))


def listing(session: Session, state: str | None = None, limit: int = 200) -> list[OutboxRow]:
    query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
    if state:
        query = query.where(OutboxRow.state == state)
    return list(session.scalars(query))
