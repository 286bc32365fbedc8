"""The one writer of ticket history: every ``events`` row maild writes goes through
:func:`record`, in the caller's transaction (never commits).

A history line says who (``actor``), when (``at``), through which mail (``message_id``)
and what: ``kind`` with ``old`` → ``new`` and a ``detail``. The values are
:class:`~maild.domain.events.EventSpec`, the same ones the decide stage emits. Free
text longer than :data:`LIMIT` is cut, so no caller's long reason (an SMTP answer, a
template error) can make the history write fail.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from maild.domain.events import EventSpec
from maild.store.models import Event

LIMIT = 2000  # characters of ``new`` and ``detail`` kept
ACTOR_LIMIT = 320  # the column's width (an address)
_INSERT = insert(Event.__table__)


def record(session: Session, ticket_id: int, entries: Iterable[EventSpec], *, at: datetime, actor: str,
           message_id: str | None = None) -> int:
    """Write these history lines on one ticket; return how many were written."""
    rows = [{"ticket_id": ticket_id, "at": at, "actor": actor[:ACTOR_LIMIT], "kind": e.kind, "old": e.old,
             "new": e.new[:LIMIT] if e.new is not None else None, "message_id": message_id,
             "detail": e.detail[:LIMIT]} for e in entries]
    if rows:
        session.connection().execute(_INSERT, rows)
    return len(rows)
