"""A consistent copy of a running maild, and putting one back.

Order makes it consistent without stopping maild: blobs (raw mails, attachments) are
written, flushed and never changed before the rows naming them commit, so the database
is copied first (SQLite's online backup API: a snapshot of one committed state, WAL
included) and the blob store after it; every blob the copied rows name is already on
disk. Blobs that arrive later are copied too and are harmless. On PostgreSQL the copy is
``pg_dump --format=custom``, checked to exist before anything is written.

A backup directory holds ``maild.db`` or ``maild.pgdump``, ``storage/``, the generated
signing key when maild keeps one (``maild.secret``) and ``backup.json`` (what was copied).
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from maild.config import Config
from maild.store.db import Database
from maild.store.models import Message, RawMail, Ticket

MANIFEST = "backup.json"


class BackupError(Exception):
    """The copy or the restore cannot be made; the message says why, in one line."""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    database: str  # sqlite | postgresql
    schema: str | None
    tickets: int
    messages: int
    raw_mails: int
    blobs: int
    secret: bool


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


def _libpq_url(url: str) -> str:
    """pg_dump speaks libpq URLs: no ``+psycopg`` driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _copy_tree(source: Path, target: Path) -> int:
    """Copy files not yet in ``target`` (blobs never change: same name, same content)."""
    count = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue  # a blob's temporary file before its rename
        dest = target / path.relative_to(source)
        count += 1
        if dest.exists() and dest.stat().st_size == path.stat().st_size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    return count


def _counts(db: Database) -> tuple[int, int, int]:
    with db.read() as session:
        return (session.scalar(select(func.count()).select_from(Ticket)) or 0,
                session.scalar(select(func.count()).select_from(Message)) or 0,
                session.scalar(select(func.count()).select_from(RawMail)) or 0)


def backup(config: Config, target: Path, now: datetime) -> Manifest:
    db = Database(config.database_url)
    try:
        target.mkdir(parents=True, exist_ok=True)
        sqlite_file = _sqlite_file(config.database_url)
        if sqlite_file is not None:
            if not sqlite_file.is_file():
                raise BackupError(f"no database at {sqlite_file}")
            partial = target / "maild.db.partial"
            partial.unlink(missing_ok=True)
            with closing(sqlite3.connect(sqlite_file)) as source, closing(sqlite3.connect(partial)) as copy:
                source.backup(copy)
            partial.replace(target / "maild.db")
            kind = "sqlite"
        else:
            pg_dump = shutil.which("pg_dump")
            if pg_dump is None:
                raise BackupError("pg_dump is not installed: install the PostgreSQL client (e.g. postgresql-client)")
            done = subprocess.run([pg_dump, "--format=custom", "--no-owner", "--file", str(target / "maild.pgdump"),
                                   _libpq_url(config.database_url)], capture_output=True, text=True)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
            kind = "postgresql"
        counts = _counts(db)  # at or after the copy: counts the copy holds at least
        schema = db.current_revision()
    finally:
        db.dispose()
    blobs = _copy_tree(config.path(config.storage.path), target / "storage")
    secret = config.helpdesk.configured_secret() is None and config.secret_path().is_file()
    if secret:
        shutil.copy2(config.secret_path(), target / "maild.secret")
    manifest = Manifest(now.isoformat(), kind, schema, *counts, blobs, secret)
    (target / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    return manifest


def restore(config: Config, source: Path, force: bool = False) -> Manifest:
    """Put a backup in the places ``config`` names. Refuses to overwrite a database that
    already has tickets unless ``force``: a restore onto live data is never an accident."""
    try:
        manifest = Manifest(**json.loads((source / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"{source} is not a maild backup (no readable {MANIFEST})") from exc
    sqlite_file = _sqlite_file(config.database_url)
    if (manifest.database == "sqlite") != (sqlite_file is not None):
        raise BackupError(f"the backup is of a {manifest.database} database; the configuration names "
                          f"{make_url(config.database_url).get_backend_name()}")
    if not force and _has_tickets(config, sqlite_file):
        raise BackupError("the configured database already has tickets; restore into an empty one, or pass --force")
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        for stale in (sqlite_file.with_name(sqlite_file.name + "-wal"), sqlite_file.with_name(sqlite_file.name + "-shm")):
            stale.unlink(missing_ok=True)
        with closing(sqlite3.connect(source / "maild.db")) as backup_db, closing(sqlite3.connect(sqlite_file)) as live:
            backup_db.backup(live)
    else:
        pg_restore = shutil.which("pg_restore")
        if pg_restore is None:
            raise BackupError("pg_restore is not installed: install the PostgreSQL client (e.g. postgresql-client)")
        done = subprocess.run([pg_restore, "--clean", "--if-exists", "--no-owner", "--dbname",
                               _libpq_url(config.database_url), str(source / "maild.pgdump")],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    _copy_tree(source / "storage", config.path(config.storage.path))
    if manifest.secret and (source / "maild.secret").is_file():
        config.secret_path().parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "maild.secret", config.secret_path())
        config.secret_path().chmod(0o600)
    return manifest


def _has_tickets(config: Config, sqlite_file: Path | None) -> bool:
    if sqlite_file is not None and not sqlite_file.exists():
        return False
    db = Database(config.database_url)
    try:
        with db.read() as session:
            return bool(session.scalar(select(func.count()).select_from(Ticket)))
    except Exception:  # no schema yet: nothing to lose
        return False
    finally:
        db.dispose()
