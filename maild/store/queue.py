"""Durable send queues (the outbox, the SMS queue): taking due rows for one sender.

Both tables share the columns this needs: ``state`` (queued | claimed | sent | failed),
``next_attempt_at``, ``claim_token``, ``claimed_at`` and ``attempts``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def claim_due(session: Session, model: type[Row], token: str, now: datetime, stale_before: datetime,
              limit: int) -> list[Row]:
    """Take up to ``limit`` due rows for this sender; a stale claim counts as due.

    ``FOR UPDATE SKIP LOCKED`` lets several senders on PostgreSQL share the queue; on
    SQLite the caller's ``BEGIN IMMEDIATE`` already makes this one writer at a time.
    """
    m: Any = model
    due = or_(and_(m.state == "queued", m.next_attempt_at <= now),
              and_(m.state == "claimed", m.claimed_at < stale_before))
    ids = list(session.scalars(select(m.id).where(due).order_by(m.id).limit(limit).with_for_update(skip_locked=True)))
    if not ids:
        return []
    session.execute(update(m).where(m.id.in_(ids)).values(
        state="claimed", claim_token=token, claimed_at=now, attempts=m.attempts + 1))
    return list(session.scalars(select(m).where(m.id.in_(ids)).order_by(m.id)))
