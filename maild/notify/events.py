"""Which trigger events one mail's Decision causes. Pure.

- ``ticket_created``: the mail opened a ticket;
- ``customer_replied``: a customer's (non-automatic) mail on an existing ticket;
- ``agent_replied``: an agent's reply relayed to the customer;
- ``assigned``: a history event ``assigned``/``assignee`` whose ``new`` is the agent, or a
  command's ``SetField("assignee", agent)`` op;
- ``status_changed``: a history event ``status`` from one status to another.

The order matters: rules are read event by event, and a person already reached by an
earlier event's rule is not mailed again for a later one (a customer reply that also
moves the status gives the assignee one mail, the reply).
"""
from __future__ import annotations

from maild.ingest.decide import ACK, NOTIFY_NEW, NOTIFY_REPLY, RELAY, Action, Decision
from maild.notify.engine import Event

ASSIGN_KINDS = ("assigned", "assignee", "assign")


def events_of(decision: Decision, sender_is_agent: bool) -> list[Event]:
    events: list[Event] = []
    whats = {o.what for o in decision.outgoing}
    if decision.action is Action.CREATE:
        events.append(Event("ticket_created"))
    elif decision.action is Action.APPEND:
        if not sender_is_agent and decision.direction == "in" and (NOTIFY_REPLY in whats or _normal(decision)):
            events.append(Event("customer_replied"))
        if RELAY in whats:
            events.append(Event("agent_replied"))
    else:
        return events
    for spec in decision.events:
        if spec.kind in ASSIGN_KINDS and spec.new and spec.new != spec.old:
            events.append(Event("assigned", spec.old, spec.new))
    # Commands (/assign, /take, [assign=…]) carry their changes as ops (maild.commands.ops).
    for op in getattr(decision, "ops", ()):
        if getattr(op, "field", None) == "assignee" and getattr(op, "value", None):
            if not any(e.name == "assigned" for e in events):
                events.append(Event("assigned", None, str(op.value)))
    for spec in decision.events:
        if spec.kind == "status" and spec.new and spec.new != spec.old and decision.action is Action.APPEND:
            events.append(Event("status_changed", spec.old, spec.new))
    return events


def _normal(decision: Decision) -> bool:
    """A customer's own words (not an auto-reply or a bounce recorded on the ticket)."""
    return all(not r.startswith("class:") or r == "class:normal" for r in decision.rules)


# The intents that, before triggers, carried these notifications; the planner leaves
# them to the rules now (ACK = "the customer may be acknowledged", NOTIFY_* = "agents may
# be told" — outbound.acknowledge and outbound.notify_agents still switch them off).
TRIGGER_INTENTS = frozenset((ACK, NOTIFY_NEW, NOTIFY_REPLY))
