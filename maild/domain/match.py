"""Which ticket a mail belongs to, as the threading stage (:mod:`maild.threading.match`) says."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class MatchRule(enum.StrEnum):
    """The threading rule that matched, in the order the rules are tried."""

    DUPLICATE = "duplicate"
    REPLY_ADDRESS = "reply_address"
    HEADERS = "headers"
    SUBJECT_TAG = "subject_tag"
    REPEAT = "repeat"
    NEW = "new"


@dataclass(frozen=True)
class Match:
    rule: MatchRule
    ticket_id: int | None
    refers_to: int | None = None  # a ticket the mail named but may not join
    detail: str = ""
    joins: str = ""  # why a sender not yet on the ticket becomes a Cc participant of it
