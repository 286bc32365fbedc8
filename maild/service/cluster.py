"""This node among several on one database: its heartbeat in ``nodes`` and what it holds.

The heartbeat runs in a thread of its own (a long batch must not make the node look
dead); each beat writes the node's version, how much acknowledged mail waits on its own
disk, and what it holds: the scheduler's leadership, IMAP accounts, inbound claims.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from maild.loop import Loop
from maild.store import nodes
from maild.store.db import Database
from maild.store.inbound import NODE_ID_LENGTH
from maild.store.nodes import NodeInfo

log = logging.getLogger("maild.cluster")

PRUNE_AFTER = timedelta(days=1)  # rows of nodes gone this long are removed


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("maild")
    except PackageNotFoundError:
        return "unknown"


def this_node() -> NodeInfo:
    return NodeInfo(uuid.uuid4().hex[:NODE_ID_LENGTH], socket.gethostname()[:255], os.getpid(), version())


class NodeHeartbeat(Loop):
    thread_name = "node-heartbeat"

    def __init__(self, db: Database, node: NodeInfo, clock: Callable[[], datetime], every: float,
                 queue_depth: Callable[[], int], holds: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__()
        self.db = db
        self.node = node
        self.clock = clock
        self.every = every
        self.queue_depth = queue_depth
        self.holds = holds
        self.beats = 0

    def beat(self) -> bool:
        now = self.clock()
        try:
            with self.db.write() as session:
                nodes.beat(session, self.node, now, self.queue_depth(), self.holds())
                if self.beats % 600 == 0:
                    nodes.prune(session, now - PRUNE_AFTER)
        except Exception as exc:  # noqa: BLE001 - the database may be away; the next beat tries again
            log.warning("node heartbeat failed: %s", type(exc).__name__)
            return False
        self.beats += 1
        return True

    def step(self) -> float:
        self.beat()
        return self.every

    def stop(self, timeout: float = 10.0) -> bool:
        ended = super().stop(timeout)
        try:
            with self.db.write() as session:
                nodes.retire(session, self.node.id)
        except Exception:  # noqa: BLE001 - its row ages out like a dead node's
            log.warning("could not remove this node's heartbeat row")
        return ended
