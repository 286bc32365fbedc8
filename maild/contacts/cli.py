"""``maild contacts import|export|show|forget|block|unblock`` and ``maild catalog show``.

Registered on the main parser by :func:`register`; each handler takes (config, args, path)
like the others in :mod:`maild.cli` and returns an exit code.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from maild.text import escape_c1, one_line

if TYPE_CHECKING:  # the database layer is imported only by the commands that open it
    from maild.config import Config
    from maild.contacts.normalize import AddressKey
    from maild.store.db import Database

T = TypeVar("T")
EX_OK, EX_DATAERR, EX_NOINPUT, EX_CONFIG = 0, 65, 66, 78


def register(sub: Any) -> None:
    contacts = sub.add_parser("contacts", help="the contact book: import, export, show, forget, block")
    actions = contacts.add_subparsers(metavar="ACTION")

    imp = actions.add_parser("import", help="add or update contacts from a CSV file (BOM, ; or , separated)")
    imp.add_argument("file", help="the CSV file (a header line names the columns: e-mail, name, phone, …)")
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.add_argument("--overwrite", action="store_true", help="replace names and phones the book already has")
    imp.add_argument("--json", action="store_true", help="the report as JSON")
    imp.set_defaults(handler=_import)

    exp = actions.add_parser("export", help="write every contact as CSV (stdout or --output)")
    exp.add_argument("--output", "-o", help="file to write (default: standard output)")
    exp.add_argument("--delimiter", default=",", choices=[",", ";", "\t"], help="the field separator (default ,)")
    exp.add_argument("--group", help="only contacts in this group")
    exp.set_defaults(handler=_export)

    show = actions.add_parser("show", help="a contact and its tickets")
    show.add_argument("address", help="the contact's e-mail address")
    show.add_argument("--json", action="store_true", help="the contact and its tickets as JSON")
    show.set_defaults(handler=_show)

    forget = actions.add_parser("forget", help="erase a person's data (LGPD); ticket statistics stay")
    forget.add_argument("address", help="the person's e-mail address")
    forget.add_argument("--json", action="store_true", help="what was erased, as JSON")
    forget.add_argument("--vacuum", action="store_true",
                        help="PostgreSQL: VACUUM the changed tables afterwards, so old row versions go")
    forget.set_defaults(handler=_forget)

    for name, blocked in (("block", True), ("unblock", False)):
        act = actions.add_parser(name, help=("later mail is kept but opens no ticket and gets no reply" if blocked
                                             else "take a contact off the block list"))
        act.add_argument("address", help="the e-mail address")
        act.set_defaults(handler=_block, blocked=blocked)

    catalog = sub.add_parser("catalog", help="the catalog file (e.g. properties)").add_subparsers(metavar="ACTION")
    cshow = catalog.add_parser("show", help="how a catalog item is listed in replies")
    cshow.add_argument("refs", nargs="+", help="catalog references (e.g. AP-101)")
    cshow.set_defaults(handler=_catalog_show)


def _progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """A progress bar on a terminal (stderr); plain iteration when stderr is not one."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=what, unit="", file=sys.stderr, disable=None, leave=False)


def _database(config: Config) -> Database:
    from maild.cli_db import open_database

    return open_database(config)


def _key(config: Config) -> AddressKey:
    from maild.contacts.normalize import AddressKey

    return AddressKey(config.contacts)


def _now() -> datetime:
    from maild.clock import utc_now

    return utc_now()


def _import(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.contacts.csvfile import CsvError, count_records
    from maild.contacts.importer import rows_of, run_import

    source = Path(args.file)
    db = _database(config)
    try:
        rows = _progress(rows_of(source), count_records(source), "contacts")
        with db.write() if not args.dry_run else _rollback(db) as session:
            report = run_import(session, rows, _key(config), _now(), overwrite=args.overwrite)
    except CsvError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_NOINPUT if "cannot read" in str(exc) else EX_DATAERR
    if args.json:
        print(json.dumps({**report.as_dict(), "dry_run": args.dry_run}, ensure_ascii=False, indent=2))
    else:
        print(f"{source}: {report.read} rows: {report.created} created, {report.updated} updated, "
              f"{report.unchanged} unchanged, {len(report.rejected)} rejected")
        for line, reason in report.rejected:
            print(f"  line {line}: {reason}")
        if args.dry_run:
            print("dry run: nothing was written")
    return EX_DATAERR if report.rejected else EX_OK


class _rollback:  # noqa: N801 - used like db.write()
    """A write session whose work is rolled back: the dry run does everything but keep it."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def __enter__(self) -> Any:
        self.session = self.db.sessions()
        self.session.begin()
        return self.session

    def __exit__(self, *exc: object) -> None:
        self.session.rollback()
        self.session.close()


def _export(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.contacts.csvfile import formula_escape  # pydantic-backed: loaded only when used

    from maild.contacts.book import all_contacts

    with _database(config).read() as session:
        rows = all_contacts(session, args.group)
    out = open(args.output, "w", encoding="utf-8-sig", newline="") if args.output else sys.stdout
    try:
        writer = csv.writer(out, delimiter=args.delimiter, lineterminator="\r\n" if args.output else "\n")
        writer.writerow(["email", "name", "phone", "groups", "consent", "blocked", "tickets", "created_at",
                         "updated_at"])
        for r in rows:
            writer.writerow([formula_escape(str(cell)) for cell in (
                r["email"], r["name"], r["phone"], "|".join(r["groups"]), "yes" if r["consent"] else "no",
                "yes" if r["blocked"] else "no", r["tickets"], r["created_at"], r["updated_at"])])
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"{len(rows)} contacts written to {args.output}", file=sys.stderr)
    return EX_OK


def _show(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.contacts.book import detail

    with _database(config).read() as session:
        data = detail(session, _key(config)(args.address))
    if data is None:
        print(f"maild: no contact {args.address}", file=sys.stderr)
        return EX_DATAERR
    if args.json:
        print(escape_c1(json.dumps(data, ensure_ascii=False, indent=2)))
        return EX_OK
    say = _line
    say(f"{data['name'] or '(no name)'} <{data['email']}>")
    say(f"  phone {data['phone'] or '-'}  groups {', '.join(data['groups']) or '-'}  "
        f"consent {'yes' if data['consent'] else 'no'}  blocked {'yes' if data['blocked'] else 'no'}")
    say(f"  since {data['created_at'][:10]}, {data['tickets']} ticket(s)")
    for t in data["ticket_list"]:
        say(f"  #{t['id']:<5} {t['status']:<16} {(t['updated_at'] or '')[:16].replace('T', ' ')}  {t['subject']}")
    return EX_OK


def _forget(config: Config, args: argparse.Namespace, path: Path) -> int:
    import getpass

    from maild.contacts.forget import delete_blobs, forget
    from maild.store import search
    from maild.store.blobs import open_blobs

    email = _key(config)(args.address)
    db = _database(config)
    blobs = open_blobs(config, db)
    actor = f"cli:{getpass.getuser()}"
    with db.write() as session:
        report = forget(session, blobs, email, secret=config.signing_secret(), now=_now(), actor=actor,
                        progress=_progress)
        search.purge_deleted(session)  # the search index forgets the erased words too
    if {"messages", "tickets", "contacts"} & set(report.tables):
        report.tables.extend(t for t in search.INDEX_TABLES if t not in report.tables)
    delete_blobs(blobs, report.blobs_to_delete)
    vacuumed: list[str] = []
    if db.is_sqlite:
        _vacuum(db)
    elif args.vacuum:
        vacuumed = _vacuum_tables(db, report.tables)
    data = report.as_dict()
    if args.json:
        print(json.dumps({**data, "vacuumed": vacuumed}, indent=2))
    else:
        print(f"erased (erasure #{data['erasure']}): contact {'yes' if data['contact'] else 'not in the book'}, "
              f"{data['tickets']} ticket(s) anonymized, {data['messages']} message(s), {data['outbox']} outbox "
              f"mail(s), {data['raw_erased']} raw mail(s) erased and {data['raw_rewritten']} rewritten, "
              f"{data['attachments']} attachment(s), {data['sms']} SMS, {data['mentions']} other mention(s)")
        if not db.is_sqlite and report.tables:
            tables = ", ".join(report.tables)
            if vacuumed:
                print(f"VACUUM done on: {tables}")
            else:
                print(f"PostgreSQL keeps the old values in dead row versions until VACUUM runs on: {tables}\n"
                      f"  run in psql: VACUUM {tables};  (or pass --vacuum to have maild run it)\n"
                      f"  VACUUM FULL rewrites the table files too (it locks the tables while it runs)")
    return EX_OK


def _vacuum_tables(db: Any, tables: list[str]) -> list[str]:
    """PostgreSQL: VACUUM cannot run inside a transaction block, so autocommit."""
    from sqlalchemy import text

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f'VACUUM "{table}"'))  # names come from maild's own schema
    return list(tables)


def _vacuum(db: Any) -> None:
    """SQLite keeps deleted text in free pages and the WAL until they are rewritten."""
    conn = db.engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        conn.close()


def _block(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.contacts.book import set_blocked

    email = _key(config)(args.address)
    with _database(config).write() as session:
        changed = set_blocked(session, email, args.blocked, _now())
    state = "blocked" if args.blocked else "not blocked"
    print(f"{email} {state}{'' if changed else ' (already)'}")
    return EX_OK


def _catalog_show(config: Config, args: argparse.Namespace, path: Path) -> int:
    import jinja2

    from maild.catalog import CatalogError, from_config
    from maild.outbound.templates import Renderer, TemplateError

    try:
        catalog = from_config(config)
    except CatalogError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_CONFIG
    if config.catalog is None:
        print("maild: no catalog: section in the configuration", file=sys.stderr)
        return EX_CONFIG
    renderer = Renderer(config.templates_path(), config.helpdesk.language, config.status_labels())
    items = catalog.listing(args.refs)
    try:
        template = renderer.env.get_template(f"{config.helpdesk.language}/_listing.j2")
        print(template.render(listing=[i.as_vars() for i in items]).strip("\n"))
    except (TemplateError, jinja2.TemplateError) as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_CONFIG
    missing = [i.ref for i in items if not i.found]
    if missing:
        print(f"maild: not in the catalog: {', '.join(missing)}", file=sys.stderr)
        return EX_DATAERR
    return EX_OK


def _line(text: str) -> None:
    """One line of terminal output made of stored text: controls never reach the terminal."""
    print(one_line(text))
