"""The outbox table: enqueue inside the caller's transaction, claim, and record results.

Functions take a session and never commit. Claiming works the same on both databases:
``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (several maild instances share the
work without waiting on each other), and on SQLite, which ignores the clause, the
``BEGIN IMMEDIATE`` of every write transaction makes the select-then-update atomic.

States: ``queued`` → ``claimed`` → ``sent`` | ``queued`` (retry later) | ``failed``.
Each live sender beats in ``outbox_senders`` (:func:`beat`) and its claim tokens start
with its id. A ``claimed`` row whose sender stopped beating belonged to a sender (or a
node) that died; it is claimed again within seconds, sent with the same Message-ID, and
marked ``maybe_delivered``: the dead sender may have handed it over before dying.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.orm import Session

from maild.outbound.compose import FEEDBACK, OutboundMail, attachments_json
from maild.outbound.policy import RecentMail
from maild.store.keys import header_hash
from maild.store.models import AddressStatus, Contact, Message, OutboxRow, OutboxSender
from maild.store.queue import claim_due
from maild.store.rows import new_id, rowcount

outbox, statuses, contacts, messages = (OutboxRow.__table__, AddressStatus.__table__, Contact.__table__,
                                        Message.__table__)

_INSERT = insert(outbox)
# One round trip for everything the rules need about an address (this runs for every
# acknowledgement): the caps' counts, the bounce record, the contact's flags.
# The burst cap counts answers to someone's mail (acknowledgements, feedback, reports,
# notices): what a loop is made of. Notifications to an agent about other people's mail
# are capped per agent (``notify/agentcap.py``) and must not hold back that agent's report.
_NOT_ANSWERS = ("notify", "summary", "proof")
_RECENT = select(
    select(func.count()).where(outbox.c.to_addr == bindparam("addr"), outbox.c.automatic.is_(True),
                               outbox.c.kind.not_in(_NOT_ANSWERS),
                               outbox.c.created_at > bindparam("burst")).scalar_subquery().label("burst"),
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
    # Feedback and control reports, counted apart (they answer what an agent just did).
    select(func.count()).where(outbox.c.to_addr == bindparam("addr"), outbox.c.kind == FEEDBACK,
                               outbox.c.created_at > bindparam("feedback")).scalar_subquery().label("feedback"),
    select(func.count()).where(outbox.c.to_addr == bindparam("addr"), outbox.c.kind == FEEDBACK,
                               outbox.c.created_at > bindparam("feedback_burst")).scalar_subquery()
    .label("feedback_burst"),
    select(contacts.c.consent).where(contacts.c.email == bindparam("addr")).scalar_subquery().label("consent"),
    select(contacts.c.blocked).where(contacts.c.email == bindparam("addr")).scalar_subquery().label("blocked"),
)


@dataclass(frozen=True)
class Windows:
    """The caps' windows in minutes (from the config)."""

    per_ticket: int
    per_address: int
    per_address_day: int
    per_address_burst: int = 1
    feedback: int = 24 * 60
    feedback_burst: int = 1


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


def agents_recent(session: Session, addresses: Sequence[str], ticket_id: int | None, windows: Windows,
                  now: datetime) -> dict[str, RecentMail]:
    """:func:`agent_recent` for several agents at once: two statements, whatever their number."""
    since = now - timedelta(minutes=windows.per_ticket)
    counts: dict[str, int] = {row[0]: row[1] for row in session.connection().execute(
        select(outbox.c.to_addr, func.count()).where(
            outbox.c.ticket_id == (ticket_id if ticket_id is not None else -1), outbox.c.to_addr.in_(addresses),
            outbox.c.automatic.is_(True), outbox.c.created_at > since).group_by(outbox.c.to_addr))}
    until: dict[str, datetime | None] = {row[0]: row[1] for row in session.connection().execute(
        select(statuses.c.email, statuses.c.undeliverable_until).where(statuses.c.email.in_(addresses)))}
    return {a: RecentMail(on_ticket=counts.get(a, 0), undeliverable_until=until.get(a)) for a in addresses}


def enqueue_many(session: Session, mails: Sequence[tuple[OutboundMail, datetime, datetime]]) -> None:
    """:func:`enqueue` for several mails in one statement: (mail, now, expires_at)."""
    if mails:
        session.connection().execute(_INSERT, [_row(mail, now, expires_at) for mail, now, expires_at in mails])


def recent(session: Session, address: str, ticket_id: int | None, windows: Windows, now: datetime) -> RecentMail:
    """What the caps and the bounce record say about automatic mail to ``address``."""
    row = session.connection().execute(_RECENT, {
        "addr": address, "tid": ticket_id if ticket_id is not None else -1,
        "short": now - timedelta(minutes=windows.per_address), "day": now - timedelta(minutes=windows.per_address_day),
        "burst": now - timedelta(minutes=windows.per_address_burst),
        "feedback": now - timedelta(minutes=windows.feedback),
        "feedback_burst": now - timedelta(minutes=windows.feedback_burst),
        "since": now - timedelta(minutes=windows.per_ticket)}).one()
    return RecentMail(to_address=row.short, to_address_day=row.day, on_ticket=row.on_ticket,
                      to_address_burst=row.burst, feedback=row.feedback, feedback_burst=row.feedback_burst,
                      undeliverable_until=row.undeliverable_until,
                      consent=row.consent if row.consent is not None else True, blocked=bool(row.blocked))


SENDER_ID_LENGTH = 12  # a claim token is "<sender id>-<round>"
RETAKEN = "taken again after its sender stopped: it may already have been delivered"


def beat(session: Session, sender_id: str, node: str, pid: int, now: datetime) -> None:
    """This sender is alive (its claims are not to be taken)."""
    done = session.execute(update(OutboxSender).where(OutboxSender.id == sender_id).values(heartbeat_at=now))
    if not rowcount(done):
        session.execute(insert(OutboxSender).values(id=sender_id, node=node, pid=pid, started_at=now,
                                                    heartbeat_at=now))


def retire(session: Session, sender_id: str) -> None:
    """A sender that stops cleanly: its row goes (it holds no claims then)."""
    session.execute(OutboxSender.__table__.delete().where(OutboxSender.id == sender_id))


def claim(session: Session, token: str, now: datetime, alive_since: datetime, limit: int) -> list[OutboxRow]:
    """Take up to ``limit`` due rows for this sender; a claim whose sender has not beaten
    since ``alive_since`` (or never did) counts as due, and is marked ``maybe_delivered``."""
    owner_alive = exists().where(
        OutboxSender.id == func.substr(OutboxRow.claim_token, 1, SENDER_ID_LENGTH),
        OutboxSender.heartbeat_at >= alive_since)
    return claim_due(session, OutboxRow, token, now, alive_since, limit, orphaned=~owner_alive,
                     retaken={"maybe_delivered": True, "last_error": RETAKEN})


def _mine(row_id: int, token: str) -> ColumnElement[bool]:
    return and_(OutboxRow.id == row_id, OutboxRow.state == "claimed", OutboxRow.claim_token == token)


def mark_sent_many(session: Session, sent: Sequence[tuple[int, str]], token: str, now: datetime) -> int:
    """Rows ``(id, note)`` this sender delivered: ``sent`` with their notes, and the stored
    ``out`` messages of the same Message-IDs stamped; a few statements for the whole batch."""
    if not sent:
        return 0
    ids = [row_id for row_id, _ in sent]
    notes = {row_id: note for row_id, note in sent if note}
    mine = and_(OutboxRow.id.in_(ids), OutboxRow.state == "claimed", OutboxRow.claim_token == token)
    taken = list(session.execute(select(OutboxRow.id, OutboxRow.message_id, OutboxRow.message_id_hash).where(mine)))
    if not taken:
        return 0
    # A retaken row keeps its warning: it may have reached the recipient twice.
    note = case(*((OutboxRow.id == i, n) for i, n in notes.items()), else_="") if notes else ""
    session.execute(update(OutboxRow).where(OutboxRow.id.in_([r.id for r in taken])).values(
        state="sent", sent_at=now, claim_token=None,
        last_error=case((OutboxRow.maybe_delivered.is_(True), OutboxRow.last_error), else_=note)))
    session.execute(update(Message).where(Message.message_id_hash.in_([r.message_id_hash for r in taken]),
                                          Message.message_id.in_([r.message_id for r in taken]))
                    .values(sent_at=now))
    return len(taken)


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


def row(session: Session, row_id: int) -> OutboxRow | None:
    """The outbox row a signed bounce address names."""
    return session.get(OutboxRow, row_id)


def note_bounce(session: Session, row_id: int, detail: str) -> None:
    session.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(last_error=f"bounced: {detail}"[:2000]))


def mark_undeliverable(session: Session, address: str, until: datetime, reason: str, now: datetime) -> None:
    done = session.execute(update(AddressStatus).where(AddressStatus.email == address).values(
        undeliverable_until=until, reason=reason[:2000], updated_at=now))
    if not rowcount(done):
        session.execute(insert(AddressStatus).values(email=address, undeliverable_until=until,
                                                     reason=reason[:2000], updated_at=now))


COMPLAINT_HOLD = timedelta(days=3650)  # a complaint is an unsubscribe, not a passing failure


def record_returns(session: Session, *, bounced_row: int | None, complaints: Sequence[str],
                   undeliverable: Sequence[str], cause: str, reason: str, now: datetime,
                   undeliverable_days: int) -> None:
    """What a bounce or a complaint says about maild's own mail: the returned outbox row
    noted, complaining addresses held until an admin clears them, permanently failing
    ones held for ``undeliverable_days``. ``cause``: the Message-ID of the report."""
    if bounced_row is not None:
        note_bounce(session, bounced_row, f"{cause}: {reason}")
    for address in complaints:  # an unsubscribe: until an admin clears it
        mark_undeliverable(session, address, now + COMPLAINT_HOLD, f"complaint (feedback report) {cause}", now)
    for address in undeliverable:
        mark_undeliverable(session, address, now + timedelta(days=undeliverable_days),
                           f"permanent bounce {cause}", now)


def listing(session: Session, state: str | None = None, limit: int = 200) -> list[OutboxRow]:
    query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
    if state:
        query = query.where(OutboxRow.state == state)
    return list(session.scalars(query))
