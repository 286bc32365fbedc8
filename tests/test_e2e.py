"""The daemon as a user runs it: `maild run` in a subprocess, mail over SMTP, CLI out."""
from __future__ import annotations

import json
import os
import smtplib
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import free_port, mail, write_config
from daemons import MAILD, Daemon, Daemons, drain, outbox_settled, send, spool_empty, wait_for

__all__ = ["Daemon", "drain", "outbox_settled", "send", "spool_empty", "wait_for"]  # shared with other tests

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(daemons: Daemons) -> Daemon:
    """No smarthost here: the acknowledgements stay queued."""
    return daemons.new()


def test_mail_over_smtp_becomes_a_ticket_shown_by_the_cli(daemon: Daemon) -> None:
    daemon.start()
    send(daemon.port, mail("Infiltração no teto", "Maria <maria@cliente.example.com.br>", body="Olá, há água.\n",
                          message_id="<e2e-1@cliente.example>"))
    wait_for(lambda: len(daemon.tickets()) == 1, 20, "the ticket")
    [ticket] = daemon.tickets()
    assert ticket["subject"] == "Infiltração no teto" and ticket["requester"] == "maria@cliente.example.com.br"
    shown = json.loads(daemon.cli("tickets", "show", str(ticket["id"]), "--json").stdout)
    assert shown["messages"][0]["body_text"] == "Olá, há água.\n"
    assert shown["messages"][0]["message_id"] == "<e2e-1@cliente.example>"
    human = daemon.cli("tickets", "list").stdout
    assert "Infiltração no teto" in human and "maria@cliente.example.com.br" in human
    assert daemon.stop() == 0


def test_sigkill_mid_stream_then_redelivery_gives_exactly_one_ticket_per_mail(daemon: Daemon) -> None:
    daemon.start()
    mails = {f"<kill-{n}@cliente.example>": mail(f"Mail {n:03d}", message_id=f"<kill-{n}@cliente.example>")
             for n in range(150)}
    acknowledged: set[str] = set()
    stop = threading.Event()

    def deliver() -> None:
        for message_id, raw in mails.items():
            if stop.is_set():
                return
            try:
                send(daemon.port, raw)
                acknowledged.add(message_id)
            except (OSError, smtplib.SMTPException):
                return

    sender = threading.Thread(target=deliver)
    sender.start()
    wait_for(lambda: len(acknowledged) >= 60, 60, "60 acknowledged mails")
    daemon.kill()
    stop.set()
    sender.join(30)
    assert 60 <= len(acknowledged) < len(mails)

    # The MTA retries everything it has no 250 for; it may also resend a few it had.
    daemon.start()
    for message_id, raw in mails.items():
        if message_id not in acknowledged or message_id.endswith(("-1@cliente.example>", "-2@cliente.example>")):
            send(daemon.port, raw)
    wait_for(lambda: len(daemon.tickets()) >= len(mails), 60, "all tickets")
    drain(daemon, outbox=False)  # no smarthost here: the acknowledgements stay queued
    tickets = daemon.tickets()
    subjects = sorted(t["subject"] for t in tickets)
    assert subjects == sorted(f"Mail {n:03d}" for n in range(150))
    assert all(t["message_count"] == 1 for t in tickets)
    assert daemon.stop() == 0


def test_ingest_pipe_exit_codes(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    raw = mail("Pelo pipe")
    done = subprocess.run([*MAILD, "--config", str(config), "ingest", "--now"], input=raw, capture_output=True)
    assert done.returncode == 0 and done.stdout.startswith(b"created ticket=1")
    again = subprocess.run([*MAILD, "--config", str(config), "ingest", "--now"], input=raw, capture_output=True)
    assert again.returncode == 0 and again.stdout.startswith(b"duplicate ticket=1")
    (tmp_path / "dead").mkdir()
    dead_db = write_config(tmp_path / "dead", f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    retry = subprocess.run([*MAILD, "--config", str(dead_db), "ingest", "--now"], input=raw, capture_output=True,
                           env={**os.environ, "PGCONNECT_TIMEOUT": "2"})
    assert retry.returncode == 75, retry.stderr


def test_unmigrated_database_is_refused_when_auto_migrate_is_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    config.write_text(config.read_text().replace("database:\n", "database:\n  auto_migrate: false\n"))
    listing = subprocess.run([*MAILD, "--config", str(config), "tickets", "list"], capture_output=True, text=True)
    assert listing.returncode == 78 and "maild db upgrade" in listing.stderr
    run = subprocess.run([*MAILD, "--config", str(config), "run"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 78 and "has no maild tables" in run.stderr
    upgraded = subprocess.run([*MAILD, "--config", str(config), "db", "upgrade"], capture_output=True, text=True)
    assert upgraded.returncode == 0
    assert subprocess.run([*MAILD, "--config", str(config), "tickets", "list"], capture_output=True).returncode == 0


def test_quarantine_list_and_reprocess(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    maild = [*MAILD, "--config", str(config)]
    junk = b"\x00\x01 binary junk with no headers\n"
    assert subprocess.run([*maild, "ingest", "--now"], input=junk, capture_output=True).returncode == 0
    listed = json.loads(subprocess.run([*maild, "quarantine", "list", "--json"], capture_output=True,
                                       text=True).stdout)
    assert [row["reason"] for row in listed] == ["no usable headers (no From, Subject, Message-ID, Date, To ...)"]
    # Still unusable: reprocessing keeps it quarantined, visible, with its reason.
    again = subprocess.run([*maild, "reprocess"], capture_output=True, text=True)
    assert again.returncode == 0 and "1 reprocessed, 1 still quarantined" in again.stdout
    assert len(json.loads(subprocess.run([*maild, "quarantine", "list", "--json"], capture_output=True,
                                         text=True).stdout)) == 1
