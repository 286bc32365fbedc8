"""Service parts in process: reload, health probes, the metrics endpoints, log set-up, queue snapshot."""
from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import Env, mail, write_config
from maild.config import load_config
from maild.ingest.spool import Spool
from maild.service.health import Health, check
from maild.service.logs import LIBRARY_LOGGERS, configure
from maild.service.metrics import Metrics, MetricsServer, Snapshot
from maild.service.queues import read_snapshot
from maild.service.reload import restart_only_changes

VIP = 'keywords:\n  "#vip": {tags: [vip], who: anyone}\n'


def rewrite(env: Env, **extra: str) -> Path:
    return write_config(env.directory, f"sqlite:///{env.directory / 'maild.db'}", **extra)


def test_reload_puts_new_keywords_in_effect_for_the_next_mail(sqlite_env: Env) -> None:
    env = sqlite_env
    env.app.config_file = rewrite(env, keywords=VIP)
    before = env.app.processor
    assert env.app.reload() is True
    assert env.app.processor is not before and "#vip" in env.app.config.keywords
    outcome = env.process(mail("Pedido #vip"))
    assert env.ticket(outcome.ticket_id)["tags"] == ["vip"]


def test_invalid_reload_keeps_the_running_processor_and_logs_file_line_key(
        sqlite_env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env = sqlite_env
    path = rewrite(env)
    path.write_text(path.read_text() + "outbound:\n  acknowlege: true\n")
    env.app.config_file = path
    before = env.app.processor
    assert env.app.reload() is False
    assert env.app.processor is before
    line = len(path.read_text().splitlines())
    assert f"{path}:{line}: outbound.acknowlege: unknown key (misspelt?)" in caplog.text
    assert "still running on the previous configuration" in caplog.text


def test_restart_only_settings_are_named(tmp_path: Path) -> None:
    old = load_config(write_config(tmp_path, "sqlite:///a.db"))
    new = load_config(write_config(tmp_path, "sqlite:///b.db", smtp_port="2600", keywords=VIP))
    assert restart_only_changes(old, new) == ["database", "smtp_server"]
    assert restart_only_changes(old, old) == []


def test_a_probe_that_raises_counts_as_down() -> None:
    def broken() -> bool:
        raise ConnectionError("refused")

    health = check({"database": broken, "listener": lambda: True})
    assert not health.ok and health.failing == ["database"]
    assert health.as_json() == {"status": "failing", "parts": {"database": False, "listener": True},
                                "failing": ["database"]}


def test_healthz_answers_503_naming_the_dead_part() -> None:
    server = MetricsServer("127.0.0.1", 0, Metrics(Snapshot), lambda: Health({"database": True, "sender": False}))
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        assert caught.value.code == 503
        assert json.loads(caught.value.read())["failing"] == ["sender"]
    finally:
        server.stop()


def test_metrics_still_answer_when_the_queues_cannot_be_read() -> None:
    def down() -> Snapshot:
        raise OSError("database gone")

    metrics = Metrics(down)
    metrics.observe("imap", ["created"], 0.02)
    server = MetricsServer("127.0.0.1", 0, metrics, lambda: Health({}))
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        server.stop()
    assert 'maild_mails_processed_total{channel="imap",outcome="created"} 1.0' in text
    assert "maild_spool_depth" not in text


def test_snapshot_counts_the_spool_and_the_tables(sqlite_env: Env) -> None:
    env = sqlite_env
    env.process(mail("Um"))
    spool = Spool(env.directory / "spool-snap")
    spool.put(b"x", "smtp")
    spool.put(b"y", "smtp")
    later = datetime.now(timezone.utc).replace(microsecond=0)
    snap = read_snapshot(env.app.db, spool, later.replace(year=later.year + 1), leader=None)
    assert snap.spool_depth == 2 and snap.spool_oldest_seconds > 300 * 86400
    assert snap.raw_mails == {("pipe", "processed"): 1}
    assert sum(snap.outbox.values()) >= 1  # the acknowledgement and the agents' notification


def test_json_logs_and_quiet_libraries(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "sqlite:///x.db", logging="logging: {level: DEBUG, format: json}\n"))
    stream = io.StringIO()
    handler = configure(config, stream)
    try:
        logging.getLogger("maild.test").debug("hello %s", "there")
        logging.getLogger("mail.log").info("EHLO chatter")
        logging.getLogger("apscheduler.scheduler").info("Added job")
        records = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert records == [{"time": records[0]["time"], "level": "DEBUG", "logger": "maild.test",
                            "message": "hello there"}]
        assert all(logging.getLogger(name).level == logging.WARNING for name in LIBRARY_LOGGERS)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("maild").setLevel(logging.NOTSET)


def test_old_log_level_key_still_wins(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "sqlite:///x.db", lvl="log_level: ERROR\n"))
    assert config.log_level_name == "ERROR"
    assert load_config(write_config(tmp_path, "sqlite:///x.db")).log_level_name == "INFO"


def test_relative_paths_are_taken_from_the_config_files_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "etc"
    home.mkdir()
    (home / "maild.yaml").write_text("helpdesk: {address: support@example.com, secret: s3cr3t-value}\n"
                                     "database: {url: sqlite:///var/maild.db}\nstorage: {path: var/storage}\n")
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../etc/maild.yaml"))
    assert config.database_url == f"sqlite:///{home.resolve()}/var/maild.db"
    assert config.path(config.storage.path) == home.resolve() / "var/storage"
