"""Deliveries → outbox rows (e-mail) and SMS queue rows, in the caller's transaction.

Used by the ingest planner (for a mail's events) and by the scheduler (reminders,
re-announcements, auto-close). Nothing is sent here: rows are committed with the change
that caused them and the senders deliver them, with retries, off the ingest path.

Every automatic message passes :mod:`maild.outbound.policy`: no machine or own address,
no address that bounced permanently, the per-ticket and per-address caps, and for the
customer the contact's consent and the blocked flag. A message held back leaves a
``mail_held`` history event saying why.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy.orm import Session

from maild.config import Config
from maild.notify import agentcap, sms
from maild.notify.engine import AGENT, CUSTOMER, Delivery, TicketFacts
from maild.outbound import outbox, policy, templates
from maild.outbound.compose import MailAttachment, OutboundMail, references_for
from maild.outbound.files import NO_FILES
from maild.outbound.files import for_agents as files_for_agents
from maild.outbound.mailer import LAST_IN, AutoMailer
from maild.store.apply import StoredAttachment
from maild.threading.signing import Signer
from maild.store.locks import hold_until_commit

log = logging.getLogger("maild.notify")

NOTICE = "notice"  # outbox kind of an automatic mail to the customer (other than the ack)


@dataclass
class _AgentBatch:
    """One mail's notifications to several agents: their cap rows and outbox counts read in
    one go, their counters and outbox rows written in one go (:meth:`flush`), so the
    statements per mail do not grow with the number of agents."""

    recent: dict[str, policy.RecentMail]
    windows: dict[str, agentcap.Window]
    sent: dict[str, agentcap.Window] = field(default_factory=dict)  # counted, not yet written
    mails: list[tuple[OutboundMail, datetime, datetime]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    root: str | None = None

    def fresh(self, email: str) -> bool:
        """The first mail to ``email`` in this batch (what was read still holds)."""
        if email in self.used or email not in self.recent:
            return False
        self.used.add(email)
        return True

    def root_of(self, read: Callable[[], str]) -> str:
        if self.root is None:
            self.root = read()
        return self.root

    def flush(self, session: Session) -> None:
        agentcap.count_sent_many(session, [(a, w, 1) for a, w in self.sent.items()])
        outbox.enqueue_many(session, self.mails)
        self.sent, self.mails = {}, []
        self.recent, self.windows = {}, {}  # read again by whoever comes next


class Notifier(AutoMailer):
    """Built once from the Config; ``send`` runs per unit of work."""

    def __init__(self, config: Config, signer: Signer, renderer: templates.Renderer | None = None,
                 on_cap: Callable[[str], None] | None = None) -> None:
        super().__init__(config, signer, renderer, on_cap=on_cap)
        self.zone = ZoneInfo(config.helpdesk.timezone)
        self.sms = config.sms
        per_agent = config.outbound.limits.per_agent
        self.agent_cap = agentcap.AgentCap(per_agent.count, timedelta(minutes=per_agent.minutes))
        self.agent_caps = replace(self.caps, per_agent=per_agent.count)
        self.attach_limit = config.outbound.notify_attachments_max_bytes
        self.control = config.helpdesk.control_address or ""

    # -- variables -----------------------------------------------------------------
    def local(self, when: datetime | None) -> str:
        return when.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") if when else ""

    def variables(self, facts: TicketFacts, message: dict[str, str] | None = None,
                  event: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "helpdesk": self.helpdesk_vars,
            "ticket": {"id": facts.id, "subject": facts.subject, "status": facts.status,
                       "tag": f"[{self.tag} #{facts.id}]", "priority": facts.priority,
                       "category": facts.category or "", "subcategory": facts.subtype or "",
                       "assignee": facts.assignee or "", "tags": list(facts.tags),
                       "next_action_at": self.local(facts.next_action_at)},
            "customer": {"name": facts.requester_name, "email": facts.requester},
            "message": message or {"subject": facts.subject, "text": "", "from_name": "", "from_email": ""},
            "event": {"name": "", "old": "", "new": "", "actor": "", "actor_name": "", **(event or {})},
            "recipient": {"name": "", "email": ""},
            "files": NO_FILES.variables,
        }

    # -- sending -----------------------------------------------------------------------
    def send(self, session: Session, deliveries: Sequence[Delivery], facts: TicketFacts, now: datetime, *,
             variables: dict[str, Any], from_name: str | None = None, cause: str | None = None,
             files: Sequence[StoredAttachment] = ()) -> int:
        """Queue one message per delivery; return how many were queued. ``files``: stored
        attachments the agents' mails carry (or list, above the size limit)."""
        queued = 0
        agent_files = files_for_agents(files, self.attach_limit, self.control) if files else NO_FILES
        agents = list(dict.fromkeys(d.person.email for d in deliveries if d.channel != "sms" and d.person.kind != CUSTOMER))
        batch = _AgentBatch(outbox.agents_recent(session, agents, facts.id, self.windows, now),
                            agentcap.windows(session, agents, now, self.agent_cap)) if len(agents) > 1 else None
        try:
            queued += self._send(session, deliveries, facts, now, variables, from_name, cause, agent_files, batch)
        finally:
            if batch is not None:
                batch.flush(session)
        return queued

    def _send(self, session: Session, deliveries: Sequence[Delivery], facts: TicketFacts, now: datetime,
              variables: dict[str, Any], from_name: str | None, cause: str | None, agent_files: Any,
              batch: _AgentBatch | None) -> int:
        queued = 0
        for d in deliveries:
            v = {**variables, "recipient": {"name": d.person.name, "email": d.person.email},
                 "event": {**variables.get("event", {}), "name": d.event.name, "old": d.event.old or "",
                           "new": d.event.new or ""}}
            try:
                if d.channel == "sms":
                    queued += self._sms(session, d, facts, v, now, cause)
                elif d.person.kind == CUSTOMER:
                    queued += self._customer(session, d, facts, v, now, cause)
                else:
                    queued += self._agent(session, d, facts, {**v, "files": agent_files.variables}, now, cause,
                                          from_name, agent_files.attached, batch)
            except templates.TemplateError as exc:
                self.held(session, facts.id, f"{d.rule} to {d.person.email}", f"template: {exc}", cause, now)
        return queued

    def _agent(self, session: Session, d: Delivery, facts: TicketFacts, v: dict[str, Any], now: datetime,
               cause: str | None, from_name: str | None, attached: tuple[MailAttachment, ...] = (),
               batch: _AgentBatch | None = None) -> int:
        email = d.person.email
        if batch is not None and not batch.fresh(email):
            batch.flush(session)  # a second mail to the same agent reads what the first wrote
            batch = None
        verdict = self.gate(session, policy.Purpose.AGENT, email, facts.id, now,
                            recent=batch.recent[email] if batch else None)
        window: agentcap.Window | None = None
        if verdict.ok:  # the window's row is read (and locked) only for a mail the other rules let through
            window = batch.windows[email] if batch else agentcap.window(session, email, now, self.agent_cap)
            verdict = policy.may_send_automatic(policy.Purpose.AGENT, email,
                                                policy.RecentMail(agent_window=window.sent), own=self.own,
                                                caps=self.agent_caps, now=now)
            if verdict.summarize:
                self.on_cap(verdict.cap)
                self._summarize(session, d, facts, window, now)
                verdict = policy.Verdict(False, f"{verdict.reason}; in the summary at {self.local(window.end)}")
        if not verdict.ok or window is None:
            return self.held(session, facts.id, f"{d.rule} ({d.event.name})", verdict.reason, cause, now)
        if batch is None:
            agentcap.count_sent(session, email, window)
        else:
            batch.sent[email] = window
        rendered = self.renderer.render(d.template, v)
        root = batch.root_of(lambda: self.root(session, facts.id)) if batch else self.root(session, facts.id)
        out = self.mail("notify", "auto-generated", facts.id, rendered, to=(d.person.name, email),
                        from_name=from_name or self.name, now=now, root=root, attachments=attached)
        if batch is None:
            outbox.enqueue(session, out, now, now + self.lifetime)
        else:
            batch.mails.append((out, now, now + self.lifetime))
        return 1

    def _summarize(self, session: Session, d: Delivery, facts: TicketFacts, grant: agentcap.Window,
                   now: datetime) -> None:
        """Add a held notification to the agent's summary for this window (queued once, due at its end)."""
        detail = agentcap.record_held(session, d.person.email, grant, facts.id, facts.subject, grant.summary_id)
        v = {"helpdesk": self.helpdesk_vars, "tag": self.tag,
             "recipient": {"name": d.person.name, "email": d.person.email},
             "summary": {**agentcap.summary_variables(detail, grant.held + 1), "start": self.local(grant.start),
                         "end": self.local(grant.end)}}
        rendered = self.renderer.render(templates.AGENT_SUMMARY, v)
        if grant.summary_id is not None and outbox.update_queued(session, grant.summary_id, rendered.subject,
                                                                 rendered.body):
            return
        out = self.mail("summary", "auto-generated", None, rendered, to=(d.person.name, d.person.email), now=now)
        summary_id = outbox.enqueue_at(session, out, now, grant.end, grant.end + self.lifetime)
        agentcap.set_summary(session, d.person.email, grant.start, summary_id)

    def _customer(self, session: Session, d: Delivery, facts: TicketFacts, v: dict[str, Any], now: datetime,
                  cause: str | None) -> int:
        email = d.person.email
        verdict = self.gate(session, policy.Purpose.NOTICE, email, facts.id, now)
        if not verdict.ok:
            return self.held(session, facts.id, f"{d.rule} ({d.event.name})", verdict.reason, cause, now)
        rendered = self.renderer.render(d.template, v)
        last = session.connection().execute(LAST_IN, {"tid": facts.id}).first()
        out = self.mail(NOTICE, "auto-generated", facts.id, rendered, to=(d.person.name, email), now=now,
                        in_reply_to=last.message_id if last else "",
                        references=references_for(last.references, last.message_id) if last else "",
                        root=self.root(session, facts.id))
        self.enqueue_with_message(session, out, now, author=self.address, from_name=self.name)
        return 1

    def _sms(self, session: Session, d: Delivery, facts: TicketFacts, v: dict[str, Any], now: datetime,
             cause: str | None) -> int:
        what = f"{d.rule} SMS ({d.event.name})"
        if self.sms is None:
            return self.held(session, facts.id, what, "no sms: gateway configured", cause, now)
        phone = sms.normalize_phone(d.person.phone)
        if not phone:
            return self.held(session, facts.id, what, f"{d.person.email} has no phone number", cause, now)
        if d.person.kind == CUSTOMER:
            recent = outbox.recent(session, d.person.email, facts.id, self.windows, now)
            if not recent.consent or recent.blocked:
                return self.held(session, facts.id, what, f"{d.person.email} did not consent or is blocked",
                                 cause, now)
        hold_until_commit(session, f"sms:{phone}")  # another node's count waits for this one's
        count = sms.recent_count(session, phone, now - timedelta(minutes=self.windows.per_address))
        if count >= self.caps.per_address[0]:
            self.on_cap("sms_per_address")
            return self.held(session, facts.id, what, f"cap reached: {count} SMS to {phone}", cause, now)
        text = render_sms(self.renderer, d.template, v)
        sms.enqueue(session, ticket_id=facts.id, phone=phone, text=text, rule=d.rule, now=now,
                    expires_at=now + self.lifetime)
        return 1


def render_sms(renderer: templates.Renderer, name: str, variables: dict[str, Any]) -> str:
    """An SMS text: the template's ``sms`` block when it has one, else its subject line."""
    try:
        template = renderer.env.get_template(f"{renderer.language}/{name}.j2")
    except jinja2.TemplateNotFound as exc:
        raise templates.TemplateError(f"template {renderer.language}/{name}.j2 not found") from exc
    if "sms" in template.blocks:
        try:
            text = "".join(template.blocks["sms"](template.new_context(dict(variables))))
        except jinja2.UndefinedError as exc:
            raise templates.TemplateError(f"template {name}: {exc.message}") from exc
        return " ".join(text.split())
    return renderer.render(name, variables).subject


__all__ = ["AGENT", "CUSTOMER", "NOTICE", "Notifier", "render_sms"]
