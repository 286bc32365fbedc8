"""Two `maild run` processes on one PostgreSQL database: one scheduler leader, each reminder
sent once, and a new leader takes over when the leader is killed."""
from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from conftest import _reset_pg, free_port, mail
from maild.app import App
from maild.config import load_config
from maild.store.models import Ticket
from scheduling import ANA, BRUNO, CUSTOMER, team_config
from smtpsink import Sink
from daemons import Daemon, drain, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECTIONS = """\
    outbound:
      smtp: {{host: 127.0.0.1, port: {sink}, timeout: 5}}
      retry: {{first_seconds: 0.3, max_seconds: 1, poll_seconds: 0.2, claim_timeout_seconds: 3}}
    """
SCHEDULER = """\
    scheduler:
      poll_seconds: 0.5
      unaccepted_minutes: 0
      digest: {enabled: false}
      lease_seconds: 3
      leader_retry_seconds: 0.5
    """


@pytest.fixture
def pair(tmp_path: Path, pg_database: str, sink: Sink) -> Iterator[list[Daemon]]:
    daemons = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        port = free_port()
        config = team_config(directory, pg_database, smtp_port=str(port), outbound=SECTIONS.format(sink=sink.port),
                             scheduler=SCHEDULER,
                             # APScheduler's own "executed successfully" lines count the runs.
                             logging="logging: {libraries: INFO}\n")
        if name == "a":  # migrate once, start from empty tables
            App(load_config(config, base_dir=directory)).db.dispose()
            _reset_pg(pg_database)
        daemons.append(Daemon(config, port, directory / "maild.log"))
    yield daemons
    for d in daemons:
        if d.proc and d.proc.poll() is None:
            d.kill()


OFFSETS: dict[Path, int] = {}


def start(d: Daemon) -> None:
    OFFSETS[d.log] = d.log.stat().st_size if d.log.exists() else 0
    d.start()


def log_now(d: Daemon) -> str:
    """The daemon's log since its last start."""
    return d.log.read_text()[OFFSETS.get(d.log, 0):] if d.log.exists() else ""


def runs(d: Daemon, job: str) -> int:
    """How many times ``SchedulerService.<job>`` finished in this daemon since its last start
    (APScheduler logs each run)."""
    return sum(1 for line in log_now(d).splitlines()
               if f'"SchedulerService.{job} ' in line and "executed successfully" in line)


def more_runs(d: Daemon, job: str, n: int = 3) -> None:
    """Drain instead of sleeping: wait until ``job`` has run ``n`` more times in ``d``."""
    target = runs(d, job) + n
    wait_for(lambda: runs(d, job) >= target, 30, f"{n} more runs of {job}")


def leader(daemons: list[Daemon]) -> list[Daemon]:
    return [d for d in daemons if d.proc and d.proc.poll() is None and "this instance is the leader" in log_now(d)]


def remind(url: str, ticket_id: int, at: datetime) -> None:
    """What `/next` does, written directly (the commands issue sets this column)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(Ticket).where(Ticket.id == ticket_id).values(next_action_at=at, assignee=BRUNO))
    engine.dispose()


def reminders(sink: Sink) -> list[str]:
    return [r.message["Subject"] for r in sink.received if r.message["Subject"].startswith("Reminder:")]


def test_two_daemons_send_each_reminder_once_and_a_new_leader_takes_over(
        pair: list[Daemon], sink: Sink, pg_database: str) -> None:
    a, b = pair
    start(a)
    start(b)
    wait_for(lambda: len(leader(pair)) == 1, 20, "one scheduler leader")
    for n in range(3):
        with smtplib.SMTP("127.0.0.1", (a, b)[n % 2].port, timeout=10) as smtp:
            smtp.sendmail(CUSTOMER, ["support@support.example.com"],
                          mail(f"Pedido {n}", CUSTOMER, message_id=f"<two-{n}@cliente.example>"))
    wait_for(lambda: len(a.tickets()) == 3, 20, "three tickets")
    # Two daemons ingest in parallel: ticket numbers follow processing, not sending, order.
    ids = {t["subject"]: t["id"] for t in a.tickets()}
    expected = [f"Reminder: [Support #{ids[f'Pedido {n}']}] Pedido {n}" for n in range(3)]
    now = datetime.now(timezone.utc)
    for n in (0, 1):
        remind(pg_database, ids[f"Pedido {n}"], now + timedelta(seconds=2))
    wait_for(lambda: len(reminders(sink)) >= 2, 20, "two reminders")
    [lead] = leader(pair)
    more_runs(lead, "_poll")  # several polls of the leader and rounds of the other later: nothing more
    more_runs(b if lead is a else a, "leader_round")
    drain(lead)
    assert sorted(reminders(sink)) == sorted(expected[:2])
    assert {tuple(r.rcpt_tos) for r in sink.received if r.message["Subject"].startswith("Reminder:")} == {(BRUNO,)}

    [first] = leader(pair)
    follower = b if first is a else a
    first.kill()  # SIGKILL: its PostgreSQL session ends and the advisory lock with it
    remind(pg_database, ids["Pedido 2"], datetime.now(timezone.utc) + timedelta(seconds=1))
    wait_for(lambda: "this instance is the leader" in log_now(follower), 20, "the follower to take over")
    wait_for(lambda: len(reminders(sink)) >= 3, 20, "the third reminder, from the new leader")
    more_runs(follower, "_poll")
    assert sorted(reminders(sink)) == sorted(expected)
    start(first)  # back: it follows, and sends nothing again
    more_runs(first, "leader_round")
    more_runs(follower, "_poll")
    assert len(reminders(sink)) == 3 and leader(pair) == [follower]
    assert ANA not in {r for m in sink.received for r in m.rcpt_tos if m.message["Subject"].startswith("Reminder")}
    assert follower.stop() == 0 and first.stop() == 0
