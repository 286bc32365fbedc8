"""A command run inside another process (the tests, a wrapper) leaves no database connection open."""
from __future__ import annotations

import gc
from pathlib import Path

from sqlalchemy import create_engine, text

from conftest import Env
from maild.cli import main


def sessions(url: str) -> int:
    """Client sessions on the test database other than the one asking."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND pid <> pg_backend_pid()")).scalar_one())
    finally:
        engine.dispose()


def test_a_command_closes_its_connections(env: Env, tmp_path: Path) -> None:
    url = env.config.database_url
    config = str(tmp_path / "maild.yaml")
    if not url.startswith("postgresql"):
        assert main(["--config", config, "tickets", "list", "--json"]) == 0
        return  # SQLite: the file has no server-side sessions to count
    env.app.db.dispose()  # the fixture's own pool is not the command's
    before = sessions(url)
    assert main(["--config", config, "tickets", "list", "--json"]) == 0
    gc.collect()
    assert sessions(url) == before
