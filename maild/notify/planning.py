"""Trigger rules for one mail, inside its transaction (called by :mod:`maild.outbound.plan`).

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
from maild.ingest.decide import ACK, NOTIFY_NEW, NOTIFY_REPLY, RELAY, Action, Decision
from maild.ingest.identify import Sender
from maild.notify.deliver import Notifier
from maild.notify.engine import CUSTOMER, Delivery, Directory, Event, TicketFacts, resolve
from maild.notify.events import events_of
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
                elif sender.is_agent:  # a ticket an agent opened for the customer (control address)
                    rest.append(d)
                continue
            if d.person.kind != CUSTOMER and (
                    (d.event.name == "ticket_created" and NOTIFY_NEW not in whats and not sender.is_agent)
                    or (d.event.name == "customer_replied" and NOTIFY_REPLY not in whats)):
                continue  # outbound.notify_agents: false
            rest.append(d)
        if rest:
            variables = self.notifier.variables(facts, message, {"actor": sender.email, "actor_name": sender.name})
            variables.update(extra)
            queued += self.notifier.send(session, rest, facts, now, variables=variables, cause=mail_id,
                                         from_name=f"{sender.name or sender.email} via {self.name}")
        return queued
