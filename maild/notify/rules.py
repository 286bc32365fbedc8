"""The ``triggers:`` section: which event, under which conditions, tells whom, how.

A rule (seed 001's "gatilhos de notificação")::

    - name: agents_new_ticket
      on: ticket_created                # or a list of events
      when: {visible: true, category: [Vendas], tags: [vip]}
      to: [assignee, watchers]          # customer | assignee | agents | managers | team:NAME
                                        # | watchers | an agent's address or name
      fallback: [agents]                # stands in for `assignee` on an unassigned ticket
      channel: email                    # email | sms
      template: notify_new_ticket        # or per event: {ticket_created: notify_new_ticket,
                                         #                customer_replied: notify_customer_reply}

Conditions are all-of; a list in a condition is any-of. A rule listing several events speaks
of the event that happened: with no template, or with one that is another listed event's
own template (``notify_new_ticket`` on a rule also ``on: customer_replied``), each event
uses its own template — a customer's reply is never announced as a new ticket. A template
of the admin's own serves every listed event (it can read ``event.name``). With no ``triggers:`` key the
:data:`DEFAULT_TRIGGERS` apply (the embedded ``config/maild.yaml`` spells them out).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EVENTS = ("ticket_created", "customer_replied", "agent_replied", "status_changed", "assigned", "reminder_due",
          "unaccepted")
EventName = Literal["ticket_created", "customer_replied", "agent_replied", "status_changed", "assigned",
                    "reminder_due", "unaccepted"]
KEYWORDS = ("customer", "assignee", "agents", "managers", "watchers")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    if value is None:
        return None
    return [value] if isinstance(value, (str, bool)) else value


class Conditions(_Strict):
    category: list[str] | None = None
    subcategory: list[str] | None = None  # the ticket's subtype (seed 001's "subassunto")
    type: list[str] | None = None
    visible: bool | None = None
    origin: list[str] | None = None  # smtp | imap | pipe | form:<name> | control …
    priority: list[str] | None = None
    tags: list[str] | None = None  # the ticket has at least one of these
    status_from: list[str] | None = None
    status_to: list[str] | None = None

    @field_validator("category", "subcategory", "type", "origin", "priority", "tags", "status_from", "status_to",
                     mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)


class Rule(_Strict):
    name: str = ""
    on: list[EventName]
    when: Conditions = Conditions()
    to: list[str] = Field(min_length=1)
    fallback: list[str] = []
    channel: Literal["email", "sms"] = "email"
    template: str | dict[EventName, str] = ""  # default: the event's own template (TEMPLATE_FOR)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("on", "to", "fallback", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value) or []

    @field_validator("to", "fallback")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        for one in value:
            if not one.strip():
                raise ValueError("an empty recipient")
            if one.startswith("team:") and not one[5:].strip():
                raise ValueError("team: needs a team name, e.g. team:vendas")
        return [v.strip() for v in value]

    @model_validator(mode="after")
    def _named(self) -> Rule:
        if not self.name:
            object.__setattr__(self, "name", f"{'+'.join(self.on)}->{','.join(self.to)}")
        return self

    def template_for(self, event: str) -> str:
        """The template for ``event``, which happened (one of ``on``)."""
        own = TEMPLATE_FOR[event]
        if isinstance(self.template, dict):
            return {str(name): t for name, t in self.template.items()}.get(event, own)
        if not self.template:
            return own
        others = {TEMPLATE_FOR[e] for e in self.on if e != event}
        return own if self.template in others else self.template


# The template an event uses when a rule names none.
TEMPLATE_FOR = {
    "ticket_created": "notify_new_ticket",
    "customer_replied": "notify_customer_reply",
    "agent_replied": "notify_agent_reply",
    "status_changed": "notify_status_changed",
    "assigned": "notify_assigned",
    "reminder_due": "reminder",
    "unaccepted": "notify_unaccepted",
}

# Seed 001's list, as maild's out-of-the-box behaviour. config/maild.yaml repeats it
# (a test keeps the two equal); docs/SCHEDULER.md explains each line.
DEFAULT_TRIGGERS_DATA: list[dict[str, Any]] = [
    # "Novo Atendimento (Cliente)": the customer's acknowledgement, only for a visible ticket.
    {"name": "customer_new_ticket", "on": "ticket_created", "when": {"visible": True}, "to": ["customer"],
     "template": "acknowledgement"},
    # "Novo Atendimento Interno - Não visto pelo cliente (gestor)".
    {"name": "managers_internal_ticket", "on": "ticket_created", "when": {"visible": False}, "to": ["managers"],
     "template": "notify_new_ticket"},
    # "Novo Atendimento Público (Gestor)": the assignee, else every agent (seed 002's inbox).
    {"name": "agents_new_ticket", "on": "ticket_created", "when": {"visible": True}, "to": ["assignee"],
     "fallback": ["agents"], "template": "notify_new_ticket"},
    # "Resposta de Atendimento (Gestor)": the customer wrote again.
    {"name": "customer_replied", "on": "customer_replied", "to": ["assignee", "watchers"], "fallback": ["agents"],
     "template": "notify_customer_reply"},
    # An agent answered: the assignee and the watchers hear of it (not the one who wrote).
    {"name": "agent_replied", "on": "agent_replied", "to": ["assignee", "watchers"],
     "template": "notify_agent_reply"},
    # "Gatilho Baseado em Ação do Workflow": a status change.
    {"name": "status_changed", "on": "status_changed", "to": ["assignee", "watchers"],
     "template": "notify_status_changed"},
    {"name": "assigned", "on": "assigned", "to": ["assignee"], "template": "notify_assigned"},
    # The next-action reminder (seed 003): the assignee, else the managers.
    {"name": "reminder_due", "on": "reminder_due", "to": ["assignee", "watchers"], "fallback": ["managers"],
     "template": "reminder"},
    # Seed 002's inbox: a new ticket nobody took is announced again.
    {"name": "unaccepted", "on": "unaccepted", "to": ["agents"], "template": "notify_unaccepted"},
]
DEFAULT_TRIGGERS: tuple[Rule, ...] = tuple(Rule.model_validate(r) for r in DEFAULT_TRIGGERS_DATA)


def check_rules(rules: list[Rule] | None, agents: list[Any], sms_configured: bool) -> None:
    """Every named agent and team exists; SMS rules need a gateway. Raises ValueError."""
    if not rules:
        return
    addresses = {a for agent in agents for a in agent.addresses}
    names = {agent.name.lower() for agent in agents}
    teams = {team for agent in agents for team in agent.teams}
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"trigger name {rule.name!r} is used twice")
        seen.add(rule.name)
        for one in (*rule.to, *rule.fallback):
            if one in KEYWORDS:
                continue
            if one.startswith("team:"):
                if one[5:] not in teams:
                    raise ValueError(f"trigger {rule.name}: no agent is in team {one[5:]!r}")
            elif one.lower() not in addresses and one.lower() not in names:
                raise ValueError(f"trigger {rule.name}: {one!r} is neither a keyword ({', '.join(KEYWORDS)}, "
                                 "team:NAME) nor an agent's address or name")
        if rule.channel == "sms" and not sms_configured:
            raise ValueError(f"trigger {rule.name} sends SMS, but there is no sms: gateway section")
