"""Typed values that travel between the pipeline stages.

Nothing past :mod:`maild.ingest.parse` touches mail-parser or ``email.message``
objects: every later stage reads these frozen dataclasses only.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from maild.domain.outcome import Status

# A processing outcome status: this mail failed and nothing of it was committed; the
# channel keeps it and offers it again (the processor counts the attempts).
RETRY = Status.RETRY


@dataclass(frozen=True)
class Address:
    """One mailbox: display name and the address as written (``email`` lower-cased)."""

    name: str
    email: str


@dataclass(frozen=True)
class Attachment:
    filename: str  # safe: no path separators, never empty
    content_type: str
    payload: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class DeliveryReport:
    """What a bounce-like mail says about the mail it returns (filled by the parse stage).

    Present only on mails that look like delivery reports (``multipart/report``, a
    ``message/delivery-status`` part, a mailer-daemon/postmaster sender or an empty
    Return-Path); :mod:`maild.ingest.classify` decides whether it is really a bounce.
    """

    report_type: str = ""  # multipart/report report-type, e.g. "delivery-status"
    message_ids: tuple[str, ...] = ()  # returned mail: Message-ID first, then its In-Reply-To/References
    recipients: tuple[str, ...] = ()  # Final-/Original-Recipient addresses, lower-case
    statuses: tuple[str, ...] = ()  # DSN Status codes, e.g. "5.1.1"
    actions: tuple[str, ...] = ()  # DSN Action values: failed, delayed, delivered, ...
    scanned_addresses: tuple[str, ...] = ()  # permanent failures found by flufl.bounce
    part_types: tuple[str, ...] = ()  # the report's own MIME types, e.g. "message/feedback-report"
    feedback_type: str = ""  # ARF Feedback-Type (abuse, fraud, auth-failure, ...), lower-case
    returned_to: tuple[str, ...] = ()  # who the returned mail was for: its To, Original-Rcpt-To, X-Failed-Recipients


@dataclass(frozen=True)
class ParsedMail:
    """Everything the pipeline needs from one raw mail.

    ``message_id`` is always set: when the mail has none, a deterministic one is
    derived from its bytes (``<sha256-prefix@maild.invalid>``) so a redelivery is
    recognised. ``defects`` lists what could not be decoded cleanly; a mail with
    defects is still a valid ticket message.
    """

    message_id: str  # with angle brackets, as in the header
    synthetic_message_id: bool
    subject: str  # decoded, unfolded, may be empty
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    delivered_to: tuple[str, ...]  # Delivered-To / X-Original-To addresses, lower-case
    in_reply_to: tuple[str, ...]  # message-ids with angle brackets
    references: tuple[str, ...]  # message-ids with angle brackets, oldest first
    date: datetime | None  # timezone-aware UTC when known
    headers: dict[str, str]  # lower-cased header name -> decoded value (first occurrence)
    body_text: str  # text/plain, or text derived from the HTML part
    body_html: str | None
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...] = ()
    report: DeliveryReport | None = None  # only for mails that look like delivery reports

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def null_reverse_path(self) -> bool:
        """The envelope sender is empty (``Return-Path: <>``): RFC 5321 §4.5.5 keeps that for
        notifications, which must never be answered. The SMTP listener writes the envelope's
        own Return-Path above the mail's headers; IMAP and pipe mail carry the delivering
        MTA's. ``<MAILER-DAEMON>`` is how some MTAs write the empty path locally."""
        path = "".join(self.header("return-path").split()).lower()
        return path in ("<>", "<mailer-daemon>")


class Kind(enum.Enum):
    """What a mail is, decided by :mod:`maild.ingest.classify` before threading."""

    NORMAL = "normal"
    AUTO_REPLY = "auto_reply"  # out-of-office, vacation, auto-generated answers
    BOUNCE = "bounce"  # delivery status notification
    LIST = "list"  # mailing list or bulk mail: may make a ticket, never auto-answered
    LOOP = "loop"  # mail that maild itself sent, coming back
    REPORT = "report"  # feedback (ARF), DMARC/TLS reports, notification robots: kept, never a ticket


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reasons: tuple[str, ...] = ()  # which rules fired, e.g. "header:auto-submitted"
    bounced_message_ids: tuple[str, ...] = ()  # for bounces: the message-ids they return
    bounced_addresses: tuple[str, ...] = ()
    permanent: bool = False  # for bounces: 5.x.x failure

    @property
    def opens_ticket(self) -> bool:
        return self.kind in (Kind.NORMAL, Kind.LIST)


class QuarantineError(Exception):
    """Raised by the parse stage for a mail that yields nothing usable."""


@dataclass(frozen=True)
class ParseFailure:
    reason: str
    extra: dict[str, str] = field(default_factory=dict)
