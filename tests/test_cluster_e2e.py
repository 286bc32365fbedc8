"""Three `maild run` nodes on one PostgreSQL database (spool.backend and storage.backend
database): mail sent to all of them, one node SIGKILLed mid-burst, replies across nodes,
blobs one node wrote read through another, an IMAP account taken over when its node dies."""
from __future__ import annotations

import base64
import json
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from conftest import HELPDESK, _reset_pg, free_port, mail, write_config
from maild.app import App
from maild.config import load_config
from maild.store.models import InboundRow
from test_e2e import MAILD, Daemon, send, wait_for
from test_imap_e2e import BOX, imap_section
from tests.dovecot import DovecotServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLUSTER = """\
    cluster: {heartbeat_seconds: 0.5, node_timeout_seconds: 3}
    outbound: {enabled: false}
    """


def node_config(directory: Path, url: str, **extra: str) -> tuple[Path, int]:
    """A node's own directory and port; the database, the queue and the blobs shared."""
    directory.mkdir()
    port = free_port()
    config = write_config(directory, url, smtp_port=str(port), cluster=CLUSTER, **extra)
    text = config.read_text()
    for section in ("storage:\n", "spool:\n"):
        text = text.replace(section, f"{section}  backend: database\n", 1)
    config.write_text(text)
    return config, port


def make_nodes(tmp_path: Path, url: str, n: int, **extra: str) -> list[Daemon]:
    daemons = []
    for i in range(n):
        config, port = node_config(tmp_path / f"node{i}", url, **extra)
        if i == 0:  # migrate once, start from empty tables
            App(load_config(config)).db.dispose()
            _reset_pg(url)
        daemons.append(Daemon(config, port, config.parent / "maild.log"))
    return daemons


@pytest.fixture
def three(tmp_path: Path, pg_database: str) -> Iterator[list[Daemon]]:
    daemons = make_nodes(tmp_path, pg_database, 3)
    for d in daemons:
        d.start()
    yield daemons
    for d in daemons:
        if d.proc and d.proc.poll() is None:
            d.kill()


def queued(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(InboundRow)).scalar_one()
    engine.dispose()
    return int(count)


def claims_of(url: str, pid: int) -> int:
    """Inbound mails the node with this pid has claimed and not yet committed."""
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text(
            "SELECT count(*) FROM inbound_queue q JOIN nodes n ON substr(q.claim_token, 1, 12) = n.id "
            "WHERE n.pid = :pid AND q.state = 'claimed'"), {"pid": pid}).scalar_one()
    engine.dispose()
    return int(count)


def subjects(daemon: Daemon) -> list[str]:
    return [t["subject"] for t in daemon.tickets()]


def test_a_node_killed_mid_burst_strands_nothing(three: list[Daemon], pg_database: str) -> None:
    victim, survivors = three[0], three[1:]
    acknowledged: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def deliver(d: Daemon, offset: int) -> None:
        for n in range(offset, 600, 3):
            if stop.is_set() or (d is victim and d.proc is not None and d.proc.poll() is not None):
                return
            subject = f"Burst {n:04d}"
            try:
                send(d.port, mail(subject, message_id=f"<burst-{n}@cliente.example>"))
            except (OSError, smtplib.SMTPException):
                return  # the victim died with this one unacknowledged: not counted
            with lock:
                acknowledged.add(subject)

    senders = [threading.Thread(target=deliver, args=(d, i)) for i, d in enumerate(three)]
    for t in senders:
        t.start()
    # Kill the victim while it holds acknowledged mail it has not committed, with more
    # waiting in the shared queue.
    assert victim.proc is not None
    pid = victim.proc.pid
    def holding_then_killed() -> bool:
        if len(acknowledged) >= 150 and queued(pg_database) >= 10 and claims_of(pg_database, pid) > 0:
            victim.kill()  # at once: its batch takes far longer than this check
            return True
        return False

    wait_for(holding_then_killed, 120, "the victim holding claims over a backlog of acknowledged mail")
    held, backlog = claims_of(pg_database, pid), queued(pg_database)
    killed_at = time.monotonic()
    wait_for(lambda: claims_of(pg_database, pid) == 0, 30, "the survivors to take the dead node's claims")
    retaken = time.monotonic() - killed_at
    for t in senders:
        t.join(120)
    assert held > 0 and backlog >= 10 and len(acknowledged) >= 150
    wait_for(lambda: queued(pg_database) == 0, 60, "the survivors to drain the shared queue")
    took = time.monotonic() - killed_at
    found = subjects(survivors[0])
    assert len(found) == len(set(found)), "a mail became two tickets"
    assert acknowledged <= set(found), f"acknowledged but lost: {sorted(acknowledged - set(found))[:5]}"
    print(f"\n{backlog} acknowledged mails queued at the kill, {held} claimed by the killed node and taken by "
          f"the survivors {retaken:.1f}s after it; the queue empty and every mail a ticket after {took:.1f}s")
    for d in survivors:
        assert d.stop() == 0


def test_replies_sent_to_another_node_within_milliseconds_thread(three: list[Daemon], pg_database: str) -> None:
    pairs = 20
    for n in range(pairs):
        first, second = three[n % 3], three[(n + 1) % 3]
        send(first.port, mail(f"Pedido {n:02d}", message_id=f"<p{n}@cliente.example>"))
        send(second.port, mail(f"Re: Pedido {n:02d}", message_id=f"<r{n}@cliente.example>",
                               headers={"In-Reply-To": f"<p{n}@cliente.example>"}))
    wait_for(lambda: queued(pg_database) == 0, 60, "the shared queue to drain")
    shown = three[1]
    assert sorted(subjects(shown)) == [f"Pedido {n:02d}" for n in range(pairs)]
    for ticket in shown.tickets():
        detail = json.loads(shown.cli("tickets", "show", str(ticket["id"]), "--json").stdout)
        assert [m["subject"] for m in detail["messages"] if m["direction"] == "in"] == [
            ticket["subject"], f"Re: {ticket['subject']}"]


def test_blobs_written_by_one_node_are_served_by_another(three: list[Daemon]) -> None:
    writer, reader = three[0], three[2]
    pdf = b"%PDF-1.4 laudo " + bytes(range(256)) * 40
    raw = (f"From: maria@cliente.example.com.br\r\nTo: {HELPDESK}\r\nSubject: Laudo\r\n"
           "Message-ID: <laudo@cliente.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSegue.\r\n"
           "--b\r\nContent-Type: application/pdf; name=laudo.pdf\r\nContent-Disposition: attachment; "
           "filename=laudo.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode()
    raw += base64.encodebytes(pdf).replace(b"\n", b"\r\n") + b"--b--\r\n"
    send(writer.port, raw)
    # The MTA's pipe on the writer's host: spooled there, moved into the shared queue.
    junk = b"\x00\x01 binary junk with no headers\n"
    piped = subprocess.run([*MAILD, "--config", str(writer.config), "ingest"], input=junk, capture_output=True)
    assert piped.returncode == 0, piped.stderr
    wait_for(lambda: len(reader.tickets()) == 1, 30, "the ticket")
    [ticket] = reader.tickets()
    shown = json.loads(reader.cli("tickets", "show", str(ticket["id"]), "--json").stdout)
    [attachment] = shown["messages"][0]["attachments"]
    assert attachment["filename"] == "laudo.pdf"
    served = subprocess.run([*MAILD, "--config", str(reader.config), "tickets", "attachment", str(ticket["id"]),
                             attachment["sha256"][:12]], capture_output=True)
    assert served.returncode == 0 and served.stdout == pdf, served.stderr
    wait_for(lambda: len(json.loads(reader.cli("quarantine", "list", "--json").stdout)) == 1, 30, "the quarantine")
    [row] = json.loads(reader.cli("quarantine", "list", "--json").stdout)
    exact = subprocess.run([*MAILD, "--config", str(reader.config), "quarantine", "show", str(row["id"]), "--raw"],
                           capture_output=True)
    assert exact.returncode == 0 and exact.stdout.endswith(junk), exact.stderr
    again = reader.cli("reprocess")
    assert again.returncode == 0 and "1 reprocessed, 1 still quarantined" in again.stdout, again.stderr


def status(d: Daemon) -> dict:
    shown = d.cli("cluster", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def imap_holders(d: Daemon) -> list[int]:
    return [n["pid"] for n in status(d)["nodes"] if "support" in n["holds"]["imap"]]


def test_an_imap_account_is_polled_by_one_node_and_taken_over_when_it_dies(
        tmp_path: Path, pg_database: str, dovecot: DovecotServer) -> None:
    daemons = make_nodes(tmp_path, pg_database, 2, imap=imap_section(dovecot))
    try:
        for d in daemons:
            d.start()
        wait_for(lambda: len(status(daemons[1])["nodes"]) == 2 and len(imap_holders(daemons[1])) == 1, 30,
                 "one node holding the account")
        [pid] = imap_holders(daemons[1])
        holder = next(d for d in daemons if d.proc and d.proc.pid == pid)
        survivor = next(d for d in daemons if d is not holder)
        dovecot.append(BOX, mail("Antes"))
        wait_for(lambda: subjects(survivor) == ["Antes"], 30, "the first mail")
        holder.kill()
        dovecot.append(BOX, mail("Depois"))
        wait_for(lambda: sorted(subjects(survivor)) == ["Antes", "Depois"], 30, "the survivor to poll the account")
        # The dead node's row is listed until its heartbeat is older than node_timeout_seconds.
        wait_for(lambda: imap_holders(survivor) == [survivor.proc.pid if survivor.proc else -1], 30,
                 "cluster status to show the survivor alone holding the account")
        wait_for(lambda: "1 live node;" in survivor.cli("cluster", "status").stdout, 30, "the dead node to age out")
        assert "imap:support" in survivor.cli("cluster", "status").stdout
        assert survivor.stop() == 0
    finally:
        for d in daemons:
            if d.proc and d.proc.poll() is None:
                d.kill()


def test_a_robots_loop_over_two_nodes_gets_no_more_acknowledgements_than_the_cap(
        tmp_path: Path, pg_database: str) -> None:
    """A robot answering every acknowledgement with a new mail, its mails spread over two
    nodes at once: the per-address cap counts both nodes' acknowledgements."""
    robot = "robo@fornecedor.example.com"
    daemons = make_nodes(tmp_path, pg_database, 2)
    try:
        for d in daemons:
            d.start()
        limit = load_config(daemons[0].config).outbound.limits.per_address_burst.count

        def loop(d: Daemon, first: int) -> None:
            for n in range(first, 10, 2):
                send(d.port, mail(f"Pedido {n} recebido", robot, body=f"Seu pedido {n} foi registrado.\n"))

        senders = [threading.Thread(target=loop, args=(d, i)) for i, d in enumerate(daemons)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(120)
        wait_for(lambda: queued(pg_database) == 0 and len(daemons[1].tickets()) == 10, 60, "ten tickets")
        engine = create_engine(pg_database)
        with engine.connect() as conn:
            acks = conn.execute(text("SELECT count(*) FROM outbox WHERE to_addr = :a AND kind = 'ack'"),
                                {"a": robot}).scalar_one()
        engine.dispose()
        assert acks == limit
        for d in daemons:
            assert d.stop() == 0
    finally:
        for d in daemons:
            if d.proc and d.proc.poll() is None:
                d.kill()
