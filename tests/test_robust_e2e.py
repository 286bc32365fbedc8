"""`maild run` as a user runs it: a poison mail over SMTP does not stop the mail after it
(SQLite and PostgreSQL), a restart does not get stuck, and the listener opens before a
full spool is drained."""
from __future__ import annotations

import json
import smtplib
import socket
import time
from pathlib import Path

import pytest

from conftest import HELPDESK, free_port, mail, write_config
from daemons import MAILD, Daemon, Daemons, send, wait_for
from test_poison import POISON_ID, long_id, poison_mail

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def daemon(request: pytest.FixtureRequest, tmp_path: Path, daemons: Daemons) -> Daemon:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'maild.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        from conftest import _reset_pg
        from maild.app import App
        from maild.config import load_config

        App(load_config(write_config(tmp_path, url), base_dir=tmp_path)).db.dispose()
        _reset_pg(url)
    port = free_port()
    return daemons.new(write_config(tmp_path, url, smtp_port=str(port)), port)


def _spool_files(directory: Path) -> list[Path]:
    return sorted((directory / "spool" / "new").glob("*.eml"))


def test_poison_mail_over_smtp_is_stored_threaded_and_later_mail_flows(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    send(daemon.port, poison_mail())
    # A customer's reply as a mail client builds it: In-Reply-To/References name the poison id.
    send(daemon.port, mail("Re: Vazamento na cozinha", message_id=long_id("reply-e2e"),
                           headers={"In-Reply-To": POISON_ID, "References": f"{long_id('z')} {POISON_ID}"}))
    for n in range(20):
        send(daemon.port, mail(f"Depois {n:02d}", message_id=f"<after-{n}@cliente.example>"))
    wait_for(lambda: len(daemon.tickets()) == 21 and not _spool_files(tmp_path), 60, "21 tickets")
    tickets = {t["subject"]: t for t in daemon.tickets()}
    assert sorted(tickets) == sorted(["Vazamento na cozinha", *(f"Depois {n:02d}" for n in range(20))])
    poisoned = tickets["Vazamento na cozinha"]
    assert poisoned["message_count"] == 2
    shown = json.loads(daemon.cli("tickets", "show", str(poisoned["id"]), "--json").stdout)
    assert [m["message_id"] for m in shown["messages"] if m["direction"] == "in"] == [POISON_ID, long_id("reply-e2e")]
    quarantine = json.loads(daemon.cli("quarantine", "list", "--json").stdout)
    assert quarantine == []
    assert daemon.stop() == 0

    # A restart (the poison mail redelivered by a retrying MTA too) does not get stuck.
    daemon.start()
    send(daemon.port, poison_mail())
    send(daemon.port, mail("Depois do reinício", message_id="<restart@cliente.example>"))
    wait_for(lambda: len(daemon.tickets()) == 22 and not _spool_files(tmp_path), 60, "the mail after the restart")
    assert daemon.stop() == 0


def _prefill(spool_new: Path, count: int) -> None:
    """Spool files as an earlier run left them (written directly: durability is not under test)."""
    spool_new.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        name = f"{1_000_000_000_000_000_000 + n:020d}-1-{n:08d}.smtp.eml"
        (spool_new / name).write_bytes(mail(f"Antigo {n:04d}", message_id=f"<old-{n}@cliente.example>"))


def test_listener_opens_before_the_spool_is_drained(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port))
    daemon = Daemon(config, port, tmp_path / "maild.log")
    # Migrate first, so start-up time is the daemon's own.
    assert daemon.cli("db", "upgrade").returncode == 0
    prefilled = 1500
    _prefill(tmp_path / "spool" / "new", prefilled)
    (tmp_path / "spool" / "tmp").mkdir(parents=True, exist_ok=True)
    (tmp_path / "spool" / "tmp" / f"{1:020d}-999999999-00000001.smtp.eml").write_bytes(b"half a mail")
    with open(daemon.log, "ab") as log:
        import subprocess

        daemon.proc = subprocess.Popen([*MAILD, "--config", str(config), "run"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert daemon.proc.poll() is None, daemon.log.read_text()
            assert time.monotonic() < deadline, "the port never opened"
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
                break
            except OSError:
                time.sleep(0.01)
        # The greeting came while the old mail was still waiting: the port did not wait for it.
        pending_at_greeting = len(_spool_files(tmp_path))
        with smtp:
            assert smtp.sendmail("maria@cliente.example.com.br", [HELPDESK],
                                 mail("Novo", message_id="<new@cliente.example>")) == {}
        assert pending_at_greeting > 0, "the spool was drained before the listener opened"
        wait_for(lambda: not _spool_files(tmp_path), 120, "the spool drained")
        wait_for(lambda: len(daemon.tickets()) == prefilled + 1, 60, "every ticket")
        assert not any((tmp_path / "spool" / "tmp").iterdir())  # the dead writer's partial file
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


def test_too_many_connections_to_the_daemon_get_421(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port))
    config.write_text(config.read_text().replace("  max_message_size: 1000000\n",
                                                 "  max_message_size: 1000000\n  max_connections_per_ip: 2\n"))
    daemon = Daemon(config, port, tmp_path / "maild.log")
    daemon.start()
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        assert all(s.recv(100).startswith(b"220") for s in held)
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", port, timeout=10)
        assert refused.value.smtp_code == 421
        for s in held:
            s.close()
        wait_for(lambda: _can_send(port), 20, "a free slot")
    finally:
        daemon.stop()


def _can_send(port: int) -> bool:
    try:
        send(port, mail("Depois"))
        return True
    except smtplib.SMTPConnectError:
        return False
