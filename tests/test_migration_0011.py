"""Migration 0011 on SQLite and PostgreSQL: mail queued at 0010 (by a node of the previous
version, which knows nothing of the new columns) starts with no failures; downgrade drops them."""
from __future__ import annotations

from datetime import datetime, timezone

from alembic import command
from sqlalchemy import inspect, text
from test_migration_0006 import fresh_url  # noqa: F401 (a fixture)

from maild.store.db import Database


def test_mail_queued_before_counts_its_failures_from_zero(fresh_url: str) -> None:  # noqa: F811
    db = Database(fresh_url)
    try:
        command.upgrade(db.alembic_config(), "0010")
        now = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)
        with db.engine.begin() as conn:  # what a node of the previous version writes
            conn.execute(text(
                "INSERT INTO inbound_queue (channel, raw, sha256, parents, state, attempts, next_attempt_at,"
                " received_at, node) VALUES ('smtp', :raw, :digest, '', 'queued', 0, :now, :now, 'old')"),
                {"raw": b"Subject: x\r\n\r\nx", "digest": "a" * 64, "now": now})
        command.upgrade(db.alembic_config(), "0011")
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT failures, last_error FROM inbound_queue")).one() == (0, "")
            conn.execute(text(  # the previous version's insert still works beside the new columns
                "INSERT INTO inbound_queue (channel, raw, sha256, parents, state, attempts, next_attempt_at,"
                " received_at, node) VALUES ('smtp', :raw, :digest, '', 'queued', 0, :now, :now, 'old')"),
                {"raw": b"Subject: y\r\n\r\ny", "digest": "b" * 64, "now": now})
        command.downgrade(db.alembic_config(), "0010")
        columns = {c["name"] for c in inspect(db.engine).get_columns("inbound_queue")}
        assert "failures" not in columns and "last_error" not in columns
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM inbound_queue")).scalar() == 2
    finally:
        db.dispose()
