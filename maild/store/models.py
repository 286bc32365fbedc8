"""The database schema, as SQLAlchemy 2 typed ORM classes.

Every table lives here; Alembic migrations in ``migrations/versions`` create them.
Times are stored as timezone-aware UTC.
"""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from datetime import timezone

from maild.store.keys import HASH_LENGTH, hash_of


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    # Every model here is mapped to one Table: the Core statements (insert/update/delete of
    # ``Model.__table__``) need it typed as a Table, not the general FromClause.
    __table__: ClassVar[Table]


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    consent: Mapped[bool] = mapped_column(Boolean, default=True)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(64), default="new", index=True)
    priority: Mapped[str] = mapped_column(String(32), default="normal")
    type: Mapped[str | None] = mapped_column(String(200))
    subtype: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(320), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    visible: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(100), default="")
    next_action_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    draft_pending: Mapped[bool] = mapped_column(Boolean, default=False)  # a /draft reply waits for /send
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    requester: Mapped[Contact] = relationship(lazy="joined")
    tags: Mapped[list[Tag]] = relationship(secondary="ticket_tags", lazy="selectin", order_by="Tag.name")


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    colour: Mapped[str] = mapped_column(String(16), default="")


class TicketTag(Base):
    __tablename__ = "ticket_tags"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class Participant(Base):
    """Everyone on a ticket besides the requester: cc'd customers, watchers."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32))  # requester | cc | watcher


class RawMail(Base):
    """Every mail that reached maild, kept before parsing (bytes on disk by hash)."""

    __tablename__ = "raw_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # processed | duplicate | ignored | quarantined
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998))
    # Indexed: a control-address mail makes no message row, so its redelivery is found here.
    # The key, not the value: a 998-character UTF-8 Message-ID does not fit a btree entry.
    message_id_hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH), index=True,
                                                        default=hash_of("message_id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # in | out | note
    message_id: Mapped[str] = mapped_column(String(998))
    message_id_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True, index=True,
                                                 default=hash_of("message_id"))
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to_addrs: Mapped[str] = mapped_column(Text, default="")
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), default="normal")
    channel: Mapped[str] = mapped_column(String(100), default="")
    author: Mapped[str] = mapped_column(String(320), default="")  # agent address or contact address
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_mails.id", ondelete="SET NULL"))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    attachments: Mapped[list[AttachmentRow]] = relationship(lazy="selectin", order_by="AttachmentRow.id")

    __table_args__ = (Index("ix_messages_ticket_created", "ticket_id", "created_at"),)


class AttachmentRow(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)


class Event(Base):
    """The ticket history: who changed what, when, through which mail."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(64))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998))
    detail: Mapped[str] = mapped_column(Text, default="")


class TicketLink(Base):
    __tablename__ = "ticket_links"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    other_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # refers_to | related | merged_into


class ImapCheckpoint(Base):
    __tablename__ = "imap_checkpoints"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    folder: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)


class OutboxRow(Base):
    """One outbound mail: committed with the decision that caused it, delivered by the sender.

    ``state``: queued → claimed → sent | queued (retry) | failed; a claim older than the
    claim timeout belongs to a sender that died and is taken again, with the same
    Message-ID. The row holds everything the mail's bytes are built from, so a retry sends
    the same mail.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))  # ack | reply | notify | feedback
    automatic: Mapped[bool] = mapped_column(Boolean)  # counts against the per-address caps
    state: Mapped[str] = mapped_column(String(16))  # queued | claimed | sent | failed
    message_id: Mapped[str] = mapped_column(String(998))
    message_id_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True, index=True,
                                                 default=hash_of("message_id"))
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[str] = mapped_column(Text)  # envelope recipients, ", "-separated
    to_addr: Mapped[str] = mapped_column(String(320))  # the first recipient: what the caps count
    from_header: Mapped[str] = mapped_column(Text)
    to_header: Mapped[str] = mapped_column(Text)
    cc_header: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text)
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")
    auto_submitted: Mapped[str] = mapped_column(String(32), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    body_text: Mapped[str] = mapped_column(Text)
    # Files sent with the mail (the digest's calendar): JSON [{filename, content_type, text}].
    attachments: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)  # still undelivered then: failed
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Taken again from a sender that stopped beating: it may have handed the mail over first.
    maybe_delivered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_to_created", "to_addr", "created_at"),
        Index("ix_outbox_ticket_created", "ticket_id", "created_at"),
    )


class AddressStatus(Base):
    """Addresses maild must not mail automatically for a while (a permanent bounce)."""

    __tablename__ = "address_status"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    undeliverable_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ScheduleMark(Base):
    """What the scheduler has done, so each thing happens once (maild/scheduler/).

    ``job`` reminder | unaccepted | digest | autoclose, ``key`` the ticket id or agent
    address, ``due_at`` the moment it was for (a reminder's next-action time). The
    primary key makes a second leader's (or a restarted one's) attempt fail instead of
    sending twice; a new next-action time is a new row, so a rescheduled reminder fires.
    """

    __tablename__ = "schedule_marks"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    done_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(Text, default="")


class SchedulerLease(Base):
    """The scheduler leader's lease (SQLite; PostgreSQL uses an advisory lock instead)."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OutboxSender(Base):
    """A live outbox sender (a thread of one ``maild run`` on one node) and its heartbeat.

    The claim token of the rows it holds starts with its ``id``; once ``heartbeat_at`` is
    older than ``outbound.retry.heartbeat_timeout_seconds`` its claims are taken again.
    """

    __tablename__ = "outbox_senders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InboundRow(Base):
    """An acknowledged mail not yet processed (``spool.backend: database``): any node claims it.

    ``message_id_hash`` is the key of its Message-ID and ``parents`` the keys of the
    Message-IDs it answers (In-Reply-To, References; space-separated), so a reply can wait
    while its parent is still here. A row is deleted once its mail's transaction committed.
    """

    __tablename__ = "inbound_queue"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    channel: Mapped[str] = mapped_column(String(40))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    message_id_hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH), index=True)
    parents: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    waiting_since: Mapped[datetime | None] = mapped_column(UtcDateTime)  # first put back for its parent
    node: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # failed processing, any node
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_inbound_queue_state_next", "state", "next_attempt_at"),)


class Node(Base):
    """A running ``maild run`` and its heartbeat: the claims of a node that stopped beating
    are taken again; ``maild cluster status`` lists the live ones and what each holds."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    queue_depth: Mapped[int] = mapped_column(Integer, default=0)
    holds: Mapped[str] = mapped_column(Text, default="{}")  # JSON: scheduler, imap, claims


class AwaitedParent(Base):
    """A reply that opened a ticket of its own because maild had not seen the mail it
    answers (yet): when that mail arrives, its ticket and this one are linked."""

    __tablename__ = "awaited_parents"

    parent_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BlobRow(Base):
    """A raw mail (``raw``) or attachment (``att``) kept in the database, zlib-compressed."""

    __tablename__ = "blobs"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SmsRow(Base):
    """One SMS for the HTTP gateway: queued with the change that caused it (maild/notify/sms.py)."""

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    phone: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))  # queued | claimed | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_sms_due", "state", "next_attempt_at"), Index("ix_sms_phone_created", "phone", "created_at"))


class ContactGroup(Base):
    """A contact's groups (seed 000: the groups a contact belongs to)."""

    __tablename__ = "contact_groups"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)


class TicketRef(Base):
    """A catalog item (e.g. a property code) linked to a ticket, by a form or an agent."""

    __tablename__ = "ticket_refs"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), default="")  # form:<name> | agent address
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Erasure(Base):
    """The record that a person's data was erased (LGPD), without the data itself.

    ``subject_hmac`` is an HMAC of the normalized address under the helpdesk secret: it can
    confirm "was this address erased?" for someone who knows the address, and names no one.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    subject_hmac: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(320), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class NotifyCounter(Base):
    """Notifications to one agent in one fixed window (``outbound.limits.per_agent``).

    ``sent`` counts what went out, ``held`` what the cap held back; ``detail`` (JSON) lists
    the held tickets for the window's one summary mail, the outbox row ``summary_id``, due
    at the window's end. One row per (address, window): the cap check is a single-row
    update however many mails the agent already had.
    """

    __tablename__ = "notify_counters"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    summary_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")
