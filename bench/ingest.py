"""Full-pipeline ingest benchmark on SQLite, in one process.

Generates a realistic corpus (40% new tickets from a few hundred senders, 60% replies
threading by In-Reply-To/References or by subject tag, 1–5 KB bodies, 10% with a small
attachment, UTF-8 and ISO-8859-1), then feeds it the way the daemon does: each mail is made
durable in the spool (fsync) before it counts as acknowledged, and the spool worker runs the
whole pipeline (raw kept, parse, classify, identify, thread, decide, commit) concurrently.

Reports mails/second from the first byte in to the last ticket committed, the throughput of
the first vs the last quarter, and peak RSS. ``--prefill N`` first fills the database with N
messages (bulk insert) to show that threading cost does not grow with the database.

    .venv/bin/python bench/ingest.py --mails 5000
    .venv/bin/python bench/ingest.py --mails 5000 --prefill 1000000
    .venv/bin/python bench/ingest.py --mails 5000 --forms   # with the example website forms configured
"""
from __future__ import annotations

import argparse
import base64
import random
import re
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from maild.app import App  # noqa: E402
from maild.config import load_config  # noqa: E402
from maild.ingest.spool import SpoolWorker  # noqa: E402
from maild.store.models import Contact, Message, OutboxRow, Ticket  # noqa: E402

WORDS = ("apartamento vazamento contrato boleto chave visita proposta imóvel aluguel condomínio "
         "reunião documentação financiamento vistoria garagem elevador síndico portaria água luz "
         "the payment invoice please regards thanks meeting tomorrow urgent question answer").split()


def body(rng: random.Random) -> str:
    size = rng.randint(1000, 5000)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return "\r\n".join(lines) + "\r\n"


def make_mail(rng: random.Random, n: int, sender: str, subject: str, headers: dict[str, str]) -> bytes:
    latin = rng.random() < 0.3
    charset = "iso-8859-1" if latin else "utf-8"
    text = body(rng)
    head = [f"From: Cliente {n % 997} <{sender}>", "To: support@bench.example",
            f"Subject: {subject}", f"Message-ID: <bench-{n}@{sender.split('@')[1]}>",
            "Date: Mon, 02 Nov 2026 10:00:00 -0300", "MIME-Version: 1.0"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    encoded = text.encode(charset, "replace")
    if rng.random() < 0.1:
        boundary = f"b{n}"
        attachment = base64.encodebytes(rng.randbytes(rng.randint(2000, 20000))).decode()
        head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        parts = (f"--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + encoded + (
                 f"\r\n--{boundary}\r\nContent-Type: application/pdf; name=\"doc{n}.pdf\"\r\n"
                 f"Content-Disposition: attachment; filename=\"doc{n}.pdf\"\r\n"
                 f"Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--{boundary}--\r\n").encode()
        return ("\r\n".join(head) + "\r\n\r\n").encode() + parts
    head += [f"Content-Type: text/plain; charset={charset}", "Content-Transfer-Encoding: 8bit"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + encoded


@dataclass(frozen=True)
class Item:
    """One generated mail and what it is meant to be, so a benchmark can check the outcome."""

    raw: bytes
    n: int  # position in the corpus
    thread: int  # index of the conversation (its ticket is first_ticket + thread when mails go in order)
    kind: str  # new | header (In-Reply-To/References) | tag ([Support #n] in the subject)
    sender: str
    message_id: str
    parent: str  # the Message-ID this mail answers ("" for a new ticket)


def corpus_items(count: int, senders: int, first_ticket: int, seed: int = 7) -> list[Item]:
    """The corpus with each mail's thread and kind (the same mails as :func:`corpus`)."""
    rng = random.Random(seed)
    addresses = [f"cliente{i}@{rng.choice(['gmail.example', 'uol.example', 'empresa.example'])}" for i in range(senders)]
    threads: list[tuple[int, str, str, list[str]]] = []  # thread index, sender, subject, message-ids
    items = []
    for n in range(count):
        own_id = ""
        if not threads or rng.random() < 0.4:
            sender = rng.choice(addresses)
            own_id = f"<bench-{n}@{sender.split('@')[1]}>"
            subject = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} {n}"
            threads.append((len(threads), sender, subject, [own_id]))
            items.append(Item(make_mail(rng, n, sender, subject, {}), n, len(threads) - 1, "new", sender, own_id, ""))
            continue
        thread, sender, subject, ids = rng.choice(threads[-500:])
        own_id = f"<bench-{n}@{sender.split('@')[1]}>"
        if rng.random() < 0.5:
            headers = {"In-Reply-To": ids[-1], "References": " ".join(ids[-10:])}
            raw = make_mail(rng, n, sender, f"Re: {subject}", headers)
            items.append(Item(raw, n, thread, "header", sender, own_id, ids[-1]))
        else:
            raw = make_mail(rng, n, sender, f"RES: [Support #{first_ticket + thread}] {subject}", {})
            items.append(Item(raw, n, thread, "tag", sender, own_id, ids[0]))
        ids.append(own_id)
    return items


def corpus(count: int, senders: int, first_ticket: int, seed: int = 7) -> list[bytes]:
    return [item.raw for item in corpus_items(count, senders, first_ticket, seed)]


def prefill(app: App, messages: int, now: datetime) -> None:
    """Bulk-insert old tickets and messages straight into the tables."""
    per_ticket = 3
    batch = 20000
    with app.db.write() as session:
        session.execute(insert(Contact), [{"email": f"old{i}@old.example", "name": "", "phone": "", "consent": True,
                                           "blocked": False, "created_at": now, "updated_at": now} for i in range(1000)])
    tickets = -(-messages // per_ticket)
    for start in range(0, tickets, batch):
        with app.db.write() as session:
            session.execute(insert(Ticket), [
                {"subject": f"old {t}", "status": "closed", "priority": "normal", "requester_id": 1 + t % 1000,
                 "visible": True, "origin": "prefill", "message_count": per_ticket, "created_at": now,
                 "updated_at": now} for t in range(start, min(tickets, start + batch))])
    for start in range(0, messages, batch):
        with app.db.write() as session:
            session.execute(insert(Message), [
                {"ticket_id": 1 + m // per_ticket, "direction": "in", "message_id": f"<old-{m}@old.example>",
                 "in_reply_to": "", "references": "", "from_addr": "", "from_name": "", "to_addrs": "", "cc_addrs": "",
                 "subject": "old", "body_text": "old message body " * 20, "kind": "normal", "channel": "prefill",
                 "author": "", "created_at": now} for m in range(start, min(messages, start + batch))])
        print(f"\rprefill {min(messages, start + batch):>9}/{messages}", end="", file=sys.stderr)
    print(file=sys.stderr)


def example_forms() -> str:
    """The ``forms:`` section of the embedded default config, as YAML."""
    import yaml

    default = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "maild.yaml").read_text("utf-8"))
    return yaml.safe_dump({"forms": default["forms"]}, allow_unicode=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=300)
    parser.add_argument("--prefill", type=int, default=0, help="messages already in the database")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--forms", action="store_true",
                        help="configure the example website forms of config/maild.yaml (ordinary mail must not slow down)")
    args = parser.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="maild-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "maild.yaml").write_text(
        "helpdesk: {address: support@bench.example, subject_tag: Support, secret: bench}\n"
        f"database: {{url: 'sqlite:///{work}/maild.db'}}\n"
        f"storage: {{path: '{work}/storage'}}\nspool: {{path: '{work}/spool'}}\nlog_level: WARNING\n"
        + (example_forms() if args.forms else ""))
    app = App(load_config(work / "maild.yaml", base_dir=work))
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    if args.prefill:
        prefill(app, args.prefill, now - timedelta(days=400))
    with app.db.read() as session:
        first_ticket = (session.scalar(select(func.max(Ticket.id))) or 0) + 1
        before = session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) or 0
    mails = corpus(args.mails, args.senders, first_ticket)
    size = sum(map(len, mails))

    commit_times: list[float] = []
    clock = lambda: now  # noqa: E731 - the pipeline's clock

    def process(items: list[tuple[bytes, str]], at: datetime) -> object:
        outcomes = app.processor.process_batch(items, at)
        commit_times.extend([time.perf_counter()] * len(outcomes))
        return outcomes

    worker = SpoolWorker(app.spool, process, clock)
    start = time.perf_counter()
    worker.start()
    for raw in mails:
        app.spool.put(raw, "smtp")
    while len(commit_times) < len(mails):
        time.sleep(0.01)
    elapsed = commit_times[-1] - start
    worker.stop()

    quarter = len(commit_times) // 4
    def rate(times: list[float], origin: float) -> float:
        return len(times) / (times[-1] - origin)
    first_q = rate(commit_times[:quarter], start)
    last_q = rate(commit_times[-quarter:], commit_times[-quarter - 1])
    with app.db.read() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket)) - (first_ticket - 1)
        # Received mail only: acknowledgements are stored as "out" messages (and outbox rows).
        messages = (session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))
                    or 0) - before
        queued = session.scalar(select(func.count()).select_from(OutboxRow)) or 0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mails            {len(mails)} ({size / 1e6:.1f} MB), prefilled messages {args.prefill}")
    print(f"new tickets      {tickets}   messages stored {messages}   outbound mails queued {queued}")
    print(f"throughput       {len(mails) / elapsed:.0f} mails/s  ({elapsed:.2f} s, spool fsync + full pipeline + commit)")
    print(f"first quarter    {first_q:.0f} mails/s   last quarter {last_q:.0f} mails/s   ratio {last_q / first_q:.2f}")
    print(f"peak RSS         {rss_mb:.0f} MB")
    assert messages == len(mails), "every mail must be stored"
    expected = sum(1 for raw in mails if not re.search(rb"^Subject: (Re|RES): ", raw, re.M))
    assert tickets == expected, f"{tickets} tickets, expected {expected}: a reply did not thread"


if __name__ == "__main__":
    main()
