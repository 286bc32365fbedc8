"""The per-agent cap's store: past ``outbound.limits.per_agent.count`` notifications in a
window, an agent gets one summary at the window's end instead of one mail each. Whether
a notification is held is the outbound gate's call
(:func:`maild.outbound.policy.may_send_automatic`, from :attr:`Window.sent`); this module
reads and counts the window and keeps the held list.

Windows are fixed (aligned on the epoch), so each (agent, window) is one
``notify_counters`` row: the check reads and updates that one row, whatever the agent
received before — a flood costs the same per mail at the 2,000th as at the first. A held
notification adds its ticket to the row's ``detail`` (at most ``LISTED`` tickets by name,
the rest counted), and the summary mail is queued once per window, due at its end, and
rewritten while the window lasts; the sender takes it when it falls due.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from maild.store.models import NotifyCounter

counters = NotifyCounter.__table__
LISTED = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class AgentCap:
    count: int
    window: timedelta


@dataclass(frozen=True)
class Window:
    """One agent's current window as stored (``stored`` False: no row yet)."""

    start: datetime
    end: datetime
    sent: int
    held: int
    summary_id: int | None
    detail: dict[str, object]
    stored: bool = True


def window_of(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    size = window.total_seconds()
    start = _EPOCH + timedelta(seconds=(now - _EPOCH).total_seconds() // size * size)
    return start, start + window


def window(session: Session, address: str, now: datetime, cap: AgentCap) -> Window:
    """The agent's current window, its row locked until the transaction ends (two
    writers counting the same agent take turns)."""
    start, end = window_of(now, cap.window)
    row = session.execute(select(counters.c.sent, counters.c.held, counters.c.summary_id, counters.c.detail)
                          .where(counters.c.address == address, counters.c.window_start == start)
                          .with_for_update()).first()
    if row is None:
        return Window(start, end, 0, 0, None, {"tickets": {}, "more": 0}, stored=False)
    detail = json.loads(row.detail) if row.detail else {"tickets": {}, "more": 0}
    return Window(start, end, row.sent, row.held, row.summary_id, detail)


def windows(session: Session, addresses: Sequence[str], now: datetime, cap: AgentCap) -> dict[str, Window]:
    """:func:`window` for several agents in one statement (their rows locked in address order)."""
    start, end = window_of(now, cap.window)
    rows = session.execute(select(counters.c.address, counters.c.sent, counters.c.held, counters.c.summary_id,
                                  counters.c.detail)
                           .where(counters.c.address.in_(addresses), counters.c.window_start == start)
                           .order_by(counters.c.address).with_for_update()).all()
    found = {row.address: Window(start, end, row.sent, row.held, row.summary_id,
                                 json.loads(row.detail) if row.detail else {"tickets": {}, "more": 0})
             for row in rows}
    return {a: found.get(a) or Window(start, end, 0, 0, None, {"tickets": {}, "more": 0}, stored=False)
            for a in addresses}


def count_sent_many(session: Session, counts: Sequence[tuple[str, Window, int]]) -> None:
    """``n`` more notifications sent to each address in its window: one INSERT for the
    windows without a row, one UPDATE for the others."""
    new = [{"address": a, "window_start": w.start, "sent": n, "held": 0, "summary_id": None, "detail": ""}
           for a, w, n in counts if not w.stored]
    old = [{"a": a, "start": w.start, "n": n} for a, w, n in counts if w.stored]
    if new:
        session.execute(insert(counters), new)
    if old:
        session.connection().execute(
            update(counters).where(counters.c.address == bindparam("a"), counters.c.window_start == bindparam("start"))
            .values(sent=counters.c.sent + bindparam("n")), old)


def count_sent(session: Session, address: str, w: Window) -> None:
    """One more notification sent to ``address`` in this window."""
    if not w.stored:
        session.execute(insert(counters).values(address=address, window_start=w.start, sent=1, held=0,
                                                summary_id=None, detail=""))
    else:
        session.execute(update(counters).where(counters.c.address == address, counters.c.window_start == w.start)
                        .values(sent=counters.c.sent + 1))


def record_held(session: Session, address: str, w: Window, ticket_id: int, subject: str,
                summary_id: int | None) -> dict[str, object]:
    """Add a held notification to the window's list (``w.held`` + 1 held); returns the list
    the summary shows."""
    detail = w.detail
    tickets: dict[str, list[object]] = detail.setdefault("tickets", {})  # type: ignore[assignment]
    key = str(ticket_id)
    if key in tickets:
        tickets[key][0] = int(tickets[key][0]) + 1  # type: ignore[call-overload]
    elif len(tickets) < LISTED:
        tickets[key] = [1, subject[:200]]
    else:
        detail["more"] = int(detail.get("more", 0)) + 1  # type: ignore[call-overload]
    session.execute(update(counters).where(counters.c.address == address, counters.c.window_start == w.start)
                    .values(held=w.held + 1, summary_id=summary_id, detail=json.dumps(detail, ensure_ascii=False)))
    return detail


def summary_variables(detail: dict[str, object], held: int) -> dict[str, object]:
    tickets = detail.get("tickets")
    listed = [{"id": int(k), "count": v[0], "subject": v[1]} for k, v in tickets.items()] \
        if isinstance(tickets, dict) else []
    return {"held": held, "tickets": listed, "more": detail.get("more", 0)}


def set_summary(session: Session, address: str, start: datetime, summary_id: int) -> None:
    session.execute(update(counters).where(counters.c.address == address, counters.c.window_start == start)
                    .values(summary_id=summary_id))
