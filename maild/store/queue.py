"""Durable send queues (the outbox, the SMS queue): taking due rows for one sender.

Both tables share the columns this needs: ``state`` (queued | claimed | sent | failed),
``next_attempt_at``, ``claim_token``, ``claimed_at`` and ``attempts``.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def claim_due(session: Session, model: type[Row], token: str, now: datetime, stale_before: datetime,
              limit: int, *, orphaned: ColumnElement[bool] | None = None,
              retaken: Mapping[str, Any] | None = None) -> list[Row]:
    """Take up to ``limit`` due rows for this sender; a stale claim counts as due.

    A claim is stale when it is older than ``stale_before``, or, when ``orphaned`` is
    given, when that condition holds (its sender stopped beating). Rows taken from another
    claim get ``retaken`` too. ``FOR UPDATE SKIP LOCKED`` lets several senders on
    PostgreSQL share the queue; on SQLite the caller's ``BEGIN IMMEDIATE`` already makes
    this one writer at a time.
    """
    m: Any = model
    stale = m.claimed_at < stale_before if orphaned is None else orphaned
    due = or_(and_(m.state == "queued", m.next_attempt_at <= now), and_(m.state == "claimed", stale))
    ids = list(session.scalars(select(m.id).where(due).order_by(m.id).limit(limit).with_for_update(skip_locked=True)))
    if not ids:
        return []
    if retaken:
        session.execute(update(m).where(m.id.in_(ids), m.state == "claimed").values(**retaken))
    session.execute(update(m).where(m.id.in_(ids)).values(
        state="claimed", claim_token=token, claimed_at=now, attempts=m.attempts + 1))
    return list(session.scalars(select(m).where(m.id.in_(ids)).order_by(m.id)))
