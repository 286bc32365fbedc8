"""The daemon as a user runs it: `maild run` in a subprocess, mail over SMTP, CLI out."""
from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import HELPDESK, free_port, mail, write_config

pytestmark = pytest.mark.slow
MAILD = [sys.executable, "-m", "maild"]


class Daemon:
    def __init__(self, config: Path, port: int, log: Path, args: tuple[str, ...] = ()) -> None:
        self.config, self.port, self.log = config, port, log
        self.args = args  # after `run`, e.g. ("--workers", "1")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*MAILD, "--config", str(self.config), "run", *self.args], stdout=log, stderr=log)
        wait_for(self._listening, 30, "the daemon's SMTP port")

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"maild exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as smtp:
                return smtp.noop()[0] == 250
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(30)
        return self.proc.returncode

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MAILD, "--config", str(self.config), *args], capture_output=True, text=True, timeout=60)

    def tickets(self) -> list[dict]:
        result = self.cli("tickets", "list", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def spool_empty(daemon: Daemon) -> bool:
    """No accepted mail waiting: a spool file is removed only after its transaction committed."""
    spool = daemon.config.parent / "spool" / "new"
    return not (spool.is_dir() and any(spool.iterdir()))


def outbox_settled(daemon: Daemon) -> bool:
    """Nothing queued or claimed in the outbox: every row sent or given up."""
    listed = daemon.cli("outbox", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return all(row["state"] in ("sent", "failed") for row in json.loads(listed.stdout))


def drain(daemon: Daemon, seconds: float = 30, outbox: bool = True) -> None:
    """Drain until idle: every accepted mail processed and (``outbox``: when a smarthost
    takes maild's mail) every outbox row sent or given up."""
    wait_for(lambda: spool_empty(daemon) and (not outbox or outbox_settled(daemon)), seconds,
             "the daemon to be idle")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port))
    d = Daemon(config, port, tmp_path / "maild.log")
    yield d
    if d.proc and d.proc.poll() is None:
        d.kill()


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("maria@cliente.example.com.br", [HELPDESK], raw)


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
