"""The ``maild`` command line: the daemon, admin commands and script-friendly JSON."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maild.cli_args import CONFIG_HELP, DESCRIPTION, Parser, command_of, config_path
from maild.cli_ingest import add_ingest
from maild.exitcodes import EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_OK, EX_UNAVAILABLE, EX_USAGE
from maild.cli_output import line as _line
from maild.cli_output import print_json as _print_json
from maild.cli_output import table as _table
from maild.text import for_terminal, human_size

if TYPE_CHECKING:
    from maild.config import Config
    from maild.store.db import Database


def _database(config: Config) -> Database:
    from maild.cli_db import open_database

    return open_database(config)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if command_of(words) == "ingest":
        from maild.cli_ingest import main as ingest_main

        return ingest_main(words)
    parser = _parser()
    _config_everywhere(parser)
    args = parser.parse_args(words)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EX_USAGE
    try:
        code = _main(args)
        sys.stdout.flush()  # inside the try: a closed pipe found at exit is handled too
        return code
    except BrokenPipeError:
        # The reader went away (`maild tickets list | head`): end quietly, as a C tool
        # killed by SIGPIPE would, instead of a traceback about stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        if not exc.filename:
            raise  # not about a path: a real fault, keep its traceback
        # A path from the file that cannot be made or written (storage, spool, database
        # directory): one line naming it, as for a busy port.
        print(f"maild: cannot use {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EX_CANTCREAT


def _main(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    from maild.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"maild: configuration error\n{exc}", file=sys.stderr)
        return EX_CONFIG
    from maild.service.logs import configure

    configure(config)  # aiosmtpd alone would log every SMTP command, addresses included
    try:
        return int(args.handler(config, args, path) or 0)
    finally:
        if (opened := sys.modules.get("maild.cli_db")) is not None:
            opened.close_databases()


def _config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--config`` after the subcommand too (``maild tickets list --config X``),
    on every command, including those other modules register."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if "--config" not in child._option_string_actions:
                    child.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
                _config_everywhere(child)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="maild", description=DESCRIPTION)
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(metavar="COMMAND")
    add_ingest(sub)  # parsed by maild.cli_ingest; here for `maild --help`

    run = sub.add_parser("run", help="run the daemon (SIGHUP re-reads the file, SIGTERM stops)")
    run.add_argument("--workers", type=_positive, metavar="N",
                     help="processes to use: 1 runs everything in one; N ≥ 2 delivers the outbox from N - 1 "
                          "processes of their own (default: the number of cores)")
    run.set_defaults(handler=_run)
    sub.add_parser("reload", help="make the running daemon re-read its configuration file "
                   "(checked first; the daemon's log says what changed)").set_defaults(handler=_reload)
    check = sub.add_parser("check-config", help="validate the configuration and explain it")
    check.add_argument("--json", action="store_true", help="the main settings and any problems as JSON")
    check.set_defaults(handler=_check)

    tickets = sub.add_parser("tickets", help="list, count, show, close, tag, assign and delete tickets")
    from maild.cli_tickets import register as register_tickets

    actions = tickets.add_subparsers(metavar="ACTION")
    register_tickets(actions)
    from maild.cli_files import register as register_files

    register_files(actions)  # tickets attachment, tickets search

    quarantine = sub.add_parser("quarantine", help="mails that could not be parsed").add_subparsers(metavar="ACTION")
    qlist = quarantine.add_parser("list", help="quarantined mails with the reason")
    qlist.add_argument("--json", action="store_true", help="JSON instead of a table")
    qlist.add_argument("--ignored", action="store_true",
                       help="mails kept without a ticket (bounces, reports, auto-replies) and the rules that fired")
    qlist.set_defaults(handler=_quarantine_list)
    qshow = quarantine.add_parser("show", help="one quarantined (or ignored) mail: the reason and the raw mail")
    qshow.add_argument("id", type=int, help="the id `maild quarantine list` shows")
    qshow.add_argument("--json", action="store_true", help="the row and the raw mail (as text) as JSON")
    qshow.add_argument("--raw", action="store_true", help="only the raw mail, byte for byte (e.g. > mail.eml)")
    qshow.set_defaults(handler=_quarantine_show)

    out = sub.add_parser("outbox", help="mail maild sends: list, retry").add_subparsers(metavar="ACTION")
    olist = out.add_parser("list", help="outbound mails, newest first")
    olist.add_argument("--state", choices=["queued", "claimed", "sent", "failed"], help="only mails in this state")
    olist.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default 50)")
    olist.add_argument("--json", action="store_true", help="JSON instead of a table")
    olist.set_defaults(handler=_outbox_list)
    oshow = out.add_parser("show", help="one outbound mail: its state, tries, last error and the mail itself")
    oshow.add_argument("id", type=int, help="the id `maild outbox list` shows")
    oshow.add_argument("--json", action="store_true", help="the row as JSON")
    oshow.add_argument("--raw", action="store_true", help="only the mail as it is sent, byte for byte")
    oshow.set_defaults(handler=_outbox_show)
    oretry = out.add_parser("retry", help="queue failed mails again (all failed ones, or these ids)")
    oretry.add_argument("ids", nargs="*", type=int, help="outbox ids (default: every failed mail)")
    oretry.set_defaults(handler=_outbox_retry)

    cluster = sub.add_parser("cluster", help="several nodes on one database").add_subparsers(metavar="ACTION")
    cstatus = cluster.add_parser("status", help="the live nodes: version, queue depth, what each holds")
    cstatus.add_argument("--json", action="store_true", help="JSON instead of a table")
    cstatus.set_defaults(handler=_cluster_status)

    reprocess = sub.add_parser("reprocess", help="run quarantined mails through the pipeline again")
    reprocess.add_argument("ids", nargs="*", type=int, help="quarantine ids (default: all)")
    reprocess.set_defaults(handler=_reprocess)

    from maild.contacts.cli import register as register_contacts

    register_contacts(sub)  # contacts import|export|show|forget|block|unblock, catalog show

    from maild.scheduler.cli import register as register_scheduler

    register_scheduler(sub)  # calendar export, scheduler run-once, sms list

    backup = sub.add_parser("backup", help="a consistent copy of the database, raw mails, attachments and key "
                            "into DIR (safe while maild runs)")
    backup.add_argument("dir", type=Path, help="the backup directory (created; files already there are reused)")
    backup.set_defaults(handler=_backup)
    restore = sub.add_parser("restore", help="put a backup made by `maild backup` where the configuration says")
    restore.add_argument("dir", type=Path, help="a directory made by `maild backup`")
    restore.add_argument("--force", action="store_true", help="overwrite a database that already has tickets")
    restore.set_defaults(handler=_restore)

    doctor = sub.add_parser("doctor", help="check the database, migrations, storage, smarthost, IMAP logins and "
                            "DNS/authentication settings, and say what to fix (exit 69 when something fails)")
    doctor.add_argument("--json", action="store_true", help="the findings as JSON")
    doctor.set_defaults(handler=_doctor)

    db = sub.add_parser("db", help="database schema").add_subparsers(metavar="ACTION")
    db.add_parser("upgrade", help="migrate the schema to this version").set_defaults(handler=_db_upgrade)
    dbstatus = db.add_parser("status", help="show the schema version (exit 78 when it is not this maild's)")
    dbstatus.add_argument("--json", action="store_true", help="current and needed revision as JSON")
    dbstatus.set_defaults(handler=_db_status)
    return parser


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata is slow to load)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"maild {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("maild")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def _run(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.app import App, StartError
    from maild.store.db import SchemaError

    try:
        app = App(config)
    except SchemaError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_CONFIG
    from maild.workers import default_workers

    try:
        app.run(config_file=path, workers=args.workers or default_workers())
    except StartError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    return EX_OK


def _backup(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.clock import utc_now
    from maild.service.backup import BackupError, backup

    try:
        made = backup(config, args.dir, utc_now())
    except (BackupError, OSError) as exc:
        print(f"maild: backup failed: {exc}", file=sys.stderr)
        return EX_CANTCREAT
    print(f"{args.dir}: {made.database} database at schema {made.schema}, {made.tickets} tickets, "
          f"{made.messages} messages, {made.raw_mails} raw mails, {made.blobs} stored files"
          f"{', signing key' if made.secret else ''}")
    return EX_OK


def _restore(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.service.backup import BackupError, restore

    try:
        made = restore(config, args.dir, args.force)
    except (BackupError, OSError) as exc:
        print(f"maild: restore failed: {exc}", file=sys.stderr)
        return EX_CANTCREAT if isinstance(exc, OSError) else EX_DATAERR
    print(f"restored {made.tickets} tickets, {made.messages} messages, {made.raw_mails} raw mails from {args.dir} "
          f"(backup of {made.created_at}); run `maild db upgrade` if this maild is newer")
    return EX_OK


def _doctor(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.service.doctor import Level, render, run

    findings = run(config)
    if args.json:
        _print_json([{"check": f.check, "level": str(f.level), "detail": f.detail, "fix": f.fix} for f in findings])
    else:
        for line in render(findings):
            print(line)
    return EX_UNAVAILABLE if any(f.level is Level.FAIL for f in findings) else EX_OK


def _reload(config: Config, args: argparse.Namespace, path: Path) -> int:
    """The file was already loaded (and so checked) by ``main``; signal the daemon to re-read it."""
    import os
    import signal

    pidfile = config.path(config.spool.path) / "maild.pid"
    try:
        pid = int(pidfile.read_text(encoding="ascii").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        print(f"maild: no running maild for {path} (no live process in {pidfile})", file=sys.stderr)
        return EX_UNAVAILABLE
    print(f"maild (pid {pid}) re-reads {path}; its log names what changed and what needs a restart")
    return EX_OK


def _check_json(config: Config, path: Path) -> int:
    from sqlalchemy.engine import make_url

    from maild.outbound.templates import Renderer
    from maild.scheduler.cli import describe

    problems = [*Renderer(config.templates_path(), config.helpdesk.language).check(), *describe(config)[1]]
    smtp, out, metrics = config.smtp_server, config.outbound, config.metrics
    _print_json({
        "file": str(path), "ok": not problems, "problems": problems,
        "helpdesk": {"name": config.helpdesk.name, "address": config.helpdesk.address,
                     "control_address": config.helpdesk.control_address},
        "database": make_url(config.database_url).render_as_string(hide_password=True),
        "storage": str(config.path(config.storage.path)), "spool": str(config.path(config.spool.path)),
        "listener": {"protocol": "lmtp" if smtp.lmtp else "smtp", "host": smtp.host, "port": smtp.port}
        if smtp.enabled else None,
        "imap": [a.name for a in config.imap],
        "outbound": {"host": out.smtp.host, "port": out.smtp.port} if out.enabled else None,
        "agents": [a.email for a in config.agents], "forms": [f.name for f in config.forms],
        "metrics": {"host": metrics.host, "port": metrics.port} if metrics else None,
        "logging": {"level": config.log_level_name, "format": config.logging.format},
    })
    return EX_CONFIG if problems else EX_OK


def _check(config: Config, args: argparse.Namespace, path: Path) -> int:
    if getattr(args, "json", False):
        return _check_json(config, path)
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
          f"{'yes' if out.notify_agents and config.agents else 'no'}; language {helpdesk.language}; "
          f"customer files on notifications up to {human_size(out.notify_attachments_max_bytes)}")
    if config.tags:
        print(f"  tags         {', '.join(look.text() for look in config.tag_looks().values())}; others by name")
    lim = out.limits
    print(f"  loop limits  per ticket {lim.per_ticket.count}/{lim.per_ticket.minutes} min, per address "
          f"{lim.per_address_burst.count}/{lim.per_address_burst.minutes} min, "
          f"{lim.per_address.count}/{lim.per_address.minutes} min and {lim.per_address_day.count}/"
          f"{lim.per_address_day.minutes} min; a permanent bounce stops automatic mail for "
          f"{out.undeliverable_days} days; command feedback and reports apart: {lim.feedback.count}/"
          f"{lim.feedback.minutes} min, {lim.feedback_burst.count}/{lim.feedback_burst.minutes} min")
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
    metrics = config.metrics
    print(f"  metrics      {f'http://{metrics.host}:{metrics.port}/metrics and /healthz' if metrics else 'off'}")
    print(f"  logging      maild at {config.log_level_name}, libraries at {config.logging.libraries}, "
          f"{config.logging.format} lines on stderr")
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




def _cluster_status(config: Config, args: argparse.Namespace, path: Path) -> int:
    from datetime import datetime, timedelta

    from maild.clock import utc_now
    from maild.store import inbound, nodes

    now = utc_now()
    with _database(config).read() as session:
        live = nodes.live(session, now - timedelta(seconds=config.cluster.node_timeout_seconds))
        queued = inbound.depth(session)
    rows = [{"id": n.id, "host": n.host, "pid": n.pid, "version": n.version, "started_at": n.started_at.isoformat(),
             "last_seen": n.heartbeat_at.isoformat(), "queue_depth": n.queue_depth, "holds": json.loads(n.holds)}
            for n in live]
    if args.json:
        _print_json({"nodes": rows, "inbound_queue": queued})
        return EX_OK
    say = _line
    say(f"{len(rows)} live node{'s' if len(rows) != 1 else ''}; {queued} mails in the shared inbound queue")
    for row in rows:
        holds = row["holds"]
        held = [*(["scheduler leader"] if holds.get("scheduler") else []),
                *(f"imap:{name}" for name in holds.get("imap", [])),
                *([f"{holds['claims']} inbound claims"] if holds.get("claims") else [])]
        seen = (now - datetime.fromisoformat(row["last_seen"])).total_seconds()
        say(f"  {row['id']}  {row['host']}:{row['pid']}  maild {row['version']}  since {row['started_at'][:19]}  "
            f"seen {seen:.1f}s ago  spool {row['queue_depth']}  holds {', '.join(held) or '-'}")
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
               lambda r: [r["id"], r["received_at"][:19], r["size"], r["reason"]], config.helpdesk.language)
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
        from maild.commands.phrases import word

        language = config.helpdesk.language
        _table(rows, [("id", 6), ("state", 9), ("kind", 12), ("ticket", 7), ("tries", 5), ("to", 30), ("error", 50)],
               lambda r: [r["id"], word(r["state"], language), word(r["kind"], language), r["ticket"], r["attempts"],
                          r["to"], r["last_error"]], language)
    return EX_OK


def _outbox_show(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.outbound.compose import to_bytes
    from maild.outbound.sender import mail_of
    from maild.store.blobs import open_blobs
    from maild.store.models import OutboxRow

    db = _database(config)
    with db.read() as session:
        row = session.get(OutboxRow, args.id)
        if row is None:
            print(f"maild: no outbound mail {args.id}", file=sys.stderr)
            return EX_DATAERR
        raw = to_bytes(mail_of(row), config.helpdesk.address, open_blobs(config, db).get_attachment)
        data = {"id": row.id, "state": row.state, "kind": row.kind, "ticket": row.ticket_id, "to": row.recipients,
                "subject": row.subject, "message_id": row.message_id, "attempts": row.attempts,
                "created_at": row.created_at.isoformat(), "next_attempt_at": row.next_attempt_at.isoformat(),
                "sent_at": row.sent_at.isoformat() if row.sent_at else None, "last_error": row.last_error}
    return _show(args, data, raw)


def _quarantine_show(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.store.blobs import open_blobs
    from maild.store.models import RawMail

    db = _database(config)
    with db.read() as session:
        row = session.get(RawMail, args.id)
        if row is None or row.status not in ("quarantined", "ignored"):
            print(f"maild: no quarantined or ignored mail {args.id}", file=sys.stderr)
            return EX_DATAERR
        digest = row.sha256
        data = {"id": row.id, "status": row.status, "sha256": row.sha256, "size": row.size, "channel": row.channel,
                "received_at": row.received_at.isoformat(), "reason": row.reason, "message_id": row.message_id}
    try:
        raw = open_blobs(config, db).get_raw(digest)
    except OSError as exc:
        print(f"maild: the raw mail of {args.id} is missing from storage: {exc.strerror}", file=sys.stderr)
        return EX_DATAERR
    return _show(args, data, raw)


def _show(args: argparse.Namespace, data: dict[str, Any], raw: bytes) -> int:
    """A row and its mail: ``--raw`` the bytes, ``--json`` both, else fields then the mail for a terminal."""
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(raw)
        return EX_OK
    text = raw.decode("utf-8", "replace")
    if args.json:
        _print_json({**data, "raw": text})
        return EX_OK
    for key, value in data.items():
        _line(f"{key:16} {value if value is not None else '-'}")
    print()
    print(for_terminal(text))
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
    if getattr(args, "json", False):
        _print_json({"current": current, "needed": head, "up_to_date": current == head})
    else:
        print(f"schema {current or 'none'} (this maild needs {head})")
    return EX_OK if current == head else EX_CONFIG


if __name__ == "__main__":
    raise SystemExit(main())
