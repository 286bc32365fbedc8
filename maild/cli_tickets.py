"""``maild tickets list|show|counts|close|tag|assign|delete``: the seeds' ticket screens on
the command line (seed 000's tabs and filters, seed 004's bulk finalize and delete).

Filter values are checked against the configuration: a status is any name, label or alias
of the workflow (``--status finalizado``), an assignee an agent's address or name (or
``me``/``none``), and an unknown one is a usage error (64) naming the known values.
Bulk changes go through the same commands as the control address (``close 12 13``), so
they check, apply and record history exactly as a mail would, and tell the same people
through the trigger rules (:mod:`maild.notify.engine`): the customer's status notice when a
rule sends one, the new assignee's notification. The mails wait in the outbox; a running
``maild run`` sends them.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from maild.exitcodes import EX_DATAERR, EX_OK, EX_USAGE

if TYPE_CHECKING:
    from maild.commands.workflow import Workflow
    from maild.config import Config
    from maild.notify.planning import TriggerPlanner
    from maild.store.db import Database


class _Bad(Exception):
    """A filter or argument the configuration does not know: exit 64 with this text."""


def register(tickets: Any) -> None:
    """Add the actions to the ``tickets`` subcommand group."""
    listing = tickets.add_parser("list", help="list tickets (every filter given must hold)")
    listing.add_argument("--status", help="a status: name, label or alias of the workflow (e.g. finalizado)")
    listing.add_argument("--tag", help="only tickets with this tag")
    listing.add_argument("--contact", help="only tickets of this requester address")
    listing.add_argument("--assignee", help="an agent's address or name; `none` for unassigned")
    listing.add_argument("--type", help="only tickets of this type (as a form or /type set it)")
    listing.add_argument("--since", help="created on or after this date (YYYY-MM-DD, helpdesk time zone) or "
                                         "this many days ago (7d)")
    listing.add_argument("--overdue", action="store_true", help="open tickets whose next action is past")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=_list)
    show = tickets.add_parser("show", help="one ticket with its messages and history")
    show.add_argument("id", type=int, help="the ticket number")
    show.add_argument("--json", action="store_true", help="JSON: fields, messages, attachments, history")
    show.set_defaults(handler=_show)
    counts = tickets.add_parser("counts", help="tickets per status, every status of the workflow in order")
    counts.add_argument("--json", action="store_true", help="JSON: [{status, label, count}]")
    counts.set_defaults(handler=_counts)
    for verb, what, extra in (("close", "close tickets", None), ("tag", "add (+x) or remove (-x) tags", "tags"),
                              ("assign", "assign tickets to an agent (or `none`)", "agent")):
        bulk = tickets.add_parser(verb, help=f"{what}: `maild tickets {verb} 12 13 ...`")
        bulk.add_argument("ids", nargs="+", type=int, help="ticket numbers")
        if extra:
            bulk.add_argument(f"--{extra}", required=True, help="e.g. +vip -spam" if extra == "tags" else
                              "the agent's address or name")
        bulk.set_defaults(handler=_bulk, verb=verb)
    erase = tickets.add_parser("delete", help="delete tickets: messages, raw mails and attachments erased, the "
                                              "ticket number and one history line kept")
    erase.add_argument("ids", nargs="+", type=int, help="ticket numbers")
    erase.add_argument("--yes", action="store_true", help="really delete (without it, nothing is done)")
    erase.add_argument("--json", action="store_true", help="what was erased, as JSON")
    erase.set_defaults(handler=_delete)


def _database(config: Config) -> Database:
    from maild.cli_db import open_database

    return open_database(config)


def _workflow(config: Config) -> Workflow:
    from maild.commands.workflow import Workflow

    return Workflow.from_config(config)


def _status(workflow: Workflow, text: str) -> str:
    status = workflow.status(text)
    if status is None:
        known = ", ".join(f"{s.name} ({s.label})" if s.label else s.name for s in workflow.statuses)
        raise _Bad(f"unknown status {text!r}; statuses: {known}")
    return status


def _assignee(workflow: Workflow, text: str) -> str:
    if text.strip().lower() in ("none", "nobody", "-", "nenhum", "ninguém", "ninguem"):
        return ""
    agent, why = workflow.agent(text)
    if agent is None:
        raise _Bad(f"{why}; agents: {', '.join(a.email for a in workflow.agents) or '(none configured)'}")
    return agent.email


def _since(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    raw = text.strip().lower()
    if raw.endswith("d") and raw[:-1].isdigit():
        return now - timedelta(days=int(raw[:-1]))
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        raise _Bad(f"--since {text!r}: write a date (2026-11-01) or a number of days (7d)") from None
    return datetime.combine(day, time(0), tzinfo=zone)


def _usage(exc: _Bad) -> int:
    print(f"maild: {exc}", file=sys.stderr)
    return EX_USAGE


def _list(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.clock import utc_now
    from maild.views import TicketFilter, list_tickets

    workflow, now = _workflow(config), utc_now()
    try:
        where = TicketFilter(
            status=_status(workflow, args.status) if args.status else None,
            tag=args.tag.lstrip("#").lower() if args.tag else None, requester=args.contact,
            assignee=_assignee(workflow, args.assignee) if args.assignee is not None else None,
            type=args.type, since=_since(args.since, ZoneInfo(config.helpdesk.timezone), now) if args.since else None,
            overdue_at=now if args.overdue else None)
    except _Bad as exc:
        return _usage(exc)
    with _database(config).read() as session:
        rows = list_tickets(session, where=where)
    if args.json:
        from maild.cli_output import print_json

        print_json([{**r, "status_label": workflow.label(r["status"])} for r in rows])
        return EX_OK
    from maild.cli_output import table

    table(rows, [("id", 5), ("status", 20), ("assignee", 24), ("requester", 28), ("msgs", 4), ("updated", 16),
                  ("subject", 50)],
           lambda r: [r["id"], workflow.label(r["status"]), r["assignee"], r["requester"], r["message_count"],
                      (r["updated_at"] or "")[:16].replace("T", " "), r["subject"]], config.helpdesk.language)
    return EX_OK


def _counts(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.views import status_counts

    workflow = _workflow(config)
    with _database(config).read() as session:
        counts = status_counts(session, workflow.status_names())
    rows = [{"status": s, "label": workflow.label(s), "count": n} for s, n in counts.items()]
    if args.json:
        from maild.cli_output import print_json

        print_json(rows)
        return EX_OK
    from maild.commands.phrases import word

    for row in rows:
        print(f"{row['label']:<28} {row['count']:>6}")
    print(f"{word('total', config.helpdesk.language):<28} {sum(counts.values()):>6}")
    return EX_OK


def _show(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.cli_output import line, print_json
    from maild.commands.phrases import kind, say, word
    from maild.text import for_terminal
    from maild.views import ticket_detail

    with _database(config).read() as session:
        data = ticket_detail(session, args.id, config.tag_looks())
    if data is None:
        print(f"maild: no ticket {args.id}", file=sys.stderr)
        return EX_DATAERR
    if args.json:
        print_json(data)
        return EX_OK
    language, labels = config.helpdesk.language, config.status_labels()
    line(f"#{data['id']} {data['subject']}")
    line(say(f"  status {data['status']} ({labels.get(data['status'], data['status'])})  priority "
              f"{data['priority']}  requester {data['requester']}  assignee {data['assignee'] or '-'}  tags "
              f"{', '.join(t['text'] for t in data['tag_details']) or '-'}", language, labels))
    for m in data["messages"]:
        print()
        line(f"--- {word(m['direction'], language)} {m['created_at'][:19]} {word('from', language)} {m['from']}  "
             f"{m['subject']}")
        print(for_terminal(m["body_text"].rstrip()[:4000]))
        for a in m["attachments"]:
            line(f"  [{word('attachment', language)}] {a['filename']} ({a['content_type']}, {a['size']} bytes)")
    print("\n" + word("history:", language))
    for e in data["events"]:
        old, new = (_value(e["kind"], v, language, labels) for v in (e["old"], e["new"]))
        change = f"{old or ''} -> {new}" if old or new else ""
        parts = (e["at"][:19], e["actor"], kind(e["kind"], language), change, say(e["detail"], language, labels))
        line("  " + " ".join(p for p in parts if p))
    return EX_OK


def _value(kind: str, value: str | None, language: str, labels: dict[str, str]) -> str | None:
    """A history entry's old or new value as ``tickets show`` prints it: a status by its
    label, a message's direction and a held mail's description in the helpdesk's language."""
    from maild.commands.phrases import say, word

    if value is None:
        return None
    if kind in ("status", "created", "deleted"):
        return labels.get(value, value)
    if kind == "message":
        return word(value, language)
    return say(value, language, labels) if kind == "mail_held" else value


def _bulk(config: Config, args: argparse.Namespace, path: Path) -> int:
    """``close|tag|assign ID…``: the control address's command on each ticket, in one transaction."""
    from maild.clock import utc_now
    from maild.commands import control
    from maild.commands.apply import apply_ops
    from maild.commands.phrases import say
    from maild.commands.queries import CommandReads
    from maild.commands.workflow import AgentRef
    from maild.domain.events import change_events
    from maild.domain.sender import Sender

    workflow, now = _workflow(config), utc_now()
    arg = {"close": "", "tag": getattr(args, "tags", ""), "assign": getattr(args, "agent", "")}[args.verb]
    if args.verb == "assign":
        try:
            arg = _assignee(workflow, arg) or "none"
        except _Bad as exc:
            return _usage(exc)
    actor_email = f"cli:{getpass.getuser()}"
    actor = AgentRef(actor_email, actor_email, "manager", ())
    line = f"{args.verb} {' '.join(str(i) for i in args.ids)} {arg}".strip()
    language, labels = config.helpdesk.language, config.status_labels()
    triggers = _triggers(config)
    queued = 0
    with _database(config).write() as session:
        result = control.run_line(line, [], workflow=workflow, actor=actor, lookup=CommandReads(session), now=now,
                                  tz=ZoneInfo(config.helpdesk.timezone))
        for _index, ticket_id, changes in result.changes:
            done = apply_ops(session, ticket_id, changes, actor=actor_email, message_id=None, now=now)
            events = change_events((what, old, new) for _tid, what, old, new in done.changes)
            queued += triggers.plan_changes(session, ticket_id, events, sender=Sender(actor_email, actor_email),
                                            mail_id=None, now=now)
    section = result.sections[0]
    for text in section.applied:
        print(say(text, language, labels))
    if queued:
        print(say(f"{queued} notification(s) queued", language, labels))
    for text in section.rejected:
        print(say(text, language, labels), file=sys.stderr)
    return EX_DATAERR if section.rejected else EX_OK


def _triggers(config: Config) -> TriggerPlanner:
    """The trigger rules as the daemon runs them, for changes made on the command line."""
    from maild.notify.planning import TriggerPlanner
    from maild.outbound.templates import Renderer
    from maild.threading.signing import Signer

    helpdesk = config.helpdesk
    return TriggerPlanner(config, Signer(config.signing_secret(), helpdesk.local_part, helpdesk.domain),
                          Renderer(config.templates_path(), helpdesk.language, config.status_labels()))


def _delete(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.clock import utc_now
    from maild.contacts.erase import delete_tickets
    from maild.contacts.forget import delete_blobs
    from maild.store import search
    from maild.store.blobs import open_blobs

    if not args.yes:
        print(f"maild: deleting erases tickets {', '.join(f'#{i}' for i in args.ids)} for good (messages, raw "
              f"mails, attachments); run again with --yes", file=sys.stderr)
        return EX_USAGE
    db = _database(config)
    blobs = open_blobs(config, db)
    with db.write() as session:
        report = delete_tickets(session, blobs, args.ids, now=utc_now(), actor=f"cli:{getpass.getuser()}")
        search.purge_deleted(session)  # the search index forgets the erased words too
    delete_blobs(blobs, report.blobs_to_delete)
    if db.is_sqlite and report.deleted:
        from maild.contacts.cli import _vacuum

        _vacuum(db)  # no freed page keeps the erased text
    if args.json:
        from maild.cli_output import print_json

        print_json(report.as_dict())
    else:
        data = report.as_dict()
        print(f"deleted {len(report.deleted)} ticket(s) {' '.join(f'#{i}' for i in report.deleted)}: "
              f"{data['messages']} message(s), {data['attachments']} attachment(s), {data['raw_mails']} raw mail(s), "
              f"{data['outbox']} outbound mail(s) erased".replace("  ", " "))
    for number in report.missing:
        print(f"maild: no ticket #{number} (or deleted before)", file=sys.stderr)
    return EX_DATAERR if report.missing else EX_OK
