"""Notifications for one unit of work, inside its transaction: a mail's events (called by
:mod:`maild.outbound.plan`) and, per ticket, what a control mail changed
(:mod:`maild.commands.mailbox`).

Who is told is decided once, by :func:`maild.notify.engine.deliveries` (events, rules,
the ``outbound.acknowledge`` / ``outbound.notify_agents`` switches); this module reads
the ticket, renders and queues what it returns (:class:`~maild.notify.deliver.Notifier`,
which passes each one through the outbound gate). The customer's acknowledgement answers
their mail, so :mod:`maild.outbound.plan` queues those deliveries itself.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maild.config import Config
from maild.domain.events import TriggerEvent
from maild.domain.sender import Sender
from maild.notify.deliver import Notifier
from maild.notify.engine import CUSTOMER, Cause, Delivery, Directory, Origin, Switches, TicketFacts, deliveries
from maild.notify.facts import ticket_facts
from maild.outbound import templates
from maild.store.apply import StoredAttachment
from maild.threading.signing import Signer


class TriggerPlanner:
    def __init__(self, config: Config, signer: Signer, renderer: templates.Renderer,
                 on_cap: Callable[[str], None] | None = None) -> None:
        self.rules = config.trigger_rules()
        self.directory = Directory.from_config(config.agents)
        self.notifier = Notifier(config, signer, renderer, on_cap)
        self.listens = frozenset(e for rule in self.rules for e in rule.on)
        self.name = config.outbound.from_name or config.helpdesk.name
        out = config.outbound
        # A mail's agent notifications need agents to exist; the control address has one.
        self.mail_switches = Switches(out.acknowledge, out.notify_agents and bool(config.agents))
        self.control_switches = Switches(out.acknowledge, out.notify_agents)

    def listened(self, events: Sequence[TriggerEvent]) -> list[TriggerEvent]:
        """The events some rule listens to; empty for most mail, which then costs no ticket query."""
        return [e for e in events if e.name in self.listens]

    def for_mail(self, events: Sequence[TriggerEvent], facts: TicketFacts, sender: Sender,
                 relayed: bool) -> list[Delivery]:
        """Who hears of a mail's events (``facts``: the ticket after the mail)."""
        origin = Origin.AGENT_MAIL if sender.is_agent else Origin.CUSTOMER_MAIL
        return deliveries(events, facts, self.rules, self.directory, self.mail_switches,
                          Cause(sender.email, origin, answerable=sender.is_known, relayed=relayed))

    def send(self, session: Session, deliveries: list[Delivery], *, facts: TicketFacts, sender: Sender,
             message: dict[str, str], extra: dict[str, Any], mail_id: str, now: datetime,
             files: Sequence[StoredAttachment] = ()) -> int:
        """Render and queue these deliveries (none of them an acknowledgement); ``files``: the
        mail's stored attachments, for the agents."""
        return self._send(session, deliveries, facts, sender, message, extra, mail_id, now, files)

    def plan_changes(self, session: Session, ticket_id: int, events: list[TriggerEvent], *, sender: Sender,
                     mail_id: str | None, now: datetime, text: str = "") -> int:
        """Changes an agent made without a mail on the ticket (the control address, the
        bulk ``maild tickets close|assign``; ``mail_id`` None: no mail caused them): the
        events of one ticket, read against the ticket as it is now, as one merged delivery
        set with the agent left out. ``text``: a new ticket's request, for the agents only
        (it is an internal note). The customer's notice of a ticket opened for them goes
        through the notifier (consent, caps), as no mail of theirs is answered."""
        events = self.listened(events)
        facts = ticket_facts(session, ticket_id) if events else None
        if facts is None:
            return 0
        found = deliveries(events, facts, self.rules, self.directory, self.control_switches,
                           Cause(sender.email, Origin.CONTROL))
        agents = [d for d in found if d.person.kind != CUSTOMER]
        customer = [d for d in found if d.person.kind == CUSTOMER]
        message = {"subject": facts.subject, "text": text.strip("\n"), "from_name": sender.name,
                   "from_email": sender.email}
        extra: dict[str, Any] = {"listing": []}
        return self._send(session, customer, facts, sender, {**message, "text": ""}, extra, mail_id, now) + \
            self._send(session, agents, facts, sender, message, extra, mail_id, now)

    def _send(self, session: Session, deliveries: list[Delivery], facts: TicketFacts, sender: Sender,
              message: dict[str, str], extra: dict[str, Any], mail_id: str | None, now: datetime,
              files: Sequence[StoredAttachment] = ()) -> int:
        if not deliveries:
            return 0
        variables = self.notifier.variables(facts, message, {"actor": sender.email, "actor_name": sender.name})
        variables.update(extra)
        return self.notifier.send(session, deliveries, facts, now, variables=variables, cause=mail_id,
                                  from_name=f"{sender.name or sender.email} via {self.name}", files=files)
