"""The end-to-end benchmark (bench/e2e.py): its checks catch what they claim to, and a small
run against the real daemon passes them (SQLite with a prefill, and PostgreSQL)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import PG_ADMIN_URL, need_server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from e2e import check_outbound, check_store, expected_outbound  # noqa: E402
from ingest import corpus_items  # noqa: E402
from profile_summary import group_of, parse, summarize  # noqa: E402
from sink import Record  # noqa: E402

AGENTS = ["agent0@bench.example", "agent1@bench.example"]


def outcome(count: int = 60):  # noqa: ANN201 - the corpus, where it was stored, what the sink got
    items = corpus_items(count, 20, first_ticket=0)
    tickets = {item.thread: 100 + item.thread for item in items if item.kind == "new"}
    ticket_of = {item.message_id: tickets[item.thread] for item in items}
    records = [Record(0.0, (item.sender,), f"Re: [Support #{tickets[item.thread]}] x", item.message_id)
               for item in items if item.kind == "new"]
    records += [Record(0.0, (agent,), f"[Support #{ticket_of[item.message_id]}] x", "")
                for item in items for agent in AGENTS]
    return items, ticket_of, records


def test_corpus_items_say_what_each_mail_is() -> None:
    items = corpus_items(300, 20, first_ticket=0)
    assert {i.kind for i in items} == {"new", "header", "tag"}
    for item in items:
        assert f"Message-ID: {item.message_id}".encode() in item.raw
        if item.kind == "header":
            assert f"In-Reply-To: {item.parent}".encode() in item.raw
        if item.kind == "tag":
            assert f"[Support #{item.thread}]".encode() in item.raw


def test_checks_pass_a_complete_run() -> None:
    items, ticket_of, records = outcome()
    assert len(records) == expected_outbound(items, AGENTS)
    assert check_store(items, ticket_of) == []
    assert check_outbound(items, ticket_of, AGENTS, records) == []


def test_store_check_finds_a_lost_mail_and_a_reply_in_another_ticket() -> None:
    items, ticket_of, _ = outcome()
    reply = next(i for i in items if i.kind == "tag")
    lost = next(i for i in items if i.kind == "header")
    ticket_of[reply.message_id] = 9999
    del ticket_of[lost.message_id]
    problems = check_store(items, ticket_of)
    assert f"{lost.message_id} not stored" in problems
    assert any(p.startswith(f"{reply.message_id} (tag reply) went to ticket 9999") for p in problems)


def test_outbound_check_finds_a_missing_notification_a_missing_ack_and_a_stray_mail() -> None:
    items, ticket_of, records = outcome()
    ack = next(r for r in records if r.recipients[0] not in AGENTS)
    notice = next(r for r in records if r.recipients[0] == AGENTS[1])
    records = [r for r in records if r is not ack and r is not notice]
    records.append(Record(0.0, ("someone@else.example",), "hello", ""))
    problems = check_outbound(items, ticket_of, AGENTS, records)
    assert f"0 acknowledgements for {ack.in_reply_to}" in problems
    assert any(p.startswith(f"{AGENTS[1]}: ") for p in problems)
    assert "unexpected mail to someone@else.example: 'hello'" in problems


def test_profile_groups_a_stack_by_its_innermost_telling_frame() -> None:
    lines = [
        'process 1:"maild run";thread (11): outbox-sender;_run (maild/loop.py:30);run_once (maild/outbound/sender.py:170);'
        "sendmail (smtplib.py:880);recv (socket.py:10) 3\n",
        'process 1:"maild run";thread (12): spool-worker;process_batch (maild/ingest/processor.py:120);'
        "parse (maild/ingest/parse.py:40);get (email/_header_value_parser.py:100) 2\n",
        'process 1:"maild run";thread (12): spool-worker;process_batch (maild/ingest/processor.py:120);'
        "to_bytes (maild/outbound/compose.py:40);get (email/_header_value_parser.py:100) 1\n",
    ]
    samples = list(parse(lines))
    assert [group_of(s.frames) for s in samples] == ["outbound SMTP", "parse", "templates/compose"]
    report = summarize(samples, 5)
    assert "6 samples" in report and " 50.0%  outbound SMTP" in report and " 50.0%  get (email/_header_value_parser.py)" in report
    assert " 50.0%  spool-worker\n" in report and " 50.0%  outbox-sender: outbound SMTP" in report


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "e2e.py"), "--clients", "3", "--agents", "2",
                           "--stall", "60", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_small_run_on_sqlite_with_prefill_stores_threads_and_delivers_everything() -> None:
    result = run_bench("--mails", "80", "--prefill", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "check            OK: every mail stored, every reply threaded" in out
    assert "prefilled 300 messages + 300 outbox rows" in out
    for label in ("stored ", "delivered ", "smtp latency ", "quarters ", "peak RSS ", "daemon CPU ", "load average "):
        assert f"\n{label}" in out or out.startswith(label)


@pytest.mark.slow
def test_small_run_on_postgresql_in_a_fresh_database() -> None:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        need_server(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()
    result = run_bench("--mails", "60", "--db", "postgresql")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgresql" in result.stdout and "check            OK" in result.stdout
