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
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from maild.config import Config
from maild.notify import sms
from maild.notify.engine import AGENT, CUSTOMER, Delivery, TicketFacts
from maild.outbound import outbox, policy, templates
from maild.outbound.compose import OutboundMail, address, references_for
from maild.store.models import Event as EventRow
from maild.store.repo import messages
from maild.threading.signing import Signer
from maild.threading.subject import find_tag

log = logging.getLogger("maild.notify")

NOTICE = "notice"  # outbox kind of an automatic mail to the customer (other than the ack)
_LAST_IN = (select(messages.c.message_id, messages.c.references).where(
    messages.c.ticket_id == bindparam("tid"), messages.c.direction == "in")
    .order_by(messages.c.id.desc()).limit(1))
_NEW_MESSAGE = insert(messages)
_NEW_EVENT = insert(EventRow.__table__)


class Notifier:
    """Built once from the Config; ``send`` runs per unit of work."""

    def __init__(self, config: Config, signer: Signer, renderer: templates.Renderer | None = None) -> None:
        helpdesk, out = config.helpdesk, config.outbound
        self.renderer = renderer or templates.Renderer(config.templates_path(), helpdesk.language)
        self.signer = signer
        self.own = frozenset([helpdesk.address, *helpdesk.extra_addresses])
        self.address = helpdesk.address
        self.name = out.from_name or helpdesk.name
        self.tag = helpdesk.subject_tag
        self.language = helpdesk.language
        self.zone = ZoneInfo(helpdesk.timezone)
        limits = out.limits
        self.caps = policy.Caps((limits.per_ticket.count, limits.per_ticket.minutes),
                                (limits.per_address.count, limits.per_address.minutes),
                                (limits.per_address_day.count, limits.per_address_day.minutes))
        self.windows = outbox.Windows(limits.per_ticket.minutes, limits.per_address.minutes,
                                      limits.per_address_day.minutes)
        self.lifetime = timedelta(hours=out.retry.give_up_hours)
        self.helpdesk_vars = {"name": helpdesk.name, "address": helpdesk.address}
        self.sms = config.sms  # type: ignore[attr-defined]

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
        }

    # -- sending -----------------------------------------------------------------------
    def send(self, session: Session, deliveries: Sequence[Delivery], facts: TicketFacts, now: datetime, *,
             variables: dict[str, Any], from_name: str | None = None, cause: str | None = None) -> int:
        """Queue one message per delivery; return how many were queued."""
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
                    queued += self._agent(session, d, facts, v, now, cause, from_name)
            except templates.TemplateError as exc:
                self.held(session, facts.id, f"{d.rule} to {d.person.email}", f"template: {exc}", cause, now)
        return queued

    def _agent(self, session: Session, d: Delivery, facts: TicketFacts, v: dict[str, Any], now: datetime,
               cause: str | None, from_name: str | None) -> int:
        email = d.person.email
        verdict = policy.recipient_allowed(email, self.own)
        if verdict.ok:
            recent = outbox.recent(session, email, None, self.windows, now)
            if recent.undeliverable_until is not None and recent.undeliverable_until > now:
                verdict = policy.Verdict(False, f"{email} bounced permanently")
        if not verdict.ok:
            return self.held(session, facts.id, f"{d.rule} ({d.event.name})", verdict.reason, cause, now)
        rendered = self.renderer.render(d.template, v)
        out = self.mail("notify", "auto-generated", facts.id, rendered, to=(d.person.name, email),
                        from_name=from_name or self.name, now=now)
        outbox.enqueue(session, out, now, now + self.lifetime)
        return 1

    def _customer(self, session: Session, d: Delivery, facts: TicketFacts, v: dict[str, Any], now: datetime,
                  cause: str | None) -> int:
        email = d.person.email
        verdict = policy.recipient_allowed(email, self.own)
        if verdict.ok:
            verdict = policy.within_caps(email, outbox.recent(session, email, facts.id, self.windows, now),
                                         self.caps, now)
        if not verdict.ok:
            return self.held(session, facts.id, f"{d.rule} ({d.event.name})", verdict.reason, cause, now)
        rendered = self.renderer.render(d.template, v)
        last = session.connection().execute(_LAST_IN, {"tid": facts.id}).first()
        out = self.mail(NOTICE, "auto-generated", facts.id, rendered, to=(d.person.name, email), now=now,
                        in_reply_to=last.message_id if last else "",
                        references=references_for(last.references, last.message_id) if last else "")
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
        count = sms.recent_count(session, phone, now - timedelta(minutes=self.windows.per_address))
        if count >= self.caps.per_address[0]:
            return self.held(session, facts.id, what, f"cap reached: {count} SMS to {phone}", cause, now)
        text = render_sms(self.renderer, d.template, v)
        sms.enqueue(session, ticket_id=facts.id, phone=phone, text=text, rule=d.rule, now=now,
                    expires_at=now + self.lifetime)
        return 1

    # -- helpers ---------------------------------------------------------------------------
    def mail(self, kind: str, auto_submitted: str, ticket_id: int | None, rendered: templates.Rendered, *,
             to: tuple[str, str], now: datetime, from_name: str | None = None, in_reply_to: str = "",
             references: str = "", attachments: tuple[Any, ...] = ()) -> OutboundMail:
        subject = rendered.subject
        reply_to = ""
        if ticket_id is not None:
            if find_tag(subject, self.tag) != ticket_id:  # an overridden template must not break threading
                subject = f"[{self.tag} #{ticket_id}] {subject}".strip()
            reply_to = address(self.name, self.signer.reply_address(ticket_id))
        extra = {"attachments": attachments} if attachments else {}
        return OutboundMail(
            kind=kind, automatic=True, ticket_id=ticket_id, message_id=self.signer.message_id(ticket_id or 0),
            envelope_from=self.address, recipients=(to[1],), from_header=address(from_name or self.name, self.address),
            to_header=address(*to), reply_to=reply_to, subject=subject, body_text=rendered.body, date=now,
            in_reply_to=in_reply_to, references=references, auto_submitted=auto_submitted, language=self.language,
            **extra)

    def enqueue_with_message(self, session: Session, out: OutboundMail, now: datetime, *, author: str,
                             from_name: str) -> None:
        """The outbox row and the ``out`` message the customer receives, on the ticket."""
        outbox.enqueue(session, out, now, now + self.lifetime)
        session.connection().execute(_NEW_MESSAGE, {
            "ticket_id": out.ticket_id, "direction": "out", "message_id": out.message_id,
            "in_reply_to": out.in_reply_to, "references": out.references, "from_addr": self.address,
            "from_name": from_name[:200], "to_addrs": out.recipients[0], "cc_addrs": out.cc_header,
            "subject": out.subject, "body_text": out.body_text, "body_html": None, "kind": out.kind,
            "channel": "outbox", "author": author, "raw_id": None, "sent_at": None, "created_at": now,
        })

    def held(self, session: Session, ticket_id: int, what: str, reason: str, cause: str | None,
             now: datetime) -> int:
        log.info("%s no %s on ticket %d: %s", cause or "scheduler", what, ticket_id, reason)
        session.connection().execute(_NEW_EVENT, [{
            "ticket_id": ticket_id, "at": now, "actor": "maild", "kind": "mail_held", "old": None, "new": what[:2000],
            "message_id": cause, "detail": reason[:2000]}])
        return 0


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
