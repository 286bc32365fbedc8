"""Several `maild run` nodes on one PostgreSQL database: mails/s for 1, 2 and 3 nodes, and
how long the scheduler takes to fail over when its leader is killed.

For each node count a fresh database is created; every node has its own SMTP port, spool
and directory, and `spool.backend: database` and `storage.backend: database` (the shared
inbound queue and blobs). C client threads send M mails round-robin over the nodes: 70% new
tickets from 200 senders, 30% replies by In-Reply-To to a mail already acknowledged (a
customer answers what they received). The rate is from the first byte sent to the last mail
committed (the queue empty and every mail a message); then it checks that every mail was
stored once and every reply is on its parent's ticket (exit 1 if not).

Fail-over: two nodes with the scheduler on (default `leader_retry_seconds` unless given);
the leader (the `nodes` table `maild cluster status` reads) is SIGKILLed and the time until
the other node reports itself leader is printed (it includes up to one heartbeat, 1 s).

    .venv/bin/python bench/cluster.py --mails 2000 --clients 6 --nodes 1 2 3
    .venv/bin/python bench/cluster.py --failover-only --leader-retry 10
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("MAILD_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HELPDESK = "support@bench.example"
MAILD = [sys.executable, "-m", "maild"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(directory: Path, url: str, port: int, scheduler: str) -> str:
    return f"""\
helpdesk: {{name: Bench, address: {HELPDESK}, subject_tag: Support, secret: bench-secret}}
database: {{url: "{url}"}}
storage: {{path: {directory / 'storage'}, backend: database}}
spool: {{path: {directory / 'spool'}, backend: database}}
smtp_server: {{host: 127.0.0.1, port: {port}, max_connections_per_ip: 100}}
outbound: {{enabled: false}}
cluster: {{heartbeat_seconds: 1, node_timeout_seconds: 5}}
logging: {{level: WARNING}}
{scheduler}
"""


class Node:
    def __init__(self, root: Path, name: str, url: str, scheduler: str) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.config = self.dir / "maild.yaml"
        self.config.write_text(config_text(self.dir, url, self.port, scheduler))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.dir / "maild.log", "ab")
        self.proc = subprocess.Popen([*MAILD, "--config", str(self.config), "run"], stdout=log, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"node exited: {(self.dir / 'maild.log').read_text()[-2000:]}")
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as smtp:
                    smtp.noop()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("node did not open its port")

    def cli(self, *args: str) -> str:
        return subprocess.run([*MAILD, "--config", str(self.config), *args], capture_output=True, text=True,
                              check=True, cwd=ROOT).stdout

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)


def fresh_database() -> tuple[str, str]:
    name = f"maild_bench_cluster_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def corpus(count: int, seed: int = 7) -> list[tuple[bytes, str | None, str]]:
    """(raw, the Message-ID it answers or None, its own Message-ID), in sending order."""
    rng = random.Random(seed)
    mails: list[tuple[bytes, str | None, str]] = []
    roots: list[tuple[str, str, str]] = []  # (message id, sender, subject)
    for n in range(count):
        own = f"<c{n}.{uuid.uuid4().hex[:8]}@cliente.bench>"
        if roots and rng.random() < 0.3:
            parent, sender, subject = rng.choice(roots)
            subject, headers = f"Re: {subject}", f"In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
        else:
            parent, sender, subject = None, f"cliente{rng.randrange(200)}@cliente.bench", f"Pedido {n}"
            headers = ""
            roots.append((own, sender, subject))
        body = ("Bom dia, segue o pedido. " * rng.randrange(10, 60)) + "\r\n"
        raw = (f"From: {sender}\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\nMessage-ID: {own}\r\n{headers}"
               "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
               f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()
        mails.append((raw, parent, own))
    return mails


def count_in(url: str) -> int:
    """Mails committed: stored as messages or quarantined."""
    engine = create_engine(url)
    with engine.connect() as conn:
        done = conn.execute(text("SELECT count(*) FROM raw_mails")).scalar_one()
    engine.dispose()
    return int(done)


def check(url: str, mails: list[tuple[bytes, str | None, str]]) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT message_id, ticket_id FROM messages WHERE direction = 'in'")).all()
        quarantined = conn.execute(text("SELECT count(*) FROM raw_mails WHERE status = 'quarantined'")).scalar_one()
    engine.dispose()
    ticket = {mid: tid for mid, tid in rows}
    problems = [f"{quarantined} quarantined"] if quarantined else []
    if len(rows) != len(mails) or len(ticket) != len(mails):
        problems.append(f"{len(rows)} messages stored for {len(mails)} mails")
    for _raw, parent, own in mails:
        if parent is not None and ticket.get(own) != ticket.get(parent):
            problems.append(f"{own} not on its parent's ticket")
    return problems


def throughput(nodes: int, count: int, clients: int) -> tuple[float, list[str]]:
    url, name = fresh_database()
    root = Path(tempfile.mkdtemp(prefix="maild-cluster-bench-"))
    scheduler = "scheduler: {enabled: false}"
    members = [Node(root, f"node{i}", url, scheduler) for i in range(nodes)]
    try:
        members[0].cli("db", "upgrade")
        for node in members:
            node.start()
        mails = corpus(count)
        acknowledged: set[str] = set()
        lock = threading.Condition()
        todo = list(enumerate(mails))
        todo.reverse()

        def client(k: int) -> None:
            sessions: dict[int, smtplib.SMTP] = {}
            while True:
                with lock:
                    while todo and todo[-1][1][1] is not None and todo[-1][1][1] not in acknowledged:
                        lock.wait(0.05)  # a reply goes out only after its parent's 250
                    if not todo:
                        break
                    n, (raw, _parent, own) = todo.pop()
                node = members[n % nodes]
                smtp = sessions.get(node.port) or smtplib.SMTP("127.0.0.1", node.port, timeout=60)
                sessions[node.port] = smtp
                smtp.sendmail(f"c{k}@cliente.bench", [HELPDESK], raw)
                with lock:
                    acknowledged.add(own)
                    lock.notify_all()
            for smtp in sessions.values():
                smtp.quit()

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 1800
        while count_in(url) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        return count / elapsed, check(url, mails)
    finally:
        for node in members:
            node.stop()
        drop_database(name)


def failover(retry: float) -> float:
    url, name = fresh_database()
    root = Path(tempfile.mkdtemp(prefix="maild-cluster-failover-"))
    scheduler = f"scheduler: {{leader_retry_seconds: {retry}, unaccepted_minutes: 0, digest: {{enabled: false}}}}"
    members = [Node(root, f"node{i}", url, scheduler) for i in range(2)]
    try:
        members[0].cli("db", "upgrade")
        for node in members:
            node.start()

        engine = create_engine(url)

        def leader() -> int | None:
            """What `maild cluster status` shows, read straight from its table (the CLI's own
            start-up would add a second or two to the figure)."""
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT pid, holds FROM nodes WHERE heartbeat_at > now() - interval '5 s'"))
                leaders = [pid for pid, holds in rows if json.loads(holds).get("scheduler")]
            return leaders[0] if len(leaders) == 1 else None

        deadline = time.monotonic() + 120
        while (pid := leader()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        victim = next(n for n in members if n.proc and n.proc.pid == pid)
        other = next(n for n in members if n is not victim)
        victim.stop(signal.SIGKILL)
        killed = time.monotonic()
        while leader() != (other.proc.pid if other.proc else None):
            time.sleep(0.05)
        took = time.monotonic() - killed
        engine.dispose()
        return took
    finally:
        for node in members:
            node.stop()
        drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--leader-retry", type=float, default=10.0, help="scheduler.leader_retry_seconds")
    parser.add_argument("--failover-only", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))  # stop the nodes on the way out
    failed = False
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    if not args.failover_only:
        for nodes in args.nodes:
            rate, problems = throughput(nodes, args.mails, args.clients)
            print(f"{nodes} node{'s' if nodes > 1 else ' '}: {rate:7.1f} mails/s  ({args.mails} mails, "
                  f"{args.clients} clients){'  PROBLEMS: ' + '; '.join(problems[:3]) if problems else ''}")
            failed = failed or bool(problems)
    took = failover(args.leader_retry)
    print(f"scheduler fail-over: {took:.1f}s after SIGKILL of the leader (leader_retry_seconds {args.leader_retry:g}, "
          "as the nodes table shows it, heartbeat 1 s)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
