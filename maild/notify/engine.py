"""Events + trigger rules + the outbound switches → one merged list of deliveries. Pure:
no session, no clock. :func:`deliveries` is the one place that decides who is told of
what (a mail's events, the control address's changes); :func:`resolve` alone serves the
scheduler's jobs. The caps are the outbound gate's, when each delivery is queued
(:func:`maild.outbound.policy.may_send_automatic`).

The rules are read in order, for each event in order (the events one mail or one
scheduler run caused). A person is reached at most once per channel per unit of work:
the first rule that names them decides the template, later ones are merged away — seed
001 complains that a manager in a team and in a subject alert gets the same mail twice.
The actor (whose mail caused the events) is never told about their own action — except
the customer's acknowledgement of the ticket their own mail opened.
The customer is a recipient only of a visible ticket; whether the contact consented and
is not blocked is the outbound policy's call when the message is queued (it records why).
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from maild.domain.events import CUSTOMER_REPLIED, TICKET_CREATED, TriggerEvent
from maild.notify.rules import Rule

CUSTOMER, AGENT, OTHER = "customer", "agent", "other"


@dataclass(frozen=True)
class TicketFacts:
    """What rules may look at, read in one query (:mod:`maild.notify.facts`)."""

    id: int
    subject: str
    status: str
    priority: str = "normal"
    type: str | None = None
    subtype: str | None = None
    category: str | None = None
    assignee: str | None = None
    visible: bool = True
    origin: str = ""
    next_action_at: datetime | None = None
    created_at: datetime | None = None
    requester: str = ""
    requester_name: str = ""
    requester_phone: str = ""
    consent: bool = True
    blocked: bool = False
    watchers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


Event = TriggerEvent  # the name the rules and the scheduler use


@dataclass(frozen=True)
class Person:
    email: str
    name: str = ""
    phone: str = ""
    kind: str = AGENT  # customer | agent | other


@dataclass(frozen=True)
class Delivery:
    event: Event
    rule: str
    channel: str  # email | sms
    template: str
    person: Person
    # The customer's acknowledgement of the ticket their own mail opened: an answer to that
    # mail (threaded on it, never to an automatic one), not a notice.
    acknowledges: bool = False


@dataclass(frozen=True)
class AgentInfo:
    email: str
    name: str
    addresses: tuple[str, ...]
    teams: tuple[str, ...] = ()
    manager: bool = False
    phone: str = ""


class Directory:
    """The agents from the config, looked up by address, name, team and role."""

    def __init__(self, agents: Iterable[AgentInfo]) -> None:
        self.agents = tuple(agents)
        self._by_address = {a: agent for agent in self.agents for a in agent.addresses}
        self._by_name = {agent.name.lower(): agent for agent in self.agents}

    @classmethod
    def from_config(cls, agents: Iterable[object]) -> Directory:
        return cls(AgentInfo(a.email, a.name, tuple(a.addresses), tuple(a.teams), a.role == "manager",  # type: ignore[attr-defined]
                             getattr(a, "phone", "") or "") for a in agents)

    def agent(self, key: str | None) -> AgentInfo | None:
        if not key:
            return None
        key = key.strip().lower()
        return self._by_address.get(key) or self._by_name.get(key)

    def person(self, address: str) -> Person:
        agent = self.agent(address)
        if agent:
            return Person(agent.email, agent.name, agent.phone, AGENT)
        return Person(address.strip().lower(), "", "", OTHER)


def matches(rule: Rule, event: Event, facts: TicketFacts) -> bool:
    if event.name not in rule.on:
        return False
    w = rule.when
    checks: list[tuple[list[str] | None, str | None]] = [
        (w.category, facts.category), (w.subcategory, facts.subtype), (w.type, facts.type),
        (w.priority, facts.priority), (w.status_from, event.old if event.name == "status_changed" else None),
        (w.status_to, event.new if event.name == "status_changed" else facts.status),
    ]
    for wanted, value in checks:
        if wanted is not None and (value is None or value.lower() not in {v.lower() for v in wanted}):
            return False
    if w.origin is not None and not any(facts.origin == o or facts.origin.startswith(o + ":") for o in w.origin):
        return False
    if w.visible is not None and w.visible != facts.visible:
        return False
    if w.tags is not None and not {t.lower() for t in w.tags} & {t.lower() for t in facts.tags}:
        return False
    return True


def _expand(token: str, rule: Rule, event: Event, facts: TicketFacts, directory: Directory) -> list[Person]:
    if token == "customer":
        # Consent and the blocked flag are checked when the message is queued (outbound
        # policy), which leaves a history event saying why nothing was sent.
        if not facts.visible or "@" not in facts.requester:
            return []
        return [Person(facts.requester, facts.requester_name, facts.requester_phone, CUSTOMER)]
    if token == "assignee":
        assignee = event.new if event.name == "assigned" and event.new else facts.assignee
        if assignee:
            return [directory.person(assignee)]
        return [p for t in rule.fallback for p in _expand(t, rule, event, facts, directory) if t != "assignee"]
    if token == "agents":
        return [Person(a.email, a.name, a.phone, AGENT) for a in directory.agents]
    if token == "managers":
        return [Person(a.email, a.name, a.phone, AGENT) for a in directory.agents if a.manager]
    if token == "watchers":
        return [directory.person(w) for w in facts.watchers]
    if token.startswith("team:"):
        team = token[5:]
        return [Person(a.email, a.name, a.phone, AGENT) for a in directory.agents if team in a.teams]
    agent = directory.agent(token)
    return [Person(agent.email, agent.name, agent.phone, AGENT)] if agent else []


def resolve(events: Sequence[Event], facts: TicketFacts, rules: Sequence[Rule], directory: Directory,
            actor: str | None) -> list[Delivery]:
    """The deliveries for these events, each (person, channel) once, the actor left out."""
    actor_agent = directory.agent(actor)
    skip = actor_agent.email if actor_agent else (actor or "").strip().lower()
    seen: set[tuple[str, str]] = set()
    out: list[Delivery] = []
    for event in events:
        for rule in rules:
            if not matches(rule, event, facts):
                continue
            for token in rule.to:
                for person in _expand(token, rule, event, facts, directory):
                    key = (person.email, rule.channel)
                    if key in seen or (person.email == skip and not _acknowledgement(event, person)):
                        continue
                    seen.add(key)
                    out.append(Delivery(event, rule.name, rule.channel, rule.template_for(event.name), person))
    return out


def _acknowledgement(event: Event, person: Person) -> bool:
    """The one exception to "not the actor": a customer hears that their request was opened
    (seed 001's "Novo Atendimento (Cliente)" confirms the customer's own request)."""
    return event.name == "ticket_created" and person.kind == CUSTOMER


def needs_recipients(rules: Sequence[Rule], events: Sequence[Event]) -> bool:
    """Whether any rule listens to any of these events (skip the ticket query otherwise)."""
    names = {e.name for e in events}
    return any(names.intersection(rule.on) for rule in rules)


@dataclass(frozen=True)
class Switches:
    """The outbound section's switches: ``acknowledge`` (the customer hears that their
    ticket was opened) and ``notify_agents`` (agents hear of new tickets and replies)."""

    acknowledge: bool = True
    notify_agents: bool = True


class Origin(enum.StrEnum):
    """Whose action the events are."""

    CUSTOMER_MAIL = "customer_mail"  # a mail from anyone not an agent (a forged agent included)
    AGENT_MAIL = "agent_mail"  # an agent's mail on a ticket
    CONTROL = "control"  # an agent's changes through the control address: no mail on the ticket


@dataclass(frozen=True)
class Cause:
    actor: str  # whose action it was: never told of it
    origin: Origin
    answerable: bool = True  # CUSTOMER_MAIL: the sender has an address an acknowledgement can go to
    relayed: bool = False  # the customer received an agent's reply in this same unit of work


def deliveries(events: Sequence[TriggerEvent], facts: TicketFacts, rules: Sequence[Rule], directory: Directory,
               switches: Switches, cause: Cause) -> list[Delivery]:
    """Who is told of these events, each (person, channel) once, in order.

    - ``notify_agents: false``: a customer's reply tells nobody; a new ticket tells no
      agent unless an agent opened it by mail;
    - ``ticket_created`` to the customer by e-mail: for the customer's own mail, the
      acknowledgement (``acknowledge`` and an answerable sender); for an agent's mail,
      a notice when the agent opened it for someone else; for the control address, a
      notice unless ``acknowledge: false``;
    - the customer who just received an agent's reply gets no notice on top.
    """
    if not switches.notify_agents:
        events = [e for e in events if e.name != CUSTOMER_REPLIED]
    out: list[Delivery] = []
    for d in resolve(events, facts, rules, directory, cause.actor):
        if cause.relayed and d.person.email == facts.requester:
            continue
        if d.event.name == TICKET_CREATED and d.person.kind == CUSTOMER and d.channel == "email":
            if cause.origin is Origin.CUSTOMER_MAIL:
                if switches.acknowledge and cause.answerable:
                    out.append(replace(d, acknowledges=True))
            elif cause.origin is Origin.AGENT_MAIL:
                if d.person.email != cause.actor:
                    out.append(d)
            elif switches.acknowledge:
                out.append(d)
            continue
        if (d.event.name == TICKET_CREATED and d.person.kind != CUSTOMER and not switches.notify_agents
                and cause.origin is not Origin.AGENT_MAIL):
            continue
        out.append(d)
    return out
