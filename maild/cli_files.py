"""``maild tickets attachment`` and ``maild tickets search``: a ticket's file by name, and
full-text search over tickets (:mod:`maild.store.search`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from maild.cli_db import open_database
from maild.config import Config
from maild.exitcodes import EX_CANTCREAT, EX_DATAERR, EX_NOINPUT, EX_OK, EX_USAGE
from maild.text import escape_c1, one_line


def register(tickets: Any) -> None:
    """Add the actions to the ``maild tickets`` sub-command parser."""
    att = tickets.add_parser("attachment", help="write a file of a ticket (by its name) to stdout or FILE "
                             "(exit 65 when the ticket has no such file)")
    att.add_argument("id", type=int, help="the ticket number")
    att.add_argument("name", help="the file's name, as `maild tickets show` lists it (or its sha256, a prefix will do)")
    att.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    att.set_defaults(handler=_attachment)
    find = tickets.add_parser("search", help="full-text search over subjects, texts, requesters and tags, best "
                              "match first (accents and case do not matter)")
    find.add_argument("query", nargs="+", help="words that must all occur (e.g. vazamento banheiro)")
    find.add_argument("--limit", type=int, default=20, help="at most this many tickets (default 20)")
    find.add_argument("--json", action="store_true", help="JSON instead of a table")
    find.set_defaults(handler=_search)


def _search(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.store.search import search

    query = " ".join(args.query)
    if args.limit < 1:
        print("maild: --limit must be at least 1", file=sys.stderr)
        return EX_USAGE
    with open_database(config).read() as session:
        hits = search(session, query, args.limit)
    rows: list[dict[str, Any]] = [{"id": h.ticket_id, "score": round(h.score, 6), "subject": h.subject, "status": h.status,
             "priority": h.priority, "assignee": h.assignee, "requester": h.requester, "tags": list(h.tags),
             "updated_at": h.updated_at.isoformat()} for h in hits]
    if args.json:
        _print_json(rows)
        return EX_OK
    if not rows:
        print("(none)")
        return EX_OK
    print(f"{'id':<6} {'status':<16} {'requester':<30} {'tags':<20} subject")
    for r in rows:
        print(one_line(f"{r['id']:<6} {r['status']:<16.16} {r['requester']:<30.30} {','.join(r['tags']) or '-':<20.20} "
                       f"{r['subject']}"))
    return EX_OK


def _attachment(config: Config, args: argparse.Namespace, path: Path) -> int:
    from maild.store import files
    from maild.store.blobs import open_blobs

    db = open_database(config)
    with db.read() as session:
        found = files.find(session, args.id, args.name)
        known = files.names(session, args.id) if found is None else []
    if found is None:
        hint = f"; its files: {', '.join(known)}" if known else "; it has no files"
        print(one_line(f"maild: ticket {args.id} has no file {args.name!r}{hint}"), file=sys.stderr)
        return EX_DATAERR
    try:
        data = open_blobs(config, db).get_attachment(found.sha256)
    except OSError as exc:
        print(f"maild: the file {found.filename!r} is missing from storage: {exc.strerror}", file=sys.stderr)
        return EX_NOINPUT
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            args.output.write_bytes(data)
        except OSError as exc:
            print(f"maild: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return EX_CANTCREAT
        print(one_line(f"{found.filename}: {found.size} bytes ({found.content_type}) written to {args.output}"),
              file=sys.stderr)
    return EX_OK


def _print_json(data: Any) -> None:
    sys.stdout.write(escape_c1(json.dumps(data, ensure_ascii=False, indent=2)))
    sys.stdout.write("\n")
