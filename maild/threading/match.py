"""Which ticket a mail belongs to: an ordered table of rules, first match wins.

1. duplicate     the Message-ID is already stored: a redelivery, nothing changes
2. reply_address a signed ``support+<ticket>-<sig>@`` address among the recipients, or
                 (for a proven agent) that agent's ``support+a<ticket>-<sig>@``
3. headers       In-Reply-To / References name a stored (or signed) message
4. subject_tag   ``[TAG #n]``, honoured only for agents and participants of ticket n;
                 anyone else gets a new ticket that refers to n (no hijacking)
5. repeat        the same mail (subject and body) from the same customer within minutes,
                 answering no message: onto the ticket the first one opened
                 (:mod:`maild.threading.repeat`)
6. new           a new ticket

Subject text alone never threads a mail. Rules 2 and 3 find a ticket from what a mail
client copies (a reply address, message-ids), which anyone holding a forwarded mail has
too; so a sender may join the ticket they name only when they belong on it (``_belongs``):
an agent, the requester, a Cc participant, someone the thread itself addressed (To/Cc of
a named message: the customer's Cc, an agent's ``/cc``), or someone writing to the
requester too (a reply-all the requester receives anyway) — the last two become Cc
participants. Anyone else opens a new ticket that refers to the named one, so an agent's
answer goes to the person who wrote, never to another customer. Bounces and auto-replies
(``machine``) are only recorded on the named ticket and send nothing: no check.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from maild.domain.mail import ParsedMail
from maild.domain.match import Match, MatchRule
from maild.threading.repeat import Recent, repeated
from maild.threading.signing import Signer
from maild.threading.subject import find_tag


class ThreadLookup(Protocol):
    def ticket_of_message(self, message_id: str) -> int | None: ...

    def ticket_of_any(self, message_ids: Sequence[str]) -> int | None: ...

    def resolve_ticket(self, ticket_id: int) -> int | None:
        """The live ticket for an id (following merges), or None if there is none."""
        ...

    def is_participant(self, ticket_id: int, email: str) -> bool: ...

    def requester_of(self, ticket_id: int) -> str | None: ...

    def addressed_in(self, ticket_id: int, email: str, message_ids: Sequence[str]) -> bool:
        """Whether one of these stored messages of the ticket was sent To/Cc ``email``."""
        ...


@dataclass(frozen=True)
class ThreadContext:
    mail: ParsedMail
    sender: str  # normalized address of the sender
    sender_is_agent: bool
    lookup: ThreadLookup
    signer: Signer
    subject_tag: str
    machine: bool = False  # a bounce or auto-reply: recorded where it points, never answered
    # From an agent's configured address, even unproven (then it is customer mail without
    # commands, flagged): staff, so it stays on the ticket it answers rather than opening one.
    agent_address: bool = False
    agent: str = ""  # the configured address of a proven agent: their signed reply addresses count
    recent: Sequence[Recent] = ()  # what this sender wrote lately, newest first (the repeat rule)


def _named(mail: ParsedMail) -> list[str]:
    """The message-ids a mail answers, most recent first: In-Reply-To, then References."""
    named = list(dict.fromkeys([*mail.in_reply_to, *reversed(mail.references)]))
    return [m for m in named if m != mail.message_id]


def _belongs(ctx: ThreadContext, ticket: int, rule: MatchRule, detail: str = "") -> Match:
    """The ticket a reply address or message-id named, if this sender may join it (see above)."""
    if ctx.sender_is_agent or ctx.agent_address or ctx.machine or ctx.lookup.is_participant(ticket, ctx.sender):
        return Match(rule, ticket, detail=detail)
    if ctx.lookup.addressed_in(ticket, ctx.sender, _named(ctx.mail)):
        return Match(rule, ticket, detail=detail, joins="addressed by a message of the ticket")
    requester = ctx.lookup.requester_of(ticket)
    if requester and requester in {a.email for a in (*ctx.mail.to, *ctx.mail.cc)}:
        return Match(rule, ticket, detail=detail, joins="wrote to the requester too")
    how = "reply address" if rule == MatchRule.REPLY_ADDRESS else "In-Reply-To/References"
    return Match(MatchRule.NEW, None, refers_to=ticket, detail=f"{how} of #{ticket} from a non-participant")


Rule = Callable[[ThreadContext], Match | None]


def _duplicate(ctx: ThreadContext) -> Match | None:
    ticket = ctx.lookup.ticket_of_message(ctx.mail.message_id)
    return Match(MatchRule.DUPLICATE, ticket, detail=ctx.mail.message_id) if ticket is not None else None


def _reply_address(ctx: ThreadContext) -> Match | None:
    recipients = [a.email for a in (*ctx.mail.to, *ctx.mail.cc)] + list(ctx.mail.delivered_to)
    for address in recipients:
        ticket = ctx.signer.ticket_from_address(address)
        if ticket is None and ctx.agent:
            ticket = ctx.signer.agent_reply_ticket(address, ctx.agent)
        if ticket is not None and (live := ctx.lookup.resolve_ticket(ticket)) is not None:
            return _belongs(ctx, live, MatchRule.REPLY_ADDRESS, address)
    return None


def _headers(ctx: ThreadContext) -> Match | None:
    named = _named(ctx.mail)
    if not named:
        return None
    ticket = ctx.lookup.ticket_of_any(named)
    if ticket is not None:
        live = ctx.lookup.resolve_ticket(ticket)
        if live is not None:
            return _belongs(ctx, live, MatchRule.HEADERS)
    for message_id in named:
        signed = ctx.signer.ticket_from_message_id(message_id)
        if signed is not None and (live := ctx.lookup.resolve_ticket(signed)) is not None:
            return _belongs(ctx, live, MatchRule.HEADERS, "signed message-id")
    return None


def _subject_tag(ctx: ThreadContext) -> Match | None:
    number = find_tag(ctx.mail.subject, ctx.subject_tag)
    if number is None:
        return None
    live = ctx.lookup.resolve_ticket(number)
    if live is None:
        return Match(MatchRule.NEW, None, detail=f"tag #{number} names no ticket")
    if ctx.sender_is_agent or ctx.lookup.is_participant(live, ctx.sender):
        return Match(MatchRule.SUBJECT_TAG, live)
    return Match(MatchRule.NEW, None, refers_to=live, detail=f"tag #{number} from a non-participant")


def _repeat(ctx: ThreadContext) -> Match | None:
    # A mail that answers another (In-Reply-To/References) is a reply, whatever it says.
    if ctx.machine or ctx.sender_is_agent or ctx.agent_address or _named(ctx.mail):
        return None
    ticket = repeated(ctx.mail.subject, ctx.mail.body_text, ctx.recent)
    if ticket is None or (live := ctx.lookup.resolve_ticket(ticket)) is None:
        return None
    return Match(MatchRule.REPEAT, live, detail=f"the same mail as one on #{live} minutes ago")


RULES: tuple[Rule, ...] = (_duplicate, _reply_address, _headers, _subject_tag, _repeat)


def thread(ctx: ThreadContext) -> Match:
    for rule in RULES:
        found = rule(ctx)
        if found is not None:
            return found
    return Match(MatchRule.NEW, None)
