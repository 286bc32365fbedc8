"""Notifying many agents of one mail costs the same statements as notifying two: their cap
rows and outbox counts are read in one go and their counters and outbox rows written in one
go (counted with a cursor listener)."""
from __future__ import annotations

from pathlib import Path

import yaml
from conftest import Env, mail, write_config
from sqlalchemy import event, func, select

from maild.app import App
from maild.config import load_config
from maild.store.models import NotifyCounter, OutboxRow


def statements_for_one_mail(directory: Path, agents: int) -> tuple[int, int, list[int]]:
    directory.mkdir()
    path = write_config(directory, f"sqlite:///{directory / 'maild.db'}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["agents"] += [{"email": f"agente{i}@support.example.com", "name": f"Agente {i}", "teams": ["vendas"],
                        "role": "agent"} for i in range(agents)]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    env = Env(App(load_config(path, base_dir=directory)), load_config(path, base_dir=directory), directory)
    try:
        env.process(mail("Primeiro", "cliente@exemplo.com.br"))  # warm: caches, first rows
        seen: list[str] = []
        event.listen(env.app.db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
        env.process(mail("Segundo", "outro@exemplo.com.br"))
        with env.app.db.read() as session:
            notices = session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.kind == "notify"))
            sent = sorted(session.scalars(select(NotifyCounter.sent)))
        return len(seen), notices or 0, sent
    finally:
        env.close()


def test_statements_per_mail_do_not_grow_with_the_agents(tmp_path: Path) -> None:
    few, few_notices, _ = statements_for_one_mail(tmp_path / "few", 1)
    many, many_notices, sent = statements_for_one_mail(tmp_path / "many", 12)
    assert many_notices - few_notices == 2 * 11  # every agent notified of both mails
    assert sent == [2] * 13  # and counted, twice each, in one window
    assert many - few <= 2  # was 5 statements more per agent
