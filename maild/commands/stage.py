"""The interpret stage: which commands a mail carries, for whom, as a :class:`Interpretation`.

* Customer mail: subject keywords marked ``who: anyone`` only; skipped entirely (no
  folding, no regex) when no keyword is marked so.
* Agent mail: subject keywords and ``[key=value]`` assignments, and — on an existing
  ticket — ``/command`` lines at the top of the body.

Returns None when the mail carries no commands, so ordinary mail takes the plain path.
Built once at start (keyword table compiled, timezone and standard answers loaded).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from maild.commands.forwarded import attached_author, forwarded_sender
from maild.commands.grammar import Command, split_commands, starts_with_command
from maild.commands.interpret import CommandLookup, Context, TicketView, interpret
from maild.commands.keywords import AGENT, CUSTOMER, MANAGER, KeywordTable
from maild.commands.settings import KeywordAction
from maild.commands.workflow import Workflow
from maild.domain.commands import Interpretation


class StageLookup(CommandLookup, Protocol):
    def requester_of(self, ticket_id: int) -> str: ...


class Interpreter:
    def __init__(self, workflow: Workflow, keywords: dict[str, KeywordAction], timezone: str,
                 canned: frozenset[str] = frozenset()) -> None:
        self.workflow = workflow
        self.keywords = KeywordTable(keywords)
        self.tz = ZoneInfo(timezone)
        self.canned = canned

    def interpret(self, subject: str, body: str, sender_email: str, is_agent: bool, ticket_id: int | None,
                  ticket_status: str | None, lookup: StageLookup, now: datetime,
                  attached: Sequence[bytes] = ()) -> Interpretation | None:
        """``attached``: mails attached whole (``message/rfc822``): the customer ``/new`` names
        when the agent forwarded as an attachment."""
        if not is_agent:
            if not self.keywords.has_public:
                return None
            scan = self.keywords.scan(subject, CUSTOMER)
            if not scan.changed:
                return None
            view = TicketView(ticket_id, ticket_status or "new", sender_email)
            ctx = Context(self.workflow, sender_email, None, view, lookup, now, self.tz, self.canned)
            return Interpretation(interpret(scan.commands, ctx), scan.subject)
        actor = self.workflow.agent_by_address(sender_email)
        role = MANAGER if actor is not None and actor.role == "manager" else AGENT
        scan = self.keywords.scan(subject, role)
        commands: tuple[Command, ...] = ()
        text = body
        forwarded = None
        if starts_with_command(body):  # on a ticket, or opening one (/new for a customer)
            commands, text = split_commands(body)
            if ticket_id is None:
                forwarded = forwarded_sender(text) or next(
                    (found for found in map(attached_author, attached) if found), None)
        if not scan.changed and not commands:
            return None
        requester = lookup.requester_of(ticket_id) if ticket_id is not None else sender_email
        view = TicketView(ticket_id, ticket_status or "new", requester)
        ctx = Context(self.workflow, sender_email, actor, view, lookup, now, self.tz, self.canned,
                      forwarded=forwarded)
        plan = interpret((*scan.commands, *commands), ctx)
        if scan.rejected:
            plan = dataclasses.replace(plan, rejected=(*scan.rejected, *plan.rejected))
        return Interpretation(plan, scan.subject, text if commands else None)
