"""Ticket changes that commands ask for, as values.

The interpret stage produces them, :mod:`maild.commands.apply` writes them in the mail's
transaction and records one history event per actual change (old → new, who, which mail).
A change that changes nothing (``/priority high`` on a high ticket) records nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The ticket columns a SetField may change.
FIELDS = ("priority", "type", "subtype", "category", "assignee", "subject", "visible", "next_action_at")


@dataclass(frozen=True)
class SetField:
    field: str  # one of FIELDS
    value: str | bool | datetime | None


@dataclass(frozen=True)
class SetStatus:
    """Only for tickets other than the mail's own (control address, merges): the mail's own
    ticket changes status through ``Decision.status``."""

    status: str
    detail: str = ""


@dataclass(frozen=True)
class TagOp:
    name: str
    add: bool


@dataclass(frozen=True)
class AddParticipant:
    email: str
    role: str  # cc | watcher


@dataclass(frozen=True)
class Link:
    other: int
    kind: str = "related"  # related (both ways) | merged_into (plus merged_from on the other)


@dataclass(frozen=True)
class Block:
    email: str  # the contact whose later mail is kept but ignored


@dataclass(frozen=True)
class Clone:
    pass


@dataclass(frozen=True)
class DraftPending:
    pending: bool


@dataclass(frozen=True)
class ReleaseDraft:
    message_pk: int  # the draft's row in ``messages``: direction draft → drafted (sent)


@dataclass(frozen=True)
class AttachRefs:
    """``/listing REF…``: catalog items linked to the ticket (``ticket_refs``); replies list
    every linked item (the ``_listing.j2`` include)."""

    refs: tuple[str, ...]


@dataclass(frozen=True)
class NewTicket:
    """``new customer@x "Subject"`` at the control address: a ticket for a phone request."""

    requester: str
    subject: str
    text: str


Op = SetField | SetStatus | TagOp | AddParticipant | Link | Block | Clone | DraftPending | ReleaseDraft | AttachRefs
