"""Engine, sessions and schema version for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed mail survives a power
cut, and with pysqlite's own transaction handling switched off: every transaction is an
explicit ``BEGIN IMMEDIATE`` (one writer at a time, no lock-upgrade deadlocks) and tests
can nest savepoints.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("maild.db")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaError(Exception):
    """The database is not at the schema this maild needs."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _sqlite_hooks(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; ``write()`` is a unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # SQLite has one writer; serialising in-process writers avoids busy retries.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session inside one transaction, committed on success."""
        if self._write_lock is None:
            with self.sessions.begin() as session:
                yield session
            return
        with self._write_lock, self.sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    # -- schema -----------------------------------------------------------------
    def alembic_config(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["engine"] = self.engine
        return cfg

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def knows(self, revision: str) -> bool:
        """Whether this maild ships the migration ``revision`` (False: a newer one wrote it)."""
        from alembic.util import CommandError

        try:
            return ScriptDirectory.from_config(self.alembic_config()).get_revision(revision) is not None
        except CommandError:
            return False

    def upgrade(self) -> None:
        command.upgrade(self.alembic_config(), "head")

    def ensure_schema(self, migrate: bool) -> None:
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        if current is not None and not self.knows(current):
            # A newer maild migrated (a rolling upgrade): migrations are additive, so this
            # version runs on the newer schema until it is replaced.
            log.warning("the database is at schema %s, newer than this maild's %s: running on it", current, head)
            return
        if migrate:
            self.upgrade()
            return
        state = "has no maild tables" if current is None else f"is at schema {current}, not {head}"
        raise SchemaError(
            f"the database {self.engine.url.render_as_string(hide_password=True)} {state}; "
            "run `maild db upgrade` first (or set database.auto_migrate: true)"
        )

    def dispose(self) -> None:
        self.engine.dispose()
