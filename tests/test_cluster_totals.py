"""Several nodes on one PostgreSQL count together: a poison mail's failures, the caps on
automatic mail, and an orphan reply linked to a parent another node commits at the same instant.

Two App instances stand for two nodes (a directory, a spool and a processor each; one
database). Where two transactions must overlap, the test holds one of them open at a chosen
point and lets the other run into it, so the interleaving is the same on every run.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from conftest import Env, mail, write_config
from maild.app import App
from maild.config import load_config
from maild.ingest.intake import DbIntake, QueueWorker
from maild.store import inbound, nodes
from maild.store.db import Database
from maild.store.models import InboundRow, OutboxRow
from maild.store.nodes import NodeInfo
from test_poison import _header_unstorable, poison_mail

PG = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
ROBOT = "robo@fornecedor.example.com"
DEADLINE = 60.0  # seconds: generous, the machine is shared


def node_env(directory: Path, url: str) -> Env:
    """One node: its own directory and spool, the queue and blobs in the shared database."""
    directory.mkdir()
    path = write_config(directory, url)
    body = path.read_text()
    for section in ("storage:\n", "spool:\n"):
        body = body.replace(section, f"{section}  backend: database\n", 1)
    path.write_text(body)
    config = load_config(path, base_dir=directory)
    return Env(App(config), config, directory)


@pytest.fixture
def two(tmp_path: Path, db_url: str) -> Iterator[tuple[Env, Env]]:
    a, b = node_env(tmp_path / "a", db_url), node_env(tmp_path / "b", db_url)
    assert a.config.spool.backend == b.config.spool.backend == "database"
    yield a, b
    a.close()
    b.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def blocked_or_done(db: Database, thread: threading.Thread) -> None:
    """Wait until ``thread`` either finished or waits for a lock another transaction holds."""
    deadline = time.monotonic() + DEADLINE
    while thread.is_alive() and time.monotonic() < deadline:
        with db.read() as session:
            if session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        thread.join(0.02)
    assert time.monotonic() < deadline, "the second node neither finished nor waited"


def joined(thread: threading.Thread, result: list[Any]) -> Any:
    thread.join(DEADLINE)
    assert not thread.is_alive() and result, "the node did not finish"
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


class Pause:
    """Wraps a function of a module: the first call made from the thread in ``pause_in``
    returns, then holds until released (its transaction stays open)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.real = getattr(module, name)
        self.reached = threading.Event()
        self.go = threading.Event()
        self.pause_in: int | None = None
        monkeypatch.setattr(module, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        value = self.real(*args, **kwargs)
        if threading.get_ident() == self.pause_in and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(DEADLINE)
        return value

    def run_paused(self, work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
        """Start ``work`` in a thread and wait until it holds at the wrapped call."""
        started = threading.Event()

        def paused() -> Any:
            self.pause_in = threading.get_ident()
            started.set()
            return work()

        thread, result = in_thread(paused)
        assert started.wait(DEADLINE)
        assert self.reached.wait(DEADLINE) or not thread.is_alive(), "the first node never got there"
        return thread, result


# -- 1. a poison mail's failures, counted on its queue row ---------------------------------

@PG
def test_a_poison_mail_is_quarantined_after_max_attempts_in_total_whichever_nodes_tried_it(
        two: tuple[Env, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    _header_unstorable(monkeypatch)
    a, b = two
    clock = Clock(T0)
    ids = ("aaaaaaaaaaaa", "bbbbbbbbbbbb")
    intake = DbIntake(a.app.db, a.app.spool, ids[0], clock, threading.Event())
    assert intake.accept(poison_mail(), "smtp").startswith("q")
    workers = [QueueWorker(env.app.db, env.app.processor.process_batch, clock, node_id, 60.0, 10.0)
               for env, node_id in zip((a, b), ids)]
    limit = a.config.spool.max_attempts
    for attempt in range(1, limit + 1):
        clock.now += timedelta(minutes=1)  # past the retry's backoff
        with a.app.db.write() as session:
            for node_id in ids:
                nodes.beat(session, NodeInfo(node_id, "host", 1, "test"), clock.now, 0, {})
        workers[attempt % 2].drain_once()  # the nodes take turns
        with a.app.db.read() as session:
            rows = list(session.scalars(select(InboundRow)))
        if attempt < limit:
            assert [(row.failures, "DataError" in row.last_error) for row in rows] == [(attempt, True)]
    assert rows == []
    [raw] = [r for r in a.raw_rows() if r.status == "quarantined"]
    assert f"failed {limit} times" in raw.reason
    for env in two:  # nothing counted on either node's disk
        assert not any((env.app.spool.root / "attempts").iterdir())


@PG
def test_a_mail_whose_nodes_die_with_it_is_quarantined_after_max_attempts_without_another_try(
        two: tuple[Env, Env]) -> None:
    a, b = two
    clock = Clock(T0)
    intake = DbIntake(a.app.db, a.app.spool, "aaaaaaaaaaaa", clock, threading.Event())
    intake.accept(mail("Derruba o processo", message_id="<killer@x>"), "smtp")
    intake.accept(mail("Inocente"), "smtp")
    limit = a.config.spool.max_attempts
    for death in range(limit):  # a node takes it and dies before committing, again and again
        dead = f"dead{death:08d}"
        with a.app.db.write() as session:
            nodes.beat(session, NodeInfo(dead, "host", 1, "test"), clock.now, 0, {})
            [taken] = inbound.claim(session, f"{dead}-0", clock.now, clock.now - timedelta(seconds=30), 1)
        assert taken.failures == death  # each claim taken from a dead node counts
        clock.now += timedelta(minutes=1)
    with a.app.db.write() as session:
        nodes.beat(session, NodeInfo("bbbbbbbbbbbb", "host", 1, "test"), clock.now, 0, {})
    worker = QueueWorker(b.app.db, b.app.processor.process_batch, clock, "bbbbbbbbbbbb", 30.0, 10.0,
                         max_attempts=limit, give_up=b.app.processor.give_up)
    assert worker.drain_once() == 1  # the killer alone, quarantined unprocessed
    [raw] = b.raw_rows()
    assert raw.status == "quarantined" and f"failed {limit} times" in raw.reason and "node stopped" in raw.reason
    assert worker.drain_once() == 1
    assert [t["subject"] for t in b.tickets()] == ["Inocente"]
    shown = b.app.blobs.get_raw(raw.sha256)  # kept for `maild reprocess`
    assert b"<killer@x>" in shown


@PG
def test_a_mail_that_failed_before_is_tried_alone(two: tuple[Env, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    _header_unstorable(monkeypatch)
    a, b = two
    clock = Clock(T0)
    intake = DbIntake(a.app.db, a.app.spool, "aaaaaaaaaaaa", clock, threading.Event())
    intake.accept(poison_mail(), "smtp")
    worker = QueueWorker(b.app.db, b.app.processor.process_batch, clock, "bbbbbbbbbbbb", 30.0, 10.0)
    with a.app.db.write() as session:
        nodes.beat(session, NodeInfo("bbbbbbbbbbbb", "host", 1, "test"), clock.now, 0, {})
    assert worker.drain_once() == 0  # failed once: kept for a retry
    intake.accept(mail("Inocente"), "smtp")
    clock.now += timedelta(minutes=1)
    seen: list[int] = []
    real = b.app.processor.process_batch
    worker.process_batch = lambda items, now: seen.append(len(items)) or real(items, now)
    worker.drain_once()
    worker.drain_once()
    assert seen == [1, 1]  # the suspect alone, then the rest
    assert [t["subject"] for t in b.tickets()] == ["Inocente"]


# -- 2. caps and counters, in total ---------------------------------------------------------

def robot_mail(n: int) -> bytes:
    """A robot that answers every mail with a new one (no Auto-Submitted, a new subject)."""
    return mail(f"Pedido {n} recebido", ROBOT, body=f"Seu pedido {n} foi registrado.\n")


def acknowledgements(env: Env) -> int:
    with env.app.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.to_addr == ROBOT, OutboxRow.kind == "ack")) or 0)


@PG
def test_the_per_address_cap_holds_for_two_nodes_counting_at_the_same_instant(
        two: tuple[Env, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.outbound.outbox as outbox

    a, b = two
    limit = a.config.outbound.limits.per_address_burst.count
    now = T0
    for n in range(limit - 1):  # one acknowledgement short of the cap
        now += timedelta(seconds=1)
        assert a.app.processor.process(robot_mail(n), "smtp", now).queued
    assert acknowledgements(a) == limit - 1
    pause = Pause(monkeypatch, outbox, "recent")  # node A has counted and not yet committed
    first = pause.run_paused(lambda: a.app.processor.process(robot_mail(100), "smtp", now))
    second = in_thread(lambda: b.app.processor.process(robot_mail(200), "smtp", now))
    blocked_or_done(b.app.db, second[0])
    pause.go.set()
    joined(*first)
    joined(*second)
    assert acknowledgements(a) == limit


@PG
def test_a_loop_of_ten_mails_over_two_nodes_gets_no_more_acknowledgements_than_the_cap(
        two: tuple[Env, Env]) -> None:
    a, b = two
    limit = a.config.outbound.limits.per_address_burst.count
    barrier = threading.Barrier(2)

    def node(env: Env, first: int) -> list[str]:
        barrier.wait(DEADLINE)
        return [env.app.processor.process(robot_mail(n), "smtp", T0 + timedelta(seconds=n)).status
                for n in range(first, 10, 2)]

    runs = [in_thread(lambda env=env, first=first: node(env, first)) for env, first in ((a, 0), (b, 1))]
    assert [status for run in runs for status in joined(*run)] == ["created"] * 10
    assert acknowledgements(a) == limit


@PG
def test_the_per_agent_counter_counts_both_nodes_notifications(
        two: tuple[Env, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.notify.agentcap as agentcap

    a, b = two
    pause = Pause(monkeypatch, agentcap, "count_sent")  # node A counted its notification, not committed
    first = pause.run_paused(lambda: a.app.processor.process(mail("Vazamento", "joao@cliente.example.com.br"),
                                                             "smtp", T0))
    second = in_thread(lambda: b.app.processor.process(mail("Goteira", "maria@cliente.example.com.br"), "smtp", T0))
    blocked_or_done(b.app.db, second[0])
    pause.go.set()
    joined(*first)
    joined(*second)
    with a.app.db.read() as session:
        sent = session.scalar(text("SELECT sum(sent) FROM notify_counters"))
        notified = session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.to_addr == "ana@support.example.com"))
    assert notified == 2 and sent == notified


# -- 3. an orphan reply and its parent at the same instant ----------------------------------

def linked(env: Env, ticket_id: int) -> list[dict[str, Any]]:
    return list(env.ticket(ticket_id)["links"])


PARENT = mail("Vazamento", message_id="<p@cliente.example>")
# A colleague in Cc answers the customer's mail: not the requester, so a ticket of their own.
REPLY = mail("Re: Vazamento", "joao@cliente.example.com.br", message_id="<r@cliente.example>",
             headers={"In-Reply-To": "<p@cliente.example>"})


@PG
def test_an_orphan_reply_threaded_before_its_parent_committed_is_linked_after(
        two: tuple[Env, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.ingest.processor as processor

    a, b = two
    pause = Pause(monkeypatch, processor, "thread")  # B looked for the parent: not there yet
    orphan = pause.run_paused(lambda: b.app.processor.process(REPLY, "smtp", T0))
    parent = a.app.processor.process(PARENT, "smtp", T0)  # A commits the parent meanwhile
    pause.go.set()
    reply = joined(*orphan)
    assert reply.status == parent.status == "created" and reply.ticket_id != parent.ticket_id
    assert linked(a, reply.ticket_id) == [{"ticket": parent.ticket_id, "kind": "refers_to"}]
    assert [e["new"] for e in a.ticket(reply.ticket_id)["events"] if e["kind"] == "linked"] == [str(parent.ticket_id)]


@PG
def test_a_parent_committing_while_its_orphan_reply_is_written_links_it(
        two: tuple[Env, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.ingest.processor as processor

    a, b = two
    pause = Pause(monkeypatch, processor, "await_parents")  # B wrote the reply's wait, not committed
    orphan = pause.run_paused(lambda: b.app.processor.process(REPLY, "smtp", T0))
    first = in_thread(lambda: a.app.processor.process(PARENT, "smtp", T0))
    blocked_or_done(a.app.db, first[0])
    pause.go.set()
    reply, parent = joined(*orphan), joined(*first)
    assert reply.ticket_id != parent.ticket_id
    assert linked(a, reply.ticket_id) == [{"ticket": parent.ticket_id, "kind": "refers_to"}]
