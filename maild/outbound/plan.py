"""From a Decision to outbox rows, inside the mail's transaction: its ``outgoing`` mails
(an agent's reply relayed, command feedback) and the deliveries its ``triggers`` come to
(:func:`maild.notify.engine.deliveries` decides who; the customer's acknowledgement,
which answers their mail, is queued here, the rest by :mod:`maild.notify.planning`).

For each mail: find the recipients (requester, Cc participants), ask the one gate
(:func:`maild.outbound.policy.may_send_automatic`) whether automatic mail may go there
(loop rules, bounces, caps), render the template, give the mail a signed Message-ID and Reply-To, and insert
the outbox row — plus a ``messages`` row (direction ``out``) for what the customer
receives, so the ticket shows the conversation as the customer sees it. A mail the rules
hold back leaves a history event saying why.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from maild import catalog
from maild.commands import phrases
from maild.config import Config
from maild.domain.decision import FEEDBACK, RELAY, Decision, Outgoing
from maild.domain.mail import Classification, Kind, ParsedMail
from maild.domain.sender import UNKNOWN_SENDER, Sender
from maild.logmask import mask, mask_text
from maild.notify import facts as notify_facts
from maild.notify.planning import TriggerPlanner
from maild.outbound import compose, outbox, policy, proof, templates
from maild.outbound.compose import OutboundMail, address, references_for
from maild.outbound.files import as_mail_attachment, not_kept, relayed_files
from maild.outbound.mailer import LAST_IN, AutoMailer
from maild.store import files as stored_files
from maild.store import references
from maild.store.apply import StoredAttachment
from maild.store.models import TicketRef
from maild.store.repo import participants, tickets
from maild.threading.signing import Signer
from maild.threading.subject import strip_prefixes, tagged

log = logging.getLogger("maild.outbound")

_REFS = TicketRef.__table__
# The ticket as the planner and the trigger rules see it (maild/notify/facts.py): one query.
_TICKET = (select(*notify_facts.COLUMNS,
                  select(func.count()).where(_REFS.c.ticket_id == tickets.c.id).scalar_subquery().label("refs"))
           .select_from(notify_facts.FROM)
           .where(tickets.c.id == bindparam("tid")))
_CC = select(participants.c.email).where(participants.c.ticket_id == bindparam("tid"),
                                         participants.c.role == "cc").order_by(participants.c.id)


@dataclass(frozen=True)
class _Ticket:
    id: int
    subject: str
    status: str
    assignee: str | None
    requester: str
    requester_name: str
    listing: tuple[dict[str, Any], ...] = ()  # catalog items linked to the ticket (``_listing.j2``)


class Planner(AutoMailer):
    """Built once from the Config (renderer and statements cached); ``plan`` runs per mail."""

    def __init__(self, config: Config, signer: Signer, own_addresses: frozenset[str],
                 on_cap: Callable[[str], None] | None = None) -> None:
        super().__init__(config, signer, own_addresses=own_addresses, on_cap=on_cap)
        helpdesk = config.helpdesk
        self.agents = {a.email: a for a in config.agents}
        self.agent_addresses = frozenset(config.agent_by_address())
        self.control_address = helpdesk.control_address
        self.triggers = TriggerPlanner(config, signer, self.renderer, on_cap)
        self.catalog = catalog.from_config(config)

    def plan(self, session: Session, *, decision: Decision, mail: ParsedMail, kind: Classification, sender: Sender,
             ticket_id: int | None, now: datetime, files: Sequence[StoredAttachment] = ()) -> int:
        """Enqueue the decision's outgoing mails; return how many rows were queued. ``files``:
        the mail's stored attachments (relayed with an agent's reply, sent on to agents)."""
        events = self.triggers.listened(decision.triggers)
        if (not decision.outgoing and not events) or ticket_id is None:
            return 0
        row = session.connection().execute(_TICKET, {"tid": ticket_id}).first()
        if row is None:
            return 0
        ticket = self._ticket(session, row)
        queued = 0
        for intent in decision.outgoing:
            if intent.what is RELAY:
                queued += self._relay(session, intent, mail, kind, sender, ticket, now, files)
            else:
                queued += self._feedback(session, intent, mail, kind, sender, ticket, now)
        if events:
            facts = notify_facts.of_row(row)
            found = self.triggers.for_mail(events, facts, sender,
                                           relayed=any(o.what is RELAY for o in decision.outgoing))
            for d in found:
                if d.acknowledges:  # answers the customer's mail: threaded on it, the loop rules apply
                    queued += self._ack(session, mail, kind, sender, ticket, now, d.template)
            base = self._vars(ticket, mail, sender)
            if decision.body is not None:  # what was stored: the text under an agent's commands
                base["message"]["text"] = decision.body.rstrip("\n")
            queued += self.triggers.send(
                session, [d for d in found if not d.acknowledges], facts=facts, sender=sender,
                message=base["message"],
                extra={k: v for k, v in base.items() if k not in ("helpdesk", "ticket", "customer", "message")},
                mail_id=mail.message_id, now=now, files=files)
        return queued

    # -- the kinds of mail -------------------------------------------------------------
    def _ack(self, session: Session, mail: ParsedMail, kind: Classification, sender: Sender, ticket: _Ticket,
             now: datetime, template: str = templates.ACKNOWLEDGEMENT) -> int:
        verdict = self.gate(session, policy.Purpose.ACKNOWLEDGE, sender.email, ticket.id, now, answering=policy.Answering(
            kind.kind, mail.null_reverse_path, from_agent=sender.email in self.agent_addresses))
        if not verdict.ok:
            return self.held(session, ticket.id, "acknowledgement", verdict.reason, mail.message_id, now)
        rendered = self.renderer.render(template, self._vars(ticket, mail, sender))
        out = self.mail(compose.ACK, "auto-replied", ticket.id, rendered, to=(sender.name, sender.email),
                        in_reply_to=mail.message_id, root=self.root(session, ticket.id),
                        references=references_for(" ".join(mail.references), mail.message_id), now=now)
        self.enqueue_with_message(session, out, now, author=self.address, from_name=self.name)
        return 1

    def _relay(self, session: Session, intent: Outgoing, mail: ParsedMail, kind: Classification, sender: Sender,
               ticket: _Ticket, now: datetime, files: Sequence[StoredAttachment] = ()) -> int:
        if ticket.requester == UNKNOWN_SENDER or "@" not in ticket.requester:
            return self._feedback(session, Outgoing(FEEDBACK, rejected=(
                "the ticket has no customer address; nothing was sent",)), mail, kind, sender, ticket, now)
        c = session.connection()
        cc = [e for e in c.execute(_CC, {"tid": ticket.id}).scalars()
              if e not in self.own and e not in self.agent_addresses and e != ticket.requester]
        cc = list(dict.fromkeys([*cc, *(e for e in intent.cc if e not in self.own and e != ticket.requester)]))
        last = c.execute(LAST_IN, {"tid": ticket.id}).first()
        agent = sender.agent
        variables = self._vars(ticket, mail, sender)
        variables["message"]["text"] = intent.text.rstrip("\n")
        variables["agent"] = {"name": agent.name if agent else sender.name}
        if intent.canned:  # /canned NAME: the standard answer, then whatever the agent wrote
            canned = self.renderer.render_text(f"canned/{intent.canned}", variables).strip("\n")
            variables["message"]["text"] = "\n\n".join(t for t in (canned, intent.text.strip("\n")) if t)
        # One signature: none of the template's when the agent signed the text themselves.
        variables["agent"]["signed"] = compose.signs_off(variables["message"]["text"], variables["agent"]["name"])
        rendered = self.renderer.render(templates.AGENT_REPLY, variables)
        from_name = f"{variables['agent']['name']} ({self.name})"
        kept = stored_files.of_message(session, intent.draft) if intent.draft is not None else []
        relayed = relayed_files([*kept, *files])
        out = self.mail(compose.REPLY, "", ticket.id, rendered, to=(ticket.requester_name, ticket.requester),
                        cc=tuple(cc), automatic=False, in_reply_to=last.message_id if last else "",
                         references=references_for(last.references, last.message_id) if last else "",
                         now=now, from_name=from_name, root=self.root(session, ticket.id),
                         attachments=tuple(as_mail_attachment(f) for f in relayed))
        self.enqueue_with_message(session, out, now, author=sender.email, from_name=from_name, files=relayed)
        dropped = not_kept(mail.attachments, files)
        if dropped:
            return 1 + self._feedback(session, Outgoing(FEEDBACK, rejected=tuple(dropped), sent=True), mail, kind,
                                      sender, ticket, now)
        return 1

    def _feedback(self, session: Session, intent: Outgoing, mail: ParsedMail, kind: Classification, sender: Sender,
                  ticket: _Ticket, now: datetime) -> int:
        # feedback is automatic mail: the same caps stop a loop between two robots
        verdict = self.gate(session, policy.Purpose.ANSWER, sender.email, ticket.id, now,
                            answering=policy.Answering(kind.kind, mail.null_reverse_path))
        if not verdict.ok:
            return self.held(session, ticket.id, "command feedback", verdict.reason, mail.message_id, now)
        variables = self._vars(ticket, mail, sender)
        variables["feedback"] = {"subject": strip_prefixes(mail.subject) or tagged(ticket.subject, self.tag, ticket.id),
                                 "applied": self._said(intent.applied), "rejected": self._said(intent.rejected),
                                 "sent": intent.sent, "notes": list(intent.notes)}
        rendered = self.renderer.render(templates.COMMAND_FEEDBACK, variables)
        out = self.mail(compose.FEEDBACK, "auto-replied", ticket.id, rendered, to=(sender.name, sender.email),
                        in_reply_to=mail.message_id, root=self.root(session, ticket.id),
                        references=references_for(" ".join(mail.references), mail.message_id), now=now)
        outbox.enqueue(session, out, now, now + self.lifetime)
        return 1

    # -- commands (maild/commands/) ---------------------------------------------------------
    def canned_names(self) -> frozenset[str]:
        """The standard answers ``/canned NAME`` may name (``templates/<language>/canned/``)."""
        return self.renderer.names("canned")

    def control_report(self, session: Session, *, mail: ParsedMail, sender: Sender, sections: list[Any],
                       now: datetime) -> int:
        """The report answering a control-address mail: to the agent, loop-protected and capped."""
        verdict = self.gate(session, policy.Purpose.ANSWER, sender.email, None, now,
                            answering=policy.Answering(Kind.NORMAL, mail.null_reverse_path))
        if not verdict.ok:
            log.info("%s no control report to %s: %s", mail.message_id, mask(sender.email), mask_text(verdict.reason))
            return 0
        rendered = self.renderer.render(templates.CONTROL_REPORT, {
            "helpdesk": self.helpdesk_vars,
            "report": {"subject": strip_prefixes(mail.subject), "sections": [
                {"command": s.command, "applied": self._said(s.applied), "rejected": self._said(s.rejected),
                 "output": self._said(s.output)} for s in sections],
                "rejected": any(s.rejected for s in sections)},
        })
        control = self.control_address or self.address
        agent = self.agent_of.get(sender.email)
        reply_to = self.signer.agent_control_address(control, agent) if agent and self.control_address else control
        out = OutboundMail(
            kind=compose.FEEDBACK, automatic=True, ticket_id=None, message_id=self.signer.message_id(0),
            envelope_from=self.address, recipients=(sender.email,), from_header=address(self.name, control),
            to_header=address(sender.name, sender.email), subject=rendered.subject, body_text=rendered.body,
            date=now, in_reply_to=mail.message_id,
            references=references_for(" ".join(mail.references), mail.message_id), reply_to=reply_to,
            auto_submitted="auto-replied", language=self.language,
            attachments=tuple(as_mail_attachment(f) for s in sections for f in s.files))
        outbox.enqueue(session, out, now, now + self.lifetime)
        return 1

    def proof_notice(self, session: Session, *, agent: Any, ticket_id: int | None, mail: ParsedMail, reason: str,
                     now: datetime) -> int:
        """Tell the real agent that a mail in their name carried no proof (:mod:`maild.outbound.proof`)."""
        return proof.queue_notice(self, session, agent=agent, ticket_id=ticket_id, mail=mail, reason=reason,
                                  control=self.control_address, now=now)

    def send_draft(self, session: Session, *, ticket_id: int, draft_pk: int, text: str, mail: ParsedMail,
                   sender: Sender, now: datetime) -> int:
        """``send 12`` at the control address: the saved draft and its files, relayed as the agent's reply."""
        row = session.connection().execute(_TICKET, {"tid": ticket_id}).first()
        if row is None:
            return 0
        return self._relay(session, Outgoing(RELAY, text=text, draft=draft_pk), mail, Classification(Kind.NORMAL),
                           sender, self._ticket(session, row), now)

    # -- helpers ---------------------------------------------------------------------------
    def _ticket(self, session: Session, row: Any) -> _Ticket:
        listing = tuple(item.as_vars() for item in self.catalog.listing(references.of_ticket(session, row.id))
                        ) if row.refs else ()
        return _Ticket(row.id, row.subject, row.status, row.assignee, row.email, row.name, listing)

    def _said(self, lines: Any) -> list[str]:
        """maild's own lines (feedback, reports) in the helpdesk's language."""
        return [phrases.say(line, self.language, self.labels) for line in lines]

    def _vars(self, ticket: _Ticket, mail: ParsedMail, sender: Sender) -> dict[str, Any]:
        return {
            "helpdesk": self.helpdesk_vars,
            "ticket": {"id": ticket.id, "subject": ticket.subject, "status": ticket.status,
                       "tag": f"[{self.tag} #{ticket.id}]"},
            "customer": {"name": ticket.requester_name, "email": ticket.requester},
            "message": {"subject": mail.subject, "text": mail.body_text.rstrip("\n"), "from_name": sender.name,
                        "from_email": sender.email},
            "listing": [dict(item) for item in ticket.listing],
        }

