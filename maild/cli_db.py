"""The database a ``maild`` command works on: opened from the config, schema checked.

Shared by every command group (``maild``, ``maild contacts``, ``maild scheduler``) so none of
them imports another's module for it. A schema that is not at the current migration stops
the command with EX_CONFIG and the reason on stderr; commands never migrate. What a
command opened is closed when it ends (:func:`close_databases`, called by ``maild.cli.main``):
its pooled connections must not outlive it when the command runs inside another process.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from maild.exitcodes import EX_CONFIG

if TYPE_CHECKING:
    from maild.config import Config
    from maild.store.db import Database


_opened: list[Database] = []  # by this command, closed by close_databases()


def open_database(config: Config) -> Database:
    # Imported here: commands that never touch the database start without SQLAlchemy.
    from maild.store.db import Database, SchemaError

    db = Database(config.database_url)
    _opened.append(db)
    try:
        db.ensure_schema(migrate=False)
    except SchemaError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from exc
    return db


def close_databases() -> None:
    """Close the connections of every database this command opened."""
    while _opened:
        _opened.pop().dispose()
