"""A repeat: the same mail again from the same sender within minutes joins the ticket the
first one opened instead of opening another.

A responder that answers every mail with a fixed text (no Auto-Submitted, so nothing marks
it as a robot) would otherwise open a ticket, and get an acknowledgement, per exchange.
"The same mail" is strict — same sender, same subject without reply prefixes, same body,
whitespace and case aside — so two different requests never merge. Pure: the processor
passes in what the sender wrote lately (``Recent``).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from maild.threading.subject import strip_prefixes

REPEAT_MINUTES = 10  # how far back an identical mail joins the earlier one's ticket


@dataclass(frozen=True)
class Recent:
    """A mail the sender wrote lately, as stored on a ticket they requested."""

    ticket_id: int
    subject: str
    body: str


def fingerprint(subject: str, body: str) -> tuple[str, str]:
    """The normalized subject and the body's hash: what makes two mails the same mail."""
    norm_subject = " ".join(strip_prefixes(subject).split()).casefold()
    norm_body = " ".join(body.split()).casefold()
    return norm_subject, hashlib.sha256(norm_body.encode("utf-8", "surrogatepass")).hexdigest()


def repeated(subject: str, body: str, recent: Sequence[Recent]) -> int | None:
    """The ticket of the most recent identical mail in ``recent`` (newest first), if any."""
    if not " ".join(body.split()) and not strip_prefixes(subject).strip():
        return None  # empty mails say nothing: they are not "the same request"
    mine = fingerprint(subject, body)
    for earlier in recent:
        if fingerprint(earlier.subject, earlier.body) == mine:
            return earlier.ticket_id
    return None
