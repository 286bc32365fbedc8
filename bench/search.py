"""Full-text search benchmark: fill N messages, then time `maild tickets search`'s query.

Fills tickets (3 messages each, 1,000 requesters, a tag on one ticket in ten) with
Portuguese-like text — common words, accented words, a long tail of rarer ones, and one
protocol number per ticket — through plain INSERTs, so the database's own triggers build
the index exactly as they do for mail (the fill rate is the index's cost on the write path).
Then each query runs ``--repeat`` times through :func:`maild.store.search.search` (top 20),
and the latency is reported as median, 95th percentile and maximum, with the hit count.

    .venv/bin/python bench/search.py                        # 100,000 messages, SQLite
    .venv/bin/python bench/search.py --messages 1000000
    .venv/bin/python bench/search.py --db postgresql        # a fresh database on 127.0.0.1
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, insert, select, text  # noqa: E402

from maild.app import App  # noqa: E402
from maild.config import load_config  # noqa: E402
from maild.store.models import Contact, Message, Tag, Ticket, TicketTag  # noqa: E402
from maild.store.search import search  # noqa: E402

COMMON = ("apartamento vazamento contrato boleto chave visita proposta imóvel aluguel condomínio reunião "
          "documentação financiamento vistoria garagem elevador síndico portaria água luz ação pagamento "
          "manutenção cobrança inspeção orçamento mudança locação fiança seguro").split()
FILLER = "de a o que e do da em um para com não uma os no se na por mais as dos como mas".split()
PER_TICKET = 3
BATCH = 5000
QUERIES = [
    ("common word", "apartamento"),
    ("accented word, typed without accents", "acao"),
    ("two common words", "vazamento garagem"),
    ("rare word", "{rare}"),
    ("rare + common", "{rare} contrato"),
    ("one ticket's protocol number", "protocolo{middle}"),
    ("requester address", "cliente123@exemplo.com.br"),
    ("tag", "vip"),
    ("no match", "inexistente"),
]


def fragments(rng: random.Random, count: int = 4000) -> list[str]:
    """Ready-made pieces of text: a body is three of them, so a million bodies cost little."""
    out = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(20, 80)):
            r = rng.random()
            if r < 0.5:
                words.append(rng.choice(FILLER))
            elif r < 0.9:
                words.append(rng.choice(COMMON))
            else:  # a long tail: termo0 … termo49999, the low numbers far more often
                words.append(f"termo{int(rng.paretovariate(1.2) * 10) % 50000}")
        out.append(" ".join(words))
    return out


def rare_word(pieces: list[str]) -> str:
    """A word of exactly one fragment: in about 1 message of 1,300."""
    counts: dict[str, int] = {}
    for piece in pieces:
        for word in set(piece.split()):
            counts[word] = counts.get(word, 0) + 1
    return min(w for w, n in counts.items() if n == 1 and w.startswith("termo"))


def fill(app: App, messages: int, now: datetime, rng: random.Random, pieces: list[str]) -> float:
    tickets = -(-messages // PER_TICKET)
    started = time.perf_counter()
    with app.db.write() as session:
        session.execute(insert(Contact), [{"email": f"cliente{i}@exemplo.com.br", "name": f"Cliente {i} Souza",
                                           "phone": "", "consent": True, "blocked": False, "created_at": now,
                                           "updated_at": now} for i in range(1000)])
        session.execute(insert(Tag), [{"name": "vip", "colour": ""}])
    for start in range(0, tickets, BATCH):
        end = min(tickets, start + BATCH)
        with app.db.write() as session:
            session.execute(insert(Ticket), [
                {"subject": f"{rng.choice(COMMON)} {rng.choice(COMMON)} protocolo{t + 1}", "status": "new",
                 "priority": "normal", "requester_id": 1 + t % 1000, "visible": True, "origin": "bench",
                 "message_count": PER_TICKET, "created_at": now, "updated_at": now} for t in range(start, end)])
            session.execute(insert(TicketTag), [{"ticket_id": t + 1, "tag_id": 1}
                                                for t in range(start, end) if t % 10 == 0])
    for start in range(0, messages, BATCH):
        end = min(messages, start + BATCH)
        with app.db.write() as session:
            session.execute(insert(Message), [
                {"ticket_id": 1 + m // PER_TICKET, "direction": "in", "message_id": f"<bench-{m}@exemplo.com.br>",
                 "in_reply_to": "", "references": "", "from_addr": f"cliente{(m // PER_TICKET) % 1000}@exemplo.com.br",
                 "from_name": "", "to_addrs": "", "cc_addrs": "", "subject": "Re: mensagem",
                 "body_text": "\n".join(rng.choice(pieces) for _ in range(3)), "kind": "normal", "channel": "bench",
                 "author": "", "created_at": now} for m in range(start, end)])
        rate = end / (time.perf_counter() - started)
        print(f"\rfill {end:>9}/{messages} messages ({rate:,.0f}/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="runs of each query (default 20)")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="maild-search-"))
    work.mkdir(parents=True, exist_ok=True)
    drop = None
    url = f"sqlite:///{work}/maild.db"
    if args.db == "postgresql":
        from e2e import fresh_postgres

        url, drop = fresh_postgres()
    (work / "maild.yaml").write_text(
        "helpdesk: {address: support@bench.example, subject_tag: Support, secret: bench}\n"
        f"database: {{url: '{url}'}}\nstorage: {{path: '{work}/storage'}}\nspool: {{path: '{work}/spool'}}\n"
        "log_level: WARNING\n")
    app = App(load_config(work / "maild.yaml", base_dir=work))
    try:
        rng = random.Random(15)
        pieces = fragments(rng)
        seconds = fill(app, args.messages, datetime(2026, 11, 2, tzinfo=timezone.utc), rng, pieces)
        words = {"rare": rare_word(pieces), "middle": -(-args.messages // PER_TICKET) // 2}
        if args.db == "postgresql":  # the planner's statistics, as autovacuum keeps them on a live database
            with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        with app.db.read() as session:
            count = session.scalar(select(func.count()).select_from(Message)) or 0
        print(f"{args.db}: {count:,} messages in {-(-count // PER_TICKET):,} tickets, filled and indexed in "
              f"{seconds:.1f} s ({count / seconds:,.0f} messages/s)")
        print(f"{'query':<40} {'hits':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        for label, template in QUERIES:
            query = template.format(**words)
            times = []
            hits = 0
            for _ in range(args.repeat):
                with app.db.read() as session:
                    started = time.perf_counter()
                    hits = len(search(session, query, 20))
                    times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            print(f"{label + ' (' + query + ')':<40.40} {hits:>5} {statistics.median(times):>10.1f} {p95:>8.1f} "
                  f"{times[-1]:>8.1f}")
    finally:
        app.db.dispose()
        if drop is not None:
            drop()


if __name__ == "__main__":
    main()
