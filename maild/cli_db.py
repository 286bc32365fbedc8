"""The database a ``maild`` command works on: opened from the config, schema checked.

Shared by every command group (``maild``, ``maild contacts``, ``maild scheduler``) so none of
them imports another's module for it. A schema that is not at the current migration stops
the command with EX_CONFIG and the reason on stderr; commands never migrate.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from maild.exitcodes import EX_CONFIG

if TYPE_CHECKING:
    from maild.config import Config
    from maild.store.db import Database


def open_database(config: Config) -> Database:
    # Imported here: commands that never touch the database start without SQLAlchemy.
    from maild.store.db import Database, SchemaError

    db = Database(config.database_url)
    try:
        db.ensure_schema(migrate=False)
    except SchemaError as exc:
        print(f"maild: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from exc
    return db
