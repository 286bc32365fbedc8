"""The shared inbound queue (``spool.backend: database``): acknowledged mail any node processes.

Functions take a session and never commit. A listener inserts a row and commits before
it answers 250; a node's queue worker claims rows with ``FOR UPDATE SKIP LOCKED``
(:func:`maild.store.queue.claim_due`), processes them, and deletes them once their
transaction committed. Claim tokens start with the claiming node's id: a claim whose
node stopped beating in ``nodes`` is taken again by a live node.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from maild.store.keys import header_hash
from maild.store.models import InboundRow, Node
from maild.store.queue import claim_due
from maild.store.rows import new_id, rowcount

NODE_ID_LENGTH = 12  # a claim token is "<node id>-<round>"
queue = InboundRow.__table__


def enqueue(session: Session, raw: bytes, channel: str, digest: str, message_id: str | None,
            parents: Sequence[str], node: str, now: datetime) -> int:
    """One acknowledged mail; its id (arrival order across the cluster)."""
    keys = " ".join(key for key in (header_hash(p) for p in parents) if key)
    return new_id(session.execute(insert(queue).returning(queue.c.id), {
        "channel": channel, "raw": raw, "sha256": digest, "message_id_hash": header_hash(message_id),
        "parents": keys, "state": "queued", "attempts": 0, "next_attempt_at": now, "claim_token": None,
        "claimed_at": None, "received_at": now, "waiting_since": None, "node": node}))


def claim(session: Session, token: str, now: datetime, alive_since: datetime, limit: int) -> list[InboundRow]:
    """Take up to ``limit`` queued rows, oldest first; a claim whose node has not beaten
    since ``alive_since`` counts as queued."""
    node_alive = exists().where(Node.id == func.substr(InboundRow.claim_token, 1, NODE_ID_LENGTH),
                                Node.heartbeat_at >= alive_since)
    return claim_due(session, InboundRow, token, now, alive_since, limit, orphaned=~node_alive, retaken=RETAKEN)


# A claim taken from a node that stopped beating counts as a failure of its mail: a mail
# that kills every node that tries it is quarantined once it has done so spool.max_attempts times.
RETAKEN = {"failures": InboundRow.failures + 1, "last_error": "its node stopped while it was being processed"}


def release_own(session: Session, node_id: str) -> int:
    """Give back whatever this node still claims (a round that failed half-way)."""
    done = session.execute(update(InboundRow).where(
        InboundRow.state == "claimed", InboundRow.claim_token.startswith(f"{node_id}-", autoescape=True))
        .values(state="queued", claim_token=None, claimed_at=None))
    return rowcount(done)


def release(session: Session, ids: Collection[int], token: str, at: datetime, waiting: datetime | None = None) -> None:
    """Put claimed rows back, due again at ``at`` (a retry); ``waiting``: a reply put back
    for its parent at this time (the first such time is kept)."""
    if ids:
        values: dict[str, object] = {"state": "queued", "claim_token": None, "claimed_at": None, "next_attempt_at": at}
        if waiting is not None:
            values["waiting_since"] = func.coalesce(InboundRow.waiting_since, waiting)
        session.execute(update(InboundRow).where(InboundRow.id.in_(ids), InboundRow.claim_token == token)
                        .values(**values))


def finish(session: Session, ids: Collection[int], token: str) -> None:
    """The mails of these rows are committed: they leave the queue."""
    if ids:
        session.execute(delete(InboundRow).where(InboundRow.id.in_(ids), InboundRow.claim_token == token))


def count_failure(session: Session, digest: str, reason: str) -> int | None:
    """One more failed processing of the queued mail with these bytes, on whichever node;
    the count including it (None: the mail is not in the queue)."""
    counted = session.execute(update(InboundRow).where(InboundRow.sha256 == digest)
                              .values(failures=InboundRow.failures + 1, last_error=reason)
                              .returning(InboundRow.failures))
    return max(counted.scalars(), default=None)


def queued_parents(session: Session, keys: Collection[str], exclude: Collection[int]) -> set[str]:
    """Which of these Message-ID keys belong to mail still in the queue (not yet processed)."""
    if not keys:
        return set()
    found = select(InboundRow.message_id_hash).where(InboundRow.message_id_hash.in_(keys))
    if exclude:
        found = found.where(InboundRow.id.not_in(exclude))
    return {key for key in session.scalars(found) if key is not None}


def depth(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(queue)) or 0)
