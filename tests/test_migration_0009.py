"""Migration 0009 on SQLite and PostgreSQL: tickets and messages written at 0008 are found
by search once the schema is upgraded (backfill), and downgrade goes back to 0008."""
from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session
from test_migration_0006 import fresh_url  # noqa: F401 (a fixture)

from maild.store import search
from maild.store.db import Database
from maild.store.keys import header_hash


def test_rows_written_before_are_indexed_by_the_upgrade(fresh_url: str) -> None:  # noqa: F811
    db = Database(fresh_url)
    try:
        command.upgrade(db.alembic_config(), "0008")
        now = "2026-11-02 12:00:00+00:00"
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO contacts (id, email, name, phone, consent, blocked, created_at, updated_at) "
                              "VALUES (1, 'joana@x.example', 'Joana Prado', '', true, false, :now, :now)"), {"now": now})
            conn.execute(text("INSERT INTO tickets (id, subject, status, priority, requester_id, visible, origin, "
                              "draft_pending, message_count, created_at, updated_at) VALUES "
                              "(1, 'Manutenção do elevador', 'new', 'normal', 1, true, '', false, 1, :now, :now)"),
                         {"now": now})
            conn.execute(text("INSERT INTO tags (id, name, colour) VALUES (1, 'predial', '')"))
            conn.execute(text("INSERT INTO ticket_tags (ticket_id, tag_id) VALUES (1, 1)"))
            conn.execute(text("INSERT INTO messages (id, ticket_id, direction, message_id, in_reply_to, \"references\", "
                              "from_addr, from_name, to_addrs, cc_addrs, subject, body_text, kind, channel, author, "
                              "created_at, message_id_hash) VALUES (1, 1, 'in', '<old@x.example>', '', '', "
                              "'joana@x.example', '', '', "
                              "'', 'Manutenção do elevador', 'O elevador parou no terceiro andar.', 'normal', 'smtp', "
                              "'', :now, :hash)"), {"now": now, "hash": header_hash("<old@x.example>")})
        command.upgrade(db.alembic_config(), "0009")
        with Session(db.engine) as session:
            for query in ("terceiro andar", "manutencao", "predial", "prado", "joana@x.example"):
                assert [h.ticket_id for h in search.search(session, query)] == [1], query
        command.downgrade(db.alembic_config(), "0008")
        assert not {"message_search", "ticket_search"} & set(inspect(db.engine).get_table_names())
        with db.engine.begin() as conn:  # the triggers went with them: writes work as before
            conn.execute(text("UPDATE messages SET body_text = 'x' WHERE id = 1"))
            conn.execute(text("DELETE FROM ticket_tags"))
    finally:
        db.dispose()


def test_without_unaccent_the_fold_still_drops_accents(pg_database: str) -> None:
    """A database user who may not create the extension gets the translate() fold."""
    import importlib.util
    from pathlib import Path

    import maild.store.migrations.versions as versions

    path = Path(versions.__path__[0]) / "0009_full_text_search.py"
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    db = Database(pg_database)
    try:
        with db.engine.begin() as conn:
            body = migration._FOLD_TRANSLATE.replace("$1", "CAST(:v AS text)")
            assert conn.execute(text(body), {"v": "AÇÃO Útil Pêssego"}).scalar() == "acao util pessego"
    finally:
        db.dispose()
