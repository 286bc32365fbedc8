"""The control address as a mailbox: which mails are for it, who may use it, and carrying
one out — the :mod:`maild.commands.control` result applied in the mail's transaction and
answered with one report mail. Never opens a ticket for the mail itself.

What the mail changed runs the trigger rules like a command in a reply would: per ticket,
one merged delivery set (``status_changed``, ``assigned``; ``ticket_created`` for ``new``),
the agent who sent it left out.

Refused (kept as raw mail, no answer): automatic mail (auto-replies, bounces, lists, loops),
and mail from anyone but a proven agent (:mod:`maild.commands.auth`) — so a stranger learns
nothing, not even that the address exists. Mail From an agent's address without proof runs
nothing either; the real agent (not the sender) gets one notice a day saying how to prove
it: the report mails carry the agent's signed ``control+<sig>@`` address as Reply-To.
A redelivered control mail (same Message-ID) runs nothing twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from maild.commands import control
from maild.commands.apply import apply_ops, open_ticket
from maild.commands.queries import CommandReads
from maild.commands.workflow import Workflow
from maild.domain import ops
from maild.domain.mail import Classification, Kind, ParsedMail
from maild.domain.sender import Sender
from maild.logmask import mask, mask_text
from maild.domain.events import Change, EventSpec, change_events
from maild.domain.events import TriggerEvent as Event
from maild.store import history, repo
from maild.store.keys import header_hash
from maild.store.models import Message, RawMail

log = logging.getLogger("maild.control")


@dataclass(frozen=True)
class ControlOutcome:
    status: str  # control | ignored | duplicate
    reason: str
    queued: int = 0


class ControlMailbox:
    def __init__(self, config: Any, workflow: Workflow, planner: Any) -> None:
        self.address = config.helpdesk.control_address
        self.workflow = workflow
        self.planner = planner
        self.tz = ZoneInfo(config.helpdesk.timezone)
        self.max_lines = config.commands.max_report_lines
        self.max_file_bytes = config.outbound.notify_attachments_max_bytes
        self.tag = config.helpdesk.subject_tag
        self.domain = config.helpdesk.domain
        self.on_agent_reply = config.workflow.transitions.agent_reply
        self.tag_looks = config.tag_looks()

    def addressed(self, mail: ParsedMail) -> bool:
        """Does the mail name the control address, or an agent's signed ``control+<sig>@``
        form of it (To, Cc, Delivered-To)? A cheap scan."""
        local, _, domain = self.address.partition("@")
        for address in [*(a.email for a in (*mail.to, *mail.cc)), *mail.delivered_to]:
            mine, _, their_domain = address.lower().rpartition("@")
            if their_domain == domain and (mine == local or mine.startswith(local + "+")):
                return True
        return False

    def process(self, session: Session, *, mail: ParsedMail, kind: Classification, sender: Sender, forged: str,
                raw_id: int, now: datetime) -> ControlOutcome:
        if kind.kind is not Kind.NORMAL:
            return ControlOutcome("ignored", f"control address: {kind.kind.value} mail is not a command")
        if not sender.is_agent:
            why = f"control address: {sender.email} is not an agent" + (f" ({forged})" if forged else "")
            log.warning("%s refused: %s", mail.message_id, mask_text(why))
            return ControlOutcome("ignored", why)
        earlier = session.scalar(select(RawMail.id).where(RawMail.message_id_hash == header_hash(mail.message_id),
                                                          RawMail.message_id == mail.message_id,
                                                          RawMail.id != raw_id, RawMail.status == "processed"))
        if earlier is not None:
            return ControlOutcome("duplicate", "control mail already carried out")
        actor = self.workflow.agent_by_address(sender.email)
        assert actor is not None
        reads = CommandReads(session, self.tag_looks)
        sections: list[control.Section] = []
        changed: dict[int, list[Change]] = {}  # per ticket, in order: the history this mail wrote
        opened: dict[int, str] = {}  # tickets opened with `new`: their request text
        lines = control.command_lines(mail.subject, mail.body_text)[:200]
        for n, (line, extra) in enumerate(lines):
            result = control.run_line(line, extra, workflow=self.workflow, actor=actor, lookup=reads, now=now,
                                      tz=self.tz, max_lines=self.max_lines, max_file_bytes=self.max_file_bytes)
            section = result.sections[0]
            for _index, ticket_id, changes in result.changes:
                done = apply_ops(session, ticket_id, changes, actor=sender.email, message_id=mail.message_id,
                                 now=now)
                for tid, what, old, new in done.changes:
                    changed.setdefault(tid, []).append((what, old, new))
                section = replace(section, applied=(*section.applied, *(f"#{ticket_id}: {x}" for x in done.notes)))
            for ticket_id, (draft_pk, text) in result.sends:
                sent = self._send_draft(session, ticket_id, draft_pk, text, sender, mail, now)
                changed.setdefault(ticket_id, []).extend(sent)
            for _index, opening in result.new_tickets:
                ticket_id = self._open(session, opening, sender, mail, raw_id, n, now)
                opened[ticket_id] = opening.text
                changed.setdefault(ticket_id, [])
                section = replace(section, applied=(
                    *section.applied,
                    f"opened [{self.tag} #{ticket_id}]; write to the customer with that tag in the subject"))
            sections.append(section)
        if not sections:
            sections.append(control.EMPTY)
        applied = sum(len(s.applied) for s in sections)
        rejected = sum(len(s.rejected) for s in sections)
        queued = self._notify(session, changed, opened, sender, mail.message_id, now)
        queued += self.planner.control_report(session, mail=mail, sender=sender, sections=sections, now=now)
        log.info("%s control mail from %s: %d commands, %d done, %d rejected", mail.message_id, mask(sender.email),
                 len(sections), applied, rejected)
        return ControlOutcome("control", f"control: {len(sections)} command(s), {rejected} rejected", queued)

    def _notify(self, session: Session, changed: dict[int, list[Change]], opened: dict[int, str], sender: Sender,
                mail_id: str, now: datetime) -> int:
        """The trigger rules, once per ticket for everything this mail did to it (``assign 12
        bruno`` and ``close 12`` on two lines: one delivery set), after all lines ran."""
        queued = 0
        for ticket_id, changes in changed.items():
            events = [Event("ticket_created")] if ticket_id in opened else []
            events += change_events(changes, status=ticket_id not in opened)
            queued += self.planner.triggers.plan_changes(session, ticket_id, events, sender=sender, mail_id=mail_id,
                                                         now=now, text=opened.get(ticket_id, ""))
        return queued

    def _send_draft(self, session: Session, ticket_id: int, draft_pk: int, text: str, sender: Sender,
                    mail: ParsedMail, now: datetime) -> list[Change]:
        """``send 12``: the saved draft relayed to the customer as a reply in the agent's name
        would be, the draft released and the ticket moved as ``transitions.agent_reply`` says."""
        self.planner.send_draft(session, ticket_id=ticket_id, draft_pk=draft_pk, text=text, mail=mail,
                                sender=sender, now=now)
        changes: list[ops.Op] = [ops.ReleaseDraft(draft_pk), ops.DraftPending(False)]
        if self.on_agent_reply:
            changes.append(ops.SetStatus(self.on_agent_reply, "draft sent (control address)"))
        done = apply_ops(session, ticket_id, changes, actor=sender.email, message_id=mail.message_id, now=now)
        history.record(session, ticket_id, [EventSpec("reply", detail="agent reply relayed to the customer "
                                                                      "(the saved draft)")],
                       at=now, actor=sender.email, message_id=mail.message_id)
        return [(what, old, new) for _tid, what, old, new in done.changes]

    def _open(self, session: Session, new: ops.NewTicket, sender: Sender, mail: ParsedMail, raw_id: int, n: int,
              now: datetime) -> int:
        """``new customer@x "Subject"``: the ticket, the request text as its first message (a note)."""
        requester = repo.contact_id_for(session, new.requester, "", now)
        ticket_id = open_ticket(session, new, requester, actor=sender.email, message_id=mail.message_id, now=now)
        if new.text.strip():
            session.execute(insert(Message).values(
                ticket_id=ticket_id, direction="note", message_id=f"<maild-control.{raw_id}.{n}@{self.domain}>",
                from_addr=sender.email, from_name=sender.name[:200], subject=new.subject,
                body_text=new.text.strip("\n") + "\n", kind="normal", channel="control", author=sender.email,
                raw_id=raw_id, created_at=now))
        return ticket_id
