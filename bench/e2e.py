"""End-to-end throughput of maild as users run it: `maild run`, mail in over SMTP, mail out.

Starts the real daemon on a temporary config (several agents, acknowledgements and agent
notifications on, caps set high enough that they hold nothing back), an aiosmtpd sink in
its own process as the smarthost, and N concurrent SMTP clients sending the corpus of
``bench/ingest.py`` (new tickets, replies by In-Reply-To/References and by ``[Support #n]``
tag, 10% with an attachment, UTF-8 and ISO-8859-1).

A customer answers only what exists: a reply by headers is sent after its parent got its
250, a reply by tag once the parent's ticket is committed (its number is read from the
database, as a customer reads it from the acknowledgement). Until then the reply is held
and the next mail of the corpus goes first.

Reports mails/s from the first byte in to the last ticket committed, and until the last
outbound mail reached the sink; SMTP latency (MAIL FROM → 250 after DATA) p50/p99; the
peak RSS of every maild process and their CPU time; first- vs last-quarter rates; the load
average at start and end. Then checks that every mail was stored, every reply threaded into its ticket, and
that the sink got exactly the expected acknowledgements and notifications; exits 1 if not.

    .venv/bin/python bench/e2e.py --mails 5000 --clients 4
    .venv/bin/python bench/e2e.py --mails 5000 --clients 4 --db postgresql
    .venv/bin/python bench/e2e.py --mails 5000 --prefill 1000000
    .venv/bin/python bench/e2e.py --mails 5000 --workers 1          # maild run --workers 1: one process
    .venv/bin/python bench/e2e.py --mails 5000 --connections 4      # outbound.smtp.connections
    .venv/bin/python bench/e2e.py --mails 5000 --profile profile.txt   # py-spy, raw collapsed stacks
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from ingest import Item, corpus_items, prefill as prefill_messages  # noqa: E402
from sink import Record, SinkProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELPDESK = "support@bench.example"
PG_ADMIN_URL = os.environ.get("MAILD_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TAG = re.compile(r"\[Support #(\d+)\]")
# High enough that no cap holds back a mail of the run: the benchmark measures the work.
HIGH_CAP = 10_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agents_of(count: int) -> list[str]:
    return [f"agent{i}@bench.example" for i in range(count)]


def write_config(work: Path, db_url: str, port: int, sink_port: int, agents: Sequence[str], log_level: str,
                 connections: int = 1) -> Path:
    lines = [
        "helpdesk:", "  name: Bench Helpdesk", f"  address: {HELPDESK}", "  subject_tag: Support",
        f"  secret: {uuid.uuid4().hex}",
        f"database: {{url: '{db_url}'}}",
        f"storage: {{path: '{work / 'storage'}'}}",
        f"spool: {{path: '{work / 'spool'}'}}",
        f"smtp_server: {{host: 127.0.0.1, port: {port}, max_message_size: 10000000}}",
        "agents:",
        *[f"  - {{email: {a}, name: Agent {i}, teams: [support], role: {'manager' if i == 0 else 'agent'}}}"
          for i, a in enumerate(agents)],
        "outbound:",
        f"  smtp: {{host: 127.0.0.1, port: {sink_port}, timeout: 30, connections: {connections}}}",
        "  acknowledge: true",
        "  notify_agents: true",
        "  limits:",
        f"    per_ticket: {{count: {HIGH_CAP}, minutes: 10}}",
        f"    per_address: {{count: {HIGH_CAP}, minutes: 10}}",
        f"    per_address_day: {{count: {HIGH_CAP}, minutes: 1440}}",
        f"    per_agent: {{count: {HIGH_CAP}, minutes: 10}}",
        f"    per_address_burst: {{count: {HIGH_CAP}, minutes: 1}}",
        # No re-announcements or digest during a run: what reaches the sink is what the mails caused.
        "scheduler: {unaccepted_minutes: 0, digest: {enabled: false}}",
        f"log_level: {log_level}",
    ]
    path = work / "maild.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the database ------------------------------------------------------------------------
def fresh_postgres() -> tuple[str, Callable[[], None]]:
    """A new database on the local server, and how to drop it."""
    name = f"maild_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    for attempt in range(20):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            break
        except OperationalError as exc:
            # Another client creating a database at the same moment holds template1.
            if "is being accessed by other users" not in str(exc) or attempt == 19:
                raise
            time.sleep(0.2 * (attempt + 1))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def prefill(config_path: Path, work: Path, count: int, addresses: Sequence[str]) -> None:
    """``count`` old messages and ``count`` old outbox rows to the run's own addresses, in bulk.

    The outbox rows are sent mail older than every cap window: they change no decision,
    they only make any per-mail cost that grows with history visible.
    """
    from maild.app import App
    from maild.config import load_config
    from maild.store.models import OutboxRow

    app = App(load_config(config_path, base_dir=work))  # migrates the empty database
    now = datetime.now(timezone.utc)
    prefill_messages(app, count, now - timedelta(days=400))
    batch = 20000
    for start in range(0, count, batch):
        rows = []
        for i in range(start, min(count, start + batch)):
            at = now - timedelta(days=2, minutes=i % (398 * 24 * 60))
            to = addresses[i % len(addresses)]
            rows.append({
                "ticket_id": 1 + (i // 3) % max(1, -(-count // 3)), "kind": "notify", "automatic": True,
                "state": "sent", "message_id": f"<old-out-{i}@bench.example>", "envelope_from": HELPDESK,
                "recipients": to, "to_addr": to, "from_header": HELPDESK, "to_header": to, "cc_header": "",
                "reply_to": "", "subject": "old", "in_reply_to": "", "references": "", "auto_submitted": "auto-generated",
                "language": "en", "body_text": "old notification body " * 10, "attachments": "", "attempts": 1,
                "next_attempt_at": at, "expires_at": at + timedelta(days=5), "claim_token": None, "claimed_at": at,
                "sent_at": at, "last_error": "", "created_at": at})
        with app.db.write() as session:
            session.execute(insert(OutboxRow), rows)
        print(f"\rprefill outbox {min(count, start + batch):>9}/{count}", end="", file=sys.stderr)
    print(file=sys.stderr)
    app.db.dispose()


@dataclass
class Progress:
    """What the database says: which corpus mails are committed, when, in which ticket."""

    engine: Engine
    wanted: dict[str, Item]
    floor: int = 0  # highest message id before the run
    ticket_of: dict[str, int] = field(default_factory=dict)  # message-id → ticket
    thread_ticket: dict[int, int] = field(default_factory=dict)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, committed so far)
    seen_max: int = 0
    on_ticket: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        with self.engine.connect() as conn:
            self.floor = self.seen_max = conn.scalar(text("SELECT coalesce(max(id), 0) FROM messages")) or 0

    def poll(self) -> int:
        # Ids of one writer commit in order; the window below covers a few late commits anyway.
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, message_id, ticket_id FROM messages WHERE id > :low "
                                     "AND direction = 'in' ORDER BY id"),
                                {"low": max(self.floor, self.seen_max - 200)}).all()
        now = time.monotonic()
        new_ticket = False
        for row in rows:
            self.seen_max = max(self.seen_max, row.id)
            item = self.wanted.get(row.message_id)
            if item is None or row.message_id in self.ticket_of:
                continue
            self.ticket_of[row.message_id] = row.ticket_id
            if item.kind == "new":
                self.thread_ticket[item.thread] = row.ticket_id
                new_ticket = True
        self.samples.append((now, len(self.ticket_of)))
        if new_ticket:
            self.on_ticket()
        return len(self.ticket_of)

    def when(self, count: int) -> float:
        """The first moment ``count`` mails were seen committed."""
        return next(t for t, c in self.samples if c >= count)


# -- sending -------------------------------------------------------------------------------
class Dispatcher:
    """Hands the corpus to the clients in order, holding a reply until what it answers exists."""

    def __init__(self, items: Sequence[Item], progress: Progress) -> None:
        self.items = deque(items)
        self.parked: list[Item] = []
        self.accepted: set[str] = set()
        self.progress = progress
        self.cond = threading.Condition()
        self.changed = True

    def ready(self, item: Item) -> bool:
        if item.kind == "header":
            return item.parent in self.accepted
        if item.kind == "tag":
            return item.thread in self.progress.thread_ticket
        return True

    def raw(self, item: Item) -> bytes:
        if item.kind != "tag":
            return item.raw
        placeholder = f"[Support #{item.thread}]".encode()
        real = f"[Support #{self.progress.thread_ticket[item.thread]}]".encode()
        return item.raw.replace(placeholder, real, 1)

    def wake(self) -> None:
        with self.cond:
            self.changed = True
            self.cond.notify_all()

    def done(self, item: Item) -> None:
        with self.cond:
            self.accepted.add(item.message_id)
            self.changed = True
            self.cond.notify_all()

    def next(self) -> Item | None:
        with self.cond:
            while True:
                if self.changed:
                    self.changed = False
                    for i, item in enumerate(self.parked):
                        if self.ready(item):
                            return self.parked.pop(i)
                while self.items:
                    item = self.items.popleft()
                    if self.ready(item):
                        return item
                    self.parked.append(item)
                if not self.parked:
                    return None
                self.cond.wait(0.05)
                self.changed = True


def client(port: int, dispatcher: Dispatcher, latencies: list[float], errors: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        while (item := dispatcher.next()) is not None:
            raw = dispatcher.raw(item)
            start = time.perf_counter()
            try:
                smtp.sendmail(item.sender, [HELPDESK], raw)
            except smtplib.SMTPException as exc:
                errors.append(f"{item.message_id}: {exc}")
                dispatcher.done(item)  # never answered: let its replies go (they will fail the checks)
                continue
            latencies.append(time.perf_counter() - start)
            dispatcher.done(item)


# -- the daemon's processes ------------------------------------------------------------------
def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB, or (0, 0) for a process that is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    values = dict(line.split(":", 1) for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM")))
    return int(values.get("VmRSS", "0 kB").split()[0]), int(values.get("VmHWM", "0 kB").split()[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RssWatch:
    """Peak memory and CPU time of the daemon's processes, sampled from /proc."""

    root: int
    peak: dict[int, int] = field(default_factory=dict)  # pid → VmHWM kB
    peak_sum: int = 0  # the highest sum of VmRSS over the tree at one sample
    cpu: dict[int, float] = field(default_factory=dict)  # pid → CPU seconds at the last sample

    def sample(self) -> None:
        total = 0
        for pid in tree(self.root):
            rss, hwm = memory(pid)
            total += rss
            if hwm:
                self.peak[pid] = max(self.peak.get(pid, 0), hwm)
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
        self.peak_sum = max(self.peak_sum, total)

    def cpu_total(self) -> float:
        return sum(self.cpu.values())


def every(seconds: float, stop: threading.Event, *actions: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            for action in actions:
                action()
            stop.wait(seconds)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(condition: Callable[[], bool], progress: Callable[[], int], stall: float, what: str,
               alive: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds; give up when ``progress`` has not moved for ``stall`` seconds."""
    last, moved = progress(), time.monotonic()
    while not condition():
        if not alive():
            raise SystemExit(f"maild exited while waiting for {what}")
        now_value = progress()
        if now_value != last:
            last, moved = now_value, time.monotonic()
        elif time.monotonic() - moved > stall:
            raise SystemExit(f"no progress for {stall:.0f} s waiting for {what} (at {last})")
        time.sleep(0.05)


# -- checks (pure) -----------------------------------------------------------------------------
def check_store(items: Sequence[Item], ticket_of: dict[str, int]) -> list[str]:
    """Every mail stored; every reply in its thread's ticket; every thread its own ticket."""
    problems = [f"{item.message_id} not stored" for item in items if item.message_id not in ticket_of]
    first = {item.thread: ticket_of.get(item.message_id) for item in items if item.kind == "new"}
    for item in items:
        if item.kind != "new" and item.message_id in ticket_of and ticket_of[item.message_id] != first[item.thread]:
            problems.append(f"{item.message_id} ({item.kind} reply) went to ticket {ticket_of[item.message_id]}, "
                            f"its thread is ticket {first[item.thread]}")
    tickets = [t for t in first.values() if t is not None]
    if len(set(tickets)) != len(tickets):
        problems.append(f"{len(tickets) - len(set(tickets))} conversations share a ticket")
    return problems


def expected_outbound(items: Sequence[Item], agents: Sequence[str]) -> int:
    return sum(1 for item in items if item.kind == "new") + len(items) * len(agents)


def check_outbound(items: Sequence[Item], ticket_of: dict[str, int], agents: Sequence[str],
                   records: Iterable[Record]) -> list[str]:
    """One acknowledgement per new ticket to its customer, answering their mail with the
    ticket's tag; one notification per stored mail to every agent; nothing else."""
    new = {item.message_id: item for item in items if item.kind == "new"}
    per_ticket = Counter(ticket_of[item.message_id] for item in items if item.message_id in ticket_of)
    acks: Counter[str] = Counter()
    notices: Counter[tuple[str, int]] = Counter()
    problems = []
    for r in records:
        tag = TAG.search(r.subject)
        ticket = int(tag.group(1)) if tag else None
        if len(r.recipients) == 1 and r.recipients[0] in agents and ticket is not None:
            notices[(r.recipients[0], ticket)] += 1
        elif r.in_reply_to in new and r.recipients == (new[r.in_reply_to].sender,) \
                and ticket == ticket_of.get(r.in_reply_to):
            acks[r.in_reply_to] += 1
        else:
            problems.append(f"unexpected mail to {', '.join(r.recipients)}: {r.subject!r}")
    for message_id in new:
        if acks[message_id] != 1:
            problems.append(f"{acks[message_id]} acknowledgements for {message_id}")
    for agent in agents:
        for ticket, count in per_ticket.items():
            if notices[(agent, ticket)] != count:
                problems.append(f"{agent}: {notices[(agent, ticket)]} notifications about ticket {ticket}, "
                                f"expected {count}")
    return problems


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the run ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent SMTP connections")
    parser.add_argument("--agents", type=int, default=3, help="agents notified of every mail")
    parser.add_argument("--senders", type=int, default=300)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--connections", type=int, default=1,
                        help="outbound.smtp.connections: sessions to the smarthost at once per sender (default 1)")
    parser.add_argument("--workers", type=int, default=0,
                        help="maild run --workers N (default: maild's own default, the number of cores)")
    parser.add_argument("--prefill", type=int, default=0, help="old messages and old outbox rows, bulk-inserted first")
    parser.add_argument("--log-level", default="INFO", help="maild's log_level (INFO is the default config's)")
    parser.add_argument("--profile", help="record the daemon with py-spy into this file (raw collapsed stacks)")
    parser.add_argument("--profile-args", default="--rate 100 --nonblocking --threads",
                        help="extra py-spy record options")
    parser.add_argument("--stall", type=float, default=120, help="give up after this long without progress")
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the database")
    args = parser.parse_args()

    print(f"load average     {load()}  (start; {os.cpu_count()} cores)")
    work = Path(args.dir or tempfile.mkdtemp(prefix="maild-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    agents = agents_of(args.agents)
    items = corpus_items(args.mails, args.senders, first_ticket=0)
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if args.db == "postgresql":
        db_url, drop = fresh_postgres()
    else:
        db_url = f"sqlite:///{work / 'maild.db'}"
    port, sink_port = free_port(), free_port()
    config = write_config(work, db_url, port, sink_port, agents, args.log_level, args.connections)
    daemon: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    sink = SinkProcess(sink_port)
    stop = threading.Event()
    try:
        if args.prefill:
            prefill(config, work, args.prefill, [*agents, *sorted({i.sender for i in items})])
        sink.start()
        with open(work / "maild.log", "ab") as log:
            workers = ["--workers", str(args.workers)] if args.workers else []
            daemon = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run", *workers],
                                      cwd=ROOT, stdout=log, stderr=log)
        alive = lambda: daemon.poll() is None  # noqa: E731
        wait_until(lambda: _listening(port), lambda: 0, 60, "the SMTP listener", alive)
        engine = create_engine(db_url)
        progress = Progress(engine, {item.message_id: item for item in items})
        dispatcher = Dispatcher(items, progress)
        progress.on_ticket = dispatcher.wake
        rss = RssWatch(daemon.pid)
        every(0.05, stop, progress.poll)
        every(0.25, stop, rss.sample)
        if args.profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(daemon.pid),
                                    "--subprocesses", "--format", "raw", "-o", args.profile,
                                    *args.profile_args.split()], stdout=subprocess.DEVNULL)

        latencies: list[float] = []
        errors: list[str] = []
        clients = [threading.Thread(target=client, args=(port, dispatcher, latencies, errors), daemon=True)
                   for _ in range(args.clients)]
        rss.sample()
        cpu_start = rss.cpu_total()
        start = time.monotonic()
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        intake_end = time.monotonic()
        wait_until(lambda: len(progress.ticket_of) >= len(items) - len(errors), lambda: len(progress.ticket_of),
                   args.stall, "every mail committed", alive)
        stored_end = progress.when(len(progress.ticket_of))
        expected = expected_outbound(items, agents)
        wait_until(lambda: sink.count >= expected, lambda: sink.count, args.stall, "the outbound mail", alive)
        out_end = sink.last
        time.sleep(1.0)  # anything beyond the expected mail would arrive now and fail the check
        records = sink.records()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(120)
        stop.set()
        rss.sample()
        cpu = rss.cpu_total() - cpu_start

        n = len(items)
        q = n // 4
        first_q = q / max(progress.when(q) - start, 1e-6)
        last_q = q / max(stored_end - progress.when(n - q), 1e-6)
        size = sum(len(i.raw) for i in items)
        kinds = Counter(i.kind for i in items)
        print(f"corpus           {n} mails ({size / 1e6:.1f} MB): {kinds['new']} new tickets, {kinds['header']} replies "
              f"by headers, {kinds['tag']} by tag; {args.clients} SMTP clients; {args.db}; "
              f"prefilled {args.prefill} messages + {args.prefill} outbox rows")
        print(f"outbound         {len(agents)} agents notified of every mail, an acknowledgement per new ticket: "
              f"{expected} mails expected, {len(records)} at the sink; caps (outbound.limits.per_ticket, per_address, "
              f"per_address_day, per_agent, per_address_burst) set to {HIGH_CAP} so none holds a mail back; maild log_level {args.log_level}")
        print(f"stored           {n / (stored_end - start):.1f} mails/s  ({stored_end - start:.2f} s first byte in → "
              f"last ticket committed)")
        print(f"delivered        {n / (out_end - start):.1f} mails/s  ({out_end - start:.2f} s first byte in → last "
              f"outbound mail at the sink; {len(records) / (out_end - start):.1f} outbound mails/s)")
        print(f"smtp intake      {n / (intake_end - start):.1f} mails/s accepted  (replies wait for what they answer)")
        print(f"smtp latency     p50 {percentile(latencies, 50) * 1000:.1f} ms   p99 {percentile(latencies, 99) * 1000:.1f} ms"
              f"   (MAIL FROM → 250 after DATA)")
        print(f"quarters         first {first_q:.1f} mails/s   last {last_q:.1f} mails/s   ratio {last_q / first_q:.2f}")
        peaks = ", ".join(f"pid {pid} {kb / 1024:.0f} MB" for pid, kb in sorted(rss.peak.items()))
        print(f"peak RSS         {peaks}; highest sum at one moment {rss.peak_sum / 1024:.0f} MB "
              f"({len(rss.peak)} maild process{'es' if len(rss.peak) > 1 else ''})")
        print(f"daemon CPU       {cpu:.1f} s user+system over {out_end - start:.1f} s: {cpu / (out_end - start):.2f} "
              f"of {os.cpu_count()} cores on average")
        print(f"load average     {load()}  (end)")
        problems = [*errors, *check_store(items, progress.ticket_of),
                    *check_outbound(items, progress.ticket_of, agents, records)]
        for problem in problems[:20]:
            print(f"FAIL             {problem}")
        print("check            " + ("OK: every mail stored, every reply threaded, every acknowledgement and "
                                     "notification received" if not problems else f"{len(problems)} problems"))
        engine.dispose()
        return 1 if problems else 0
    finally:
        stop.set()
        if spy is not None and spy.poll() is None:
            spy.send_signal(signal.SIGINT)
            spy.wait(120)
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
        sink.stop()
        if not args.keep:
            drop()
            if not args.dir:
                shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept             {work} ({db_url})")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
