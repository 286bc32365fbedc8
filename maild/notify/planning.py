"""Trigger rules for one mail, inside its transaction (called by :mod:`maild.outbound.plan`,
and per ticket by :mod:`maild.commands.mailbox` for what a control mail changed).

The mail's Decision names its events (:mod:`maild.notify.events`); the rules
(:mod:`maild.notify.engine`) turn them into one merged list of deliveries, and
:class:`~maild.notify.deliver.Notifier` queues them. The switches of the outbound
section still apply: ``outbound.acknowledge`` (the decision's ACK intent) gates the
customer's acknowledgement on ``ticket_created``, ``outbound.notify_agents`` (the
NOTIFY intents) gates agent mail on ``ticket_created`` and ``customer_replied``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maild.config import Config
from maild.domain.decision import ACK, NOTIFY_NEW, NOTIFY_REPLY, RELAY, Action, Decision
from maild.domain.sender import Sender
from maild.notify.deliver import Notifier
from maild.notify.engine import CUSTOMER, Delivery, Directory, Event, TicketFacts, resolve
from maild.notify.events import events_of
from maild.notify.facts import ticket_facts
from maild.outbound import templates
from maild.threading.signing import Signer

# ack(template) queues the acknowledgement to the customer the usual way (threaded on the
# customer's mail, loop rules); it returns how many rows it queued.
AckFn = Callable[[str], int]


class TriggerPlanner:
    def __init__(self, config: Config, signer: Signer, renderer: templates.Renderer) -> None:
        self.rules = config.trigger_rules()
        self.directory = Directory.from_config(config.agents)
        self.notifier = Notifier(config, signer, renderer)
        self.listens = frozenset(e for rule in self.rules for e in rule.on)
        self.name = config.outbound.from_name or config.helpdesk.name
        self.acknowledge = config.outbound.acknowledge
        self.notify_agents = config.outbound.notify_agents

    def events(self, decision: Decision, sender: Sender) -> list[Event]:
        """The events rules listen to; cheap, and empty for most mail that tells nobody."""
        if decision.action not in (Action.CREATE, Action.APPEND) or not self.listens:
            return []
        whats = {o.what for o in decision.outgoing}
        # Without NOTIFY_REPLY (outbound.notify_agents: false) a customer's reply tells nobody:
        # agents are switched off and the customer is the actor. No ticket query for it.
        return [e for e in events_of(decision, sender.is_agent) if e.name in self.listens
                and (e.name != "customer_replied" or NOTIFY_REPLY in whats)]

    def plan(self, session: Session, events: list[Event], *, decision: Decision, sender: Sender,
             facts: TicketFacts, message: dict[str, str], extra: dict[str, Any], mail_id: str, now: datetime,
             ack: AckFn) -> int:
        """``facts``: the ticket after this mail, read by the planner's own ticket query."""
        if not events:
            return 0
        deliveries = resolve(events, facts, self.rules, self.directory, sender.email)
        whats = {o.what for o in decision.outgoing}
        if RELAY in whats:  # the customer just got the agent's reply: no automatic notice on top
            deliveries = [d for d in deliveries if d.person.email != facts.requester]
        queued = 0
        rest: list[Delivery] = []
        for d in deliveries:
            if d.event.name == "ticket_created" and d.person.kind == CUSTOMER and d.channel == "email":
                if ACK in whats:
                    queued += ack(d.template)
                elif sender.is_agent and d.person.email != sender.email:
                    rest.append(d)  # an agent opened it for someone else: no customer mail to answer
                continue
            if d.person.kind != CUSTOMER and (
                    (d.event.name == "ticket_created" and NOTIFY_NEW not in whats and not sender.is_agent)
                    or (d.event.name == "customer_replied" and NOTIFY_REPLY not in whats)):
                continue  # outbound.notify_agents: false
            rest.append(d)
        return queued + self._send(session, rest, facts, sender, message, extra, mail_id, now)

    def plan_changes(self, session: Session, ticket_id: int, events: list[Event], *, sender: Sender,
                     mail_id: str, now: datetime, text: str = "") -> int:
        """Changes an agent made without a mail on the ticket (the control address): the
        events of one ticket, read against the ticket as it is now, as one merged delivery
        set with the agent left out. ``text``: a new ticket's request, for the agents only
        (it is an internal note). The customer's acknowledgement of a ticket opened for
        them goes through the notifier (consent, caps), as no mail of theirs is answered."""
        events = [e for e in events if e.name in self.listens]
        facts = ticket_facts(session, ticket_id) if events else None
        if facts is None:
            return 0
        deliveries = [d for d in resolve(events, facts, self.rules, self.directory, sender.email)
                      if not self._switched_off(d)]
        agents = [d for d in deliveries if d.person.kind != CUSTOMER]
        customer = [d for d in deliveries if d.person.kind == CUSTOMER]
        message = {"subject": facts.subject, "text": text.strip("\n"), "from_name": sender.name,
                   "from_email": sender.email}
        extra = {"listing": []}
        return self._send(session, customer, facts, sender, {**message, "text": ""}, extra, mail_id, now) + \
            self._send(session, agents, facts, sender, message, extra, mail_id, now)

    def _switched_off(self, d: Delivery) -> bool:
        """``outbound.acknowledge`` / ``outbound.notify_agents`` for events no mail decided."""
        if d.event.name != "ticket_created":
            return False
        if d.person.kind == CUSTOMER:
            return d.channel == "email" and not self.acknowledge
        return not self.notify_agents

    def _send(self, session: Session, deliveries: list[Delivery], facts: TicketFacts, sender: Sender,
              message: dict[str, str], extra: dict[str, Any], mail_id: str, now: datetime) -> int:
        if not deliveries:
            return 0
        variables = self.notifier.variables(facts, message, {"actor": sender.email, "actor_name": sender.name})
        variables.update(extra)
        return self.notifier.send(session, deliveries, facts, now, variables=variables, cause=mail_id,
                                  from_name=f"{sender.name or sender.email} via {self.name}")
