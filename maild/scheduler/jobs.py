"""What the scheduler does, as functions of (database, now): no APScheduler, no wall clock.

- :meth:`Jobs.reminders`: each ticket whose next-action time has come gets one
  ``reminder_due`` event (the trigger rules say who hears of it: by default the assignee,
  or the managers when nobody is assigned).
- :meth:`Jobs.unaccepted`: a ``new`` ticket nobody took is announced again every
  ``scheduler.unaccepted_minutes`` (seed 002's inbox), an ``unaccepted`` event.
- :meth:`Jobs.autoclose`: a ticket waiting on the customer for ``workflow.autoclose_days``
  is closed, with a closing mail to the customer and a ``status_changed`` event.
- :meth:`Jobs.digests`: once a day per agent, counts per status, their open tickets, the
  overdue next actions and an iCalendar file of the coming ones — not sent on a day with
  nothing to report (no open ticket of theirs or unassigned, nothing overdue or coming).

The ticket table is the truth: a reminder is due when ``tickets.next_action_at`` says so,
read at every run, so a date changed or cleared by any maild instance counts at once.
Each thing done is recorded in ``schedule_marks`` in the same transaction as the mail it
queued; the mark's primary key (job, key, due time) makes a second attempt — a restarted
or a second leader — fail instead of sending twice. A reminder missed while maild was down
is simply still due at the next run: it fires once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, and_, cast, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maild import calendar
from maild.config import Config
from maild.domain.events import EventSpec
from maild.domain.tags import looks
from maild.notify.deliver import Notifier
from maild.notify.engine import CUSTOMER, Delivery, Directory, Event, Person, TicketFacts, resolve
from maild.notify.facts import COLUMNS, FROM, of_row, ticket_facts
from maild.outbound import templates
from maild.outbound.compose import MailAttachment
from maild.store import history
from maild.store.db import Database
from maild.store.models import ScheduleMark
from maild.store.repo import tag_names, tickets
from maild.store.rows import rowcount
from maild.threading.signing import Signer

log = logging.getLogger("maild.scheduler")
marks = ScheduleMark.__table__
CLOSED = "closed"
BATCH = 200  # tickets per run and job; the rest wait for the next run


@dataclass(frozen=True)
class RunResult:
    reminders: int = 0
    unaccepted: int = 0
    autoclosed: int = 0
    digests: int = 0
    queued: int = 0  # messages put in the outbox / SMS queue

    def __add__(self, other: RunResult) -> RunResult:
        return RunResult(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values())))


def _mark_missing(job: str, due: ColumnElement[Any]) -> ColumnElement[bool]:
    return ~exists().where(marks.c.job == job, marks.c.key == cast(tickets.c.id, String), marks.c.due_at == due)


class Jobs:
    """Built once from the Config; every method is one run at ``now``."""

    def __init__(self, config: Config, db: Database, signer: Signer,
                 on_cap: Callable[[str], None] | None = None) -> None:
        self.db = db
        self.config = config
        self.tag_looks = config.tag_looks()
        self.rules = config.trigger_rules()
        self.directory = Directory.from_config(config.agents)
        self.notifier = Notifier(config, signer, on_cap=on_cap)
        self.settings = config.scheduler
        self.zone = ZoneInfo(config.helpdesk.timezone)
        self.tag = config.helpdesk.subject_tag

    def run(self, now: datetime) -> RunResult:
        """Every job once, each ticket in its own transaction."""
        result = self.reminders(now) + self.unaccepted(now) + self.autoclose(now)
        if self.settings.digest.enabled:
            result += self.digests(now)
        return result

    # -- one ticket, one transaction, one mark ---------------------------------------------
    def _once(self, job: str, key: str, due: datetime, now: datetime, work: Callable[[Session], int]) -> int | None:
        """Record (job, key, due) and do ``work(session)`` in one transaction; None if done before."""
        try:
            with self.db.write() as session:
                session.execute(insert(marks).values(job=job, key=key, due_at=due, done_at=now, detail=""))
                return work(session)
        except IntegrityError:
            return None  # another run (or another leader) did it

    def _fire(self, session: Session, event: Event, facts: TicketFacts, now: datetime, *,
              first: list[Delivery] | None = None) -> int:
        deliveries = list(first or [])
        taken = {(d.person.email, d.channel) for d in deliveries}
        deliveries += [d for d in resolve([event], facts, self.rules, self.directory, None)
                       if (d.person.email, d.channel) not in taken]
        if not deliveries:
            return 0
        variables = self.notifier.variables(facts, event={"actor": "maild", "actor_name": ""})
        variables["autoclose"] = {"days": self.config.workflow.autoclose_days}
        variables["listing"] = []
        return self.notifier.send(session, deliveries, facts, now, variables=variables)

    # -- reminders ---------------------------------------------------------------------
    def reminders(self, now: datetime) -> RunResult:
        query = (select(*COLUMNS).select_from(FROM)
                 .where(tickets.c.next_action_at.is_not(None), tickets.c.next_action_at <= now,
                        tickets.c.status != CLOSED, _mark_missing("reminder", tickets.c.next_action_at))
                 .order_by(tickets.c.next_action_at).limit(BATCH))
        with self.db.read() as session:
            due = [of_row(r) for r in session.execute(query)]
        fired = queued = 0
        for facts in due:
            assert facts.next_action_at is not None

            def work(session: Session, facts: TicketFacts = facts, due: datetime = facts.next_action_at) -> int:
                fresh = ticket_facts(session, facts.id)  # re-read inside the transaction
                if fresh is None or fresh.next_action_at != facts.next_action_at or fresh.status == CLOSED:
                    return -1
                history.record(session, facts.id, [EventSpec("reminder", None, due.isoformat(),
                                                             "next action due")], at=now, actor="maild")
                return self._fire(session, Event("reminder_due"), fresh, now)

            n = self._once("reminder", str(facts.id), facts.next_action_at, now, work)
            if n is not None and n >= 0:
                fired += 1
                queued += n
                log.info("ticket %d: reminder for %s fired (%d messages)", facts.id,
                         facts.next_action_at.isoformat(timespec="minutes"), n)
        return RunResult(reminders=fired, queued=queued)

    def next_due(self, now: datetime) -> datetime | None:
        """The earliest future moment a job has something to do (for a precise wake-up)."""
        candidates = []
        with self.db.read() as session:
            candidates.append(session.scalar(select(func.min(tickets.c.next_action_at)).where(
                tickets.c.next_action_at > now, tickets.c.status != CLOSED)))
        if self.settings.digest.enabled:
            candidates.append(self.digest_slot(now.astimezone(self.zone).date() + timedelta(days=1)))
        found = [c for c in candidates if c is not None]
        return min(found) if found else None

    # -- seed 002's inbox ---------------------------------------------------------------
    def unaccepted(self, now: datetime) -> RunResult:
        minutes = self.settings.unaccepted_minutes
        if minutes <= 0:
            return RunResult()
        period = timedelta(minutes=minutes)
        query = (select(*COLUMNS).select_from(FROM)
                 .where(tickets.c.status == "new", tickets.c.assignee.is_(None),
                        tickets.c.created_at <= now - period)
                 .order_by(tickets.c.id).limit(BATCH))
        with self.db.read() as session:
            waiting = [of_row(r) for r in session.execute(query)]
        fired = queued = 0
        for facts in waiting:
            assert facts.created_at is not None
            slot = facts.created_at + period * int((now - facts.created_at) / period)

            def work(session: Session, facts: TicketFacts = facts) -> int:
                fresh = ticket_facts(session, facts.id)
                if fresh is None or fresh.status != "new" or fresh.assignee:
                    return -1
                return self._fire(session, Event("unaccepted"), fresh, now)

            n = self._once("unaccepted", str(facts.id), slot, now, work)
            if n is not None and n >= 0:
                fired += 1
                queued += n
        return RunResult(unaccepted=fired, queued=queued)

    # -- auto-close -----------------------------------------------------------------------
    def autoclose(self, now: datetime) -> RunResult:
        days = self.config.workflow.autoclose_days
        if days <= 0:
            return RunResult()
        cutoff = now - timedelta(days=days)
        stale = and_(tickets.c.status == "waiting_customer", tickets.c.updated_at <= cutoff)
        with self.db.read() as session:
            ids = list(session.scalars(select(tickets.c.id).where(stale).order_by(tickets.c.id).limit(BATCH)))
        closed = queued = 0
        for ticket_id in ids:
            with self.db.write() as session:
                done = session.execute(update(tickets).where(tickets.c.id == ticket_id, stale).values(
                    status=CLOSED, closed_at=now, updated_at=now))
                if not rowcount(done):
                    continue  # the customer wrote meanwhile, or another leader closed it
                history.record(session, ticket_id, [EventSpec(
                    "status", "waiting_customer", CLOSED, f"closed automatically after {days} days waiting on the "
                                                          "customer")], at=now, actor="maild")
                facts = ticket_facts(session, ticket_id)
                assert facts is not None
                event = Event("status_changed", "waiting_customer", CLOSED)
                first = []
                if facts.visible and "@" in facts.requester:  # consent: checked by the outbound policy
                    first.append(Delivery(event, "autoclose", "email", templates.AUTOCLOSE,
                                          Person(facts.requester, facts.requester_name, facts.requester_phone,
                                                 CUSTOMER)))
                queued += self._fire(session, event, facts, now, first=first)
                closed += 1
            log.info("ticket %d closed after %d days waiting on the customer", ticket_id, days)
        return RunResult(autoclosed=closed, queued=queued)

    # -- the daily digest ----------------------------------------------------------------
    def digest_slot(self, day: date) -> datetime:
        hh, mm = (int(x) for x in self.settings.digest.time.split(":"))
        return datetime.combine(day, time(hh, mm), tzinfo=self.zone).astimezone(ZoneInfo("UTC"))

    def digests(self, now: datetime) -> RunResult:
        """Today's digest (local date) to every agent, once, from the digest time on.

        A day the daemon missed entirely is not sent later: yesterday's digest is stale.
        """
        today = now.astimezone(self.zone).date()
        slot = self.digest_slot(today)
        if now < slot:
            return RunResult()
        sent = 0
        for agent in self.directory.agents:
            def work(session: Session, email: str = agent.email, name: str = agent.name) -> int:
                return self._digest(session, email, name, today, now)

            if self._once("digest", agent.email, slot, now, work):  # 0: nothing to report, marked done
                sent += 1
        return RunResult(digests=sent, queued=sent)

    def _digest(self, session: Session, email: str, name: str, today: date, now: datetime) -> int:
        from maild.store.repo import status_counts

        days = self.settings.digest.upcoming_days
        counts = status_counts(session)
        mine_or_free = (tickets.c.assignee == email) | tickets.c.assignee.is_(None)
        open_ = tickets.c.status != CLOSED

        def rows(*where: ColumnElement[bool], order: ColumnElement[Any] = tickets.c.id) -> list[dict[str, Any]]:
            found = session.execute(select(tickets.c.id, tickets.c.subject, tickets.c.status, tickets.c.assignee,
                                           tickets.c.next_action_at).where(*where).order_by(order).limit(500))
            return [{"id": r.id, "tag": f"[{self.tag} #{r.id}]", "subject": r.subject, "status": r.status,
                     "assignee": r.assignee or "", "next_action_at": self.notifier.local(r.next_action_at),
                     "at": r.next_action_at} for r in found]

        mine = rows(tickets.c.assignee == email, open_)
        overdue = rows(open_, mine_or_free, tickets.c.next_action_at < now, order=tickets.c.next_action_at)
        shown = tag_names(session, [r["id"] for r in (*mine, *overdue)])
        for r in (*mine, *overdue):
            r["tags"] = [look.as_dict() for look in looks(shown.get(r["id"], []), self.tag_looks)]
        items = calendar.upcoming(session, now, now + timedelta(days=days), assignee=email, include_unassigned=True)
        unassigned = session.scalar(select(func.count()).select_from(tickets).where(
            open_, tickets.c.assignee.is_(None)))
        if not (mine or overdue or items or unassigned):
            log.info("no digest for %s on %s: nothing to report", email, today.isoformat())
            return 0
        ics = calendar.to_ics(items, self.config.helpdesk, now, self.tag, self.config.status_labels())
        variables = {
            "helpdesk": self.notifier.helpdesk_vars, "recipient": {"name": name, "email": email},
            "digest": {"date": today.isoformat(), "total": sum(counts.values()), "upcoming_days": days,
                       "counts": [{"status": s, "count": counts[s]} for s in self._in_order(counts)],
                       "mine": mine, "overdue": overdue,
                       "upcoming": [{"id": i.ticket_id, "subject": i.subject,
                                     "next_action_at": self.notifier.local(i.at)} for i in items]},
        }
        rendered = self.notifier.renderer.render(templates.DIGEST, variables)
        out = self.notifier.mail("digest", "auto-generated", None, rendered, to=(name, email), now=now,
                                 attachments=(MailAttachment(f"next-actions-{today.isoformat()}.ics",
                                                             "text/calendar; method=PUBLISH", ics),))
        from maild.outbound import outbox

        outbox.enqueue(session, out, now, now + self.notifier.lifetime)
        return 1

    def _in_order(self, counts: dict[str, int]) -> list[str]:
        """The statuses counted, in the workflow's order (seed 000's tabs), unknown ones last."""
        order = [st.name for st in self.config.workflow.statuses]
        return [st for st in order if st in counts] + sorted(st for st in counts if st not in order)
