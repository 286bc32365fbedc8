"""May maild send an automatic mail to this address now? Pure rules, first refusal wins.

Automatic mail (acknowledgements, notifications, feedback) is never sent to:
  1. maild's own addresses;
  2. senders that are machines: no-reply, mailer-daemon, postmaster, bounce addresses;
  3. in answer to a mail that was itself automatic: auto-submitted / out-of-office,
     bulk or list mail, a bounce or report, maild's own mail coming back (loop), or any
     mail with an empty reverse-path (``MAIL FROM:<>`` / ``Return-Path: <>``);
  4. an address a permanent bounce marked undeliverable, until that expires;
  5. a contact who withdrew consent or is blocked;
  6. past the sliding-window caps, all per recipient: about one ticket, to the address in a
     short burst (a robot answering at once: 3 a minute by default), to the address, to the
     address per day.

Agents are not held by the per-address caps, but never get more than the per-ticket cap
about one ticket, nor more than ``outbound.limits.per_agent`` notifications in a window:
past that :mod:`maild.notify.agentcap` holds them for one summary mail per window.

An agent's reply relayed to the customer is not automatic and is not held back by these
rules (a person decided to send it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from maild.domain.mail import Kind

_MACHINE = re.compile(
    r"^(no-?reply|do-?not-?reply|donotreply|noreply\w*|no_reply|mailer-?daemon|mail-?daemon|postmaster"
    r"|bounces?|bounce-[^@]*|[^@]*-bounces?|notifications?|auto-?reply|autoresponder)([+@]|$)", re.I)


@dataclass(frozen=True)
class Caps:
    per_ticket: tuple[int, int]  # (count, minutes)
    per_address: tuple[int, int]
    per_address_day: tuple[int, int]
    per_address_burst: tuple[int, int] = (3, 1)


@dataclass(frozen=True)
class RecentMail:
    """What the outbox says about automatic mail already sent; counts inside each cap's window."""

    to_address: int = 0  # within per_address minutes
    to_address_day: int = 0  # within per_address_day minutes
    on_ticket: int = 0  # to this address about this ticket, within per_ticket minutes
    to_address_burst: int = 0  # within per_address_burst minutes
    undeliverable_until: datetime | None = None
    consent: bool = True
    blocked: bool = False


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


OK = Verdict(True)


def is_machine_address(address: str) -> bool:
    return bool(_MACHINE.match(address.strip().lower()))


def answerable(kind: Kind, sender: str, null_return_path: bool, own: frozenset[str]) -> Verdict:
    """May an incoming mail of this kind, from this sender, get an automatic answer at all?"""
    if kind is not Kind.NORMAL:
        return Verdict(False, f"the mail is {kind.value}")
    return reply_allowed(sender, null_return_path, own)


def reply_allowed(sender: str, null_return_path: bool, own: frozenset[str]) -> Verdict:
    """May an automatic mail (acknowledgement, command feedback, a report) answer this sender?

    Never when the mail came with an empty reverse-path (RFC 5321 §4.5.5, RFC 3834 §2),
    whatever its From says: only notifications are sent that way.
    """
    if null_return_path:
        return Verdict(False, "the mail has an empty reverse-path (MAIL FROM:<>, Return-Path: <>): never answered")
    return recipient_allowed(sender, own)


def recipient_allowed(address: str, own: frozenset[str]) -> Verdict:
    if address in own:
        return Verdict(False, f"{address} is maild's own address")
    if "@" not in address or address.endswith(".invalid"):
        return Verdict(False, f"{address} cannot receive mail")
    if is_machine_address(address):
        return Verdict(False, f"{address} is a machine address (no-reply, daemon, bounce)")
    return OK


def within_caps(address: str, recent: RecentMail, caps: Caps, now: datetime) -> Verdict:
    if recent.undeliverable_until is not None and recent.undeliverable_until > now:
        return Verdict(False, f"{address} bounced permanently; undeliverable until "
                              f"{recent.undeliverable_until:%Y-%m-%d %H:%M}Z")
    if recent.blocked:
        return Verdict(False, f"{address} is blocked")
    if not recent.consent:
        return Verdict(False, f"{address} did not consent to automatic mail")
    for label, count, (limit, minutes) in (
        ("ticket", recent.on_ticket, caps.per_ticket),
        ("address", recent.to_address_burst, caps.per_address_burst),
        ("address", recent.to_address, caps.per_address),
        ("address per day", recent.to_address_day, caps.per_address_day),
    ):
        if count >= limit:
            return Verdict(False, f"cap reached: {count} automatic mails per {label} in {minutes} min (limit {limit})")
    return OK


def within_ticket_cap(address: str, recent: RecentMail, caps: Caps) -> Verdict:
    """The per-ticket cap alone: what holds back notifications to agents."""
    limit, minutes = caps.per_ticket
    if recent.on_ticket >= limit:
        return Verdict(False, f"cap reached: {recent.on_ticket} automatic mails to {address} about this ticket "
                              f"in {minutes} min (limit {limit})")
    return OK
