"""How processing one mail ended, as the processor reports it (and ``maild ingest`` prints)."""
from __future__ import annotations

import enum


class Status(enum.StrEnum):
    CREATED = "created"  # a new ticket
    APPENDED = "appended"  # a message on an existing ticket
    DUPLICATE = "duplicate"  # seen before: nothing changed
    IGNORED = "ignored"  # kept as raw mail only
    QUARANTINED = "quarantined"  # kept aside for a person to look at (``maild reprocess``)
    RETRY = "retry"  # failed, nothing committed: the channel keeps the mail and offers it again


class Direction(enum.StrEnum):
    """A stored message's ``direction`` column."""

    IN = "in"  # customer mail
    OUT = "out"  # what maild sent to the customer
    NOTE = "note"  # internal: agents only
    AGENT = "agent"  # an agent's own mail with commands, kept for the record
    DRAFT = "draft"  # a reply saved by /draft, not sent yet
    DRAFTED = "drafted"  # a draft that /send released


# The status of a deleted ticket (``maild tickets delete``): content erased, the row and its
# audit line kept; never listed or counted, and later mail on its thread opens a new ticket.
DELETED = "deleted"


class OutboxState(enum.StrEnum):
    """An outbox row's ``status`` column."""

    QUEUED = "queued"  # waiting for its next attempt
    CLAIMED = "claimed"  # a sender thread holds it (claim token)
    SENT = "sent"
    FAILED = "failed"  # given up: ``maild outbox retry`` queues it again
