"""What happens to a ticket: a line of its history the store writes (:class:`EventSpec`),
and the events trigger rules listen to (:class:`TriggerEvent`), which the decide stage
emits and :func:`maild.notify.engine.deliveries` turns into deliveries."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class EventSpec:
    kind: str
    old: str | None = None
    new: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class TriggerEvent:
    """Something that happened to a ticket that trigger rules (``triggers:``) listen to:
    ``ticket_created``, ``customer_replied``, ``agent_replied``, ``assigned``,
    ``status_changed`` from a mail; ``reminder_due``, ``unaccepted`` from the scheduler."""

    name: str
    old: str | None = None  # status_changed: from; assigned: the previous assignee
    new: str | None = None  # status_changed: to; assigned: the new assignee


TICKET_CREATED, CUSTOMER_REPLIED, AGENT_REPLIED = "ticket_created", "customer_replied", "agent_replied"
ASSIGNED, STATUS_CHANGED = "assigned", "status_changed"
ASSIGN_KINDS = ("assigned", "assignee", "assign")

# A ticket history entry as (kind, old, new), e.g. ("status", "new", "closed").
Change = tuple[str, str | None, str | None]


def change_events(changes: Iterable[Change], *, status: bool = True) -> list[TriggerEvent]:
    """``assigned`` then ``status_changed`` from one unit of work's history entries on one
    ticket, each as its net change: ``close 12`` then ``reopen 12`` is one move, from the
    first old value to the last new one; back where it started is none. ``status=False``:
    a new ticket's status is part of ``ticket_created``."""
    first: dict[str, str | None] = {}
    last: dict[str, str | None] = {}
    for kind, old, new in changes:
        name = ASSIGNED if kind in ASSIGN_KINDS else STATUS_CHANGED if kind == "status" and status else None
        if name is not None:
            first.setdefault(name, old)
            last[name] = new
    return [TriggerEvent(name, first[name], last[name]) for name in (ASSIGNED, STATUS_CHANGED)
            if last.get(name) and last[name] != first[name]]
