"""The ``nodes`` table: one row per running ``maild run``, beating while it lives.

A node's id starts the claim tokens of the inbound rows it holds; ``maild cluster status``
lists the nodes that beat recently, their version, queue depth and what each holds.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from maild.store.models import Node
from maild.store.rows import rowcount


@dataclass(frozen=True)
class NodeInfo:
    id: str
    host: str
    pid: int
    version: str


def beat(session: Session, node: NodeInfo, now: datetime, queue_depth: int, holds: Mapping[str, Any]) -> None:
    values = {"heartbeat_at": now, "queue_depth": queue_depth, "holds": json.dumps(holds, sort_keys=True)}
    done = session.execute(update(Node).where(Node.id == node.id).values(**values))
    if not rowcount(done):
        session.execute(insert(Node).values(id=node.id, host=node.host, pid=node.pid, version=node.version,
                                            started_at=now, **values))


def retire(session: Session, node_id: str) -> None:
    session.execute(delete(Node).where(Node.id == node_id))


def live(session: Session, alive_since: datetime) -> list[Node]:
    return list(session.scalars(select(Node).where(Node.heartbeat_at >= alive_since).order_by(Node.started_at)))


def prune(session: Session, before: datetime) -> None:
    """Rows of nodes dead for long: nothing refers to them once their claims were retaken."""
    session.execute(delete(Node).where(Node.heartbeat_at < before))
