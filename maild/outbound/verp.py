"""Bounces by envelope (VERP): a mail sent to a signed bounce address returns that outbox row.

Each mail maild sends has its own envelope sender, ``support+bounce-<outbox id>-<sig>@…``
(:meth:`maild.threading.signing.Signer.bounce_address`). Whatever comes back to it was
caused by that mail: a DSN in a vendor format, a truncated return, a carrier's notice
without the Message-ID. So the row is named exactly, and the mail counts as a bounce even
when its body shows nothing a bounce rule knows, and a null reverse-path there (every
DSN has one) says "bounce", not "auto-reply". An auto-reply the mail itself declares
(Auto-Submitted, X-Autoreply, a vacation subject) or an abuse report sent there keeps its
kind (they are not delivery failures) but is still tied to the row. The
returned Message-ID stays the fallback for mail relayed by an MTA that rewrote the
envelope.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from maild.domain.mail import Classification, Kind

# Kinds a mail to a bounce address keeps; any other kind is read as a bounce.
_KEPT = (Kind.BOUNCE, Kind.REPORT)
# The classify stage's envelope-only reason for an auto-reply: at a bounce address it is a DSN's.
_NULL_SENDER = "auto:null-reverse-path"


class BounceAddresses(Protocol):
    def outbox_from_bounce_address(self, address: str) -> int | None: ...


def returned_row(envelope_recipients: Iterable[str], signer: BounceAddresses) -> int | None:
    """The outbox row named by the first signed bounce address among the envelope recipients."""
    for address in envelope_recipients:
        row_id = signer.outbox_from_bounce_address(address)
        if row_id is not None:
            return row_id
    return None


def as_returned(kind: Classification) -> Classification:
    """A mail that reached a bounce address: a bounce, unless it is an auto-reply or a report."""
    if kind.kind in _KEPT:
        return kind
    if kind.kind is Kind.AUTO_REPLY and any(r != _NULL_SENDER for r in kind.reasons):
        return kind
    return replace(kind, kind=Kind.BOUNCE, reasons=(*kind.reasons, "bounce:verp"))
