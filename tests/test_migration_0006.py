"""Migration 0006 on SQLite and PostgreSQL: rows written at 0005 get their header hashes,
lookups find them, and a long Message-ID then inserts; downgrade goes back to 0005."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from conftest import PG_ADMIN_URL, need_server
from maild.store.db import Database
from maild.store.keys import header_hash

LONG = "<" + "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(960)) + "@x.example>"


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    name = f"maild_mig_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        need_server(f"PostgreSQL not reachable: {type(exc).__name__}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _seed_at_0005(db: Database) -> None:
    command.upgrade(db.alembic_config(), "0005")
    now = "2026-11-02 12:00:00+00:00"
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO contacts (id, email, name, phone, consent, blocked, created_at, updated_at) "
                          "VALUES (1, 'a@x.example', '', '', true, false, :now, :now)"), {"now": now})
        conn.execute(text("INSERT INTO tickets (id, subject, status, priority, requester_id, visible, origin, "
                          "draft_pending, message_count, created_at, updated_at) VALUES "
                          "(1, 's', 'new', 'normal', 1, true, '', false, 1, :now, :now)"), {"now": now})
        conn.execute(text("INSERT INTO raw_mails (id, sha256, size, channel, received_at, status, reason, message_id) "
                          "VALUES (1, :sha, 1, 'smtp', :now, 'processed', '', '<old@x.example>')"),
                     {"sha": "0" * 64, "now": now})
        conn.execute(text("INSERT INTO messages (id, ticket_id, direction, message_id, in_reply_to, \"references\", "
                          "from_addr, from_name, to_addrs, cc_addrs, subject, body_text, kind, channel, author, "
                          "created_at) VALUES (1, 1, 'in', '<old@x.example>', '', '', '', '', '', '', 's', 'b', "
                          "'normal', 'smtp', '', :now)"), {"now": now})
        conn.execute(text("INSERT INTO outbox (id, ticket_id, kind, automatic, state, message_id, envelope_from, "
                          "recipients, to_addr, from_header, to_header, cc_header, reply_to, subject, in_reply_to, "
                          "\"references\", auto_submitted, language, body_text, attempts, next_attempt_at, "
                          "expires_at, last_error, created_at, attachments) VALUES (1, 1, 'ack', true, 'sent', "
                          "'<out@x.example>', '', 'a@x.example', 'a@x.example', '', '', '', '', 's', '', '', '', "
                          "'', 'b', 0, :now, :now, '', :now, '')"), {"now": now})


def test_upgrade_backfills_hashes_and_moves_the_indexes(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        _seed_at_0005(db)
        db.upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT message_id_hash FROM messages")).scalar() == header_hash("<old@x.example>")
            assert conn.execute(text("SELECT message_id_hash FROM outbox")).scalar() == header_hash("<out@x.example>")
            assert conn.execute(text("SELECT message_id_hash FROM raw_mails")).scalar() == header_hash("<old@x.example>")
        insp = inspect(db.engine)
        for table in ("messages", "outbox", "raw_mails"):
            indexed = [ix["column_names"] for ix in insp.get_indexes(table)]
            indexed += [uq["column_names"] for uq in insp.get_unique_constraints(table)]
            assert ["message_id_hash"] in indexed and ["message_id"] not in indexed, (table, indexed)
        with db.engine.begin() as conn:  # a long Message-ID now inserts, and a duplicate is still refused
            conn.execute(text("INSERT INTO messages (id, ticket_id, direction, message_id, message_id_hash, in_reply_to, "
                              "\"references\", from_addr, from_name, to_addrs, cc_addrs, subject, body_text, kind, "
                              "channel, author, created_at) VALUES (:id, 1, 'in', :m, :h, '', '', '', '', '', '', 's', 'b', "
                              "'normal', 'smtp', '', '2026-11-02 12:00:00+00:00')"), {"id": 2, "m": LONG, "h": header_hash(LONG)})
        with pytest.raises(Exception, match="(?i)unique"), db.engine.begin() as conn:
            conn.execute(text("INSERT INTO messages (id, ticket_id, direction, message_id, message_id_hash, in_reply_to, "
                              "\"references\", from_addr, from_name, to_addrs, cc_addrs, subject, body_text, kind, "
                              "channel, author, created_at) VALUES (:id, 1, 'in', :m, :h, '', '', '', '', '', '', 's', 'b', "
                              "'normal', 'smtp', '', '2026-11-02 12:00:00+00:00')"), {"id": 3, "m": LONG, "h": header_hash(LONG)})
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM messages WHERE id <> 1"))
        if db.engine.dialect.name == "postgresql":
            # A deleted row stays in the heap until VACUUM, and PostgreSQL's index build still
            # reads it while any other session's snapshot might see it: the old btree would
            # then refuse the long Message-ID of a row that no longer exists.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM messages"))
        command.downgrade(db.alembic_config(), "0005")
        assert "message_id_hash" not in [c["name"] for c in inspect(db.engine).get_columns("messages")]
        assert db.current_revision() == "0005"
    finally:
        db.dispose()
