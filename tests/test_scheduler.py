"""The scheduler with a controllable clock, on SQLite and PostgreSQL: reminders at their time
and once (also across a restart that skipped them), rescheduling, re-announcements,
auto-close, the digest and its calendar, the leader lock."""
from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import select

from conftest import T0, Env, mail
from maild.cli import main as cli
from maild.config import OutboundSmtp
from maild.outbound.sender import Sender, SmtpTransport
from maild.scheduler.leader import AdvisoryLock, LeaseLock
from maild.store.db import Database
from maild.store.models import Event
from scheduling import ANA, BRUNO, CARLA, CUSTOMER, Clock, last_id, outbox_rows, service, set_ticket, team_env
from smtpsink import Sink

QUIET = """\
    scheduler:
      unaccepted_minutes: 0
      digest: {enabled: false}
    """


@pytest.fixture
def team(tmp_path: Path, db_url: str) -> Iterator[Env]:
    env = team_env(tmp_path, db_url, scheduler=QUIET)
    yield env
    env.app.db.dispose()


def new_ticket(env: Env, subject: str = "Vistoria", sender: str = CUSTOMER) -> int:
    outcome = env.process(mail(subject, f"Maria <{sender}>"))
    assert outcome.ticket_id is not None
    return outcome.ticket_id


def reminders(env: Env, since: int) -> list:
    return [r for r in outbox_rows(env, since) if r.subject.startswith("Reminder:")]


def test_a_reminder_fires_at_its_time_once(team: Env) -> None:
    tid = new_ticket(team)
    set_ticket(team, tid, next_action_at=T0 + timedelta(hours=2), assignee=BRUNO)
    clock = Clock(T0 + timedelta(hours=1))
    sched, mark = service(team, clock), last_id(team)
    assert sched.run_once().reminders == 0 and reminders(team, mark) == []
    clock.set(T0 + timedelta(hours=2))
    assert sched.run_once().reminders == 1
    [row] = reminders(team, mark)
    assert (row.to_addr, row.kind, row.automatic) == (BRUNO, "notify", True)  # the assignee only
    assert f"[Support #{tid}]" in row.subject
    for minutes in (0, 1, 60, 600):  # never again
        clock.set(T0 + timedelta(hours=2, minutes=minutes))
        assert sched.run_once().reminders == 0
    assert len(reminders(team, mark)) == 1
    with team.app.db.read() as session:
        kinds = [e.kind for e in session.scalars(select(Event).where(Event.ticket_id == tid))]
    assert kinds.count("reminder") == 1


def test_unassigned_reminder_goes_to_the_managers(team: Env) -> None:
    tid = new_ticket(team)
    set_ticket(team, tid, next_action_at=T0 + timedelta(minutes=5))
    mark = last_id(team)
    service(team, Clock(T0 + timedelta(minutes=5))).run_once()
    assert [r.to_addr for r in reminders(team, mark)] == [ANA]


def test_a_reminder_missed_while_down_fires_once_at_start(team: Env) -> None:
    tid = new_ticket(team)
    set_ticket(team, tid, next_action_at=T0 + timedelta(hours=2), assignee=CARLA)
    mark = last_id(team)
    before = service(team, Clock(T0 + timedelta(hours=1)))
    assert before.run_once().reminders == 0
    # maild stops; it comes back two days later: a new process, a new scheduler.
    after = service(team, Clock(T0 + timedelta(days=2)))
    assert after.run_once().reminders == 1
    assert after.run_once().reminders == 0
    again = service(team, Clock(T0 + timedelta(days=2, minutes=1)))  # and a second restart
    assert again.run_once().reminders == 0
    assert [r.to_addr for r in reminders(team, mark)] == [CARLA]


def test_changing_or_clearing_the_date_reschedules(team: Env) -> None:
    a, b = new_ticket(team, "A"), new_ticket(team, "B")
    set_ticket(team, a, next_action_at=T0 + timedelta(hours=2), assignee=BRUNO)
    set_ticket(team, b, next_action_at=T0 + timedelta(hours=2), assignee=BRUNO)
    clock = Clock(T0 + timedelta(hours=1))
    sched, mark = service(team, clock), last_id(team)
    assert sched.jobs.next_due(clock()) == T0 + timedelta(hours=2)
    set_ticket(team, a, next_action_at=T0 + timedelta(hours=3))  # moved (/next)
    set_ticket(team, b, next_action_at=None)  # cleared
    clock.set(T0 + timedelta(hours=2, minutes=30))
    assert sched.run_once().reminders == 0
    assert sched.jobs.next_due(clock()) == T0 + timedelta(hours=3)
    clock.set(T0 + timedelta(hours=3))
    assert sched.run_once().reminders == 1
    assert [r.subject.split("]")[0] for r in reminders(team, mark)] == [f"Reminder: [Support #{a}"]
    # A new date after the reminder fired is a new reminder.
    set_ticket(team, a, next_action_at=T0 + timedelta(hours=5))
    clock.set(T0 + timedelta(hours=5))
    assert sched.run_once().reminders == 1
    assert len(reminders(team, mark)) == 2


def test_no_reminder_on_a_closed_ticket(team: Env) -> None:
    tid = new_ticket(team)
    set_ticket(team, tid, next_action_at=T0 + timedelta(minutes=1), status="closed", closed_at=T0)
    assert service(team, Clock(T0 + timedelta(hours=1))).run_once().reminders == 0


def test_two_schedulers_at_once_send_each_reminder_once(team: Env) -> None:
    """Even with two leaders (a split brain the lock should prevent), the marks hold."""
    ids = [new_ticket(team, f"T{i}") for i in range(5)]
    for tid in ids:
        set_ticket(team, tid, next_action_at=T0 + timedelta(minutes=10), assignee=BRUNO)
    mark = last_id(team)
    clock = Clock(T0 + timedelta(minutes=10))
    other_db = Database(team.config.database_url)
    try:
        from maild.scheduler.jobs import Jobs
        from maild.scheduler.service import SchedulerService

        second = SchedulerService(Jobs(team.config, other_db, team.app.processor.signer),
                                  LeaseLock(other_db, 30), clock)
        first = service(team, clock)
        total = first.run_once().reminders + second.run_once().reminders
    finally:
        other_db.dispose()
    assert total == 5 and len(reminders(team, mark)) == 5


UNACCEPTED = """\
    scheduler:
      unaccepted_minutes: 30
      digest: {enabled: false}
    """


def test_unaccepted_new_tickets_are_announced_again_until_taken(tmp_path: Path, db_url: str) -> None:
    env = team_env(tmp_path, db_url, scheduler=UNACCEPTED)
    created = env.now + timedelta(seconds=1)
    tid = new_ticket(env)
    answered = new_ticket(env, "Answered")
    set_ticket(env, answered, status="waiting_customer")
    clock = Clock(created + timedelta(minutes=29))
    sched, mark = service(env, clock), last_id(env)
    assert sched.run_once().unaccepted == 0
    clock.set(created + timedelta(minutes=30))
    assert sched.run_once().unaccepted == 1
    first = [r for r in outbox_rows(env, mark)]
    assert sorted(r.to_addr for r in first) == sorted([ANA, BRUNO, CARLA])
    assert all(r.subject.startswith("Still waiting:") for r in first)
    clock.set(created + timedelta(minutes=45))
    assert sched.run_once().unaccepted == 0  # not before the next period
    clock.set(created + timedelta(minutes=61))
    assert sched.run_once().unaccepted == 1
    set_ticket(env, tid, assignee=BRUNO)  # /take
    clock.set(created + timedelta(minutes=200))
    assert sched.run_once().unaccepted == 0
    assert len(outbox_rows(env, mark)) == 6
    env.app.db.dispose()


AUTOCLOSE = """\
    workflow:
      autoclose_days: 7
    """


def test_autoclose_closes_with_a_mail_to_the_customer(tmp_path: Path, db_url: str) -> None:
    env = team_env(tmp_path, db_url, scheduler=QUIET, workflow=AUTOCLOSE)
    stale, fresh, hidden = new_ticket(env, "Stale"), new_ticket(env, "Fresh"), new_ticket(env, "Hidden")
    set_ticket(env, stale, status="waiting_customer", updated_at=T0, assignee=BRUNO)
    set_ticket(env, fresh, status="waiting_customer", updated_at=T0 + timedelta(days=5))
    set_ticket(env, hidden, status="waiting_customer", updated_at=T0, visible=False)
    clock = Clock(T0 + timedelta(days=7, minutes=1))
    sched, mark = service(env, clock), last_id(env)
    assert sched.run_once().autoclosed == 2
    assert sched.run_once().autoclosed == 0
    assert {t["id"]: t["status"] for t in env.tickets()} == {stale: "closed", fresh: "waiting_customer",
                                                               hidden: "closed"}
    rows = outbox_rows(env, mark)
    [closing] = [r for r in rows if r.to_addr == CUSTOMER]
    assert closing.ticket_id == stale and closing.kind == "notice" and "7 days" in closing.body_text
    assert [r.to_addr for r in rows if r.ticket_id == stale and r.to_addr != CUSTOMER] == [BRUNO]  # status_changed
    shown = env.ticket(stale)
    assert shown["messages"][-1]["direction"] == "out"  # the customer sees the closing mail on the ticket
    assert any(e["kind"] == "status" and e["new"] == "closed" and e["actor"] == "maild" for e in shown["events"])
    env.app.db.dispose()


DIGEST = """\
    scheduler:
      unaccepted_minutes: 0
      digest: {enabled: true, time: "08:00", upcoming_days: 7}
    """


def test_digest_counts_match_tickets_list_and_the_ics_holds_the_next_actions(
        tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    sink = Sink().start()
    env = team_env(tmp_path, db_url, scheduler=DIGEST)
    try:
        ids = [new_ticket(env, f"Pedido {i}", f"c{i}@cliente.example") for i in range(6)]
        day = datetime(2026, 11, 5, tzinfo=timezone.utc)
        set_ticket(env, ids[0], status="waiting_agent", assignee=BRUNO, next_action_at=day + timedelta(days=1, hours=14))
        set_ticket(env, ids[1], status="waiting_customer", assignee=BRUNO, next_action_at=day - timedelta(days=1))
        set_ticket(env, ids[2], status="closed", assignee=BRUNO, next_action_at=day + timedelta(days=2))
        set_ticket(env, ids[3], next_action_at=day + timedelta(days=3, hours=9))  # unassigned
        set_ticket(env, ids[4], assignee=CARLA, next_action_at=day + timedelta(days=2))
        set_ticket(env, ids[5], assignee=BRUNO, next_action_at=day + timedelta(days=30))  # beyond 7 days
        clock = Clock(day + timedelta(hours=7, minutes=59))
        sched, mark = service(env, clock), last_id(env)
        assert sched.run_once().digests == 0
        clock.set(day + timedelta(hours=8))
        assert sched.run_once().digests == 3
        assert sched.run_once().digests == 0  # once a day
        clock.set(day + timedelta(hours=20))
        assert sched.run_once().digests == 0
        digests = {r.to_addr: r for r in outbox_rows(env, mark)}
        assert set(digests) == {ANA, BRUNO, CARLA}

        assert cli(["--config", str(tmp_path / "maild.yaml"), "tickets", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        counts: dict[str, int] = {}
        for t in listed:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        body = digests[BRUNO].body_text
        assert f"Tickets by status ({len(listed)} in all)" in body
        for status, count in counts.items():
            label = env.config.status_labels()[status]  # the digest names statuses by their labels
            assert any(line.strip().rsplit(None, 1) == [label, str(count)] for line in body.splitlines()), (status, body)
        assert "Your open tickets (3):" in body  # 0, 1, 5 (2 is closed)
        assert "Overdue next actions (1):" in body and f"[Support #{ids[1]}]" in body

        sender = env.sender(Sender(env.app.db, SmtpTransport(OutboundSmtp(host="127.0.0.1", port=sink.port, timeout=5)),
                                   env.config.outbound.retry, env.config.helpdesk.address, clock))
        while sender.run_once():
            pass
        [got] = [r for r in sink.to(BRUNO) if "your tickets on" in r.message["Subject"]]
        msg = email.message_from_bytes(got.data, policy=email.policy.default)
        [ics_part] = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
        assert ics_part.get_filename() == "next-actions-2026-11-05.ics"
        cal = icalendar.Calendar.from_ical(ics_part.get_content())
        events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
        # Bruno's and the unassigned upcoming next actions within 7 days, not Carla's, not closed ones.
        assert sorted(events) == sorted(f"ticket-{i}-next-action@support.example.com" for i in (ids[0], ids[3]))
        first = events[f"ticket-{ids[0]}-next-action@support.example.com"]
        assert first.decoded("dtstart") == day + timedelta(days=1, hours=14)
        assert f"[Support #{ids[0]}] Pedido 0" == str(first["summary"])
    finally:
        sink.stop()
        env.close()


def test_calendar_export(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    env = team_env(tmp_path, db_url, scheduler=QUIET)
    a, b, c = new_ticket(env, "A"), new_ticket(env, "B"), new_ticket(env, "C")
    set_ticket(env, a, next_action_at=datetime(2030, 1, 2, 13, 30, tzinfo=timezone.utc), assignee=BRUNO)
    set_ticket(env, b, next_action_at=datetime(2030, 1, 3, 9, 0, tzinfo=timezone.utc), assignee=CARLA)
    set_ticket(env, c, next_action_at=datetime(2030, 1, 4, 9, 0, tzinfo=timezone.utc), status="closed")
    config = str(tmp_path / "maild.yaml")
    assert cli(["--config", config, "calendar", "export"]) == 0
    cal = icalendar.Calendar.from_ical(capsys.readouterr().out)
    assert [str(e["summary"]) for e in cal.walk("VEVENT")] == [f"[Support #{a}] A", f"[Support #{b}] B"]
    out = tmp_path / "bruno.ics"
    assert cli(["--config", config, "calendar", "export", "--agent", "Bruno", "-o", str(out)]) == 0
    [event] = icalendar.Calendar.from_ical(out.read_text()).walk("VEVENT")
    assert event.decoded("dtstart") == datetime(2030, 1, 2, 13, 30, tzinfo=timezone.utc)
    env.app.db.dispose()


# -- the leader lock --------------------------------------------------------------------
def test_sqlite_lease_one_leader_and_takeover_after_expiry(tmp_path: Path) -> None:
    env = team_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    a, b = LeaseLock(env.app.db, 30, "a"), LeaseLock(env.app.db, 30, "b")
    assert a.acquire(T0) and not b.acquire(T0 + timedelta(seconds=1))
    assert a.acquire(T0 + timedelta(seconds=20))  # renewed
    assert not b.acquire(T0 + timedelta(seconds=45))
    # a dies (no more renewals): b takes over once the lease ran out; a, back, follows.
    assert b.acquire(T0 + timedelta(seconds=51))
    assert not a.acquire(T0 + timedelta(seconds=52))
    b.release()  # a clean stop hands over at once
    assert a.acquire(T0 + timedelta(seconds=53))
    env.app.db.dispose()


@pytest.mark.postgres
def test_postgres_advisory_lock_one_leader_and_takeover_when_it_dies(pg_database: str) -> None:
    one, two = Database(pg_database), Database(pg_database)
    a, b = AdvisoryLock(one), AdvisoryLock(two)
    try:
        assert a.acquire(T0) and not b.acquire(T0)
        assert a.acquire(T0)  # still leading
        assert a.conn is not None
        a.conn.invalidate()  # the leader's connection dies: the server drops its lock
        assert b.acquire(T0)
        assert not a.acquire(T0)  # a notices, steps down and cannot take it back
        b.release()
        assert a.acquire(T0)
    finally:
        a.release()
        b.release()
        one.dispose()
        two.dispose()


def test_commands_by_mail_drive_assignment_notice_and_reminder(team: Env) -> None:
    """The commands issue's /assign and /next, as agents send them, feed the triggers and the scheduler."""
    tid = new_ticket(team)
    notify = [r for r in outbox_rows(team) if r.to_addr == ANA][0]
    reply_to = notify.reply_to.split("<")[1].rstrip(">")
    mark = last_id(team)
    team.process(mail("Re: " + notify.subject, f"Ana <{ANA}>", body="/assign bruno\n/next +2h\n/note visita\n",
                      to=reply_to, headers={"In-Reply-To": notify.message_id}))
    [assigned] = outbox_rows(team, mark)
    assert (assigned.to_addr, assigned.subject) == (BRUNO, f"[Support #{tid}] Vistoria: assigned to you")
    due = datetime.fromisoformat(team.ticket(tid)["next_action_at"])
    clock = Clock(due - timedelta(minutes=1))
    sched, mark = service(team, clock), last_id(team)
    assert sched.run_once().reminders == 0
    clock.set(due)
    assert sched.run_once().reminders == 1 and [r.to_addr for r in reminders(team, mark)] == [BRUNO]
    # Bruno moves the date with /next: a new reminder at the new time, once.
    # ... answering the notice he got (its Reply-To is his own signed address).
    team.process(mail("Re: " + assigned.subject, f"Bruno <{BRUNO}>", body="/next +1d\n/note remarcado\n",
                      to=assigned.reply_to.split("<")[1].rstrip(">"), headers={"In-Reply-To": assigned.message_id}))
    moved = datetime.fromisoformat(team.ticket(tid)["next_action_at"])
    assert moved > due
    clock.set(moved)
    assert sched.run_once().reminders == 1 and sched.run_once().reminders == 0
    assert len(reminders(team, mark)) == 2


def test_replacing_the_jobs_on_reload_takes_the_new_poll_interval_and_names_what_needs_a_restart(team: Env) -> None:
    from maild.scheduler.jobs import Jobs

    svc = service(team, Clock(T0))
    svc.start()
    try:
        from test_e2e import wait_for

        assert svc._scheduler is not None
        scheduler = svc._scheduler
        wait_for(lambda: scheduler.get_job("poll") is not None, 20, "the scheduler leading")  # its first round is at once
        poll = scheduler.get_job("poll")
        assert poll is not None and poll.trigger.interval == timedelta(seconds=team.config.scheduler.poll_seconds)
        changed = team.config.model_copy(update={"scheduler": team.config.scheduler.model_copy(
            update={"poll_seconds": 7.0, "lease_seconds": 99.0, "unaccepted_minutes": 5})})
        pending = svc.replace_jobs(Jobs(changed, team.app.db, team.app.processor.signer))
        assert pending == ["scheduler.lease_seconds"]
        assert scheduler.get_job("poll").trigger.interval == timedelta(seconds=7)
        assert svc.jobs.settings.unaccepted_minutes == 5 and svc.settings.poll_seconds == 7.0
    finally:
        svc.stop()
