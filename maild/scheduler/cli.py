"""``maild calendar export``, ``maild scheduler run-once|status``, ``maild sms list``; check-config lines."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maild.config import Config

if TYPE_CHECKING:  # the database layer is imported only by the commands that open it
    from maild.store.db import Database


def register(sub: Any) -> None:
    cal = sub.add_parser("calendar", help="next actions as iCalendar").add_subparsers(metavar="ACTION")
    export = cal.add_parser("export", help="write an .ics file of the open tickets' next actions")
    export.add_argument("--agent", help="only this agent's tickets (address or name)")
    export.add_argument("--unassigned", action="store_true", help="with --agent: also tickets nobody took")
    export.add_argument("--days", type=int, help="only the coming N days (default: every open next action)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(handler=_calendar_export)

    sched = sub.add_parser("scheduler", help="reminders, re-announcements, digests").add_subparsers(metavar="ACTION")
    once = sched.add_parser("run-once", help="run every due job now, outside the daemon (idempotent)")
    once.add_argument("--json", action="store_true", help="the counts as JSON")
    once.set_defaults(handler=_run_once)

    status = sched.add_parser("status", help="the settings, who leads, the next due moment and each job's last run")
    status.add_argument("--json", action="store_true", help="the same as JSON")
    status.set_defaults(handler=_status)

    sms = sub.add_parser("sms", help="the SMS queue").add_subparsers(metavar="ACTION")
    slist = sms.add_parser("list", help="SMS maild sends, newest first")
    slist.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default 50)")
    slist.add_argument("--json", action="store_true", help="JSON instead of lines")
    slist.set_defaults(handler=_sms_list)


def _db(config: Config) -> Database:
    from maild.cli_db import open_database

    return open_database(config)


def _calendar_export(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild import calendar
    from maild.clock import utc_now

    assignee = None
    if args.agent:
        agent = config.agent_by_address().get(args.agent.lower()) or next(
            (a for a in config.agents if a.name.lower() == args.agent.lower()), None)
        if agent is None:
            print(f"maild: no agent {args.agent!r} in the configuration", file=sys.stderr)
            return 64
        assignee = agent.email
    now = utc_now()
    with _db(config).read() as session:
        items = calendar.upcoming(session, now if args.days else None,
                                  now + timedelta(days=args.days) if args.days else None,
                                  assignee=assignee, include_unassigned=args.unassigned)
    ics = calendar.to_ics(items, config.helpdesk, now, config.helpdesk.subject_tag, config.status_labels())
    if args.output:
        Path(args.output).write_text(ics, encoding="utf-8")
        print(f"{len(items)} next action(s) written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(ics)
    return 0


def _run_once(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.clock import utc_now
    from maild.scheduler.jobs import Jobs
    from maild.threading.signing import Signer

    helpdesk = config.helpdesk
    signer = Signer(config.signing_secret(), helpdesk.local_part, helpdesk.domain)
    result = Jobs(config, _db(config), signer).run(utc_now())
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    else:
        print(f"{result.reminders} reminder(s), {result.unaccepted} re-announcement(s), {result.autoclosed} "
              f"auto-closed, {result.digests} digest(s); {result.queued} message(s) queued "
              "(a running maild sends them)")
    return 0


def _status(config: Config, args: argparse.Namespace, path: Path) -> int:
    from sqlalchemy import func, select

    from maild.clock import utc_now
    from maild.scheduler.jobs import Jobs
    from maild.scheduler.leader import current_leader
    from maild.store.models import ScheduleMark
    from maild.threading.signing import Signer

    helpdesk, s = config.helpdesk, config.scheduler
    db, now = _db(config), utc_now()
    jobs = Jobs(config, db, Signer(config.signing_secret(), helpdesk.local_part, helpdesk.domain))
    with db.read() as session:
        last = {job: at for job, at in session.execute(
            select(ScheduleMark.job, func.max(ScheduleMark.done_at)).group_by(ScheduleMark.job))}
    next_due, leader = jobs.next_due(now), current_leader(db, now)
    last_done = {job: _iso(last.get(job)) for job in ("reminder", "unaccepted", "autoclose", "digest")}
    data = {
        "enabled": s.enabled, "poll_seconds": s.poll_seconds, "unaccepted_minutes": s.unaccepted_minutes,
        "autoclose_days": config.workflow.autoclose_days, "timezone": helpdesk.timezone,
        "digest": {"enabled": s.digest.enabled, "time": s.digest.time},
        "leader": leader, "next_due": next_due.isoformat() if next_due else None, "last_done": last_done,
    }
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"scheduler    {'enabled' if s.enabled else 'disabled in this file'}; poll every {s.poll_seconds:g} s")
    print(f"leader       {leader or 'none (no maild runs the jobs now)'}")
    print(f"next due     {data['next_due'] or '-'}")
    for job, at in last_done.items():
        print(f"last {job:<11} {at or 'never'}")
    return 0


def _iso(at: Any) -> str | None:
    return at.isoformat() if at is not None else None


def _sms_list(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.notify import sms

    with _db(config).read() as session:
        rows = [{"id": r.id, "state": r.state, "ticket": r.ticket_id, "phone": r.phone, "rule": r.rule,
                 "text": r.text, "attempts": r.attempts, "created_at": r.created_at.isoformat(),
                 "last_error": r.last_error} for r in sms.listing(session, args.limit)]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for r in rows or [{"id": "(none)"}]:
            print("  ".join(str(r.get(k, "")) for k in ("id", "state", "ticket", "phone", "rule", "last_error")))
    return 0


def describe(config: Config) -> tuple[list[str], list[str]]:
    """check-config lines (what the scheduler and the triggers will do), and the problems:
    a rule naming a template that does not exist or does not render."""
    from maild.outbound.templates import SAMPLE, Renderer, TemplateError
    from maild.notify.deliver import render_sms

    s = config.scheduler
    lines = []
    if s.enabled:
        digest = f"digest daily at {s.digest.time} ({config.helpdesk.timezone})" if s.digest.enabled else "no digest"
        unacc = (f"untaken new tickets announced again every {s.unaccepted_minutes} min" if s.unaccepted_minutes
                 else "no re-announcements")
        close = (f"auto-close after {config.workflow.autoclose_days} days waiting on the customer"
                 if config.workflow.autoclose_days else "no auto-close")
        lines.append(f"  scheduler    reminders at next-action times; {unacc}; {close}; {digest}; "
                     f"poll every {s.poll_seconds:g} s, one leader per database")
    else:
        lines.append("  scheduler    disabled in this instance")
    rules = config.trigger_rules()
    where = "default set" if config.triggers is None else "from the file"
    lines.append(f"  triggers     {len(rules)} rules ({where}):")
    for rule in rules:
        cond = ", ".join(f"{k}={v}" for k, v in rule.when.model_dump(exclude_none=True).items())
        fallback = f" (else {', '.join(rule.fallback)})" if rule.fallback else ""
        lines.append(f"    {rule.name}: on {'|'.join(rule.on)}{' if ' + cond if cond else ''} -> "
                     f"{', '.join(rule.to)}{fallback} by {rule.channel}, template {rule.template or 'default'}")
    if config.sms:
        lines.append(f"  sms          {config.sms.method} {config.sms.url}")
    renderer = Renderer(config.templates_path(), config.helpdesk.language, config.status_labels())
    problems = []
    for rule in rules:
        for event in rule.on:
            try:
                if rule.channel == "sms":
                    render_sms(renderer, rule.template_for(event), SAMPLE)
                else:
                    renderer.render(rule.template_for(event), SAMPLE)
            except TemplateError as exc:
                problems.append(f"trigger {rule.name}: {exc}")
    for problem in dict.fromkeys(problems):
        lines.append(f"  error        {problem}")
    return lines, problems
