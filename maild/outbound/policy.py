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

Command feedback and control-address reports (:attr:`Purpose.ANSWER`) answer what an agent
just did: they are counted apart, under caps of their own (``outbound.limits.feedback``, a
day's worth, and ``feedback_burst``), so an agent who received 40 notifications still gets
them, while two robots answering each other still stop.

:func:`may_send_automatic` is the one gate every automatic mail passes; the functions
below it are its rules.

Agents are not held by the per-address caps, but never get more than the per-ticket cap
about one ticket, nor more than ``outbound.limits.per_agent`` notifications in a window:
past that the gate says ``summarize`` and :mod:`maild.notify.agentcap` keeps them for one
summary mail per window.

An agent's reply relayed to the customer is not automatic and is not held back by these
rules (a person decided to send it).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from maild.domain.mail import Kind
from maild.logmask import mask

_MACHINE = re.compile(
    r"^(no-?reply|do-?not-?reply|donotreply|noreply\w*|no_reply|mailer-?daemon|mail-?daemon|postmaster"
    r"|bounces?|bounce-[^@]*|[^@]*-bounces?|notifications?|auto-?reply|autoresponder)([+@]|$)", re.I)


@dataclass(frozen=True)
class Caps:
    per_ticket: tuple[int, int]  # (count, minutes)
    per_address: tuple[int, int]
    per_address_day: tuple[int, int]
    per_agent: int | None = None  # notifications to an agent per fixed window; past it, the summary
    per_address_burst: tuple[int, int] = (3, 1)
    feedback: tuple[int, int] = (200, 24 * 60)  # command feedback and reports to one address
    feedback_burst: tuple[int, int] = (10, 1)


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
    agent_window: int = 0  # notifications to this agent in the current per-agent window
    feedback: int = 0  # command feedback and control reports to the address, within the feedback window
    feedback_burst: int = 0  # the same, within the feedback burst window


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    summarize: bool = False  # held for the agent's summary at the window's end (not lost)
    cap: str = ""  # the cap that held the mail back (per_ticket, per_address_burst, …), for the metrics


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
    for cap, label, count, (limit, minutes) in (
        ("per_ticket", "ticket", recent.on_ticket, caps.per_ticket),
        ("per_address_burst", "address", recent.to_address_burst, caps.per_address_burst),
        ("per_address", "address", recent.to_address, caps.per_address),
        ("per_address_day", "address per day", recent.to_address_day, caps.per_address_day),
    ):
        if count >= limit:
            return Verdict(False, f"cap reached: {count} automatic mails per {label} in {minutes} min (limit {limit})",
                           cap=cap)
    return OK


def within_feedback_caps(address: str, recent: RecentMail, caps: Caps, now: datetime) -> Verdict:
    """Command feedback and control reports: their own caps only, never the other automatic mail's."""
    if recent.undeliverable_until is not None and recent.undeliverable_until > now:
        return Verdict(False, f"{address} bounced permanently")
    if recent.blocked:
        return Verdict(False, f"{address} is blocked")
    for count, (limit, minutes) in ((recent.feedback_burst, caps.feedback_burst), (recent.feedback, caps.feedback)):
        if count >= limit:
            return Verdict(False, f"cap reached: {count} feedback mails and reports in {minutes} min (limit {limit})")
    return OK


def within_ticket_cap(address: str, recent: RecentMail, caps: Caps) -> Verdict:
    """The per-ticket cap alone: what holds back notifications to agents."""
    limit, minutes = caps.per_ticket
    if recent.on_ticket >= limit:
        return Verdict(False, f"cap reached: {recent.on_ticket} automatic mails to {address} about this ticket "
                              f"in {minutes} min (limit {limit})", cap="per_ticket")
    return OK


class Purpose(enum.StrEnum):
    """What an automatic mail is, which says which of the rules above apply to it."""

    ACKNOWLEDGE = "acknowledge"  # answers a customer's mail that opened a ticket
    ANSWER = "answer"  # answers a person's mail (command feedback, a control report)
    NOTICE = "notice"  # to a ticket's customer, answering no mail (a trigger rule)
    AGENT = "agent"  # a notification to an agent
    PROOF = "proof"  # tells an agent their address was used without proof


@dataclass(frozen=True)
class Answering:
    """The incoming mail an automatic mail answers."""

    kind: Kind
    null_reverse_path: bool
    from_agent: bool = False


def may_send_automatic(purpose: Purpose, to: str, recent: RecentMail, *, own: frozenset[str], caps: Caps,
                       now: datetime, answering: Answering | None = None) -> Verdict:
    """May maild send this automatic mail to ``to`` now? Pure; the first refusal wins.

    ``recent``: what the outbox says about ``to`` (for :attr:`Purpose.PROOF`, ``on_ticket``
    counts the notices about this ticket today and ``to_address_day`` all of them today).
    """
    if answering is not None and purpose is Purpose.ACKNOWLEDGE:
        verdict = answerable(answering.kind, to, answering.null_reverse_path, own)
        if verdict.ok and answering.from_agent:
            verdict = Verdict(False, "the sender is an agent")
    elif answering is not None:
        verdict = reply_allowed(to, answering.null_reverse_path, own)
    else:
        verdict = recipient_allowed(to, own)
    if not verdict.ok:
        return verdict
    if purpose is Purpose.AGENT:
        if recent.undeliverable_until is not None and recent.undeliverable_until > now:
            return Verdict(False, f"{to} bounced permanently")
        verdict = within_ticket_cap(to, recent, caps)
        if verdict.ok and caps.per_agent is not None and recent.agent_window >= caps.per_agent:
            return Verdict(False, f"cap reached: {caps.per_agent} notifications to {mask(to)} in this window",
                           summarize=True, cap="per_agent")
        return verdict
    if purpose is Purpose.PROOF:
        if recent.on_ticket:
            return Verdict(False, "already told today")
        if recent.to_address_day >= caps.per_address_day[0]:
            return Verdict(False, f"cap reached: {recent.to_address_day} such notices today", cap="proof_per_day")
        return OK
    if purpose is Purpose.ANSWER:
        return within_feedback_caps(to, recent, caps, now)
    return within_caps(to, recent, caps, now)
