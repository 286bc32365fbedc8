"""Shared fixtures: a maild built from a config in a temporary directory, on SQLite
and on the PostgreSQL server of this machine.

Tests that need a server skip with a visible reason when it is absent; with
``MAILD_REQUIRE_SERVERS=1`` (set by CI) they fail instead.
"""
from __future__ import annotations

import os
import socket
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from maild.app import App
from maild.config import Config, load_config
from maild.ingest.processor import Outcome
from maild.outbound.sender import Sender
from maild.views import list_tickets, ticket_detail

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mail"
PG_ADMIN_URL = os.environ.get("MAILD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_SERVERS = os.environ.get("MAILD_REQUIRE_SERVERS") == "1"

pytest_plugins = ["tests.dovecot", "daemons"]  # daemons: sink, daemons, daemon

HELPDESK = "support@support.example.com"
AGENT = "ana@support.example.com"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


def need_server(reason: str) -> None:
    """Skip, or under CI (MAILD_REQUIRE_SERVERS=1) fail, for a missing server."""
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (MAILD_REQUIRE_SERVERS=1 turns this skip into a failure)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory: Path, db_url: str, **extra: str) -> Path:
    """A complete config file for tests; ``extra`` adds top-level YAML sections."""
    body = textwrap.dedent(f"""\
        helpdesk:
          name: Test Helpdesk
          address: {HELPDESK}
          subject_tag: Support
          secret: test-secret
        database:
          url: {db_url}
        storage:
          path: {directory / 'storage'}
        spool:
          path: {directory / 'spool'}
        smtp_server:
          host: 127.0.0.1
          port: {extra.pop('smtp_port', '2525')}
          max_message_size: {extra.pop('max_size', '1000000')}
        agents:
          - email: {AGENT}
            name: Ana
            teams: [vendas]
            role: manager
        """)
    # Daemon tests must not depend on the time of day: no digest, no re-announcements,
    # unless a test asks for its own scheduler section.
    extra.setdefault("scheduler", "scheduler: {unaccepted_minutes: 0, digest: {enabled: false}}\n")
    for section in extra.values():
        body += textwrap.dedent(section)
    path = directory / "maild.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"maild_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        need_server(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'maild.db'}"
    url = request.getfixturevalue("pg_database")
    # Migrate once, then empty the tables (ids restart at 1) for each test.
    App(load_config(write_config(tmp_path, url), base_dir=tmp_path)).db.dispose()
    _reset_pg(url)
    return url


@dataclass
class Env:
    """A maild built from a test config, driven through the real processor."""

    app: App
    config: Config
    directory: Path
    now: datetime = T0
    senders: list[Sender] = field(default_factory=list)

    def process(self, raw: bytes, channel: str = "pipe", advance: timedelta = timedelta(seconds=1)) -> Outcome:
        self.now += advance
        return self.app.processor.process(raw, channel, self.now)

    def tickets(self, **filters: Any) -> list[dict[str, Any]]:
        with self.app.db.read() as session:
            return list_tickets(session, **filters)

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.app.db.read() as session:
            data = ticket_detail(session, ticket_id)
        assert data is not None, f"no ticket {ticket_id}"
        return data

    def sender(self, sender: Sender) -> Sender:
        """``sender``, stopped by ``close`` (the SMTP sessions its pool keeps open are closed)."""
        self.senders.append(sender)
        return sender

    def close(self) -> None:
        for sender in self.senders:
            sender.stop()
        self.app.db.dispose()

    def raw_rows(self) -> list[Any]:
        from sqlalchemy import select

        from maild.store.models import RawMail

        with self.app.db.read() as session:
            return list(session.scalars(select(RawMail).order_by(RawMail.id)))


def make_env(directory: Path, db_url: str, **extra: str) -> Env:
    config = load_config(write_config(directory, db_url, **extra), base_dir=directory)
    return Env(App(config), config, directory)


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    built = make_env(tmp_path, db_url)
    yield built
    built.close()


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[Env]:
    built = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    yield built
    built.close()


# A test config that trusts the MX's Authentication-Results, and an agent mail header it writes.
TRUSTING_MX = "security:\n  agent_auth:\n    trusted_authserv_ids: [mx.support.example.com]\n"
AGENT_AR = {"Authentication-Results": "mx.support.example.com; dkim=pass header.d=support.example.com"}


def agent_address(env: Env, ticket_id: int, agent: str = AGENT) -> str:
    """The Reply-To of maild's mail to ``agent`` about a ticket: replying there proves it is them."""
    return env.app.processor.planner.reply_address(ticket_id, agent)


def mail(subject: str = "Hello", sender: str = "maria@cliente.example.com.br", body: str = "Body text\n",
         message_id: str | None = None, to: str = HELPDESK, headers: dict[str, str] | None = None) -> bytes:
    """A small well-formed mail for tests that do not need a fixture file."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             f"Message-ID: {message_id or f'<{uuid.uuid4().hex}@test.example>'}",
             "Date: Mon, 02 Nov 2026 10:00:00 +0000", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")
