"""Migration 0010 on SQLite and PostgreSQL: tickets and messages written at 0009 are found
by search once the schema is upgraded (backfill), and downgrade goes back to 0009."""
from __future__ import annotations

from datetime import datetime, timezone

from alembic import command
from sqlalchemy import insert, inspect, text
from sqlalchemy.orm import Session
from test_migration_0006 import fresh_url  # noqa: F401 (a fixture)

from maild.store import search
from maild.store.db import Database
from maild.store.models import Contact, Message, Tag, Ticket, TicketTag


def test_rows_written_before_are_indexed_by_the_upgrade(fresh_url: str) -> None:  # noqa: F811
    db = Database(fresh_url)
    try:
        command.upgrade(db.alembic_config(), "0009")
        now = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)
        stamps = {"created_at": now, "updated_at": now}
        with db.engine.begin() as conn:  # at 0009 (these tables have not changed since)
            conn.execute(insert(Contact.__table__).values(id=1, email="joana@x.example", name="Joana Prado", **stamps))
            conn.execute(insert(Ticket.__table__).values(id=1, subject="Manutenção do elevador", requester_id=1,
                                                         **stamps))
            conn.execute(insert(Tag.__table__).values(id=1, name="predial"))
            conn.execute(insert(TicketTag.__table__).values(ticket_id=1, tag_id=1))
            conn.execute(insert(Message.__table__).values(
                id=1, ticket_id=1, direction="in", message_id="<old@x.example>", from_addr="joana@x.example",
                subject="Manutenção do elevador", body_text="O elevador parou no terceiro andar.", created_at=now))
        command.upgrade(db.alembic_config(), "0010")
        with Session(db.engine) as session:
            for query in ("terceiro andar", "manutencao", "predial", "prado", "joana@x.example"):
                assert [h.ticket_id for h in search.search(session, query)] == [1], query
        command.downgrade(db.alembic_config(), "0009")
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

    path = Path(versions.__path__[0]) / "0010_full_text_search.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
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
