"""How far behind maild is: the spool on disk and the outbox and raw-mail tables, read for a scrape."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from maild.ingest.spool import Spool
from maild.service.metrics import Snapshot
from maild.store import inbound
from maild.store.db import Database
from maild.store.models import OutboxRow, RawMail


def read_snapshot(db: Database, spool: Spool, now: datetime, leader: bool | None, last_run: datetime | None = None,
                  imap: dict[str, float | None] | None = None, shared: bool = False) -> Snapshot:
    """``shared``: mail is taken into the shared inbound queue (its depth is reported too)."""
    pending = spool.pending()
    oldest = 0.0
    if pending:
        # Spool file names start with their arrival time in nanoseconds (maild/ingest/spool.py).
        first = pending[0].path.name.split("-", 1)[0]
        if first.isdigit():
            oldest = max(0.0, now.timestamp() - int(first) / 1e9)
    with db.read() as session:
        outbox = {state: count for state, count in session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state))}
        deferred = session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.state == "queued", OutboxRow.attempts > 0)) or 0
        queued_since = session.scalar(select(func.min(OutboxRow.created_at)).where(OutboxRow.state == "queued"))
        raw = {(channel, status): count for channel, status, count in session.execute(
            select(RawMail.channel, RawMail.status, func.count()).group_by(RawMail.channel, RawMail.status))}
        inbound_queue = inbound.depth(session) if shared else None
    return Snapshot(spool_depth=len(pending), spool_oldest_seconds=oldest, outbox=outbox,
                    outbox_oldest_queued_seconds=max(0.0, (now - queued_since).total_seconds()) if queued_since else 0.0,
                    outbox_deferred=deferred, raw_mails=raw, scheduler_leader=leader,
                    scheduler_last_run=last_run.timestamp() if last_run else None, imap_last_pass=dict(imap or {}),
                    now=now.timestamp(), inbound_queue=inbound_queue)
