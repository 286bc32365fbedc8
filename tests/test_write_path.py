"""The write path of one mail: the processor calls each writer in turn, and every ticket
history line goes through the one history writer (``maild.store.history.record``)."""
from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from maild.domain.events import EventSpec
from maild.store import history
from maild.store.models import Event, Ticket
from conftest import Env, mail

ROOT = Path(__file__).resolve().parent.parent / "maild"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _writes_history(path: Path) -> bool:
    """Whether a module builds an INSERT on the history table itself (``insert(Event…)``
    or ``insert(events)``) rather than calling the history writer."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "insert":
            target = ast.unparse(node.args[0]) if node.args else ""
            if target in ("Event", "Event.__table__", "EventRow", "events"):
                return True
    return False


def test_the_check_sees_an_insert_on_the_history_table(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from sqlalchemy import insert\nX = insert(Event.__table__)\n")
    assert _writes_history(module)
    module.write_text("from sqlalchemy import insert\nX = insert(Message.__table__)\n")
    assert not _writes_history(module)


def test_only_the_history_writer_inserts_history() -> None:
    writers = {str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*.py")
               if "migrations" not in p.parts and _writes_history(p)}
    assert writers == {"maild/store/history.py"}


def test_the_history_writer_cuts_long_text_and_writes_nothing_for_no_entries(env: Env) -> None:
    env.process(mail("Printer broken", body="my printer is broken\n"))
    with env.app.db.write() as session:
        ticket_id = session.scalars(select(Ticket.id)).one()
        assert history.record(session, ticket_id, [], at=NOW, actor="maild") == 0
        assert history.record(session, ticket_id, [EventSpec("note", None, "n" * 5000, "d" * 5000)], at=NOW,
                              actor="a" * 400, message_id="<m@x>") == 1
    with env.app.db.read() as session:
        row = session.scalars(select(Event).where(Event.kind == "note")).one()
    assert (len(row.new or ""), len(row.detail), len(row.actor)) == (2000, 2000, 320)
    assert row.message_id == "<m@x>" and row.at == NOW
