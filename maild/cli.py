"""The ``maild`` command line: the daemon, admin commands and script-friendly JSON."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maild.cli_db import close_databases
from maild.cli_db import open_database as _database
from maild.config import Config, ConfigError, config_path, load_config
from maild.exitcodes import EX_CONFIG, EX_DATAERR, EX_OK, EX_TEMPFAIL, EX_USAGE
from maild.text import escape_c1, for_terminal, one_line


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EX_USAGE
    path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"maild: configuration error\n{exc}", file=sys.stderr)
        return EX_CONFIG
    logging.basicConfig(level=getattr(logging, config.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiosmtpd logs every SMTP command, MAIL FROM and RCPT TO addresses included, at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        return int(args.handler(config, args, path) or 0)
    finally:
        close_databases()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maild", description="E-mail-driven helpdesk daemon.")
    parser.add_argument("--config", help="the YAML file (default: $MAILD_CONFIG or the embedded config/maild.yaml)")
    sub = parser.add_subparsers(metavar="COMMAND")

    sub.add_parser("run", help="run the daemon").set_defaults(handler=_run)
    sub.add_parser("check-config", help="validate the configuration and explain it").set_defaults(handler=_check)

    ingest = sub.add_parser("ingest", help="take one mail from FILE or stdin (exit 0 done, 75 retry later)")
    ingest.add_argument("file", nargs="?")
    ingest.add_argument("--channel", default="pipe")
    ingest.set_defaults(handler=_ingest)

    tickets = sub.add_parser("tickets", help="list and show tickets").add_subparsers(metavar="ACTION")
    listing = tickets.add_parser("list", help="list tickets")
    listing.add_argument("--status")
    listing.add_argument("--tag")
    listing.add_argument("--contact", help="only tickets of this requester address")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_tickets_list)
    show = tickets.add_parser("show", help="one ticket with its messages and history")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_tickets_show)

    quarantine = sub.add_parser("quarantine", help="mails that could not be parsed").add_subparsers(metavar="ACTION")
    qlist = quarantine.add_parser("list")
    qlist.add_argument("--json", action="store_true")
    qlist.add_argument("--ignored", action="store_true",
                       help="mails kept without a ticket (bounces, reports, auto-replies) and the rules that fired")
    qlist.set_defaults(handler=_quarantine_list)

    out = sub.add_parser("outbox", help="mail maild sends: list, retry").add_subparsers(metavar="ACTION")
    olist = out.add_parser("list", help="outbound mails, newest first")
    olist.add_argument("--state", choices=["queued", "claimed", "sent", "failed"])
    olist.add_argument("--limit", type=int, default=50)
    olist.add_argument("--json", action="store_true")
    olist.set_defaults(handler=_outbox_list)
    oretry = out.add_parser("retry", help="queue failed mails again (all failed ones, or these ids)")
    oretry.add_argument("ids", nargs="*", type=int)
    oretry.set_defaults(handler=_outbox_retry)

    reprocess = sub.add_parser("reprocess", help="run quarantined mails through the pipeline again")
    reprocess.add_argument("ids", nargs="*", type=int, help="quarantine ids (default: all)")
    reprocess.set_defaults(handler=_reprocess)

    from maild.contacts.cli import register as register_contacts

    register_contacts(sub)  # contacts import|export|show|forget|block|unblock, catalog show

    from maild.scheduler.cli import register as register_scheduler

    register_scheduler(sub)  # calendar export, scheduler run-once, sms list

    db = sub.add_parser("db", help="database schema").add_subparsers(metavar="ACTION")
    db.add_parser("upgrade", help="migrate the schema to this version").set_defaults(handler=_db_upgrade)
    db.add_parser("status", help="show the schema version").set_defaults(handler=_db_status)
    return parser


def _run(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.app import App
    from maild.store.db import SchemaError

    try:
        app = App(config)
    except SchemaError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_CONFIG
    app.run()
    return EX_OK


def _check(config: Config, args: argparse.Namespace, path: Path) -> int:
    helpdesk = config.helpdesk
    print(f"{path}: OK")
    print(f"  helpdesk     {helpdesk.name} <{helpdesk.address}>, subject tag [{helpdesk.subject_tag} #n]")
    print(f"  database     {config.database_url} (auto_migrate: {config.database.auto_migrate})")
    print(f"  storage      {config.path(config.storage.path)}   spool {config.path(config.spool.path)}")
    smtp = config.smtp_server
    if smtp.enabled:
        print(f"  listener     {'LMTP' if smtp.lmtp else 'SMTP'} on {smtp.host}:{smtp.port}, "
              f"max {smtp.max_message_size} bytes, accepts {helpdesk.address} and {helpdesk.local_part}+…@{helpdesk.domain}")
        print(f"  limits       {smtp.max_connections} sessions ({smtp.max_connections_per_ip} per IP), "
              f"{smtp.inflight_budget} bytes of DATA in flight; a mail failing {config.spool.max_attempts} times "
              f"is quarantined")
    for account in config.imap:
        print(f"  imap         {account.name}: {account.username}@{account.host}:{account.port} {account.folder}")
    for agent in config.agents:
        print(f"  agent        {agent.name} <{agent.email}> {agent.role} teams={','.join(agent.teams) or '-'}")
    for form in config.forms:
        print(f"  form         {form.name}: type {form.ticket.type or '-'}, subtype {form.ticket.subtype or '-'}; "
              f"customer from field {', '.join(form.labels('email'))}")
    if config.catalog is not None:
        from maild.catalog import from_config

        print(f"  catalog      {config.path(config.catalog.path)}: {len(from_config(config))} items")
    out = config.outbound
    if out.enabled:
        smarthost = out.smtp
        tls = "implicit TLS" if smarthost.ssl else "STARTTLS" if smarthost.starttls else "no TLS"
        login = (f"login {smarthost.username} (password from ${smarthost.password_env})" if smarthost.username
                 else "no login")
        print(f"  outbound     through {smarthost.host}:{smarthost.port} ({tls}, {login}); retries from "
              f"{out.retry.first_seconds:g} s doubling to {out.retry.max_seconds:g} s, give up after "
              f"{out.retry.give_up_hours:g} h")
    else:
        print("  outbound     disabled: mail is queued in the outbox, nothing is sent")
    print(f"  automatic    acknowledge new tickets: {'yes' if out.acknowledge else 'no'}; notify agents: "
          f"{'yes' if out.notify_agents and config.agents else 'no'}; language {helpdesk.language}")
    lim = out.limits
    print(f"  loop limits  per ticket {lim.per_ticket.count}/{lim.per_ticket.minutes} min, per address "
          f"{lim.per_address.count}/{lim.per_address.minutes} min and {lim.per_address_day.count}/"
          f"{lim.per_address_day.minutes} min; a permanent bounce stops automatic mail for "
          f"{out.undeliverable_days} days")
    from maild.outbound.templates import Renderer

    overrides = config.templates_path()
    problems = Renderer(overrides, helpdesk.language).check()
    where = f"{overrides} overrides the defaults" if overrides and overrides.is_dir() else "maild's defaults"
    print(f"  templates    {where}: {'OK' if not problems else 'BROKEN'}")
    for problem in problems:
        print(f"  error        {problem}")
    from maild.scheduler.cli import describe

    lines, broken = describe(config)
    for line in lines:
        print(line)
    problems = [*problems, *broken]
    proof = config.security.agent_auth
    print(f"  commands     control address {helpdesk.control_address or '-'}; {len(config.keywords)} subject "
          f"keyword(s); statuses {', '.join(s.name for s in config.workflow.statuses)}")
    print(f"  agent proof  {proof.describe()}")
    if not proof.require_proof:
        print("  WARNING      security.agent_auth.require_proof is false: a forged From runs /cc, /assign, "
              "/close and mails the customer from the helpdesk address", file=sys.stderr)
    if helpdesk.secret_env:
        print(f"  secret       from ${helpdesk.secret_env}")
    elif helpdesk.secret:
        print("  secret       inline in the file; prefer helpdesk.secret_env in production")
    else:
        kept = config.secret_path()
        print(f"  secret       generated by maild, kept in {kept} (mode 0600)"
              f"{'' if kept.exists() else '; created on first start'}")
    return EX_CONFIG if problems else EX_OK


def _ingest(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.app import App
    from maild.clock import utc_now

    try:
        raw = Path(args.file).read_bytes() if args.file else sys.stdin.buffer.read()
    except OSError as exc:
        print(f"maild: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EX_DATAERR
    try:
        app = App(config)
        outcome = app.processor.process(raw, args.channel, utc_now())
    except Exception as exc:  # the MTA keeps the mail and retries
        logging.getLogger("maild").exception("ingest failed")
        print(f"maild: temporary failure, retry later: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    print(f"{outcome.status} ticket={outcome.ticket_id or '-'} {outcome.message_id or ''} {outcome.reason}".rstrip())
    return EX_OK


def _tickets_list(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.views import list_tickets

    with _database(config).read() as session:
        rows = list_tickets(session, status=args.status, tag=args.tag, requester=args.contact)
    if args.json:
        _print_json(rows)
        return EX_OK
    _table(rows, [("id", 5), ("status", 16), ("requester", 30), ("msgs", 4), ("updated", 16), ("subject", 50)],
           lambda r: [r["id"], r["status"], r["requester"], r["message_count"], (r["updated_at"] or "")[:16].replace("T", " "),
                      r["subject"]])
    return EX_OK


def _tickets_show(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.views import ticket_detail

    with _database(config).read() as session:
        data = ticket_detail(session, args.id)
    if data is None:
        print(f"maild: no ticket {args.id}", file=sys.stderr)
        return EX_DATAERR
    if args.json:
        _print_json(data)
        return EX_OK
    say = _line
    say(f"#{data['id']} {data['subject']}")
    say(f"  status {data['status']}  priority {data['priority']}  requester {data['requester']}  "
        f"assignee {data['assignee'] or '-'}  tags {', '.join(data['tags']) or '-'}")
    for m in data["messages"]:
        print()
        say(f"--- {m['direction']} {m['created_at'][:19]} from {m['from']}  {m['subject']}")
        print(for_terminal(m["body_text"].rstrip()[:4000]))
        for a in m["attachments"]:
            say(f"  [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)")
    print("\nhistory:")
    for e in data["events"]:
        change = f"{e['old'] or ''} -> {e['new']}" if e["old"] or e["new"] else ""
        say(f"  {e['at'][:19]} {e['actor']} {e['kind']} {change} {e['detail']}".rstrip())
    return EX_OK


def _quarantine_list(config: Config, args: argparse.Namespace, path: Path) -> int:
    from sqlalchemy import select

    from maild.store.models import RawMail

    with _database(config).read() as session:
        rows = [{"id": r.id, "sha256": r.sha256, "size": r.size, "channel": r.channel,
                 "received_at": r.received_at.isoformat(), "reason": r.reason, "message_id": r.message_id}
                for r in session.scalars(select(RawMail).where(
                    RawMail.status == ("ignored" if args.ignored else "quarantined")).order_by(RawMail.id))]
    if args.json:
        _print_json(rows)
    else:
        _table(rows, [("id", 5), ("received", 19), ("size", 8), ("reason", 60)],
               lambda r: [r["id"], r["received_at"][:19], r["size"], r["reason"]])
    return EX_OK


def _outbox_list(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.outbound import outbox

    with _database(config).read() as session:
        rows = [{"id": r.id, "state": r.state, "kind": r.kind, "ticket": r.ticket_id, "to": r.recipients,
                 "subject": r.subject, "message_id": r.message_id, "attempts": r.attempts,
                 "created_at": r.created_at.isoformat(), "next_attempt_at": r.next_attempt_at.isoformat(),
                 "sent_at": r.sent_at.isoformat() if r.sent_at else None, "last_error": r.last_error}
                for r in outbox.listing(session, args.state, args.limit)]
    if args.json:
        _print_json(rows)
    else:
        _table(rows, [("id", 6), ("state", 7), ("kind", 8), ("ticket", 6), ("tries", 5), ("to", 30), ("error", 50)],
               lambda r: [r["id"], r["state"], r["kind"], r["ticket"], r["attempts"], r["to"], r["last_error"]])
    return EX_OK


def _outbox_retry(config: Config, args: argparse.Namespace, path: Path) -> int:
    from datetime import timedelta

    from maild.clock import utc_now
    from maild.outbound import outbox

    now = utc_now()
    with _database(config).write() as session:
        count = outbox.requeue(session, args.ids, now, now + timedelta(hours=config.outbound.retry.give_up_hours))
    print(f"{count} mail(s) queued again; a running maild sends them within "
          f"{config.outbound.retry.poll_seconds:g} s")
    return EX_OK


def _reprocess(config: Config, args: argparse.Namespace, path: Path) -> int:
    from sqlalchemy import select

    from maild.app import App
    from maild.clock import utc_now
    from maild.store.models import RawMail

    app = App(config)
    with app.db.read() as session:
        query = select(RawMail.id, RawMail.sha256, RawMail.channel).where(RawMail.status == "quarantined")
        if args.ids:
            query = query.where(RawMail.id.in_(args.ids))
        rows = session.execute(query.order_by(RawMail.id)).all()
    outcomes = app.processor.reprocess([(row.sha256, row.channel) for row in rows], utc_now())
    for row, outcome in zip(rows, outcomes):
        print(f"{row.id}: {outcome.status} ticket={outcome.ticket_id or '-'} {outcome.reason}".rstrip())
    print(f"{len(rows)} reprocessed, {sum(o.status == 'quarantined' for o in outcomes)} still quarantined")
    return EX_OK


def _db_upgrade(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.store.db import Database

    db = Database(config.database_url)
    db.upgrade()
    print(f"database at schema {db.current_revision()}")
    return EX_OK


def _db_status(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.store.db import Database

    db = Database(config.database_url)
    current, head = db.current_revision(), db.head_revision()
    print(f"schema {current or 'none'} (this maild needs {head})")
    return EX_OK if current == head else EX_CONFIG


def _line(text: str) -> None:
    """One line of terminal output made of stored mail text: controls never reach the terminal."""
    print(one_line(text))


def _print_json(data: Any) -> None:
    sys.stdout.write(escape_c1(json.dumps(data, ensure_ascii=False, indent=2)))
    sys.stdout.write("\n")


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, int]], cells: Any) -> None:
    if not rows:
        print("(none)")
        return
    print("  ".join(name.ljust(width) for name, width in columns).rstrip())
    for row in rows:
        values = [one_line(str(v if v is not None else "-")) for v in cells(row)]
        print("  ".join(v[:w].ljust(w) for v, (_, w) in zip(values, columns)).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
