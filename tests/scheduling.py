"""Helpers for the scheduler and trigger tests: a controllable clock, a config with a small
team of agents, and direct writes of what the commands issue sets (``next_action_at``,
assignee, watchers) until those commands exist."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from conftest import Env, write_config
from maild.app import App
from maild.config import load_config
from maild.scheduler.jobs import Jobs
from maild.scheduler.leader import lock_for
from maild.scheduler.service import SchedulerService
from maild.store.models import OutboxRow, Participant, Ticket

ANA = "ana@support.example.com"  # manager, team vendas, has a phone
BRUNO = "bruno@support.example.com"  # agent, teams vendas + locacao
CARLA = "carla@support.example.com"  # agent, team locacao
CUSTOMER = "maria@cliente.example.com.br"

AGENTS = f"""\
agents:
  - email: {ANA}
    name: Ana
    teams: [vendas]
    role: manager
    phone: "+55 11 99999-0001"
  - email: {BRUNO}
    name: Bruno
    teams: [vendas, locacao]
  - email: {CARLA}
    name: Carla
    teams: [locacao]
"""


class Clock:
    """The injected clock: time moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when


def team_config(directory: Path, db_url: str, **sections: str) -> Path:
    path = write_config(directory, db_url, **sections)
    text = path.read_text(encoding="utf-8")
    start = text.index("agents:\n")
    end = text.index("role: manager\n", start) + len("role: manager\n")
    path.write_text(text[:start] + AGENTS + text[end:], encoding="utf-8")
    return path


def team_env(directory: Path, db_url: str, **sections: str) -> Env:
    config = load_config(team_config(directory, db_url, **sections), base_dir=directory)
    return Env(App(config), config, directory)


def service(env: Env, clock: Clock) -> SchedulerService:
    """A scheduler as ``maild run`` builds it, but driven by the test's clock, without threads."""
    jobs = Jobs(env.config, env.app.db, env.app.processor.signer)
    return SchedulerService(jobs, lock_for(env.app.db, env.config.scheduler.lease_seconds), clock)


def set_ticket(env: Env, ticket_id: int, **values: Any) -> None:
    with env.app.db.write() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(**values))


def add_watcher(env: Env, ticket_id: int, email: str) -> None:
    with env.app.db.write() as session:
        session.execute(insert(Participant).values(ticket_id=ticket_id, email=email, role="watcher"))


def outbox_rows(env: Env, since_id: int = 0) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.id > since_id).order_by(OutboxRow.id)))


def last_id(env: Env) -> int:
    rows = outbox_rows(env)
    return rows[-1].id if rows else 0
