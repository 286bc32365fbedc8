"""Which trigger events one mail's Decision causes. Pure.

- ``ticket_created``: the mail opened a ticket;
- ``customer_replied``: a customer's (non-automatic) mail on an existing ticket;
- ``agent_replied``: an agent's reply relayed to the customer;
- ``assigned``: a history event ``assigned``/``assignee`` whose ``new`` is the agent, or a
  command's ``SetField("assignee", agent)`` op;
- ``status_changed``: a history event ``status`` from one status to another.

:func:`change_events` derives the last two from a ticket's history entries; the control
address uses it for the changes it writes (:mod:`maild.commands.mailbox`).

The order matters: rules are read event by event, and a person already reached by an
earlier event's rule is not mailed again for a later one (a customer reply that also
moves the status gives the assignee one mail, the reply).
"""
from __future__ import annotations

from collections.abc import Iterable

from maild.domain.decision import ACK, NOTIFY_NEW, NOTIFY_REPLY, RELAY, Action, Decision
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
    changes: list[Change] = [(spec.kind, spec.old, spec.new) for spec in decision.events]
    # Commands (/assign, /take, [assign=…]) carry their changes as ops (maild.domain.ops).
    changes += [("assignee", None, str(op.value)) for op in getattr(decision, "ops", ())
                if getattr(op, "field", None) == "assignee" and getattr(op, "value", None)]
    return events + change_events(changes, status=decision.action is Action.APPEND)


# A ticket history entry as (kind, old, new), e.g. ("status", "new", "closed").
Change = tuple[str, str | None, str | None]


def change_events(changes: Iterable[Change], *, status: bool = True) -> list[Event]:
    """``assigned`` then ``status_changed`` from one unit of work's history entries on one
    ticket, each as its net change: ``close 12`` then ``reopen 12`` is one move, from the
    first old value to the last new one; back where it started is none. ``status=False``:
    a new ticket's status is part of ``ticket_created``."""
    first: dict[str, str | None] = {}
    last: dict[str, str | None] = {}
    for kind, old, new in changes:
        name = "assigned" if kind in ASSIGN_KINDS else "status_changed" if kind == "status" and status else None
        if name is not None:
            first.setdefault(name, old)
            last[name] = new
    return [Event(name, first[name], last[name]) for name in ("assigned", "status_changed")
            if last.get(name) and last[name] != first[name]]


def _normal(decision: Decision) -> bool:
    """A customer's own words (not an auto-reply or a bounce recorded on the ticket)."""
    return all(not r.startswith("class:") or r == "class:normal" for r in decision.rules)


# The intents that, before triggers, carried these notifications; the planner leaves
# them to the rules now (ACK = "the customer may be acknowledged", NOTIFY_* = "agents may
# be told" — outbound.acknowledge and outbound.notify_agents still switch them off).
TRIGGER_INTENTS = frozenset((ACK, NOTIFY_NEW, NOTIFY_REPLY))
